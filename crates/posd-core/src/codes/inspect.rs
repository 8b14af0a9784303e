//! `posctl code inspect TEXT [--json]`: everything posd can tell about a scanned text.
//!
//! Why it exists: when a customer's code is refused at the till, support needs to see what the
//! scanner actually read and what posd made of it — the kind, every parsed field, the CRC or
//! signature check — without a debugger. [`inspect`] returns a serialisable [`Inspection`] (for
//! `--json`) that also renders as readable text ([`core::fmt::Display`]); an unusable text gives
//! the precise reason as a [`CodeError`]. Card numbers are masked (first 6, last 4) and track or
//! track-equivalent data is never shown, in keeping with DESIGN §1.4.

use core::fmt;

use serde::Serialize;
use thiserror::Error;

use super::classify::{self, CardTracks, ClassifyError, CodeKind, Patterns, ReceiptRef};
use super::cpm::{self, CpmError};
use super::currency::Currency;
use super::emv_mpm::{self, MpmError, MpmField};
use super::p1::{CredentialView, P1Code, P1Error};
use super::tlv::{Tlv, TlvValue};

/// Why a text cannot be inspected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodeError {
    /// Refused before classification (empty, too long, control characters).
    #[error("{0}")]
    Classify(ClassifyError),
    /// Recognised as nothing; `hint` says what was tried.
    #[error("unrecognised code: {hint}")]
    Unrecognised {
        /// What it resembled, if anything.
        hint: String,
    },
    /// Looks like a merchant-presented code but is malformed.
    #[error("EMVCo merchant-presented code: {0}")]
    Mpm(MpmError),
    /// Looks like a consumer-presented code but is malformed.
    #[error("EMVCo consumer-presented code: {0}")]
    Cpm(CpmError),
    /// `P1.` prefix but malformed.
    #[error("P1 offline code: {0}")]
    P1(P1Error),
    /// A card swipe a sale would refuse (check digit, expiry, service code, tracks).
    #[error("card swipe refused ({code}): {error}", code = .0.code(), error = .0)]
    Card(crate::card::track::CardError),
}

crate::wraps_error!(CodeError {
    Classify(ClassifyError),
    Mpm(MpmError),
    Cpm(CpmError),
    P1(P1Error),
});

/// One BER-TLV node for display (values of card-number tags masked or withheld).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlvNode {
    /// Tag, hex.
    pub tag: String,
    /// EMV name, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'static str>,
    /// Constructed (template).
    pub constructed: bool,
    /// Value length in bytes.
    pub length: usize,
    /// Value, hex (primitive, not sensitive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// Value as text when it is printable ASCII.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Masked card number, or a note that the value is withheld.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked: Option<String>,
    /// Children of a template.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<TlvNode>,
}

/// One EMVCo MPM record for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MpmFieldView {
    /// Tag, two digits.
    pub tag: String,
    /// Name from the specification.
    pub name: &'static str,
    /// Value.
    pub value: String,
    /// Sub-fields of a template.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sub_fields: Vec<MpmFieldView>,
}

/// The CRC check of an MPM payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrcCheck {
    /// CRC in the payload.
    pub stated: String,
    /// CRC computed.
    pub computed: String,
    /// Whether they match.
    pub valid: bool,
}

/// The code part of a `P1` code for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct P1CodeView {
    /// When the phone made it.
    pub timestamp: u32,
    /// Counter.
    pub counter: u32,
    /// User signature, hex.
    pub user_sig: String,
}

/// Checks `inspect` can make on a `P1` code without issuer keys or terminal state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct P1Checks {
    /// The user signature verifies with the key in the credential.
    pub user_signature_valid: bool,
    /// Always "not checked": the issuer signature needs the terminal's issuer keys
    /// (`verify_p1` checks it).
    pub issuer_signature: &'static str,
    /// With `now`: `valid_from ≤ now ≤ valid_until`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_valid_now: Option<bool>,
    /// With `now`: `now − timestamp` (negative: from the future).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_age_s: Option<i64>,
}

