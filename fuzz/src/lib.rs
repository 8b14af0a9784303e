//! Fixtures the wire targets share: the terminal they play, a host key and a fleet key they
//! trust (fixed seeds, so signed inputs are reproducible).

use std::sync::OnceLock;

use posd_core::fleet::envelope::{FleetKeyConfig, FleetKeys};
use posd_core::protocol::signed::{HostGate, HostKeys, HostSigner};

/// The terminal every target plays.
pub const TERMINAL: &str = "T1";

pub fn signer() -> &'static HostSigner {
    static S: OnceLock<HostSigner> = OnceLock::new();
    S.get_or_init(|| HostSigner::from_seed(1, &[0x48; 32]))
}

/// A fresh gate trusting [`signer`] (fresh: its counters never carry over between inputs).
pub fn gate() -> HostGate {
    static K: OnceLock<HostKeys> = OnceLock::new();
    let keys = K.get_or_init(|| {
        HostKeys::from_config(&[signer().config()]).expect("the fixture key is valid")
    });
    HostGate::new(keys.clone(), false)
}

pub fn fleet_key() -> &'static ed25519_dalek::SigningKey {
    static K: OnceLock<ed25519_dalek::SigningKey> = OnceLock::new();
    K.get_or_init(|| ed25519_dalek::SigningKey::from_bytes(&[0x0f; 32]))
}

pub fn fleet_keys() -> &'static FleetKeys {
    static K: OnceLock<FleetKeys> = OnceLock::new();
    K.get_or_init(|| {
        FleetKeys::from_config(&[FleetKeyConfig {
            id: "ops".into(),
            public_key: hex::encode(fleet_key().verifying_key().to_bytes()),
        }])
        .expect("the fixture key is valid")
    })
}
