//! EMVCo merchant-presented text: parsing never panics, and a payload that parses is also
//! recognised by the classifier's quick check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posd_core::codes::emv_mpm;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let quick = emv_mpm::looks_like_valid_mpm(text);
    if emv_mpm::parse(text).is_ok() {
        assert!(quick, "parsed but not recognised: {text:?}");
    }
});
