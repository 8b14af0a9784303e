//! Signed fleet envelopes (DESIGN §5), with no I/O: `{key_id, payload, sig}` where `payload`
//! is standard base64 of a JSON document and `sig` is standard base64 of an Ed25519 signature
//! over the *decoded* payload bytes, exactly as received, by a fleet key listed in the local
//! file (`[fleet] keys`).
//!
//! A config document is `{version, issued_at, terminal, config:{...}}`; it is accepted only if
//! the signature verifies, `terminal` is `"*"` or this terminal's id, and `version` is strictly
//! higher than the last applied one. Every refusal is an [`EnvelopeError`] whose
//! [`code`](EnvelopeError::code) is a stable snake_case word published in `cfg/reported.error`.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The largest envelope accepted, in bytes (the link's own packet limit is 256 KiB).
pub const MAX_ENVELOPE: usize = 192 * 1024;

/// Why a pushed envelope (config or command) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a signed envelope {{key_id, payload, sig}}: {0}")]
    Malformed(String),
    #[error("{field} is not valid base64 of the right length")]
    BadEncoding { field: &'static str },
    #[error("key {0:?} is not a fleet key of this terminal")]
    UnknownKey(String),
    #[error("the signature does not verify with key {0:?}")]
    BadSignature(String),
    #[error("the signed document is not valid: {0}")]
    BadDocument(String),
    #[error("the document is for terminal {got:?}, this is {want:?}")]
    WrongTerminal { want: String, got: String },
    #[error("version {version} is not higher than the last applied version {last}")]
    StaleVersion { version: u64, last: u64 },
    #[error("fleet key {id:?}: {reason}")]
    BadKey { id: String, reason: String },
    #[error(
        "issued at {issued_at} (unix s), {} s from this terminal's clock ({now}): a command runs \
         only within {max_age_s} s of being issued ([fleet] cmd_max_age_s)",
        .now.abs_diff(*.issued_at)
    )]
    Expired {
        issued_at: u64,
        now: u64,
        max_age_s: u64,
    },
    #[error(
        "issued at {issued_at} (unix s), before {floor}: commands that old are no longer \
         remembered, so it might have run already"
    )]
    Stale { issued_at: u64, floor: u64 },
    #[error(
        "this terminal's clock is not trusted (not synchronised, or before posd's build date), so \
         the command's freshness cannot be checked: synchronise the clock (NTP), or set [offline] \
         clock = \"always\" on a box with a trusted RTC"
    )]
    ClockUntrusted,
    #[error(
        "{live} commands were run in the last {max_age_s} s, at most {max} are kept \
         ([fleet] cmd_records): try again once older ones expire"
    )]
    TooManyCommands { live: u64, max: u64, max_age_s: u64 },
}

impl EnvelopeError {
    /// Stable machine-readable code (`cfg/reported.error`, `cmd/result.error`).
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::Malformed(_) => "malformed_envelope",
            EnvelopeError::BadEncoding { .. } => "bad_encoding",
            EnvelopeError::UnknownKey(_) => "unknown_key",
            EnvelopeError::BadSignature(_) => "bad_signature",
            EnvelopeError::BadDocument(_) => "bad_document",
            EnvelopeError::WrongTerminal { .. } => "wrong_terminal",
            EnvelopeError::StaleVersion { .. } => "stale_version",
            EnvelopeError::BadKey { .. } => "bad_key",
            EnvelopeError::Expired { .. } => "expired",
            EnvelopeError::Stale { .. } => "stale_command",
            EnvelopeError::ClockUntrusted => "clock_untrusted",
            EnvelopeError::TooManyCommands { .. } => "too_many_commands",
        }
    }
}

/// One trust anchor in `[fleet] keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetKeyConfig {
    /// The name the envelope's `key_id` refers to.
    pub id: String,
    /// The Ed25519 public key: 64 hex digits or standard base64 of the 32 bytes.
    pub public_key: String,
}

