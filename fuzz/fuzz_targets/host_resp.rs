//! `resp` as a terminal receives it: any bytes through the host gate (refused unless signed,
//! never a panic), and any bytes the host did sign (so the payload parser behind the signature
//! is reached): a parsed response re-encodes and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posd_core::protocol::signed::{Admitted, HostKind};
use posd_fuzz::{gate, signer, TERMINAL};

fuzz_target!(|data: &[u8]| {
    let mut g = gate();
    let _ = g.admit(TERMINAL, HostKind::Resp, data, u64::MAX, 0);
    let signed = signer().seal_json(TERMINAL, HostKind::Resp, data);
    if let Ok(Admitted::Resp(r)) = g.admit(TERMINAL, HostKind::Resp, &signed, 0, 0) {
        let again = serde_json::to_vec(&r).expect("a response encodes");
        assert_eq!(posd_core::protocol::parse_response(&again).ok(), Some(r));
    }
    // Signed for this terminal's resp topic only.
    assert!(g.admit("T2", HostKind::Resp, &signed, 0, 0).is_err());
    assert!(g.admit(TERMINAL, HostKind::Notify, &signed, 0, 0).is_err());
});
