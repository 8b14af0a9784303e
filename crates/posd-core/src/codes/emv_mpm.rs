//! EMVCo merchant-presented QR codes ("MPM", EMV QRCPS Merchant-Presented Mode): parse and generate.
//!
//! Why it exists: for a merchant-presented sale (DESIGN §1.3) posd shows a dynamic payload carrying
//! the amount and a transaction reference, and the same codec lets posd recognise a merchant code
//! that a cashier scanned by mistake (Pix, PromptPay, SGQR, UnionPay...) and refuse it clearly.
//!
//! Format: a sequence of records `TT LL V…` where the tag `TT` and the length `LL` are two ASCII
//! digits each and **`LL` counts characters, not bytes** (tag `64` often carries Chinese or Thai).
//! Tags 26–51 (merchant account information), 62 (additional data), 64 (language template) and
//! 80–99 (unreserved) are templates whose value is itself a sequence of records. The payload starts
//! with `00` = `01` and ends with `63` = CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no
//! reflection, no final XOR) over the UTF-8 bytes of everything before the CRC value, i.e. up to
//! and including `6304`, written as four upper-case hex digits (lower case is accepted on input).
//!
//! The parser insists only on what every real payload obeys (`00`=`01` first, `63` last with a
//! valid CRC, well-formed records and templates, no repeated tag); the other tags the specification
//! calls mandatory (`52`, `53`, `58`, `59`, `60`, an account in `02`–`51`) are reported by
//! [`MpmPayload::missing_mandatory`] because national schemes (PromptPay) omit some of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::currency::Currency;

/// Longest value a record can hold (two length digits).
pub const MAX_VALUE_CHARS: usize = 99;

/// Why a merchant-presented payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MpmError {
    /// Nothing to parse.
    #[error("empty payload")]
    Empty,
    /// Fewer than the four characters of a tag and a length remain.
    #[error("truncated record at character {offset}: {remaining} characters left, a record needs at least 4")]
    Truncated {
        /// Character offset of the record.
        offset: usize,
        /// Characters left.
        remaining: usize,
    },
    /// A tag is not two ASCII digits.
    #[error("tag at character {offset} is not two digits: {found:?}")]
    NonDigitTag {
        /// Character offset of the tag.
        offset: usize,
        /// The two characters found.
        found: String,
    },
    /// A length is not two ASCII digits.
    #[error("length of tag {tag:02} at character {offset} is not two digits: {found:?}")]
    NonDigitLength {
        /// The tag.
        tag: u8,
        /// Character offset of the length.
        offset: usize,
        /// The two characters found.
        found: String,
    },
    /// A length announces more characters than remain.
    #[error("tag {tag:02} at character {offset} announces {declared} characters but only {remaining} remain")]
    LengthExceedsInput {
        /// The tag.
        tag: u8,
        /// Character offset of the record.
        offset: usize,
        /// Length announced.
        declared: usize,
        /// Characters left.
        remaining: usize,
    },
    /// A tag occurs twice at the same level.
    #[error("tag {tag:02} occurs more than once")]
    DuplicateTag {
        /// The tag.
        tag: u8,
    },
    /// The payload does not start with tag `00`.
    #[error("payload must start with tag 00 (payload format indicator), found {found:02}")]
    FirstTagNot00 {
        /// The first tag found.
        found: u8,
    },
    /// Tag `00` is not `01`.
    #[error("unsupported payload format indicator {0:?} (expected \"01\")")]
    UnsupportedFormat(String),
    /// There is no CRC (tag `63`).
    #[error("no CRC (tag 63)")]
    MissingCrc,
    /// Tag `63` is not the last record.
    #[error("CRC (tag 63) must be the last record")]
    CrcNotLast,
    /// Tag `63` is not four hex digits.
    #[error("CRC (tag 63) must be 4 hex digits, found {0:?}")]
    CrcFormat(String),
    /// The CRC does not match the payload.
    #[error("CRC mismatch: payload says {stated}, computed {computed}")]
    CrcMismatch {
        /// CRC written in the payload.
        stated: String,
        /// CRC computed over the payload.
        computed: String,
    },
    /// A template's value is not a well-formed sequence of records.
    #[error("template {tag:02}: {source}")]
    BadTemplate {
        /// The template tag.
        tag: u8,
        /// What is wrong inside it.
        source: Box<MpmError>,
    },
}

