//! Any scanned text: the classifier and `inspect` never panic, and what they accept renders.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use posd_core::codes::classify::{classify, Patterns};
use posd_core::codes::inspect::inspect;

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(Patterns::default)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = classify(&text, patterns()) {
        assert!(text.starts_with(c.text));
    }
    if let Ok(i) = inspect(&text, patterns(), Some(1_770_000_000)) {
        assert!(!i.to_string().is_empty());
    }
});
