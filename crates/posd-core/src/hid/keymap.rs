//! Keyboard layouts without X: Linux key code + modifier state → character.
//!
//! A HID scanner is a keyboard. It sends *key positions* (evdev key codes), and the host must
//! know which layout the scanner was programmed for to turn them back into text — getting this
//! wrong is the classic "Z and Y swapped" complaint. This module is the table for `us`, `uk`,
//! `de` and `fr-azerty` (pc105 geometry, as xkb draws them), with Shift, CapsLock (alphabetic
//! keys only, as on Linux), AltGr, NumLock for the keypad, and dead keys reported as such so
//! the assembler can compose them. Pure: no I/O, no evdev types.

use serde::{Deserialize, Serialize};

/// Linux key codes (`linux/input-event-codes.h`) used by the core. Kept here as plain numbers
/// so the core does not depend on the evdev crate.
pub mod code {
    pub const ESC: u16 = 1;
    pub const KEY_1: u16 = 2;
    pub const KEY_0: u16 = 11;
    pub const BACKSPACE: u16 = 14;
    pub const TAB: u16 = 15;
    pub const Q: u16 = 16;
    pub const ENTER: u16 = 28;
    pub const LEFTCTRL: u16 = 29;
    pub const A: u16 = 30;
    pub const LEFTSHIFT: u16 = 42;
    pub const Z: u16 = 44;
    pub const RIGHTSHIFT: u16 = 54;
    pub const KPASTERISK: u16 = 55;
    pub const LEFTALT: u16 = 56;
    pub const SPACE: u16 = 57;
    pub const CAPSLOCK: u16 = 58;
    pub const NUMLOCK: u16 = 69;
    pub const KP7: u16 = 71;
    pub const KP8: u16 = 72;
    pub const KP9: u16 = 73;
    pub const KPMINUS: u16 = 74;
    pub const KP4: u16 = 75;
    pub const KP5: u16 = 76;
    pub const KP6: u16 = 77;
    pub const KPPLUS: u16 = 78;
    pub const KP1: u16 = 79;
    pub const KP2: u16 = 80;
    pub const KP3: u16 = 81;
    pub const KP0: u16 = 82;
    pub const KPDOT: u16 = 83;
    pub const KEY_102ND: u16 = 86;
    pub const KPENTER: u16 = 96;
    pub const RIGHTCTRL: u16 = 97;
    pub const KPSLASH: u16 = 98;
    pub const RIGHTALT: u16 = 100;
    pub const KPEQUAL: u16 = 117;
    pub const KPCOMMA: u16 = 121;
    pub const LEFTMETA: u16 = 125;
    pub const RIGHTMETA: u16 = 126;
}

/// A keyboard layout the scanner (or keypad) is programmed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Layout {
    #[default]
    #[serde(rename = "us")]
    Us,
    #[serde(rename = "uk")]
    Uk,
    #[serde(rename = "de")]
    De,
    #[serde(rename = "fr-azerty")]
    FrAzerty,
}

impl Layout {
    pub const ALL: [Layout; 4] = [Layout::Us, Layout::Uk, Layout::De, Layout::FrAzerty];

    pub fn name(self) -> &'static str {
        match self {
            Layout::Us => "us",
            Layout::Uk => "uk",
            Layout::De => "de",
            Layout::FrAzerty => "fr-azerty",
        }
    }
}

/// The modifier and lock state at the moment a key is pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Modifiers {
    pub shift: bool,
    pub caps_lock: bool,
    pub num_lock: bool,
    /// Right Alt (ISO_Level3_Shift on every layout here but `us`, where it is ignored).
    pub altgr: bool,
}

/// What a key produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Char(char),
    /// A dead key: combines with the next character (`^` + `e` → `ê`), or stands alone before
    /// a space or a character it does not combine with.
    Dead(char),
}

/// (base, shift, altgr) for one key position; `'\0'` = nothing.
type Cell = (char, char, char);
/// Dead-key markers in the tables: these characters on the marked keys are dead.
const N: char = '\0';

/// Rows of the main block, by key code range: 2..=13, 16..=27, 30..=41, 43, 44..=53, 86.
struct Table {
    row1: [Cell; 12],
    row2: [Cell; 12],
    row3: [Cell; 12],
    bs: Cell,
    row4: [Cell; 10],
    lsgt: Cell,
    /// (key code, level 0=base 1=shift 2=altgr) pairs that are dead keys.
    dead: &'static [(u16, u8)],
    kp_decimal: char,
}