/// One record; templates carry their parsed sub-fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MpmField {
    /// Tag, 0–99 (serialised as two digits).
    #[serde(serialize_with = "ser_tag")]
    pub tag: u8,
    /// The value, exactly as in the payload.
    pub value: String,
    /// Sub-fields if this tag is a template ([`is_template_tag`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_fields: Option<Vec<MpmField>>,
}

fn ser_tag<S: serde::Serializer>(tag: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{tag:02}"))
}

/// A parsed, CRC-checked merchant-presented payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MpmPayload {
    /// Top-level records in payload order (the last one is `63`).
    pub fields: Vec<MpmField>,
    /// The CRC, as four upper-case hex digits (it matched).
    pub crc: String,
}

impl MpmPayload {
    /// The value of a top-level tag.
    #[must_use]
    pub fn get(&self, tag: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.tag == tag)
            .map(|f| f.value.as_str())
    }

    /// The sub-fields of a template tag.
    #[must_use]
    pub fn template(&self, tag: u8) -> Option<&[MpmField]> {
        self.fields
            .iter()
            .find(|f| f.tag == tag)
            .and_then(|f| f.sub_fields.as_deref())
    }

    /// The value of sub-field `sub` of template `tag`.
    #[must_use]
    pub fn sub(&self, tag: u8, sub: u8) -> Option<&str> {
        self.template(tag)?
            .iter()
            .find(|f| f.tag == sub)
            .map(|f| f.value.as_str())
    }

    /// Whether tag `01` says the code is dynamic (`12`: one use, amount inside).
    #[must_use]
    pub fn is_dynamic(&self) -> bool {
        self.get(1) == Some("12")
    }

    /// The tags the EMVCo specification calls mandatory that this payload lacks (`2` stands
    /// for "no merchant account information in 02–51").
    #[must_use]
    pub fn missing_mandatory(&self) -> Vec<u8> {
        let mut missing = Vec::new();
        if !self.fields.iter().any(|f| (2..=51).contains(&f.tag)) {
            missing.push(2);
        }
        for tag in [52, 53, 58, 59, 60] {
            if self.get(tag).is_none() {
                missing.push(tag);
            }
        }
        missing
    }

    /// The amount (tag `54`) in minor units of the payload's currency (tag `53`), if both are
    /// present and well-formed.
    #[must_use]
    pub fn amount_minor(&self) -> Option<(u64, Currency)> {
        let currency = Currency::from_numeric(self.get(53)?.parse().ok()?)?;
        Some((currency.parse_major(self.get(54)?)?, currency))
    }
}

