//! What the cashier and the customer see: the till's UI events and how each display shows
//! them (a console line, a 2x20 customer display frame, a QR in half blocks).
//!
//! Pure: the shells (the console task, the VFD thread) only move these texts and bytes.

pub mod vfd;

use serde::Serialize;

/// What the cashier and customer should see (console, customer display).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "ui", rename_all = "snake_case")]
pub enum UiEvent {
    AwaitingCode {
        amount: String,
    },
    Processing {
        txn_id: String,
        what: String,
    },
    CustomerConfirming {
        txn_id: String,
    },
    Result {
        txn_id: String,
        text: String,
        approved: bool,
    },
    Notice {
        text: String,
    },
    /// A merchant-presented code for the customer to scan.
    ShowQr {
        txn_id: String,
        qr: String,
        amount: String,
    },
}

/// One clean console line (or two, for a keypad screen) per UI event.
pub fn console_text(ev: &UiEvent) -> String {
    match ev {
        UiEvent::AwaitingCode { amount } => format!("[till] {amount} — scan the customer's code"),
        UiEvent::Processing { txn_id, what } => format!("[till] {txn_id}: {what}…"),
        UiEvent::CustomerConfirming { txn_id } => {
            format!("[till] {txn_id}: customer is confirming on the phone…")
        }
        UiEvent::Result { txn_id, text, .. } => format!("[till] {txn_id}: {text}"),
        UiEvent::ShowQr { txn_id, qr, amount } => {
            let blocks = qr_half_blocks(qr, true).unwrap_or_default();
            format!(
                "[till] {txn_id}: {amount} — the customer scans this code:\n{blocks}[till] {qr}"
            )
        }
        UiEvent::Notice { text } => match text.split_once('\n') {
            Some((a, b)) if b.trim().is_empty() => format!("[till] {a}"),
            Some((a, b)) => format!("[till] {a} | {b}"),
            None => format!("[till] {text}"),
        },
    }
}

/// A QR code for `payload` in half blocks (`▀ ▄ █`), with a 4-module quiet zone. `invert`
/// draws light modules as blocks — right for light-on-dark terminals, where the blocks are the
/// bright colour.
pub fn qr_half_blocks(payload: &str, invert: bool) -> Result<String, qrcode::types::QrError> {
    let code = qrcode::QrCode::new(payload.as_bytes())?;
    let w = code.width();
    let colors = code.to_colors();
    const QUIET: usize = 4;
    let size = w + 2 * QUIET;
    let dark = |x: usize, y: usize| -> bool {
        let d = if x < QUIET || y < QUIET || x >= w + QUIET || y >= w + QUIET {
            false
        } else {
            colors
                .get((y - QUIET) * w + (x - QUIET))
                .is_some_and(|c| *c == qrcode::Color::Dark)
        };
        d != invert
    };
    let mut out = String::new();
    for y in (0..size).step_by(2) {
        for x in 0..size {
            let top = dark(x, y);
            let bottom = y + 1 < size && dark(x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}
