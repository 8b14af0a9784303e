//! What the cashier and the customer see: the till's UI events and how each display shows
//! them (a console line, a 2x20 customer display frame, a QR in half blocks), in the shop's
//! language (`*_in` functions; the catalogue is [`crate::i18n`]).
//!
//! Pure: the shells (the console task, the VFD thread) only move these texts and bytes.

pub mod notices;
pub mod vfd;

use crate::control::{PrinterHealth, PrinterState};
use crate::i18n::{text, tr, Language, Msg};
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
/// how many jobs wait. Also the printer's entry in the status document's `devices` (English).
pub fn printer_text(h: &PrinterHealth) -> String {
    printer_text_in(h, Language::En)
}

/// [`printer_text`] in the shop's language.
pub fn printer_text_in(h: &PrinterHealth, lang: Language) -> String {
    let t = |m| text(lang, m);
    let near_end = if h.paper_near_end {
        t(Msg::PrinterNearEndSuffix)
    } else {
        ""
    };
    let detail = h
        .detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    let mut out = match h.state {
        PrinterState::Unknown => t(Msg::PrinterNotChecked).to_string(),
        PrinterState::Ok => format!("{}{near_end}", t(Msg::PrinterOk)),
        PrinterState::PaperNearEnd => t(Msg::PrinterPaperNearEnd).to_string(),
        PrinterState::Printing => format!("{}{near_end}", t(Msg::PrinterPrinting)),
        PrinterState::PaperOut => t(Msg::PrinterPaperOut).to_string(),
        PrinterState::CoverOpen => t(Msg::PrinterCoverOpen).to_string(),
        PrinterState::Offline => t(Msg::PrinterOffline).to_string(),
        PrinterState::Error => t(Msg::PrinterError).to_string(),
        PrinterState::NotAnswering => tr(lang, Msg::PrinterNotAnswering, &[("detail", &detail)]),
        PrinterState::Unreachable => tr(lang, Msg::PrinterUnreachable, &[("detail", &detail)]),
        PrinterState::Unchecked => format!("{}{near_end}", t(Msg::PrinterUnchecked)),
    };
    if h.state.is_fault() && h.waiting > 0 {
        // How long they wait, when the queue says: after that they are given up, not printed.
        let (n, hours) = (&h.waiting, &h.job_max_age_h);
        out.push_str(&match (h.waiting, h.job_max_age_h) {
            (1, 0) => t(Msg::PrinterOneJobWaits).to_string(),
            (_, 0) => tr(lang, Msg::PrinterJobsWait, &[("n", n)]),
            (1, _) => tr(lang, Msg::PrinterOneJobWaitsFor, &[("h", hours)]),
            _ => tr(lang, Msg::PrinterJobsWaitFor, &[("n", n), ("h", hours)]),
        });
    }
    out
}

/// One clean console line (or two, for a keypad screen) per UI event, in English.
pub fn console_text(ev: &UiEvent) -> String {
    console_text_in(ev, Language::En)
}

/// [`console_text`] in the shop's language (the texts inside events are already in it).
pub fn console_text_in(ev: &UiEvent, lang: Language) -> String {
    match ev {
        UiEvent::AwaitingCode { amount } => {
            format!(
                "[till] {}",
                tr(lang, Msg::ConsoleScanCode, &[("amount", amount)])
            )
        }
        UiEvent::Processing { txn_id, what } => format!("[till] {txn_id}: {what}…"),
        UiEvent::CustomerConfirming { txn_id } => {
            format!("[till] {txn_id}: {}", text(lang, Msg::ConsoleConfirming))
        }
        UiEvent::Result { txn_id, text, .. } => format!("[till] {txn_id}: {text}"),
        UiEvent::ShowQr { txn_id, qr, amount } => {
            let blocks = qr_half_blocks(qr, true).unwrap_or_default();
            let say = tr(lang, Msg::ConsoleShowQr, &[("amount", amount)]);
            format!("[till] {txn_id}: {say}\n{blocks}[till] {qr}")
        }
        UiEvent::Notice { text } => match text.split_once('\n') {
            Some((a, b)) if b.trim().is_empty() => format!("[till] {a}"),
            Some((a, b)) => format!("[till] {a} | {b}"),
            None => format!("[till] {text}"),
        },
        UiEvent::Printer { text: t, .. } => {
            format!("[till] {}: {t}", text(lang, Msg::ConsolePrinter))
        }
        UiEvent::Recovered {
            txn_id,
            short_ref,
            amount,
        } => format!(
            "[till] {txn_id}: {}",
            notices::recovered_sale(lang, short_ref, amount)
        ),
        UiEvent::Alert { text: t, .. } => format!("[till] {t}"),
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
    fn console_and_printer_texts_speak_the_shop_language() {
        let ev = UiEvent::AwaitingCode {
            amount: "8.80 CNY".into(),
        };
        assert_eq!(
            console_text(&ev),
            "[till] 8.80 CNY — scan the customer's code"
        );
        assert_eq!(
            console_text_in(&ev, Language::ZhCn),
            "[till] 8.80 CNY — 请扫描顾客付款码"
        );
        let h = PrinterHealth {
            state: PrinterState::PaperOut,
            waiting: 2,
            ..PrinterHealth::default()
        };
        assert_eq!(
            printer_text_in(&h, Language::Es),
            "sin papel — ponga un rollo nuevo; 2 trabajos esperan y se imprimirán solos"
        );
        let ev = UiEvent::Printer {
            text: printer_text_in(&h, Language::ZhCn),
            ok: false,
        };
        assert!(console_text_in(&ev, Language::ZhCn).starts_with("[till] 打印机: 缺纸"));
    }

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

    #[test]
    fn waiting_jobs_say_how_long_they_wait_when_the_queue_says() {
        let h = PrinterHealth {
            state: PrinterState::PaperOut,
            waiting: 2,
            job_max_age_h: 24,
            ..PrinterHealth::default()
        };
        assert_eq!(
            printer_text(&h),
            "paper out — load a new roll; 2 jobs wait and print by themselves if the printer is back within 24 h"
        );
        assert!(printer_text_in(&h, Language::Es).ends_with(
            "2 trabajos esperan y se imprimirán solos si la impresora vuelve antes de 24 h"
        ));
        assert!(printer_text_in(&h, Language::ZhCn)
            .ends_with("2 个打印任务等待中, 24 小时内恢复则自动打印"));
        let one = PrinterHealth {
            state: PrinterState::CoverOpen,
            waiting: 1,
            job_max_age_h: 6,
            ..PrinterHealth::default()
        };
        assert_eq!(
            printer_text(&one),
            "cover open — close the cover; 1 job waits and prints by itself if the printer is back within 6 h"
        );
        // Nothing waits: nothing said, whatever the age.
        let none = PrinterHealth { waiting: 0, ..one };
        assert_eq!(printer_text(&none), "cover open — close the cover");
    }
}
