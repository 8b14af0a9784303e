//! BER-TLV (ISO/IEC 8825-1 as profiled by EMV Book 3, Annex B) decoding and encoding.
//!
//! Why it exists: the EMVCo consumer-presented QR code ("CPM", DESIGN §1.1) is base64 of a BER-TLV
//! structure with nested templates (`61` application template, `62`/`63`/`64` common and transparent
//! templates). posd must recognise such codes, route them to the host untouched, and show them
//! field by field in `posctl code inspect`. The codec is pure and bounded: multi-byte tags of at most
//! [`MAX_TAG_LEN`] bytes, definite lengths of at most four length bytes, constructed objects nested
//! at most [`MAX_DEPTH`] deep, and every length checked against the bytes actually present, so no
//! input can make it panic, recurse without bound or allocate more than the input size.
//!
//! The encoder writes minimal definite lengths; it exists for tests, round trips and the test wallet.

use core::fmt;

use thiserror::Error;

/// Longest tag accepted, in bytes (EMV uses at most 3; 4 leaves room and is still unambiguous).
pub const MAX_TAG_LEN: usize = 4;
/// Deepest nesting of constructed objects accepted (top level = depth 1).
pub const MAX_DEPTH: usize = 16;
/// Most length bytes accepted after a long-form length indicator (`0x81`..=`0x84`).
pub const MAX_LENGTH_BYTES: usize = 4;

/// Why a BER-TLV byte string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlvError {
    /// The input ended inside a tag.
    #[error("truncated tag at offset {offset}")]
    TruncatedTag {
        /// Offset of the tag's first byte.
        offset: usize,
    },
    /// A multi-byte tag is longer than [`MAX_TAG_LEN`] bytes.
    #[error("tag at offset {offset} is longer than {MAX_TAG_LEN} bytes")]
    TagTooLong {
        /// Offset of the tag's first byte.
        offset: usize,
    },
    /// The input ended inside a length field.
    #[error("truncated length at offset {offset}")]
    TruncatedLength {
        /// Offset of the length field.
        offset: usize,
    },
    /// The indefinite length form (`0x80`) is not allowed in EMV data.
    #[error("indefinite length at offset {offset} is not allowed")]
    IndefiniteLength {
        /// Offset of the length field.
        offset: usize,
    },
    /// The long-form length uses more than [`MAX_LENGTH_BYTES`] bytes (or a reserved value).
    #[error("length at offset {offset} uses {count} length bytes (at most {MAX_LENGTH_BYTES})")]
    LengthTooLong {
        /// Offset of the length field.
        offset: usize,
        /// Number of length bytes announced.
        count: usize,
    },
    /// The length announces more value bytes than the input (or the enclosing template) holds.
    #[error("tag {tag} at offset {offset} announces {declared} bytes but only {available} remain")]
    ValueTruncated {
        /// The tag whose value is cut.
        tag: Tag,
        /// Offset of the tag.
        offset: usize,
        /// Length announced.
        declared: usize,
        /// Bytes actually left.
        available: usize,
    },
    /// Constructed objects are nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels at offset {offset}")]
    TooDeep {
        /// Offset of the object that would be too deep.
        offset: usize,
    },
    /// Encoding only: a value's kind does not match its tag's constructed bit.
    #[error("tag {tag} is {expected} but its value is not")]
    KindMismatch {
        /// The tag.
        tag: Tag,
        /// `"constructed"` or `"primitive"`.
        expected: &'static str,
    },
    /// Encoding only: a value is longer than a 4-byte length can express.
    #[error("value of tag {tag} is too long to encode")]
    ValueTooLong {
        /// The tag.
        tag: Tag,
    },
    /// Tag bytes given to [`Tag::from_bytes`] do not form exactly one well-formed tag.
    #[error("invalid tag bytes {0}")]
    InvalidTag(String),
}

/// Tag class (bits 8–7 of the first tag byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TagClass {
    /// `00`: universal.
    Universal,
    /// `01`: application (EMV `4F`, `50`, `57`, `5A`, `61`...).
    Application,
    /// `10`: context-specific (EMV `82`, `84`, `85`, `9F..`).
    ContextSpecific,
    /// `11`: private.
    Private,
}

/// A BER tag: its raw bytes (1 to [`MAX_TAG_LEN`]), kept as they appeared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    raw: [u8; MAX_TAG_LEN],
    len: u8,
}

