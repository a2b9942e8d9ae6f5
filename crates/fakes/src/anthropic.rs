//! Fake anthropic server (not implemented yet).
