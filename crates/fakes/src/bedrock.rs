//! Fake bedrock server (not implemented yet).
