//! The `atlasai-tp` binary.
fn main() {}
