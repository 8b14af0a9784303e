//! Every word posd prints on paper — receipts, pay slips, the Z report — in one table, so that a
//! message catalogue (zh-CN, en, es) can replace it without touching the layout. Layout asks
//! [`labels()`] for its words and never spells one itself; the channel keys the journal keeps
//! (`wechat`, `visa`, `emv_mpm`, ...) become names people know here too.
//!
//! Pure data: English today. The texts are ASCII except where a printer that lacks a character
//! gets an ASCII stand-in from `layout::printable` (the em dash prints as `-` in code page 858).

use super::kinds::{CopyKind, PayMethod, ReceiptKind, ReceiptStatus};

/// The words of one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub title_sale: &'static str,
    pub title_refund: &'static str,
    pub title_void: &'static str,
    pub title_reversal: &'static str,
    /// Under the title of a reprint someone asked for.
    pub reprint: &'static str,
    /// Under the title of a job printed again because the printer may have cut it off.
    pub reprint_printer_fault: &'static str,

    pub date: &'static str,
    pub terminal: &'static str,
    pub txn_ref: &'static str,
    pub original: &'static str,
    pub method: &'static str,
    pub channel: &'static str,
    /// The masked payment code.
    pub code: &'static str,
    /// The masked card number.
    pub card: &'static str,
    pub total: &'static str,
    /// `Tax ID: {}` — the text before the shop's number.
    pub tax_id: &'static str,
    pub ref_unavailable: &'static str,

    pub status_approved: &'static str,
    pub status_approved_offline: &'static str,
    pub status_settled: &'static str,
    pub status_declined: &'static str,
    pub status_reversed: &'static str,
    pub status_refund: &'static str,
    pub status_void: &'static str,
    pub status_voided: &'static str,
    pub status_rejected: &'static str,
    pub status_not_paid: &'static str,
    pub status_refused: &'static str,

    pub method_payment_code: &'static str,
    pub method_offline_code: &'static str,
    pub method_merchant_code: &'static str,
    pub method_card: &'static str,

    pub copy_merchant: &'static str,
    pub copy_customer: &'static str,

    pub pay_slip_title: &'static str,
    pub pay_slip_not_a_receipt: &'static str,

    pub z_title: &'static str,
    pub z_batch: &'static str,
    pub z_business_day: &'static str,
    pub z_from: &'static str,
    pub z_to: &'static str,
    pub z_printed: &'static str,
    pub z_empty: &'static str,
    pub z_sales: &'static str,
    pub z_refunds: &'static str,
    pub z_voids: &'static str,
    pub z_net: &'static str,
    /// Z rows: offline sales the host has not settled yet.
    pub z_approved_offline: &'static str,
    /// Z rows: offline sales the host settled.
    pub z_settled: &'static str,
    /// Z rows: offline sales voided afterwards (their voids take them back under `VOID`).
    pub z_voided: &'static str,
    /// Z rows: offline sales the host refused at settlement (no money).
    pub z_rejected: &'static str,

    /// `Host ref {}`: the platform's reference, as a note.
    pub note_host_ref: &'static str,
}

/// English.
pub const EN: Labels = Labels {
    title_sale: "SALE",
    title_refund: "REFUND",
    title_void: "VOID",
    title_reversal: "REVERSAL",
    reprint: "*** REPRINT ***",
    reprint_printer_fault: "REPRINT — printer fault",

    date: "Date",
    terminal: "Terminal",
    txn_ref: "Txn ref",
    original: "Original",
    method: "Method",
    channel: "Channel",
    code: "Code",
    card: "Card",
    total: "TOTAL",
    tax_id: "Tax ID:",
    ref_unavailable: "(receipt reference unavailable)",

    status_approved: "APPROVED",
    status_approved_offline: "APPROVED OFFLINE",
    status_settled: "SETTLED",
    status_declined: "DECLINED",
    status_reversed: "REVERSED",
    status_refund: "REFUND",
    status_void: "VOID",
    status_voided: "VOIDED",
    status_rejected: "REJECTED",
    status_not_paid: "NOT PAID",
    status_refused: "REFUSED",

    method_payment_code: "Payment code",
    method_offline_code: "Offline code",
    method_merchant_code: "Merchant QR",
    method_card: "Card",

    copy_merchant: "MERCHANT COPY",
    copy_customer: "CUSTOMER COPY",

    pay_slip_title: "SCAN TO PAY",
    pay_slip_not_a_receipt: "This is not a receipt",

    z_title: "Z REPORT",
    z_batch: "Batch",
    z_business_day: "Business day",
    z_from: "From",
    z_to: "To",
    z_printed: "Printed",
    z_empty: "No transactions",
    z_sales: "Sales",
    z_refunds: "Refunds",
    z_voids: "Voids",
    z_net: "NET",
    z_approved_offline: "APPROVED, UNSETTLED",
    z_settled: "APPROVED, SETTLED",
    z_voided: "APPROVED, VOIDED",
    z_rejected: "REJECTED AT SETTLEMENT",

    note_host_ref: "Host ref",
};