impl Tag {
    /// The tag made of exactly these bytes.
    ///
    /// # Errors
    /// [`TlvError::InvalidTag`] unless `bytes` is exactly one well-formed tag.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TlvError> {
        match read_tag(bytes, 0) {
            Ok((tag, used)) if used == bytes.len() => Ok(tag),
            _ => Err(TlvError::InvalidTag(hex::encode_upper(bytes))),
        }
    }

    /// A one-byte tag. Fails for `0x1F`-style first bytes that announce more tag bytes.
    ///
    /// # Errors
    /// [`TlvError::InvalidTag`] if `b` is the first byte of a multi-byte tag.
    pub fn single(b: u8) -> Result<Self, TlvError> {
        Self::from_bytes(&[b])
    }

    /// The raw tag bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.raw.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Whether the constructed bit (bit 6 of the first byte) is set.
    #[must_use]
    pub fn is_constructed(&self) -> bool {
        self.raw[0] & 0x20 != 0
    }

    /// The tag's class.
    #[must_use]
    pub fn class(&self) -> TagClass {
        match self.raw[0] >> 6 {
            0 => TagClass::Universal,
            1 => TagClass::Application,
            2 => TagClass::ContextSpecific,
            _ => TagClass::Private,
        }
    }

    /// Upper-case hex of the tag bytes (`"9F26"`).
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.as_bytes())
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({})", self.to_hex())
    }
}

impl serde::Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// The value of a data object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlvValue {
    /// Primitive: raw value bytes.
    Primitive(Vec<u8>),
    /// Constructed: the nested data objects.
    Constructed(Vec<Tlv>),
}

/// One BER-TLV data object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// Its tag.
    pub tag: Tag,
    /// Its value.
    pub value: TlvValue,
}

impl Tlv {
    /// A primitive object.
    #[must_use]
    pub fn primitive(tag: Tag, value: impl Into<Vec<u8>>) -> Self {
        Self {
            tag,
            value: TlvValue::Primitive(value.into()),
        }
    }

    /// A constructed object.
    #[must_use]
    pub fn constructed(tag: Tag, children: Vec<Tlv>) -> Self {
        Self {
            tag,
            value: TlvValue::Constructed(children),
        }
    }

    /// The first direct child with this tag (constructed objects only).
    #[must_use]
    pub fn child(&self, tag: Tag) -> Option<&Tlv> {
        match &self.value {
            TlvValue::Constructed(children) => children.iter().find(|c| c.tag == tag),
            TlvValue::Primitive(_) => None,
        }
    }

    /// The primitive value bytes, if primitive.
    #[must_use]
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.value {
            TlvValue::Primitive(v) => Some(v),
            TlvValue::Constructed(_) => None,
        }
    }

    /// Appends the encoding of this object to `out`.
    ///
    /// # Errors
    /// [`TlvError::KindMismatch`] if the value kind contradicts the tag's constructed bit,
    /// [`TlvError::ValueTooLong`] if a value does not fit a 4-byte length.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), TlvError> {
        out.extend_from_slice(self.tag.as_bytes());
        match &self.value {
            TlvValue::Primitive(v) => {
                if self.tag.is_constructed() {
                    return Err(TlvError::KindMismatch {
                        tag: self.tag,
                        expected: "primitive",
                    });
                }
                write_length(out, v.len(), self.tag)?;
                out.extend_from_slice(v);
            }
            TlvValue::Constructed(children) => {
                if !self.tag.is_constructed() {
                    return Err(TlvError::KindMismatch {
                        tag: self.tag,
                        expected: "constructed",
                    });
                }
                let mut inner = Vec::new();
                for c in children {
                    c.encode_into(&mut inner)?;
                }
                write_length(out, inner.len(), self.tag)?;
                out.extend_from_slice(&inner);
            }
        }
        Ok(())
    }
}

/// Encodes a sequence of data objects.
///
/// # Errors
/// See [`Tlv::encode_into`].
pub fn encode(objects: &[Tlv]) -> Result<Vec<u8>, TlvError> {
    let mut out = Vec::new();
    for o in objects {
        o.encode_into(&mut out)?;
    }
    Ok(out)
}

/// Parses a complete byte string as a sequence of data objects; constructed objects are parsed
/// recursively. Every byte must belong to an object.
///
/// # Errors
/// Any [`TlvError`] describing the first malformation found.
pub fn parse(input: &[u8]) -> Result<Vec<Tlv>, TlvError> {
    parse_seq(input, 0, 1)
}

