//! posd-core: everything posd decides, without I/O.
//!
//! Money, transactions and their state machines (online sale, merchant order, refund), the
//! till's rules, batch totals, backoff, the cashier/keypad machine, the wire protocol of
//! DESIGN §4 and the control-socket contract, payment codes, cards, receipts, keyboard-wedge
//! input and the fleet's signed documents. Nothing here opens a file, a socket or a device, or
//! reads the clock: time comes in as a value and answers go out as actions the shells carry
//! out (the model is quinn-proto under quinn). Its `Cargo.toml` has no tokio, SQLite, MQTT or
//! device crate, so the compiler keeps it that way; `fuzz/` builds on it alone.

/// `From` for error variants that carry another layer's error in their message
/// (`#[error("journal: {0}")] Store(StoreError)`) without making it their source as well:
/// thiserror's `#[from]` would, and a chain printed whole (`{:#}`: posd's last words,
/// posctl's errors) would then say the inner message twice.
/// `wraps_error!(DaemonError { Store(StoreError), Link(LinkError) });`
#[macro_export]
macro_rules! wraps_error {
    ($outer:ident { $($variant:ident($inner:ty)),+ $(,)? }) => {
        $(
            impl From<$inner> for $outer {
                fn from(e: $inner) -> Self {
                    $outer::$variant(e)
                }
            }
        )+
    };
}

pub mod backoff;
pub mod batch;
pub mod card;
pub mod cashier;
pub mod code_guard;
pub mod codes;
pub mod control;
pub mod display;
pub mod fleet;
pub mod hid;
pub mod i18n;
pub mod money;
pub mod order;
pub mod outbox;
pub mod pin;
pub mod protocol;
pub mod receipt;
pub mod refund;
pub mod till;
pub mod txn;
pub mod zone;
