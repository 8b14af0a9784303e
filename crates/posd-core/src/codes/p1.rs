//! The `P1` offline payment code (DESIGN §1.2): byte layout, text form, keys and the test wallet.
//!
//! Why it exists: transit validators and peak-hour tills must take a customer-presented code with
//! no network. The phone holds a credential signed by the payment platform (issuer) and signs a
//! fresh code with the user key in it; the POS checks both signatures with the issuer's public key
//! alone. This module is the exact, documented format (so other parties can implement it), the
//! key handling (hex import/export), and the wallet side (issue a credential, make a code) used by
//! tests, the demo and platform teams. The acceptance rules live in [`super::offline`].
//!
//! Layout (all integers big-endian; text = `"P1."` + base64url without padding of 193 bytes):
//!
//! ```text
//! credential (121 bytes)
//!   0    u8   version        = 1
//!   1    u8   issuer_key_id
//!   2    u64  user_id
//!   10   [33] user_pubkey    P-256, SEC1 compressed (02/03 || x)
//!   43   u32  valid_from     unix seconds
//!   47   u32  valid_until    unix seconds
//!   51   u32  max_amount     minor units, per transaction
//!   55   u16  currency       ISO 4217 numeric
//!   57   [64] issuer_sig     ECDSA P-256/SHA-256 r||s over "posd-offline-cred-v1" || bytes 0..57
//! code (72 bytes, at offset 121)
//!   121  u32  timestamp      unix seconds
//!   125  u32  counter        strictly increasing per user
//!   129  [64] user_sig       ECDSA P-256/SHA-256 r||s over
//!                            "posd-offline-code-v1" || credential (121) || timestamp || counter
//! ```
//!
//! **Signature malleability.** ECDSA signatures `(r, s)` and `(r, n − s)` are both valid. posd
//! accepts both (high-S and low-S), because phone keystores and HSMs do not normalise S and the
//! format does not require it. This is safe because nothing is keyed on signature bytes: a code's
//! one-time use is enforced by `(user_id, counter)`, which the user signature covers, so a
//! re-encoded signature still carries an already-seen counter and is refused as replayed; the
//! credential fingerprint ([`Credential::fingerprint`]) excludes the issuer signature for the same
//! reason. Signatures this module makes are always low-S.

use core::fmt;

use base64::Engine;
use p256::ecdsa::signature::{MultipartSigner, MultipartVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Text prefix of a `P1` code.
pub const PREFIX: &str = "P1.";
/// The only credential version defined.
pub const VERSION: u8 = 1;
/// Length of the signed part of a credential.
pub const CREDENTIAL_SIGNED_LEN: usize = 57;
/// Length of a credential.
pub const CREDENTIAL_LEN: usize = 121;
/// Length of the code part.
pub const CODE_PART_LEN: usize = 72;
/// Length of a whole `P1` code (credential + code part).
pub const P1_LEN: usize = CREDENTIAL_LEN + CODE_PART_LEN;
/// Domain separator of the issuer signature.
pub const CRED_DOMAIN: &[u8] = b"posd-offline-cred-v1";
/// Domain separator of the user signature.
pub const CODE_DOMAIN: &[u8] = b"posd-offline-code-v1";

/// Why a `P1` text or byte string is not a well-formed code, or a key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum P1Error {
    /// The text does not start with `P1.`.
    #[error("not a P1 code (no \"P1.\" prefix)")]
    NotP1,
    /// The base64url text ends with `=` padding, which the format forbids.
    #[error("base64 padding ('=') is not allowed in a P1 code")]
    Padding,
    /// The text uses the standard base64 alphabet (`+`, `/`) instead of base64url.
    #[error("standard base64 alphabet ('+' or '/') used; P1 uses base64url ('-', '_')")]
    WrongAlphabet,
    /// The text is not valid base64url.
    #[error("invalid base64url: {0}")]
    Base64(String),
    /// Fewer bytes than a code holds.
    #[error("truncated: {got} bytes, a P1 code is {P1_LEN}")]
    Truncated {
        /// Bytes decoded.
        got: usize,
    },
    /// More bytes than a code holds.
    #[error("trailing data: {got} bytes, a P1 code is {P1_LEN}")]
    TrailingData {
        /// Bytes decoded.
        got: usize,
    },
    /// The version byte is not 1.
    #[error("unsupported P1 version {0}")]
    UnsupportedVersion(u8),
    /// The user public key does not start with a SEC1 compressed-point prefix (02/03).
    #[error("user public key is not a SEC1 compressed point (prefix {0:#04x})")]
    UserKeyNotCompressed(u8),
    /// A key given in hex is malformed or not a valid P-256 key.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The system random number generator failed (key generation only).
    #[error("random number generator failed: {0}")]
    Rng(String),
    /// Signing failed (wallet side only).
    #[error("signing failed")]
    Signing,
}

