//! Classifies any scanned text into the kind of code it is, so the daemon knows where to route it.
//!
//! Why it exists: a till has one scanner and the customer, the cashier or a receipt can put any
//! code in front of it. Before anything else posd must decide, without I/O and without ever
//! panicking, whether a scan is an online wallet code (WeChat Pay, Alipay, UnionPay, EMVCo CPM),
//! an offline `P1` code, a merchant QR scanned by mistake (refused with a clear message), a
//! receipt reference (refunds), a magnetic-stripe swipe from a keyboard-wedge reader, or nothing
//! known.
//!
//! **Sanitising.** A trailing run of CR/LF (the scanner's suffix) is stripped; nothing else is
//! trimmed. Empty text, text longer than `max_len` bytes (default 4096) and text containing any
//! control character (C0, DEL, C1; tabs included) are refused with a [`ClassifyError`].
//!
//! **Order** (first match wins; it matters only where configured patterns overlap):
//! 1. `P1.` prefix → [`CodeKind::P1Offline`] (the payload is checked later by `verify_p1`, which
//!    names the exact defect);
//! 2. a receipt reference `R1.<terminal>.<uuid>` → [`CodeKind::ReceiptRef`];
//! 3. ISO 7813 track 1 (`%B…^…^…?`) or track 2 (`;PAN=…?`) → [`CodeKind::CardTrack`];
//! 4. starts with `000201` and ends with a matching `6304` CRC → [`CodeKind::EmvMpm`];
//! 5. the channel patterns, tried only on ASCII text, in the order UnionPay, WeChat Pay, Alipay:
//!    the narrowest first (UnionPay is exactly `62` + 17 digits), the widest (Alipay, 16–24
//!    digits) last. With the default patterns the three sets are disjoint (prefixes 62, 10–15 and
//!    25–30), so the order only decides between overlapping custom patterns;
//! 6. base64 of BER-TLV whose first object is `85` = `CPV01` → [`CodeKind::EmvCpm`] (no digit-only
//!    text can decode to `0x85` first, so this never steals a wallet code);
//! 7. otherwise [`CodeKind::Unknown`].
//!
//! Channel patterns are configurable ([`PatternsConfig`]) and are always matched against the
//! whole text (they are wrapped in `^(?:…)$`).
//!
//! **Receipt reference format** (this module defines it): `R1.<terminal>.<txn-uuid>` where
//! `<terminal>` is 1–64 characters of `A–Z a–z 0–9 _ -` (the terminal id) and `<txn-uuid>` is the
//! sale's transaction id as a canonical UUID (8-4-4-4-12 hex digits, either case; normalised to
//! lower case). The receipt's QR carries it so a refund can find the sale by scanning the receipt.

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{cpm, emv_mpm};

/// Default longest scan accepted, in bytes.
pub const DEFAULT_MAX_LEN: usize = 4096;
/// Hard ceiling for a configured `max_len`.
pub const MAX_MAX_LEN: usize = 65_536;

/// What a scanned text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CodeKind {
    /// WeChat Pay payment code (online).
    #[serde(rename = "wechat")]
    WeChat,
    /// Alipay payment code (online).
    #[serde(rename = "alipay")]
    Alipay,
    /// UnionPay QR payment code (online).
    #[serde(rename = "unionpay")]
    UnionPay,
    /// EMVCo consumer-presented code (online).
    #[serde(rename = "emv_cpm")]
    EmvCpm,
    /// `P1` offline code.
    #[serde(rename = "p1_offline")]
    P1Offline,
    /// EMVCo merchant-presented code: a merchant QR scanned by mistake; refused.
    #[serde(rename = "emv_mpm")]
    EmvMpm,
    /// posd receipt reference (`R1.`), for refunds and reprints.
    #[serde(rename = "receipt_ref")]
    ReceiptRef,
    /// Magnetic-stripe track data from a keyboard-wedge reader.
    #[serde(rename = "card_track")]
    CardTrack,
    /// Not recognised.
    #[serde(rename = "unknown")]
    Unknown,
}

