//! Card data sealed to the host's public key at capture (DESIGN §1.4, §6).
//!
//! Why it exists: the clear PAN and track data must never reach the disk (the store-and-forward
//! queue, the journal) or the broker. The terminal seals them to the host's static X25519 public
//! key with a fresh ephemeral key, so once sealed not even the terminal can read them back; only
//! the host (here also the sandbox host, through [`open`]) holds the secret key.
//!
//! # Wire format, version 1
//!
//! ```text
//! sealed      = "S1." base64url-without-padding( eph_public(32) || nonce(12) || ciphertext || tag(16) )
//! shared      = X25519(eph_secret, host_public)          refused if all zero (low-order point)
//! key         = SHA-256( "posd-card-seal-v1" || shared(32) || eph_public(32) || host_public(32) )
//! ciphertext  = ChaCha20-Poly1305(key, nonce, plaintext, aad)      (RFC 8439, 16-byte tag)
//! aad         = caller-supplied bytes, not transmitted (the engine binds txn id, amount,
//!               currency: a blob moved to another sale does not open)
//! plaintext   = 0x01 || u16be len(t2) || t2 || u16be len(name) || name
//!               t2: track-2 equivalent data without sentinels, ASCII "PAN=YYMMSVC<digits>"
//!               name: track-1 cardholder name, ASCII, length 0 when absent
//! ```
//!
//! X25519 keys are 32 raw bytes (RFC 7748; the secret is clamped at use); as text, standard
//! base64 with padding ([`parse_key_b64`], [`key_to_b64`]). Every seal uses a fresh ephemeral
//! key, so the key is never reused and the random nonce is belt and braces.
//!
//! [`seal`] takes its randomness as parameters (deterministic tests); [`seal_random`] and
//! [`keygen_random`] draw it from the OS. Every plaintext buffer is wiped after use.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::track::{parse_swipe, valid_name, CardData, CardError};

/// Text prefix of a version-1 sealed blob.
pub const PREFIX: &str = "S1.";
/// Domain separation for the key derivation.
const KDF_LABEL: &[u8] = b"posd-card-seal-v1";
/// Plaintext layout version.
const PLAINTEXT_V1: u8 = 1;
const TAG_LEN: usize = 16;
/// Longest sealed text [`open`] looks at (a real one is about 150 characters).
const MAX_SEALED_LEN: usize = 1024;

/// Why sealing or opening failed. Never holds card data or key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not `S1.` + base64url, or too short to hold a key, a nonce and a tag.
    #[error("sealed card data is malformed")]
    Format,
    /// Authentication failed: wrong key, wrong binding (AAD), or altered data.
    #[error("sealed card data does not open with this key and binding")]
    Decrypt,
    /// A public key is a low-order point: the shared secret would be all zero.
    #[error("key refused: low-order point")]
    LowOrderKey,
    /// A key text is not 32 bytes of standard base64.
    #[error("key is not 32 bytes of base64")]
    KeyFormat,
    /// It opened, but the plaintext layout is unknown or malformed.
    #[error("sealed card data has an unknown layout")]
    Plaintext,
    /// The card data is not sealable (or what opened is not a valid card).
    #[error("card data refused: {0}")]
    Card(CardError),
    /// The cipher refused to encrypt (cannot happen for card-sized data).
    #[error("encryption failed")]
    Encrypt,
    /// The OS random generator failed.
    #[error("OS random generator failed")]
    Random,
}

crate::wraps_error!(SealError { Card(CardError) });

/// Seals `card` to `host_public`, bound to `aad`, with the given ephemeral secret and nonce
/// (fresh random values for every call: use [`seal_random`] outside tests).
///
/// # Errors
/// [`SealError::LowOrderKey`] for a low-order host key; [`SealError::Card`] if the card's
/// track-2 data or name is not what [`crate::card::parse_swipe`] produces.
pub fn seal(
    card: &CardData,
    host_public: &[u8; 32],
    aad: &[u8],
    eph_secret: [u8; 32],
    nonce: [u8; 12],
) -> Result<String, SealError> {
    let mut eph_secret = eph_secret;
    let secret = StaticSecret::from(eph_secret);
    eph_secret.zeroize();
    let plaintext = encode_plaintext(card)?;
    seal_plaintext(plaintext, host_public, aad, &secret, nonce)
}

