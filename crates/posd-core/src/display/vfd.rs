//! The 2×20 customer display (VFD) as bytes.
//!
//! Pole displays on POS boxes speak the ESC/POS customer-display command set (CD5220 and
//! compatibles): clear, home, move cursor, then plain characters. This module turns a
//! two-line frame into those bytes, fitting each line to 20 columns in ASCII (the displays'
//! code pages differ, so accents are folded and anything else becomes `?`), and decides what
//! the customer sees for each UI event: the amount, the prompt, the result and the reason of a
//! refusal, in the shop's language where the display can show it (see [`frame_for_in`]). Pure.

use super::UiEvent;
use crate::i18n::{text, Language, Msg};

pub const COLS: usize = 20;
/// Clear the display (FF).
pub const CLEAR: u8 = 0x0C;
/// Cursor to the top-left (HOME in the CD5220 set).
pub const HOME: u8 = 0x0B;
/// `US $ x y`: move the cursor to column x, row y (1-based).
pub const MOVE: [u8; 2] = [0x1F, 0x24];
/// `ESC @`: initialise.
pub const INIT: [u8; 2] = [0x1B, 0x40];

/// What the two lines show.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VfdFrame {
    pub line1: String,
    pub line2: String,
}

impl VfdFrame {
    pub fn new(line1: impl Into<String>, line2: impl Into<String>) -> VfdFrame {
        VfdFrame {
            line1: line1.into(),
            line2: line2.into(),
        }
    }
}

fn fold(c: char) -> u8 {
    match c {
        ' '..='~' => c as u8,
        'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => b'a',
        'À' | 'Á' | 'Â' | 'Ä' | 'Ã' | 'Å' => b'A',
        'è' | 'é' | 'ê' | 'ë' => b'e',
        'È' | 'É' | 'Ê' | 'Ë' => b'E',
        'ì' | 'í' | 'î' | 'ï' => b'i',
        'Ì' | 'Í' | 'Î' | 'Ï' => b'I',
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' => b'o',
        'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Õ' => b'O',
        'ù' | 'ú' | 'û' | 'ü' => b'u',
        'Ù' | 'Ú' | 'Û' | 'Ü' => b'U',
        'ç' => b'c',
        'Ç' => b'C',
        'ñ' => b'n',
        'Ñ' => b'N',
        'ß' => b's',
        '—' | '–' => b'-',
        '…' => b'.',
        _ => b'?',
    }
}

/// One line as exactly 20 display bytes: folded to ASCII, truncated or padded with spaces.
pub fn fit(line: &str) -> [u8; COLS] {
    let mut out = [b' '; COLS];
    for (slot, c) in out.iter_mut().zip(line.chars().filter(|c| !c.is_control())) {
        *slot = fold(c);
    }
    out
}

/// The bytes that show `frame`: clear, home, line 1, cursor to row 2, line 2.
pub fn encode(frame: &VfdFrame) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 * COLS + 8);
    v.push(CLEAR);
    v.push(HOME);
    v.extend_from_slice(&fit(&frame.line1));
    v.extend_from_slice(&MOVE);
    v.extend_from_slice(&[1, 2]);
    v.extend_from_slice(&fit(&frame.line2));
    v
}

/// `text` on two lines of 20: split at the last space before column 20 when it does not fit.
pub fn wrap2(text: &str) -> (String, String) {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= COLS {
        return (text.to_string(), String::new());
    }
    let cut = chars
        .get(..=COLS)
        .and_then(|head| head.iter().rposition(|c| *c == ' '))
        .filter(|&i| i > 0)
        .unwrap_or(COLS);
    let a: String = chars.get(..cut).unwrap_or(&[]).iter().collect();
    let b: String = chars.get(cut..).unwrap_or(&[]).iter().collect();
    (a.trim_end().to_string(), b.trim_start().to_string())
}

/// What the customer sees for a UI event, in English.
pub fn frame_for(ev: &UiEvent) -> VfdFrame {
    frame_for_in(ev, Language::En)
}

/// Whether `s` shows on the display as written (every character folds to ASCII).
pub fn shows(s: &str) -> bool {
    s.chars()
        .all(|c| c == '?' || c.is_control() || fold(c) != b'?')
}

