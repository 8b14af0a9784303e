//! Card swipes and sealed card blobs: parsing and opening never panic, a parsed card's checks,
//! masking and sealing never panic, and whatever is sealed opens to the same card.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posd_core::card::{open, parse_swipe, public_from_secret, seal};

const HOST_SECRET: [u8; 32] = [0x42; 32];
const AAD: &[u8] = b"fuzz";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(card) = parse_swipe(text) {
        let masked = card.masked_pan();
        assert!(!card.pan.is_empty() && masked.len() == card.pan.len());
        let _ = card.brand().as_str();
        let _ = card.check(2026, 1, true);
        let _ = card.check(2026, 1, false);
        let sealed = seal(&card, &public_from_secret(&HOST_SECRET), AAD, [7; 32], [9; 12]);
        if let Ok(sealed) = sealed {
            if let Ok(opened) = open(&sealed, &HOST_SECRET, AAD) {
                assert_eq!(opened.pan, card.pan);
                assert_eq!(opened.track2, card.track2);
            } else {
                panic!("a sealed card did not open");
            }
        }
    }
    let _ = open(text, &HOST_SECRET, AAD);
});