/// [`seal`] with the ephemeral secret and nonce drawn from the OS.
///
/// # Errors
/// As [`seal`], and [`SealError::Random`].
pub fn seal_random(
    card: &CardData,
    host_public: &[u8; 32],
    aad: &[u8],
) -> Result<String, SealError> {
    let mut eph = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(eph.as_mut_slice()).map_err(|_| SealError::Random)?;
    let mut nonce = [0u8; 12];
    getrandom::getrandom(&mut nonce).map_err(|_| SealError::Random)?;
    seal(card, host_public, aad, *eph, nonce)
}

/// Opens a sealed blob with the host's secret key and the same `aad` it was sealed with.
///
/// # Errors
/// [`SealError::Format`], [`SealError::LowOrderKey`], [`SealError::Decrypt`],
/// [`SealError::Plaintext`] or [`SealError::Card`].
pub fn open(sealed: &str, host_secret: &[u8; 32], aad: &[u8]) -> Result<CardData, SealError> {
    let body = sealed
        .trim()
        .strip_prefix(PREFIX)
        .ok_or(SealError::Format)?;
    if body.len() > MAX_SEALED_LEN {
        return Err(SealError::Format);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| SealError::Format)?;
    let (eph_public, rest) = bytes.split_first_chunk::<32>().ok_or(SealError::Format)?;
    let (nonce, ciphertext) = rest.split_first_chunk::<12>().ok_or(SealError::Format)?;
    if ciphertext.len() < TAG_LEN {
        return Err(SealError::Format);
    }
    let secret = StaticSecret::from(*host_secret);
    let host_public = PublicKey::from(&secret);
    let shared = secret.diffie_hellman(&PublicKey::from(*eph_public));
    if !shared.was_contributory() {
        return Err(SealError::LowOrderKey);
    }
    let key = derive_key(shared.as_bytes(), eph_public, host_public.as_bytes());
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_slice()));
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place(Nonce::from_slice(nonce), aad, &mut *buf)
        .map_err(|_| SealError::Decrypt)?;
    decode_plaintext(&buf)
}

/// A fresh X25519 key pair from the OS: (secret, public).
///
/// # Errors
/// [`SealError::Random`].
pub fn keygen_random() -> Result<([u8; 32], [u8; 32]), SealError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(bytes.as_mut_slice()).map_err(|_| SealError::Random)?;
    let public = public_from_secret(&bytes);
    Ok((*bytes, public))
}

/// The X25519 public key of a secret key.
#[must_use]
pub fn public_from_secret(secret: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

/// Reads a key written as standard base64 (padded); surrounding whitespace is ignored.
///
/// # Errors
/// [`SealError::KeyFormat`].
pub fn parse_key_b64(text: &str) -> Result<[u8; 32], SealError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::KeyFormat)?,
    );
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| SealError::KeyFormat)
}

/// Writes a key as standard base64 (padded).
#[must_use]
pub fn key_to_b64(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}

/// `SHA-256(label || shared || eph_public || host_public)`.
fn derive_key(
    shared: &[u8; 32],
    eph_public: &[u8; 32],
    host_public: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let digest = Sha256::new()
        .chain_update(KDF_LABEL)
        .chain_update(shared)
        .chain_update(eph_public)
        .chain_update(host_public)
        .finalize();
    Zeroizing::new(digest.into())
}

/// Encrypts an encoded plaintext (wiped afterwards: it is encrypted in place).
fn seal_plaintext(
    plaintext: Zeroizing<Vec<u8>>,
    host_public: &[u8; 32],
    aad: &[u8],
    secret: &StaticSecret,
    nonce: [u8; 12],
) -> Result<String, SealError> {
    let mut buf = plaintext;
    let eph_public = PublicKey::from(secret);
    let shared = secret.diffie_hellman(&PublicKey::from(*host_public));
    if !shared.was_contributory() {
        return Err(SealError::LowOrderKey);
    }
    let key = derive_key(shared.as_bytes(), eph_public.as_bytes(), host_public);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_slice()));
    cipher
        .encrypt_in_place(Nonce::from_slice(&nonce), aad, &mut *buf)
        .map_err(|_| SealError::Encrypt)?;
    let mut wire = Vec::with_capacity(32 + 12 + buf.len());
    wire.extend_from_slice(eph_public.as_bytes());
    wire.extend_from_slice(&nonce);
    wire.extend_from_slice(&buf);
    let mut out = String::with_capacity(PREFIX.len() + wire.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(&wire, &mut out);
    Ok(out)
}

