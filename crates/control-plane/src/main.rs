//! The `atlasai-cp` binary.
fn main() {}
