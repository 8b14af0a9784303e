//! EMVCo consumer-presented QR codes ("CPM", EMV QRCPS Consumer-Presented Mode).
//!
//! Why it exists: a card-scheme wallet shows the POS a QR holding base64 of BER-TLV data that
//! starts with the payload format indicator `85` = `CPV01`, followed by application templates
//! (`61`, with AID, PAN or token, cryptogram...) and an optional common data template (`62`).
//! posd does not interpret the cryptogram: it recognises the code, checks that it is well formed,
//! and sends the text to the host unchanged (DESIGN §1.1). Parsing it fully also lets
//! `posctl code inspect` show the tree, with card numbers masked.
//!
//! Recognition decodes and parses the whole text rather than matching a prefix: every CPM text
//! begins `hQVDUFYwM` (base64 of `85 05 "CPV01"`), but the tenth character depends on the next
//! byte (`hQVDUFYwMWE…` when an application template `61` follows, as it must), so the
//! `hQVDUFYwMQ` prefix quoted in DESIGN §1.1 only fits a payload holding nothing but the indicator,
//! which the specification (and this parser) refuses.

use base64::Engine;
use thiserror::Error;

use super::tlv::{self, Tlv, TlvError, TlvValue};

/// The payload format indicator value of version 1.
pub const CPM_FORMAT: &[u8] = b"CPV01";
/// Tag of the payload format indicator.
pub const TAG_FORMAT: u8 = 0x85;
/// Tag of an application template.
pub const TAG_APPLICATION: u8 = 0x61;

/// Why a text is not a consumer-presented payload.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CpmError {
    /// Not valid base64.
    #[error("not valid base64: {0}")]
    Base64(String),
    /// Not valid BER-TLV.
    #[error("not valid BER-TLV: {0}")]
    Tlv(TlvError),
    /// Decodes to nothing.
    #[error("empty payload")]
    Empty,
    /// The first data object is not `85` = `CPV01`.
    #[error("first data object must be 85 = \"CPV01\"")]
    NotCpv01,
    /// No application template (`61`): the specification requires at least one.
    #[error("no application template (61)")]
    NoApplication,
}

crate::wraps_error!(CpmError { Tlv(TlvError) });

/// A parsed consumer-presented payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpmPayload {
    /// Every top-level data object, the first being `85`.
    pub objects: Vec<Tlv>,
}

impl CpmPayload {
    /// The application templates (`61`).
    pub fn applications(&self) -> impl Iterator<Item = &Tlv> {
        self.objects
            .iter()
            .filter(|o| o.tag.as_bytes() == [TAG_APPLICATION])
    }
}

/// Decodes base64 (standard alphabet, padding optional) and parses the BER-TLV.
///
/// # Errors
/// [`CpmError`].
pub fn parse(text: &str) -> Result<CpmPayload, CpmError> {
    let bytes = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
        .decode(text)
        .map_err(|e| CpmError::Base64(e.to_string()))?;
    parse_bytes(&bytes)
}

/// Parses the decoded BER-TLV bytes.
///
/// # Errors
/// [`CpmError`].
pub fn parse_bytes(bytes: &[u8]) -> Result<CpmPayload, CpmError> {
    let objects = tlv::parse(bytes)?;
    let first = objects.first().ok_or(CpmError::Empty)?;
    match (&first.value, first.tag.as_bytes()) {
        (TlvValue::Primitive(v), [TAG_FORMAT]) if v.as_slice() == CPM_FORMAT => {}
        _ => return Err(CpmError::NotCpv01),
    }
    let payload = CpmPayload { objects };
    if payload.applications().next().is_none() {
        return Err(CpmError::NoApplication);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::tlv::Tag;

    fn sample() -> Vec<Tlv> {
        let t = |b: &[u8]| Tag::from_bytes(b).unwrap();
        vec![
            Tlv::primitive(t(&[0x85]), b"CPV01".to_vec()),
            Tlv::constructed(
                t(&[0x61]),
                vec![
                    Tlv::primitive(t(&[0x4F]), vec![0xA0, 0, 0, 0, 0x03, 0x10, 0x10]),
                    Tlv::primitive(t(&[0x50]), b"VISA".to_vec()),
                    Tlv::primitive(
                        t(&[0x5A]),
                        vec![0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x00, 0x10],
                    ),
                    Tlv::constructed(
                        t(&[0x63]),
                        vec![Tlv::primitive(t(&[0x9F, 0x26]), vec![0x11; 8])],
                    ),
                ],
            ),
        ]
    }

    #[test]
    fn parses_base64_cpm() {
        let bytes = tlv::encode(&sample()).unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        // Every CPM text starts "hQVDUFYwM" (85 05 "CPV01"); the 10th character depends on the next tag.
        assert!(text.starts_with("hQVDUFYwM"));
        let p = parse(&text).unwrap();
        assert_eq!(p.objects, sample());
        assert_eq!(p.applications().count(), 1);
        // padding is optional
        assert_eq!(parse(text.trim_end_matches('=')).unwrap(), p);
    }

    #[test]
    fn refuses_non_cpm() {
        assert!(matches!(parse("!!!"), Err(CpmError::Base64(_))));
        assert_eq!(parse(""), Err(CpmError::Empty));
        let other = tlv::encode(&[Tlv::primitive(
            Tag::single(0x85).unwrap(),
            b"CPV02".to_vec(),
        )])
        .unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(other);
        assert_eq!(parse(&text), Err(CpmError::NotCpv01));
        let only_pfi = tlv::encode(&sample()[..1]).unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(only_pfi);
        assert_eq!(text, "hQVDUFYwMQ==");
        assert_eq!(parse(&text), Err(CpmError::NoApplication));
        let mut bytes = tlv::encode(&sample()).unwrap();
        bytes.pop();
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(matches!(parse(&text), Err(CpmError::Tlv(_))));
    }
}
