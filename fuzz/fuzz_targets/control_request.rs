//! A control-socket request line (`posd_core::control::parse_request`): never a panic, and a
//! request that parses encodes to a line that parses back to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posd_core::control::parse_request;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_request(data) {
        let line = serde_json::to_vec(&r).expect("a request encodes");
        assert_eq!(parse_request(&line).ok(), Some(r));
    }
});
