//! Acceptance rules for `P1` offline codes (DESIGN §1.2), as pure functions.
//!
//! Why it exists: an offline approval is money the terminal promises the merchant without asking
//! anyone, so every rule that bounds the risk lives here, in one place, with no I/O and `now`
//! passed in, so each rule and each edge can be tested exactly. The daemon uses it in two steps:
//!
//! 1. [`verify_p1`]: is this text an authentic, current code? (format, issuer key known and not
//!    retired, issuer signature, user signature, currency, credential validity, code freshness).
//!    Signatures are checked **before** any field is trusted, so a forged code is always reported
//!    as a signature failure, never as "expired".
//! 2. The daemon loads an [`OfflineState`] snapshot from SQLite for the verified user and calls
//!    [`check_offline_acceptance`]: clock trust, denylist, currency, one-time counter, amount
//!    limits, and the terminal's unsynced exposure. The daemon should also refuse to enter offline
//!    mode at all while its clock is untrusted; the check is repeated here so it cannot be skipped.
//!
//! Every refusal is an [`OfflineReject`] with a stable snake_case [`OfflineReject::code`] (logged,
//! sent to the host, asserted by tests), a ≤ 20-character [`OfflineReject::short_message`] for the
//! customer display, and a longer [`Display`](core::fmt::Display) text for logs and `posctl`.
//!
//! Limits are inclusive: an amount equal to a limit is accepted, one minor unit more is refused.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::currency::Currency;
use super::p1::{Credential, P1Code, P1Error, PublicKey};
use crate::i18n::Msg;
use sha2::{Digest, Sha256};

/// How long a code is valid after the phone made it, before skew (DESIGN: "every ≤ 60 s").
pub const CODE_LIFETIME_S: u32 = 60;

/// Why an offline code or sale was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OfflineReject {
    /// Not a well-formed `P1` code (the inner error says which way).
    #[error("malformed offline code: {0}")]
    Malformed(P1Error),
    /// The credential names an issuer key this terminal does not know.
    #[error("unknown issuer key id {0}")]
    UnknownIssuerKey(u8),
    /// The issuer key is known but retired by the fleet.
    #[error("issuer key id {0} is retired")]
    RetiredIssuerKey(u8),
    /// The issuer signature over the credential does not verify.
    #[error("issuer signature does not verify")]
    BadIssuerSignature,
    /// The user public key in an issuer-signed credential is not a valid curve point.
    #[error("user public key in the credential is not a valid P-256 point")]
    BadUserKey,
    /// The user signature over the code does not verify.
    #[error("user signature does not verify")]
    BadUserSignature,
    /// The credential's currency is not the sale's.
    #[error("credential is for currency {credential}, the sale is in {sale}")]
    CurrencyMismatch {
        /// Credential currency (ISO 4217 numeric).
        credential: u16,
        /// Sale currency as given.
        sale: String,
    },
    /// `now < valid_from`.
    #[error("credential not valid before {valid_from} (now {now})")]
    CredentialNotYetValid {
        /// First valid second.
        valid_from: u32,
        /// Terminal time.
        now: u64,
    },
    /// `now > valid_until`.
    #[error("credential expired at {valid_until} (now {now})")]
    CredentialExpired {
        /// Last valid second.
        valid_until: u32,
        /// Terminal time.
        now: u64,
    },
    /// The code was made more than lifetime + skew seconds ago.
    #[error("code is {age_s} s old, at most {max_s} s allowed")]
    CodeTooOld {
        /// Seconds since the code's timestamp.
        age_s: u64,
        /// Lifetime + skew.
        max_s: u64,
    },
    /// The code's timestamp is more than lifetime + skew seconds ahead of the terminal.
    #[error("code is {ahead_s} s in the future, at most {max_s} s allowed")]
    CodeFromFuture {
        /// Seconds the code is ahead.
        ahead_s: u64,
        /// Lifetime + skew.
        max_s: u64,
    },
    /// The terminal's clock is not trustworthy, so no offline code can be judged.
    #[error("terminal clock is not trusted; offline payments are disabled")]
    ClockUntrusted,
    /// The user or credential is on the fleet's denylist.
    #[error("user or credential is denylisted")]
    Denylisted,
    /// The counter is not above the highest this terminal has seen for the user.
    #[error("counter {counter} already used (highest seen {last_seen})")]
    CounterReplayed {
        /// Counter in the code.
        counter: u32,
        /// Highest counter seen before.
        last_seen: u32,
    },
    /// The sale amount is zero.
    #[error("amount must be greater than zero")]
    InvalidAmount,
    /// Amount above the credential's per-transaction maximum.
    #[error("amount {amount} exceeds the credential maximum {max}")]
    OverCredentialMax {
        /// Sale amount.
        amount: u64,
        /// Credential maximum.
        max: u64,
    },
    /// Amount above the terminal's per-transaction offline limit.
    #[error("amount {amount} exceeds the offline per-transaction limit {limit}")]
    OverTxnLimit {
        /// Sale amount.
        amount: u64,
        /// Limit.
        limit: u64,
    },
    /// The user's offline total today would exceed the daily limit.
    #[error("user's offline total today would be {total}, limit {limit}")]
    OverDailyLimit {
        /// Total including this sale.
        total: u64,
        /// Limit.
        limit: u64,
    },
    /// Too many offline sales waiting to sync.
    #[error("{count} offline sales are unsynced, limit {limit}")]
    UnsyncedCountLimit {
        /// Unsynced count before this sale.
        count: u32,
        /// Limit.
        limit: u32,
    },
    /// Too much offline money waiting to sync.
    #[error("unsynced offline amount would be {total}, limit {limit}")]
    UnsyncedAmountLimit {
        /// Total including this sale.
        total: u64,
        /// Limit.
        limit: u64,
    },
    /// The oldest unsynced offline sale is too old.
    #[error("oldest unsynced offline sale is {age_s} s old, limit {limit_s} s")]
    UnsyncedAgeLimit {
        /// Its age.
        age_s: u64,
        /// Limit.
        limit_s: u64,
    },
}

