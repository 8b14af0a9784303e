//! ISO 7813 magnetic-stripe tracks as a keyboard-wedge (or serial) card reader types them.
//!
//! Why it exists: a swipe arrives as one line of text, and everything posd needs from a card
//! (PAN, expiry, service code, the track-2 equivalent data the host authorises with) has to be
//! read out of it without ever panicking and without ever echoing card data into an error.
//!
//! Accepted input ([`parse_swipe`]), then optional trailing CR/LF:
//!
//! ```text
//! track 1:  %B<PAN 12-19>^<NAME 0-26>^<YYMM|^><SVC|^><discretionary>?
//! track 2:  ;<PAN 12-19>=<YYMM|=><SVC|=><discretionary digits>?
//! track 3:  ;<anything>?            (after track 2 only; ignored)
//! ```
//!
//! Tracks come in that order, each optional (at least one of tracks 1/2). After each end
//! sentinel `?` at most two characters that are not a start sentinel are skipped: the LRC some
//! readers type, or a CR/LF between tracks (the same tolerance as `codes::classify`). A track that
//! reads `E` (`%E?`, `;E?`) is a reader's "could not read this track" and counts as absent.
//! A field separator standing in for the expiry means the card has none: refused as
//! [`CardError::MissingExpiry`] (an absent service code: [`CardError::ServiceCode`]).

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Longest swipe text accepted (after trailing CR/LF): tracks 1 + 2 + 3 fit in about 230.
pub const MAX_SWIPE_LEN: usize = 512;
/// Track 1 data between the sentinels: 79 characters on the card less `%`, `?` and the LRC.
const MAX_TRACK1: usize = 76;
/// Track 2 data between the sentinels: 40 characters on the card less `;`, `?` and the LRC.
const MAX_TRACK2: usize = 37;
/// Cardholder name field of track 1.
const MAX_NAME: usize = 26;

/// Why a swipe or a card was refused. The text is for the cashier; it never holds card data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CardError {
    /// An end sentinel is missing: the reader stopped mid-track.
    #[error("card read incomplete: swipe again")]
    Truncated,
    /// Not magnetic-stripe data, or malformed fields.
    #[error("card read garbled: swipe again")]
    Garbled,
    /// The card number is not 12 to 19 digits.
    #[error("card number has a wrong length")]
    PanLength,
    /// The card number fails the Luhn check.
    #[error("card number check digit is wrong: swipe again")]
    Luhn,
    /// The card carries no expiry date.
    #[error("card has no expiry date")]
    MissingExpiry,
    /// The expiry month is not 01 to 12.
    #[error("card expiry date is invalid")]
    BadExpiry,
    /// Track 1 and track 2 disagree on the card number, expiry or service code.
    #[error("card tracks disagree: swipe again")]
    TrackMismatch,
    /// The card's expiry month is over.
    #[error("card expired")]
    Expired,
    /// The service code is absent or its first digit is not 1, 2, 5 or 6.
    #[error("card not accepted here (service code)")]
    ServiceCode,
    /// A chip card swiped where a chip reader exists.
    #[error("chip card: insert it in the chip reader")]
    UseChip,
}

impl CardError {
    /// The cashier's text in the catalogue (`Display` is the English one).
    #[must_use]
    pub fn msg(&self) -> crate::i18n::Msg {
        use crate::i18n::Msg;
        match self {
            CardError::Truncated => Msg::CardTruncated,
            CardError::Garbled => Msg::CardGarbled,
            CardError::PanLength => Msg::CardPanLength,
            CardError::Luhn => Msg::CardLuhn,
            CardError::MissingExpiry => Msg::CardMissingExpiry,
            CardError::BadExpiry => Msg::CardBadExpiry,
            CardError::TrackMismatch => Msg::CardTrackMismatch,
            CardError::Expired => Msg::CardExpired,
            CardError::ServiceCode => Msg::CardServiceCode,
            CardError::UseChip => Msg::CardUseChip,
        }
    }

    /// A stable reason code for journals and the host.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            CardError::Truncated => "card_truncated",
            CardError::Garbled => "card_garbled",
            CardError::PanLength => "card_pan_length",
            CardError::Luhn => "card_luhn",
            CardError::MissingExpiry => "card_missing_expiry",
            CardError::BadExpiry => "card_bad_expiry",
            CardError::TrackMismatch => "card_track_mismatch",
            CardError::Expired => "card_expired",
            CardError::ServiceCode => "card_service_code",
            CardError::UseChip => "card_use_chip",
        }
    }
}

