//! Cashier diagnostics, fleet tools, the sandbox host and a test wallet.
fn main() {}