crate::wraps_error!(OfflineReject { Malformed(P1Error) });

impl OfflineReject {
    /// Stable snake_case reason code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            OfflineReject::Malformed(e) => e.code(),
            OfflineReject::UnknownIssuerKey(_) => "unknown_issuer_key",
            OfflineReject::RetiredIssuerKey(_) => "retired_issuer_key",
            OfflineReject::BadIssuerSignature => "bad_issuer_signature",
            OfflineReject::BadUserKey => "bad_user_key",
            OfflineReject::BadUserSignature => "bad_user_signature",
            OfflineReject::CurrencyMismatch { .. } => "currency_mismatch",
            OfflineReject::CredentialNotYetValid { .. } => "credential_not_yet_valid",
            OfflineReject::CredentialExpired { .. } => "credential_expired",
            OfflineReject::CodeTooOld { .. } => "code_too_old",
            OfflineReject::CodeFromFuture { .. } => "code_from_future",
            OfflineReject::ClockUntrusted => "clock_untrusted",
            OfflineReject::Denylisted => "denylisted",
            OfflineReject::CounterReplayed { .. } => "counter_replayed",
            OfflineReject::InvalidAmount => "invalid_amount",
            OfflineReject::OverCredentialMax { .. } => "over_credential_max",
            OfflineReject::OverTxnLimit { .. } => "over_txn_limit",
            OfflineReject::OverDailyLimit { .. } => "over_daily_limit",
            OfflineReject::UnsyncedCountLimit { .. } => "unsynced_count_limit",
            OfflineReject::UnsyncedAmountLimit { .. } => "unsynced_amount_limit",
            OfflineReject::UnsyncedAgeLimit { .. } => "unsynced_age_limit",
        }
    }

    /// The message for people with amounts in `currency`'s major units ("12.50 CNY"), in
    /// English: the `Display` text speaks minor units, this one is what posctl shows.
    #[must_use]
    pub fn message_in(&self, currency: crate::money::Currency) -> String {
        self.message_for(crate::i18n::Language::En, currency)
    }

    /// [`Self::message_in`] in `lang` ([`crate::i18n`]), naming the way out where there is one.
    #[must_use]
    pub fn message_for(
        &self,
        lang: crate::i18n::Language,
        currency: crate::money::Currency,
    ) -> String {
        use crate::i18n::{tr, Msg};
        let m = |minor: u64| {
            crate::money::Money {
                minor: i64::try_from(minor).unwrap_or(i64::MAX),
                currency,
            }
            .to_string()
        };
        let t = |msg: Msg| tr(lang, msg, &[]);
        match self {
            OfflineReject::Malformed(e) => {
                tr(lang, Msg::OfflineWhyMalformed, &[("error", &e.to_string())])
            }
            OfflineReject::UnknownIssuerKey(id) => {
                tr(lang, Msg::OfflineWhyUnknownIssuer, &[("id", id)])
            }
            OfflineReject::RetiredIssuerKey(id) => {
                tr(lang, Msg::OfflineWhyRetiredIssuer, &[("id", id)])
            }
            OfflineReject::BadIssuerSignature => t(Msg::OfflineWhyBadIssuerSig),
            OfflineReject::BadUserKey => t(Msg::OfflineWhyBadUserKey),
            OfflineReject::BadUserSignature => t(Msg::OfflineWhyBadUserSig),
            OfflineReject::CurrencyMismatch { credential, sale } => {
                let cred = crate::money::Currency::from_numeric(*credential)
                    .map_or_else(|| credential.to_string(), |c| c.code().to_string());
                tr(
                    lang,
                    Msg::OfflineWhyCurrency,
                    &[("credential", &cred), ("sale", sale)],
                )
            }
            OfflineReject::CredentialNotYetValid { .. } => t(Msg::OfflineWhyNotYetValid),
            OfflineReject::CredentialExpired { .. } => t(Msg::OfflineWhyExpired),
            OfflineReject::CodeTooOld { age_s, max_s } => tr(
                lang,
                Msg::OfflineWhyTooOld,
                &[("age", age_s), ("max", max_s)],
            ),
            OfflineReject::CodeFromFuture { ahead_s, max_s } => tr(
                lang,
                Msg::OfflineWhyFuture,
                &[("ahead", ahead_s), ("max", max_s)],
            ),
            OfflineReject::ClockUntrusted => t(Msg::OfflineWhyClock),
            OfflineReject::Denylisted => t(Msg::OfflineWhyDenylisted),
            OfflineReject::CounterReplayed { counter, last_seen } => tr(
                lang,
                Msg::OfflineWhyReplayed,
                &[("counter", counter), ("seen", last_seen)],
            ),
            OfflineReject::InvalidAmount => t(Msg::OfflineWhyInvalidAmount),
            OfflineReject::OverCredentialMax { amount, max } => tr(
                lang,
                Msg::OfflineWhyOverWallet,
                &[("amount", &m(*amount)), ("max", &m(*max))],
            ),
            OfflineReject::OverTxnLimit { amount, limit } => tr(
                lang,
                Msg::OfflineWhyOverTxn,
                &[("amount", &m(*amount)), ("limit", &m(*limit))],
            ),
            OfflineReject::OverDailyLimit { total, limit } => tr(
                lang,
                Msg::OfflineWhyDaily,
                &[("total", &m(*total)), ("limit", &m(*limit))],
            ),
            OfflineReject::UnsyncedCountLimit { count, limit } => tr(
                lang,
                Msg::OfflineWhyUnsyncedCount,
                &[("count", count), ("limit", limit)],
            ),
            OfflineReject::UnsyncedAmountLimit { total, limit } => tr(
                lang,
                Msg::OfflineWhyUnsyncedAmount,
                &[("total", &m(*total)), ("limit", &m(*limit))],
            ),
            OfflineReject::UnsyncedAgeLimit { age_s, limit_s } => tr(
                lang,
                Msg::OfflineWhyUnsyncedAge,
                &[("age", age_s), ("limit", limit_s)],
            ),
        }
    }

    /// A message of at most 20 characters for a customer display (English).
    #[must_use]
    pub fn short_message(&self) -> &'static str {
        crate::i18n::text(crate::i18n::Language::En, self.short_msg())
    }

    /// The customer display's message in the catalogue, for any language
    /// ([`crate::i18n::text`]).
    #[must_use]
    pub fn short_msg(&self) -> Msg {
        match self {
            OfflineReject::Malformed(P1Error::UnsupportedVersion(_)) => Msg::OfflineVersionUnknown,
            OfflineReject::Malformed(_) => Msg::OfflineUnreadable,
            OfflineReject::UnknownIssuerKey(_) => Msg::OfflineIssuerUnknown,
            OfflineReject::RetiredIssuerKey(_) => Msg::OfflineIssuerRetired,
            OfflineReject::BadIssuerSignature | OfflineReject::BadUserKey => {
                Msg::OfflineBadCredential
            }
            OfflineReject::BadUserSignature => Msg::OfflineBadCode,
            OfflineReject::CurrencyMismatch { .. } => Msg::OfflineWrongCurrency,
            OfflineReject::CredentialNotYetValid { .. } => Msg::OfflineNotYetValid,
            OfflineReject::CredentialExpired { .. } => Msg::OfflineWalletExpired,
            OfflineReject::CodeTooOld { .. } => Msg::OfflineCodeExpired,
            OfflineReject::CodeFromFuture { .. } => Msg::OfflineCheckPhoneClock,
            OfflineReject::ClockUntrusted => Msg::OfflineUnavailable,
            OfflineReject::Denylisted => Msg::OfflineWalletBlocked,
            OfflineReject::CounterReplayed { .. } => Msg::OfflineCodeUsed,
            OfflineReject::InvalidAmount => Msg::OfflineInvalidAmount,
            OfflineReject::OverCredentialMax { .. } => Msg::OfflineOverWallet,
            OfflineReject::OverTxnLimit { .. } => Msg::OfflineOverTxn,
            OfflineReject::OverDailyLimit { .. } => Msg::OfflineDailyLimit,
            OfflineReject::UnsyncedCountLimit { .. }
            | OfflineReject::UnsyncedAmountLimit { .. }
            | OfflineReject::UnsyncedAgeLimit { .. } => Msg::OfflineFull,
        }
    }
}

