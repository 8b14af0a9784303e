//! What the cashier and the customer see: the till's UI events and how each display shows
//! them (a console line, a 2x20 customer display frame, a QR in half blocks).
//!
//! Pure: the shells (the console task, the VFD thread) only move these texts and bytes.

pub mod notices;
pub mod vfd;

use crate::control::{PrinterHealth, PrinterState};
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
    /// The receipt printer changed state (for the cashier, not the customer).
    Printer {
        text: String,
        ok: bool,
    },
    /// A sale left in flight by the last run (crash, power cut) is being resolved: the
    /// cashier waits for its outcome instead of selling again (issue 15).
    Recovered {
        txn_id: String,
        short_ref: String,
        amount: String,
    },
    /// Something the cashier must know changed (`notices::alerts`, a receipt printed after a
    /// fault); for the cashier, not the customer.
    Alert {
        /// What changed, for the console.
        text: String,
        /// Every alert in force now (the keypad's idle screen shows the first).
        current: Vec<String>,
    },
}

impl UiEvent {
    /// Whether the customer display shows it (printer trouble is the cashier's business).
    pub fn for_customer(&self) -> bool {
        !matches!(self, UiEvent::Printer { .. } | UiEvent::Alert { .. })
    }
}

/// What the cashier reads about the printer (after "printer: "): its state and the fix, and
/// how many jobs wait. Also the printer's entry in the status document's `devices`.
pub fn printer_text(h: &PrinterHealth) -> String {
    let near_end = if h.paper_near_end {
        " — paper near its end: have a new roll ready"
    } else {
        ""
    };
    let detail = h
        .detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    let mut text = match h.state {
        PrinterState::Unknown => "not checked yet".to_string(),
        PrinterState::Ok => format!("ok{near_end}"),
        PrinterState::PaperNearEnd => {
            "paper near its end — have a new roll ready (printing goes on)".to_string()
        }
        PrinterState::Printing => format!("printing{near_end}"),
        PrinterState::PaperOut => "paper out — load a new roll".to_string(),
        PrinterState::CoverOpen => "cover open — close the cover".to_string(),
        PrinterState::Offline => {
            "offline — check the paper and the cover, or press its feed button once".to_string()
        }
        PrinterState::Error => {
            "error (cutter, head temperature or mechanism) — switch it off and on".to_string()
        }
        PrinterState::NotAnswering => {
            format!("not answering — check its power and cable{detail}")
        }
        PrinterState::Unreachable => {
            format!("unreachable — check its power, cable and address{detail}")
        }
        PrinterState::Unchecked => {
            format!("gives no status — printing without checks{near_end}")
        }
    };
    if h.state.is_fault() && h.waiting > 0 {
        if h.waiting == 1 {
            text.push_str("; 1 job waits and prints by itself");
        } else {
            text.push_str(&format!(
                "; {} jobs wait and print by themselves",
                h.waiting
            ));
        }
    }
    text
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
        UiEvent::Printer { text, .. } => format!("[till] printer: {text}"),
        UiEvent::Recovered {
            txn_id,
            short_ref,
            amount,
        } => format!(
            "[till] {txn_id}: {}",
            notices::recovered_sale(short_ref, amount)
        ),
        UiEvent::Alert { text, .. } => format!("[till] {text}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_faults_name_the_fix_and_the_waiting_jobs() {
        let h = PrinterHealth {
            state: PrinterState::PaperOut,
            waiting: 2,
            ..PrinterHealth::default()
        };
        let t = printer_text(&h);
        assert_eq!(
            t,
            "paper out — load a new roll; 2 jobs wait and print by themselves"
        );
        let ev = UiEvent::Printer { text: t, ok: false };
        assert!(!ev.for_customer());
        assert!(console_text(&ev).starts_with("[till] printer: paper out"));
        let near = PrinterHealth {
            state: PrinterState::PaperNearEnd,
            paper_near_end: true,
            ..PrinterHealth::default()
        };
        assert!(printer_text(&near).contains("paper near its end"));
        let gone = PrinterHealth {
            state: PrinterState::Unreachable,
            detail: Some("127.0.0.1:9: connection refused".into()),
            waiting: 1,
            ..PrinterHealth::default()
        };
        let t = printer_text(&gone);
        assert!(
            t.contains("unreachable") && t.contains("connection refused"),
            "{t}"
        );
        assert!(t.ends_with("1 job waits and prints by itself"), "{t}");
    }
}
