//! The fleet's signed documents (DESIGN §5, docs/fleet.md): the Ed25519 envelope, config
//! documents with their terminal and version checks, and signed commands. Pure; the product's
//! fleet agent keeps the records in SQLite and talks MQTT.

pub mod command;
pub mod envelope;