/// One configured issuer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuerKey {
    /// The public key.
    pub key: PublicKey,
    /// Retired keys are known but no longer accepted.
    pub retired: bool,
}

/// Issuer key as written in configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerKeyConfig {
    /// Key id (the credential's `issuer_key_id`).
    pub id: u8,
    /// Hex of the SEC1 public key (compressed or uncompressed).
    pub public_key: String,
    /// Known but no longer accepted.
    #[serde(default)]
    pub retired: bool,
}

/// The issuer keys a terminal trusts: id → key and retired flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerKeys {
    keys: BTreeMap<u8, IssuerKey>,
}

impl IssuerKeys {
    /// No keys.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a key.
    pub fn insert(&mut self, id: u8, key: PublicKey, retired: bool) {
        self.keys.insert(id, IssuerKey { key, retired });
    }

    /// The key with this id.
    #[must_use]
    pub fn get(&self, id: u8) -> Option<&IssuerKey> {
        self.keys.get(&id)
    }

    /// Number of keys (retired included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Builds the set from configuration; refuses bad hex, invalid points and duplicate ids.
    ///
    /// # Errors
    /// [`P1Error::InvalidKey`] naming the offending id.
    pub fn from_config(entries: &[IssuerKeyConfig]) -> Result<Self, P1Error> {
        let mut out = Self::new();
        for e in entries {
            if out.keys.contains_key(&e.id) {
                return Err(P1Error::InvalidKey(format!(
                    "issuer key id {} listed twice",
                    e.id
                )));
            }
            let key = PublicKey::from_hex(&e.public_key)
                .map_err(|err| P1Error::InvalidKey(format!("issuer key id {}: {err}", e.id)))?;
            out.insert(e.id, key, e.retired);
        }
        Ok(out)
    }
}

