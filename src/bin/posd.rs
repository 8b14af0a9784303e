//! The daemon binary.
fn main() {}