impl P1Error {
    /// Stable snake_case reason code (used in [`super::offline::OfflineReject::code`]).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            P1Error::NotP1 => "malformed_prefix",
            P1Error::Padding => "malformed_padding",
            P1Error::WrongAlphabet => "malformed_alphabet",
            P1Error::Base64(_) => "malformed_base64",
            P1Error::Truncated { .. } => "malformed_truncated",
            P1Error::TrailingData { .. } => "malformed_trailing_data",
            P1Error::UnsupportedVersion(_) => "unsupported_version",
            P1Error::UserKeyNotCompressed(_) => "malformed_user_key",
            P1Error::InvalidKey(_) => "invalid_key",
            P1Error::Rng(_) => "rng_failure",
            P1Error::Signing => "signing_failed",
        }
    }
}

/// A P-256 public key (issuer or user): parsed and checked on the curve once, kept also in the
/// uncompressed SEC1 form that `ring`'s verifier takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    uncompressed: [u8; 65],
}

impl PublicKey {
    fn new(key: VerifyingKey) -> PublicKey {
        let point = key.to_sec1_point(false);
        let mut uncompressed = [0u8; 65];
        let bytes = point.as_bytes();
        if let Some(dst) = uncompressed.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        PublicKey { key, uncompressed }
    }

    /// From SEC1 bytes, compressed (33) or uncompressed (65); the point must be on the curve.
    ///
    /// # Errors
    /// [`P1Error::InvalidKey`].
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, P1Error> {
        VerifyingKey::from_sec1_bytes(bytes)
            .map(PublicKey::new)
            .map_err(|_| P1Error::InvalidKey("not a valid P-256 SEC1 public key".into()))
    }