/// Parses an Ed25519 public key written as hex (64 digits) or standard base64 (32 bytes).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| e.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "neither 64 hex digits nor base64 of 32 bytes".to_string())?
    };
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("{} bytes, an Ed25519 public key is 32", bytes.len()))?;
    let key = VerifyingKey::from_bytes(&arr).map_err(|_| "not an Ed25519 point".to_string())?;
    if key.is_weak() {
        return Err("a weak (small-order) key".into());
    }
    Ok(key)
}

/// The fleet keys a terminal trusts: id → key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetKeys {
    keys: BTreeMap<String, VerifyingKey>,
}

impl FleetKeys {
    pub fn from_config(cfg: &[FleetKeyConfig]) -> Result<FleetKeys, EnvelopeError> {
        let mut keys = BTreeMap::new();
        for k in cfg {
            if k.id.is_empty() || k.id.len() > 64 {
                return Err(EnvelopeError::BadKey {
                    id: k.id.clone(),
                    reason: "an id is 1-64 characters".into(),
                });
            }
            let key = parse_public_key(&k.public_key).map_err(|reason| EnvelopeError::BadKey {
                id: k.id.clone(),
                reason,
            })?;
            if keys.insert(k.id.clone(), key).is_some() {
                return Err(EnvelopeError::BadKey {
                    id: k.id.clone(),
                    reason: "listed twice".into(),
                });
            }
        }
        Ok(FleetKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&VerifyingKey> {
        self.keys.get(id)
    }
}

/// The envelope as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub key_id: String,
    pub payload: String,
    pub sig: String,
}

/// An envelope whose signature verified: the signer and the exact signed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key_id: String,
    pub payload: Vec<u8>,
}

/// Checks the envelope's signature; returns the signed payload bytes.
pub fn open(bytes: &[u8], keys: &FleetKeys) -> Result<Verified, EnvelopeError> {
    let (key_id, payload, sig) = decode(bytes)?;
    let key = keys
        .get(&key_id)
        .ok_or_else(|| EnvelopeError::UnknownKey(key_id.clone()))?;
    key.verify_strict(&payload, &Signature::from_bytes(&sig))
        .map_err(|_| EnvelopeError::BadSignature(key_id.clone()))?;
    Ok(Verified { key_id, payload })
}

/// An envelope's parts as they travel: the key id, the payload's bytes and the signature's,
/// decoded but not checked (for [`open`] and [`digest`]).
fn decode(bytes: &[u8]) -> Result<(String, Vec<u8>, [u8; 64]), EnvelopeError> {
    if bytes.len() > MAX_ENVELOPE {
        return Err(EnvelopeError::Malformed(format!(
            "{} bytes, at most {MAX_ENVELOPE}",
            bytes.len()
        )));
    }
    let env: Envelope =
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(env.payload.trim())
        .map_err(|_| EnvelopeError::BadEncoding { field: "payload" })?;
    let sig: [u8; 64] = b64
        .decode(env.sig.trim())
        .ok()
        .and_then(|s| s.as_slice().try_into().ok())
        .ok_or(EnvelopeError::BadEncoding { field: "sig" })?;
    Ok((env.key_id, payload, sig))
}

/// Signs `payload` (the exact document bytes) with `key` under the name `key_id`.
pub fn seal(payload: &[u8], key_id: &str, key: &SigningKey) -> Envelope {
    let b64 = base64::engine::general_purpose::STANDARD;
    Envelope {
        key_id: key_id.to_string(),
        payload: b64.encode(payload),
        sig: b64.encode(key.sign(payload).to_bytes()),
    }
}

/// A config document (the signed payload of `cfg/desired`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDocument {
    /// Strictly increasing per terminal; a version once applied (or rolled back) is spent.
    pub version: u64,
    /// Unix seconds when the fleet made it (informational: the terminal's clock may be wrong).
    pub issued_at: u64,
    /// `"*"` for every terminal, or one terminal id.
    pub terminal: String,
    /// The overlay: pushable keys only, shaped like the TOML file's sections.
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// Parses the signed payload as a config document.
pub fn parse_document(payload: &[u8]) -> Result<ConfigDocument, EnvelopeError> {
    serde_json::from_slice(payload).map_err(|e| EnvelopeError::BadDocument(e.to_string()))
}