/// Rules of [`verify_p1`] (configuration).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflinePolicy {
    /// Clock difference tolerated between phone and terminal, on top of the code lifetime.
    pub allowed_skew_s: u32,
    /// Code lifetime; DESIGN fixes 60 s, configurable only for tests and trials.
    pub code_lifetime_s: u32,
    /// The terminal's currency (alphabetic ISO 4217): credentials in another currency are refused.
    pub currency: String,
}

impl Default for OfflinePolicy {
    fn default() -> Self {
        OfflinePolicy {
            allowed_skew_s: 30,
            code_lifetime_s: CODE_LIFETIME_S,
            currency: "CNY".into(),
        }
    }
}

/// Terminal limits on offline sales (configuration; amounts in minor units).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineLimits {
    /// Most a single offline sale may be.
    pub per_txn_limit: u64,
    /// Most one user may spend offline at this terminal in a day.
    pub per_user_daily_limit: u64,
    /// Most offline sales waiting to sync.
    pub max_unsynced_count: u32,
    /// Most offline money waiting to sync.
    pub max_unsynced_amount: u64,
    /// Oldest an unsynced offline sale may be before offline selling stops.
    pub max_unsynced_age_s: u64,
}

impl Default for OfflineLimits {
    fn default() -> Self {
        OfflineLimits {
            per_txn_limit: 5_000,         // 50.00 in a two-decimal currency
            per_user_daily_limit: 20_000, // 200.00
            max_unsynced_count: 500,
            max_unsynced_amount: 500_000,  // 5 000.00
            max_unsynced_age_s: 72 * 3600, // three days
        }
    }
}