/// The card network, from the PAN's leading digits; [`Brand::as_str`] is the payment channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Brand {
    /// 4.
    Visa,
    /// 51-55, 2221-2720.
    Mastercard,
    /// 62.
    UnionPay,
    /// 34, 37.
    Amex,
    /// 3528-3589.
    Jcb,
    /// 6011, 644-649, 65.
    Discover,
    /// Anything else.
    Other,
}

impl Brand {
    /// The payment channel name: `visa`, `mastercard`, `unionpay`, `amex`, `jcb`, `discover`,
    /// or `card`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::UnionPay => "unionpay",
            Brand::Amex => "amex",
            Brand::Jcb => "jcb",
            Brand::Discover => "discover",
            Brand::Other => "card",
        }
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Clear card data from one swipe. Wiped on drop; `Debug` shows only the masked PAN; neither
/// `Clone` nor `Serialize`. Seal it ([`crate::card::seal`]) and drop it as soon as possible.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct CardData {
    /// The primary account number, 12 to 19 digits.
    pub pan: String,
    /// Expiry as on the card: (YY, MM), MM in 1..=12; YY means 20YY.
    pub expiry_yymm: (u8, u8),
    /// Service code digits, each 0..=9 (not ASCII): `[2, 0, 1]` for "201".
    pub service_code: [u8; 3],
    /// Cardholder name from track 1 (trimmed; `None` if absent or blank).
    pub name: Option<String>,
    /// Track-2 equivalent data without sentinels, `PAN=YYMMSVC<discretionary>`: track 2 as read,
    /// or built from track 1 (its discretionary data kept only when all digits and it fits).
    pub track2: String,
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardData")
            .field("pan", &self.masked_pan())
            .finish_non_exhaustive()
    }
}

impl CardData {
    /// The PAN with all but the first 6 and last 4 digits replaced by `*`
    /// (`411111******1111`). Shorter than 13 digits: only the last 4 are shown, as
    /// `codes::classify::mask_pan` does, so a 12-digit PAN never shows 10 of its digits.
    #[must_use]
    pub fn masked_pan(&self) -> String {
        let n = self.pan.chars().count();
        let head = if n >= 13 { 6 } else { 0 };
        let tail = if n >= 8 { 4 } else { 0 };
        self.pan
            .chars()
            .enumerate()
            .map(|(i, c)| if i < head || i + tail >= n { c } else { '*' })
            .collect()
    }

    /// The card network, from the PAN's leading digits.
    #[must_use]
    pub fn brand(&self) -> Brand {
        brand_of(&self.pan)
    }

    /// The acceptance checks at sale time, in this order: the service code's first digit must
    /// be 1, 2, 5 or 6 (international/national interchange); the card is valid through the end
    /// of its expiry month (YY → 20YY); a chip card (service code 2xx/6xx) is refused with
    /// [`CardError::UseChip`] when `chip_reader` is true, and accepted as a fallback swipe
    /// otherwise.
    ///
    /// # Errors
    /// [`CardError::ServiceCode`], [`CardError::Expired`] or [`CardError::UseChip`].
    pub fn check(&self, now_year: u16, now_month: u8, chip_reader: bool) -> Result<(), CardError> {
        let [first, _, _] = self.service_code;
        if !matches!(first, 1 | 2 | 5 | 6) {
            return Err(CardError::ServiceCode);
        }
        let (yy, mm) = self.expiry_yymm;
        if (2000 + u16::from(yy), mm) < (now_year, now_month) {
            return Err(CardError::Expired);
        }
        if chip_reader && matches!(first, 2 | 6) {
            return Err(CardError::UseChip);
        }
        Ok(())
    }
}

/// The Luhn (mod 10) check. `false` for an empty string or anything but ASCII digits.
#[must_use]
pub fn luhn_ok(digits: &str) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    let mut double = false;
    for b in digits.bytes().rev() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum = (sum + d) % 10;
        double = !double;
    }
    sum == 0
}