    /// From hex of SEC1 bytes (compressed or uncompressed), as in configuration files.
    ///
    /// # Errors
    /// [`P1Error::InvalidKey`].
    pub fn from_hex(text: &str) -> Result<Self, P1Error> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| P1Error::InvalidKey(format!("public key hex: {e}")))?;
        Self::from_sec1(&bytes)
    }

    /// SEC1 compressed form (33 bytes).
    #[must_use]
    pub fn to_compressed(&self) -> [u8; 33] {
        let point = self.key.to_sec1_point(true);
        let mut out = [0u8; 33];
        let bytes = point.as_bytes();
        if let Some(dst) = out.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        out
    }

    /// Lower-case hex of the compressed form (66 characters).
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_compressed())
    }

    /// ECDSA P-256 / SHA-256 over the concatenated `parts`, `sig` = `r || s`. Verified with
    /// `ring` (issue 18: 0.56 ms a P1 code with `p256`; `benches/p256_backends.rs` in this crate
    /// compares both on the same inputs). Both accept exactly the same signatures (high and low
    /// `s`; `r`, `s` in 1..n): `tests::ring_and_p256_agree`.
    fn verify(&self, parts: &[&[u8]], sig: &[u8; 64]) -> bool {
        let mut msg = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            msg.extend_from_slice(p);
        }
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &self.uncompressed[..],
        )
        .verify(&msg, sig)
        .is_ok()
    }

    /// The same check with the `p256` crate (the reference the benches and tests compare with).
    #[doc(hidden)]
    #[must_use]
    pub fn verify_with_p256(&self, parts: &[&[u8]], sig: &[u8; 64]) -> bool {
        match Signature::from_slice(sig) {
            Ok(sig) => self.key.multipart_verify(parts, &sig).is_ok(),
            Err(_) => false,
        }
    }

    /// [`Self::verify`], for the benches and the agreement tests.
    #[doc(hidden)]
    #[must_use]
    pub fn verify_with_ring(&self, parts: &[&[u8]], sig: &[u8; 64]) -> bool {
        self.verify(parts, sig)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// A P-256 private key (issuer or user). `Debug` never shows the scalar; memory is zeroized on
/// drop by `p256`.
#[derive(Clone)]
pub struct PrivateKey(SigningKey);

impl PrivateKey {
    /// A fresh key from the operating system's random number generator.
    ///
    /// # Errors
    /// [`P1Error::Rng`] if the OS RNG fails.
    pub fn generate() -> Result<Self, P1Error> {
        SigningKey::try_generate()
            .map(PrivateKey)
            .map_err(|e| P1Error::Rng(e.to_string()))
    }

    /// From the 32-byte big-endian scalar.
    ///
    /// # Errors
    /// [`P1Error::InvalidKey`] if not 32 bytes or not in `1..n`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, P1Error> {
        SigningKey::from_slice(bytes)
            .map(PrivateKey)
            .map_err(|_| P1Error::InvalidKey("private key must be a 32-byte scalar in 1..n".into()))
    }

    /// From 64 hex characters of the scalar.
    ///
    /// # Errors
    /// [`P1Error::InvalidKey`].
    pub fn from_hex(text: &str) -> Result<Self, P1Error> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| P1Error::InvalidKey(format!("private key hex: {e}")))?;
        Self::from_bytes(&bytes)
    }

    /// Lower-case hex of the scalar (64 characters). Handle with care.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        PublicKey::new(*self.0.verifying_key())
    }

    fn sign(&self, parts: &[&[u8]]) -> Result<[u8; 64], P1Error> {
        let sig: Signature = self
            .0
            .try_multipart_sign(parts)
            .map_err(|_| P1Error::Signing)?;
        let sig = sig.normalize_s();
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        Ok(out)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// The credential the issuer signs for a user (121 bytes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    /// Format version; always [`VERSION`] after decoding.
    pub version: u8,
    /// Which issuer key signed it.
    pub issuer_key_id: u8,
    /// The platform's user id.
    pub user_id: u64,
    /// The user's public key, SEC1 compressed.
    pub user_pubkey: [u8; 33],
    /// First valid second (unix).
    pub valid_from: u32,
    /// Last valid second (unix).
    pub valid_until: u32,
    /// Most a single transaction may be, in minor units.
    pub max_amount: u32,
    /// ISO 4217 numeric currency.
    pub currency: u16,
    /// Issuer signature `r || s`.
    pub issuer_sig: [u8; 64],
}

/// Reads `N` bytes at `at`; `None` past the end (never panics).
fn take<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

impl Credential {
    /// The 57 bytes the issuer signs (everything before the signature).
    #[must_use]
    pub fn signed_bytes(&self) -> [u8; CREDENTIAL_SIGNED_LEN] {
        let mut out = [0u8; CREDENTIAL_SIGNED_LEN];
        let parts: [&[u8]; 8] = [
            &[self.version],
            &[self.issuer_key_id],
            &self.user_id.to_be_bytes(),
            &self.user_pubkey,
            &self.valid_from.to_be_bytes(),
            &self.valid_until.to_be_bytes(),
            &self.max_amount.to_be_bytes(),
            &self.currency.to_be_bytes(),
        ];
        let mut at = 0;
        for p in parts {
            if let Some(dst) = out.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        out
    }

    /// The 121 wire bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; CREDENTIAL_LEN] {
        let mut out = [0u8; CREDENTIAL_LEN];
        let (head, sig) = out.split_at_mut(CREDENTIAL_SIGNED_LEN);
        head.copy_from_slice(&self.signed_bytes());
        sig.copy_from_slice(&self.issuer_sig);
        out
    }

