//! Signed host messages (DESIGN §4 "Signed host messages (v1.1)"): every `resp`, `notify` and
//! `ack` the host publishes to a terminal is an envelope
//! `{"key_id": u32, "payload": "<base64 of the message's JSON bytes>", "sig": "<base64 of a
//! 64-byte Ed25519 signature>"}` (standard base64 with padding), signed over
//! `posd-host-v1` 0x00 `terminal_id` 0x00 `kind` 0x00 `payload`, so a message can be moved
//! neither to another terminal nor to another topic.
//!
//! Both ends use this module: the sandbox host [`seal`]s, the terminal's link hands every inbound
//! message to a [`HostGate`], which verifies it against the keys of `[[broker.host_keys]]`,
//! parses the payload only after the signature verified, refuses an `ack` above the highest seq
//! published since start, and counts refusals per kind for `status` (the first of each kind is
//! the one the shell logs). Pure: the caller passes the topic's terminal, `published` and `now`.

use super::limits::RefusalBudget;
use super::{parse_ack, parse_notify, parse_response, Ack, Notify, ProtocolError, Response};
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The domain separation prefix of every host signature.
pub const CONTEXT: &[u8] = b"posd-host-v1";

/// Host keys a terminal lists at once, at most (the current one and the next, for rotation).
pub const MAX_HOST_KEYS: usize = 2;

/// Host messages that may fail the gate's checks in a second (and at once), at most; beyond
/// that the gate refuses what arrives without checking it ([`HostRefusal::NotChecked`]) until
/// the rate falls. A forged message costs an Ed25519 verification (~50 µs on the x86 VMs, several
/// times that on the ARM boxes) on the thread that sells: unbounded, a peer that can publish on
/// the terminal's topics held every sale (a flood of forged `resp`s: P1 sales 4.6 → 130 ms at
/// the median, docs/broker.md). The host's own messages never fail, so they never spend it; under
/// such a flood they are refused unchecked too, and the protocol's retries recover them (acks
/// are cumulative, requests and settlements are queried again).
pub const REFUSALS_PER_SECOND: u64 = 100;

/// Which topic a host message travels on; part of what is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    Resp,
    Notify,
    Ack,
}

impl HostKind {
    pub const ALL: [HostKind; 3] = [HostKind::Resp, HostKind::Notify, HostKind::Ack];

    /// The topic leaf and the signed `kind` bytes.
    pub fn as_str(&self) -> &'static str {
        match self {
            HostKind::Resp => "resp",
            HostKind::Notify => "notify",
            HostKind::Ack => "ack",
        }
    }

    fn index(&self) -> usize {
        match self {
            HostKind::Resp => 0,
            HostKind::Notify => 1,
            HostKind::Ack => 2,
        }
    }
}

/// The envelope as it travels on `resp`, `notify` and `ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEnvelope {
    pub key_id: u32,
    /// Standard base64 (padded) of the message's JSON bytes.
    pub payload: String,
    /// Standard base64 (padded) of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// One entry of `[[broker.host_keys]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostKeyConfig {
    /// The envelope's `key_id`.
    pub id: u32,
    /// The host's Ed25519 public key, 64 hex digits.
    pub public_key: String,
}

/// Why `[[broker.host_keys]]` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyError {
    #[error("host key {id}: {reason}")]
    BadKey { id: u32, reason: String },
    #[error("host key {0} is listed twice")]
    Duplicate(u32),
    #[error("{0} host keys listed: at most {MAX_HOST_KEYS} (the current key and the next)")]
    TooMany(usize),
}

/// Parses an Ed25519 public key written as exactly 64 hex digits.
pub fn parse_host_public_key(text: &str) -> Result<VerifyingKey, String> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "public_key must be 64 hex digits (an Ed25519 public key), got {} characters",
            text.len()
        ));
    }
    let bytes: [u8; 32] = hex::decode(text)
        .ok()
        .and_then(|b| b.as_slice().try_into().ok())
        .ok_or_else(|| "public_key is not hex".to_string())?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 point".to_string())?;
    if key.is_weak() {
        return Err("a weak (small-order) key".into());
    }
    Ok(key)
}

