//! `ack` as a terminal receives it: any bytes through the host gate; a signed ack is applied
//! only up to what was published (the first 8 bytes choose `published`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use posd_core::protocol::signed::{Admitted, GateError, HostKind};
use posd_fuzz::{gate, signer, TERMINAL};

fuzz_target!(|data: &[u8]| {
    let (published, body) = match data.split_first_chunk::<8>() {
        Some((p, rest)) => (u64::from_le_bytes(*p), rest),
        None => (0, data),
    };
    let mut g = gate();
    let _ = g.admit(TERMINAL, HostKind::Ack, body, published, 0);
    let signed = signer().seal_json(TERMINAL, HostKind::Ack, body);
    match g.admit(TERMINAL, HostKind::Ack, &signed, published, 0) {
        Ok(Admitted::Ack(a)) => assert!(a.upto_seq <= published),
        Ok(other) => panic!("an ack admitted as {other:?}"),
        Err(GateError::Refused { refusal, .. }) => {
            assert_eq!(refusal.code(), "ack_beyond_published")
        }
        Err(GateError::Malformed(_)) => {}
    }
});
