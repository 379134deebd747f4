//! The Tessera federation router.
fn main() {}