/// Parses what a card reader typed for one swipe (see the module doc for the format).
///
/// # Errors
/// [`CardError`]: `Truncated`, `Garbled`, `PanLength`, `Luhn`, `MissingExpiry`, `BadExpiry`,
/// `ServiceCode` (absent service code) or `TrackMismatch`. Expiry against today and chip are
/// [`CardData::check`]'s business.
pub fn parse_swipe(text: &str) -> Result<CardData, CardError> {
    let text = text.trim_end_matches(['\r', '\n']);
    if text.len() > MAX_SWIPE_LEN {
        return Err(CardError::Garbled);
    }
    let mut rest = text;
    let raw1 = take_track(&mut rest, '%')?;
    let raw2 = take_track(&mut rest, ';')?;
    let _track3 = take_track(&mut rest, ';')?;
    if !rest.is_empty() {
        return Err(CardError::Garbled);
    }
    let t1 = raw1.filter(|d| *d != "E").map(parse_track1).transpose()?;
    let t2 = raw2.filter(|d| *d != "E").map(parse_track2).transpose()?;
    let (fields, name, track2_raw) = match (t1, t2) {
        (None, None) => return Err(CardError::Garbled),
        (Some((f1, name)), Some((f2, raw))) => {
            if f1.pan != f2.pan || f1.expiry != f2.expiry || f1.service != f2.service {
                return Err(CardError::TrackMismatch);
            }
            (f2, name, Some(raw))
        }
        (Some((f1, name)), None) => (f1, name, None),
        (None, Some((f2, raw))) => (f2, None, Some(raw)),
    };
    let expiry = fields.expiry.ok_or(CardError::MissingExpiry)?;
    let service = fields.service.ok_or(CardError::ServiceCode)?;
    let track2 = match track2_raw {
        Some(raw) => raw.to_owned(),
        None => track2_equivalent(fields.pan, expiry, service, fields.discretionary),
    };
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    Ok(CardData {
        pan: fields.pan.to_owned(),
        expiry_yymm: expiry,
        service_code: service,
        name: name.map(str::to_owned),
        track2,
    })
}

/// Whether `name` can be a track-1 cardholder name: at most 26 printable ASCII characters
/// without sentinels or separators.
pub(crate) fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !matches!(b, b'%' | b';' | b'?' | b'^'))
}

/// The fields one track holds; borrowed from the swipe text.
struct Fields<'a> {
    pan: &'a str,
    expiry: Option<(u8, u8)>,
    service: Option<[u8; 3]>,
    discretionary: &'a str,
}

/// Takes one `<start>…?` track off the front of `rest` (and the trailer after its `?`).
fn take_track<'a>(rest: &mut &'a str, start: char) -> Result<Option<&'a str>, CardError> {
    let Some(body) = rest.strip_prefix(start) else {
        return Ok(None);
    };
    let Some((data, after)) = body.split_once('?') else {
        return Err(CardError::Truncated);
    };
    // A start sentinel inside the data: this track lost its end sentinel, the `?` found is the
    // next track's.
    if data.contains(['%', ';']) {
        return Err(CardError::Truncated);
    }
    *rest = skip_trailer(after);
    Ok(Some(data))
}

/// Skips up to two characters after an end sentinel that are not a start sentinel (the LRC,
/// a CR/LF between tracks).
fn skip_trailer(s: &str) -> &str {
    let mut rest = s;
    for _ in 0..2 {
        let mut chars = rest.chars();
        match chars.next() {
            Some(c) if c != '%' && c != ';' => rest = chars.as_str(),
            _ => break,
        }
    }
    rest
}

/// Track 1 data between the sentinels: the fields and the name field as is.
fn parse_track1(data: &str) -> Result<(Fields<'_>, Option<&str>), CardError> {
    if data.len() > MAX_TRACK1 || !data.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(CardError::Garbled);
    }
    let body = data.strip_prefix('B').ok_or(CardError::Garbled)?;
    let (pan, rest) = body.split_once('^').ok_or(CardError::Garbled)?;
    let (name, rest) = rest.split_once('^').ok_or(CardError::Garbled)?;
    if !valid_name(name) {
        return Err(CardError::Garbled);
    }
    check_pan(pan)?;
    let (expiry, service, discretionary) = parse_tail(rest, '^')?;
    let fields = Fields {
        pan,
        expiry,
        service,
        discretionary,
    };
    Ok((fields, Some(name)))
}