impl CodeKind {
    /// Stable snake_case name (as serialised).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CodeKind::WeChat => "wechat",
            CodeKind::Alipay => "alipay",
            CodeKind::UnionPay => "unionpay",
            CodeKind::EmvCpm => "emv_cpm",
            CodeKind::P1Offline => "p1_offline",
            CodeKind::EmvMpm => "emv_mpm",
            CodeKind::ReceiptRef => "receipt_ref",
            CodeKind::CardTrack => "card_track",
            CodeKind::Unknown => "unknown",
        }
    }

    /// Human name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            CodeKind::WeChat => "WeChat Pay payment code",
            CodeKind::Alipay => "Alipay payment code",
            CodeKind::UnionPay => "UnionPay QR payment code",
            CodeKind::EmvCpm => "EMVCo consumer-presented code",
            CodeKind::P1Offline => "P1 offline payment code",
            CodeKind::EmvMpm => "EMVCo merchant-presented code",
            CodeKind::ReceiptRef => "posd receipt reference",
            CodeKind::CardTrack => "magnetic-stripe card data",
            CodeKind::Unknown => "unknown code",
        }
    }

    /// The online channel a customer-presented code is authorised through (`channel` in the
    /// `authorize` request), if it is one.
    #[must_use]
    pub fn online_channel(self) -> Option<&'static str> {
        match self {
            CodeKind::WeChat | CodeKind::Alipay | CodeKind::UnionPay | CodeKind::EmvCpm => {
                Some(self.as_str())
            }
            _ => None,
        }
    }

    /// For kinds that cannot pay a sale: (≤ 20-character display text, longer explanation).
    #[must_use]
    pub fn refusal(self) -> Option<(&'static str, &'static str)> {
        match self {
            CodeKind::EmvMpm => Some((
                "Merchant QR: refused",
                "This is a merchant QR code, meant for a customer's phone to scan. \
                 Ask the customer to show their payment code instead.",
            )),
            CodeKind::ReceiptRef => Some((
                "Receipt, not payment",
                "This is a receipt QR code. Scan it from the refund or reprint menu.",
            )),
            CodeKind::Unknown => Some((
                "Unknown code",
                "This code is not a payment code posd knows. Ask for another code or payment method.",
            )),
            _ => None,
        }
    }
}

/// Why a scan was refused before classification.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClassifyError {
    /// Nothing left after stripping CR/LF.
    #[error("empty scan")]
    Empty,
    /// Longer than the configured maximum.
    #[error("scan is {len} bytes, at most {max} accepted")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Contains a control character.
    #[error("scan contains control character U+{code_point:04X} at character {position}")]
    ControlChar {
        /// Character index.
        position: usize,
        /// The character.
        code_point: u32,
    },
}

impl ClassifyError {
    /// Stable snake_case reason code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            ClassifyError::Empty => "empty_scan",
            ClassifyError::TooLong { .. } => "scan_too_long",
            ClassifyError::ControlChar { .. } => "scan_control_char",
        }
    }
}

/// A configured pattern is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    /// A regular expression does not compile.
    #[error("pattern {name}: {message}")]
    Regex {
        /// Which pattern.
        name: &'static str,
        /// The regex crate's message.
        message: String,
    },
    /// `max_len` is out of range.
    #[error("max_len must be 1..={MAX_MAX_LEN}, got {0}")]
    MaxLen(usize),
}

/// Channel patterns as written in configuration (regular expressions, `regex` crate syntax).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatternsConfig {
    /// WeChat Pay: default `1[0-5]\d{16}`.
    pub wechat: String,
    /// Alipay: default `(2[5-9]|30)\d{14,22}`.
    pub alipay: String,
    /// UnionPay QR: default `62\d{17}`.
    pub unionpay: String,
    /// Longest scan accepted, in bytes.
    pub max_len: usize,
}

