//! What the cashier is told that matters (issue 15 items 3–5), every sentence in one place so
//! the message catalogue can take them over: a code already in flight, a sale recovered after a
//! restart, a receipt waiting for the printer, sales waiting to sync, an untrusted clock, and
//! the keypad's menu. English, said once, with the fix; machine codes stay in `control`.
//!
//! Pure: [`alerts`] turns counters and states the shell already keeps into [`Alert`]s.

use crate::control::{Alert, PrinterHealth, PrinterState};
use crate::txn::TxnState;

/// A code or card that already pays a transaction in flight here.
pub fn code_in_flight(short_ref: &str, txn_id: &str, amount: &str, state: TxnState) -> String {
    format!(
        "this code already pays sale {short_ref} ({amount}, {}; txn {txn_id}): wait for its \
         result, do not take it again",
        state.as_str()
    )
}

/// A sale left in flight by a crash or power cut, resumed at start-up.
pub fn recovered_sale(short_ref: &str, amount: &str) -> String {
    format!(
        "sale {short_ref} of {amount} was interrupted by a restart: waiting for the host's \
         answer; do not sell it again"
    )
}

/// The customer display while a recovered sale is resolved (2×20).
pub const RECOVERED_CUSTOMER: (&str, &str) = ("Payment in progress", "Please wait");

/// The keypad's two lines for a recovered sale.
pub fn recovered_keypad(short_ref: &str) -> (String, String) {
    (format!("Recovered {short_ref}"), "Wait for result".into())
}

/// A refusal as the cashier reads it on the console.
pub fn refused(reason: &str) -> String {
    format!("refused: {reason}")
}

/// The printer fault in two or three words (after "receipt waiting: ").
pub fn printer_fault_short(state: PrinterState) -> Option<&'static str> {
    Some(match state {
        PrinterState::PaperOut => "paper out",
        PrinterState::CoverOpen => "cover open",
        PrinterState::Offline => "printer offline",
        PrinterState::Error => "printer error",
        PrinterState::NotAnswering => "printer not answering",
        PrinterState::Unreachable => "printer unreachable",
        _ => return None,
    })
}

/// "receipt waiting: paper out" while the printer cannot print a receipt the sale earned.
pub fn receipt_waiting(state: PrinterState) -> Option<String> {
    printer_fault_short(state).map(|f| format!("receipt waiting: {f}"))
}

/// Once the waiting receipts came out.
pub const RECEIPT_PRINTED: &str = "receipt printed: the waiting receipts are out";

/// While the link is down: how many sales the host has not seen yet.
pub fn offline_to_sync(sales: u64) -> String {
    match sales {
        0 => "offline: no sales to sync".to_string(),
        1 => "offline: 1 sale to sync".to_string(),
        n => format!("offline: {n} sales to sync"),
    }
}

pub const CLOCK_NOT_TRUSTED: &str =
    "clock not trusted: offline codes off (set the time, e.g. NTP, to take them again)";

/// Said once when an alert ends (`alert.code`).
pub fn alert_ended(code: &str) -> Option<&'static str> {
    Some(match code {
        "receipt_waiting" => RECEIPT_PRINTED,
        "offline" => "online again: the sales are syncing",
        "clock_untrusted" => "clock trusted again: offline codes on",
        _ => return None,
    })
}

/// What the alerts are made of: counters and states the shell already keeps (no scans).
#[derive(Debug, Clone, Default)]
pub struct AlertInputs<'a> {
    pub online: bool,
    /// Sales not yet acknowledged by the host: offline (P1) sales from the running counter.
    pub unsynced_sales: u64,
    pub printer: Option<&'a PrinterHealth>,
    /// Offline codes are configured but the clock is not trusted.
    pub offline_codes_blocked_by_clock: bool,
}

/// What the cashier must know now, most urgent first.
pub fn alerts(i: &AlertInputs<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    if let Some(h) = i.printer {
        if h.waiting > 0 {
            if let Some(text) = receipt_waiting(h.state) {
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
            text: offline_to_sync(i.unsynced_sales),
        });
    }
    if i.offline_codes_blocked_by_clock {
        out.push(Alert {
            code: "clock_untrusted".into(),
            text: CLOCK_NOT_TRUSTED.into(),
        });
    }
    out
}

/// The keypad's menu and its operations (issue 15 item 5).
pub mod keypad {
    /// The menu on a 2×20 display: 1 refund, 2 reprint, 3 batch close, 4 status, 5 void,
    /// 6 the last Z report again.
    pub const MENU_1: &str = "1 Refund 2 Reprint";
    pub const MENU_2: &str = "3Cls 4Stat 5Void 6Z";
    /// What the engine shows while a reprint or void waits for the receipt.
    pub const SCAN_FOR_REPRINT: &str = "Scan QR / Enter=last";
    pub const REFUND_AMOUNT: &str = "Refund amount";
    pub const REFUND_AMOUNT_HINT: &str = "Enter: all that is left";
    pub const SCAN_RECEIPT: &str = "Scan the receipt";
    pub const REPRINT_QUEUED: &str = "Reprint queued";
    pub const CANCELLED: &str = "Cancelled";
    pub const VOIDED: &str = "Voided";
    pub const NO_BATCH: &str = "No batch closed yet";
    pub const VOID: &str = "Void";
    pub const REPRINT: &str = "Reprint";
    pub const Z_AGAIN: &str = "Z report again";
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
        });
        let texts: Vec<&str> = a.iter().map(|a| a.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "receipt waiting: paper out",
                "offline: 3 sales to sync",
                CLOCK_NOT_TRUSTED
            ]
        );
        let codes: Vec<&str> = a.iter().map(|a| a.code.as_str()).collect();
        assert_eq!(codes, ["receipt_waiting", "offline", "clock_untrusted"]);
        // Paper out with nothing to print is the printer's status, not a waiting receipt.
        let idle_out = PrinterHealth {
            waiting: 0,
            ..paper_out
        };
        assert!(alerts(&AlertInputs {
            online: true,
            printer: Some(&idle_out),
            ..AlertInputs::default()
        })
        .is_empty());
        assert_eq!(offline_to_sync(1), "offline: 1 sale to sync");
    }

    #[test]
    fn a_code_in_flight_names_its_sale() {
        let t = code_in_flight("0123456789ab", "019a-…", "12.34 CNY", TxnState::Pending);
        assert!(t.contains("0123456789ab") && t.contains("12.34 CNY") && t.contains("pending"));
        assert!(t.contains("do not take it again"));
    }
}
