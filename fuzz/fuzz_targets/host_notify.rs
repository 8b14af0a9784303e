//! `notify` as a terminal receives it: any bytes through the host gate, and any bytes the host
//! did sign; a parsed notify re-encodes and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posd_core::protocol::signed::{Admitted, HostKind};
use posd_fuzz::{gate, signer, TERMINAL};

fuzz_target!(|data: &[u8]| {
    let mut g = gate();
    let _ = g.admit(TERMINAL, HostKind::Notify, data, u64::MAX, 0);
    let signed = signer().seal_json(TERMINAL, HostKind::Notify, data);
    if let Ok(Admitted::Notify(n)) = g.admit(TERMINAL, HostKind::Notify, &signed, 0, 0) {
        let again = serde_json::to_vec(&n).expect("a notify encodes");
        assert_eq!(posd_core::protocol::parse_notify(&again).ok(), Some(n));
    }
    assert!(g
        .admit(TERMINAL, HostKind::Ack, &signed, u64::MAX, 0)
        .is_err());
});