    /// Decodes exactly [`CREDENTIAL_LEN`] bytes (structure only; signatures are not checked).
    ///
    /// # Errors
    /// [`P1Error::Truncated`], [`P1Error::TrailingData`], [`P1Error::UnsupportedVersion`],
    /// [`P1Error::UserKeyNotCompressed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, P1Error> {
        let version = *bytes.first().ok_or(P1Error::Truncated { got: 0 })?;
        if version != VERSION {
            return Err(P1Error::UnsupportedVersion(version));
        }
        if bytes.len() > CREDENTIAL_LEN {
            return Err(P1Error::TrailingData { got: bytes.len() });
        }
        let short = P1Error::Truncated { got: bytes.len() };
        let user_pubkey: [u8; 33] = take(bytes, 10).ok_or_else(|| short.clone())?;
        let cred = Credential {
            version,
            issuer_key_id: take::<1>(bytes, 1).ok_or_else(|| short.clone())?[0],
            user_id: u64::from_be_bytes(take(bytes, 2).ok_or_else(|| short.clone())?),
            user_pubkey,
            valid_from: u32::from_be_bytes(take(bytes, 43).ok_or_else(|| short.clone())?),
            valid_until: u32::from_be_bytes(take(bytes, 47).ok_or_else(|| short.clone())?),
            max_amount: u32::from_be_bytes(take(bytes, 51).ok_or_else(|| short.clone())?),
            currency: u16::from_be_bytes(take(bytes, 55).ok_or_else(|| short.clone())?),
            issuer_sig: take(bytes, 57).ok_or(short)?,
        };
        if !matches!(cred.user_pubkey[0], 0x02 | 0x03) {
            return Err(P1Error::UserKeyNotCompressed(cred.user_pubkey[0]));
        }
        Ok(cred)
    }

    /// Whether `issuer` signed this credential.
    #[must_use]
    pub fn issuer_signature_valid(&self, issuer: &PublicKey) -> bool {
        issuer.verify(&[CRED_DOMAIN, &self.signed_bytes()], &self.issuer_sig)
    }

    /// The user's public key, if it is a valid point.
    ///
    /// # Errors
    /// [`P1Error::InvalidKey`].
    pub fn user_key(&self) -> Result<PublicKey, P1Error> {
        PublicKey::from_sec1(&self.user_pubkey)
    }

    /// A stable identifier of the credential for denylists and logs: hex of the first 16 bytes
    /// of SHA-256 over the 57 signed bytes (the issuer signature is left out, so a re-encoded
    /// signature cannot dodge a denylist entry).
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.signed_bytes());
        hex::encode(digest.get(..16).unwrap_or(&[]))
    }
}

/// A whole `P1` code: credential plus the code part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P1Code {
    /// The issuer-signed credential.
    pub credential: Credential,
    /// When the phone made the code (unix seconds).
    pub timestamp: u32,
    /// Per-user counter, strictly increasing.
    pub counter: u32,
    /// User signature `r || s`.
    pub user_sig: [u8; 64],
}

impl P1Code {
    /// The bytes the user signs, after the domain separator: credential || timestamp || counter.
    #[must_use]
    pub fn user_signed_bytes(&self) -> [u8; CREDENTIAL_LEN + 8] {
        let mut out = [0u8; CREDENTIAL_LEN + 8];
        let (cred, rest) = out.split_at_mut(CREDENTIAL_LEN);
        cred.copy_from_slice(&self.credential.to_bytes());
        let (ts, ctr) = rest.split_at_mut(4);
        ts.copy_from_slice(&self.timestamp.to_be_bytes());
        ctr.copy_from_slice(&self.counter.to_be_bytes());
        out
    }

