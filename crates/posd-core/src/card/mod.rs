//! Cards: magnetic-stripe swipes parsed, checked, sealed and queued — as pure functions.
//!
//! Why it exists: DESIGN §1.4 lets posd take magnetic-stripe cards from a keyboard-wedge or
//! serial reader, and DESIGN §6 forbids clear PAN or track data at rest or on the broker. Every
//! rule about a card therefore lives here, away from devices, SQLite and MQTT, where it can be
//! unit-tested, property-tested and fuzzed (`fuzz/fuzz_targets/card.rs`): nothing in this module
//! touches a file, a socket, the clock or a global. The time and the OS randomness a caller needs
//! are passed in (only [`seal::seal_random`] and [`seal::keygen_random`] draw from the OS).
//!
//! Map:
//! - [`track`]: ISO 7813 track 1 / track 2 parsing ([`parse_swipe`]), Luhn, brand, masking, and
//!   the acceptance checks at sale time ([`CardData::check`]: expiry, service code, chip);
//! - [`seal`]: the card data sealed to the host's X25519 public key (ChaCha20-Poly1305), so only
//!   the host can read it back; the wire format is documented there;
//! - [`saf`]: the store-and-forward (offline) decision under the configured floor limit.
//!
//! Clear card data lives only in [`CardData`], which wipes itself on drop, prints only the
//! masked PAN in `Debug`, and is neither `Clone` nor `Serialize`. No error message of this module
//! contains card data.

// Nothing derived from a swipe or a sealed blob may panic: enforce it outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod saf;
pub mod seal;
pub mod track;

pub use saf::{saf_allowed, SafLimits, SafRefusal};
pub use seal::{
    key_to_b64, keygen_random, open, parse_key_b64, public_from_secret, seal, seal_random,
    SealError,
};
pub use track::{luhn_ok, parse_swipe, Brand, CardData, CardError};