impl Default for PatternsConfig {
    fn default() -> Self {
        PatternsConfig {
            wechat: r"^1[0-5]\d{16}$".into(),
            alipay: r"^(2[5-9]|30)\d{14,22}$".into(),
            unionpay: r"^62\d{17}$".into(),
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

/// Compiled patterns. (De)serialises as a [`PatternsConfig`]; a bad regex fails the config load.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "PatternsConfig", into = "PatternsConfig")]
pub struct Patterns {
    config: PatternsConfig,
    wechat: Regex,
    alipay: Regex,
    unionpay: Regex,
    track1: Regex,
    track2: Regex,
    receipt: Regex,
}

fn compile(name: &'static str, pattern: &str) -> Result<Regex, PatternError> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| PatternError::Regex {
            name,
            message: e.to_string(),
        })
}

impl Patterns {
    /// Compiles a configuration.
    ///
    /// # Errors
    /// [`PatternError`] naming the bad pattern.
    pub fn new(config: PatternsConfig) -> Result<Self, PatternError> {
        if config.max_len == 0 || config.max_len > MAX_MAX_LEN {
            return Err(PatternError::MaxLen(config.max_len));
        }
        Ok(Patterns {
            wechat: compile("wechat", &config.wechat)?,
            alipay: compile("alipay", &config.alipay)?,
            unionpay: compile("unionpay", &config.unionpay)?,
            // ISO 7813 track 1: %B PAN ^ NAME ^ YYMM|^ SVC|^ discretionary ? (then maybe track 2/3)
            track1: compile(
                "track1",
                r"%B[0-9]{12,19}\^[^\^?]{0,26}\^(?:[0-9]{4}|\^)(?:[0-9]{3}|\^)[^?]*\?.{0,2}(?:;[^?]*\?.{0,2}){0,2}",
            )?,
            // ISO 7813 track 2: ; PAN = YYMM|= SVC|= discretionary ? (then maybe track 3)
            track2: compile(
                "track2",
                r";[0-9]{12,19}=(?:[0-9]{4}|=)(?:[0-9]{3}|=)[0-9]*\?.{0,2}(?:;[^?]*\?.{0,2})?",
            )?,
            receipt: compile(
                "receipt",
                r"R1\.([A-Za-z0-9_-]{1,64})\.([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})",
            )?,
            config,
        })
    }

    /// The configuration these were compiled from.
    #[must_use]
    pub fn config(&self) -> &PatternsConfig {
        &self.config
    }

    /// Parses a receipt reference (`None` if `text` is not exactly one).
    #[must_use]
    pub fn receipt_ref(&self, text: &str) -> Option<ReceiptRef> {
        let caps = self.receipt.captures(text)?;
        Some(ReceiptRef {
            terminal: caps.get(1)?.as_str().to_owned(),
            txn_id: caps.get(2)?.as_str().to_ascii_lowercase(),
        })
    }

    /// Which magnetic tracks the text holds, if it is a swipe: (track 1, track 2).
    fn card_tracks(&self, text: &str) -> Option<CardTracks> {
        if self.track1.is_match(text) {
            let track2 = text.contains(';');
            let pan = text.get(2..)?.split('^').next()?.to_owned();
            Some(CardTracks {
                track1: true,
                track2,
                masked_pan: mask_pan(&pan),
                checks: None,
            })
        } else if self.track2.is_match(text) {
            let pan = text.get(1..)?.split('=').next()?.to_owned();
            Some(CardTracks {
                track1: false,
                track2: true,
                masked_pan: mask_pan(&pan),
                checks: None,
            })
        } else {
            None
        }
    }
}

impl Default for Patterns {
    fn default() -> Self {
        // The built-in patterns are constants, not input; `default_patterns_compile` tests them.
        #[allow(clippy::expect_used)]
        Patterns::new(PatternsConfig::default()).expect("built-in patterns compile")
    }
}

impl From<Patterns> for PatternsConfig {
    fn from(p: Patterns) -> Self {
        p.config
    }
}

/// Two pattern sets are equal when they were compiled from equal configurations.
impl PartialEq for Patterns {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Eq for Patterns {}

impl TryFrom<PatternsConfig> for Patterns {
    type Error = PatternError;
    fn try_from(c: PatternsConfig) -> Result<Self, Self::Error> {
        Patterns::new(c)
    }
}

/// A parsed receipt reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptRef {
    /// Terminal id.
    pub terminal: String,
    /// Transaction id (UUID, lower case).
    pub txn_id: String,
}

/// A receipt reference printed by another terminal: its transaction is not in this journal,
/// and a refund here would be booked against the wrong terminal's sale.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("this receipt is from terminal {receipt}, this is {this}: refund it on {receipt}")]
pub struct OtherTerminal {
    /// The terminal the receipt names.
    pub receipt: String,
    /// This terminal.
    pub this: String,
}

impl ReceiptRef {
    /// The transaction the reference names, if it was printed by `terminal`.
    ///
    /// # Errors
    /// [`OtherTerminal`] when another terminal printed it.
    pub fn txn_on(&self, terminal: &str) -> Result<&str, OtherTerminal> {
        if self.terminal == terminal {
            Ok(&self.txn_id)
        } else {
            Err(OtherTerminal {
                receipt: self.terminal.clone(),
                this: terminal.to_owned(),
            })
        }
    }
}

/// Formats a receipt reference for the receipt's QR code.
#[must_use]
pub fn format_receipt_ref(terminal: &str, txn_id: &str) -> String {
    format!("R1.{terminal}.{}", txn_id.to_ascii_lowercase())
}

/// What a swipe holds (never the clear PAN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardTracks {
    /// Track 1 present.
    pub track1: bool,
    /// Track 2 present.
    pub track2: bool,
    /// First 6 and last 4 digits of the PAN, the rest masked.
    pub masked_pan: String,
    /// The checks a sale applies, when `inspect` ran them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<CardChecks>,
}