/// Kind-specific details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum Details {
    /// A digit-only wallet code.
    WalletCode {
        /// Channel.
        channel: &'static str,
        /// Number of digits.
        digits: usize,
    },
    /// EMVCo CPM.
    EmvCpm {
        /// Number of application templates.
        applications: usize,
        /// The BER-TLV tree.
        tlv: Vec<TlvNode>,
    },
    /// EMVCo MPM.
    EmvMpm {
        /// Tag 01 = 12.
        dynamic: bool,
        /// Every record.
        fields: Vec<MpmFieldView>,
        /// CRC.
        crc: CrcCheck,
        /// Amount in minor units, when 53 and 54 are present.
        #[serde(skip_serializing_if = "Option::is_none")]
        amount_minor: Option<u64>,
        /// Currency (alphabetic), when 53 is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        currency: Option<&'static str>,
        /// Mandatory tags (per EMVCo) absent; `02` stands for any account 02–51.
        missing_mandatory: Vec<String>,
    },
    /// `P1`.
    P1 {
        /// Credential.
        credential: CredentialView,
        /// Code part.
        code: P1CodeView,
        /// What could be checked.
        checks: P1Checks,
    },
    /// Receipt reference.
    ReceiptRef(ReceiptRef),
    /// Card swipe (masked).
    CardTrack(CardTracks),
}

/// Everything `inspect` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// Kind.
    pub kind: CodeKind,
    /// Human name of the kind.
    pub kind_name: &'static str,
    /// Length in characters after stripping CR/LF.
    pub length: usize,
    /// What posd does with it at a sale.
    pub handling: &'static str,
    /// Details.
    #[serde(flatten)]
    pub details: Details,
}

/// The checks a card sale applies: the parse (tracks, PAN length, Luhn, expiry present and
/// valid, tracks agreeing) refuses as a sale would; expiry against `now` (UTC month) and the
/// service code are reported, and refused when a sale would refuse them.
fn card_checks(text: &str, now: Option<u64>) -> Result<classify::CardChecks, CodeError> {
    use crate::card::track::{parse_swipe, CardError};
    let card = parse_swipe(text).map_err(CodeError::Card)?;
    let (yy, mm) = card.expiry_yymm;
    let [a, b, c] = card.service_code;
    let service_code_ok = matches!(a, 1 | 2 | 5 | 6);
    let expired = now.map(|s| {
        let (y, m) = crate::till::local_year_month(s.saturating_mul(1000), 0);
        (2000 + u16::from(yy), mm) < (y, m)
    });
    if !service_code_ok {
        return Err(CodeError::Card(CardError::ServiceCode));
    }
    if expired == Some(true) {
        return Err(CodeError::Card(CardError::Expired));
    }
    Ok(classify::CardChecks {
        luhn: true,
        brand: card.brand().as_str().to_string(),
        expiry: format!("20{yy:02}-{mm:02}"),
        expired,
        service_code: format!("{a}{b}{c}"),
        service_code_ok,
        chip: matches!(a, 2 | 6),
    })
}

/// Classifies and fully parses `text`. `now` (unix seconds) adds time checks for `P1` codes.
///
/// # Errors
/// [`CodeError`] with the reason when the text is refused, malformed or unrecognised.
pub fn inspect(text: &str, patterns: &Patterns, now: Option<u64>) -> Result<Inspection, CodeError> {
    let c = classify::classify(text, patterns)?;
    let t = c.text;
    let details =
        match c.kind {
            CodeKind::WeChat | CodeKind::Alipay | CodeKind::UnionPay => Details::WalletCode {
                channel: c.kind.as_str(),
                digits: t.len(),
            },
            CodeKind::EmvCpm => {
                let p = cpm::parse(t)?;
                Details::EmvCpm {
                    applications: p.applications().count(),
                    tlv: p.objects.iter().map(node).collect(),
                }
            }
            CodeKind::EmvMpm => mpm_details(t)?,
            CodeKind::P1Offline => p1_details(t, now)?,
            CodeKind::ReceiptRef => {
                Details::ReceiptRef(patterns.receipt_ref(t).ok_or_else(|| {
                    CodeError::Unrecognised {
                        hint: "malformed receipt reference".into(),
                    }
                })?)
            }
            CodeKind::CardTrack => {
                let mut tracks =
                    classify::card_tracks(t, patterns).ok_or_else(|| CodeError::Unrecognised {
                        hint: "malformed card track".into(),
                    })?;
                tracks.checks = Some(card_checks(t, now)?);
                Details::CardTrack(tracks)
            }
            CodeKind::Unknown => return Err(explain_unknown(t)),
        };
    Ok(Inspection {
        kind: c.kind,
        kind_name: c.kind.name(),
        length: t.chars().count(),
        handling: handling(c.kind),
        details,
    })
}