/// Whether a top-level tag holds a template: 26–51, 62, 64, 80–99.
#[must_use]
pub fn is_template_tag(tag: u8) -> bool {
    matches!(tag, 26..=51 | 62 | 64 | 80..=99)
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR.
#[must_use]
pub fn crc16_ccitt_false(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A quick check used to recognise a merchant code: starts with `000201`, ends with a `6304`
/// record whose CRC matches. Does not parse the records in between.
#[must_use]
pub fn looks_like_valid_mpm(text: &str) -> bool {
    if !text.starts_with("000201") || text.len() < 14 {
        return false;
    }
    let Some(split) = text.len().checked_sub(4) else {
        return false;
    };
    let (Some(covered), Some(stated)) = (text.get(..split), text.get(split..)) else {
        return false;
    };
    covered.ends_with("6304")
        && u16::from_str_radix(stated, 16).ok() == Some(crc16_ccitt_false(covered.as_bytes()))
        && stated.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One raw record found by the tokenizer.
struct Record<'a> {
    tag: u8,
    value: &'a str,
    /// Byte offset of the value's first character.
    value_byte_start: usize,
}

/// Splits `text` into records. `base` is the character offset of `text` in the whole payload,
/// used only in error messages.
fn tokenize(text: &str, base: usize) -> Result<Vec<Record<'_>>, MpmError> {
    let mut records = Vec::new();
    let mut seen = [false; 100];
    let mut chars = text.char_indices().peekable();
    let mut char_pos = 0usize; // characters consumed so far
    let total_chars = text.chars().count();
    while chars.peek().is_some() {
        let offset = base + char_pos;
        let remaining = total_chars - char_pos;
        if remaining < 4 {
            return Err(MpmError::Truncated { offset, remaining });
        }
        let mut head = [' '; 4];
        for slot in &mut head {
            if let Some((_, c)) = chars.next() {
                *slot = c;
            }
        }
        char_pos += 4;
        let tag = two_digits(head[0], head[1]).ok_or_else(|| MpmError::NonDigitTag {
            offset,
            found: [head[0], head[1]].iter().collect(),
        })?;
        let declared = two_digits(head[2], head[3]).ok_or_else(|| MpmError::NonDigitLength {
            tag,
            offset: offset + 2,
            found: [head[2], head[3]].iter().collect(),
        })?;
        let declared = usize::from(declared);
        let remaining = total_chars - char_pos;
        if declared > remaining {
            return Err(MpmError::LengthExceedsInput {
                tag,
                offset,
                declared,
                remaining,
            });
        }
        let value_byte_start = chars.peek().map_or(text.len(), |&(i, _)| i);
        for _ in 0..declared {
            chars.next();
        }
        char_pos += declared;
        let value_byte_end = chars.peek().map_or(text.len(), |&(i, _)| i);
        let value = text.get(value_byte_start..value_byte_end).unwrap_or("");
        let seen_slot = seen
            .get_mut(usize::from(tag))
            .ok_or(MpmError::DuplicateTag { tag })?;
        if *seen_slot {
            return Err(MpmError::DuplicateTag { tag });
        }
        *seen_slot = true;
        records.push(Record {
            tag,
            value,
            value_byte_start,
        });
    }
    Ok(records)
}

fn two_digits(a: char, b: char) -> Option<u8> {
    let a = a.to_digit(10).filter(|_| a.is_ascii_digit())?;
    let b = b.to_digit(10).filter(|_| b.is_ascii_digit())?;
    u8::try_from(a * 10 + b).ok()
}

fn parse_template(value: &str, base: usize) -> Result<Vec<MpmField>, MpmError> {
    Ok(tokenize(value, base)?
        .into_iter()
        .map(|r| MpmField {
            tag: r.tag,
            value: r.value.to_owned(),
            sub_fields: None,
        })
        .collect())
}

/// Parses and checks a merchant-presented payload.
///
/// # Errors
/// The first [`MpmError`] found: record structure first, then `00`, then the CRC, then templates.
pub fn parse(text: &str) -> Result<MpmPayload, MpmError> {
    if text.is_empty() {
        return Err(MpmError::Empty);
    }
    let records = tokenize(text, 0)?;
    let first = records.first().ok_or(MpmError::Empty)?;
    if first.tag != 0 {
        return Err(MpmError::FirstTagNot00 { found: first.tag });
    }
    if first.value != "01" {
        return Err(MpmError::UnsupportedFormat(first.value.to_owned()));
    }
    let last = records.last().ok_or(MpmError::Empty)?;
    if last.tag != 63 {
        return Err(if records.iter().any(|r| r.tag == 63) {
            MpmError::CrcNotLast
        } else {
            MpmError::MissingCrc
        });
    }
    if last.value.len() != 4 || !last.value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(MpmError::CrcFormat(last.value.to_owned()));
    }
    let stated = last.value.to_ascii_uppercase();
    let covered = text.get(..last.value_byte_start).unwrap_or("");
    let computed = format!("{:04X}", crc16_ccitt_false(covered.as_bytes()));
    if stated != computed {
        return Err(MpmError::CrcMismatch { stated, computed });
    }
    let mut fields = Vec::with_capacity(records.len());
    for r in &records {
        let sub_fields = if is_template_tag(r.tag) {
            let base = text
                .get(..r.value_byte_start)
                .map_or(0, |p| p.chars().count());
            Some(
                parse_template(r.value, base).map_err(|e| MpmError::BadTemplate {
                    tag: r.tag,
                    source: Box::new(e),
                })?,
            )
        } else {
            None
        };
        fields.push(MpmField {
            tag: r.tag,
            value: r.value.to_owned(),
            sub_fields,
        });
    }
    Ok(MpmPayload {
        fields,
        crc: stated,
    })
}

