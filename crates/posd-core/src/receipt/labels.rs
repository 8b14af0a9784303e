//! Every word posd prints on paper — receipts, pay slips, the Z report — gathered per language
//! from the message catalogue ([`crate::i18n`]), so the layout asks one table for its words and
//! never spells one itself; the channel keys the journal keeps (`wechat`, `visa`, `emv_mpm`, ...)
//! become names people know here too. [`for_printer`] decides which language a printer can print
//! (Chinese only in the printer's Chinese mode); a character a printer lacks gets an ASCII
//! stand-in from `layout::printable` (the em dash prints as `-` in code page 858, `Ó` as `O` in
//! code page 437).

use super::charset::TextEncoding;
use super::kinds::{CopyKind, PayMethod, ReceiptKind, ReceiptStatus};
use super::model::PrinterModel;
use crate::i18n::{text, Language, Msg};

/// The words of one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// Whose words these are.
    pub language: Language,
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
    pub z_carried: &'static str,
    /// `{n}`.
    pub z_carried_more: &'static str,
    pub z_carried_in: &'static str,
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
pub const EN: Labels = Labels::of(Language::En);
/// 简体中文.
pub const ZH_CN: Labels = Labels::of(Language::ZhCn);
/// Español.
pub const ES: Labels = Labels::of(Language::Es);

/// The words of `lang` (English for any language a printer cannot print: see [`for_printer`]).
pub const fn labels_in(lang: Language) -> &'static Labels {
    match lang {
        Language::En => &EN,
        Language::ZhCn => &ZH_CN,
        Language::Es => &ES,
    }
}

/// The language a printer with character set `enc` prints `lang` in: Chinese needs the
/// printer's Chinese mode (`gb18030`), and a model known to have no Chinese mode gets English
/// labels rather than `?`. Spanish prints everywhere (accents fold to ASCII on `ascii`).
pub fn for_printer(lang: Language, enc: TextEncoding, model: PrinterModel) -> Language {
    match lang {
        Language::ZhCn
            if enc != TextEncoding::Gb18030 || model.spec().chinese_mode == Some(false) =>
        {
            Language::En
        }
        other => other,
    }
}

/// The English words (what code outside a layout, without a shop language, prints).
pub fn labels() -> &'static Labels {
    &EN
}

impl Labels {
    /// The catalogue's words for `lang`, gathered for the layout.
    pub const fn of(lang: Language) -> Labels {
        Labels {
            language: lang,
            title_sale: text(lang, Msg::TitleSale),
            title_refund: text(lang, Msg::TitleRefund),
            title_void: text(lang, Msg::TitleVoid),
            title_reversal: text(lang, Msg::TitleReversal),
            reprint: text(lang, Msg::Reprint),
            reprint_printer_fault: text(lang, Msg::ReprintPrinterFault),
            date: text(lang, Msg::Date),
            terminal: text(lang, Msg::Terminal),
            txn_ref: text(lang, Msg::TxnRef),
            original: text(lang, Msg::Original),
            method: text(lang, Msg::Method),
            channel: text(lang, Msg::Channel),
            code: text(lang, Msg::Code),
            card: text(lang, Msg::Card),
            total: text(lang, Msg::Total),
            tax_id: text(lang, Msg::TaxId),
            ref_unavailable: text(lang, Msg::RefUnavailable),
            status_approved: text(lang, Msg::StatusApproved),
            status_approved_offline: text(lang, Msg::StatusApprovedOffline),
            status_settled: text(lang, Msg::StatusSettled),
            status_declined: text(lang, Msg::StatusDeclined),
            status_reversed: text(lang, Msg::StatusReversed),
            status_refund: text(lang, Msg::StatusRefund),
            status_void: text(lang, Msg::StatusVoid),
            status_voided: text(lang, Msg::StatusVoided),
            status_rejected: text(lang, Msg::StatusRejected),
            status_not_paid: text(lang, Msg::StatusNotPaid),
            status_refused: text(lang, Msg::StatusRefused),
            method_payment_code: text(lang, Msg::MethodPaymentCode),
            method_offline_code: text(lang, Msg::MethodOfflineCode),
            method_merchant_code: text(lang, Msg::MethodMerchantCode),
            method_card: text(lang, Msg::MethodCard),
            copy_merchant: text(lang, Msg::CopyMerchant),
            copy_customer: text(lang, Msg::CopyCustomer),
            pay_slip_title: text(lang, Msg::PaySlipTitle),
            pay_slip_not_a_receipt: text(lang, Msg::PaySlipNotAReceipt),
            z_title: text(lang, Msg::ZTitle),
            z_batch: text(lang, Msg::ZBatch),
            z_business_day: text(lang, Msg::ZBusinessDay),
            z_carried: text(lang, Msg::ZCarried),
            z_carried_more: text(lang, Msg::ZCarriedMore),
            z_carried_in: text(lang, Msg::ZCarriedIn),
            z_from: text(lang, Msg::ZFrom),
            z_to: text(lang, Msg::ZTo),
            z_printed: text(lang, Msg::ZPrinted),
            z_empty: text(lang, Msg::ZEmpty),
            z_sales: text(lang, Msg::ZSales),
            z_refunds: text(lang, Msg::ZRefunds),
            z_voids: text(lang, Msg::ZVoids),
            z_net: text(lang, Msg::ZNet),
            z_approved_offline: text(lang, Msg::ZApprovedOffline),
            z_settled: text(lang, Msg::ZSettled),
            z_voided: text(lang, Msg::ZVoided),
            z_rejected: text(lang, Msg::ZRejected),
            note_host_ref: text(lang, Msg::NoteHostRef),
        }
    }

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
        let m = match key.trim().to_ascii_lowercase().as_str() {
            "" | "p1" | "card" | "none" => return None,
            // Keys, and the English names receipts stored before the keys existed.
            "wechat" | "wechat pay" => Msg::ChannelWechat,
            "alipay" => Msg::ChannelAlipay,
            "unionpay" => Msg::ChannelUnionpay,
            "emv_cpm" | "emv_mpm" | "emv qr" => Msg::ChannelEmvQr,
            "platform" | "payment platform qr" => Msg::ChannelPlatform,
            "visa" => Msg::ChannelVisa,
            "mastercard" => Msg::ChannelMastercard,
            "amex" | "american express" => Msg::ChannelAmex,
            "jcb" => Msg::ChannelJcb,
            "discover" => Msg::ChannelDiscover,
            _ => return Some(Cow::Borrowed(key)),
        };
        let name = text(self.language, m);
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
