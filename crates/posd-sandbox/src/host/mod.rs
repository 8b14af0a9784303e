//! The sandbox host: a stand-in for the payment platform and the backend, over the real
//! MQTT protocol (DESIGN §4, §7).
//!
//! It stores terminal events idempotently by `event_id` (durably, before acknowledging them
//! with `upto_seq`), answers online requests with deterministic behaviours chosen by the
//! payment code (like card networks' test numbers), and keeps a ledger of charges, reversals
//! and refunds so a test can prove nobody was charged without a sale (`audit`). Several
//! instances can share one database and split the load through an MQTT shared subscription.
//!
//! Behaviour by the last two digits of a payment code (documented in docs/sandbox-host.md):
//!
//! | ends in | behaviour |
//! |---|---|
//! | `11` | declined ("insufficient funds") |
//! | `22` | pending; the first query says pending, later queries say approved |
//! | `33` | pending forever (the customer never confirms); a reversal cancels it |
//! | `44` | charged, but the authorize answer is lost; queries say approved |
//! | `55` | charged, then silent on authorize and query; only reversals are answered |
//! | `66` | charged; the approval arrives late (after `late_ms`), queries unanswered |
//! | `77` | authorize answers `error`; queries say approved (charged) |
//! | other | approved at once |
//!
//! Merchant-presented orders (`order`/`query`/`close`, paid by the sandbox customer or by a
//! wallet on `{prefix}/sandbox/pay`) choose their behaviour by the amount's last two digits
//! ([`OrderBehaviour`]); refunds are idempotent by `refund_id`; voids and batch-close
//! reconciliation ([`reconcile_batch`]) follow docs/payments.md. Cards are opened with the
//! host's X25519 secret (`posd_core::card::seal`) and decided by card number ([`CardBehaviour`]);
//! the PAN stays in memory, only the masked PAN is stored. Automatic order payments are
//! scheduled in memory: a host restarted in between never makes them (the order stays open).
//!
//! One file per concern: `db` (schema), `requests` (`req` answered once per `req_id`, routed by
//! op), `payments` (code-selected behaviours), `orders` (merchant-presented orders and the
//! wallet), `refunds`, `cards`, `events` (the journal, stored before it is acknowledged),
//! `settlement` (offline sales), `batch` (Z report reconciliation), `audit` (the ledger check)
//! and `mqtt_loop` ([`run`]: the broker session that drives them), which signs every `resp`,
//! `notify` and `ack` with the host key ([`HostConfig::signer`], [`signing_key`]).

mod audit;
mod batch;
mod behaviour;
mod cards;
mod db;
mod events;
mod mqtt_loop;
mod orders;
mod payments;
mod refunds;
mod reply;
mod requests;
mod settlement;
mod signing_key;
#[cfg(test)]
mod test_support;

pub use audit::{audit, Audit, BatchAudit, TerminalAudit};
pub use batch::{reconcile_batch, BatchError, BatchResult};
pub use behaviour::Behaviour;
pub use cards::{card_keygen, parse_card_secret, CardBehaviour};
pub use db::open_db;
pub use mqtt_loop::run;
pub use orders::{
    order_reference, wallet_pay_topic, wallet_result_topic, OrderBehaviour, ORDER_URL,
};
/// The host reports batch mismatches in the protocol's own type.
pub use posd_core::protocol::BatchMismatch;
pub use signing_key::{read_signing_key, signing_key_file};

use posd_core::codes::IssuerKeys;
pub use posd_core::protocol::signed::HostSigner;
use std::path::{Path, PathBuf};

/// Why a host stops or a host call fails.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("host database: {0}")]
    Db(rusqlite::Error),
    #[error("broker: {0}")]
    Broker(String),
    #[error("card key: {0}")]
    CardKey(String),
}

posd_core::wraps_error!(HostError { Db(rusqlite::Error) });

/// How to run a host instance.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub broker_url: String,
    pub db: PathBuf,
    pub prefix: String,
    /// Shared-subscription group; instances in one group split the messages. None: a plain
    /// subscription (one instance; brokers without shared subscriptions).
    pub group: Option<String>,
    pub client_id: String,
    /// Delay of the late answer for codes ending in 66.
    pub late_ms: u64,
    /// Gather events this long before one durable commit and one ack.
    pub batch_ms: u64,
    /// ... or until this many events are gathered, whichever comes first: under a steady
    /// stream the ack follows a full batch's commit, not a timer (docs/performance.md, stop 43).
    pub batch_max: usize,
    /// The platform's issuer keys, to verify `P1` offline sales at settlement.
    pub issuer_keys: IssuerKeys,
    /// Clock difference tolerated between the phone and the terminal, as on the terminals.
    pub allowed_skew_s: u32,
    /// Delay before the sandbox customer pays an order automatically (amounts ending in 11, 33).
    pub pay_after_ms: u64,
    /// The host's X25519 secret that card data is sealed to; None: cards are unreadable.
    pub card_secret: Option<[u8; 32]>,
    /// The key every `resp`, `notify` and `ack` is signed with (DESIGN §4 "Signed host
    /// messages"). None: plain messages, which only a terminal with the lab-only
    /// `broker.lab_accept_unsigned` takes.
    pub signer: Option<HostSigner>,
    /// Written (empty) once the broker acknowledged every subscription: from then on the
    /// instance takes its share of the messages (a fleet waits for it before selling).
    pub ready_file: Option<PathBuf>,
}

impl HostConfig {
    pub fn new(broker_url: &str, db: &Path) -> HostConfig {
        HostConfig {
            broker_url: broker_url.to_string(),
            db: db.to_path_buf(),
            prefix: "pos/v1".into(),
            group: Some("posd-host".into()),
            client_id: format!("posd-host-{}", std::process::id()),
            late_ms: 60_000,
            batch_ms: 5,
            batch_max: 256,
            issuer_keys: IssuerKeys::new(),
            allowed_skew_s: 30,
            pay_after_ms: 1000,
            card_secret: None,
            signer: None,
            ready_file: None,
        }
    }
}