/// The host keys a terminal trusts: key id → key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostKeys {
    keys: BTreeMap<u32, VerifyingKey>,
}

impl HostKeys {
    pub fn from_config(cfg: &[HostKeyConfig]) -> Result<HostKeys, HostKeyError> {
        if cfg.len() > MAX_HOST_KEYS {
            return Err(HostKeyError::TooMany(cfg.len()));
        }
        let mut keys = BTreeMap::new();
        for k in cfg {
            let key = parse_host_public_key(&k.public_key)
                .map_err(|reason| HostKeyError::BadKey { id: k.id, reason })?;
            if keys.insert(k.id, key).is_some() {
                return Err(HostKeyError::Duplicate(k.id));
            }
        }
        Ok(HostKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids, ascending.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    pub fn get(&self, id: u32) -> Option<&VerifyingKey> {
        self.keys.get(&id)
    }
}

/// The bytes a host signs: `posd-host-v1` 0x00 terminal 0x00 kind 0x00 payload.
pub fn signed_bytes(terminal: &str, kind: HostKind, payload: &[u8]) -> Vec<u8> {
    let kind = kind.as_str().as_bytes();
    let mut m = Vec::with_capacity(CONTEXT.len() + terminal.len() + kind.len() + payload.len() + 3);
    m.extend_from_slice(CONTEXT);
    m.push(0);
    m.extend_from_slice(terminal.as_bytes());
    m.push(0);
    m.extend_from_slice(kind);
    m.push(0);
    m.extend_from_slice(payload);
    m
}

/// Signs `payload` (the message's exact JSON bytes) for `terminal`'s `kind` topic.
pub fn seal(
    terminal: &str,
    kind: HostKind,
    payload: &[u8],
    key_id: u32,
    key: &SigningKey,
) -> HostEnvelope {
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = key.sign(&signed_bytes(terminal, kind, payload));
    HostEnvelope {
        key_id,
        payload: b64.encode(payload),
        sig: b64.encode(sig.to_bytes()),
    }
}

/// [`seal`], as the JSON bytes to publish.
pub fn seal_json(
    terminal: &str,
    kind: HostKind,
    payload: &[u8],
    key_id: u32,
    key: &SigningKey,
) -> Vec<u8> {
    // A struct of an integer and two strings always encodes.
    serde_json::to_vec(&seal(terminal, kind, payload, key_id, key)).unwrap_or_default()
}

/// A host's signing key and the id terminals know it by (the host's side of [`seal`]).
#[derive(Clone)]
pub struct HostSigner {
    pub key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for HostSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HostSigner {{ key_id: {}, public_key: {} }}",
            self.key_id,
            self.public_hex()
        )
    }
}

impl HostSigner {
    /// From the 32-byte Ed25519 seed.
    pub fn from_seed(key_id: u32, seed: &[u8; 32]) -> HostSigner {
        HostSigner {
            key_id,
            key: SigningKey::from_bytes(seed),
        }
    }

