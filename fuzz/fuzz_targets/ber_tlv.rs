//! BER-TLV bytes: parsing never panics, and whatever parses re-encodes to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posd_core::codes::{cpm, tlv};

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = tlv::parse(data) {
        let again = tlv::encode(&tree).expect("a parsed tree encodes");
        assert_eq!(tlv::parse(&again).expect("re-encoded tree parses"), tree);
    }
    let _ = cpm::parse_bytes(data);
});