/// What the customer sees for a UI event in the shop's language. The display shows ASCII only:
/// Spanish loses its accents, and a language that does not fold to ASCII (Chinese) is shown in
/// English; a text from an event that cannot be shown is replaced by the catalogue's words for
/// the case (a refusal: "NOT PAID / Ask the cashier"), never by `?`.
pub fn frame_for_in(ev: &UiEvent, lang: Language) -> VfdFrame {
    let lang = if lang.folds_to_ascii() {
        lang
    } else {
        Language::En
    };
    let t = |m| text(lang, m);
    let total = |amount: &str| {
        let word = t(Msg::VfdTotal);
        let room = COLS.saturating_sub(word.chars().count());
        format!("{word}{amount:>room$}")
    };
    let shown = |s: &str| {
        if shows(s) {
            s.to_string()
        } else {
            String::new()
        }
    };
    match ev {
        UiEvent::AwaitingCode { amount } => VfdFrame::new(total(amount), t(Msg::VfdShowCode)),
        UiEvent::Processing { .. } => VfdFrame::new(t(Msg::VfdProcessing), t(Msg::VfdPleaseWait)),
        UiEvent::CustomerConfirming { .. } => {
            VfdFrame::new(t(Msg::VfdPleaseConfirm), t(Msg::VfdOnYourPhone))
        }
        UiEvent::ShowQr { amount, .. } => VfdFrame::new(total(amount), t(Msg::VfdScanQr)),
        UiEvent::Result { text, approved, .. } => {
            if *approved {
                let line2 = if shows(text) {
                    text.clone()
                } else {
                    t(Msg::ResultApproved).to_string()
                };
                VfdFrame::new(t(Msg::VfdThankYou), line2)
            } else if !shows(text) {
                VfdFrame::new(t(Msg::VfdNotPaid), t(Msg::VfdAskCashier))
            } else {
                let (a, b) = wrap2(text);
                if b.is_empty() {
                    VfdFrame::new(t(Msg::VfdNotPaid), a)
                } else {
                    VfdFrame::new(a, b)
                }
            }
        }
        UiEvent::Printer { text, .. } | UiEvent::Alert { text, .. } => {
            let (a, b) = wrap2(&shown(text));
            VfdFrame::new(a, b)
        }
        UiEvent::Recovered { .. } => {
            let (a, b) = super::notices::recovered_customer(lang);
            VfdFrame::new(a, b)
        }
        UiEvent::Notice { text } => match text.split_once('\n') {
            Some((a, b)) => VfdFrame::new(shown(a), shown(b)),
            None => {
                let (a, b) = wrap2(&shown(text));
                VfdFrame::new(a, b)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> UiEvent {
        UiEvent::Result {
            txn_id: "t".into(),
            text: text.into(),
            approved: false,
        }
    }

    #[test]
    fn spanish_is_shown_without_accents() {
        let f = frame_for_in(
            &UiEvent::AwaitingCode {
                amount: "12.50 CNY".into(),
            },
            Language::Es,
        );
        assert_eq!(f.line1, "TOTAL      12.50 CNY");
        assert_eq!(&fit(&f.line2), b"Muestre su codigo   ");
        let f = frame_for_in(&refused("Código caducado"), Language::Es);
        assert_eq!(f, VfdFrame::new("NO PAGADO", "Código caducado"));
        assert_eq!(&fit(&f.line2), b"Codigo caducado     ");
    }

    #[test]
    fn chinese_shows_english_words_never_question_marks() {
        let f = frame_for_in(&refused("付款码已过期"), Language::ZhCn);
        assert_eq!(f, VfdFrame::new("NOT PAID", "Ask the cashier"));
        let ok = UiEvent::Result {
            txn_id: "t".into(),
            text: "离线交易成功".into(),
            approved: true,
        };
        assert_eq!(
            frame_for_in(&ok, Language::ZhCn),
            VfdFrame::new("THANK YOU", "APPROVED")
        );
        let screen = UiEvent::Notice {
            text: "金额 CNY\n12.5".into(),
        };
        assert_eq!(
            frame_for_in(&screen, Language::ZhCn),
            VfdFrame::new("", "12.5")
        );
        // What English shows is unchanged.
        assert_eq!(
            frame_for(&refused("Code expired")),
            VfdFrame::new("NOT PAID", "Code expired")
        );
    }
}