/// What the daemon knows about this user and this terminal, loaded from SQLite for one sale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfflineState {
    /// Highest counter this terminal has seen for the user (`None`: never seen).
    pub last_counter: Option<u32>,
    /// The user's offline total today at this terminal, before this sale.
    pub user_total_today: u64,
    /// Offline sales not yet acknowledged by the host.
    pub unsynced_count: u32,
    /// Their total amount.
    pub unsynced_amount: u64,
    /// When the oldest of them was made (unix seconds), if any.
    pub oldest_unsynced_at: Option<u64>,
    /// The user id or the credential fingerprint is on the denylist.
    pub denylisted: bool,
    /// The terminal's clock is trustworthy (synchronised since boot, or held by an RTC it trusts).
    pub clock_trusted: bool,
}

/// A code that passed [`verify_p1`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedP1 {
    /// The decoded code.
    pub code: P1Code,
    /// [`super::p1::Credential::fingerprint`], for the denylist lookup and the journal.
    pub credential_fingerprint: String,
}

impl VerifiedP1 {
    /// The user id (key of the counter and daily-total lookups).
    #[must_use]
    pub fn user_id(&self) -> u64 {
        self.code.credential.user_id
    }

    /// The code's counter.
    #[must_use]
    pub fn counter(&self) -> u32 {
        self.code.counter
    }

    /// The canonical QR text, for the event the host re-checks.
    #[must_use]
    pub fn text(&self) -> String {
        self.code.to_text()
    }
}

/// Checks that `text` is an authentic, current `P1` code (step 1 of the module doc).
///
/// Order: format → issuer key known → not retired → issuer signature → user key → user
/// signature → currency (against `policy.currency`) → `valid_from ≤ now ≤ valid_until` →
/// `|now − timestamp| ≤ lifetime + skew` (both bounds inclusive).
///
/// # Errors
/// The first [`OfflineReject`] in that order.
pub fn verify_p1(
    text: &str,
    now: u64,
    keys: &IssuerKeys,
    policy: &OfflinePolicy,
) -> Result<VerifiedP1, OfflineReject> {
    let code = P1Code::from_text(text)?;
    let issuer = known_issuer(&code.credential, keys)?;
    let user_key = check_credential(&code.credential, &issuer)?;
    finish(code, &user_key, now, policy)
}

/// The credential's issuer key: known and not retired (checked at every code, cached or not).
fn known_issuer(cred: &Credential, keys: &IssuerKeys) -> Result<PublicKey, OfflineReject> {
    let issuer = keys
        .get(cred.issuer_key_id)
        .ok_or(OfflineReject::UnknownIssuerKey(cred.issuer_key_id))?;
    if issuer.retired {
        return Err(OfflineReject::RetiredIssuerKey(cred.issuer_key_id));
    }
    Ok(issuer.key)
}

/// Issuer signature, then the user key: what a credential is, whatever code it comes with.
fn check_credential(cred: &Credential, issuer: &PublicKey) -> Result<PublicKey, OfflineReject> {
    if !cred.issuer_signature_valid(issuer) {
        return Err(OfflineReject::BadIssuerSignature);
    }
    cred.user_key().map_err(|_| OfflineReject::BadUserKey)
}

/// User signature → currency → credential validity → code freshness.
fn finish(
    code: P1Code,
    user_key: &PublicKey,
    now: u64,
    policy: &OfflinePolicy,
) -> Result<VerifiedP1, OfflineReject> {
    let cred = &code.credential;
    if !code.user_signature_valid_with(user_key) {
        return Err(OfflineReject::BadUserSignature);
    }
    check_currency(cred.currency, &policy.currency)?;
    if now < u64::from(cred.valid_from) {
        return Err(OfflineReject::CredentialNotYetValid {
            valid_from: cred.valid_from,
            now,
        });
    }
    if now > u64::from(cred.valid_until) {
        return Err(OfflineReject::CredentialExpired {
            valid_until: cred.valid_until,
            now,
        });
    }
    let max_s = u64::from(policy.code_lifetime_s) + u64::from(policy.allowed_skew_s);
    let ts = u64::from(code.timestamp);
    if now > ts && now - ts > max_s {
        return Err(OfflineReject::CodeTooOld {
            age_s: now - ts,
            max_s,
        });
    }
    if ts > now && ts - now > max_s {
        return Err(OfflineReject::CodeFromFuture {
            ahead_s: ts - now,
            max_s,
        });
    }
    Ok(VerifiedP1 {
        credential_fingerprint: cred.fingerprint(),
        code,
    })
}