/// Whether a document addressed to `target` is for `terminal`.
pub fn check_terminal(target: &str, terminal: &str) -> Result<(), EnvelopeError> {
    if target == "*" || target == terminal {
        Ok(())
    } else {
        Err(EnvelopeError::WrongTerminal {
            want: terminal.to_string(),
            got: target.to_string(),
        })
    }
}

/// Anti-rollback: `version` must be strictly above `last_applied`.
pub fn check_version(version: u64, last_applied: u64) -> Result<(), EnvelopeError> {
    if version > last_applied {
        Ok(())
    } else {
        Err(EnvelopeError::StaleVersion {
            version,
            last: last_applied,
        })
    }
}

/// The whole check of a `cfg/desired` message: signature, document, terminal, version.
pub fn verify_config(
    bytes: &[u8],
    keys: &FleetKeys,
    terminal: &str,
    last_applied: u64,
) -> Result<(Verified, ConfigDocument), EnvelopeError> {
    let v = open(bytes, keys)?;
    let doc = parse_document(&v.payload)?;
    check_terminal(&doc.terminal, terminal)?;
    check_version(doc.version, last_applied)?;
    Ok((v, doc))
}

/// SHA-256, hex, of what a message says: how the terminal recognises a message it already
/// handled (a retained one comes back at every subscribe). For an envelope, the signer's key id,
/// the decoded payload and the decoded signature — so the same signed document re-sent with
/// other whitespace, key order or padding spaces is the same message, and costs a lookup, not
/// another check, journal record and report; while a copy with another signature (a forgery of
/// a document not yet seen) is another message and cannot mark the genuine one as handled.
/// Bytes that are not an envelope: their own digest under another prefix, so no such bytes can
/// hash to a genuine envelope's digest either.
pub fn digest(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    match decode(bytes) {
        Ok((key_id, payload, sig)) => {
            h.update(b"posd-cfg-envelope\0");
            for part in [key_id.as_bytes(), &payload, &sig] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
        }
        Err(_) => {
            h.update(b"posd-cfg-bytes\0");
            h.update(bytes);
        }
    }
    hex::encode(h.finalize())
}

