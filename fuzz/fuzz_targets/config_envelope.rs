//! `cfg/desired` as a terminal receives it: any bytes through the envelope and document checks,
//! and any bytes the fleet did sign; what verifies is for this terminal and newer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posd_core::fleet::envelope::{seal, verify_config};
use posd_fuzz::{fleet_key, fleet_keys, TERMINAL};

fuzz_target!(|data: &[u8]| {
    let _ = verify_config(data, fleet_keys(), TERMINAL, 0);
    let env = serde_json::to_vec(&seal(data, "ops", fleet_key())).expect("an envelope encodes");
    if let Ok((v, doc)) = verify_config(&env, fleet_keys(), TERMINAL, 7) {
        assert_eq!(v.payload, data);
        assert!(doc.version > 7);
        assert!(doc.terminal == "*" || doc.terminal == TERMINAL);
    }
});