const US: Table = Table {
    row1: [
        ('1', '!', N),
        ('2', '@', N),
        ('3', '#', N),
        ('4', '$', N),
        ('5', '%', N),
        ('6', '^', N),
        ('7', '&', N),
        ('8', '*', N),
        ('9', '(', N),
        ('0', ')', N),
        ('-', '_', N),
        ('=', '+', N),
    ],
    row2: [
        ('q', 'Q', N),
        ('w', 'W', N),
        ('e', 'E', N),
        ('r', 'R', N),
        ('t', 'T', N),
        ('y', 'Y', N),
        ('u', 'U', N),
        ('i', 'I', N),
        ('o', 'O', N),
        ('p', 'P', N),
        ('[', '{', N),
        (']', '}', N),
    ],
    row3: [
        ('a', 'A', N),
        ('s', 'S', N),
        ('d', 'D', N),
        ('f', 'F', N),
        ('g', 'G', N),
        ('h', 'H', N),
        ('j', 'J', N),
        ('k', 'K', N),
        ('l', 'L', N),
        (';', ':', N),
        ('\'', '"', N),
        ('`', '~', N),
    ],
    bs: ('\\', '|', N),
    row4: [
        ('z', 'Z', N),
        ('x', 'X', N),
        ('c', 'C', N),
        ('v', 'V', N),
        ('b', 'B', N),
        ('n', 'N', N),
        ('m', 'M', N),
        (',', '<', N),
        ('.', '>', N),
        ('/', '?', N),
    ],
    lsgt: ('<', '>', '|'),
    dead: &[],
    kp_decimal: '.',
};

const UK: Table = Table {
    row1: [
        ('1', '!', N),
        ('2', '"', N),
        ('3', '£', N),
        ('4', '$', '€'),
        ('5', '%', N),
        ('6', '^', N),
        ('7', '&', N),
        ('8', '*', N),
        ('9', '(', N),
        ('0', ')', N),
        ('-', '_', N),
        ('=', '+', N),
    ],
    row2: US.row2,
    row3: [
        ('a', 'A', N),
        ('s', 'S', N),
        ('d', 'D', N),
        ('f', 'F', N),
        ('g', 'G', N),
        ('h', 'H', N),
        ('j', 'J', N),
        ('k', 'K', N),
        ('l', 'L', N),
        (';', ':', N),
        ('\'', '@', N),
        ('`', '¬', '|'),
    ],
    bs: ('#', '~', N),
    row4: US.row4,
    lsgt: ('\\', '|', N),
    dead: &[],
    kp_decimal: '.',
};

const DE: Table = Table {
    row1: [
        ('1', '!', '¹'),
        ('2', '"', '²'),
        ('3', '§', '³'),
        ('4', '$', '¼'),
        ('5', '%', '½'),
        ('6', '&', '¬'),
        ('7', '/', '{'),
        ('8', '(', '['),
        ('9', ')', ']'),
        ('0', '=', '}'),
        ('ß', '?', '\\'),
        ('´', '`', '¸'),
    ],
    row2: [
        ('q', 'Q', '@'),
        ('w', 'W', N),
        ('e', 'E', '€'),
        ('r', 'R', N),
        ('t', 'T', N),
        ('z', 'Z', N),
        ('u', 'U', N),
        ('i', 'I', N),
        ('o', 'O', N),
        ('p', 'P', N),
        ('ü', 'Ü', N),
        ('+', '*', '~'),
    ],
    row3: [
        ('a', 'A', N),
        ('s', 'S', N),
        ('d', 'D', N),
        ('f', 'F', N),
        ('g', 'G', N),
        ('h', 'H', N),
        ('j', 'J', N),
        ('k', 'K', N),
        ('l', 'L', N),
        ('ö', 'Ö', N),
        ('ä', 'Ä', N),
        ('^', '°', N),
    ],
    bs: ('#', '\'', N),
    row4: [
        ('y', 'Y', N),
        ('x', 'X', N),
        ('c', 'C', N),
        ('v', 'V', N),
        ('b', 'B', N),
        ('n', 'N', N),
        ('m', 'M', 'µ'),
        (',', ';', N),
        ('.', ':', N),
        ('-', '_', N),
    ],
    lsgt: ('<', '>', '|'),
    // ´ and ` on the key right of ß, ^ left of 1 (code 41); ¸ is not composed (stands alone).
    dead: &[(13, 0), (13, 1), (41, 0)],
    kp_decimal: ',',
};