/// SHA-256 of the message's bytes as they came, hex: what a posd before the canonical
/// [`digest`] recorded (read, never written, so a push handled before an upgrade stays handled).
pub fn raw_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A new fleet signing key from the OS random source.
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (SigningKey, FleetKeys) {
        let k = SigningKey::from_bytes(&[7u8; 32]);
        let keys = FleetKeys::from_config(&[FleetKeyConfig {
            id: "ops".into(),
            public_key: hex::encode(k.verifying_key().to_bytes()),
        }])
        .unwrap();
        (k, keys)
    }

    fn doc(version: u64, terminal: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "version": version, "issued_at": 1, "terminal": terminal,
            "config": {"limits": {"max_sale_amount": 5}}
        }))
        .unwrap()
    }

    fn b64d(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    fn sealed(k: &SigningKey, payload: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&seal(payload, "ops", k)).unwrap()
    }

    /// A signed document re-sent with other whitespace or key order is the message already
    /// handled; one with another signature is not (a forgery cannot mark the genuine one).
    #[test]
    fn a_reencoded_envelope_has_the_digest_of_what_it_says() {
        let (k, _) = setup();
        let bytes = sealed(&k, &doc(3, "T1"));
        let env: Envelope = serde_json::from_slice(&bytes).unwrap();
        let reordered = format!(
            "{{ \"sig\" : \"{}\",\n \"payload\": \" {} \", \"key_id\":\"ops\" }}",
            env.sig, env.payload
        );
        assert_ne!(raw_digest(&bytes), raw_digest(reordered.as_bytes()));
        assert_eq!(digest(&bytes), digest(reordered.as_bytes()));
        let mut forged = env.clone();
        let other = seal(&doc(3, "T1"), "ops", &SigningKey::from_bytes(&[8u8; 32]));
        forged.sig = other.sig;
        assert_ne!(
            digest(&bytes),
            digest(&serde_json::to_vec(&forged).unwrap())
        );
        let mut other_key = env.clone();
        other_key.key_id = "ops2".into();
        assert_ne!(
            digest(&bytes),
            digest(&serde_json::to_vec(&other_key).unwrap())
        );
        // Not an envelope: a digest of its own, which no bytes can make equal to an envelope's
        // (the text the envelope's digest is taken over, sent as plain bytes, is not it).
        assert_ne!(digest(b"garbage"), digest(b"garbage "));
        let mut spelled = b"posd-cfg-envelope\0".to_vec();
        for part in [b"ops".as_slice(), &b64d(&env.payload), &b64d(&env.sig)] {
            spelled.extend_from_slice(&(part.len() as u64).to_be_bytes());
            spelled.extend_from_slice(part);
        }
        assert_eq!(
            raw_digest(&spelled),
            digest(&bytes),
            "the same text as bytes"
        );
        assert_ne!(digest(&spelled), digest(&bytes));
    }

    #[test]
    fn accepts_a_good_push() {
        let (k, keys) = setup();
        let (v, d) = verify_config(&sealed(&k, &doc(3, "T1")), &keys, "T1", 2).unwrap();
        assert_eq!((v.key_id.as_str(), d.version), ("ops", 3));
        assert!(verify_config(&sealed(&k, &doc(3, "*")), &keys, "T1", 0).is_ok());
    }

    #[test]
    fn each_refusal_has_its_code() {
        let (k, keys) = setup();
        let code = |bytes: &[u8], last| verify_config(bytes, &keys, "T1", last).unwrap_err().code();
        assert_eq!(code(b"{", 0), "malformed_envelope");
        assert_eq!(
            code(br#"{"key_id":"ops","payload":"!!","sig":"AA=="}"#, 0),
            "bad_encoding"
        );
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert_eq!(code(&sealed(&other, &doc(3, "T1")), 0), "bad_signature");
        let mut env = seal(&doc(3, "T1"), "nobody", &k);
        assert_eq!(code(&serde_json::to_vec(&env).unwrap(), 0), "unknown_key");
        // A payload changed after signing (same key id).
        env.key_id = "ops".into();
        env.payload = base64::engine::general_purpose::STANDARD.encode(doc(4, "T1"));
        assert_eq!(code(&serde_json::to_vec(&env).unwrap(), 0), "bad_signature");
        assert_eq!(code(&sealed(&k, &doc(3, "T2")), 0), "wrong_terminal");
        assert_eq!(code(&sealed(&k, &doc(3, "T1")), 3), "stale_version");
        assert_eq!(code(&sealed(&k, &doc(2, "T1")), 3), "stale_version");
        assert_eq!(code(&sealed(&k, b"{\"version\":1}"), 0), "bad_document");
        assert_eq!(code(&sealed(&k, b"not json"), 0), "bad_document");
    }

    #[test]
    fn key_formats() {
        let k = SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        let hexed = hex::encode(k.to_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(k.to_bytes());
        assert_eq!(parse_public_key(&hexed).unwrap(), k);
        assert_eq!(parse_public_key(&b64).unwrap(), k);
        assert!(parse_public_key("abcd").is_err());
        assert!(parse_public_key(&"00".repeat(32)).is_err(), "weak key");
        let dup = FleetKeyConfig {
            id: "a".into(),
            public_key: hexed,
        };
        let e = FleetKeys::from_config(&[dup.clone(), dup]).unwrap_err();
        assert_eq!(e.code(), "bad_key");
    }
}
