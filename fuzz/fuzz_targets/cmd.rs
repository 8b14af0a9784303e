//! `cmd` as a terminal receives it: any bytes through the command check (signature, shape,
//! terminal), any bytes the fleet did sign, and the freshness rule on whatever verified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posd_core::fleet::command::{check_fresh, unverified_cmd_id, verify_command, Freshness};
use posd_core::fleet::envelope::seal;
use posd_fuzz::{fleet_key, fleet_keys, TERMINAL};

fuzz_target!(|data: &[u8]| {
    let _ = verify_command(data, fleet_keys(), TERMINAL);
    let _ = unverified_cmd_id(data);
    let env = serde_json::to_vec(&seal(data, "ops", fleet_key())).expect("an envelope encodes");
    if let Ok((key_id, cmd)) = verify_command(&env, fleet_keys(), TERMINAL) {
        assert_eq!(key_id, "ops");
        assert!(!cmd.cmd_id.is_empty() && cmd.cmd_id.len() <= 128);
        assert!(cmd.terminal == "*" || cmd.terminal == TERMINAL);
        let now = 1_800_000_000;
        let f = Freshness {
            now,
            clock_trusted: true,
            max_age_s: 300,
            floor: now - 300,
            live: 0,
            max_records: 10,
        };
        if check_fresh(cmd.issued_at, &f).is_ok() {
            assert!(cmd.issued_at.abs_diff(now) <= 300);
        }
        assert_eq!(
            unverified_cmd_id(&env).as_deref(),
            Some(cmd.cmd_id.as_str())
        );
    }
});
