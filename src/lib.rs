//! posd: the payment daemon for Linux micro-POS boxes — the shells around `posd-core`.
//!
//! Everything that decides is in the pure `posd-core` crate; this crate owns the I/O: the
//! SQLite journal, the MQTT link, the devices, the printer, the control socket, the fleet agent
//! and the daemon that wires them. See `docs/architecture.md` for the layers and what each may
//! import (a module imports only modules below it).

pub mod clock;
pub mod config;
pub mod lang;
pub mod logging;
pub mod systemd;

pub mod store;

pub mod retention;

pub mod link;
pub mod printer;
pub mod printq;

pub mod engine;

pub mod camera;
pub mod control;
pub mod devices;

pub mod fleet;

pub mod daemon;

pub mod cli;
