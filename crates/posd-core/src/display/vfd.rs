//! The 2×20 customer display (VFD) as bytes.
//!
//! Pole displays on POS boxes speak the ESC/POS customer-display command set (CD5220 and
//! compatibles): clear, home, move cursor, then plain characters. This module turns a
//! two-line frame into those bytes, fitting each line to 20 columns in ASCII (the displays'
//! code pages differ, so accents are folded and anything else becomes `?`), and decides what
//! the customer sees for each UI event: the amount, the prompt, the result and the reason of a
//! refusal. Pure.

use super::UiEvent;

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

fn right(s: &str) -> String {
    format!("{s:>width$}", width = COLS)
}

/// What the customer sees for a UI event.
pub fn frame_for(ev: &UiEvent) -> VfdFrame {
    match ev {
        UiEvent::AwaitingCode { amount } => VfdFrame::new(
            format!("TOTAL{}", right(amount).get(5..).unwrap_or(amount)),
            "Show your pay code",
        ),
        UiEvent::Processing { .. } => VfdFrame::new("Processing...", "Please wait"),
        UiEvent::CustomerConfirming { .. } => VfdFrame::new("Please confirm", "on your phone"),
        UiEvent::ShowQr { amount, .. } => VfdFrame::new(
            format!("TOTAL{}", right(amount).get(5..).unwrap_or(amount)),
            "Scan the QR to pay",
        ),
        UiEvent::Result { text, approved, .. } => {
            if *approved {
                VfdFrame::new("THANK YOU", text.clone())
            } else {
                let (a, b) = wrap2(text);
                if b.is_empty() {
                    VfdFrame::new("NOT PAID", a)
                } else {
                    VfdFrame::new(a, b)
                }
            }
        }
        UiEvent::Printer { text, .. } | UiEvent::Alert { text, .. } => {
            let (a, b) = wrap2(text);
            VfdFrame::new(a, b)
        }
        UiEvent::Recovered { .. } => VfdFrame::new(
            super::notices::RECOVERED_CUSTOMER.0,
            super::notices::RECOVERED_CUSTOMER.1,
        ),
        UiEvent::Notice { text } => match text.split_once('\n') {
            Some((a, b)) => VfdFrame::new(a, b),
            None => {
                let (a, b) = wrap2(text);
                VfdFrame::new(a, b)
            }
        },
    }
}
