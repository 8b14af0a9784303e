//! Character sets receipt printers take, and the one rule that keeps unprintable bytes off the
//! paper: a character is sent only if the printer's character set has it (`can_print`), in the
//! bytes that set gives it (`encode_char`). Shared by layout (to count columns), the encoder and
//! the renderer (to read bytes back as characters).
//!
//! Code page tables are our own rather than escpos': escpos 0.20.1's PC858 table maps the ASCII
//! hyphen `-` to 0xF0 (soft hyphen) and both `Ô` and `Ò` to the same slot.

use encoding_rs::GB18030;
use serde::{Deserialize, Serialize};

/// The character set text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextEncoding {
    /// Chinese printers in Chinese mode (`FS &`): ASCII plus two-byte GB18030 (GBK) characters,
    /// which print double width.
    Gb18030,
    /// Code page 437 (`ESC t 0`), the default of most printers.
    Cp437,
    /// Code page 858 (`ESC t 19`): Latin-1 letters and the euro sign.
    Cp858,
    /// Printable ASCII only.
    Ascii,
}

impl TextEncoding {
    /// Whether the printer can print `c` in this character set (space and printable only).
    pub fn can_print(self, c: char) -> bool {
        if (' '..='~').contains(&c) {
            return true;
        }
        match self {
            TextEncoding::Ascii => false,
            TextEncoding::Cp437 => table_byte(&CP437_HIGH, c).is_some(),
            TextEncoding::Cp858 => table_byte(&CP858_HIGH, c).is_some(),
            TextEncoding::Gb18030 => gb_two_byte(c).is_some(),
        }
    }

    /// Columns `c` takes with font A: two for GB18030 double-byte characters, else one.
    pub fn char_cols(self, c: char) -> usize {
        match self {
            TextEncoding::Gb18030 if !c.is_ascii() => 2,
            _ => 1,
        }
    }

    /// Appends the printer's bytes for `c`, or `?` when the set lacks it. Control characters
    /// never pass: they become `?` as well.
    pub fn encode_char(self, c: char, out: &mut Vec<u8>) {
        if (' '..='~').contains(&c) {
            out.push(c as u8);
            return;
        }
        let mapped = match self {
            TextEncoding::Ascii => None,
            TextEncoding::Cp437 => table_byte(&CP437_HIGH, c).map(|b| vec![b]),
            TextEncoding::Cp858 => table_byte(&CP858_HIGH, c).map(|b| vec![b]),
            TextEncoding::Gb18030 => gb_two_byte(c).map(|b| b.to_vec()),
        };
        match mapped {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => out.push(b'?'),
        }
    }

    /// Encodes a whole string with [`encode_char`](Self::encode_char).
    pub fn encode(self, s: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len());
        for c in s.chars() {
            self.encode_char(c, &mut out);
        }
        out
    }

    /// `ESC t n` code page number, for the single-byte sets.
    pub fn code_page(self) -> Option<u8> {
        match self {
            TextEncoding::Cp437 | TextEncoding::Ascii => Some(0),
            TextEncoding::Cp858 => Some(19),
            TextEncoding::Gb18030 => None,
        }
    }
}

fn table_byte(table: &[char; 128], c: char) -> Option<u8> {
    // Box drawing and shading are printable but not useful on receipts; NBSP is whitespace.
    table
        .iter()
        .position(|&t| t == c && c != '\u{00A0}' && c != '\u{00AD}')
        .and_then(|i| u8::try_from(i + 0x80).ok())
}

/// GB18030 bytes of `c` when they are a two-byte (GBK area) code outside the user-defined areas.
fn gb_two_byte(c: char) -> Option<[u8; 2]> {
    if c.is_control() || ('\u{E000}'..='\u{F8FF}').contains(&c) {
        return None;
    }
    let mut buf = [0u8; 4];
    let (bytes, _, _) = GB18030.encode(c.encode_utf8(&mut buf));
    match *bytes {
        [a, b] if (0x81..=0xFE).contains(&a) && (0x40..=0xFE).contains(&b) && b != 0x7F => {
            Some([a, b])
        }
        _ => None,
    }
}

