//! What the cashier is told that matters (issue 15 items 3–5), every sentence in one place: a
//! code already in flight, a sale recovered after a restart, a receipt waiting for the printer,
//! sales waiting to sync, an untrusted clock. Every word from the catalogue ([`crate::i18n`]) in the language given,
//! said once, with the fix; machine codes (`Alert::code`) stay English.
//!
//! Pure: [`alerts`] turns counters and states the shell already keeps into [`Alert`]s.

use crate::control::{Alert, PrinterHealth, PrinterState};
use crate::i18n::{text, tr, Language, Msg};
use crate::txn::TxnState;

/// A code or card that already pays a transaction in flight here (the state is its machine
/// name, as `posctl current` shows it).
pub fn code_in_flight(
    lang: Language,
    short_ref: &str,
    txn_id: &str,
    amount: &str,
    state: TxnState,
) -> String {
    tr(
        lang,
        Msg::NoticeCodeInFlight,
        &[
            ("ref", &short_ref),
            ("amount", &amount),
            ("state", &state.as_str()),
            ("txn", &txn_id),
        ],
    )
}

/// A sale left in flight by a crash or power cut, resumed at start-up.
pub fn recovered_sale(lang: Language, short_ref: &str, amount: &str) -> String {
    tr(
        lang,
        Msg::NoticeRecoveredSale,
        &[("ref", &short_ref), ("amount", &amount)],
    )
}

/// The customer display while a recovered sale is resolved (2×20).
pub fn recovered_customer(lang: Language) -> (&'static str, &'static str) {
    (
        text(lang, Msg::VfdPaymentInProgress),
        text(lang, Msg::VfdPleaseWait),
    )
}

/// The keypad's two lines for a recovered sale.
pub fn recovered_keypad(lang: Language, short_ref: &str) -> (String, String) {
    (
        tr(lang, Msg::KeyRecovered, &[("ref", &short_ref)]),
        text(lang, Msg::KeyWaitResult).into(),
    )
}

/// A refusal as the cashier reads it on the console.
pub fn refused(lang: Language, reason: &str) -> String {
    tr(lang, Msg::NoticeRefused, &[("reason", &reason)])
}

/// The printer fault in two or three words (after "receipt waiting: ").
pub fn printer_fault_short(lang: Language, state: PrinterState) -> Option<&'static str> {
    let m = match state {
        PrinterState::PaperOut => Msg::FaultPaperOut,
        PrinterState::CoverOpen => Msg::FaultCoverOpen,
        PrinterState::Offline => Msg::FaultPrinterOffline,
        PrinterState::Error => Msg::FaultPrinterError,
        PrinterState::NotAnswering => Msg::FaultNotAnswering,
        PrinterState::Unreachable => Msg::FaultUnreachable,
        _ => return None,
    };
    Some(text(lang, m))
}

/// "receipt waiting: paper out" while the printer cannot print a receipt the sale earned.
pub fn receipt_waiting(lang: Language, state: PrinterState) -> Option<String> {
    printer_fault_short(lang, state).map(|f| tr(lang, Msg::AlertReceiptWaiting, &[("fault", &f)]))
}

/// While the link is down: how many sales the host has not seen yet.
pub fn offline_to_sync(lang: Language, sales: u64) -> String {
    match sales {
        0 => text(lang, Msg::AlertOfflineNone).to_string(),
        1 => text(lang, Msg::AlertOfflineOne).to_string(),
        n => tr(lang, Msg::AlertOfflineMany, &[("n", &n)]),
    }
}

/// Offline codes are configured but the clock is not trusted.
pub fn clock_not_trusted(lang: Language) -> &'static str {
    text(lang, Msg::AlertClockUntrusted)
}

/// Said once when an alert ends (`alert.code`).
pub fn alert_ended(lang: Language, code: &str) -> Option<&'static str> {
    let m = match code {
        "receipt_waiting" => Msg::AlertReceiptPrinted,
        "offline" => Msg::AlertOnlineAgain,
        "clock_untrusted" => Msg::AlertClockTrusted,
        _ => return None,
    };
    Some(text(lang, m))
}