/// The checks a card sale applies to a swipe, as `code inspect` shows them (no card data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardChecks {
    /// The PAN's check digit (Luhn) is right.
    pub luhn: bool,
    /// Network from the leading digits (`visa`, `unionpay`, ...).
    pub brand: String,
    /// Expiry as `20YY-MM`.
    pub expiry: String,
    /// Expired as of the inspection's month (None: no time given).
    pub expired: Option<bool>,
    /// The three service-code digits.
    pub service_code: String,
    /// First digit 1, 2, 5 or 6: accepted for interchange.
    pub service_code_ok: bool,
    /// 2xx/6xx: a chip card (refused where a chip reader exists, a fallback swipe otherwise).
    pub chip: bool,
}

/// Masks a PAN: first 6 and last 4 digits shown (only the last 4 if shorter than 13).
#[must_use]
pub fn mask_pan(pan: &str) -> String {
    let digits: Vec<char> = pan.chars().collect();
    let n = digits.len();
    let show_head = if n >= 13 { 6 } else { 0 };
    let show_tail = if n >= 8 { 4 } else { 0 };
    digits
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < show_head || i + show_tail >= n {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// A classified scan: its kind and the sanitised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified<'a> {
    /// What it is.
    pub kind: CodeKind,
    /// The text with the trailing CR/LF removed.
    pub text: &'a str,
}

/// Strips the trailing CR/LF run and refuses empty, overlong or control-character text.
///
/// # Errors
/// [`ClassifyError`].
pub fn sanitize<'a>(raw: &'a str, patterns: &Patterns) -> Result<&'a str, ClassifyError> {
    let text = raw.trim_end_matches(['\r', '\n']);
    if text.is_empty() {
        return Err(ClassifyError::Empty);
    }
    let max = patterns.config.max_len;
    if text.len() > max {
        return Err(ClassifyError::TooLong {
            len: text.len(),
            max,
        });
    }
    if let Some((position, c)) = text.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(ClassifyError::ControlChar {
            position,
            code_point: u32::from(c),
        });
    }
    Ok(text)
}

/// Classifies a scan (see the module doc for the order).
///
/// # Errors
/// [`ClassifyError`] if the text is refused before classification.
pub fn classify<'a>(raw: &'a str, patterns: &Patterns) -> Result<Classified<'a>, ClassifyError> {
    let text = sanitize(raw, patterns)?;
    let kind = kind_of(text, patterns);
    Ok(Classified { kind, text })
}

fn kind_of(text: &str, p: &Patterns) -> CodeKind {
    if text.starts_with(super::p1::PREFIX) {
        return CodeKind::P1Offline;
    }
    if text.starts_with("R1.") && p.receipt_ref(text).is_some() {
        return CodeKind::ReceiptRef;
    }
    if (text.starts_with('%') || text.starts_with(';')) && p.card_tracks(text).is_some() {
        return CodeKind::CardTrack;
    }
    if emv_mpm::looks_like_valid_mpm(text) {
        return CodeKind::EmvMpm;
    }
    if text.is_ascii() {
        if p.unionpay.is_match(text) {
            return CodeKind::UnionPay;
        }
        if p.wechat.is_match(text) {
            return CodeKind::WeChat;
        }
        if p.alipay.is_match(text) {
            return CodeKind::Alipay;
        }
        if cpm::parse(text).is_ok() {
            return CodeKind::EmvCpm;
        }
    }
    CodeKind::Unknown
}

