//! posd: the payment daemon for Linux micro-POS boxes.
//!
//! A core with no I/O (`core`, `codes`, ...) driven by thin tokio shells that own devices,
//! SQLite and MQTT. See `docs/architecture.md` for the map from modules to DESIGN.md.

pub mod camera;
pub mod card;
pub mod codes;
pub mod config;
pub mod control;
pub mod core;
pub mod daemon;
pub mod demo;
pub mod devices;
pub mod engine;
pub mod fleet;
pub mod host;
pub mod link;
pub mod logging;
pub mod printq;
pub mod receipt;
pub mod store;
pub mod systemd;