/// What the alerts are made of: counters and states the shell already keeps (no scans).
#[derive(Debug, Clone, Default)]
pub struct AlertInputs<'a> {
    pub online: bool,
    /// Sales not yet acknowledged by the host: offline (P1) sales from the running counter.
    pub unsynced_sales: u64,
    pub printer: Option<&'a PrinterHealth>,
    /// Offline codes are configured (in the configuration in force) but the clock is not
    /// trusted.
    pub offline_codes_blocked_by_clock: bool,
    /// The words' language (the codes stay English).
    pub language: Language,
}

/// What the cashier must know now, most urgent first.
pub fn alerts(i: &AlertInputs<'_>) -> Vec<Alert> {
    let lang = i.language;
    let mut out = Vec::new();
    if let Some(h) = i.printer {
        if h.waiting > 0 {
            if let Some(text) = receipt_waiting(lang, h.state) {
                out.push(Alert {
                    code: "receipt_waiting".into(),
                    text,
                });
            }
        }
    }
    if !i.online {
        out.push(Alert {
            code: "offline".into(),
            text: offline_to_sync(lang, i.unsynced_sales),
        });
    }
    if i.offline_codes_blocked_by_clock {
        out.push(Alert {
            code: "clock_untrusted".into(),
            text: clock_not_trusted(lang).into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_say_what_matters_and_nothing_when_all_is_well() {
        assert!(alerts(&AlertInputs {
            online: true,
            ..AlertInputs::default()
        })
        .is_empty());
        let paper_out = PrinterHealth {
            state: PrinterState::PaperOut,
            waiting: 1,
            ..PrinterHealth::default()
        };
        let a = alerts(&AlertInputs {
            online: false,
            unsynced_sales: 3,
            printer: Some(&paper_out),
            offline_codes_blocked_by_clock: true,
            language: Language::En,
        });
        let texts: Vec<&str> = a.iter().map(|a| a.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "receipt waiting: paper out",
                "offline: 3 sales to sync",
                clock_not_trusted(Language::En)
            ]
        );
        let codes: Vec<&str> = a.iter().map(|a| a.code.as_str()).collect();
        assert_eq!(codes, ["receipt_waiting", "offline", "clock_untrusted"]);
        // Paper out with nothing to print is the printer's status, not a waiting receipt.
        let idle_out = PrinterHealth {
            waiting: 0,
            ..paper_out.clone()
        };
        assert!(alerts(&AlertInputs {
            online: true,
            printer: Some(&idle_out),
            ..AlertInputs::default()
        })
        .is_empty());
        assert_eq!(offline_to_sync(Language::En, 1), "offline: 1 sale to sync");
        // The same alerts in Chinese and Spanish: the codes stay, the words change.
        let zh = alerts(&AlertInputs {
            online: false,
            unsynced_sales: 3,
            printer: Some(&paper_out),
            offline_codes_blocked_by_clock: true,
            language: Language::ZhCn,
        });
        let texts: Vec<&str> = zh.iter().map(|a| a.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "小票待打印: 缺纸",
                "离线: 3 笔交易待同步",
                clock_not_trusted(Language::ZhCn)
            ]
        );
        assert_eq!(
            zh.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(),
            codes
        );
        assert_eq!(
            offline_to_sync(Language::Es, 2),
            "sin conexión: 2 ventas por sincronizar"
        );
        assert_eq!(
            alert_ended(Language::Es, "offline"),
            Some("conectado de nuevo: las ventas se están sincronizando")
        );
    }

    #[test]
    fn a_code_in_flight_names_its_sale() {
        let t = code_in_flight(
            Language::En,
            "0123456789ab",
            "019a-…",
            "12.34 CNY",
            TxnState::Pending,
        );
        assert!(t.contains("0123456789ab") && t.contains("12.34 CNY") && t.contains("pending"));
        assert!(t.contains("do not take it again"));
        let t = code_in_flight(
            Language::ZhCn,
            "0123456789ab",
            "019a-…",
            "12.34 CNY",
            TxnState::Pending,
        );
        assert!(
            t.contains("0123456789ab") && t.contains("不要再次收款"),
            "{t}"
        );
    }
}
