//! posd: the payment daemon for Linux micro-POS boxes.
//!
//! A core with no I/O (`core`, `codes`, ...) driven by thin tokio shells that own devices,
//! SQLite and MQTT. See `docs/architecture.md` for the map from modules to DESIGN.md.
pub mod receipt;