/// How many checked credentials a [`P1Verifier`] remembers: 4,096 × ~140 bytes ≈ 0.6 MB at
/// most. A canteen or a bus sees the same few thousand wallets again and again.
pub const CREDENTIAL_CACHE: usize = 4096;

/// [`verify_p1`] that remembers credentials whose issuer signature it has verified (keyed by
/// SHA-256 of the issuer key and the whole credential, signature included), so a returning
/// customer's code costs one ECDSA verification instead of two (issue 18). The issuer key's
/// presence and retirement are still checked at every code, so a pushed key change takes effect
/// at once; the cache is bounded ([`CREDENTIAL_CACHE`], oldest forgotten first). Results are
/// exactly those of [`verify_p1`] (`tests::cached_and_uncached_agree`).
#[derive(Debug)]
pub struct P1Verifier {
    known: HashMap<[u8; 32], PublicKey>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl Default for P1Verifier {
    fn default() -> Self {
        P1Verifier::new(CREDENTIAL_CACHE)
    }
}

impl P1Verifier {
    /// A verifier remembering at most `capacity` credentials (0: remembers none).
    #[must_use]
    pub fn new(capacity: usize) -> P1Verifier {
        P1Verifier {
            known: HashMap::with_capacity(capacity.min(CREDENTIAL_CACHE)),
            order: VecDeque::with_capacity(capacity.min(CREDENTIAL_CACHE)),
            capacity,
        }
    }

    /// Credentials remembered now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether nothing is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// As [`verify_p1`], same checks in the same order, same answers.
    ///
    /// # Errors
    /// The first [`OfflineReject`], as [`verify_p1`].
    pub fn verify(
        &mut self,
        text: &str,
        now: u64,
        keys: &IssuerKeys,
        policy: &OfflinePolicy,
    ) -> Result<VerifiedP1, OfflineReject> {
        let code = P1Code::from_text(text)?;
        let issuer = known_issuer(&code.credential, keys)?;
        let mut h = Sha256::new();
        h.update(issuer.to_compressed());
        h.update(code.credential.to_bytes());
        let id: [u8; 32] = h.finalize().into();
        let user_key = match self.known.get(&id) {
            Some(k) => *k,
            None => {
                let k = check_credential(&code.credential, &issuer)?;
                self.remember(id, k);
                k
            }
        };
        finish(code, &user_key, now, policy)
    }

    fn remember(&mut self, id: [u8; 32], key: PublicKey) {
        if self.capacity == 0 {
            return;
        }
        while self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.known.remove(&old);
            }
        }
        self.known.insert(id, key);
        self.order.push_back(id);
    }
}

fn check_currency(credential: u16, sale: &str) -> Result<(), OfflineReject> {
    match Currency::from_alpha(sale) {
        Some(c) if c.numeric == credential => Ok(()),
        _ => Err(OfflineReject::CurrencyMismatch {
            credential,
            sale: sale.to_owned(),
        }),
    }
}