/// The words in force.
pub fn labels() -> &'static Labels {
    &EN
}

impl Labels {
    pub fn kind_title(&self, k: ReceiptKind) -> &'static str {
        match k {
            ReceiptKind::Sale => self.title_sale,
            ReceiptKind::Refund => self.title_refund,
            ReceiptKind::Void => self.title_void,
            ReceiptKind::Reversal => self.title_reversal,
        }
    }

    /// The status in large letters on a receipt.
    pub fn status(&self, s: ReceiptStatus) -> &'static str {
        match s {
            ReceiptStatus::Approved => self.status_approved,
            ReceiptStatus::ApprovedOffline => self.status_approved_offline,
            ReceiptStatus::Settled => self.status_settled,
            ReceiptStatus::Declined => self.status_declined,
            ReceiptStatus::Reversed => self.status_reversed,
            ReceiptStatus::Refund => self.status_refund,
            ReceiptStatus::Void => self.status_void,
            ReceiptStatus::Voided => self.status_voided,
            ReceiptStatus::Rejected => self.status_rejected,
            ReceiptStatus::NotPaid => self.status_not_paid,
            ReceiptStatus::Refused => self.status_refused,
        }
    }

    /// A row of the Z report: offline sales say whether the host settled them.
    pub fn z_state(&self, s: ReceiptStatus) -> &'static str {
        match s {
            ReceiptStatus::ApprovedOffline => self.z_approved_offline,
            ReceiptStatus::Settled => self.z_settled,
            ReceiptStatus::Voided => self.z_voided,
            ReceiptStatus::Rejected => self.z_rejected,
            other => self.status(other),
        }
    }

    pub fn method(&self, m: PayMethod) -> &'static str {
        match m {
            PayMethod::PaymentCode => self.method_payment_code,
            PayMethod::OfflineCode => self.method_offline_code,
            PayMethod::MerchantCode => self.method_merchant_code,
            PayMethod::Card => self.method_card,
        }
    }

    pub fn copy(&self, c: CopyKind) -> &'static str {
        match c {
            CopyKind::Merchant => self.copy_merchant,
            CopyKind::Customer => self.copy_customer,
        }
    }

    /// The name people know for a channel the journal keeps as a key (`wechat`, `visa`,
    /// `emv_mpm`, ...); `None` when it adds nothing to the method (an offline `p1` code, a card
    /// of no known brand). Anything else is shown as given (receipts stored before these names
    /// existed already hold display names).
    pub fn channel_name<'a>(&self, key: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow;
        let name = match key.trim().to_ascii_lowercase().as_str() {
            "" | "p1" | "card" | "none" => return None,
            "wechat" => "WeChat Pay",
            "alipay" => "Alipay",
            "unionpay" => "UnionPay",
            "emv_cpm" | "emv_mpm" => "EMV QR",
            "platform" => "Payment platform QR",
            "visa" => "Visa",
            "mastercard" => "Mastercard",
            "amex" => "American Express",
            "jcb" => "JCB",
            "discover" => "Discover",
            _ => return Some(Cow::Borrowed(key)),
        };
        Some(Cow::Borrowed(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_get_names_people_know() {
        let l = labels();
        assert_eq!(l.channel_name("visa").as_deref(), Some("Visa"));
        assert_eq!(l.channel_name("emv_mpm").as_deref(), Some("EMV QR"));
        assert_eq!(l.channel_name("wechat").as_deref(), Some("WeChat Pay"));
        assert_eq!(l.channel_name("p1"), None);
        assert_eq!(l.channel_name(""), None);
        assert_eq!(l.channel_name("WeChat Pay").as_deref(), Some("WeChat Pay"));
    }

    #[test]
    fn z_rows_say_settled_and_voided() {
        let l = labels();
        let states = [
            ReceiptStatus::ApprovedOffline,
            ReceiptStatus::Settled,
            ReceiptStatus::Voided,
            ReceiptStatus::Rejected,
        ];
        let words: Vec<&str> = states.iter().map(|s| l.z_state(*s)).collect();
        let mut unique = words.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), words.len(), "{words:?}");
        assert!(l.z_state(ReceiptStatus::Settled).contains("SETTLED"));
        assert!(l.z_state(ReceiptStatus::Voided).contains("VOIDED"));
    }
}