/// The version-1 plaintext, allocated at its final size (plus the tag), so no reallocation
/// leaves a clear copy behind.
fn encode_plaintext(card: &CardData) -> Result<Zeroizing<Vec<u8>>, SealError> {
    // Only what `parse_swipe` produces is sealed, so whatever is sealed opens.
    check_track2(&card.track2)?;
    let name = card.name.as_deref().unwrap_or("");
    if !valid_name(name) {
        return Err(SealError::Card(CardError::Garbled));
    }
    let t2_len =
        u16::try_from(card.track2.len()).map_err(|_| SealError::Card(CardError::Garbled))?;
    let name_len = u16::try_from(name.len()).map_err(|_| SealError::Card(CardError::Garbled))?;
    let len = 1 + 2 + card.track2.len() + 2 + name.len();
    let mut buf = Zeroizing::new(Vec::with_capacity(len + TAG_LEN));
    buf.push(PLAINTEXT_V1);
    buf.extend_from_slice(&t2_len.to_be_bytes());
    buf.extend_from_slice(card.track2.as_bytes());
    buf.extend_from_slice(&name_len.to_be_bytes());
    buf.extend_from_slice(name.as_bytes());
    Ok(buf)
}

/// Parses track-2 data as a track-2-only swipe.
fn check_track2(t2: &str) -> Result<CardData, SealError> {
    let mut text = Zeroizing::new(String::with_capacity(t2.len() + 2));
    text.push(';');
    text.push_str(t2);
    text.push('?');
    Ok(parse_swipe(&text)?)
}

fn decode_plaintext(buf: &[u8]) -> Result<CardData, SealError> {
    let (&version, rest) = buf.split_first().ok_or(SealError::Plaintext)?;
    if version != PLAINTEXT_V1 {
        return Err(SealError::Plaintext);
    }
    let (t2, rest) = take_field(rest)?;
    let (name, rest) = take_field(rest)?;
    if !rest.is_empty() {
        return Err(SealError::Plaintext);
    }
    let t2 = std::str::from_utf8(t2).map_err(|_| SealError::Plaintext)?;
    let name = std::str::from_utf8(name).map_err(|_| SealError::Plaintext)?;
    if !valid_name(name) {
        return Err(SealError::Plaintext);
    }
    let mut card = check_track2(t2)?;
    if !name.is_empty() {
        card.name = Some(name.to_owned());
    }
    Ok(card)
}