/// Card track details of a text classified as [`CodeKind::CardTrack`] (masked).
#[must_use]
pub fn card_tracks(text: &str, patterns: &Patterns) -> Option<CardTracks> {
    patterns.card_tracks(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(text: &str) -> CodeKind {
        classify(text, &Patterns::default()).unwrap().kind
    }

    #[test]
    fn default_patterns_compile() {
        assert!(Patterns::new(PatternsConfig::default()).is_ok());
    }

    #[test]
    fn wallet_codes_and_their_edges() {
        assert_eq!(k("134567890123456789"), CodeKind::WeChat);
        assert_eq!(k("104567890123456789"), CodeKind::WeChat);
        assert_eq!(k("164567890123456789"), CodeKind::Unknown); // prefix 16
        assert_eq!(k("13456789012345678"), CodeKind::Unknown); // 17 digits
        assert_eq!(k("1345678901234567890"), CodeKind::Unknown); // 19 digits
        assert_eq!(k("2812345678901234"), CodeKind::Alipay); // 16 digits
        assert_eq!(k("301234567890123456789012"), CodeKind::Alipay); // 24 digits
        assert_eq!(k("3012345678901234567890123"), CodeKind::Unknown); // 25 digits
        assert_eq!(k("281234567890123"), CodeKind::Unknown); // 15 digits
        assert_eq!(k("241234567890123456"), CodeKind::Unknown); // prefix 24
        assert_eq!(k("6212345678901234567"), CodeKind::UnionPay);
        assert_eq!(k("621234567890123456"), CodeKind::Unknown); // 18 digits
                                                                // Unicode digits are not digits for payment codes.
        assert_eq!(k("13456789012345678٩"), CodeKind::Unknown);
    }

    #[test]
    fn strips_only_trailing_crlf() {
        let c = classify("134567890123456789\r\n", &Patterns::default()).unwrap();
        assert_eq!(c.text, "134567890123456789");
        assert_eq!(c.kind, CodeKind::WeChat);
        assert_eq!(k(" 134567890123456789"), CodeKind::Unknown);
        assert_eq!(k("134567890123456789 "), CodeKind::Unknown);
    }

    #[test]
    fn refusals() {
        let p = Patterns::default();
        assert_eq!(classify("\r\n", &p), Err(ClassifyError::Empty));
        assert_eq!(classify("", &p), Err(ClassifyError::Empty));
        assert!(matches!(
            classify("a\tb", &p),
            Err(ClassifyError::ControlChar {
                position: 1,
                code_point: 9
            })
        ));
        assert!(matches!(
            classify("a\u{85}", &p),
            Err(ClassifyError::ControlChar { .. })
        ));
        assert!(matches!(
            classify("a\rb", &p),
            Err(ClassifyError::ControlChar { .. })
        ));
        let long = "9".repeat(DEFAULT_MAX_LEN + 1);
        assert_eq!(
            classify(&long, &p),
            Err(ClassifyError::TooLong {
                len: DEFAULT_MAX_LEN + 1,
                max: DEFAULT_MAX_LEN
            })
        );
        assert_eq!(classify(&long[1..], &p).unwrap().kind, CodeKind::Unknown);
    }

    #[test]
    fn receipt_refs_of_another_terminal_are_refused() {
        let p = Patterns::new(PatternsConfig::default()).unwrap();
        let r = p
            .receipt_ref("R1.T-0002.0e8a5b62-1c2d-4e3f-8a9b-0c1d2e3f4a5b")
            .unwrap();
        assert_eq!(
            r.txn_on("T-0002"),
            Ok("0e8a5b62-1c2d-4e3f-8a9b-0c1d2e3f4a5b")
        );
        let e = r.txn_on("T-0001").unwrap_err();
        assert_eq!(e.receipt, "T-0002");
        assert!(e.to_string().contains("refund it on T-0002"), "{e}");
        assert!(r.txn_on("t-0002").is_err(), "terminal ids are exact");
    }

    #[test]
    fn receipt_refs() {
        let p = Patterns::default();
        let r = format_receipt_ref("T-0001", "0E8A5B62-1C2D-4E3F-8A9B-0C1D2E3F4A5B");
        assert_eq!(r, "R1.T-0001.0e8a5b62-1c2d-4e3f-8a9b-0c1d2e3f4a5b");
        assert_eq!(k(&r), CodeKind::ReceiptRef);
        let parsed = p.receipt_ref(&r).unwrap();
        assert_eq!(parsed.terminal, "T-0001");
        assert_eq!(parsed.txn_id, "0e8a5b62-1c2d-4e3f-8a9b-0c1d2e3f4a5b");
        assert_eq!(
            k("R1.T-0001.0e8a5b62-1c2d-4e3f-8a9b-0c1d2e3f4a5"),
            CodeKind::Unknown
        );
        assert_eq!(
            k("R1..0e8a5b62-1c2d-4e3f-8a9b-0c1d2e3f4a5b"),
            CodeKind::Unknown
        );
    }

    #[test]
    fn card_tracks_recognised_and_masked() {
        let p = Patterns::default();
        let t1 = "%B4111111111111111^DOE/JOHN^2812101000000000000?";
        let t2 = ";4111111111111111=28121010000000000000?";
        assert_eq!(k(t1), CodeKind::CardTrack);
        assert_eq!(k(t2), CodeKind::CardTrack);
        assert_eq!(k(&format!("{t1}{t2}")), CodeKind::CardTrack);
        let tr = card_tracks(&format!("{t1}{t2}"), &p).unwrap();
        assert!(tr.track1 && tr.track2);
        assert_eq!(tr.masked_pan, "411111******1111");
        assert_eq!(card_tracks(t2, &p).unwrap().masked_pan, "411111******1111");
        assert_eq!(k(";4111=28?"), CodeKind::Unknown);
        assert_eq!(k("%B4111111111111111^DOE"), CodeKind::Unknown);
        assert_eq!(mask_pan("12345678"), "****5678");
        assert_eq!(mask_pan("123"), "***");
    }

    #[test]
    fn configured_patterns() {
        let cfg: PatternsConfig =
            serde_json::from_str(r#"{"wechat": "9\\d{3}", "max_len": 10}"#).unwrap();
        let p = Patterns::new(cfg).unwrap();
        assert_eq!(classify("9123", &p).unwrap().kind, CodeKind::WeChat);
        // wrapped in ^(?:...)$: a longer text does not match
        assert_eq!(classify("91234", &p).unwrap().kind, CodeKind::Unknown);
        assert!(matches!(
            classify("12345678901", &p),
            Err(ClassifyError::TooLong { .. })
        ));
        let bad: Result<Patterns, _> = serde_json::from_str(r#"{"alipay": "(unclosed"}"#);
        assert!(bad.unwrap_err().to_string().contains("alipay"));
        assert!(serde_json::from_str::<Patterns>(r#"{"unknown_key": "x"}"#).is_err());
        let round: Patterns =
            serde_json::from_str(&serde_json::to_string(&Patterns::default()).unwrap()).unwrap();
        assert_eq!(round, Patterns::default());
        assert!(matches!(
            Patterns::new(PatternsConfig {
                max_len: 0,
                ..PatternsConfig::default()
            }),
            Err(PatternError::MaxLen(0))
        ));
        // Overlap: a UnionPay pattern widened to cover a WeChat code wins (documented order).
        let p = Patterns::new(PatternsConfig {
            unionpay: r"(62|13)\d{16,17}".into(),
            ..PatternsConfig::default()
        })
        .unwrap();
        assert_eq!(
            classify("134567890123456789", &p).unwrap().kind,
            CodeKind::UnionPay
        );
    }

    #[test]
    fn p1_prefix_and_mpm() {
        assert_eq!(k("P1.garbage"), CodeKind::P1Offline);
        let mpm = "00020101021129370016A000000677010111011300668012345675802TH530376463046197";
        assert_eq!(k(mpm), CodeKind::EmvMpm);
        assert_eq!(k(&mpm.replace("6197", "6198")), CodeKind::Unknown);
        assert!(CodeKind::EmvMpm.refusal().unwrap().0.chars().count() <= 20);
        assert!(CodeKind::ReceiptRef.refusal().unwrap().0.chars().count() <= 20);
        assert!(CodeKind::Unknown.refusal().unwrap().0.chars().count() <= 20);
        assert_eq!(CodeKind::WeChat.online_channel(), Some("wechat"));
        assert_eq!(CodeKind::P1Offline.online_channel(), None);
        assert_eq!(
            serde_json::to_string(&CodeKind::WeChat).unwrap(),
            "\"wechat\""
        );
    }
}