/// Why a dynamic payload could not be generated (bad merchant configuration or sale data).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GenerateError {
    /// A value is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which value.
        what: String,
    },
    /// A value is longer than its field allows.
    #[error("{what} is {len} characters, at most {max} allowed")]
    TooLong {
        /// Which value.
        what: String,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value has a character the field does not allow.
    #[error("{what} {detail}")]
    Invalid {
        /// Which value.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// No merchant account template is configured.
    #[error("no merchant account template (tags 26-51) configured")]
    NoAccount,
    /// The currency is not known.
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    /// Zero amount for a dynamic code.
    #[error("amount must be greater than zero")]
    ZeroAmount,
    /// The generated payload failed its own re-parse (a bug; never shown a customer).
    #[error("generated payload does not re-parse: {0}")]
    SelfCheck(MpmError),
}

/// A merchant account information template (tag 26–51): globally unique identifier in
/// sub-field `00` plus scheme-specific sub-fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantAccount {
    /// Template tag, 26–51.
    pub tag: u8,
    /// Sub-field `00`: the scheme's globally unique identifier (AID or reverse domain name).
    pub guid: String,
    /// Further sub-fields, keyed by two-digit tag `"01"`–`"99"` (merchant id, acquirer id...).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// Merchant-language template (tag 64).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantLanguage {
    /// Sub-field `00`: ISO 639 two-letter language code.
    pub language: String,
    /// Sub-field `01`: merchant name in that language (≤ 25 characters).
    pub name: String,
    /// Sub-field `02`: merchant city in that language (≤ 15 characters).
    #[serde(default)]
    pub city: Option<String>,
}

/// What a terminal puts in every merchant-presented code it makes (from config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MpmMerchant {
    /// Merchant account templates (at least one).
    pub accounts: Vec<MerchantAccount>,
    /// Tag `52`: ISO 18245 merchant category code, four digits.
    pub merchant_category_code: String,
    /// Tag `58`: ISO 3166-1 alpha-2 country code.
    pub country_code: String,
    /// Tag `59`: merchant name (≤ 25 characters).
    pub merchant_name: String,
    /// Tag `60`: merchant city (≤ 15 characters).
    pub merchant_city: String,
    /// Tag `61`: postal code (≤ 10 characters).
    #[serde(default)]
    pub postal_code: Option<String>,
    /// Tag `64`: merchant name and city in another language.
    #[serde(default)]
    pub language: Option<MerchantLanguage>,
}

fn check_text(what: &str, value: &str, max: usize) -> Result<(), GenerateError> {
    let len = value.chars().count();
    if len == 0 {
        return Err(GenerateError::Empty { what: what.into() });
    }
    if len > max {
        return Err(GenerateError::TooLong {
            what: what.into(),
            len,
            max,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(GenerateError::Invalid {
            what: what.into(),
            detail: "contains a control character".into(),
        });
    }
    Ok(())
}

fn check_digits(what: &str, value: &str, len: usize) -> Result<(), GenerateError> {
    if value.len() != len || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GenerateError::Invalid {
            what: what.into(),
            detail: format!("must be {len} digits, got {value:?}"),
        });
    }
    Ok(())
}

fn sub_tag(what: &str, key: &str) -> Result<u8, GenerateError> {
    let mut it = key.chars();
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), None) => match two_digits(a, b) {
            Some(t) if t >= 1 => Ok(t),
            _ => Err(GenerateError::Invalid {
                what: what.into(),
                detail: format!("has sub-field key {key:?}, expected \"01\"-\"99\""),
            }),
        },
        _ => Err(GenerateError::Invalid {
            what: what.into(),
            detail: format!("has sub-field key {key:?}, expected \"01\"-\"99\""),
        }),
    }
}