/// Track 2 data between the sentinels: the fields and the data itself.
fn parse_track2(data: &str) -> Result<(Fields<'_>, &str), CardError> {
    if data.len() > MAX_TRACK2 || !data.bytes().all(|b| b.is_ascii_digit() || b == b'=') {
        return Err(CardError::Garbled);
    }
    let (pan, rest) = data.split_once('=').ok_or(CardError::Garbled)?;
    check_pan(pan)?;
    let (expiry, service, discretionary) = parse_tail(rest, '=')?;
    if !discretionary.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::Garbled);
    }
    let fields = Fields {
        pan,
        expiry,
        service,
        discretionary,
    };
    Ok((fields, data))
}

/// Digits only, 12 to 19 of them, Luhn-valid.
fn check_pan(pan: &str) -> Result<(), CardError> {
    if !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardError::Garbled);
    }
    if !(12..=19).contains(&pan.len()) {
        return Err(CardError::PanLength);
    }
    if !luhn_ok(pan) {
        return Err(CardError::Luhn);
    }
    Ok(())
}

type Tail<'a> = (Option<(u8, u8)>, Option<[u8; 3]>, &'a str);

/// After the separator that ends the PAN (track 2) or name (track 1): `YYMM` or `sep`, then
/// `SVC` or `sep`, then the discretionary data.
fn parse_tail(rest: &str, sep: char) -> Result<Tail<'_>, CardError> {
    let (expiry, rest) = match rest.strip_prefix(sep) {
        Some(r) => (None, r),
        None => {
            let (yymm, r) = split_digits::<4>(rest).ok_or(CardError::Garbled)?;
            let [y1, y2, m1, m2] = yymm;
            let month = m1 * 10 + m2;
            if !(1..=12).contains(&month) {
                return Err(CardError::BadExpiry);
            }
            (Some((y1 * 10 + y2, month)), r)
        }
    };
    let (service, rest) = match rest.strip_prefix(sep) {
        Some(r) => (None, r),
        None => {
            let (svc, r) = split_digits::<3>(rest).ok_or(CardError::Garbled)?;
            (Some(svc), r)
        }
    };
    Ok((expiry, service, rest))
}

/// The first `N` characters as digit values (0..=9), and the rest; `None` unless they are
/// `N` ASCII digits.
fn split_digits<const N: usize>(s: &str) -> Option<([u8; N], &str)> {
    let head = s.get(..N)?;
    let rest = s.get(N..)?;
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(head.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        *o = b - b'0';
    }
    Some((out, rest))
}

/// `PAN=YYMMSVC` plus track 1's discretionary data when it is all digits and the result still
/// fits a track 2. Built at its final capacity, so no reallocation leaves a copy behind.
fn track2_equivalent(pan: &str, expiry: (u8, u8), service: [u8; 3], discretionary: &str) -> String {
    let base = pan.len() + 8;
    let keep_disc = discretionary.bytes().all(|b| b.is_ascii_digit())
        && base + discretionary.len() <= MAX_TRACK2;
    let disc = if keep_disc { discretionary } else { "" };
    let mut out = String::with_capacity(base + disc.len());
    out.push_str(pan);
    out.push('=');
    let (yy, mm) = expiry;
    for d in [yy / 10, yy % 10, mm / 10, mm % 10]
        .into_iter()
        .chain(service)
    {
        out.push(char::from(b'0' + d % 10));
    }
    out.push_str(disc);
    out
}