fn handling(kind: CodeKind) -> &'static str {
    match kind {
        CodeKind::WeChat | CodeKind::Alipay | CodeKind::UnionPay | CodeKind::EmvCpm => {
            "authorised online through the host"
        }
        CodeKind::P1Offline => "verified offline (signatures, validity, counter, limits)",
        CodeKind::EmvMpm => "refused at a sale: merchant code scanned by mistake",
        CodeKind::ReceiptRef => "finds a sale for refund or reprint",
        CodeKind::CardTrack => "card payment (masked PAN only is kept)",
        CodeKind::Unknown => "refused",
    }
}

/// Finds the most useful reason an unknown text was not recognised.
fn explain_unknown(t: &str) -> CodeError {
    if t.starts_with("000201") {
        if let Err(e) = emv_mpm::parse(t) {
            return CodeError::Mpm(e);
        }
    }
    if t.starts_with("hQVDUFYwM") {
        if let Err(e) = cpm::parse(t) {
            return CodeError::Cpm(e);
        }
    }
    let hint = if t.starts_with("R1.") {
        "malformed receipt reference (expected R1.<terminal>.<uuid>)".to_owned()
    } else if t.starts_with('%') || t.starts_with(';') {
        "looks like a card swipe but is not valid ISO 7813 track data".to_owned()
    } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        format!(
            "{} digits match no wallet pattern (WeChat 18 digits 10-15…, Alipay 16-24 digits 25-30…, UnionPay 19 digits 62…)",
            t.len()
        )
    } else {
        "matches no known payment code format".to_owned()
    };
    CodeError::Unrecognised { hint }
}

fn mpm_details(t: &str) -> Result<Details, CodeError> {
    let p = emv_mpm::parse(t)?;
    let amount = p.amount_minor();
    Ok(Details::EmvMpm {
        dynamic: p.is_dynamic(),
        fields: p.fields.iter().map(|f| mpm_view(f, None)).collect(),
        crc: CrcCheck {
            stated: p.crc.clone(),
            computed: p.crc.clone(),
            valid: true,
        },
        amount_minor: amount.map(|(a, _)| a),
        currency: p
            .get(53)
            .and_then(|c| c.parse().ok())
            .and_then(Currency::from_numeric)
            .map(|c| c.alpha),
        missing_mandatory: p
            .missing_mandatory()
            .iter()
            .map(|t| format!("{t:02}"))
            .collect(),
    })
}

fn mpm_view(f: &MpmField, parent: Option<u8>) -> MpmFieldView {
    MpmFieldView {
        tag: format!("{:02}", f.tag),
        name: mpm_name(parent, f.tag),
        value: f.value.clone(),
        sub_fields: f
            .sub_fields
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|s| mpm_view(s, Some(f.tag)))
            .collect(),
    }
}

fn mpm_name(parent: Option<u8>, tag: u8) -> &'static str {
    match (parent, tag) {
        (None, 0) => "Payload Format Indicator",
        (None, 1) => "Point of Initiation Method",
        (None, 2..=3) => "Merchant Account Information (Visa)",
        (None, 4..=5) => "Merchant Account Information (Mastercard)",
        (None, 9..=10) => "Merchant Account Information (Discover)",
        (None, 11..=12) => "Merchant Account Information (Amex)",
        (None, 13..=14) => "Merchant Account Information (JCB)",
        (None, 15..=16) => "Merchant Account Information (UnionPay)",
        (None, 2..=25) => "Merchant Account Information (EMVCo)",
        (None, 26..=51) => "Merchant Account Information (template)",
        (None, 52) => "Merchant Category Code",
        (None, 53) => "Transaction Currency",
        (None, 54) => "Transaction Amount",
        (None, 55) => "Tip or Convenience Indicator",
        (None, 56) => "Value of Convenience Fee Fixed",
        (None, 57) => "Value of Convenience Fee Percentage",
        (None, 58) => "Country Code",
        (None, 59) => "Merchant Name",
        (None, 60) => "Merchant City",
        (None, 61) => "Postal Code",
        (None, 62) => "Additional Data Field Template",
        (None, 63) => "CRC",
        (None, 64) => "Merchant Information - Language Template",
        (None, 65..=79) => "RFU for EMVCo",
        (None, 80..=99) => "Unreserved Template",
        (Some(62), 1) => "Bill Number",
        (Some(62), 2) => "Mobile Number",
        (Some(62), 3) => "Store Label",
        (Some(62), 4) => "Loyalty Number",
        (Some(62), 5) => "Reference Label",
        (Some(62), 6) => "Customer Label",
        (Some(62), 7) => "Terminal Label",
        (Some(62), 8) => "Purpose of Transaction",
        (Some(62), 9) => "Additional Consumer Data Request",
        (Some(62), 10) => "Merchant Tax ID",
        (Some(62), 11) => "Merchant Channel",
        (Some(62), 50..=99) => "Payment System Specific",
        (Some(64), 0) => "Language Preference",
        (Some(64), 1) => "Merchant Name - Alternate Language",
        (Some(64), 2) => "Merchant City - Alternate Language",
        (Some(_), 0) => "Globally Unique Identifier",
        (Some(_), _) => "Payment network specific",
        (None, _) => "Unknown",
    }
}