impl MpmMerchant {
    /// Checks the configuration once, at load: every value fits its field.
    ///
    /// # Errors
    /// The first [`GenerateError`] found.
    pub fn validate(&self) -> Result<(), GenerateError> {
        self.account_records().map(|_| ())?;
        check_digits("merchant_category_code", &self.merchant_category_code, 4)?;
        if self.country_code.len() != 2
            || !self.country_code.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(GenerateError::Invalid {
                what: "country_code".into(),
                detail: format!(
                    "must be two upper-case letters, got {:?}",
                    self.country_code
                ),
            });
        }
        check_text("merchant_name", &self.merchant_name, 25)?;
        check_text("merchant_city", &self.merchant_city, 15)?;
        if let Some(p) = &self.postal_code {
            check_text("postal_code", p, 10)?;
        }
        if let Some(l) = &self.language {
            if l.language.len() != 2 || !l.language.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(GenerateError::Invalid {
                    what: "language.language".into(),
                    detail: format!("must be a two-letter ISO 639 code, got {:?}", l.language),
                });
            }
            check_text("language.name", &l.name, 25)?;
            if let Some(c) = &l.city {
                check_text("language.city", c, 15)?;
            }
        }
        Ok(())
    }

    /// The merchant account templates as (tag, value) records, sorted by tag.
    fn account_records(&self) -> Result<Vec<(u8, String)>, GenerateError> {
        if self.accounts.is_empty() {
            return Err(GenerateError::NoAccount);
        }
        let mut out: Vec<(u8, String)> = Vec::new();
        for a in &self.accounts {
            let what = format!("account {}", a.tag);
            if !(26..=51).contains(&a.tag) {
                return Err(GenerateError::Invalid {
                    what,
                    detail: "tag must be 26-51".into(),
                });
            }
            if out.iter().any(|(t, _)| *t == a.tag) {
                return Err(GenerateError::Invalid {
                    what,
                    detail: "is configured twice".into(),
                });
            }
            check_text(&format!("{what} guid"), &a.guid, 32)?;
            let mut value = record(0, &a.guid);
            for (k, v) in &a.fields {
                let t = sub_tag(&what, k)?;
                check_text(&format!("{what} field {k}"), v, MAX_VALUE_CHARS)?;
                value.push_str(&record(t, v));
            }
            check_text(&what, &value, MAX_VALUE_CHARS)?;
            out.push((a.tag, value));
        }
        out.sort_by_key(|(t, _)| *t);
        Ok(out)
    }
}

/// One record `TTLLV`; the caller has checked that `value` is 1–99 characters.
fn record(tag: u8, value: &str) -> String {
    format!("{tag:02}{:02}{value}", value.chars().count())
}