/// A `u16be` length and that many bytes.
fn take_field(buf: &[u8]) -> Result<(&[u8], &[u8]), SealError> {
    let (len, rest) = buf.split_first_chunk::<2>().ok_or(SealError::Plaintext)?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return Err(SealError::Plaintext);
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_SECRET: [u8; 32] = [0x42; 32];
    const AAD: &[u8] = b"txn=0190c0de-0000-7000-8000-000000000001;amount=1234;currency=CNY";
    const SWIPE: &str =
        "%B4111111111111111^DOE/JOHN^2512101000000000?;4111111111111111=25121010000000000?";

    fn host_public() -> [u8; 32] {
        public_from_secret(&HOST_SECRET)
    }

    fn card() -> CardData {
        parse_swipe(SWIPE).unwrap()
    }

    fn sealed() -> String {
        seal(&card(), &host_public(), AAD, [7; 32], [9; 12]).unwrap()
    }

    /// Seals arbitrary plaintext bytes (to test what `open` does with bad layouts).
    fn seal_raw(plaintext: &[u8]) -> String {
        let secret = StaticSecret::from([7; 32]);
        let buf = Zeroizing::new(plaintext.to_vec());
        seal_plaintext(buf, &host_public(), AAD, &secret, [9; 12]).unwrap()
    }

    fn wire(sealed: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(&sealed[PREFIX.len()..]).unwrap()
    }

    fn rewire(bytes: &[u8]) -> String {
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    #[test]
    fn round_trip() {
        let s = sealed();
        assert!(s.starts_with("S1."));
        // 3 + base64(32 + 12 + 1 + 2 + 34 + 2 + 8 + 16)
        assert_eq!(wire(&s).len(), 32 + 12 + 1 + 2 + 34 + 2 + 8 + 16);
        let opened = open(&s, &HOST_SECRET, AAD).unwrap();
        let orig = card();
        assert_eq!(opened.pan, orig.pan);
        assert_eq!(opened.expiry_yymm, orig.expiry_yymm);
        assert_eq!(opened.service_code, orig.service_code);
        assert_eq!(opened.track2, orig.track2);
        assert_eq!(opened.name.as_deref(), Some("DOE/JOHN"));
        // with a trailing newline, as read from a file
        assert!(open(&format!("{s}\n"), &HOST_SECRET, AAD).is_ok());
        // no name, empty AAD
        let t2only = parse_swipe(";6200000000000005=3012201?").unwrap();
        let s = seal(&t2only, &host_public(), b"", [1; 32], [2; 12]).unwrap();
        let opened = open(&s, &HOST_SECRET, b"").unwrap();
        assert_eq!(opened.pan, "6200000000000005");
        assert_eq!(opened.name, None);
    }

    #[test]
    fn deterministic_given_randomness_and_fresh_otherwise() {
        assert_eq!(sealed(), sealed());
        let other = seal(&card(), &host_public(), AAD, [8; 32], [9; 12]).unwrap();
        assert_ne!(sealed(), other);
        let a = seal_random(&card(), &host_public(), AAD).unwrap();
        let b = seal_random(&card(), &host_public(), AAD).unwrap();
        assert_ne!(a, b);
        assert_eq!(open(&a, &HOST_SECRET, AAD).unwrap().pan, "4111111111111111");
        assert_eq!(open(&b, &HOST_SECRET, AAD).unwrap().pan, "4111111111111111");
    }

    #[test]
    fn sealed_text_holds_no_card_data() {
        for s in [sealed(), seal_random(&card(), &host_public(), AAD).unwrap()] {
            assert!(!s.contains("4111111111111111"), "{s}");
            assert!(!s.contains("DOE"));
            let bytes = wire(&s);
            for needle in [&b"4111111111111111"[..], b"2512101", b"DOE/JOHN"] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle));
            }
        }
    }

    #[test]
    fn refusals_never_panic() {
        let s = sealed();
        assert_eq!(
            open(&s, &HOST_SECRET, b"other binding").unwrap_err(),
            SealError::Decrypt
        );
        assert_eq!(open(&s, &[0x43; 32], AAD).unwrap_err(), SealError::Decrypt);
        // every byte flipped: refused
        let bytes = wire(&s);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(open(&rewire(&b), &HOST_SECRET, AAD).is_err(), "byte {i}");
        }
        // every truncation: refused
        for n in 0..s.len() {
            assert!(open(&s[..n], &HOST_SECRET, AAD).is_err(), "len {n}");
        }
        assert_eq!(
            open(&rewire(&bytes[..32 + 12 + 15]), &HOST_SECRET, AAD).unwrap_err(),
            SealError::Format
        );
        assert_eq!(
            open(&rewire(&bytes[..32 + 12 + 16]), &HOST_SECRET, AAD).unwrap_err(),
            SealError::Decrypt
        );
        for bad in [
            "",
            "S1.",
            "S2.AAAA",
            "s1.AAAA",
            &s[3..],
            &format!("S2.{}", &s[3..]),
            "S1.!!!!",
            "S1.AAAA====",
            &format!("{s}="),
            &format!("S1.{}", "A".repeat(MAX_SEALED_LEN + 1)),
        ] {
            assert_eq!(
                open(bad, &HOST_SECRET, AAD).unwrap_err(),
                SealError::Format,
                "{bad:?}"
            );
        }
        // standard (non-url) alphabet is refused
        let std_text = format!("S1.{}", STANDARD.encode(&bytes).trim_end_matches('='));
        if std_text != s {
            assert_eq!(
                open(&std_text, &HOST_SECRET, AAD).unwrap_err(),
                SealError::Format
            );
        }
    }

    #[test]
    fn low_order_points_refused() {
        assert_eq!(
            seal(&card(), &[0; 32], AAD, [7; 32], [9; 12]).unwrap_err(),
            SealError::LowOrderKey
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(
            seal(&card(), &one, AAD, [7; 32], [9; 12]).unwrap_err(),
            SealError::LowOrderKey
        );
        let mut bytes = wire(&sealed());
        bytes[..32].fill(0);
        assert_eq!(
            open(&rewire(&bytes), &HOST_SECRET, AAD).unwrap_err(),
            SealError::LowOrderKey
        );
    }

    #[test]
    fn bad_plaintext_layouts() {
        let good_t2 = b"4111111111111111=2512101";
        let mut v1 = vec![1u8, 0, 24];
        v1.extend_from_slice(good_t2);
        v1.extend_from_slice(&[0, 0]);
        assert!(open(&seal_raw(&v1), &HOST_SECRET, AAD).is_ok());
        let mut v2 = v1.clone();
        v2[0] = 2;
        let mut trailing = v1.clone();
        trailing.push(0);
        let mut short = v1.clone();
        short.truncate(v1.len() - 1);
        let mut long_len = v1.clone();
        long_len[2] = 200;
        let mut bad_name = v1.clone();
        bad_name.truncate(v1.len() - 2);
        bad_name.extend_from_slice(&[0, 3, b'A', b'^', b'B']);
        let mut bad_utf8 = v1.clone();
        bad_utf8.truncate(v1.len() - 2);
        bad_utf8.extend_from_slice(&[0, 2, 0xc3, 0x28]);
        for bad in [
            &[][..],
            &[1],
            &v2,
            &trailing,
            &short,
            &long_len,
            &bad_name,
            &bad_utf8,
        ] {
            assert_eq!(
                open(&seal_raw(bad), &HOST_SECRET, AAD).unwrap_err(),
                SealError::Plaintext
            );
        }
        let mut luhn = vec![1u8, 0, 24];
        luhn.extend_from_slice(b"4111111111111112=2512101");
        luhn.extend_from_slice(&[0, 0]);
        assert_eq!(
            open(&seal_raw(&luhn), &HOST_SECRET, AAD).unwrap_err(),
            SealError::Card(CardError::Luhn)
        );
    }

    #[test]
    fn unsealable_card_data_refused() {
        let mut c = card();
        c.track2 = "not track data".to_owned();
        assert_eq!(
            seal(&c, &host_public(), AAD, [7; 32], [9; 12]).unwrap_err(),
            SealError::Card(CardError::Garbled)
        );
        let mut c = card();
        c.name = Some("BAD^NAME".to_owned());
        assert!(seal(&c, &host_public(), AAD, [7; 32], [9; 12]).is_err());
    }

    #[test]
    fn keys() {
        // RFC 7748 §6.1, Alice.
        let secret: [u8; 32] =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            hex::encode(public_from_secret(&secret)),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        let (secret, public) = keygen_random().unwrap();
        assert_eq!(public_from_secret(&secret), public);
        let (secret2, _) = keygen_random().unwrap();
        assert_ne!(secret, secret2);
        let text = key_to_b64(&public);
        assert_eq!(text.len(), 44);
        assert_eq!(parse_key_b64(&text).unwrap(), public);
        assert_eq!(parse_key_b64(&format!("  {text}\n")).unwrap(), public);
        let s = seal_random(&card(), &public, AAD).unwrap();
        assert_eq!(open(&s, &secret, AAD).unwrap().pan, "4111111111111111");
        for bad in [
            "",
            "AAAA",
            &STANDARD.encode([0u8; 31]),
            &STANDARD.encode([0u8; 33]),
            "!!",
            &text[..43],
        ] {
            assert_eq!(
                parse_key_b64(bad).unwrap_err(),
                SealError::KeyFormat,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_hold_no_card_data() {
        let all = [
            SealError::Format,
            SealError::Decrypt,
            SealError::LowOrderKey,
            SealError::KeyFormat,
            SealError::Plaintext,
            SealError::Card(CardError::Luhn),
            SealError::Encrypt,
            SealError::Random,
        ];
        for e in all {
            let shown = format!("{e} {e:?}");
            // no digit run that could be card data ("32 bytes" is fine)
            let longest = shown
                .split(|c: char| !c.is_ascii_digit())
                .map(str::len)
                .max();
            assert!(longest < Some(3), "{shown}");
        }
    }
}