    /// A new key from the OS random source.
    pub fn generate(key_id: u32) -> HostSigner {
        HostSigner {
            key_id,
            key: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// The seed, 64 hex digits (secret).
    pub fn seed_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// The public key, 64 hex digits, as `[[broker.host_keys]]` lists it.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// The terminal's configuration entry for this key.
    pub fn config(&self) -> HostKeyConfig {
        HostKeyConfig {
            id: self.key_id,
            public_key: self.public_hex(),
        }
    }

    /// The `[[broker.host_keys]]` TOML entry for this key.
    pub fn toml_entry(&self) -> String {
        format!(
            "[[broker.host_keys]]\nid = {}\npublic_key = \"{}\"\n",
            self.key_id,
            self.public_hex()
        )
    }

    /// The envelope to publish on `terminal`'s `kind` topic for the message bytes `payload`.
    pub fn seal_json(&self, terminal: &str, kind: HostKind, payload: &[u8]) -> Vec<u8> {
        seal_json(terminal, kind, payload, self.key_id, &self.key)
    }
}

/// Why a host message was dropped before its payload was looked at (or, for an `ack`, after).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostRefusal {
    #[error("not a signed envelope {{key_id, payload, sig}}: {0}")]
    Unsigned(String),
    #[error("{field} is not standard padded base64{}", if *.field == "sig" { " of 64 bytes" } else { "" })]
    BadEncoding { field: &'static str },
    #[error("key id {0} is not one of this terminal's [[broker.host_keys]]")]
    UnknownKey(u32),
    #[error("the signature does not verify with host key {0}")]
    BadSignature(u32),
    #[error("ack up to seq {upto} is beyond the highest seq published since start ({published})")]
    AckBeyondPublished { upto: u64, published: u64 },
    #[error("not checked: more than {REFUSALS_PER_SECOND} host messages a second failed their checks (forged or replayed by whoever can publish on this terminal's topics: check the broker's ACL); checking resumes as the rate falls")]
    NotChecked,
}

impl HostRefusal {
    /// Stable machine-readable code (`status`).
    pub fn code(&self) -> &'static str {
        match self {
            HostRefusal::Unsigned(_) => "unsigned",
            HostRefusal::BadEncoding { .. } => "bad_encoding",
            HostRefusal::UnknownKey(_) => "unknown_key",
            HostRefusal::BadSignature(_) => "bad_signature",
            HostRefusal::AckBeyondPublished { .. } => "ack_beyond_published",
            HostRefusal::NotChecked => "not_checked",
        }
    }
}

/// Checks an envelope received on `terminal`'s `kind` topic; returns the signed payload bytes.
pub fn open(
    bytes: &[u8],
    terminal: &str,
    kind: HostKind,
    keys: &HostKeys,
) -> Result<Vec<u8>, HostRefusal> {
    let env: HostEnvelope =
        serde_json::from_slice(bytes).map_err(|e| HostRefusal::Unsigned(e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(&env.payload)
        .map_err(|_| HostRefusal::BadEncoding { field: "payload" })?;
    let sig: [u8; 64] = b64
        .decode(&env.sig)
        .ok()
        .and_then(|s| s.as_slice().try_into().ok())
        .ok_or(HostRefusal::BadEncoding { field: "sig" })?;
    let key = keys
        .get(env.key_id)
        .ok_or(HostRefusal::UnknownKey(env.key_id))?;
    key.verify_strict(
        &signed_bytes(terminal, kind, &payload),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| HostRefusal::BadSignature(env.key_id))?;
    Ok(payload)
}

/// Refusals since start, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedCounts {
    pub resp: u64,
    pub notify: u64,
    pub ack: u64,
}

impl RefusedCounts {
    fn bump(&mut self, kind: HostKind) {
        let n = match kind {
            HostKind::Resp => &mut self.resp,
            HostKind::Notify => &mut self.notify,
            HostKind::Ack => &mut self.ack,
        };
        *n = n.saturating_add(1);
    }
}

/// The latest refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRefusal {
    pub kind: HostKind,
    /// [`HostRefusal::code`].
    pub code: String,
    pub message: String,
    /// Unix ms.
    pub at: u64,
}

/// What `status` says of host message verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTrustStatus {
    /// The trusted host key ids (`[[broker.host_keys]]`).
    pub keys: Vec<u32>,
    /// Lab only (`broker.lab_accept_unsigned`): unsigned messages are accepted.
    pub unsigned_accepted: bool,
    /// Messages dropped since start, per kind: unsigned, badly signed, unknown key, or an ack
    /// beyond what was published.
    pub refused: RefusedCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refusal: Option<LastRefusal>,
    /// Of the refused, those refused without being checked: more than
    /// [`REFUSALS_PER_SECOND`] failed their checks (a flood).
    #[serde(default)]
    pub not_checked: u64,
}

/// A host message that passed the gate, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Admitted {
    Resp(Response),
    Notify(Notify),
    Ack(Ack),
}