const FR: Table = Table {
    row1: [
        ('&', '1', N),
        ('é', '2', '~'),
        ('"', '3', '#'),
        ('\'', '4', '{'),
        ('(', '5', '['),
        ('-', '6', '|'),
        ('è', '7', '`'),
        ('_', '8', '\\'),
        ('ç', '9', '^'),
        ('à', '0', '@'),
        (')', '°', ']'),
        ('=', '+', '}'),
    ],
    row2: [
        ('a', 'A', N),
        ('z', 'Z', N),
        ('e', 'E', '€'),
        ('r', 'R', N),
        ('t', 'T', N),
        ('y', 'Y', N),
        ('u', 'U', N),
        ('i', 'I', N),
        ('o', 'O', N),
        ('p', 'P', N),
        ('^', '¨', N),
        ('$', '£', '¤'),
    ],
    row3: [
        ('q', 'Q', N),
        ('s', 'S', N),
        ('d', 'D', N),
        ('f', 'F', N),
        ('g', 'G', N),
        ('h', 'H', N),
        ('j', 'J', N),
        ('k', 'K', N),
        ('l', 'L', N),
        ('m', 'M', N),
        ('ù', '%', N),
        ('²', N, N),
    ],
    bs: ('*', 'µ', N),
    row4: [
        ('w', 'W', N),
        ('x', 'X', N),
        ('c', 'C', N),
        ('v', 'V', N),
        ('b', 'B', N),
        ('n', 'N', N),
        (',', '?', N),
        (';', '.', N),
        (':', '/', N),
        ('!', '§', N),
    ],
    lsgt: ('<', '>', N),
    // ^ and ¨ on the key right of P.
    dead: &[(26, 0), (26, 1)],
    kp_decimal: '.',
};

fn table(layout: Layout) -> &'static Table {
    match layout {
        Layout::Us => &US,
        Layout::Uk => &UK,
        Layout::De => &DE,
        Layout::FrAzerty => &FR,
    }
}

fn cell(t: &Table, code: u16) -> Option<Cell> {
    let i = usize::from(code);
    match code {
        2..=13 => t.row1.get(i - 2).copied(),
        16..=27 => t.row2.get(i - 16).copied(),
        30..=41 => t.row3.get(i - 30).copied(),
        43 => Some(t.bs),
        44..=53 => t.row4.get(i - 44).copied(),
        86 => Some(t.lsgt),
        57 => Some((' ', ' ', ' ')),
        _ => None,
    }
}

/// The keypad with NumLock on (and the operator keys, which ignore NumLock).
fn keypad(t: &Table, code: u16, mods: Modifiers) -> Option<Option<char>> {
    use code::*;
    let digits_on = mods.num_lock != mods.shift;
    let c = match code {
        KPSLASH => '/',
        KPASTERISK => '*',
        KPMINUS => '-',
        KPPLUS => '+',
        KPEQUAL => '=',
        KPCOMMA => ',',
        KP0 | KP1 | KP2 | KP3 | KP4 | KP5 | KP6 | KP7 | KP8 | KP9 | KPDOT => {
            if !digits_on {
                return Some(None);
            }
            match code {
                KP0 => '0',
                KP1 => '1',
                KP2 => '2',
                KP3 => '3',
                KP4 => '4',
                KP5 => '5',
                KP6 => '6',
                KP7 => '7',
                KP8 => '8',
                KP9 => '9',
                _ => t.kp_decimal,
            }
        }
        _ => return None,
    };
    Some(Some(c))
}

/// Translates a key press. `None` for keys that produce no character (modifiers, Enter, Tab,
/// function keys, keypad navigation with NumLock off, AltGr levels a layout leaves empty).
pub fn translate(layout: Layout, code: u16, mods: Modifiers) -> Option<Output> {
    let t = table(layout);
    if let Some(k) = keypad(t, code, mods) {
        return k.map(Output::Char);
    }
    let (base, shifted, altgr) = cell(t, code)?;
    let (level, c) = if mods.altgr && layout != Layout::Us {
        (2u8, altgr)
    } else {
        // CapsLock acts on alphabetic keys only (those whose shifted char is the upper case
        // of the base), as xkb's ALPHABETIC type does: on AZERTY, CapsLock + é stays é.
        let alpha = base.is_alphabetic() && base.to_uppercase().eq(std::iter::once(shifted));
        let upper = if alpha {
            mods.shift != mods.caps_lock
        } else {
            mods.shift
        };
        if upper {
            (1, shifted)
        } else {
            (0, base)
        }
    };
    if c == N {
        return None;
    }
    if t.dead.contains(&(code, level)) {
        Some(Output::Dead(c))
    } else {
        Some(Output::Char(c))
    }
}

/// Composes a dead key with the next character: `Some(composed)` or `None` when they do not
/// combine (the caller then emits the dead key's own character followed by `next`).
pub fn compose(dead: char, next: char) -> Option<char> {
    const TABLE: &[(char, &str, &str)] = &[
        ('^', "aeiouAEIOU", "âêîôûÂÊÎÔÛ"),
        ('´', "aeiouyAEIOUY", "áéíóúýÁÉÍÓÚÝ"),
        ('`', "aeiouAEIOU", "àèìòùÀÈÌÒÙ"),
        ('¨', "aeiouyAEIOU", "äëïöüÿÄËÏÖÜ"),
    ];
    let (_, from, to) = TABLE.iter().find(|(d, _, _)| *d == dead)?;
    let i = from.chars().position(|c| c == next)?;
    to.chars().nth(i)
}

