//! The message catalogue: every word a cashier, a customer or a receipt reader sees, in each
//! language the shop may choose (`[terminal] language`: `en`, `zh-CN`, `es`). Machine output (the
//! control socket's `code`, `--json`, MQTT) never comes from here: it stays English and stable.
//!
//! A message is a [`Msg`] id; each language is one `const fn` with one `match` over every id
//! (`en.rs`, `zh_cn.rs`, `es.rs`), so a message missing from any language does not compile.
//! Texts with values carry named `{placeholders}` filled by [`fill`]; a unit test checks that
//! every language uses exactly the placeholders English does. Receipt words are the same ids,
//! gathered per language into [`crate::receipt::Labels`] for the layout. Pure data, no I/O;
//! docs/languages.md says how a message or a language is added.

mod en;
mod es;
mod zh_cn;

use serde::{Deserialize, Serialize};

/// A language the shop may choose. Written as its tag (`"zh-CN"`); read with [`Language::parse`],
/// so a wrong tag is refused with the tags that exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub enum Language {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "es")]
    Es,
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Language::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A language tag posd does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?}: use one of \"en\", \"zh-CN\", \"es\"")]
pub struct UnknownLanguage(pub String);

impl Language {
    pub const ALL: [Language; 3] = [Language::En, Language::ZhCn, Language::Es];

    /// The tag in config and docs (`en`, `zh-CN`, `es`).
    pub const fn tag(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::ZhCn => "zh-CN",
            Language::Es => "es",
        }
    }

    /// Parses a tag, forgiving case and `_` for `-` (`zh_cn`, `ZH-cn`).
    pub fn parse(s: &str) -> Result<Language, UnknownLanguage> {
        let norm = s.trim().replace('_', "-").to_ascii_lowercase();
        match norm.as_str() {
            "en" => Ok(Language::En),
            "zh-cn" | "zh-hans" | "zh" => Ok(Language::ZhCn),
            "es" => Ok(Language::Es),
            _ => Err(UnknownLanguage(s.to_string())),
        }
    }

    /// Whether the language's letters fold to ASCII (accents dropped) for devices that only
    /// show ASCII, such as the 2x20 customer display. Chinese does not.
    pub const fn folds_to_ascii(self) -> bool {
        match self {
            Language::En | Language::Es => true,
            Language::ZhCn => false,
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.tag())
    }
}

impl std::str::FromStr for Language {
    type Err = UnknownLanguage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Language::parse(s)
    }
}

/// The text of `m` in `lang` (placeholders not yet filled: see [`fill`] and [`tr`]).
pub const fn text(lang: Language, m: Msg) -> &'static str {
    match lang {
        Language::En => en::text(m),
        Language::ZhCn => zh_cn::text(m),
        Language::Es => es::text(m),
    }
}