    /// The 193 wire bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; P1_LEN] {
        let mut out = [0u8; P1_LEN];
        let (signed, sig) = out.split_at_mut(CREDENTIAL_LEN + 8);
        signed.copy_from_slice(&self.user_signed_bytes());
        sig.copy_from_slice(&self.user_sig);
        out
    }

    /// Decodes exactly [`P1_LEN`] bytes (structure only; signatures are not checked).
    ///
    /// # Errors
    /// See [`Credential::from_bytes`]; length errors are reported against [`P1_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, P1Error> {
        let version = *bytes.first().ok_or(P1Error::Truncated { got: 0 })?;
        if version != VERSION {
            return Err(P1Error::UnsupportedVersion(version));
        }
        if bytes.len() < P1_LEN {
            return Err(P1Error::Truncated { got: bytes.len() });
        }
        if bytes.len() > P1_LEN {
            return Err(P1Error::TrailingData { got: bytes.len() });
        }
        let short = P1Error::Truncated { got: bytes.len() };
        let credential =
            Credential::from_bytes(bytes.get(..CREDENTIAL_LEN).ok_or_else(|| short.clone())?)?;
        Ok(P1Code {
            credential,
            timestamp: u32::from_be_bytes(take(bytes, 121).ok_or_else(|| short.clone())?),
            counter: u32::from_be_bytes(take(bytes, 125).ok_or_else(|| short.clone())?),
            user_sig: take(bytes, 129).ok_or(short)?,
        })
    }

    /// The QR text: `P1.` + base64url without padding.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::from(PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(self.to_bytes(), &mut s);
        s
    }

    /// Decodes the QR text (structure only; signatures are not checked).
    ///
    /// # Errors
    /// [`P1Error::NotP1`], [`P1Error::Padding`], [`P1Error::WrongAlphabet`], [`P1Error::Base64`],
    /// then the byte-level errors of [`P1Code::from_bytes`].
    pub fn from_text(text: &str) -> Result<Self, P1Error> {
        let body = text.strip_prefix(PREFIX).ok_or(P1Error::NotP1)?;
        if body.ends_with('=') {
            return Err(P1Error::Padding);
        }
        if body.contains(['+', '/']) {
            return Err(P1Error::WrongAlphabet);
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| P1Error::Base64(e.to_string()))?;
        Self::from_bytes(&bytes)
    }

    /// Whether the user signature is valid for the user key in the credential (`false` if that
    /// key is not a valid point).
    #[must_use]
    pub fn user_signature_valid(&self) -> bool {
        match self.credential.user_key() {
            Ok(k) => self.user_signature_valid_with(&k),
            Err(_) => false,
        }
    }

    /// Whether the user signature is valid for `key`, the credential's user key already parsed
    /// (by a verifier that remembers credentials it has checked).
    #[must_use]
    pub fn user_signature_valid_with(&self, key: &PublicKey) -> bool {
        key.verify(&[CODE_DOMAIN, &self.user_signed_bytes()], &self.user_sig)
    }
}

/// What the issuer certifies about a user (wallet side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialRequest {
    /// The platform's user id.
    pub user_id: u64,
    /// The user's public key.
    pub user_key: PublicKey,
    /// First valid second.
    pub valid_from: u32,
    /// Last valid second.
    pub valid_until: u32,
    /// Per-transaction maximum, minor units.
    pub max_amount: u32,
    /// ISO 4217 numeric currency.
    pub currency: u16,
}

/// Issues (signs) a credential with the issuer key `issuer_key_id` (wallet/platform side).
///
/// # Errors
/// [`P1Error::Signing`] if the signer fails.
pub fn issue_credential(
    issuer: &PrivateKey,
    issuer_key_id: u8,
    req: &CredentialRequest,
) -> Result<Credential, P1Error> {
    sign_credential(
        issuer,
        Credential {
            version: VERSION,
            issuer_key_id,
            user_id: req.user_id,
            user_pubkey: req.user_key.to_compressed(),
            valid_from: req.valid_from,
            valid_until: req.valid_until,
            max_amount: req.max_amount,
            currency: req.currency,
            issuer_sig: [0; 64],
        },
    )
}