/// Makes a dynamic merchant-presented payload for one sale.
///
/// `amount_minor` is in minor units of `currency` (alphabetic ISO 4217); `reference` goes in
/// tag `62` sub-field `05` (reference label) and `terminal_label` in `62`/`07` (each ≤ 25
/// characters). Records are written in ascending tag order, `63` (CRC) last; the result is
/// re-parsed before it is returned.
///
/// # Errors
/// [`GenerateError`] if the configuration or the sale data does not fit the format.
pub fn generate_dynamic(
    merchant: &MpmMerchant,
    amount_minor: u64,
    currency: &str,
    reference: &str,
    terminal_label: &str,
) -> Result<String, GenerateError> {
    merchant.validate()?;
    let cur = Currency::from_alpha(currency)
        .ok_or_else(|| GenerateError::UnknownCurrency(currency.to_owned()))?;
    if amount_minor == 0 {
        return Err(GenerateError::ZeroAmount);
    }
    let amount = cur.format_minor(amount_minor);
    check_text("amount", &amount, 13)?;
    check_text("reference", reference, 25)?;
    check_text("terminal_label", terminal_label, 25)?;

    let mut out = String::new();
    out.push_str(&record(0, "01"));
    out.push_str(&record(1, "12"));
    for (tag, value) in merchant.account_records()? {
        out.push_str(&record(tag, &value));
    }
    out.push_str(&record(52, &merchant.merchant_category_code));
    out.push_str(&record(53, &cur.numeric_str()));
    out.push_str(&record(54, &amount));
    out.push_str(&record(58, &merchant.country_code));
    out.push_str(&record(59, &merchant.merchant_name));
    out.push_str(&record(60, &merchant.merchant_city));
    if let Some(p) = &merchant.postal_code {
        out.push_str(&record(61, p));
    }
    let additional = format!("{}{}", record(5, reference), record(7, terminal_label));
    check_text("additional data (62)", &additional, MAX_VALUE_CHARS)?;
    out.push_str(&record(62, &additional));
    if let Some(l) = &merchant.language {
        let mut v = format!("{}{}", record(0, &l.language), record(1, &l.name));
        if let Some(c) = &l.city {
            v.push_str(&record(2, c));
        }
        check_text("language template (64)", &v, MAX_VALUE_CHARS)?;
        out.push_str(&record(64, &v));
    }
    out.push_str("6304");
    let crc = crc16_ccitt_false(out.as_bytes());
    out.push_str(&format!("{crc:04X}"));
    parse(&out).map_err(GenerateError::SelfCheck)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EMVCo's own example payload (EMV QRCPS MPM, appendix), CRC A13A.
    const EMVCO: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";

    #[test]
    fn crc_reference_value() {
        // The CRC-16/CCITT-FALSE check value.
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
        assert_eq!(crc16_ccitt_false(b""), 0xFFFF);
    }

    #[test]
    fn parses_emvco_example_with_character_lengths() {
        let p = parse(EMVCO).unwrap();
        assert_eq!(p.crc, "A13A");
        assert_eq!(p.sub(64, 1), Some("最佳运输"));
        assert_eq!(p.sub(64, 2), Some("北京"));
        assert_eq!(p.sub(29, 0), Some("D15600000000"));
        assert_eq!(p.sub(91, 7), Some("12345678"));
        assert_eq!(p.get(59), Some("BEST TRANSPORT"));
        assert!(p.is_dynamic());
        let (amount, cur) = p.amount_minor().unwrap();
        assert_eq!((amount, cur.alpha), (2372, "CNY"));
        assert!(p.missing_mandatory().is_empty());
        assert!(looks_like_valid_mpm(EMVCO));
    }

    #[test]
    fn refuses_bad_crc_and_structure() {
        let bad_crc = EMVCO.replace("6304A13A", "6304A13B");
        assert_eq!(
            parse(&bad_crc),
            Err(MpmError::CrcMismatch {
                stated: "A13B".into(),
                computed: "A13A".into()
            })
        );
        assert!(!looks_like_valid_mpm(&bad_crc));
        // lower-case CRC is accepted
        assert!(parse(&EMVCO.replace("6304A13A", "6304a13a")).is_ok());
        assert!(matches!(
            parse("0002010"),
            Err(MpmError::Truncated {
                offset: 6,
                remaining: 1
            })
        ));
        assert!(matches!(parse("000201010212"), Err(MpmError::MissingCrc)));
        assert!(matches!(
            parse("00020163041234010212"),
            Err(MpmError::CrcNotLast)
        ));
        assert!(matches!(
            parse("0002015909ABC"),
            Err(MpmError::LengthExceedsInput {
                tag: 59,
                declared: 9,
                remaining: 3,
                ..
            })
        ));
        assert!(matches!(
            parse("0002010A0212"),
            Err(MpmError::NonDigitTag { offset: 6, .. })
        ));
        assert!(matches!(
            parse("00020101x212"),
            Err(MpmError::NonDigitLength { tag: 1, .. })
        ));
        assert!(matches!(
            parse("01021200020163040000"),
            Err(MpmError::FirstTagNot00 { found: 1 })
        ));
        assert!(matches!(
            parse("000202"),
            Err(MpmError::UnsupportedFormat(_))
        ));
        assert!(matches!(
            parse("0002010002016304ABCD"),
            Err(MpmError::DuplicateTag { tag: 0 })
        ));
        assert!(matches!(
            parse("0002016303ABC"),
            Err(MpmError::CrcFormat(_))
        ));
        assert_eq!(parse(""), Err(MpmError::Empty));
        // Full-width digits are not digits here.
        assert!(matches!(
            parse("０００２01"),
            Err(MpmError::NonDigitTag { .. })
        ));
    }

    #[test]
    fn refuses_malformed_template() {
        // 26 holds "ABCD" which is not a record sequence; give it a correct CRC.
        let mut s = String::from("000201") + "2604ABCD" + "6304";
        s.push_str(&format!("{:04X}", crc16_ccitt_false(s.as_bytes())));
        assert!(matches!(
            parse(&s),
            Err(MpmError::BadTemplate { tag: 26, .. })
        ));
    }

    fn merchant() -> MpmMerchant {
        MpmMerchant {
            accounts: vec![MerchantAccount {
                tag: 26,
                guid: "A000000333010108".into(),
                fields: [("01".to_string(), "123456789012345".to_string())].into(),
            }],
            merchant_category_code: "5812".into(),
            country_code: "CN".into(),
            merchant_name: "老王面馆".into(),
            merchant_city: "上海".into(),
            postal_code: None,
            language: Some(MerchantLanguage {
                language: "en".into(),
                name: "Lao Wang Noodles".into(),
                city: Some("Shanghai".into()),
            }),
        }
    }

    #[test]
    fn generates_dynamic_payload_that_reparses() {
        let text = generate_dynamic(&merchant(), 2372, "CNY", "T20261121-0001", "POS-01").unwrap();
        let p = parse(&text).unwrap();
        assert_eq!(p.get(0), Some("01"));
        assert_eq!(p.get(1), Some("12"));
        assert_eq!(p.sub(26, 0), Some("A000000333010108"));
        assert_eq!(p.sub(26, 1), Some("123456789012345"));
        assert_eq!(p.get(52), Some("5812"));
        assert_eq!(p.get(53), Some("156"));
        assert_eq!(p.get(54), Some("23.72"));
        assert_eq!(p.get(58), Some("CN"));
        assert_eq!(p.get(59), Some("老王面馆"));
        assert_eq!(p.get(60), Some("上海"));
        assert_eq!(p.sub(62, 5), Some("T20261121-0001"));
        assert_eq!(p.sub(62, 7), Some("POS-01"));
        assert_eq!(p.sub(64, 1), Some("Lao Wang Noodles"));
        assert!(p.missing_mandatory().is_empty());
        assert!(looks_like_valid_mpm(&text));
        assert_eq!(p.fields.last().map(|f| f.tag), Some(63));
        // amount of a zero-decimal currency
        let jpy = generate_dynamic(&merchant(), 500, "JPY", "R", "T").unwrap();
        assert_eq!(parse(&jpy).unwrap().get(54), Some("500"));
    }

    #[test]
    fn generation_refuses_bad_input() {
        let m = merchant();
        assert_eq!(
            generate_dynamic(&m, 0, "CNY", "R", "T"),
            Err(GenerateError::ZeroAmount)
        );
        assert!(matches!(
            generate_dynamic(&m, 1, "XXX", "R", "T"),
            Err(GenerateError::UnknownCurrency(_))
        ));
        assert!(matches!(
            generate_dynamic(&m, 1, "CNY", &"r".repeat(26), "T"),
            Err(GenerateError::TooLong {
                max: 25,
                len: 26,
                ..
            })
        ));
        assert!(generate_dynamic(&m, 1, "CNY", &"r".repeat(25), "T").is_ok());
        assert!(matches!(
            generate_dynamic(&m, 1, "CNY", "", "T"),
            Err(GenerateError::Empty { .. })
        ));
        assert!(matches!(
            generate_dynamic(&m, 1, "CNY", "a\nb", "T"),
            Err(GenerateError::Invalid { .. })
        ));
        // 13 characters is the most tag 54 holds: 9999999999.99 fits, one more digit does not.
        assert!(generate_dynamic(&m, 999_999_999_999, "CNY", "R", "T").is_ok());
        assert!(matches!(
            generate_dynamic(&m, 10_000_000_000_000, "CNY", "R", "T"),
            Err(GenerateError::TooLong { max: 13, .. })
        ));
        let mut bad = merchant();
        bad.accounts.clear();
        assert_eq!(bad.validate(), Err(GenerateError::NoAccount));
        let mut bad = merchant();
        bad.accounts[0].tag = 52;
        assert!(bad.validate().is_err());
        let mut bad = merchant();
        bad.merchant_category_code = "58a2".into();
        assert!(bad.validate().is_err());
        let mut bad = merchant();
        bad.merchant_name = "x".repeat(26);
        assert!(bad.validate().is_err());
        let mut bad = merchant();
        bad.accounts[0].fields.insert("1".into(), "x".into());
        assert!(bad.validate().is_err());
        let mut bad = merchant();
        bad.accounts[0].fields.insert("02".into(), "x".repeat(90));
        assert!(matches!(bad.validate(), Err(GenerateError::TooLong { .. })));
    }
}