/// Decides whether a verified code may pay `amount` (minor units of `currency`) now, given the
/// terminal's state (step 2 of the module doc).
///
/// Order: clock trusted → not denylisted → currency → counter above the last seen → amount > 0 →
/// amount ≤ credential max → ≤ per-transaction limit → user's day total ≤ daily limit → unsynced
/// count + 1 ≤ max → unsynced amount + amount ≤ max → age of the oldest unsynced sale ≤ max.
///
/// # Errors
/// The first [`OfflineReject`] in that order.
pub fn check_offline_acceptance(
    verified: &VerifiedP1,
    amount: u64,
    currency: &str,
    state: &OfflineState,
    limits: &OfflineLimits,
    now: u64,
) -> Result<(), OfflineReject> {
    if !state.clock_trusted {
        return Err(OfflineReject::ClockUntrusted);
    }
    if state.denylisted {
        return Err(OfflineReject::Denylisted);
    }
    let cred = &verified.code.credential;
    check_currency(cred.currency, currency)?;
    if let Some(last_seen) = state.last_counter {
        if verified.code.counter <= last_seen {
            return Err(OfflineReject::CounterReplayed {
                counter: verified.code.counter,
                last_seen,
            });
        }
    }
    if amount == 0 {
        return Err(OfflineReject::InvalidAmount);
    }
    let max = u64::from(cred.max_amount);
    if amount > max {
        return Err(OfflineReject::OverCredentialMax { amount, max });
    }
    if amount > limits.per_txn_limit {
        return Err(OfflineReject::OverTxnLimit {
            amount,
            limit: limits.per_txn_limit,
        });
    }
    let total = state.user_total_today.saturating_add(amount);
    if total > limits.per_user_daily_limit {
        return Err(OfflineReject::OverDailyLimit {
            total,
            limit: limits.per_user_daily_limit,
        });
    }
    if state.unsynced_count >= limits.max_unsynced_count {
        return Err(OfflineReject::UnsyncedCountLimit {
            count: state.unsynced_count,
            limit: limits.max_unsynced_count,
        });
    }
    let total = state.unsynced_amount.saturating_add(amount);
    if total > limits.max_unsynced_amount {
        return Err(OfflineReject::UnsyncedAmountLimit {
            total,
            limit: limits.max_unsynced_amount,
        });
    }
    if let Some(at) = state.oldest_unsynced_at {
        let age_s = now.saturating_sub(at);
        if age_s > limits.max_unsynced_age_s {
            return Err(OfflineReject::UnsyncedAgeLimit {
                age_s,
                limit_s: limits.max_unsynced_age_s,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::p1::{issue_credential, make_code, CredentialRequest, PrivateKey};

    struct Fx {
        keys: IssuerKeys,
        policy: OfflinePolicy,
        text: String,
    }

    const NOW: u64 = 1_750_000_000;

    fn fx() -> Fx {
        let issuer = PrivateKey::generate().unwrap();
        let user = PrivateKey::generate().unwrap();
        let cred = issue_credential(
            &issuer,
            3,
            &CredentialRequest {
                user_id: 99,
                user_key: user.public_key(),
                valid_from: 1_700_000_000,
                valid_until: 1_800_000_000,
                max_amount: 3000,
                currency: 156,
            },
        )
        .unwrap();
        let code = make_code(&user, &cred, 1_750_000_000, 10).unwrap();
        let mut keys = IssuerKeys::new();
        keys.insert(3, issuer.public_key(), false);
        Fx {
            keys,
            policy: OfflinePolicy::default(),
            text: code.to_text(),
        }
    }

    #[test]
    fn accepts_then_checks_state() {
        let f = fx();
        let v = verify_p1(&f.text, NOW, &f.keys, &f.policy).unwrap();
        assert_eq!(v.user_id(), 99);
        assert_eq!(v.counter(), 10);
        assert_eq!(v.text(), f.text);
        let state = OfflineState {
            clock_trusted: true,
            last_counter: Some(9),
            ..OfflineState::default()
        };
        let limits = OfflineLimits::default();
        assert_eq!(
            check_offline_acceptance(&v, 3000, "CNY", &state, &limits, NOW),
            Ok(())
        );
        assert_eq!(
            check_offline_acceptance(&v, 3000, "CNY", &OfflineState::default(), &limits, NOW)
                .map_err(|e| e.code()),
            Err("clock_untrusted")
        );
    }

    #[test]
    fn cached_and_uncached_agree() {
        let issuer = PrivateKey::generate().unwrap();
        let mut keys = IssuerKeys::new();
        keys.insert(3, issuer.public_key(), false);
        let policy = OfflinePolicy::default();
        let users: Vec<_> = (0..3u64)
            .map(|i| {
                let user = PrivateKey::generate().unwrap();
                let cred = issue_credential(
                    &issuer,
                    3,
                    &CredentialRequest {
                        user_id: 100 + i,
                        user_key: user.public_key(),
                        valid_from: 1_700_000_000,
                        valid_until: 1_800_000_000,
                        max_amount: 3000,
                        currency: 156,
                    },
                )
                .unwrap();
                (user, cred)
            })
            .collect();
        let mut texts = Vec::new();
        for (n, (user, cred)) in users.iter().enumerate() {
            for ctr in 1..4u32 {
                let code = make_code(user, cred, 1_750_000_000 + ctr, ctr).unwrap();
                texts.push(code.to_text());
                // The same credential with a forged user signature: the cached path still
                // checks the user signature.
                let mut forged = code;
                forged.user_sig[5] ^= 0x40;
                texts.push(forged.to_text());
                // A tampered credential (another issuer signature): not the cached one.
                let mut other = code;
                other.credential.issuer_sig[7] ^= 0x01;
                texts.push(other.to_text());
            }
            // Another user's signature presented with this credential.
            let (thief, thief_cred) = &users[(n + 1) % users.len()];
            let mut stolen = make_code(thief, thief_cred, 1_750_000_000, 9).unwrap();
            stolen.credential = *cred;
            texts.push(stolen.to_text());
        }
        texts.push("P1.not-a-code".into());
        let mut v = P1Verifier::new(2);
        for now in [NOW, 1_800_000_001, 1_750_000_000 + 500] {
            for t in &texts {
                let cached = v.verify(t, now, &keys, &policy).map(|x| x.text());
                let plain = verify_p1(t, now, &keys, &policy).map(|x| x.text());
                assert_eq!(cached, plain, "{t} at {now}");
            }
            assert!(v.len() <= 2, "the cache holds {} > 2", v.len());
        }
        // Retiring the issuer key takes effect at once, cached or not.
        keys.insert(3, issuer.public_key(), true);
        assert_eq!(
            v.verify(&texts[0], NOW, &keys, &policy)
                .map_err(|e| e.code()),
            Err("retired_issuer_key")
        );
        // And a new key under the same id does not inherit the old one's verdicts.
        let other_issuer = PrivateKey::generate().unwrap();
        keys.insert(3, other_issuer.public_key(), false);
        assert_eq!(
            v.verify(&texts[0], NOW, &keys, &policy)
                .map_err(|e| e.code()),
            Err("bad_issuer_signature")
        );
    }

    #[test]
    fn short_messages_fit_the_display() {
        let all = [
            OfflineReject::Malformed(P1Error::NotP1),
            OfflineReject::Malformed(P1Error::UnsupportedVersion(2)),
            OfflineReject::UnknownIssuerKey(1),
            OfflineReject::RetiredIssuerKey(1),
            OfflineReject::BadIssuerSignature,
            OfflineReject::BadUserKey,
            OfflineReject::BadUserSignature,
            OfflineReject::CurrencyMismatch {
                credential: 1,
                sale: "X".into(),
            },
            OfflineReject::CredentialNotYetValid {
                valid_from: 0,
                now: 0,
            },
            OfflineReject::CredentialExpired {
                valid_until: 0,
                now: 0,
            },
            OfflineReject::CodeTooOld { age_s: 0, max_s: 0 },
            OfflineReject::CodeFromFuture {
                ahead_s: 0,
                max_s: 0,
            },
            OfflineReject::ClockUntrusted,
            OfflineReject::Denylisted,
            OfflineReject::CounterReplayed {
                counter: 0,
                last_seen: 0,
            },
            OfflineReject::InvalidAmount,
            OfflineReject::OverCredentialMax { amount: 0, max: 0 },
            OfflineReject::OverTxnLimit {
                amount: 0,
                limit: 0,
            },
            OfflineReject::OverDailyLimit { total: 0, limit: 0 },
            OfflineReject::UnsyncedCountLimit { count: 0, limit: 0 },
            OfflineReject::UnsyncedAmountLimit { total: 0, limit: 0 },
            OfflineReject::UnsyncedAgeLimit {
                age_s: 0,
                limit_s: 0,
            },
        ];
        let mut codes = std::collections::BTreeSet::new();
        for r in &all {
            let m = r.short_message();
            assert!(m.chars().count() <= 20, "{m:?} is too long");
            assert!(!m.is_empty());
            assert!(!r.to_string().is_empty());
            let c = r.code();
            assert!(
                c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
            codes.insert(c);
        }
        assert_eq!(codes.len(), all.len(), "reason codes must be distinct");
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let l: OfflineLimits = serde_json::from_str("{\"per_txn_limit\": 100}").unwrap();
        assert_eq!(l.per_txn_limit, 100);
        assert_eq!(
            l.max_unsynced_count,
            OfflineLimits::default().max_unsynced_count
        );
        assert!(serde_json::from_str::<OfflineLimits>("{\"per_txn\": 1}").is_err());
        let p: OfflinePolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, OfflinePolicy::default());
        assert!(serde_json::from_str::<OfflinePolicy>("{\"skew\": 1}").is_err());
    }

    #[test]
    fn issuer_keys_from_config() {
        let k = PrivateKey::generate().unwrap().public_key();
        let cfg = vec![
            IssuerKeyConfig {
                id: 1,
                public_key: k.to_hex(),
                retired: false,
            },
            IssuerKeyConfig {
                id: 2,
                public_key: k.to_hex(),
                retired: true,
            },
        ];
        let keys = IssuerKeys::from_config(&cfg).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.get(2).unwrap().retired);
        let dup = vec![cfg[0].clone(), cfg[0].clone()];
        assert!(IssuerKeys::from_config(&dup).is_err());
        let bad = vec![IssuerKeyConfig {
            id: 1,
            public_key: "02ab".into(),
            retired: false,
        }];
        assert!(IssuerKeys::from_config(&bad).is_err());
    }
}
