//! Fake vertex server (not implemented yet).