/// Tags whose value is a card number or track data: never shown in clear.
fn sensitive(tag: &[u8]) -> Option<Sensitive> {
    match tag {
        [0x5A] => Some(Sensitive::PanBcd),
        [0x57] => Some(Sensitive::Track2Bcd),
        [0x56] | [0x9F, 0x6B] | [0x9F, 0x1F] | [0x9F, 0x20] | [0x5F, 0x20] => {
            Some(Sensitive::Withheld)
        }
        _ => None,
    }
}

enum Sensitive {
    PanBcd,
    Track2Bcd,
    Withheld,
}

fn cpm_name(tag: &[u8]) -> Option<&'static str> {
    Some(match tag {
        [0x85] => "Payload Format Indicator",
        [0x61] => "Application Template",
        [0x62] => "Common Data Template",
        [0x63] => "Application Specific Transparent Template",
        [0x64] => "Common Data Transparent Template",
        [0x4F] => "Application Definition File (ADF) Name",
        [0x50] => "Application Label",
        [0x56] => "Track 1 Data",
        [0x57] => "Track 2 Equivalent Data",
        [0x5A] => "Application PAN",
        [0x82] => "Application Interchange Profile",
        [0x9F, 0x02] => "Amount, Authorised",
        [0x9F, 0x08] => "Application Version Number",
        [0x9F, 0x10] => "Issuer Application Data",
        [0x9F, 0x12] => "Application Preferred Name",
        [0x9F, 0x19] => "Token Requestor ID",
        [0x9F, 0x1F] => "Track 1 Discretionary Data",
        [0x9F, 0x20] => "Track 2 Discretionary Data",
        [0x9F, 0x24] => "Payment Account Reference",
        [0x9F, 0x25] => "Last 4 Digits of PAN",
        [0x9F, 0x26] => "Application Cryptogram",
        [0x9F, 0x27] => "Cryptogram Information Data",
        [0x9F, 0x36] => "Application Transaction Counter",
        [0x9F, 0x37] => "Unpredictable Number",
        [0x9F, 0x6B] => "Track 2 Data",
        [0x5F, 0x20] => "Cardholder Name",
        [0x5F, 0x2D] => "Language Preference",
        [0x5F, 0x50] => "Issuer URL",
        [0x9F, 0x74] => "Issuer Authorization Code",
        _ => return None,
    })
}

fn node(t: &Tlv) -> TlvNode {
    let tag = t.tag.as_bytes();
    let mut n = TlvNode {
        tag: t.tag.to_hex(),
        name: cpm_name(tag),
        constructed: matches!(t.value, TlvValue::Constructed(_)),
        length: 0,
        hex: None,
        text: None,
        masked: None,
        children: Vec::new(),
    };
    match &t.value {
        TlvValue::Constructed(children) => {
            n.children = children.iter().map(node).collect();
            n.length = super::tlv::encode(children).map_or(0, |b| b.len());
        }
        TlvValue::Primitive(v) => {
            n.length = v.len();
            match sensitive(tag) {
                Some(Sensitive::PanBcd) => {
                    let digits = hex::encode_upper(v);
                    n.masked = Some(classify::mask_pan(digits.trim_end_matches('F')));
                }
                Some(Sensitive::Track2Bcd) => {
                    let digits = hex::encode_upper(v);
                    let pan = digits.split('D').next().unwrap_or("");
                    n.masked = Some(format!(
                        "{} (rest withheld)",
                        classify::mask_pan(pan.trim_end_matches('F'))
                    ));
                }
                Some(Sensitive::Withheld) => n.masked = Some("(withheld)".into()),
                None => {
                    n.hex = Some(hex::encode_upper(v));
                    if !v.is_empty() && v.iter().all(|b| (0x20..0x7F).contains(b)) {
                        n.text = Some(String::from_utf8_lossy(v).into_owned());
                    }
                }
            }
        }
    }
    n
}