/// Signs the fields of `credential` as they are (replacing `issuer_sig`). For issuers that
/// build credentials themselves, and for tests that need a signed credential with odd fields.
///
/// # Errors
/// [`P1Error::Signing`] if the signer fails.
pub fn sign_credential(issuer: &PrivateKey, credential: Credential) -> Result<Credential, P1Error> {
    let mut cred = credential;
    cred.issuer_sig = issuer.sign(&[CRED_DOMAIN, &cred.signed_bytes()])?;
    Ok(cred)
}

/// Makes a code for `timestamp` and `counter`, signed by the user key (wallet side).
///
/// # Errors
/// [`P1Error::InvalidKey`] if `user` is not the key in the credential; [`P1Error::Signing`].
pub fn make_code(
    user: &PrivateKey,
    credential: &Credential,
    timestamp: u32,
    counter: u32,
) -> Result<P1Code, P1Error> {
    if user.public_key().to_compressed() != credential.user_pubkey {
        return Err(P1Error::InvalidKey(
            "user key does not match the credential".into(),
        ));
    }
    let mut code = P1Code {
        credential: *credential,
        timestamp,
        counter,
        user_sig: [0; 64],
    };
    code.user_sig = user.sign(&[CODE_DOMAIN, &code.user_signed_bytes()])?;
    Ok(code)
}

/// Serialisable view of a credential for inspection (keys and signatures in hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialView {
    /// Version.
    pub version: u8,
    /// Issuer key id.
    pub issuer_key_id: u8,
    /// User id.
    pub user_id: u64,
    /// User public key, hex.
    pub user_pubkey: String,
    /// Valid from (unix seconds).
    pub valid_from: u32,
    /// Valid until (unix seconds).
    pub valid_until: u32,
    /// Max per transaction (minor units).
    pub max_amount: u32,
    /// ISO 4217 numeric currency.
    pub currency: u16,
    /// Alphabetic currency if known.
    pub currency_alpha: Option<&'static str>,
    /// Issuer signature, hex.
    pub issuer_sig: String,
    /// [`Credential::fingerprint`].
    pub fingerprint: String,
}

impl From<&Credential> for CredentialView {
    fn from(c: &Credential) -> Self {
        CredentialView {
            version: c.version,
            issuer_key_id: c.issuer_key_id,
            user_id: c.user_id,
            user_pubkey: hex::encode(c.user_pubkey),
            valid_from: c.valid_from,
            valid_until: c.valid_until,
            max_amount: c.max_amount,
            currency: c.currency,
            currency_alpha: super::currency::Currency::from_numeric(c.currency).map(|c| c.alpha),
            issuer_sig: hex::encode(c.issuer_sig),
            fingerprint: c.fingerprint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order n of P-256, big-endian.
    const N: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63,
        0x25, 0x51,
    ];

    /// n − x for a big-endian 32-byte x < n.
    fn n_minus(x: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut d = i16::from(N[i]) - i16::from(x[i]) - borrow;
            borrow = 0;
            if d < 0 {
                d += 256;
                borrow = 1;
            }
            out[i] = d as u8;
        }
        out
    }

