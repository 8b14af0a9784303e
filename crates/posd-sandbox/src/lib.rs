//! posd-sandbox: the world around a terminal, for tests and the demo — never in the `.deb`.
//!
//! A payment platform ([`host`]: idempotent event store, code-selected behaviours, a ledger
//! and its audit), a customer's wallet ([`wallet`]: P1 credentials and codes, paying a
//! merchant-presented QR), an embedded MQTT broker for the demo ([`broker`]), an ESC/POS
//! printer emulator ([`printer_emulator`]), the [`demo`] itself, a 4G-like link ([`netem`]),
//! the endurance run ([`soak`]) and a fleet of hundreds ([`fleet_sim`]), with what they share to
//! run real daemons in [`world`]. It talks to posd only
//! through the contracts in `posd-core`, as another party's implementation would.

pub mod baseline;
pub mod broker;
pub mod demo;
pub mod fleet_sim;
pub mod host;
pub mod logging;
pub mod mqtt;
pub mod netem;
pub mod printer_emulator;
pub mod soak;
pub mod wallet;
pub mod world;