/// Why the gate dropped a message.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Not signed by a host key, or an ack beyond what was published: counted in `status`.
    /// `first_of_kind`: the first refusal of this kind since start (the one to log).
    #[error("{kind} refused: {refusal}", kind = .kind.as_str())]
    Refused {
        kind: HostKind,
        refusal: HostRefusal,
        first_of_kind: bool,
    },
    /// Signed (or accepted unsigned in a lab) but not a valid message of its kind.
    #[error(transparent)]
    Malformed(#[from] ProtocolError),
}

/// The terminal's check of everything the host sends it (see the module docs).
#[derive(Debug, Clone)]
pub struct HostGate {
    keys: HostKeys,
    status: HostTrustStatus,
    logged: [bool; 3],
    budget: RefusalBudget,
}

impl Default for HostGate {
    /// No host key and no opt-out: every message is refused.
    fn default() -> HostGate {
        HostGate::new(HostKeys::default(), false)
    }
}

impl HostGate {
    /// `accept_unsigned` is the lab-only opt-out: a message that is not an envelope at all is
    /// taken as the plain message; an envelope is still verified.
    pub fn new(keys: HostKeys, accept_unsigned: bool) -> HostGate {
        HostGate {
            status: HostTrustStatus {
                keys: keys.ids(),
                unsigned_accepted: accept_unsigned,
                ..HostTrustStatus::default()
            },
            keys,
            logged: [false; 3],
            budget: RefusalBudget::new(REFUSALS_PER_SECOND),
        }
    }

    pub fn status(&self) -> &HostTrustStatus {
        &self.status
    }

    /// Verifies and parses one message received on `terminal`'s `kind` topic. `published` is
    /// the highest seq this terminal has published since it started (acks above it are
    /// refused); `now` (unix ms) stamps a refusal.
    pub fn admit(
        &mut self,
        terminal: &str,
        kind: HostKind,
        bytes: &[u8],
        published: u64,
        now: u64,
    ) -> Result<Admitted, GateError> {
        if !self.budget.allows(now) {
            self.status.not_checked = self.status.not_checked.saturating_add(1);
            return Err(self.refuse(kind, HostRefusal::NotChecked, now));
        }
        let payload = match open(bytes, terminal, kind, &self.keys) {
            Ok(p) => p,
            Err(HostRefusal::Unsigned(_)) if self.status.unsigned_accepted => bytes.to_vec(),
            Err(e) => return Err(self.refuse(kind, e, now)),
        };
        match kind {
            HostKind::Resp => Ok(Admitted::Resp(parse_response(&payload)?)),
            HostKind::Notify => Ok(Admitted::Notify(parse_notify(&payload)?)),
            HostKind::Ack => {
                let ack = parse_ack(&payload)?;
                if ack.upto_seq > published {
                    let e = HostRefusal::AckBeyondPublished {
                        upto: ack.upto_seq,
                        published,
                    };
                    return Err(self.refuse(kind, e, now));
                }
                Ok(Admitted::Ack(ack))
            }
        }
    }

