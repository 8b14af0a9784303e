//! The core with no I/O: money, transactions and their state machines, the protocol's messages,
//! backoff. Everything here takes `now` as a value and returns what the shells must do.

pub mod backoff;
pub mod batch;
pub mod cashier;
pub mod money;
pub mod order;
pub mod protocol;
pub mod refund;
pub mod txn;