fn parse_seq(input: &[u8], base: usize, depth: usize) -> Result<Vec<Tlv>, TlvError> {
    if depth > MAX_DEPTH {
        return Err(TlvError::TooDeep { offset: base });
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < input.len() {
        let start = pos;
        let (tag, tag_len) = read_tag(input, pos).map_err(|e| shift(e, base))?;
        pos += tag_len;
        let (len, len_len) = read_length(input, pos).map_err(|e| shift(e, base))?;
        pos += len_len;
        let available = input.len() - pos;
        if len > available {
            return Err(TlvError::ValueTruncated {
                tag,
                offset: base + start,
                declared: len,
                available,
            });
        }
        let value = input.get(pos..pos + len).unwrap_or(&[]);
        let value = if tag.is_constructed() {
            TlvValue::Constructed(parse_seq(value, base + pos, depth + 1)?)
        } else {
            TlvValue::Primitive(value.to_vec())
        };
        pos += len;
        out.push(Tlv { tag, value });
    }
    Ok(out)
}

fn shift(e: TlvError, base: usize) -> TlvError {
    match e {
        TlvError::TruncatedTag { offset } => TlvError::TruncatedTag {
            offset: offset + base,
        },
        TlvError::TagTooLong { offset } => TlvError::TagTooLong {
            offset: offset + base,
        },
        TlvError::TruncatedLength { offset } => TlvError::TruncatedLength {
            offset: offset + base,
        },
        TlvError::IndefiniteLength { offset } => TlvError::IndefiniteLength {
            offset: offset + base,
        },
        TlvError::LengthTooLong { offset, count } => TlvError::LengthTooLong {
            offset: offset + base,
            count,
        },
        other => other,
    }
}

/// Reads one tag at `pos`; returns it and the number of bytes used.
fn read_tag(input: &[u8], pos: usize) -> Result<(Tag, usize), TlvError> {
    let first = *input
        .get(pos)
        .ok_or(TlvError::TruncatedTag { offset: pos })?;
    let mut raw = [0u8; MAX_TAG_LEN];
    raw[0] = first;
    let mut len = 1usize;
    if first & 0x1F == 0x1F {
        loop {
            let b = *input
                .get(pos + len)
                .ok_or(TlvError::TruncatedTag { offset: pos })?;
            let slot = raw
                .get_mut(len)
                .ok_or(TlvError::TagTooLong { offset: pos })?;
            *slot = b;
            len += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    // len <= MAX_TAG_LEN (4) here, so the cast cannot truncate.
    let tag = Tag {
        raw,
        len: u8::try_from(len).map_err(|_| TlvError::TagTooLong { offset: pos })?,
    };
    Ok((tag, len))
}

/// Reads one definite length at `pos`; returns it and the number of bytes used.
fn read_length(input: &[u8], pos: usize) -> Result<(usize, usize), TlvError> {
    let first = *input
        .get(pos)
        .ok_or(TlvError::TruncatedLength { offset: pos })?;
    if first < 0x80 {
        return Ok((usize::from(first), 1));
    }
    if first == 0x80 {
        return Err(TlvError::IndefiniteLength { offset: pos });
    }
    let count = usize::from(first & 0x7F);
    if count > MAX_LENGTH_BYTES {
        return Err(TlvError::LengthTooLong { offset: pos, count });
    }
    let bytes = input
        .get(pos + 1..pos + 1 + count)
        .ok_or(TlvError::TruncatedLength { offset: pos })?;
    let mut len: u64 = 0;
    for b in bytes {
        len = (len << 8) | u64::from(*b);
    }
    let len = usize::try_from(len).map_err(|_| TlvError::LengthTooLong { offset: pos, count })?;
    Ok((len, 1 + count))
}

fn write_length(out: &mut Vec<u8>, len: usize, tag: Tag) -> Result<(), TlvError> {
    let len = u32::try_from(len).map_err(|_| TlvError::ValueTooLong { tag })?;
    if len < 0x80 {
        out.push(len.to_be_bytes()[3]);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let sig = bytes.get(skip..).unwrap_or(&[]);
        // 1..=4 significant bytes: 0x81..=0x84.
        let count = u8::try_from(sig.len()).map_err(|_| TlvError::ValueTooLong { tag })?;
        out.push(0x80 | count);
        out.extend_from_slice(sig);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(bytes: &[u8]) -> Tag {
        Tag::from_bytes(bytes).unwrap()
    }

    #[test]
    fn parses_nested_templates_and_multibyte_tags() {
        // 61 { 4F(2) 9F26(1) 63 { 9F27(1) } }
        let bytes = [
            0x61, 0x0E, 0x4F, 0x02, 0xA0, 0x01, 0x9F, 0x26, 0x01, 0x55, 0x63, 0x04, 0x9F, 0x27,
            0x01, 0x80,
        ];
        let tree = parse(&bytes).unwrap();
        assert_eq!(tree.len(), 1);
        let app = &tree[0];
        assert_eq!(app.tag, t(&[0x61]));
        assert_eq!(
            app.child(t(&[0x4F])).unwrap().bytes(),
            Some(&[0xA0, 0x01][..])
        );
        assert_eq!(
            app.child(t(&[0x9F, 0x26])).unwrap().bytes(),
            Some(&[0x55][..])
        );
        let inner = app.child(t(&[0x63])).unwrap();
        assert_eq!(
            inner.child(t(&[0x9F, 0x27])).unwrap().bytes(),
            Some(&[0x80][..])
        );
        assert_eq!(encode(&tree).unwrap(), bytes);
    }

    #[test]
    fn long_form_lengths() {
        let value = vec![0xAB; 200];
        let obj = Tlv::primitive(t(&[0x5F, 0x20]), value.clone());
        let enc = encode(std::slice::from_ref(&obj)).unwrap();
        assert_eq!(&enc[..4], &[0x5F, 0x20, 0x81, 200]);
        assert_eq!(parse(&enc).unwrap(), vec![obj]);
        let big = Tlv::primitive(t(&[0x04]), vec![1; 300]);
        let enc = encode(std::slice::from_ref(&big)).unwrap();
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(parse(&enc).unwrap(), vec![big]);
        // Non-minimal long form is accepted on input.
        assert_eq!(
            parse(&[0x5A, 0x81, 0x01, 0x12]).unwrap(),
            vec![Tlv::primitive(t(&[0x5A]), vec![0x12])]
        );
    }

    #[test]
    fn refuses_truncation_and_overlong_lengths() {
        assert_eq!(parse(&[0x9F]), Err(TlvError::TruncatedTag { offset: 0 }));
        assert_eq!(
            parse(&[0x9F, 0x81]),
            Err(TlvError::TruncatedTag { offset: 0 })
        );
        assert_eq!(
            parse(&[0x9F, 0x81, 0x82, 0x83, 0x04, 0x00]),
            Err(TlvError::TagTooLong { offset: 0 })
        );
        assert_eq!(parse(&[0x5A]), Err(TlvError::TruncatedLength { offset: 1 }));
        assert_eq!(
            parse(&[0x5A, 0x82, 0x01]),
            Err(TlvError::TruncatedLength { offset: 1 })
        );
        assert_eq!(
            parse(&[0x5A, 0x80]),
            Err(TlvError::IndefiniteLength { offset: 1 })
        );
        assert_eq!(
            parse(&[0x5A, 0x85, 1, 1, 1, 1, 1]),
            Err(TlvError::LengthTooLong {
                offset: 1,
                count: 5
            })
        );
        assert_eq!(
            parse(&[0x5A, 0x03, 0x01]),
            Err(TlvError::ValueTruncated {
                tag: t(&[0x5A]),
                offset: 0,
                declared: 3,
                available: 1
            })
        );
        assert!(matches!(
            parse(&[0x5A, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(TlvError::ValueTruncated { .. })
        ));
        // A child that overruns its template is caught inside the template, with the
        // offset in the whole input.
        assert_eq!(
            parse(&[0x61, 0x03, 0x4F, 0x05, 0x00]),
            Err(TlvError::ValueTruncated {
                tag: t(&[0x4F]),
                offset: 2,
                declared: 5,
                available: 1
            })
        );
    }

    #[test]
    fn bounded_depth() {
        // MAX_DEPTH nested constructed objects parse; one more is refused.
        let mut obj = Tlv::primitive(t(&[0x5A]), vec![1]);
        for _ in 0..MAX_DEPTH - 1 {
            obj = Tlv::constructed(t(&[0x61]), vec![obj]);
        }
        let enc = encode(std::slice::from_ref(&obj)).unwrap();
        assert_eq!(parse(&enc).unwrap(), vec![obj.clone()]);
        let deeper = Tlv::constructed(t(&[0x61]), vec![obj]);
        let enc = encode(&[deeper]).unwrap();
        assert!(matches!(parse(&enc), Err(TlvError::TooDeep { .. })));
    }

    #[test]
    fn encoder_checks_kind() {
        let bad = Tlv::primitive(t(&[0x61]), vec![1]);
        assert!(matches!(encode(&[bad]), Err(TlvError::KindMismatch { .. })));
        let bad = Tlv::constructed(t(&[0x5A]), vec![]);
        assert!(matches!(encode(&[bad]), Err(TlvError::KindMismatch { .. })));
    }

    #[test]
    fn tag_helpers() {
        let tag = t(&[0x9F, 0x26]);
        assert_eq!(tag.to_hex(), "9F26");
        assert_eq!(tag.class(), TagClass::ContextSpecific);
        assert!(!tag.is_constructed());
        assert!(t(&[0x61]).is_constructed());
        assert_eq!(t(&[0x61]).class(), TagClass::Application);
        assert!(Tag::single(0x9F).is_err());
        assert!(Tag::from_bytes(&[0x5A, 0x01]).is_err());
        assert!(Tag::from_bytes(&[]).is_err());
    }
}
