//! The shop's language in force, for every shell that makes a text for people (the engine's
//! results and refusals, the console, the customer display, the keypad, the print queue). One
//! value for the process, set at start from `[terminal] language` and again when the fleet
//! pushes a new one, read at the moment a text is made — like the clock, so no task holds a
//! stale copy and a push needs no restart. The words themselves are posd-core's catalogue
//! (`posd_core::i18n`).

use posd_core::i18n::Language;
use std::sync::atomic::{AtomicU8, Ordering};

static CURRENT: AtomicU8 = AtomicU8::new(0);

fn index(l: Language) -> u8 {
    match l {
        Language::En => 0,
        Language::ZhCn => 1,
        Language::Es => 2,
    }
}

/// The language texts are made in now.
pub fn current() -> Language {
    Language::ALL
        .get(usize::from(CURRENT.load(Ordering::Relaxed)))
        .copied()
        .unwrap_or_default()
}

/// Switches every text made from now on to `l` (start-up, a pushed configuration).
pub fn set(l: Language) {
    CURRENT.store(index(l), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_then_current() {
        for l in Language::ALL {
            assert_eq!(Language::ALL[usize::from(index(l))], l);
        }
        set(Language::Es);
        assert_eq!(current(), Language::Es);
        set(Language::En);
        assert_eq!(current(), Language::En);
    }
}