    fn refuse(&mut self, kind: HostKind, refusal: HostRefusal, now: u64) -> GateError {
        let unchecked = matches!(refusal, HostRefusal::NotChecked);
        if !unchecked {
            self.budget.spend();
        }
        self.status.refused.bump(kind);
        // A flood refuses thousands in a row: the last refusal's text is written once, not
        // formatted again for each of them.
        if let Some(last) = self
            .status
            .last_refusal
            .as_mut()
            .filter(|l| unchecked && l.kind == kind && l.code == HostRefusal::NotChecked.code())
        {
            last.at = now;
            return GateError::Refused {
                kind,
                refusal,
                first_of_kind: false,
            };
        }
        self.status.last_refusal = Some(LastRefusal {
            kind,
            code: refusal.code().to_string(),
            message: refusal.to_string(),
            at: now,
        });
        let first_of_kind = !std::mem::replace(&mut self.logged[kind.index()], true);
        GateError::Refused {
            kind,
            refusal,
            first_of_kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "T1";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn keys(entries: &[(u32, u8)]) -> HostKeys {
        let cfg: Vec<HostKeyConfig> = entries
            .iter()
            .map(|&(id, seed)| HostKeyConfig {
                id,
                public_key: hex::encode(key(seed).verifying_key().to_bytes()),
            })
            .collect();
        HostKeys::from_config(&cfg).unwrap()
    }

    fn gate() -> HostGate {
        HostGate::new(keys(&[(1, 7)]), false)
    }

    const RESP: &[u8] = br#"{"req_id":"r1","txn_id":"t1","status":"approved"}"#;

    fn refusal(r: Result<Admitted, GateError>) -> (&'static str, bool) {
        match r {
            Err(GateError::Refused {
                refusal,
                first_of_kind,
                ..
            }) => (refusal.code(), first_of_kind),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_signed_bytes_are_exactly_as_designed() {
        assert_eq!(
            signed_bytes("T-9", HostKind::Notify, b"{}"),
            b"posd-host-v1\0T-9\0notify\0{}".to_vec()
        );
    }

    #[test]
    fn a_known_answer_vector_for_other_implementations() {
        // RFC 8032's test 1 secret key; what another party's host must produce byte for byte.
        let sk: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let env = seal(
            "T0001",
            HostKind::Ack,
            br#"{"upto_seq":42}"#,
            1,
            &SigningKey::from_bytes(&sk),
        );
        assert_eq!(env.payload, "eyJ1cHRvX3NlcSI6NDJ9");
        assert_eq!(env.key_id, 1);
        let text = serde_json::to_string(&env).unwrap();
        assert_eq!(
            text,
            r#"{"key_id":1,"payload":"eyJ1cHRvX3NlcSI6NDJ9","sig":"xTyNXspC0IRmjyaB0tYrEJsRrhM6PVj0XrbO3z0CK98bJmdIWyOGVaLmGplNYtETYOksoPNAz/2zMw+pBnt4DQ=="}"#
        );
        let keys = HostKeys::from_config(&[HostKeyConfig {
            id: 1,
            public_key: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into(),
        }])
        .unwrap();
        assert_eq!(
            open(text.as_bytes(), "T0001", HostKind::Ack, &keys).unwrap(),
            br#"{"upto_seq":42}"#
        );
    }

    #[test]
    fn a_signed_message_is_accepted_and_parsed() {
        let mut g = gate();
        let msg = seal_json(T, HostKind::Resp, RESP, 1, &key(7));
        match g.admit(T, HostKind::Resp, &msg, 0, 5).unwrap() {
            Admitted::Resp(r) => assert_eq!(r.req_id, "r1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.status().refused, RefusedCounts::default());
        assert_eq!(g.status().keys, [1]);
    }

    /// A flood of forgeries: the first [`REFUSALS_PER_SECOND`] are checked and refused as
    /// forged, the rest refused unchecked (a genuine message among them too), and checking comes
    /// back as time refills the budget — a tenth of it after 100 ms, all of it after a second.
    /// Genuine messages never spend it; a clock stepped back by an hour refills nothing for the
    /// step, and the budget comes back 100 ms after it as it would have.
    #[test]
    fn a_flood_of_forgeries_is_checked_at_a_bounded_rate() {
        let mut g = gate();
        let forged = seal_json(T, HostKind::Resp, RESP, 1, &key(8));
        let good = seal_json(T, HostKind::Resp, RESP, 1, &key(7));
        let now = 1_796_400_000_000;
        for _ in 0..2 * REFUSALS_PER_SECOND {
            assert!(g.admit(T, HostKind::Notify, &good, 0, now).is_err()); // wrong topic: refused
        }
        assert_eq!(g.status().not_checked, REFUSALS_PER_SECOND);
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &good, 0, now)).0,
            "not_checked"
        );
        let mut g = gate();
        for i in 0..REFUSALS_PER_SECOND {
            assert_eq!(
                refusal(g.admit(T, HostKind::Resp, &forged, 0, now + i / 50)).0,
                "bad_signature"
            );
        }
        // Spent: a genuine message now is refused without a check, as a forged one is.
        for m in [&forged, &good] {
            assert_eq!(
                refusal(g.admit(T, HostKind::Resp, m, 0, now + 2)).0,
                "not_checked"
            );
        }
        assert_eq!(g.status().not_checked, 2);
        assert_eq!(g.status().refused.resp, REFUSALS_PER_SECOND + 2);
        assert_eq!(
            g.status().last_refusal.as_ref().map(|r| r.code.as_str()),
            Some("not_checked")
        );
        // A clock stepped back refills nothing for the step, and counts on from there.
        let now = now - 3_600_000;
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &good, 0, now)).0,
            "not_checked"
        );
        // 100 ms later a tenth of the budget is back: genuine messages pass and spend none.
        let later = now + 100;
        for _ in 0..3 * REFUSALS_PER_SECOND {
            assert!(g.admit(T, HostKind::Resp, &good, 0, later).is_ok());
        }
        for _ in 0..REFUSALS_PER_SECOND / 10 {
            assert_eq!(
                refusal(g.admit(T, HostKind::Resp, &forged, 0, later)).0,
                "bad_signature"
            );
        }
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &forged, 0, later)).0,
            "not_checked"
        );
        // A quiet second later the whole budget is back, and no more than that.
        let quiet = later + 10_000;
        for _ in 0..REFUSALS_PER_SECOND {
            assert_eq!(
                refusal(g.admit(T, HostKind::Resp, &forged, 0, quiet)).0,
                "bad_signature"
            );
        }
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &forged, 0, quiet)).0,
            "not_checked"
        );
    }

    #[test]
    fn forgeries_are_refused_each_with_its_reason() {
        let mut g = gate();
        let b64 = base64::engine::general_purpose::STANDARD;
        let good = seal(T, HostKind::Resp, RESP, 1, &key(7));
        let json = |e: &HostEnvelope| serde_json::to_vec(e).unwrap();
        // The plain message, as a hostile peer on the topic would send it.
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, RESP, 0, 1)),
            ("unsigned", true)
        );
        // Someone else's key under the host's key id.
        let forged = seal_json(T, HostKind::Resp, RESP, 1, &key(8));
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &forged, 0, 2)),
            ("bad_signature", false)
        );
        // A key id the terminal does not list.
        let other = seal_json(T, HostKind::Resp, RESP, 2, &key(7));
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &other, 0, 3)).0,
            "unknown_key"
        );
        // The payload changed after signing.
        let mut changed = good.clone();
        changed.payload = b64.encode(br#"{"req_id":"r2","txn_id":"t1","status":"approved"}"#);
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &json(&changed), 0, 4)).0,
            "bad_signature"
        );
        // Replayed to another terminal, or moved to another topic.
        let msg = json(&good);
        assert_eq!(
            refusal(g.admit("T2", HostKind::Resp, &msg, 0, 5)).0,
            "bad_signature"
        );
        assert_eq!(
            refusal(g.admit(T, HostKind::Notify, &msg, 0, 6)),
            ("bad_signature", true)
        );
        // Encodings: unpadded, URL alphabet, a short signature, an extra field.
        let mut e = good.clone();
        e.payload = e.payload.trim_end_matches('=').to_string() + "A";
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &json(&e), 0, 7)).0,
            "bad_encoding"
        );
        let mut e = good.clone();
        e.sig = b64.encode([1u8; 63]);
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &json(&e), 0, 8)).0,
            "bad_encoding"
        );
        let mut v: serde_json::Value = serde_json::from_slice(&msg).unwrap();
        v["alg"] = "none".into();
        let extra = serde_json::to_vec(&v).unwrap();
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &extra, 0, 9)).0,
            "unsigned"
        );
        assert_eq!(
            refusal(g.admit(
                T,
                HostKind::Resp,
                br#"{"key_id":-1,"payload":"","sig":""}"#,
                0,
                10
            ))
            .0,
            "unsigned"
        );
        let s = g.status();
        assert_eq!((s.refused.resp, s.refused.notify, s.refused.ack), (9, 1, 0));
        let last = s.last_refusal.as_ref().unwrap();
        assert_eq!(
            (last.kind, last.code.as_str(), last.at),
            (HostKind::Resp, "unsigned", 10)
        );
    }

    #[test]
    fn the_payload_is_parsed_only_after_the_signature() {
        let mut g = gate();
        // Garbage that is not signed is a refusal, not a parse error.
        assert!(matches!(
            g.admit(T, HostKind::Ack, b"\xff{", 10, 0),
            Err(GateError::Refused { .. })
        ));
        // Garbage the host signed is a malformed message (not counted as a refusal).
        let signed = seal_json(T, HostKind::Notify, b"{\"type\":\"weather\"}", 1, &key(7));
        assert!(matches!(
            g.admit(T, HostKind::Notify, &signed, 10, 0),
            Err(GateError::Malformed(_))
        ));
        assert_eq!(g.status().refused.notify, 0);
    }

    #[test]
    fn an_ack_beyond_what_was_published_is_refused() {
        let mut g = gate();
        let ack = |upto: u64| {
            seal_json(
                T,
                HostKind::Ack,
                format!(r#"{{"upto_seq":{upto}}}"#).as_bytes(),
                1,
                &key(7),
            )
        };
        assert!(matches!(
            g.admit(T, HostKind::Ack, &ack(5), 5, 0),
            Ok(Admitted::Ack(Ack { upto_seq: 5 }))
        ));
        assert_eq!(
            refusal(g.admit(T, HostKind::Ack, &ack(6), 5, 0)),
            ("ack_beyond_published", true)
        );
        assert_eq!(g.status().refused.ack, 1);
    }

    #[test]
    fn the_lab_opt_out_takes_plain_messages_but_still_checks_envelopes() {
        let mut g = HostGate::new(HostKeys::default(), true);
        assert!(g.status().unsigned_accepted);
        assert!(matches!(
            g.admit(T, HostKind::Resp, RESP, 0, 0),
            Ok(Admitted::Resp(_))
        ));
        let forged = seal_json(T, HostKind::Resp, RESP, 1, &key(8));
        assert_eq!(
            refusal(g.admit(T, HostKind::Resp, &forged, 0, 0)).0,
            "unknown_key"
        );
        // Acks are bounded by what was published whether signed or not.
        assert_eq!(
            refusal(g.admit(T, HostKind::Ack, br#"{"upto_seq":3}"#, 2, 0)).0,
            "ack_beyond_published"
        );
    }

    #[test]
    fn host_key_lists_are_checked() {
        let pk = |seed: u8| hex::encode(key(seed).verifying_key().to_bytes());
        let entry = |id, public_key: String| HostKeyConfig { id, public_key };
        assert_eq!(keys(&[(1, 1), (2, 2)]).ids(), [1, 2]);
        assert!(matches!(
            HostKeys::from_config(&[entry(1, pk(1)), entry(1, pk(2))]),
            Err(HostKeyError::Duplicate(1))
        ));
        assert!(matches!(
            HostKeys::from_config(&[entry(1, pk(1)), entry(2, pk(2)), entry(3, pk(3))]),
            Err(HostKeyError::TooMany(3))
        ));
        for bad in [
            "abcd".to_string(),
            "00".repeat(32),
            "zz".repeat(32),
            pk(1) + " ",
        ] {
            assert!(
                matches!(
                    HostKeys::from_config(&[entry(1, bad.clone())]),
                    Err(HostKeyError::BadKey { id: 1, .. })
                ),
                "{bad:?}"
            );
        }
        // Base64 is the fleet keys' alternative, not the host keys'.
        let b64 =
            base64::engine::general_purpose::STANDARD.encode(key(1).verifying_key().to_bytes());
        assert!(HostKeys::from_config(&[entry(1, b64)]).is_err());
    }
}