fn p1_details(t: &str, now: Option<u64>) -> Result<Details, CodeError> {
    let code = P1Code::from_text(t)?;
    let cred = &code.credential;
    let checks = P1Checks {
        user_signature_valid: code.user_signature_valid(),
        issuer_signature: "not checked (needs the terminal's issuer keys)",
        credential_valid_now: now
            .map(|n| u64::from(cred.valid_from) <= n && n <= u64::from(cred.valid_until)),
        code_age_s: now.map(|n| {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            n.saturating_sub(i64::from(code.timestamp))
        }),
    };
    Ok(Details::P1 {
        credential: CredentialView::from(cred),
        code: P1CodeView {
            timestamp: code.timestamp,
            counter: code.counter,
            user_sig: hex::encode(code.user_sig),
        },
        checks,
    })
}

/// `YYYY-MM-DD HH:MM:SSZ` for unix seconds (proleptic Gregorian, UTC).
#[must_use]
pub fn format_unix(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, on non-negative days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kind:     {} ({})", self.kind_name, self.kind.as_str())?;
        writeln!(f, "length:   {} characters", self.length)?;
        writeln!(f, "handling: {}", self.handling)?;
        match &self.details {
            Details::WalletCode { channel, digits } => {
                writeln!(f, "channel:  {channel}, {digits} digits")?;
            }
            Details::EmvCpm { applications, tlv } => {
                writeln!(f, "applications: {applications}")?;
                writeln!(f, "BER-TLV:")?;
                for n in tlv {
                    write_node(f, n, 1)?;
                }
            }
            Details::EmvMpm {
                dynamic,
                fields,
                crc,
                amount_minor,
                currency,
                missing_mandatory,
            } => {
                writeln!(
                    f,
                    "type:     {}",
                    if *dynamic { "dynamic (12)" } else { "static" }
                )?;
                if let (Some(a), Some(c)) = (amount_minor, currency) {
                    if let Some(cur) = Currency::from_alpha(c) {
                        writeln!(f, "amount:   {} {c}", cur.format_minor(*a))?;
                    }
                }
                writeln!(
                    f,
                    "crc:      {} (computed {}, {})",
                    crc.stated,
                    crc.computed,
                    if crc.valid { "valid" } else { "INVALID" }
                )?;
                if !missing_mandatory.is_empty() {
                    writeln!(
                        f,
                        "note:     EMVCo-mandatory tags absent: {}",
                        missing_mandatory.join(", ")
                    )?;
                }
                writeln!(f, "fields:")?;
                for fv in fields {
                    writeln!(f, "  {} {:<44} {:?}", fv.tag, fv.name, fv.value)?;
                    for s in &fv.sub_fields {
                        writeln!(f, "     {} {:<41} {:?}", s.tag, s.name, s.value)?;
                    }
                }
            }
            Details::P1 {
                credential: c,
                code,
                checks,
            } => {
                writeln!(f, "credential:")?;
                writeln!(f, "  version        {}", c.version)?;
                writeln!(f, "  issuer key id  {}", c.issuer_key_id)?;
                writeln!(f, "  user id        {}", c.user_id)?;
                writeln!(f, "  user key       {}", c.user_pubkey)?;
                writeln!(
                    f,
                    "  valid          {} .. {}",
                    format_unix(u64::from(c.valid_from)),
                    format_unix(u64::from(c.valid_until))
                )?;
                let cur = Currency::from_numeric(c.currency);
                match cur {
                    Some(cur) => writeln!(
                        f,
                        "  max amount     {} {} ({})",
                        cur.format_minor(u64::from(c.max_amount)),
                        cur.alpha,
                        c.currency
                    )?,
                    None => writeln!(
                        f,
                        "  max amount     {} minor units, currency {}",
                        c.max_amount, c.currency
                    )?,
                }
                writeln!(f, "  issuer sig     {}", c.issuer_sig)?;
                writeln!(f, "  fingerprint    {}", c.fingerprint)?;
                writeln!(f, "code:")?;
                writeln!(
                    f,
                    "  timestamp      {} ({})",
                    code.timestamp,
                    format_unix(u64::from(code.timestamp))
                )?;
                writeln!(f, "  counter        {}", code.counter)?;
                writeln!(f, "  user sig       {}", code.user_sig)?;
                writeln!(f, "checks:")?;
                writeln!(
                    f,
                    "  user signature {}",
                    if checks.user_signature_valid {
                        "valid"
                    } else {
                        "INVALID"
                    }
                )?;
                writeln!(f, "  issuer sig     {}", checks.issuer_signature)?;
                if let Some(v) = checks.credential_valid_now {
                    writeln!(f, "  valid now      {}", if v { "yes" } else { "NO" })?;
                }
                if let Some(age) = checks.code_age_s {
                    writeln!(f, "  code age       {age} s")?;
                }
            }
            Details::ReceiptRef(r) => {
                writeln!(f, "terminal: {}", r.terminal)?;
                writeln!(f, "txn id:   {}", r.txn_id)?;
            }
            Details::CardTrack(c) => {
                let tracks = match (c.track1, c.track2) {
                    (true, true) => "1 and 2",
                    (true, false) => "1",
                    _ => "2",
                };
                writeln!(f, "tracks:   {tracks}")?;
                writeln!(f, "PAN:      {}", c.masked_pan)?;
                if let Some(k) = &c.checks {
                    writeln!(f, "checks:")?;
                    writeln!(
                        f,
                        "  check digit    {}",
                        if k.luhn { "ok (Luhn)" } else { "WRONG (Luhn)" }
                    )?;
                    writeln!(f, "  network        {}", k.brand)?;
                    let exp = match k.expired {
                        Some(true) => "expired",
                        Some(false) => "valid",
                        None => "not checked (no time)",
                    };
                    writeln!(f, "  expiry         {} ({exp})", k.expiry)?;
                    writeln!(
                        f,
                        "  service code   {} ({}{})",
                        k.service_code,
                        if k.service_code_ok {
                            "accepted"
                        } else {
                            "not accepted"
                        },
                        if k.chip {
                            "; chip card: refused where a chip reader exists, a fallback swipe otherwise"
                        } else {
                            ""
                        }
                    )?;
                }
            }
        }
        Ok(())
    }
}