/// Character a single-byte code page gives to `b` (renderer side). Unknown pages read as 437.
pub fn decode_code_page(page: u8, b: u8) -> char {
    if b < 0x80 {
        return char::from(b);
    }
    let table = if page == 19 { &CP858_HIGH } else { &CP437_HIGH };
    table[usize::from(b - 0x80)]
}

/// Decodes one GB18030 two-byte code (renderer side).
pub fn decode_gb18030(bytes: &[u8]) -> Option<char> {
    let (s, had_errors) = GB18030.decode_without_bom_handling(bytes);
    if had_errors {
        return None;
    }
    let mut it = s.chars();
    match (it.next(), it.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// Code page 437, bytes 0x80..=0xFF.
const CP437_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐', //
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧', //
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀', //
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩', //
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u{00A0}',
];

/// Code page 858 (850 with the euro sign at 0xD5), bytes 0x80..=0xFF.
const CP858_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', 'ø', '£', 'Ø', '×', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '®', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', 'Á', 'Â', 'À', '©', '╣', '║', '╗', '╝', '¢', '¥', '┐', //
    '└', '┴', '┬', '├', '─', '┼', 'ã', 'Ã', '╚', '╔', '╩', '╦', '╠', '═', '╬', '¤', //
    'ð', 'Ð', 'Ê', 'Ë', 'È', '€', 'Í', 'Î', 'Ï', '┘', '┌', '█', '▄', '¦', 'Ì', '▀', //
    'Ó', 'ß', 'Ô', 'Ò', 'õ', 'Õ', 'µ', 'þ', 'Þ', 'Ú', 'Û', 'Ù', 'ý', 'Ý', '¯', '´', //
    '\u{00AD}', '±', '‗', '¾', '¶', '§', '÷', '¸', '°', '¨', '·', '¹', '³', '²', '■', '\u{00A0}',
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_pages_round_trip() {
        for page in [0u8, 19] {
            let enc = if page == 0 {
                TextEncoding::Cp437
            } else {
                TextEncoding::Cp858
            };
            for b in 0x20u8..=0xFE {
                if b == 0x7F || (page == 19 && b == 0xF0) {
                    continue;
                }
                let c = decode_code_page(page, b);
                assert_eq!(
                    enc.encode(&c.to_string()),
                    vec![b],
                    "page {page} byte {b:#x}"
                );
            }
        }
    }

    #[test]
    fn known_bytes() {
        assert_eq!(TextEncoding::Cp858.encode("€-é"), vec![0xD5, b'-', 0x82]);
        assert_eq!(TextEncoding::Cp437.encode("€"), b"?".to_vec());
        assert_eq!(TextEncoding::Cp858.encode("Ò"), vec![0xE3]);
        assert_eq!(TextEncoding::Cp858.encode("Ô"), vec![0xE2]);
        assert_eq!(
            TextEncoding::Gb18030.encode("咖啡"),
            vec![0xBF, 0xA7, 0xB7, 0xC8]
        );
        assert_eq!(TextEncoding::Gb18030.encode("\u{1b}"), b"?".to_vec());
        assert_eq!(TextEncoding::Ascii.encode("a\u{7f}\u{0}"), b"a??".to_vec());
        assert_eq!(decode_gb18030(&[0xBF, 0xA7]), Some('咖'));
    }

    #[test]
    fn gb18030_rejects_four_byte_and_private_use() {
        assert!(!TextEncoding::Gb18030.can_print('😀'));
        assert!(!TextEncoding::Gb18030.can_print('\u{E000}'));
        assert!(TextEncoding::Gb18030.can_print('€'));
        assert!(TextEncoding::Gb18030.can_print('é'));
    }
}
