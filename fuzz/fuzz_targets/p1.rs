//! P1 bytes and text: decoding never panics, decoding is exact (bytes round-trip), and
//! verification of anything decoded never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use posd_core::codes::offline::{verify_p1, IssuerKeys, OfflinePolicy};
use posd_core::codes::p1::{P1Code, PrivateKey};

fn keys() -> &'static IssuerKeys {
    static K: OnceLock<IssuerKeys> = OnceLock::new();
    K.get_or_init(|| {
        let mut k = IssuerKeys::new();
        if let Ok(issuer) = PrivateKey::from_hex(&"11".repeat(32)) {
            k.insert(1, issuer.public_key(), false);
        }
        k
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(code) = P1Code::from_bytes(data) {
        assert_eq!(&code.to_bytes()[..], data);
        let _ = verify_p1(&code.to_text(), 1_770_000_000, keys(), &OfflinePolicy::default());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = P1Code::from_text(text);
        let _ = verify_p1(text, 1_770_000_000, keys(), &OfflinePolicy::default());
    }
});