fn write_node(f: &mut fmt::Formatter<'_>, n: &TlvNode, depth: usize) -> fmt::Result {
    let indent = "  ".repeat(depth);
    let name = n.name.unwrap_or("");
    write!(f, "{indent}{} {name} [{}]", n.tag, n.length)?;
    if let Some(m) = &n.masked {
        write!(f, " {m}")?;
    } else if let Some(t) = &n.text {
        write!(f, " {t:?}")?;
    } else if let Some(h) = &n.hex {
        write!(f, " {h}")?;
    }
    writeln!(f)?;
    for c in &n.children {
        write_node(f, c, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapped error's reason is its message's, not a source as well: a chain printed whole
    /// (`posctl`'s errors) says it once.
    #[test]
    fn a_wrapped_reason_is_said_once() {
        let e = CodeError::from(P1Error::Padding);
        assert_eq!(
            e.to_string(),
            "P1 offline code: base64 padding ('=') is not allowed in a P1 code"
        );
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn unix_time_formatting() {
        assert_eq!(format_unix(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_unix(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(format_unix(1_763_766_479), "2025-11-21 23:07:59Z");
        assert_eq!(format_unix(u64::from(u32::MAX)), "2106-02-07 06:28:15Z");
    }

    #[test]
    fn unknown_text_explains_itself() {
        let p = Patterns::default();
        let e = inspect("12345", &p, None).unwrap_err();
        assert!(e.to_string().contains("5 digits"), "{e}");
        let e = inspect("000201010211", &p, None).unwrap_err();
        assert_eq!(e, CodeError::Mpm(MpmError::MissingCrc));
        let e = inspect("R1.x", &p, None).unwrap_err();
        assert!(e.to_string().contains("receipt"), "{e}");
        assert!(matches!(
            inspect("\u{7}", &p, None),
            Err(CodeError::Classify(_))
        ));
    }

    #[test]
    fn wallet_code_inspection() {
        let i = inspect("134567890123456789\n", &Patterns::default(), None).unwrap();
        assert_eq!(i.kind, CodeKind::WeChat);
        assert_eq!(i.length, 18);
        let json = serde_json::to_value(&i).unwrap();
        assert_eq!(json["kind"], "wechat");
        assert_eq!(json["format"], "wallet_code");
        assert_eq!(json["digits"], 18);
        assert!(i.to_string().contains("WeChat Pay"));
    }
}