/// The key strokes that type `c` on `layout`: the reverse table, used to build test streams
/// and by the benchmark. Prefers the main block, no CapsLock, NumLock on; a character that
/// only exists on a dead key is typed as that key followed by Space, as a scanner does.
pub fn keys_for(layout: Layout, c: char) -> Option<Vec<(u16, Modifiers)>> {
    let tries = [
        Modifiers {
            num_lock: true,
            ..Modifiers::default()
        },
        Modifiers {
            shift: true,
            num_lock: true,
            ..Modifiers::default()
        },
        Modifiers {
            altgr: true,
            num_lock: true,
            ..Modifiers::default()
        },
    ];
    let mut dead = None;
    for mods in tries {
        for code in (2u16..=57).chain([86]) {
            match translate(layout, code, mods) {
                Some(Output::Char(x)) if x == c => return Some(vec![(code, mods)]),
                Some(Output::Dead(x)) if x == c && dead.is_none() => dead = Some((code, mods)),
                _ => {}
            }
        }
    }
    dead.map(|d| vec![d, (code::SPACE, tries[0])])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(shift: bool, caps: bool) -> Modifiers {
        Modifiers {
            shift,
            caps_lock: caps,
            num_lock: true,
            altgr: false,
        }
    }

    #[test]
    fn qwertz_and_azerty_positions() {
        let plain = m(false, false);
        assert_eq!(translate(Layout::Us, 21, plain), Some(Output::Char('y')));
        assert_eq!(translate(Layout::De, 21, plain), Some(Output::Char('z')));
        assert_eq!(
            translate(Layout::FrAzerty, code::Q, plain),
            Some(Output::Char('a'))
        );
        assert_eq!(
            translate(Layout::FrAzerty, code::KEY_1, plain),
            Some(Output::Char('&'))
        );
        assert_eq!(
            translate(Layout::FrAzerty, code::KEY_1, m(true, false)),
            Some(Output::Char('1'))
        );
        assert_eq!(
            translate(Layout::Uk, 40, m(true, false)),
            Some(Output::Char('@'))
        );
        assert_eq!(
            translate(Layout::Us, 3, m(true, false)),
            Some(Output::Char('@'))
        );
    }

    #[test]
    fn capslock_only_on_letters() {
        assert_eq!(
            translate(Layout::Us, code::A, m(false, true)),
            Some(Output::Char('A'))
        );
        assert_eq!(
            translate(Layout::Us, code::A, m(true, true)),
            Some(Output::Char('a'))
        );
        assert_eq!(
            translate(Layout::Us, code::KEY_1, m(false, true)),
            Some(Output::Char('1'))
        );
        assert_eq!(
            translate(Layout::FrAzerty, 3, m(false, true)),
            Some(Output::Char('é'))
        );
        assert_eq!(
            translate(Layout::De, 26, m(false, true)),
            Some(Output::Char('Ü'))
        );
    }

    #[test]
    fn numlock_and_keypad() {
        let on = m(false, false);
        let off = Modifiers::default();
        assert_eq!(
            translate(Layout::Us, code::KP7, on),
            Some(Output::Char('7'))
        );
        assert_eq!(translate(Layout::Us, code::KP7, off), None);
        assert_eq!(
            translate(Layout::Us, code::KPMINUS, off),
            Some(Output::Char('-'))
        );
        assert_eq!(
            translate(Layout::De, code::KPDOT, on),
            Some(Output::Char(','))
        );
    }

    #[test]
    fn dead_keys_and_altgr() {
        assert_eq!(
            translate(Layout::De, 41, m(false, false)),
            Some(Output::Dead('^'))
        );
        assert_eq!(
            translate(Layout::FrAzerty, 26, m(false, false)),
            Some(Output::Dead('^'))
        );
        let altgr = Modifiers {
            altgr: true,
            num_lock: true,
            ..Modifiers::default()
        };
        assert_eq!(
            translate(Layout::De, code::Q, altgr),
            Some(Output::Char('@'))
        );
        assert_eq!(
            translate(Layout::FrAzerty, code::KEY_0, altgr),
            Some(Output::Char('@'))
        );
        assert_eq!(compose('^', 'e'), Some('ê'));
        assert_eq!(compose('^', 'x'), None);
    }

    #[test]
    fn every_printable_ascii_is_typeable_on_every_layout() {
        for layout in Layout::ALL {
            for c in (0x20u8..0x7f).map(char::from) {
                // fr-azerty has no dead-key-free '^' or '`' except with AltGr: still found.
                assert!(
                    keys_for(layout, c).is_some(),
                    "{} cannot type {c:?}",
                    layout.name()
                );
            }
        }
    }
}