/// Fills `{name}` placeholders of `template` with `args`; an unknown `{name}` is kept as is.
pub fn fill(template: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match args.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(&v.to_string()),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `text` then `fill`: the message in `lang` with its values.
pub fn tr(lang: Language, m: Msg, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    fill(text(lang, m), args)
}

macro_rules! messages {
    ($($(#[$doc:meta])* $id:ident,)*) => {
        /// Every message id. Grouped by who reads it; the English text is in `en.rs`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Msg { $($(#[$doc])* $id,)* }
        impl Msg {
            /// Every id, for the catalogue's tests.
            pub const ALL: &'static [Msg] = &[$(Msg::$id,)*];
        }
    };
}

messages! {
    // ---- paper: receipts, pay slip, Z report (receipt::Labels) ----
    TitleSale, TitleRefund, TitleVoid, TitleReversal,
    /// Under the title of a reprint someone asked for.
    Reprint,
    /// Under the title of a job printed again because the printer may have cut it off.
    ReprintPrinterFault,
    Date, Terminal, TxnRef, Original, Method, Channel,
    /// The masked payment code.
    Code,
    /// The masked card number.
    Card,
    Total,
    /// Before the shop's tax number.
    TaxId,
    RefUnavailable,
    StatusApproved, StatusApprovedOffline, StatusSettled, StatusDeclined, StatusReversed,
    StatusRefund, StatusVoid, StatusVoided, StatusRejected, StatusNotPaid, StatusRefused,
    MethodPaymentCode, MethodOfflineCode, MethodMerchantCode, MethodCard,
    CopyMerchant, CopyCustomer,
    PaySlipTitle, PaySlipNotAReceipt,
    ZTitle, ZBatch, ZBusinessDay, ZFrom, ZTo, ZPrinted, ZEmpty, ZSales, ZRefunds, ZVoids, ZNet,
    ZApprovedOffline, ZSettled, ZVoided, ZRejected,
    /// Before the platform's reference, as a note.
    NoteHostRef,
    ChannelWechat, ChannelAlipay, ChannelUnionpay, ChannelEmvQr, ChannelPlatform,
    ChannelVisa, ChannelMastercard, ChannelAmex, ChannelJcb, ChannelDiscover,

    // ---- the cashier's console ----
    /// `{amount}`.
    ConsoleScanCode,
    ConsoleConfirming,
    /// `{amount}`.
    ConsoleShowQr,
    ConsolePrinter,

    // ---- the customer display (2x20; folded to ASCII, Chinese shows English) ----
    VfdTotal, VfdShowCode, VfdProcessing, VfdPleaseWait, VfdPleaseConfirm, VfdOnYourPhone,
    VfdScanQr, VfdThankYou, VfdNotPaid, VfdAskCashier,

    // ---- the printer, for the cashier ----
    PrinterNotChecked, PrinterOk,
    /// Appended to `ok`, `printing`, `gives no status`.
    PrinterNearEndSuffix,
    PrinterPaperNearEnd, PrinterPrinting, PrinterPaperOut, PrinterCoverOpen, PrinterOffline,
    PrinterError,
    /// `{detail}` is ` (...)` or empty.
    PrinterNotAnswering,
    /// `{detail}` is ` (...)` or empty.
    PrinterUnreachable,
    PrinterUnchecked,
    PrinterOneJobWaits,
    /// `{n}`.
    PrinterJobsWait,
    /// `{h}`: hours a job waits before it is given up (`job_max_age_h`).
    PrinterOneJobWaitsFor,
    /// `{n}`, `{h}`.
    PrinterJobsWaitFor,

    // ---- the keypad (two lines of 20) ----
    KeyReady, KeyEnterAmount,
    /// `{currency}`.
    KeyAmount,
    KeyMethods, KeyCancelling, KeyScanCode, KeyPleaseWait, KeyMenu1, KeyMenu2, KeyManagerPin,
    /// `{currency}`.
    KeyNoDecimals,
    /// `{amount}`.
    KeyMax,
    /// `{n}`.
    KeyOnlyDecimals,
    KeyRefund, KeyReprint, KeyBatchClose, KeyStatus, KeyPinTooShort,
    /// Enter pressed with nothing (or zero) keyed.
    KeyAmountMissing,
    KeyCustomerConfirming, KeyCustomerScansQr, KeyPaid, KeyRefunded, KeyNoPrinter,
    KeyReprintQueued, KeyReprintAlreadyQueued, KeyNoReceiptYet,
    /// `{batch}`.
    KeyBatchClosed,
    KeySeeStatus,

    // ---- sale results and notices (console, display, keypad) ----
    ResultApproved, ResultApprovedOffline, ResultApprovedStored, ResultVoided,
    ResultRefunded,
    /// `{reason}`: the host's own words.
    ResultDeclined,
    /// `{reason}`.
    ResultNotPaid,
    /// `{reason}`.
    ResultPending,
    NoticeBatchClosed, NoticeRefundScanReceipt, NoticeScanReceiptQr, NoticeNoSale,
    /// What a sale in progress is doing (console `…`, keypad).
    DoingAskPlatform, DoingAuthorizeCard, DoingWaitCustomerPay, DoingRefund,

    // ---- refusal reasons (the machine code stays English) ----
    RefuseBusy, RefuseNoSale, RefuseNotPositive,
    /// `{amount}`, `{limit}`.
    RefuseOverLimit,
    /// `{currency}`.
    RefuseCurrency,
    RefuseWrongPin,
    /// `{secs}`.
    RefusePinLocked,
    RefuseNoPin,
    /// An online code or a merchant QR while the link to the host is not usable.
    RefuseLinkDown,
    /// Why a swipe or a card was refused (`card::track::CardError`).
    CardTruncated,
    CardGarbled,
    CardPanLength,
    CardLuhn,
    CardMissingExpiry,
    CardBadExpiry,
    CardTrackMismatch,
    CardExpired,
    CardServiceCode,
    CardUseChip,
    /// Card store-and-forward refusals (`card::saf::SafRefusal`).
    CardSafDisabled,
    CardSafBadAmount,
    CardSafOverFloor,
    CardSafQueueFull,
    CardSafQueueOld,

    // ---- offline-code refusals on the customer display (at most 20 columns) ----
    OfflineVersionUnknown,
    OfflineUnreadable,
    OfflineIssuerUnknown,
    OfflineIssuerRetired,
    OfflineBadCredential,
    OfflineBadCode,
    OfflineWrongCurrency,
    OfflineNotYetValid,
    OfflineWalletExpired,
    OfflineCodeExpired,
    OfflineCheckPhoneClock,
    OfflineUnavailable,
    OfflineWalletBlocked,
    OfflineCodeUsed,
    OfflineInvalidAmount,
    OfflineOverWallet,
    OfflineOverTxn,
    OfflineDailyLimit,
    OfflineFull,
    OfflineNotAccepted,

    // ---- what the cashier is told that matters (display::notices) ----
    /// `{ref}`, `{amount}`, `{state}`, `{txn}`.
    NoticeCodeInFlight,
    /// `{ref}`, `{amount}`.
    NoticeRecoveredSale,
    /// `{reason}`.
    NoticeRefused,
    FaultPaperOut,
    FaultCoverOpen,
    FaultPrinterOffline,
    FaultPrinterError,
    FaultNotAnswering,
    FaultUnreachable,
    /// `{fault}`: one of the `Fault*` words.
    AlertReceiptWaiting,
    AlertReceiptPrinted,
    AlertOfflineNone,
    AlertOfflineOne,
    /// `{n}`.
    AlertOfflineMany,
    AlertClockUntrusted,
    AlertOnlineAgain,
    AlertClockTrusted,

    // ---- keypad screens of the menu (cashier) ----
    /// `{ref}`: a sale recovered after a restart.
    KeyRecovered,
    KeyWaitResult,
    KeyScanForReprint,
    /// `{currency}`.
    KeyRefundAmount,
    /// Enter alone refunds all that is left.
    KeyRefundAllHint,
    KeyScanReceipt,
    KeyCancelled,
    KeyVoided,
    KeyNoBatch,
    KeyVoid,
    KeyZAgain,

    // ---- the customer display, more ----
    VfdPaymentInProgress,

    // ---- refusal reasons from the engine, as the cashier reads them ----
    RefuseReceiptNotCode,
    CancelBeforeCode,
    CancelBeforeReceipt,
    CancelStoppedWaiting,
    CancelledByCashier,
    CancelClosingOrder,
    CancelRefundNoCallback,
    CancelReversal,
    /// `{txn}`, `{what}`.
    CancelSale,
    /// `{txn}`.
    NotFoundTxn,
    NotFoundOriginal,
    QrNotConfigured,
    CardNotConfigured,
    /// `{error}`.
    CardCannotSeal,
    /// `{error}`.
    QrCannotMake,
    /// `{error}`.
    JournalFailed,
    /// `{error}`.
    ZUnreadable,
    DaemonStopping,
    /// `{detail}`.
    HostUnreachable,
    /// `{error}`: why a request was not sent.
    HostNotSent,
    /// `{message}`: one of the `OfflineWhy*` texts.
    OfflineRefused,
    OfflineWhyDisabled,
    /// `{error}`: the parser's own words (English).
    OfflineWhyMalformed,
    /// `{id}`.
    OfflineWhyUnknownIssuer,
    /// `{id}`.
    OfflineWhyRetiredIssuer,
    OfflineWhyBadIssuerSig,
    OfflineWhyBadUserKey,
    OfflineWhyBadUserSig,
    /// `{credential}`, `{sale}`.
    OfflineWhyCurrency,
    OfflineWhyNotYetValid,
    OfflineWhyExpired,
    /// `{age}`, `{max}` (seconds).
    OfflineWhyTooOld,
    /// `{ahead}`, `{max}` (seconds).
    OfflineWhyFuture,
    OfflineWhyClock,
    OfflineWhyDenylisted,
    /// `{counter}`, `{seen}`.
    OfflineWhyReplayed,
    OfflineWhyInvalidAmount,
    /// `{amount}`, `{max}`.
    OfflineWhyOverWallet,
    /// `{amount}`, `{limit}`.
    OfflineWhyOverTxn,
    /// `{total}`, `{limit}`.
    OfflineWhyDaily,
    /// `{count}`, `{limit}`.
    OfflineWhyUnsyncedCount,
    /// `{total}`, `{limit}`.
    OfflineWhyUnsyncedAmount,
    /// `{age}`, `{limit}` (seconds).
    OfflineWhyUnsyncedAge,

    // ---- posctl's lines for the cashier and the manager (not --json) ----
    CtlIdle,
    /// `{kind}`, `{method}`, `{state}` (machine words), `{amount}`, `{txn}`, `{ref}`.
    CtlCurrent,
    /// `{qr}`.
    CtlMerchantQr,
    CtlAwaitReceipt,
    /// `{amount}`.
    CtlAwaitCode,
    /// `{original}`, `{txn}`.
    CtlVoided,
    /// `{ref}`; after the amount of an approved sale.
    CtlHostRef,
    /// `{amount}`, `{host}` (`CtlHostRef` or empty), `{txn}`.
    CtlApproved,
    /// `{amount}`, `{host}`, `{txn}`.
    CtlRefunded,
    /// `{amount}`, `{reason}`, `{txn}`.
    CtlDeclined,
    /// `{amount}`, `{reason}`, `{txn}`.
    CtlCancelled,
    /// `{amount}`, `{reason}`, `{txn}`.
    CtlPending,
    /// `{day}`; inside `CtlBatchClosed`.
    CtlBusinessDay,
    /// `{batch}`, `{txn}`, `{seq}`, `{day}`, `{sales_n}`, `{sales}`, `{refunds_n}`, `{refunds}`, `{net}`.
    CtlBatchClosed,
    /// `{n}`, `{refs}`: transactions in flight carried into the next batch.
    CtlCarried,
    /// `{n}`.
    CtlCarriedIn,
    CtlWhatReceipt,
    CtlWhatZ,
    CtlWhatPaySlip,
    /// `{what}`, `{txn}`, `{job}`.
    CtlReprintQueued,
    /// `{what}`, `{txn}`, `{job}`: the same document still waits to print.
    CtlReprintAlreadyQueued,
    /// `{text}`; the word is padded to the status's column.
    CtlAlert,
    /// `{at}`, `{reason}`, `{code}`.
    CtlRefusedAt,
    /// `{heard}`: the shop's time the host was last heard.
    CtlLinkUsable,
    CtlLinkUsableNever,
    CtlLinkDown,
    /// `{since}`: the shop's time.
    CtlLinkSilent,
    /// `{n}`.
    CtlToSync,

    // ---- the Z report's carried transactions (paper) ----
    /// Transactions still talking to the host at the close, counted in the next batch.
    ZCarried,
    /// `{n}`: carried transactions not listed.
    ZCarriedMore,
    /// Transactions an earlier close carried into this batch.
    ZCarriedIn,

    // ---- the journal's own refusals (store::JournalRefusal) ----
    /// `{original}`.
    JournalNoSale,
    /// `{original}`, `{state}` (its machine name), `{hint}` (`JournalVoidInstead` or empty).
    JournalNotRefundable,
    /// After `JournalNotRefundable` for an offline sale not yet settled.
    JournalVoidInstead,
    /// `{amount}`, `{original}`, `{done}`, `{total}`.
    JournalRefundOver,
    /// `{original}`, `{state}`.
    JournalNotVoidable,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(s: &str) -> Vec<String> {
        let mut v = Vec::new();
        let mut rest = s;
        while let Some(o) = rest.find('{') {
            let after = &rest[o + 1..];
            let Some(c) = after.find('}') else { break };
            v.push(after[..c].to_string());
            rest = &after[c + 1..];
        }
        v.sort();
        v
    }

    /// The match per language makes every id present (or the crate does not compile); this
    /// checks what the compiler cannot: no empty text, and the same placeholders as English.
    #[test]
    fn every_language_has_every_message_with_the_same_placeholders() {
        for lang in Language::ALL {
            for &m in Msg::ALL {
                let t = text(lang, m);
                assert!(!t.trim().is_empty(), "{lang} {m:?} is empty");
                assert_eq!(
                    placeholders(t),
                    placeholders(text(Language::En, m)),
                    "{lang} {m:?}: {t:?}"
                );
            }
        }
    }

    /// What the 2x20 customer display shows in one line fits it where it is shown (Chinese
    /// is shown in English there).
    #[test]
    fn display_lines_fit_twenty_columns() {
        let vfd = [
            Msg::VfdShowCode,
            Msg::VfdProcessing,
            Msg::VfdPleaseWait,
            Msg::VfdPleaseConfirm,
            Msg::VfdOnYourPhone,
            Msg::VfdScanQr,
            Msg::VfdThankYou,
            Msg::VfdNotPaid,
            Msg::VfdAskCashier,
            Msg::VfdPaymentInProgress,
        ];
        for lang in Language::ALL.into_iter().filter(|l| l.folds_to_ascii()) {
            for &m in Msg::ALL.iter().filter(|m| {
                let id = format!("{m:?}");
                // The short offline refusals; `OfflineWhy*` are the cashier's long reasons.
                (id.starts_with("Offline") && !id.starts_with("OfflineWhy"))
                    && **m != Msg::OfflineRefused
                    || vfd.contains(m)
            }) {
                let t = text(lang, m);
                assert!(t.chars().count() <= 20, "{lang} {m:?}: {t:?}");
            }
        }
    }

    /// Columns a text takes on a character display: a CJK character takes two.
    fn columns(s: &str) -> usize {
        s.chars().map(|c| if c >= '\u{2E80}' { 2 } else { 1 }).sum()
    }

    /// The keypad's fixed lines (no values in them) fit its 2x20 screen in every language,
    /// counting a Chinese character as two columns.
    #[test]
    fn keypad_lines_fit_twenty_columns() {
        for lang in Language::ALL {
            for &m in Msg::ALL
                .iter()
                .filter(|m| format!("{m:?}").starts_with("Key"))
            {
                let t = text(lang, m);
                if t.contains('{') {
                    continue;
                }
                assert!(
                    columns(t) <= 20,
                    "{lang} {m:?}: {t:?} is {} columns",
                    columns(t)
                );
            }
        }
    }

    #[test]
    fn translations_are_translated() {
        // Brand names may repeat English; most messages must not.
        for lang in [Language::ZhCn, Language::Es] {
            let same = Msg::ALL
                .iter()
                .filter(|&&m| text(lang, m) == text(Language::En, m))
                .count();
            assert!(
                same * 4 < Msg::ALL.len(),
                "{lang}: {same} texts left in English"
            );
        }
    }

    #[test]
    fn tags_parse_and_name_the_fix() {
        assert_eq!(Language::parse("zh-CN"), Ok(Language::ZhCn));
        assert_eq!(Language::parse("zh_cn"), Ok(Language::ZhCn));
        assert_eq!(Language::parse(" ES "), Ok(Language::Es));
        let e = Language::parse("fr").unwrap_err().to_string();
        assert!(e.contains("\"fr\"") && e.contains("zh-CN"), "{e}");
        for l in Language::ALL {
            assert_eq!(Language::parse(l.tag()), Ok(l));
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.tag()));
            assert_eq!(serde_json::from_str::<Language>(&json).unwrap(), l);
        }
    }

    #[test]
    fn fill_replaces_named_values() {
        assert_eq!(
            tr(
                Language::En,
                Msg::RefuseOverLimit,
                &[("amount", &"9.00"), ("limit", &"5.00")]
            ),
            "amount 9.00 is above the limit 5.00"
        );
        assert_eq!(fill("{a} {b} {", &[("a", &1)]), "1 {b} {");
    }
}