    #[test]
    fn ring_and_p256_agree() {
        for round in 0..40u32 {
            let k = PrivateKey::generate().unwrap();
            let pk = k.public_key();
            let msg = round.to_be_bytes();
            let parts: [&[u8]; 2] = [CODE_DOMAIN, &msg];
            let sig = k.sign(&parts).unwrap();
            let both = |sig: &[u8; 64]| {
                let (a, b) = (
                    pk.verify_with_ring(&parts, sig),
                    pk.verify_with_p256(&parts, sig),
                );
                assert_eq!(a, b, "ring {a} vs p256 {b} on round {round}");
                a
            };
            assert!(both(&sig));
            // The same signature with s replaced by n − s (the "high-s" twin) verifies in both.
            let mut twin = sig;
            twin[32..].copy_from_slice(&n_minus(&sig[32..]));
            assert!(both(&twin));
            // Any flipped bit fails in both.
            for bit in [0usize, 255, 256, 511] {
                let mut bad = sig;
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!both(&bad));
            }
            // r or s out of range: zero, n, all-ones.
            for (at, v) in [
                (0usize, [0u8; 32]),
                (32, [0u8; 32]),
                (0, N),
                (32, N),
                (32, [0xFF; 32]),
            ] {
                let mut bad = sig;
                bad[at..at + 32].copy_from_slice(&v);
                assert!(!both(&bad));
            }
            // Another message fails in both.
            let other: [&[u8]; 2] = [CRED_DOMAIN, &msg];
            assert_eq!(
                pk.verify_with_ring(&other, &sig),
                pk.verify_with_p256(&other, &sig)
            );
        }
    }

    fn fixture() -> (PrivateKey, PrivateKey, P1Code) {
        let issuer = PrivateKey::from_hex(
            "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
        )
        .unwrap();
        let user = PrivateKey::generate().unwrap();
        let cred = issue_credential(
            &issuer,
            7,
            &CredentialRequest {
                user_id: 0x0102_0304_0506_0708,
                user_key: user.public_key(),
                valid_from: 1_700_000_000,
                valid_until: 1_800_000_000,
                max_amount: 5000,
                currency: 156,
            },
        )
        .unwrap();
        let code = make_code(&user, &cred, 1_750_000_000, 42).unwrap();
        (issuer, user, code)
    }

    #[test]
    fn layout_is_exact() {
        let (_, user, code) = fixture();
        let b = code.to_bytes();
        assert_eq!(b.len(), 193);
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 7);
        assert_eq!(&b[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[10..43], &user.public_key().to_compressed());
        assert_eq!(&b[43..47], &1_700_000_000u32.to_be_bytes());
        assert_eq!(&b[47..51], &1_800_000_000u32.to_be_bytes());
        assert_eq!(&b[51..55], &5000u32.to_be_bytes());
        assert_eq!(&b[55..57], &[0, 156]);
        assert_eq!(&b[57..121], &code.credential.issuer_sig);
        assert_eq!(&b[121..125], &1_750_000_000u32.to_be_bytes());
        assert_eq!(&b[125..129], &[0, 0, 0, 42]);
        assert_eq!(&b[129..193], &code.user_sig);
        let text = code.to_text();
        assert!(text.starts_with("P1.AQc"));
        assert_eq!(text.len(), 3 + 258);
        assert_eq!(P1Code::from_text(&text).unwrap(), code);
    }

    #[test]
    fn signatures_cover_what_the_design_says() {
        let (issuer, _, code) = fixture();
        // Recompute both signatures' messages by hand and verify with p256 directly.
        let b = code.to_bytes();
        let issuer_vk = *issuer.0.verifying_key();
        let mut msg = CRED_DOMAIN.to_vec();
        msg.extend_from_slice(&b[..57]);
        let sig = Signature::from_slice(&b[57..121]).unwrap();
        assert!(p256::ecdsa::signature::Verifier::verify(&issuer_vk, &msg, &sig).is_ok());
        let user_vk = VerifyingKey::from_sec1_bytes(&b[10..43]).unwrap();
        let mut msg = CODE_DOMAIN.to_vec();
        msg.extend_from_slice(&b[..129]);
        let sig = Signature::from_slice(&b[129..]).unwrap();
        assert!(p256::ecdsa::signature::Verifier::verify(&user_vk, &msg, &sig).is_ok());
        assert!(code.credential.issuer_signature_valid(&issuer.public_key()));
        assert!(code.user_signature_valid());
    }

    #[test]
    fn high_s_is_accepted_and_we_emit_low_s() {
        let (issuer, _, code) = fixture();
        let sig = Signature::from_slice(&code.user_sig).unwrap();
        assert_eq!(sig.normalize_s(), sig, "we sign low-S");
        // Flip to high-S: (r, n - s). Still valid by design (see module doc).
        let (r, s) = sig.split_scalars();
        let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(high, sig);
        let mut flipped = code;
        flipped.user_sig.copy_from_slice(&high.to_bytes());
        assert!(flipped.user_signature_valid());
        assert!(flipped
            .credential
            .issuer_signature_valid(&issuer.public_key()));
    }

    #[test]
    fn key_hex_round_trip() {
        let k = PrivateKey::generate().unwrap();
        let again = PrivateKey::from_hex(&k.to_hex()).unwrap();
        assert_eq!(again.public_key(), k.public_key());
        let pk_hex = k.public_key().to_hex();
        assert_eq!(pk_hex.len(), 66);
        assert_eq!(PublicKey::from_hex(&pk_hex).unwrap(), k.public_key());
        // uncompressed form is accepted for config
        let unc = k.0.verifying_key().to_sec1_point(false);
        assert_eq!(
            PublicKey::from_sec1(unc.as_bytes()).unwrap(),
            k.public_key()
        );
        assert!(PublicKey::from_hex("02").is_err());
        assert!(PublicKey::from_hex("zz").is_err());
        assert!(PrivateKey::from_hex(&"00".repeat(32)).is_err());
        assert!(PrivateKey::from_hex(&"ff".repeat(32)).is_err());
        assert!(PrivateKey::from_hex("abcd").is_err());
        assert_eq!(format!("{k:?}"), "PrivateKey(..)");
    }

    #[test]
    fn decode_errors_are_specific() {
        let (_, _, code) = fixture();
        let text = code.to_text();
        let body = &text[3..];
        assert_eq!(P1Code::from_text(body), Err(P1Error::NotP1));
        assert_eq!(
            P1Code::from_text(&format!("{text}==")),
            Err(P1Error::Padding)
        );
        assert!(matches!(
            P1Code::from_text("P1.a$b"),
            Err(P1Error::Base64(_))
        ));
        let std_b64 = format!(
            "P1.{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(code.to_bytes())
        );
        if std_b64.contains(['+', '/']) {
            assert_eq!(P1Code::from_text(&std_b64), Err(P1Error::WrongAlphabet));
        }
        let mut b = code.to_bytes().to_vec();
        b.truncate(192);
        assert_eq!(P1Code::from_bytes(&b), Err(P1Error::Truncated { got: 192 }));
        b.extend_from_slice(&[0, 0]);
        assert_eq!(
            P1Code::from_bytes(&b),
            Err(P1Error::TrailingData { got: 194 })
        );
        let mut b = code.to_bytes();
        b[0] = 2;
        assert_eq!(P1Code::from_bytes(&b), Err(P1Error::UnsupportedVersion(2)));
        let mut b = code.to_bytes();
        b[10] = 0x04;
        assert_eq!(
            P1Code::from_bytes(&b),
            Err(P1Error::UserKeyNotCompressed(4))
        );
        assert_eq!(P1Code::from_bytes(&[]), Err(P1Error::Truncated { got: 0 }));
    }

    #[test]
    fn make_code_refuses_foreign_user_key() {
        let (_, _, code) = fixture();
        let other = PrivateKey::generate().unwrap();
        assert!(matches!(
            make_code(&other, &code.credential, 1, 1),
            Err(P1Error::InvalidKey(_))
        ));
    }

    #[test]
    fn fingerprint_ignores_issuer_signature() {
        let (_, _, code) = fixture();
        let mut c = code.credential;
        let fp = c.fingerprint();
        assert_eq!(fp.len(), 32);
        c.issuer_sig[5] ^= 1;
        assert_eq!(c.fingerprint(), fp);
        c.user_id += 1;
        assert_ne!(c.fingerprint(), fp);
    }
}