/// The numeric value of the first `n` characters of `pan` if they are all ASCII digits.
fn prefix(pan: &str, n: usize) -> Option<u32> {
    let head = pan.get(..n)?;
    head.bytes().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn brand_of(pan: &str) -> Brand {
    let p1 = prefix(pan, 1);
    let p2 = prefix(pan, 2);
    let p3 = prefix(pan, 3);
    let p4 = prefix(pan, 4);
    if p1 == Some(4) {
        Brand::Visa
    } else if matches!(p2, Some(34 | 37)) {
        Brand::Amex
    } else if p2 == Some(62) {
        Brand::UnionPay
    } else if matches!(p2, Some(51..=55)) || matches!(p4, Some(2221..=2720)) {
        Brand::Mastercard
    } else if matches!(p4, Some(3528..=3589)) {
        Brand::Jcb
    } else if p4 == Some(6011) || p2 == Some(65) || matches!(p3, Some(644..=649)) {
        Brand::Discover
    } else {
        Brand::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_says_in_english_what_display_says() {
        use crate::i18n::{text, Language};
        for e in [
            CardError::Truncated,
            CardError::Garbled,
            CardError::PanLength,
            CardError::Luhn,
            CardError::MissingExpiry,
            CardError::BadExpiry,
            CardError::TrackMismatch,
            CardError::Expired,
            CardError::ServiceCode,
            CardError::UseChip,
        ] {
            assert_eq!(text(Language::En, e.msg()), e.to_string());
        }
    }
    use proptest::prelude::*;

    const VISA: &str = "4111111111111111";
    const UNIONPAY: &str = "6200000000000005";
    const MASTERCARD: &str = "5555555555554444";
    const AMEX: &str = "378282246310005";

    fn t1(pan: &str) -> String {
        format!("%B{pan}^DOE/JOHN                  ^2512101000000000000000?")
    }
    fn t2(pan: &str) -> String {
        format!(";{pan}=25121010000000000?")
    }

    #[test]
    fn test_numbers_parse_with_their_brand() {
        for (pan, brand) in [
            (VISA, Brand::Visa),
            (UNIONPAY, Brand::UnionPay),
            (MASTERCARD, Brand::Mastercard),
            (AMEX, Brand::Amex),
        ] {
            for text in [t1(pan), t2(pan), format!("{}{}\r\n", t1(pan), t2(pan))] {
                let card = parse_swipe(&text).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(card.pan, pan);
                assert_eq!(card.brand(), brand);
                assert_eq!(card.expiry_yymm, (25, 12));
                assert_eq!(card.service_code, [1, 0, 1]);
            }
        }
        assert_eq!(Brand::UnionPay.as_str(), "unionpay");
    }

    #[test]
    fn both_tracks_give_name_and_track2_as_read() {
        let card = parse_swipe(&format!("{}{}\n", t1(VISA), t2(VISA))).unwrap();
        assert_eq!(card.name.as_deref(), Some("DOE/JOHN"));
        assert_eq!(card.track2, "4111111111111111=25121010000000000");
        // with track 3, the LRC and CR/LF between tracks
        let text = format!("{}X\r{}\r\n;0123456789?\r\n", t1(VISA), t2(VISA));
        let card = parse_swipe(&text).unwrap();
        assert_eq!(card.track2, "4111111111111111=25121010000000000");
    }

    #[test]
    fn track1_only_builds_the_track2_equivalent() {
        let card = parse_swipe("%B4111111111111111^DOE/J^2512101123?").unwrap();
        assert_eq!(card.track2, "4111111111111111=2512101123");
        // discretionary too long for a track 2: dropped
        let card = parse_swipe("%B4111111111111111^DOE/J^2512101123456789012345678901?").unwrap();
        assert_eq!(card.track2, "4111111111111111=2512101");
        // discretionary with letters: dropped
        let card = parse_swipe("%B4111111111111111^DOE/J^2512201AB12?").unwrap();
        assert_eq!(card.track2, "4111111111111111=2512201");
        assert_eq!(card.service_code, [2, 0, 1]);
        // blank name
        let card = parse_swipe("%B4111111111111111^   ^2512101?").unwrap();
        assert_eq!(card.name, None);
        let card = parse_swipe(&t2(VISA)).unwrap();
        assert_eq!(card.name, None);
    }

    #[test]
    fn read_error_track_counts_as_absent() {
        let card = parse_swipe(&format!("%E?{}", t2(VISA))).unwrap();
        assert_eq!(card.pan, VISA);
        assert_eq!(parse_swipe("%E?;E?").unwrap_err(), CardError::Garbled);
    }

    #[test]
    fn refusals() {
        use CardError::*;
        let cases: &[(&str, CardError)] = &[
            ("", Garbled),
            ("\r\n", Garbled),
            ("hello", Garbled),
            ("4111111111111111", Garbled),
            ("%B4111111111111111^DOE/J^2512", Truncated),
            (";4111111111111111=2512", Truncated),
            (
                "%B4111111111111111^DOE/J^2512101;4111111111111111=2512101?",
                Truncated,
            ),
            (";4111111111111111=2512101?;0123", Truncated),
            (";4111111111111111=2512101?trailing", Garbled),
            ("%A4111111111111111^DOE/J^2512101?", Garbled),
            ("%B4111111111111111^DOE/J2512101?", Garbled),
            (
                "%B4111111111111111^ABCDEFGHIJKLMNOPQRSTUVWXYZA^2512101?",
                Garbled,
            ),
            (";41111111111x1111=2512101?", Garbled),
            (";4111111111111111=25X2101?", Garbled),
            (";4111111111111111=251?", Garbled),
            (";4111111111111111=2512101A?", Garbled),
            (";4111111111111111=2512101=?", Garbled),
            ("%B4111111111111111^DOE/J^2512\u{1}01?", Garbled),
            ("%B4111111111111111^DOÉ/J^2512101?", Garbled),
            (";41111111111=2512101?", PanLength),
            (";41111111111111111111=2512101?", PanLength),
            (";4111111111111112=2512101?", Luhn),
            ("%B4111111111111112^DOE/J^2512101?", Luhn),
            (";4111111111111111==101?", MissingExpiry),
            (";4111111111111111===?", MissingExpiry),
            ("%B4111111111111111^DOE/J^^101?", MissingExpiry),
            (";4111111111111111=2512=?", ServiceCode),
            ("%B4111111111111111^DOE/J^2512^?", ServiceCode),
            (";4111111111111111=2500101?", BadExpiry),
            (";4111111111111111=2513101?", BadExpiry),
            (
                "%B4111111111111111^DOE/J^2512101?;5555555555554444=2512101?",
                TrackMismatch,
            ),
            (
                "%B4111111111111111^DOE/J^2512101?;4111111111111111=2611101?",
                TrackMismatch,
            ),
            (
                "%B4111111111111111^DOE/J^2512101?;4111111111111111=2512201?",
                TrackMismatch,
            ),
            (
                "%B4111111111111111^DOE/J^^101?;4111111111111111=2512101?",
                TrackMismatch,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_swipe(text).unwrap_err(), *want, "{text:?}");
        }
        let long = format!("{}{}", t2(VISA), "\n".repeat(10));
        assert!(parse_swipe(&long).is_ok());
        let huge = ";".repeat(MAX_SWIPE_LEN + 1);
        assert_eq!(parse_swipe(&huge).unwrap_err(), Garbled);
    }

    /// Every error (and its Debug) is free of card data: no digit run from the input shows.
    #[test]
    fn errors_never_contain_card_data() {
        let card = parse_swipe(&t2(VISA)).unwrap();
        let mut errors: Vec<(String, CardError)> = [
            "%B4111111111111111^DOE/JOHN^2512",
            "%B4111111111111111^DOE/JOHN^2512101XYZ?garbage",
            ";41111111111=2512101?",
            ";4111111111111112=2512101?",
            ";4111111111111111==101?",
            ";4111111111111111=2513101?",
            ";4111111111111111=2512=?",
            "%B4111111111111111^DOE/JOHN^2512101?;5555555555554444=2512101?",
        ]
        .iter()
        .map(|t| ((*t).to_owned(), parse_swipe(t).unwrap_err()))
        .collect();
        let expired = parse_swipe(";4111111111111111=2001101?").unwrap();
        errors.push((
            expired.track2.clone(),
            expired.check(2026, 1, false).unwrap_err(),
        ));
        let chip = parse_swipe(";4111111111111111=3001201?").unwrap();
        errors.push((chip.track2.clone(), chip.check(2026, 1, true).unwrap_err()));
        let svc = parse_swipe(";4111111111111111=3001301?").unwrap();
        errors.push((svc.track2.clone(), svc.check(2026, 1, false).unwrap_err()));
        let kinds: std::collections::HashSet<_> = errors.iter().map(|(_, e)| *e).collect();
        assert_eq!(kinds.len(), 10, "every variant produced");
        for (input, e) in &errors {
            for shown in [e.to_string(), format!("{e:?}"), e.code().to_owned()] {
                assert!(!shown.contains("1111"), "{shown}");
                assert!(!shown.contains("5555"), "{shown}");
                assert!(!shown.contains("DOE"), "{shown}");
                assert!(!shown.bytes().any(|b| b.is_ascii_digit()), "{shown}");
                assert!(!shown.contains(input.as_str()));
            }
        }
        let debug = format!("{card:?}");
        assert!(debug.contains("411111******1111"), "{debug}");
        assert!(!debug.contains(VISA) && !debug.contains("2512"), "{debug}");
    }

    #[test]
    fn check_expiry_service_code_and_chip() {
        let card = |svc: &str, yymm: &str| parse_swipe(&format!(";{VISA}={yymm}{svc}?")).unwrap();
        // valid through the end of the expiry month
        assert_eq!(card("101", "2605").check(2026, 5, false), Ok(()));
        assert_eq!(
            card("101", "2605").check(2026, 6, false),
            Err(CardError::Expired)
        );
        assert_eq!(
            card("101", "2605").check(2027, 1, false),
            Err(CardError::Expired)
        );
        assert_eq!(card("101", "2605").check(2025, 12, false), Ok(()));
        assert_eq!(card("101", "9901").check(2026, 5, false), Ok(()));
        // service codes
        for ok in ["101", "120", "501", "599"] {
            assert_eq!(card(ok, "3012").check(2026, 1, true), Ok(()), "{ok}");
        }
        for chip in ["201", "221", "601"] {
            assert_eq!(
                card(chip, "3012").check(2026, 1, true),
                Err(CardError::UseChip)
            );
            assert_eq!(card(chip, "3012").check(2026, 1, false), Ok(()), "fallback");
        }
        for bad in ["001", "301", "401", "701", "801", "901"] {
            assert_eq!(
                card(bad, "3012").check(2026, 1, false),
                Err(CardError::ServiceCode),
                "{bad}"
            );
        }
        // expired chip card: expired first
        assert_eq!(
            card("201", "2001").check(2026, 1, true),
            Err(CardError::Expired)
        );
    }

    #[test]
    fn luhn() {
        for ok in [VISA, UNIONPAY, MASTERCARD, AMEX, "0", "18", "79927398713"] {
            assert!(luhn_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "1",
            "4111111111111112",
            "79927398710",
            "4111 1111",
            "+18",
            "١٨",
        ] {
            assert!(!luhn_ok(bad), "{bad}");
        }
    }

    #[test]
    fn brands() {
        let b = |pan: &str| brand_of(pan);
        assert_eq!(b("4000000000000002"), Brand::Visa);
        assert_eq!(b("5100000000000000"), Brand::Mastercard);
        assert_eq!(b("5500000000000000"), Brand::Mastercard);
        assert_eq!(b("5600000000000000"), Brand::Other);
        assert_eq!(b("2221000000000000"), Brand::Mastercard);
        assert_eq!(b("2720990000000000"), Brand::Mastercard);
        assert_eq!(b("2220990000000000"), Brand::Other);
        assert_eq!(b("2721000000000000"), Brand::Other);
        assert_eq!(b("340000000000000"), Brand::Amex);
        assert_eq!(b("370000000000000"), Brand::Amex);
        assert_eq!(b("350000000000000"), Brand::Other);
        assert_eq!(b("3528000000000000"), Brand::Jcb);
        assert_eq!(b("3589000000000000"), Brand::Jcb);
        assert_eq!(b("3590000000000000"), Brand::Other);
        assert_eq!(b("6011000000000000"), Brand::Discover);
        assert_eq!(b("6440000000000000"), Brand::Discover);
        assert_eq!(b("6490000000000000"), Brand::Discover);
        assert_eq!(b("6500000000000000"), Brand::Discover);
        assert_eq!(b("6430000000000000"), Brand::Other);
        assert_eq!(b("6212345678901234"), Brand::UnionPay);
        assert_eq!(b("9999999999999999"), Brand::Other);
        assert_eq!(b(""), Brand::Other);
        assert_eq!(b("+4"), Brand::Other);
        assert_eq!(Brand::Other.as_str(), "card");
    }

    #[test]
    fn masking() {
        let card = parse_swipe(&t2(VISA)).unwrap();
        assert_eq!(card.masked_pan(), "411111******1111");
        let amex = parse_swipe(&t2(AMEX)).unwrap();
        assert_eq!(amex.masked_pan(), "378282*****0005");
        for pan in ["411111111116", "4111111111119", VISA, "4111111111111111113"] {
            let card = CardData {
                pan: pan.to_owned(),
                expiry_yymm: (30, 1),
                service_code: [1, 0, 1],
                name: None,
                track2: String::new(),
            };
            assert_eq!(
                card.masked_pan(),
                crate::codes::classify::mask_pan(pan),
                "same rule as classify"
            );
        }
    }

    /// Appends the Luhn check digit to `body`.
    fn with_check_digit(body: &str) -> String {
        (0..=9)
            .map(|d| format!("{body}{d}"))
            .find(|p| luhn_ok(p))
            .unwrap_or_default()
    }

    /// A generated swipe and the fields it holds.
    #[derive(Debug, Clone)]
    struct Swipe {
        text: String,
        pan: String,
        name: Option<String>,
        expiry: (u8, u8),
        svc: [u8; 3],
        disc: String,
    }

    fn arb_swipe() -> impl Strategy<Value = Swipe> {
        (
            "[0-9]{11,18}",
            proptest::option::of("[A-Z]([A-Z /.]{0,24}[A-Z])?"),
            (0u8..100, 1u8..=12),
            (prop::sample::select(vec![1u8, 2, 5, 6]), 0u8..10, 0u8..10),
            "[0-9]{0,8}",
            0u8..3,
        )
            .prop_map(|(body, name, (yy, mm), (s0, s1, s2), disc, layout)| {
                let pan = with_check_digit(&body);
                let tail = format!("{yy:02}{mm:02}{s0}{s1}{s2}{disc}");
                let t1 = format!("%B{pan}^{}^{tail}?", name.as_deref().unwrap_or(""));
                let t2 = format!(";{pan}={tail}?");
                let text = match layout {
                    0 => t1,
                    1 => t2,
                    _ => format!("{t1}{t2}\r\n"),
                };
                Swipe {
                    text,
                    pan,
                    name: if layout == 1 { None } else { name },
                    expiry: (yy, mm),
                    svc: [s0, s1, s2],
                    disc,
                }
            })
    }

    proptest! {
        #[test]
        fn any_string_never_panics(s in "\\PC{0,200}") {
            let _ = parse_swipe(&s);
        }

        #[test]
        fn swipe_shaped_strings_never_panic(s in "[%;]?[B0-9=^?;%A-Z/ \\r\\n]{0,120}") {
            if let Ok(card) = parse_swipe(&s) {
                let _ = card.check(2026, 1, true);
                let _ = card.masked_pan();
            }
        }

        #[test]
        fn valid_swipes_round_trip(sw in arb_swipe()) {
            let card = parse_swipe(&sw.text).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            prop_assert_eq!(&card.pan, &sw.pan);
            prop_assert_eq!(card.name.as_deref(), sw.name.as_deref());
            prop_assert_eq!(card.expiry_yymm, sw.expiry);
            prop_assert_eq!(card.service_code, sw.svc);
            let (yy, mm) = sw.expiry;
            let [s0, s1, s2] = sw.svc;
            let want = format!("{}={yy:02}{mm:02}{s0}{s1}{s2}{}", sw.pan, sw.disc);
            prop_assert_eq!(card.track2.as_str(), want.as_str());
            prop_assert!(luhn_ok(&sw.pan));
        }

        #[test]
        fn masked_pan_shows_at_most_first6_last4(pan in "[0-9]{0,19}") {
            let card = CardData {
                pan: pan.clone(),
                expiry_yymm: (30, 1),
                service_code: [1, 0, 1],
                name: None,
                track2: String::new(),
            };
            let masked = card.masked_pan();
            prop_assert_eq!(masked.len(), pan.len());
            let shown = masked.bytes().filter(u8::is_ascii_digit).count();
            prop_assert!(shown <= 10);
            for (i, (m, p)) in masked.bytes().zip(pan.bytes()).enumerate() {
                if m != b'*' {
                    prop_assert_eq!(m, p);
                    prop_assert!(i < 6 || i + 4 >= pan.len());
                }
            }
            if pan.len() >= 12 {
                prop_assert!(masked.contains('*'));
            }
        }
    }
}
