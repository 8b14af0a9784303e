//! The engine's rules as configuration makes them: online timings, limits, code patterns, the
//! offline (P1) rules with the clock's trust, merchant QR and cards. Built from `Config` at start
//! and on a fleet push (`EngineRules`); the engine reads them, the core decides with them.

use crate::config::ClockTrust;
use crate::link::Link;
use crate::store::Store;
use posd_core::codes::{self, IssuerKeys, OfflineLimits, OfflinePolicy, Patterns};
use posd_core::display::UiEvent;
use posd_core::money::Currency;
use posd_core::order::OrderPolicy;
use posd_core::refund::RefundPolicy;
use posd_core::txn::OnlinePolicy;
use std::collections::HashSet;
use tokio::sync::broadcast;

/// The engine's rules a fleet push may change without a restart.
pub struct EngineRules {
    pub policy: OnlinePolicy,
    pub max_amount: i64,
    pub patterns: Patterns,
    pub offline: OfflineRuntime,
    pub merchant_qr: MerchantQrRuntime,
    pub saf: posd_core::card::saf::SafLimits,
}

/// The offline rules as the engine applies them (built from `[offline]`).
#[derive(Debug, Clone)]
pub struct OfflineRuntime {
    pub enabled: bool,
    pub keys: IssuerKeys,
    pub policy: OfflinePolicy,
    pub limits: OfflineLimits,
    pub deny_users: HashSet<u64>,
    pub deny_credentials: HashSet<String>,
    pub clock: ClockTrust,
    pub settle_query_ms: u64,
}

impl OfflineRuntime {
    pub fn from_config(
        cfg: &crate::config::OfflineConfig,
        currency: Currency,
    ) -> Result<OfflineRuntime, codes::P1Error> {
        Ok(OfflineRuntime {
            enabled: cfg.enabled,
            keys: IssuerKeys::from_config(&cfg.issuer_keys)?,
            policy: OfflinePolicy {
                allowed_skew_s: cfg.allowed_skew_s,
                currency: currency.code().to_string(),
                ..OfflinePolicy::default()
            },
            limits: cfg.limits.clone(),
            deny_users: cfg.denylist.user_ids.iter().copied().collect(),
            deny_credentials: cfg
                .denylist
                .credentials
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect(),
            clock: cfg.clock,
            settle_query_ms: cfg.settle_query_interval_s.max(1) * 1000,
        })
    }
}

/// Whether the clock can be trusted for offline codes at `now_ms`.
pub fn clock_trusted(mode: ClockTrust, now_ms: u64) -> bool {
    crate::clock::trusted(mode == ClockTrust::Always, now_ms)
}

/// Merchant-presented codes as the engine makes them (`[merchant_qr]`).
#[derive(Debug, Clone)]
pub struct MerchantQrRuntime {
    /// Ask the host for the platform's code instead of generating the EMVCo payload here.
    pub platform: bool,
    /// What a generated payload carries (`local` mode).
    pub merchant: Option<codes::MpmMerchant>,
    /// Print the code on a pay slip (when a printer is configured).
    pub print: bool,
    pub policy: OrderPolicy,
}

/// Cards as the engine takes them (`[card]`).
#[derive(Clone)]
pub struct CardRuntime {
    /// The host's X25519 public key; None: cards are refused.
    pub host_key: Option<[u8; 32]>,
    /// A chip reader exists: chip cards are told to use it.
    pub chip_reader: bool,
    pub saf: posd_core::card::saf::SafLimits,
}

pub struct EngineParams {
    pub store: Store,
    pub link: Link,
    pub policy: OnlinePolicy,
    pub currency: Currency,
    pub max_amount: i64,
    pub patterns: Patterns,
    pub offline: OfflineRuntime,
    pub ui: broadcast::Sender<UiEvent>,
    pub terminal: String,
    pub merchant_qr: MerchantQrRuntime,
    pub card: CardRuntime,
    pub refund_policy: RefundPolicy,
    /// The manager PIN's argon2 hash (PHC string); None: refunds and voids are refused.
    pub pin_hash: Option<String>,
    /// The printer task's wake-up, when a printer is configured (pay slips).
    pub printer: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// The shop's time zone: receipts, the business day, "today" for offline limits, card
    /// expiry.
    pub zone: posd_core::zone::ShopZone,
    /// The journal's free space: new sales and refunds are refused on a full disk.
    pub disk: crate::retention::DiskWatch,
    /// The key of the digests naming codes and cards in flight (`store::code_key`).
    pub code_key: posd_core::code_guard::CodeKey,
    /// The receipt printer's health, when one is configured ("receipt waiting" in results).
    pub printer_health: Option<tokio::sync::watch::Receiver<posd_core::control::PrinterHealth>>,
    /// The last code or card refused (`status.last_refusal`).
    pub refusals: tokio::sync::watch::Sender<Option<posd_core::control::CodeRefusal>>,
}
