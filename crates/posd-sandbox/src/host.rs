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

use crate::mqtt::now_ms;
use posd_core::codes::{self, IssuerKeys, OfflinePolicy};
use posd_core::protocol::{self, Event as PosEvent, Op, Request, RespStatus, Response};
use rumqttc::{Client, Event, Packet, QoS};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("host database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("broker: {0}")]
    Broker(String),
    #[error("card key: {0}")]
    CardKey(String),
}

/// Reads the host's card secret (X25519, base64) for `HostConfig::card_secret`.
pub fn parse_card_secret(text: &str) -> Result<[u8; 32], HostError> {
    posd_core::card::seal::parse_key_b64(text).map_err(|e| HostError::CardKey(e.to_string()))
}

/// A new card key pair for the host: (secret, public), both base64.
pub fn card_keygen() -> Result<(String, String), HostError> {
    let (secret, public) =
        posd_core::card::seal::keygen_random().map_err(|e| HostError::CardKey(e.to_string()))?;
    Ok((
        posd_core::card::seal::key_to_b64(&secret),
        posd_core::card::seal::key_to_b64(&public),
    ))
}

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
    /// The platform's issuer keys, to verify `P1` offline sales at settlement.
    pub issuer_keys: IssuerKeys,
    /// Clock difference tolerated between the phone and the terminal, as on the terminals.
    pub allowed_skew_s: u32,
    /// Delay before the sandbox customer pays an order automatically (amounts ending in 11, 33).
    pub pay_after_ms: u64,
    /// The host's X25519 secret that card data is sealed to; None: cards are unreadable.
    pub card_secret: Option<[u8; 32]>,
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
            issuer_keys: IssuerKeys::new(),
            allowed_skew_s: 30,
            pay_after_ms: 1000,
            card_secret: None,
        }
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    seq INTEGER NOT NULL,
    txn_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    stored_by TEXT,
    UNIQUE (terminal, seq)
);
CREATE INDEX IF NOT EXISTS events_txn ON events(txn_id);
CREATE TABLE IF NOT EXISTS terminals (
    terminal TEXT PRIMARY KEY,
    contiguous_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    txn_id TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    behaviour TEXT NOT NULL,
    state TEXT NOT NULL,          -- pending | charged | declined | reversed | rejected | voided
    queries INTEGER NOT NULL DEFAULT 0,
    host_ref TEXT,
    reason TEXT,
    masked_pan TEXT,              -- cards: first 6 and last 4 only, never the PAN
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- Every (user, counter) a P1 code was settled with: the same pair in another transaction is
-- a replayed code. Events may arrive out of order (several terminals, several host instances),
-- so the host checks uniqueness, not a running maximum.
CREATE TABLE IF NOT EXISTS p1_uses (
    user_id INTEGER NOT NULL,
    counter INTEGER NOT NULL,
    txn_id TEXT NOT NULL,
    PRIMARY KEY (user_id, counter)
);
CREATE TABLE IF NOT EXISTS requests (
    req_id TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    op TEXT NOT NULL,
    response TEXT,
    received_at INTEGER NOT NULL
);
-- Merchant-presented orders (`order`): open until paid or closed; a closed order is never paid.
CREATE TABLE IF NOT EXISTS orders (
    txn_id TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    reference TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    behaviour TEXT NOT NULL,
    state TEXT NOT NULL,          -- open | paid | closed
    qr TEXT,
    host_ref TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_ref ON orders(terminal, reference);
-- Refunds by their idempotency key; declined ones are kept too (same answer when repeated).
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    terminal TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    state TEXT NOT NULL,          -- approved | declined
    reason TEXT,
    host_ref TEXT,
    created_at INTEGER NOT NULL,
    -- Idempotency is per terminal: tills may choose their own refund ids.
    PRIMARY KEY (terminal, refund_id)
);
CREATE INDEX IF NOT EXISTS refunds_txn ON refunds(txn_id);
-- Batch closes (Z reports) and the host's reconciliation of them.
CREATE TABLE IF NOT EXISTS batches (
    txn_id TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    batch_no INTEGER,
    from_seq INTEGER NOT NULL,
    upto_seq INTEGER NOT NULL,
    status TEXT NOT NULL,         -- reconciled | mismatch
    mismatches TEXT NOT NULL,     -- JSON [{key, terminal, host}]
    txns TEXT NOT NULL,           -- JSON [txn ids whose nets differ]
    host_net TEXT NOT NULL,       -- JSON {key: net}
    missing_events INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
"#;

/// Opens (creating) a host database.
pub fn open_db(path: &Path) -> Result<Connection, HostError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The code-selected behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Approve,
    Decline,
    PendingThenApprove,
    /// Cards: pending; the first query approves.
    PendingOnce,
    PendingForever,
    LostAnswer,
    Silent,
    LateAnswer,
    ErrorThenApproved,
}

impl Behaviour {
    pub fn of_code(code: &str) -> Behaviour {
        let tail: String = code
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        match tail.as_str() {
            "11" => Behaviour::Decline,
            "22" => Behaviour::PendingThenApprove,
            "33" => Behaviour::PendingForever,
            "44" => Behaviour::LostAnswer,
            "55" => Behaviour::Silent,
            "66" => Behaviour::LateAnswer,
            "77" => Behaviour::ErrorThenApproved,
            _ => Behaviour::Approve,
        }
    }
    fn as_str(&self) -> &'static str {
        match self {
            Behaviour::Approve => "approve",
            Behaviour::Decline => "decline",
            Behaviour::PendingThenApprove => "pending_then_approve",
            Behaviour::PendingOnce => "pending_once",
            Behaviour::PendingForever => "pending_forever",
            Behaviour::LostAnswer => "lost_answer",
            Behaviour::Silent => "silent",
            Behaviour::LateAnswer => "late_answer",
            Behaviour::ErrorThenApproved => "error_then_approved",
        }
    }
    fn parse(s: &str) -> Behaviour {
        match s {
            "decline" => Behaviour::Decline,
            "pending_then_approve" => Behaviour::PendingThenApprove,
            "pending_once" => Behaviour::PendingOnce,
            "pending_forever" => Behaviour::PendingForever,
            "lost_answer" => Behaviour::LostAnswer,
            "silent" => Behaviour::Silent,
            "late_answer" => Behaviour::LateAnswer,
            "error_then_approved" => Behaviour::ErrorThenApproved,
            _ => Behaviour::Approve,
        }
    }
}

/// What the order's amount (its last two decimal digits, in minor units) makes the sandbox do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBehaviour {
    /// `11`: the sandbox customer pays after `pay_after_ms`; the terminal is notified.
    AutoPay,
    /// `22`: nobody ever pays (a wallet payment is refused too).
    NeverPaid,
    /// `33`: paid after `pay_after_ms`, but the notify is lost: only a query finds it.
    AutoPayLost,
    /// `44`: paid at the instant the close arrives (the close answers `approved`).
    PaidAtClose,
    /// Anything else: open until a wallet pays it.
    Wallet,
}

impl OrderBehaviour {
    pub fn of_amount(amount: i64) -> OrderBehaviour {
        match amount.rem_euclid(100) {
            11 => OrderBehaviour::AutoPay,
            22 => OrderBehaviour::NeverPaid,
            33 => OrderBehaviour::AutoPayLost,
            44 => OrderBehaviour::PaidAtClose,
            _ => OrderBehaviour::Wallet,
        }
    }
    fn as_str(&self) -> &'static str {
        match self {
            OrderBehaviour::AutoPay => "auto_pay",
            OrderBehaviour::NeverPaid => "never_paid",
            OrderBehaviour::AutoPayLost => "auto_pay_lost",
            OrderBehaviour::PaidAtClose => "paid_at_close",
            OrderBehaviour::Wallet => "wallet",
        }
    }
    fn parse(s: &str) -> OrderBehaviour {
        match s {
            "auto_pay" => OrderBehaviour::AutoPay,
            "never_paid" | "none" => OrderBehaviour::NeverPaid,
            "auto_pay_lost" => OrderBehaviour::AutoPayLost,
            "paid_at_close" => OrderBehaviour::PaidAtClose,
            _ => OrderBehaviour::Wallet,
        }
    }
}

/// The platform-mode code of an order: this prefix and the txn id without dashes.
pub const ORDER_URL: &str = "https://pay.sandbox.posd.test/o/";

/// The topic a test wallet pays on (`{"qr": ...}`) and the one its result comes back on.
pub fn wallet_pay_topic(prefix: &str) -> String {
    format!("{}/sandbox/pay", prefix.trim_end_matches('/'))
}
pub fn wallet_result_topic(prefix: &str) -> String {
    format!("{}/sandbox/pay/result", prefix.trim_end_matches('/'))
}

fn compact_id(txn_id: &str) -> String {
    txn_id.chars().filter(|c| *c != '-').collect()
}

/// The transaction reference of docs/payments.md: the first 25 characters of the txn id
/// without dashes.
pub fn order_reference(txn_id: &str) -> String {
    compact_id(txn_id).chars().take(25).collect()
}

/// A host reference: a letter and up to 12 characters of the id (any text may arrive as an id:
/// take characters, never slice bytes).
fn host_ref_of(letter: char, id: &str) -> String {
    std::iter::once(letter)
        .chain(id.chars().filter(|c| *c != '-').take(12))
        .collect()
}

/// Side effects of an answer, carried out by the loop after the transaction commits.
#[derive(Debug, Default)]
struct Effects {
    /// Automatic order payments to make: (due at ms, txn_id).
    pays: Vec<(u64, String)>,
    /// `notify` messages: (terminal, body).
    notifies: Vec<(String, serde_json::Value)>,
}

fn declined(req: &Request, reason: &str) -> Reply {
    let mut r = resp(req, RespStatus::Declined);
    r.reason = Some(reason.to_string());
    Reply::Now(r)
}

/// `order`: registers the order once per txn_id and answers `pending` with the code to show.
fn order_open(
    db: &Connection,
    terminal: &str,
    req: &Request,
    now: u64,
    cfg: &HostConfig,
    fx: &mut Effects,
) -> Result<Reply, HostError> {
    let existing: Option<(String, Option<String>)> = db
        .query_row(
            "SELECT state, qr FROM orders WHERE txn_id = ?1",
            [&req.txn_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((state, qr)) = existing {
        if state == "closed" {
            return Ok(declined(req, "order closed"));
        }
        let mut r = resp(req, RespStatus::Pending);
        r.qr = qr;
        return Ok(Reply::Now(r));
    }
    let amount = req.amount.unwrap_or(0);
    if amount <= 0 {
        return Ok(declined(req, "invalid amount"));
    }
    let reference = order_reference(&req.txn_id);
    let qr = match req.code.as_deref().filter(|c| !c.is_empty()) {
        // Local mode: the terminal's own EMVCo payload, echoed.
        Some(code) => {
            match codes::emv_mpm::parse(code) {
                Ok(p) => {
                    if p.sub(62, 5) != Some(reference.as_str()) || p.sub(62, 7) != Some(terminal) {
                        log::warn!(
                            "host: order {} from {terminal}: payload reference/terminal label \
                             {:?}/{:?} differ from {reference}/{terminal}",
                            req.txn_id,
                            p.sub(62, 5),
                            p.sub(62, 7)
                        );
                    }
                }
                Err(e) => log::warn!(
                    "host: order {} from {terminal}: code is not an EMVCo payload: {e}",
                    req.txn_id
                ),
            }
            code.to_string()
        }
        None => format!("{ORDER_URL}{}", compact_id(&req.txn_id)),
    };
    let b = OrderBehaviour::of_amount(amount);
    db.execute(
        "INSERT INTO orders (txn_id, terminal, reference, amount, currency, behaviour, state, qr,
            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8, ?8)",
        params![
            req.txn_id,
            terminal,
            reference,
            amount,
            req.currency.clone().unwrap_or_default(),
            b.as_str(),
            qr,
            now as i64
        ],
    )?;
    if matches!(b, OrderBehaviour::AutoPay | OrderBehaviour::AutoPayLost) {
        fx.pays
            .push((now.saturating_add(cfg.pay_after_ms), req.txn_id.clone()));
    }
    let mut r = resp(req, RespStatus::Pending);
    r.qr = Some(qr);
    Ok(Reply::Now(r))
}

/// `query`/`close`/`reverse` of a transaction that is an order. None: not an order (or a
/// reversal, which then runs as usual after closing the order).
fn order_answer(
    db: &Connection,
    terminal: &str,
    req: &Request,
    now: u64,
    fx: &mut Effects,
) -> Result<Option<Reply>, HostError> {
    let row: Option<(String, String, Option<String>, Option<String>)> = db
        .query_row(
            "SELECT state, behaviour, host_ref, qr FROM orders WHERE txn_id = ?1",
            [&req.txn_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((state, behaviour, href, qr)) = row else {
        return Ok(None);
    };
    let approved = |href: Option<String>| {
        let mut r = resp(req, RespStatus::Approved);
        r.host_ref = href;
        Reply::Now(r)
    };
    Ok(match (req.op, state.as_str()) {
        (Op::Reverse, "open") => {
            close_order(db, &req.txn_id, now)?;
            None
        }
        (Op::Reverse, _) => None,
        (_, "paid") => Some(approved(href)),
        (Op::Query, "open") => {
            let mut r = resp(req, RespStatus::Pending);
            r.qr = qr;
            Some(Reply::Now(r))
        }
        (Op::Query, _) => Some(declined(req, "order closed")),
        (_, "open") if OrderBehaviour::parse(&behaviour) == OrderBehaviour::PaidAtClose => {
            // The customer's payment races the close and wins.
            match pay_order(db, &req.txn_id, now, false)? {
                PayOutcome::Paid {
                    terminal: t,
                    host_ref,
                    notify,
                } => {
                    if let Some(n) = notify {
                        fx.notifies.push((t, n));
                    }
                    Some(approved(Some(host_ref)))
                }
                PayOutcome::Refused(why) => {
                    log::warn!("host: order {} not paid at close: {why}", req.txn_id);
                    close_order(db, &req.txn_id, now)?;
                    Some(declined(req, "closed unpaid"))
                }
            }
        }
        (_, "open") => {
            close_order(db, &req.txn_id, now)?;
            log::info!("host: order {} of {terminal} closed unpaid", req.txn_id);
            Some(declined(req, "closed unpaid"))
        }
        _ => Some(declined(req, "closed unpaid")),
    })
}

fn close_order(db: &Connection, txn_id: &str, now: u64) -> Result<(), HostError> {
    db.execute(
        "UPDATE orders SET state = 'closed', updated_at = ?2 WHERE txn_id = ?1 AND state = 'open'",
        params![txn_id, now as i64],
    )?;
    Ok(())
}

/// What paying an order came to.
#[derive(Debug)]
enum PayOutcome {
    Paid {
        terminal: String,
        host_ref: String,
        /// The `notify` to send the terminal (None: behaviour 33, the notify is lost).
        notify: Option<serde_json::Value>,
    },
    Refused(String),
}

/// Pays an open order: order `paid` and a `charged` ledger row (behaviour `mpm`), inside the
/// caller's transaction. A closed or paid order is refused.
fn pay_order(
    db: &Connection,
    txn_id: &str,
    now: u64,
    by_wallet: bool,
) -> Result<PayOutcome, HostError> {
    let row: Option<(String, i64, String, String, String)> = db
        .query_row(
            "SELECT terminal, amount, currency, behaviour, state FROM orders WHERE txn_id = ?1",
            [txn_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((terminal, amount, currency, behaviour, state)) = row else {
        return Ok(PayOutcome::Refused("no such order".into()));
    };
    match state.as_str() {
        "open" => {}
        "paid" => return Ok(PayOutcome::Refused("order already paid".into())),
        _ => return Ok(PayOutcome::Refused("order closed".into())),
    }
    let b = OrderBehaviour::parse(&behaviour);
    if by_wallet && b == OrderBehaviour::NeverPaid {
        return Ok(PayOutcome::Refused(
            "this sandbox order is never paid (amount ends in 22)".into(),
        ));
    }
    let href = host_ref_of('H', txn_id);
    db.execute(
        "UPDATE orders SET state = 'paid', host_ref = ?2, updated_at = ?3 WHERE txn_id = ?1",
        params![txn_id, href, now as i64],
    )?;
    let n = db.execute(
        "INSERT OR IGNORE INTO ledger (txn_id, terminal, amount, currency, behaviour, state,
            host_ref, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'mpm', 'charged', ?5, ?6, ?6)",
        params![txn_id, terminal, amount, currency, href, now as i64],
    )?;
    if n == 0 {
        log::warn!("host: order {txn_id} paid but its ledger row already existed");
    }
    log::info!("host: order {txn_id} of {terminal} paid ({amount} {currency})");
    let notify = (b != OrderBehaviour::AutoPayLost).then(|| {
        serde_json::json!({"type": "payment", "txn_id": txn_id, "status": "paid",
            "amount": amount, "host_ref": href})
    });
    Ok(PayOutcome::Paid {
        terminal,
        host_ref: href,
        notify,
    })
}

/// The order a customer's scanned code names: the exact code an order showed, an EMVCo payload
/// (terminal label 62/07 + reference 62/05, open orders first) or a platform URL.
fn find_order(db: &Connection, qr: &str) -> Result<Option<String>, HostError> {
    let exact: Option<String> = db
        .query_row(
            "SELECT txn_id FROM orders WHERE qr = ?1 ORDER BY state = 'open' DESC, created_at DESC
             LIMIT 1",
            [qr],
            |r| r.get(0),
        )
        .optional()?;
    if exact.is_some() {
        return Ok(exact);
    }
    if let Some(id) = qr.strip_prefix(ORDER_URL) {
        let id = id.trim_end_matches('/');
        return Ok(db
            .query_row(
                "SELECT txn_id FROM orders WHERE replace(txn_id, '-', '') = ?1 LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()?);
    }
    let Ok(p) = codes::emv_mpm::parse(qr) else {
        return Ok(None);
    };
    let (Some(term), Some(reference)) = (p.sub(62, 7), p.sub(62, 5)) else {
        return Ok(None);
    };
    Ok(db
        .query_row(
            "SELECT txn_id FROM orders WHERE terminal = ?1 AND reference = ?2
             ORDER BY state = 'open' DESC, created_at DESC LIMIT 1",
            params![term, reference],
            |r| r.get(0),
        )
        .optional()?)
}

/// A wallet payment on `{prefix}/sandbox/pay`: the result body, and the notify to send.
fn wallet_pay(
    db: &Connection,
    payload: &[u8],
    now: u64,
) -> Result<(serde_json::Value, Option<(String, serde_json::Value)>), HostError> {
    let qr = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("qr").and_then(|q| q.as_str()).map(str::to_string));
    let Some(qr) = qr else {
        log::warn!("host: malformed wallet payment (want {{\"qr\": ...}})");
        return Ok((
            serde_json::json!({"qr": null, "status": "refused", "reason": "malformed request"}),
            None,
        ));
    };
    let outcome = match find_order(db, &qr)? {
        None => PayOutcome::Refused("no such order".into()),
        Some(txn) => pay_order(db, &txn, now, true)?,
    };
    Ok(match outcome {
        PayOutcome::Paid {
            terminal, notify, ..
        } => (
            serde_json::json!({"qr": qr, "status": "paid"}),
            notify.map(|n| (terminal, n)),
        ),
        PayOutcome::Refused(reason) => {
            log::info!("host: wallet payment refused: {reason}");
            (
                serde_json::json!({"qr": qr, "status": "refused", "reason": reason}),
                None,
            )
        }
    })
}

/// `refund`: idempotent by `refund_id`; declined ones are stored too.
/// (state, reason, host_ref, original txn_id, amount) of a refund already answered.
type StoredRefund = (String, Option<String>, Option<String>, String, i64);

fn refund(db: &Connection, terminal: &str, req: &Request, now: u64) -> Result<Reply, HostError> {
    let Some(refund_id) = req.refund_id.clone().filter(|s| !s.is_empty()) else {
        return Ok(declined(req, "refund_id missing"));
    };
    let prev: Option<StoredRefund> = db
        .query_row(
            "SELECT state, reason, host_ref, txn_id, amount FROM refunds
             WHERE terminal = ?1 AND refund_id = ?2",
            params![terminal, refund_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    if let Some((_, _, _, txn, amount)) = &prev {
        if *txn != req.txn_id || Some(*amount) != req.amount {
            // Same key, another refund: never answer it with the first one's verdict.
            return Ok(declined(req, "refund_id reused for another refund"));
        }
    }
    if let Some((state, reason, href, ..)) = prev {
        let mut r = resp(
            req,
            if state == "approved" {
                RespStatus::Approved
            } else {
                RespStatus::Declined
            },
        );
        r.reason = reason;
        r.host_ref = href;
        return Ok(Reply::Now(r));
    }
    let amount = req.amount.unwrap_or(0);
    let currency = req.currency.clone().unwrap_or_default();
    let orig: Option<(String, i64, String, String)> = db
        .query_row(
            "SELECT terminal, amount, currency, state FROM ledger WHERE txn_id = ?1",
            [&req.txn_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let verdict: Result<(), &str> = match orig {
        None => Err("no such payment"),
        Some((t, ..)) if t != terminal => Err("no such payment"),
        Some((_, _, _, state)) if state != "charged" => Err("not charged"),
        Some(_) if amount <= 0 => Err("invalid amount"),
        Some((_, _, cur, _)) if !currency.is_empty() && !cur.is_empty() && cur != currency => {
            Err("currency differs from the payment")
        }
        Some((_, charged, ..)) => {
            let done: i64 = db.query_row(
                "SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE txn_id = ?1 AND state = 'approved'",
                [&req.txn_id],
                |r| r.get(0),
            )?;
            if amount.saturating_add(done) > charged {
                Err("amount exceeds what is left to refund")
            } else {
                Ok(())
            }
        }
    };
    let href = verdict.is_ok().then(|| host_ref_of('R', &refund_id));
    db.execute(
        "INSERT INTO refunds (refund_id, txn_id, terminal, amount, currency, state, reason,
            host_ref, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            refund_id,
            req.txn_id,
            terminal,
            amount,
            currency,
            if verdict.is_ok() {
                "approved"
            } else {
                "declined"
            },
            verdict.err(),
            href,
            now as i64
        ],
    )?;
    Ok(match verdict {
        Ok(()) => {
            log::info!(
                "host: refund {refund_id} of {} approved ({amount})",
                req.txn_id
            );
            let mut r = resp(req, RespStatus::Approved);
            r.host_ref = href;
            Reply::Now(r)
        }
        Err(why) => {
            log::info!("host: refund {refund_id} of {} declined: {why}", req.txn_id);
            declined(req, why)
        }
    })
}

/// What a card number makes the sandbox do (docs/sandbox-host.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehaviour {
    Approve,
    Decline(&'static str),
    /// Pending; the first query approves.
    PendingThenApprove,
    /// Charged, but authorize and query are never answered (only reversals).
    Silent,
}

impl CardBehaviour {
    pub fn of_pan(pan: &str) -> CardBehaviour {
        match pan {
            "4000000000000002" => CardBehaviour::Decline("do not honor"),
            "4000000000009995" => CardBehaviour::Decline("insufficient funds"),
            "4000000000000259" => CardBehaviour::PendingThenApprove,
            "4000000000000119" => CardBehaviour::Silent,
            p if !posd_core::card::luhn_ok(p) => CardBehaviour::Decline("invalid card number"),
            _ => CardBehaviour::Approve,
        }
    }
}

const CARD_UNREADABLE: &str = "card data unreadable";

/// Opens `card.sealed` with the host's secret and the AAD; returns the masked PAN and the
/// behaviour. The PAN itself never leaves this function.
fn read_card(
    cfg: &HostConfig,
    card: Option<&serde_json::Value>,
    aad: &[u8],
) -> Result<(String, CardBehaviour), &'static str> {
    let sealed = card
        .and_then(|c| c.get("sealed"))
        .and_then(|s| s.as_str())
        .ok_or(CARD_UNREADABLE)?;
    let secret = cfg.card_secret.as_ref().ok_or(CARD_UNREADABLE)?;
    // CardData wipes itself when dropped at the end of this function.
    let data = posd_core::card::seal::open(sealed, secret, aad).map_err(|e| {
        log::warn!("host: sealed card data does not open: {e}");
        CARD_UNREADABLE
    })?;
    Ok((data.masked_pan(), CardBehaviour::of_pan(&data.pan)))
}

/// The masked PAN the terminal sent, when it really is masked (at most 10 digits shown).
fn card_masked(card: Option<&serde_json::Value>) -> Option<String> {
    let m = card?.get("masked_pan")?.as_str()?;
    (m.chars().filter(char::is_ascii_digit).count() <= 10 && m.len() <= 32).then(|| m.to_string())
}

/// `authorize` with `method: "card"`: by the card number; unreadable card data declines and
/// charges nothing. The ledger keeps only the masked PAN.
fn card_authorize(
    db: &Connection,
    terminal: &str,
    req: &Request,
    now: u64,
    cfg: &HostConfig,
) -> Result<Reply, HostError> {
    let amount = req.amount.unwrap_or(0);
    let currency = req.currency.clone().unwrap_or_default();
    let aad = format!("{}|{amount}|{currency}", req.txn_id);
    let host_ref = host_ref_of('H', &req.txn_id);
    let (masked, b, state, reply) = match read_card(cfg, req.card.as_ref(), aad.as_bytes()) {
        Err(why) => (
            card_masked(req.card.as_ref()),
            "card_unreadable",
            "declined",
            declined(req, why),
        ),
        Ok((m, CardBehaviour::Approve)) => (Some(m), "approve", "charged", {
            let mut r = resp(req, RespStatus::Approved);
            r.host_ref = Some(host_ref.clone());
            Reply::Now(r)
        }),
        Ok((m, CardBehaviour::Decline(why))) => {
            (Some(m), "decline", "declined", declined(req, why))
        }
        Ok((m, CardBehaviour::PendingThenApprove)) => (
            Some(m),
            Behaviour::PendingOnce.as_str(),
            "pending",
            Reply::Now(resp(req, RespStatus::Pending)),
        ),
        Ok((m, CardBehaviour::Silent)) => (Some(m), "silent", "charged", Reply::Never),
    };
    let reason = match &reply {
        Reply::Now(r) if r.status == RespStatus::Declined => r.reason.clone(),
        _ => None,
    };
    db.execute(
        "INSERT INTO ledger (txn_id, terminal, amount, currency, behaviour, state, host_ref,
            reason, masked_pan, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            req.txn_id, terminal, amount, currency, b, state, host_ref, reason, masked, now as i64
        ],
    )?;
    Ok(reply)
}

/// The host's answer to one request: a response now, later, or never.
enum Reply {
    Now(Response),
    Later(u64, Response),
    Never,
}

fn resp(req: &Request, status: RespStatus) -> Response {
    Response {
        req_id: req.req_id.clone(),
        txn_id: req.txn_id.clone(),
        status,
        reason: None,
        host_ref: None,
        qr: None,
    }
}

/// Decides and records the answer to a request, inside the caller's SQLite transaction.
fn answer(
    db: &rusqlite::Transaction<'_>,
    terminal: &str,
    req: &Request,
    now: u64,
    cfg: &HostConfig,
    fx: &mut Effects,
) -> Result<Reply, HostError> {
    let late_ms = cfg.late_ms;
    // Idempotent by req_id: a repeated request gets the same answer.
    let seen: Option<Option<String>> = db
        .query_row(
            "SELECT response FROM requests WHERE req_id = ?1",
            [&req.req_id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(prev) = seen {
        return Ok(match prev.and_then(|p| serde_json::from_str(&p).ok()) {
            Some(r) => Reply::Now(r),
            None => Reply::Never,
        });
    }
    let row: Option<(String, String, i64, Option<String>)> = db
        .query_row(
            "SELECT behaviour, state, queries, host_ref FROM ledger WHERE txn_id = ?1",
            [&req.txn_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    // Merchant-presented orders: query, close (and a reversal) act on the order.
    if matches!(req.op, Op::Query | Op::Close | Op::Reverse) {
        if let Some(reply) = order_answer(db, terminal, req, now, fx)? {
            return record(db, terminal, req, now, reply);
        }
    }
    // Offline sales: a query asks for the settlement verdict.
    if req.op == Op::Query && row.as_ref().is_some_and(|r| r.0 == "offline") {
        let reason: Option<String> = db.query_row(
            "SELECT reason FROM ledger WHERE txn_id = ?1",
            [&req.txn_id],
            |r| r.get(0),
        )?;
        let charged = row.as_ref().is_some_and(|r| r.1 == "charged");
        let mut r = resp(
            req,
            if charged {
                RespStatus::Approved
            } else {
                RespStatus::Declined
            },
        );
        r.reason = reason;
        return Ok(Reply::Now(r));
    }
    // Any text may arrive as a txn_id: take characters, never slice bytes.
    let host_ref = host_ref_of('H', &req.txn_id);
    let set_state = |state: &str| -> Result<(), rusqlite::Error> {
        db.execute(
            "UPDATE ledger SET state = ?2, updated_at = ?3 WHERE txn_id = ?1",
            params![req.txn_id, state, now as i64],
        )?;
        Ok(())
    };
    let reply = match req.op {
        Op::Authorize => {
            if let Some((b, state, _, href)) = row {
                // A second authorize for the same txn: report what happened, charge nothing new.
                let _ = b;
                let mut r = resp(req, status_of(&state));
                r.host_ref = href;
                Reply::Now(r)
            } else if req.method.as_deref() == Some("card") {
                card_authorize(db, terminal, req, now, cfg)?
            } else {
                let code = req.code.clone().unwrap_or_default();
                let b = Behaviour::of_code(&code);
                let amount = req.amount.unwrap_or(0);
                let (state, reply) = match b {
                    Behaviour::Approve => ("charged", {
                        let mut r = resp(req, RespStatus::Approved);
                        r.host_ref = Some(host_ref.clone());
                        Reply::Now(r)
                    }),
                    Behaviour::Decline => ("declined", {
                        let mut r = resp(req, RespStatus::Declined);
                        r.reason = Some("insufficient funds".into());
                        Reply::Now(r)
                    }),
                    Behaviour::PendingThenApprove
                    | Behaviour::PendingOnce
                    | Behaviour::PendingForever => {
                        ("pending", Reply::Now(resp(req, RespStatus::Pending)))
                    }
                    Behaviour::LostAnswer | Behaviour::Silent => ("charged", Reply::Never),
                    Behaviour::LateAnswer => ("charged", {
                        let mut r = resp(req, RespStatus::Approved);
                        r.host_ref = Some(host_ref.clone());
                        Reply::Later(now + late_ms, r)
                    }),
                    Behaviour::ErrorThenApproved => ("charged", {
                        let mut r = resp(req, RespStatus::Error);
                        r.reason = Some("platform busy".into());
                        Reply::Now(r)
                    }),
                };
                db.execute(
                    "INSERT INTO ledger (txn_id, terminal, amount, currency, behaviour, state,
                        host_ref, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                    params![
                        req.txn_id,
                        terminal,
                        amount,
                        req.currency.clone().unwrap_or_default(),
                        b.as_str(),
                        state,
                        host_ref,
                        now as i64
                    ],
                )?;
                reply
            }
        }
        Op::Query => match row {
            None => {
                let mut r = resp(req, RespStatus::Declined);
                r.reason = Some("no such payment".into());
                Reply::Now(r)
            }
            Some((b, state, queries, href)) => {
                let b = Behaviour::parse(&b);
                db.execute(
                    "UPDATE ledger SET queries = queries + 1 WHERE txn_id = ?1",
                    [&req.txn_id],
                )?;
                let mut state = state;
                let confirms = match b {
                    Behaviour::PendingThenApprove => queries >= 1,
                    Behaviour::PendingOnce => true,
                    _ => false,
                };
                if confirms && state == "pending" {
                    set_state("charged")?;
                    state = "charged".into();
                }
                match b {
                    Behaviour::Silent | Behaviour::LateAnswer if state == "charged" => Reply::Never,
                    _ => {
                        let mut r = resp(req, status_of(&state));
                        if state == "charged" {
                            r.host_ref = href;
                        }
                        Reply::Now(r)
                    }
                }
            }
        },
        Op::Reverse => {
            match row {
                Some(_) => set_state("reversed")?,
                None => {
                    // Reversal of a payment that never reached us: it never happened.
                    db.execute(
                        "INSERT INTO ledger (txn_id, terminal, amount, currency, behaviour, state,
                            created_at, updated_at)
                         VALUES (?1, ?2, 0, '', 'none', 'reversed', ?3, ?3)",
                        params![req.txn_id, terminal, now as i64],
                    )?;
                }
            }
            Reply::Now(resp(req, RespStatus::Approved))
        }
        Op::Order => order_open(db, terminal, req, now, cfg, fx)?,
        // Only for a transaction that never was an order (order_answer took the others).
        Op::Close => {
            db.execute(
                "INSERT OR IGNORE INTO orders (txn_id, terminal, reference, amount, currency,
                    behaviour, state, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'none', 'closed', ?6, ?6)",
                params![
                    req.txn_id,
                    terminal,
                    order_reference(&req.txn_id),
                    req.amount.unwrap_or(0),
                    req.currency.clone().unwrap_or_default(),
                    now as i64
                ],
            )?;
            declined(req, "closed unpaid")
        }
        Op::Refund => refund(db, terminal, req, now)?,
    };
    record(db, terminal, req, now, reply)
}

/// Stores the answer under `req_id` (a repeated request gets it again) and returns it.
fn record(
    db: &rusqlite::Transaction<'_>,
    terminal: &str,
    req: &Request,
    now: u64,
    mut reply: Reply,
) -> Result<Reply, HostError> {
    if let Reply::Now(r) = &mut reply {
        if r.status == RespStatus::Approved && r.host_ref.is_none() && req.op != Op::Reverse {
            r.host_ref = Some(host_ref_of('H', &req.txn_id));
        }
    }
    let stored = match &reply {
        Reply::Now(r) | Reply::Later(_, r) => Some(serde_json::to_string(r).unwrap_or_default()),
        Reply::Never => None,
    };
    db.execute(
        "INSERT INTO requests (req_id, terminal, txn_id, op, response, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            req.req_id,
            terminal,
            req.txn_id,
            req.op.as_str(),
            stored,
            now as i64
        ],
    )?;
    Ok(reply)
}

fn status_of(ledger_state: &str) -> RespStatus {
    match ledger_state {
        "charged" => RespStatus::Approved,
        "pending" => RespStatus::Pending,
        "declined" | "reversed" | "rejected" | "voided" => RespStatus::Declined,
        _ => RespStatus::Unknown,
    }
}

/// What storing one event produced.
enum Stored {
    /// Not an event (malformed): nothing stored, nothing to ack.
    Bad,
    /// Stored now or before.
    Ok,
    /// Stored now, and it settled an offline sale or reconciled a batch: tell the terminal.
    Notify(serde_json::Value),
}

/// Stores one event if new; settles offline sales the first time they arrive.
fn store_event(
    db: &Connection,
    terminal: &str,
    payload: &[u8],
    now: u64,
    cfg: &HostConfig,
) -> Result<Stored, HostError> {
    let ev = match protocol::parse_event(payload) {
        Ok(e) => e,
        Err(e) => {
            log::error!("host: {e}");
            return Ok(Stored::Bad);
        }
    };
    let text = String::from_utf8_lossy(payload);
    let n = db.execute(
        "INSERT OR IGNORE INTO events (event_id, terminal, seq, txn_id, type, state, amount,
            currency, payload, received_at, stored_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            ev.event_id,
            terminal,
            ev.seq as i64,
            ev.txn_id,
            ev.kind,
            ev.state,
            ev.amount,
            ev.currency,
            text,
            now as i64,
            cfg.client_id
        ],
    )?;
    if n == 0 {
        // Either a redelivery (same event_id) or a seq clash with another event id.
        let same: Option<String> = db
            .query_row(
                "SELECT event_id FROM events WHERE terminal = ?1 AND seq = ?2",
                params![terminal, ev.seq as i64],
                |r| r.get(0),
            )
            .optional()?;
        if same.as_deref() != Some(ev.event_id.as_str()) {
            log::error!(
                "host: terminal {terminal} sent seq {} with event id {} but {:?} is stored",
                ev.seq,
                ev.event_id,
                same
            );
        }
        return Ok(Stored::Ok);
    }
    if ev.kind == "void" {
        match ev
            .detail
            .as_ref()
            .and_then(|d| d.get("original"))
            .and_then(|o| o.as_str())
        {
            Some(original) => void_sale(db, terminal, original, &ev, now)?,
            None => log::warn!(
                "host: void {} from {terminal} names no original (detail.original)",
                ev.txn_id
            ),
        }
        return Ok(Stored::Ok);
    }
    if ev.kind == "sale" && ev.state == "voided" {
        void_sale(db, terminal, &ev.txn_id, &ev, now)?;
        return Ok(Stored::Ok);
    }
    if ev.kind == "batch_close" {
        return Ok(match batch_close(db, terminal, &ev, now)? {
            Some(n) => Stored::Notify(n),
            None => Stored::Ok,
        });
    }
    if ev.state == "approved_offline" && matches!(ev.method.as_str(), "offline_code" | "card") {
        // A sale voided before its approval arrived (out of order): never charge it.
        let voided: Option<String> = db
            .query_row(
                "SELECT state FROM ledger WHERE txn_id = ?1 AND state = 'voided'",
                [&ev.txn_id],
                |r| r.get(0),
            )
            .optional()?;
        if voided.is_some() {
            log::warn!(
                "host: offline sale {} from {terminal} arrived after its void: not charged",
                ev.txn_id
            );
            return Ok(Stored::Ok);
        }
        let n = if ev.method == "card" {
            settle_card(db, terminal, &ev, now, cfg)?
        } else {
            settle_offline(db, terminal, &ev, now, cfg)?
        };
        return Ok(Stored::Notify(n));
    }
    Ok(Stored::Ok)
}

/// A void (or the original sale's `voided` event): the original's ledger row becomes `voided`
/// (a refund when it was charged); when the original is not known yet, a `voided` row is
/// recorded so it is never charged later.
fn void_sale(
    db: &Connection,
    terminal: &str,
    original: &str,
    ev: &PosEvent,
    now: u64,
) -> Result<(), HostError> {
    let row: Option<(String, String)> = db
        .query_row(
            "SELECT terminal, state FROM ledger WHERE txn_id = ?1",
            [original],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        Some((t, _)) if t != terminal => {
            log::warn!("host: {terminal} voids {original}, a payment of {t}: ignored");
        }
        Some((_, state)) => {
            if state == "charged" {
                log::info!("host: {original} voided after it was charged: refunded");
            }
            db.execute(
                "UPDATE ledger SET state = 'voided', updated_at = ?2 WHERE txn_id = ?1",
                params![original, now as i64],
            )?;
        }
        None => {
            let amount = if ev.txn_id == original { ev.amount } else { 0 };
            db.execute(
                "INSERT INTO ledger (txn_id, terminal, amount, currency, behaviour, state,
                    created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'void', 'voided', ?5, ?5)",
                params![original, terminal, amount, ev.currency, now as i64],
            )?;
        }
    }
    Ok(())
}

/// A store-and-forward card sale, authorized when it first arrives: approved/declined by the
/// card-number table (numbers that would be pending or silent online settle as approved).
fn settle_card(
    db: &Connection,
    terminal: &str,
    ev: &PosEvent,
    now: u64,
    cfg: &HostConfig,
) -> Result<serde_json::Value, HostError> {
    let card = ev.detail.as_ref().and_then(|d| d.get("card"));
    let aad = format!("{}|{}|{}", ev.txn_id, ev.amount, ev.currency);
    let (masked, verdict) = match read_card(cfg, card, aad.as_bytes()) {
        Ok((masked, b)) => (
            Some(masked),
            match b {
                CardBehaviour::Decline(reason) => Err(reason.to_string()),
                _ => Ok(()),
            },
        ),
        Err(reason) => (card_masked(card), Err(reason.to_string())),
    };
    record_settlement(
        db,
        terminal,
        ev,
        verdict,
        masked.as_deref(),
        now,
        "offline card sale",
    )
}

/// Records an offline sale's verdict in the ledger (`charged` or `rejected`, once) and returns
/// the `notify {type:"settlement"}` for the terminal. Shared by P1 codes and stored card sales.
fn record_settlement(
    db: &Connection,
    terminal: &str,
    ev: &PosEvent,
    verdict: Result<(), String>,
    masked: Option<&str>,
    now: u64,
    what: &str,
) -> Result<serde_json::Value, HostError> {
    let state = if verdict.is_ok() {
        "charged"
    } else {
        "rejected"
    };
    db.execute(
        "INSERT OR IGNORE INTO ledger (txn_id, terminal, amount, currency, behaviour, state,
            reason, masked_pan, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'offline', ?5, ?6, ?7, ?8, ?8)",
        params![
            ev.txn_id,
            terminal,
            ev.amount,
            ev.currency,
            state,
            verdict.as_ref().err(),
            masked,
            now as i64
        ],
    )?;
    Ok(match verdict {
        Ok(()) => {
            serde_json::json!({"type": "settlement", "txn_id": ev.txn_id, "status": "settled"})
        }
        Err(reason) => {
            log::warn!(
                "host: {what} {} from {terminal} rejected: {reason}",
                ev.txn_id
            );
            serde_json::json!({"type": "settlement", "txn_id": ev.txn_id, "status": "rejected", "reason": reason})
        }
    })
}

/// Verifies an offline sale again at the host: signatures and issuer key, validity and
/// freshness against the terminal's approval time, the per-user counter across all terminals,
/// the credential's maximum. Records the ledger entry and returns the `notify` to send.
fn settle_offline(
    db: &Connection,
    terminal: &str,
    ev: &PosEvent,
    now: u64,
    cfg: &HostConfig,
) -> Result<serde_json::Value, HostError> {
    let text = ev
        .detail
        .as_ref()
        .and_then(|d| d.get("p1"))
        .and_then(|p| p.as_str())
        .unwrap_or("");
    let policy = OfflinePolicy {
        allowed_skew_s: cfg.allowed_skew_s,
        currency: ev.currency.clone(),
        ..OfflinePolicy::default()
    };
    let verdict: Result<(), String> =
        match codes::verify_p1(text, ev.at / 1000, &cfg.issuer_keys, &policy) {
            Err(r) => Err(r.code().to_string()),
            Ok(v) => {
                let user = v.user_id() as i64;
                let counter = i64::from(v.counter());
                let used_by: Option<String> = db
                    .query_row(
                        "SELECT txn_id FROM p1_uses WHERE user_id = ?1 AND counter = ?2",
                        params![user, counter],
                        |r| r.get(0),
                    )
                    .optional()?;
                if used_by.as_deref().is_some_and(|t| t != ev.txn_id) {
                    Err("counter_replayed".into())
                } else if ev.amount < 0
                    || ev.amount as u64 > u64::from(v.code.credential.max_amount)
                {
                    Err("over_credential_max".into())
                } else {
                    db.execute(
                    "INSERT OR IGNORE INTO p1_uses (user_id, counter, txn_id) VALUES (?1, ?2, ?3)",
                    params![user, counter, ev.txn_id],
                )?;
                    Ok(())
                }
            }
        };
    record_settlement(db, terminal, ev, verdict, None, now, "offline sale")
}

/// The host's reconciliation of one Z report (docs/payments.md, batch close).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct BatchResult {
    pub batch_no: Option<i64>,
    pub from_seq: u64,
    pub upto_seq: u64,
    /// The host's own net per `"{method}/{channel}"`.
    pub host_net: BTreeMap<String, i64>,
    /// The host's own net per transaction of the batch.
    pub host_txns: BTreeMap<String, i64>,
    pub mismatches: Vec<BatchMismatch>,
    /// Transactions whose nets differ.
    pub txns: Vec<String>,
    /// Events of the range the host does not hold (it cannot vouch for those).
    pub missing_events: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BatchMismatch {
    pub key: String,
    pub terminal: i64,
    pub host: i64,
}

impl BatchResult {
    pub fn status(&self) -> &'static str {
        if self.mismatches.is_empty() && self.txns.is_empty() && self.missing_events == 0 {
            "reconciled"
        } else {
            "mismatch"
        }
    }
}

/// Why a Z report cannot be reconciled at all.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("Z report without from_seq/upto_seq")]
    Malformed,
    #[error(transparent)]
    Db(#[from] HostError),
}

impl From<rusqlite::Error> for BatchError {
    fn from(e: rusqlite::Error) -> BatchError {
        BatchError::Db(HostError::Db(e))
    }
}

/// A map of integers from the Z report (`net`, `txns`); entries that are not integers are
/// logged and skipped.
fn int_map(v: Option<&serde_json::Value>, what: &str) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for (k, x) in v.and_then(|v| v.as_object()).into_iter().flatten() {
        match x.as_i64() {
            Some(n) => {
                m.insert(k.clone(), n);
            }
            None => log::warn!("host: Z report {what}[{k}] is not an integer: {x}"),
        }
    }
    m
}

/// Compares a terminal's Z report (`detail` of its `batch_close` event) with the host's own
/// view: every transaction of that terminal whose first event has `from_seq < seq <= upto_seq`;
/// a sale counts its ledger amount when charged, a refund minus its approved refund's amount,
/// under `"{method}/{channel}"` of the transaction's last event in the range. Read-only.
pub fn reconcile_batch(
    db: &Connection,
    terminal: &str,
    detail: &serde_json::Value,
) -> Result<BatchResult, BatchError> {
    let (Some(from), Some(upto)) = (
        detail.get("from_seq").and_then(|v| v.as_u64()),
        detail.get("upto_seq").and_then(|v| v.as_u64()),
    ) else {
        return Err(BatchError::Malformed);
    };
    let from_i = i64::try_from(from).unwrap_or(i64::MAX);
    let upto_i = i64::try_from(upto).unwrap_or(i64::MAX);
    let mut res = BatchResult {
        batch_no: detail.get("batch_no").and_then(|v| v.as_i64()),
        from_seq: from,
        upto_seq: upto,
        ..BatchResult::default()
    };
    let held: i64 = db.query_row(
        "SELECT COUNT(*) FROM events WHERE terminal = ?1 AND seq > ?2 AND seq <= ?3",
        params![terminal, from_i, upto_i],
        |r| r.get(0),
    )?;
    res.missing_events = upto.saturating_sub(from).saturating_sub(held.max(0) as u64);
    let ids: Vec<String> = {
        let mut st = db.prepare(
            "SELECT txn_id FROM events WHERE terminal = ?1 GROUP BY txn_id
             HAVING MIN(seq) > ?2 AND MIN(seq) <= ?3",
        )?;
        let rows = st.query_map(params![terminal, from_i, upto_i], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for id in ids {
        let payload: String = db.query_row(
            "SELECT payload FROM events WHERE terminal = ?1 AND txn_id = ?2 AND seq <= ?3
             ORDER BY seq DESC LIMIT 1",
            params![terminal, id, upto_i],
            |r| r.get(0),
        )?;
        let ev = match protocol::parse_event(payload.as_bytes()) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("host: stored event of {id} unreadable: {e}");
                continue;
            }
        };
        let detail = |key: &str| {
            ev.detail
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let net = match ev.kind.as_str() {
            // A voided sale counts as sold; its void takes it back (docs/payments.md).
            "sale" => amount_of(
                db,
                "SELECT amount FROM ledger WHERE txn_id = ?1 AND state IN ('charged', 'voided')",
                params![id],
            )?,
            "void" => 0i64.saturating_sub(amount_of(
                db,
                "SELECT amount FROM ledger WHERE txn_id = ?1 AND state = 'voided'",
                params![detail("original").unwrap_or_default()],
            )?),
            "refund" => 0i64.saturating_sub(amount_of(
                db,
                "SELECT amount FROM refunds
                 WHERE terminal = ?1 AND refund_id = ?2 AND state = 'approved'",
                params![terminal, detail("refund_id").unwrap_or_else(|| id.clone())],
            )?),
            _ => 0,
        };
        let key = format!("{}/{}", ev.method, ev.channel.as_deref().unwrap_or(""));
        let e = res.host_net.entry(key).or_insert(0);
        *e = e.saturating_add(net);
        res.host_txns.insert(id, net);
    }
    let term_net = int_map(detail.get("net"), "net");
    let term_txns = int_map(detail.get("txns"), "txns");
    let keys: BTreeSet<&String> = term_net.keys().chain(res.host_net.keys()).collect();
    let mut mismatches = Vec::new();
    for k in keys {
        let t = term_net.get(k).copied().unwrap_or(0);
        let h = res.host_net.get(k).copied().unwrap_or(0);
        if t != h {
            mismatches.push(BatchMismatch {
                key: k.clone(),
                terminal: t,
                host: h,
            });
        }
    }
    let ids: BTreeSet<&String> = term_txns.keys().chain(res.host_txns.keys()).collect();
    let mut txns = Vec::new();
    for id in ids {
        if term_txns.get(id).copied().unwrap_or(0) != res.host_txns.get(id).copied().unwrap_or(0) {
            txns.push(id.clone());
        }
    }
    res.mismatches = mismatches;
    res.txns = txns;
    Ok(res)
}

/// The first time a `batch_close` event is stored: reconcile, record in `batches`, and return
/// the `notify` to send once the batch commits.
fn batch_close(
    db: &Connection,
    terminal: &str,
    ev: &PosEvent,
    now: u64,
) -> Result<Option<serde_json::Value>, HostError> {
    let done: Option<String> = db
        .query_row(
            "SELECT status FROM batches WHERE txn_id = ?1",
            [&ev.txn_id],
            |r| r.get(0),
        )
        .optional()?;
    if done.is_some() {
        return Ok(None);
    }
    let detail = ev.detail.clone().unwrap_or(serde_json::Value::Null);
    let res = match reconcile_batch(db, terminal, &detail) {
        Ok(r) => r,
        Err(BatchError::Db(e)) => return Err(e),
        Err(BatchError::Malformed) => {
            log::warn!(
                "host: batch close {} from {terminal} carries no Z report",
                ev.txn_id
            );
            return Ok(None);
        }
    };
    let status = res.status();
    if status != "reconciled" {
        log::warn!(
            "host: batch close {} of {terminal}: mismatch {:?}, txns {:?}, {} events missing",
            ev.txn_id,
            res.mismatches,
            res.txns,
            res.missing_events
        );
    }
    let mismatches = serde_json::to_value(&res.mismatches).unwrap_or_default();
    db.execute(
        "INSERT INTO batches (txn_id, terminal, batch_no, from_seq, upto_seq, status, mismatches,
            txns, host_net, missing_events, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            ev.txn_id,
            terminal,
            res.batch_no,
            i64::try_from(res.from_seq).unwrap_or(i64::MAX),
            i64::try_from(res.upto_seq).unwrap_or(i64::MAX),
            status,
            mismatches.to_string(),
            serde_json::to_string(&res.txns).unwrap_or_default(),
            serde_json::to_string(&res.host_net).unwrap_or_default(),
            res.missing_events as i64,
            now as i64
        ],
    )?;
    let mut n = serde_json::json!({"type": "batch_close", "txn_id": ev.txn_id, "status": status,
        "mismatches": mismatches, "txns": res.txns});
    if res.missing_events > 0 {
        n["missing_events"] = res.missing_events.into();
    }
    Ok(Some(n))
}

/// The amount one row of a query holds, 0 when there is no such row (reconciliation).
fn amount_of(db: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<i64, HostError> {
    Ok(db
        .query_row(sql, p, |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0))
}

/// Advances a terminal's contiguous stored seq and returns it.
fn contiguous(db: &rusqlite::Transaction<'_>, terminal: &str) -> Result<u64, HostError> {
    let mut upto: i64 = db
        .query_row(
            "SELECT contiguous_seq FROM terminals WHERE terminal = ?1",
            [terminal],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    {
        let mut st = db.prepare_cached(
            "SELECT seq FROM events WHERE terminal = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let mut rows = st.query(params![terminal, upto])?;
        while let Some(r) = rows.next()? {
            let s: i64 = r.get(0)?;
            if s == upto + 1 {
                upto = s;
            } else {
                break;
            }
        }
    }
    db.execute(
        "INSERT INTO terminals (terminal, contiguous_seq) VALUES (?1, ?2)
         ON CONFLICT(terminal) DO UPDATE SET contiguous_seq = MAX(contiguous_seq, excluded.contiguous_seq)",
        params![terminal, upto],
    )?;
    Ok(upto as u64)
}

/// Runs a host instance until `stop` is set.
pub fn run(cfg: HostConfig, stop: Arc<AtomicBool>) -> Result<(), HostError> {
    let mut db = open_db(&cfg.db)?;
    let mut opts =
        crate::mqtt::options(&cfg.client_id, &cfg.broker_url, 30).map_err(HostError::Broker)?;
    opts.set_clean_session(true);
    let (client, mut conn) = Client::new(opts, 4096);
    crate::mqtt::disable_nagle(&mut conn.eventloop);
    let prefix = cfg.prefix.trim_end_matches('/').to_string();
    let mut later: Vec<(u64, String, Response)> = Vec::new();
    let mut batch_terminals: BTreeSet<String> = BTreeSet::new();
    let mut batch_started: Option<u64> = None;
    let mut tx_open = false;
    let mut notifies: Vec<(String, serde_json::Value)> = Vec::new();
    // Automatic order payments (due ms, txn_id): in memory only, lost on a restart.
    let mut pays: Vec<(u64, String)> = Vec::new();
    let pay_topic = wallet_pay_topic(&prefix);
    let publish_notify = |term: &str, body: &serde_json::Value| {
        if let Err(e) = client.try_publish(
            format!("{prefix}/{term}/notify"),
            QoS::AtLeastOnce,
            false,
            body.to_string(),
        ) {
            log::warn!("host: notify not queued: {e}");
        }
    };
    log::info!("sandbox host {} on {}", cfg.client_id, cfg.broker_url);
    while !stop.load(Ordering::Relaxed) {
        let now = now_ms();
        // Commit and acknowledge the current batch when it is old enough.
        if let Some(start) = batch_started {
            if now >= start + cfg.batch_ms {
                if tx_open {
                    db.execute_batch("COMMIT")?;
                    tx_open = false;
                }
                let t = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut acks = Vec::new();
                for term in &batch_terminals {
                    acks.push((term.clone(), contiguous(&t, term)?));
                }
                t.commit()?;
                for (term, body) in notifies.drain(..) {
                    publish_notify(&term, &body);
                }
                for (term, upto) in acks {
                    let body = serde_json::json!({ "upto_seq": upto }).to_string();
                    if let Err(e) = client.try_publish(
                        format!("{prefix}/{term}/ack"),
                        QoS::AtLeastOnce,
                        false,
                        body,
                    ) {
                        log::warn!("host: ack not queued: {e}");
                    }
                }
                batch_terminals.clear();
                batch_started = None;
            }
        }
        // Late answers that are due.
        later.sort_by_key(|l| l.0);
        while later.first().is_some_and(|l| l.0 <= now) {
            let (_, term, r) = later.remove(0);
            let body = serde_json::to_vec(&r).unwrap_or_default();
            let _ = client.try_publish(
                format!("{prefix}/{term}/resp"),
                QoS::AtLeastOnce,
                false,
                body,
            );
        }
        // Automatic order payments that are due (a closed order is never paid).
        pays.sort_by_key(|p| p.0);
        while pays.first().is_some_and(|p| p.0 <= now) {
            let (_, txn) = pays.remove(0);
            if tx_open {
                db.execute_batch("COMMIT")?;
                tx_open = false;
            }
            let t = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcome = pay_order(&t, &txn, now, false)?;
            t.commit()?;
            match outcome {
                PayOutcome::Paid {
                    terminal,
                    notify: Some(n),
                    ..
                } => publish_notify(&terminal, &n),
                PayOutcome::Paid { notify: None, .. } => {
                    log::info!("host: order {txn} paid; its notify is lost (amount ends in 33)")
                }
                PayOutcome::Refused(why) => {
                    log::info!("host: automatic payment of {txn} not made: {why}")
                }
            }
        }
        let mut wait = match batch_started {
            Some(s) => (s + cfg.batch_ms).saturating_sub(now).max(1),
            None => 200,
        };
        if let Some(p) = pays.first() {
            wait = wait.min(p.0.saturating_sub(now).max(1));
        }
        let ev = match conn.recv_timeout(Duration::from_millis(wait)) {
            Ok(ev) => ev,
            Err(_) => continue,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let leaves = [
                    format!("{prefix}/+/events"),
                    format!("{prefix}/+/req"),
                    pay_topic.clone(),
                ];
                for leaf in leaves {
                    let topic = match &cfg.group {
                        Some(g) => format!("$share/{g}/{leaf}"),
                        None => leaf,
                    };
                    if let Err(e) = client.try_subscribe(topic, QoS::AtLeastOnce) {
                        log::error!("host: subscribe: {e}");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == pay_topic => {
                // Before terminal routing: split_topic would take "sandbox" for a terminal.
                if tx_open {
                    db.execute_batch("COMMIT")?;
                    tx_open = false;
                }
                let t = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let (result, notify) = wallet_pay(&t, &p.payload, now)?;
                t.commit()?;
                if let Some((term, n)) = notify {
                    publish_notify(&term, &n);
                }
                if let Err(e) = client.try_publish(
                    wallet_result_topic(&prefix),
                    QoS::AtLeastOnce,
                    false,
                    result.to_string(),
                ) {
                    log::warn!("host: wallet result not queued: {e}");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some((terminal, leaf)) = protocol::split_topic(&prefix, &p.topic) else {
                    continue;
                };
                let terminal = terminal.to_string();
                match leaf {
                    "events" => {
                        if !tx_open {
                            db.execute_batch("BEGIN IMMEDIATE")?;
                            tx_open = true;
                        }
                        // Inside the batch's open transaction: committed (durable) before the ack.
                        match store_event(&db, &terminal, &p.payload, now, &cfg)? {
                            Stored::Bad => {}
                            Stored::Ok => {
                                batch_terminals.insert(terminal);
                                batch_started.get_or_insert(now);
                            }
                            Stored::Notify(n) => {
                                notifies.push((terminal.clone(), n));
                                batch_terminals.insert(terminal);
                                batch_started.get_or_insert(now);
                            }
                        }
                    }
                    "req" => {
                        let req = match protocol::parse_request(&p.payload) {
                            Ok(r) => r,
                            Err(e) => {
                                log::error!("host: {e}");
                                continue;
                            }
                        };
                        if tx_open {
                            db.execute_batch("COMMIT")?;
                            tx_open = false;
                        }
                        let t = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                        let mut fx = Effects::default();
                        let reply = answer(&t, &terminal, &req, now, &cfg, &mut fx)?;
                        t.commit()?;
                        pays.append(&mut fx.pays);
                        match reply {
                            Reply::Now(r) => {
                                let body = serde_json::to_vec(&r).unwrap_or_default();
                                if let Err(e) = client.try_publish(
                                    format!("{prefix}/{terminal}/resp"),
                                    QoS::AtLeastOnce,
                                    false,
                                    body,
                                ) {
                                    log::warn!("host: resp not queued: {e}");
                                }
                            }
                            Reply::Later(at, r) => later.push((at, terminal, r)),
                            Reply::Never => {}
                        }
                        for (term, n) in fx.notifies {
                            publish_notify(&term, &n);
                        }
                    }
                    _ => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                log::debug!("host: broker: {e}");
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
    if tx_open {
        db.execute_batch("COMMIT")?;
    }
    let _ = client.disconnect();
    Ok(())
}

/// The ledger audit: does every charge have a sale, and every sale a charge?
#[derive(Debug, Clone, Serialize, Default)]
pub struct Audit {
    pub events: u64,
    pub terminals: BTreeMap<String, TerminalAudit>,
    pub charges: u64,
    /// Charged at the host, but the terminal's journal shows no approved sale.
    pub charged_without_sale: Vec<String>,
    /// The terminal recorded an approved sale the host never charged.
    pub sale_without_charge: Vec<String>,
    /// Transactions whose last event is not final (still in flight at the terminal).
    pub unresolved: Vec<String>,
    /// Refunds the host approved (they are not charges: no sale needed).
    pub refunds: u64,
    /// Batch closes and their reconciliation.
    pub batches: Vec<BatchAudit>,
}

/// One reconciled batch close, as `audit` shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct BatchAudit {
    pub txn_id: String,
    pub terminal: String,
    pub batch_no: Option<i64>,
    pub from_seq: u64,
    pub upto_seq: u64,
    pub status: String,
    pub mismatches: serde_json::Value,
    pub txns: serde_json::Value,
    pub missing_events: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct TerminalAudit {
    pub events: u64,
    pub max_seq: u64,
    pub contiguous_seq: u64,
    pub gaps: u64,
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.charged_without_sale.is_empty()
            && self.sale_without_charge.is_empty()
            && self.terminals.values().all(|t| t.gaps == 0)
    }
}

/// Compares the ledger with the terminals' journals as received.
pub fn audit(db: &Connection) -> Result<Audit, HostError> {
    let mut a = Audit::default();
    {
        let mut st = db.prepare(
            "SELECT terminal, COUNT(*), MAX(seq) FROM events GROUP BY terminal ORDER BY terminal",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (t, n, max) = row?;
            let contiguous: i64 = db
                .query_row(
                    "SELECT contiguous_seq FROM terminals WHERE terminal = ?1",
                    [&t],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            a.events += n as u64;
            a.terminals.insert(
                t,
                TerminalAudit {
                    events: n as u64,
                    max_seq: max as u64,
                    contiguous_seq: contiguous as u64,
                    gaps: (max - n).max(0) as u64,
                },
            );
        }
    }
    // The terminal's latest known state per transaction (highest seq).
    let mut last_state: BTreeMap<String, (String, String)> = BTreeMap::new();
    {
        let mut st = db.prepare(
            "SELECT e.txn_id, e.state, e.type FROM events e
             JOIN (SELECT txn_id, MAX(seq) AS s, terminal FROM events GROUP BY txn_id) m
               ON e.txn_id = m.txn_id AND e.seq = m.s AND e.terminal = m.terminal",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (id, state, kind) = row?;
            last_state.insert(id, (state, kind));
        }
    }
    let mut charged: BTreeSet<String> = BTreeSet::new();
    {
        let mut st = db.prepare("SELECT txn_id FROM ledger WHERE state = 'charged'")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        for r in rows {
            charged.insert(r?);
        }
    }
    a.charges = charged.len() as u64;
    a.refunds = db.query_row(
        "SELECT COUNT(*) FROM refunds WHERE state = 'approved'",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    {
        let mut st = db.prepare(
            "SELECT txn_id, terminal, batch_no, from_seq, upto_seq, status, mismatches, txns,
                missing_events
             FROM batches ORDER BY terminal, from_seq",
        )?;
        let rows = st.query_map([], |r| {
            Ok(BatchAudit {
                txn_id: r.get(0)?,
                terminal: r.get(1)?,
                batch_no: r.get(2)?,
                from_seq: r.get::<_, i64>(3)?.max(0) as u64,
                upto_seq: r.get::<_, i64>(4)?.max(0) as u64,
                status: r.get(5)?,
                mismatches: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                txns: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                missing_events: r.get::<_, i64>(8)?.max(0) as u64,
            })
        })?;
        for b in rows {
            a.batches.push(b?);
        }
    }
    for id in &charged {
        match last_state.get(id).map(|s| s.0.as_str()) {
            Some("approved" | "approved_offline" | "settled") => {}
            Some("authorizing" | "pending" | "reversing" | "closing") => {
                a.unresolved.push(id.clone())
            }
            _ => a.charged_without_sale.push(id.clone()),
        }
    }
    for (id, (state, kind)) in &last_state {
        let sold = matches!(state.as_str(), "approved" | "settled");
        if kind == "sale" && sold && !charged.contains(id) {
            a.sale_without_charge.push(id.clone());
        }
        if matches!(
            state.as_str(),
            "authorizing" | "pending" | "reversing" | "closing"
        ) && !charged.contains(id)
        {
            a.unresolved.push(id.clone());
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use posd_core::codes::emv_mpm::{generate_dynamic, MerchantAccount, MpmMerchant};
    use serde_json::json;

    fn mem_db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        c
    }

    fn cfg() -> HostConfig {
        HostConfig::new("mqtt://127.0.0.1:1", Path::new(":memory:"))
    }

    fn req(req_id: &str, op: Op, txn: &str) -> Request {
        Request::new(req_id.into(), op, txn.into())
    }

    /// Runs `answer` in its own transaction, like the loop does.
    fn ask(db: &mut Connection, terminal: &str, r: &Request) -> (Option<Response>, Effects) {
        let mut fx = Effects::default();
        let t = db.transaction().unwrap();
        let reply = answer(&t, terminal, r, 1_000, &cfg(), &mut fx).unwrap();
        t.commit().unwrap();
        let r = match reply {
            Reply::Now(r) | Reply::Later(_, r) => Some(r),
            Reply::Never => None,
        };
        (r, fx)
    }

    fn order(txn: &str, amount: i64, code: Option<&str>) -> Request {
        let mut r = req(&format!("o-{txn}"), Op::Order, txn);
        r.amount = Some(amount);
        r.currency = Some("CNY".into());
        r.method = Some("merchant_qr".into());
        r.code = code.map(str::to_string);
        r
    }

    fn event(
        seq: u64,
        txn: &str,
        kind: &str,
        state: &str,
        amount: i64,
        detail: Option<serde_json::Value>,
    ) -> Vec<u8> {
        let ev = PosEvent {
            seq,
            event_id: format!("e{seq}"),
            txn_id: txn.into(),
            kind: kind.into(),
            state: state.into(),
            method: "payment_code".into(),
            channel: Some("wechat".into()),
            amount,
            currency: "CNY".into(),
            at: 1_000,
            reason: None,
            host_ref: None,
            code_masked: None,
            detail,
        };
        serde_json::to_vec(&ev).unwrap()
    }

    fn store(db: &Connection, payload: &[u8]) -> Option<serde_json::Value> {
        match store_event(db, "T1", payload, 1_000, &cfg()).unwrap() {
            Stored::Notify(n) => Some(n),
            _ => None,
        }
    }

    fn ledger_state(db: &Connection, txn: &str) -> Option<String> {
        db.query_row("SELECT state FROM ledger WHERE txn_id = ?1", [txn], |r| {
            r.get(0)
        })
        .optional()
        .unwrap()
    }

    #[test]
    fn order_behaviour_by_amount() {
        assert_eq!(OrderBehaviour::of_amount(1011), OrderBehaviour::AutoPay);
        assert_eq!(OrderBehaviour::of_amount(22), OrderBehaviour::NeverPaid);
        assert_eq!(OrderBehaviour::of_amount(133), OrderBehaviour::AutoPayLost);
        assert_eq!(OrderBehaviour::of_amount(9944), OrderBehaviour::PaidAtClose);
        assert_eq!(OrderBehaviour::of_amount(1000), OrderBehaviour::Wallet);
        assert_eq!(
            order_reference("0193-abcd-ef01-2345-6789abcdef012345"),
            "0193abcdef0123456789abcde"
        );
    }

    #[test]
    fn platform_order_paid_by_wallet_then_close_says_approved() {
        let mut db = mem_db();
        let txn = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let (r, fx) = ask(&mut db, "T1", &order(txn, 1000, None));
        let r = r.unwrap();
        assert_eq!(r.status, RespStatus::Pending);
        let url = r.qr.unwrap();
        assert_eq!(url, format!("{ORDER_URL}0193a1b2c3d47e5f8a9b0c1d2e3f4a5b"));
        assert!(fx.pays.is_empty());
        // Repeating the order (new req_id) registers nothing new.
        let mut again = order(txn, 1000, None);
        again.req_id = "o2".into();
        assert_eq!(
            ask(&mut db, "T1", &again).0.unwrap().qr.as_deref(),
            Some(url.as_str())
        );
        let (q, _) = ask(&mut db, "T1", &req("q1", Op::Query, txn));
        assert_eq!(q.unwrap().status, RespStatus::Pending);
        let (res, notify) =
            wallet_pay(&db, json!({"qr": url}).to_string().as_bytes(), 2_000).unwrap();
        assert_eq!(res["status"], "paid");
        let (term, n) = notify.unwrap();
        assert_eq!(term, "T1");
        assert_eq!(n["type"], "payment");
        assert_eq!(n["amount"], 1000);
        assert_eq!(ledger_state(&db, txn).as_deref(), Some("charged"));
        // Paying twice is refused.
        let (res, notify) =
            wallet_pay(&db, json!({"qr": url}).to_string().as_bytes(), 2_000).unwrap();
        assert_eq!(res["status"], "refused");
        assert!(notify.is_none());
        let (q, _) = ask(&mut db, "T1", &req("q2", Op::Query, txn));
        let q = q.unwrap();
        assert_eq!(q.status, RespStatus::Approved);
        assert!(q.host_ref.is_some());
        let (c, _) = ask(&mut db, "T1", &req("c1", Op::Close, txn));
        assert_eq!(c.unwrap().status, RespStatus::Approved);
        assert!(audit(&db)
            .unwrap()
            .charged_without_sale
            .contains(&txn.to_string()));
    }

    #[test]
    fn closed_order_is_never_paid() {
        let mut db = mem_db();
        let (r, fx) = ask(&mut db, "T1", &order("t-11", 511, None));
        assert_eq!(r.unwrap().status, RespStatus::Pending);
        assert_eq!(fx.pays.len(), 1);
        assert_eq!(fx.pays[0].0, 1_000 + cfg().pay_after_ms);
        let (c, _) = ask(&mut db, "T1", &req("c", Op::Close, "t-11"));
        let c = c.unwrap();
        assert_eq!(c.status, RespStatus::Declined);
        assert_eq!(c.reason.as_deref(), Some("closed unpaid"));
        assert!(matches!(
            pay_order(&db, "t-11", 5_000, false).unwrap(),
            PayOutcome::Refused(_)
        ));
        assert!(ledger_state(&db, "t-11").is_none());
        let (q, _) = ask(&mut db, "T1", &req("q", Op::Query, "t-11"));
        assert_eq!(q.unwrap().reason.as_deref(), Some("order closed"));
        // Close of a transaction never ordered: recorded closed.
        let (c, _) = ask(&mut db, "T1", &req("c2", Op::Close, "t-unknown"));
        assert_eq!(c.unwrap().status, RespStatus::Declined);
        assert!(matches!(
            pay_order(&db, "t-unknown", 5_000, false).unwrap(),
            PayOutcome::Refused(_)
        ));
    }

    #[test]
    fn auto_pay_lost_and_paid_at_close() {
        let mut db = mem_db();
        ask(&mut db, "T1", &order("t-33", 133, None));
        match pay_order(&db, "t-33", 2_000, false).unwrap() {
            PayOutcome::Paid { notify, .. } => assert!(notify.is_none()),
            o => panic!("{o:?}"),
        }
        let (q, _) = ask(&mut db, "T1", &req("q", Op::Query, "t-33"));
        assert_eq!(q.unwrap().status, RespStatus::Approved);
        ask(&mut db, "T1", &order("t-44", 144, None));
        let (c, fx) = ask(&mut db, "T1", &req("c", Op::Close, "t-44"));
        assert_eq!(c.unwrap().status, RespStatus::Approved);
        assert_eq!(fx.notifies.len(), 1);
        assert_eq!(ledger_state(&db, "t-44").as_deref(), Some("charged"));
        // 22: a wallet cannot pay it.
        let (r, _) = ask(&mut db, "T1", &order("t-22", 122, None));
        let qr = r.unwrap().qr.unwrap();
        let (res, _) = wallet_pay(&db, json!({"qr": qr}).to_string().as_bytes(), 2_000).unwrap();
        assert_eq!(res["status"], "refused");
        // Malformed wallet payloads are refused, not fatal.
        let (res, _) = wallet_pay(&db, b"\xff{", 2_000).unwrap();
        assert_eq!(res["status"], "refused");
        let (res, _) = wallet_pay(&db, br#"{"qr":"000201nonsense"}"#, 2_000).unwrap();
        assert_eq!(res["reason"], "no such order");
    }

    #[test]
    fn local_order_paid_by_emv_payload() {
        let mut db = mem_db();
        let txn = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let merchant = MpmMerchant {
            accounts: vec![MerchantAccount {
                tag: 26,
                guid: "com.example.pay".into(),
                fields: [("01".to_string(), "M123".to_string())].into(),
            }],
            merchant_category_code: "5812".into(),
            country_code: "CN".into(),
            merchant_name: "Sandbox Cafe".into(),
            merchant_city: "Shanghai".into(),
            postal_code: None,
            language: None,
        };
        let payload =
            generate_dynamic(&merchant, 1250, "CNY", &order_reference(txn), "T1").unwrap();
        let (r, _) = ask(&mut db, "T1", &order(txn, 1250, Some(&payload)));
        assert_eq!(r.unwrap().qr.as_deref(), Some(payload.as_str()));
        // Matched by terminal label + reference, even if the wallet's text differs elsewhere.
        db.execute("UPDATE orders SET qr = 'x'", []).unwrap();
        let (res, n) =
            wallet_pay(&db, json!({"qr": payload}).to_string().as_bytes(), 2_000).unwrap();
        assert_eq!(res["status"], "paid", "{res}");
        assert_eq!(n.unwrap().1["txn_id"], txn);
    }

    fn authorize(txn: &str, code: &str, amount: i64) -> Request {
        let mut r = req(&format!("a-{txn}"), Op::Authorize, txn);
        r.method = Some("payment_code".into());
        r.code = Some(code.into());
        r.amount = Some(amount);
        r.currency = Some("CNY".into());
        r
    }

    fn refund_req(req_id: &str, txn: &str, refund_id: &str, amount: i64) -> Request {
        let mut r = req(req_id, Op::Refund, txn);
        r.refund_id = Some(refund_id.into());
        r.amount = Some(amount);
        r.currency = Some("CNY".into());
        r
    }

    #[test]
    fn refunds_are_idempotent_and_bounded() {
        let mut db = mem_db();
        ask(&mut db, "T1", &authorize("s1", "134567890123456700", 1000));
        let (r, _) = ask(&mut db, "T1", &refund_req("r1", "s1", "rf1", 600));
        let r = r.unwrap();
        assert_eq!(r.status, RespStatus::Approved);
        let href = r.host_ref.clone();
        assert!(href.is_some());
        // Same refund_id, new req_id: the same answer, nothing refunded twice.
        let (again, _) = ask(&mut db, "T1", &refund_req("r1b", "s1", "rf1", 600));
        assert_eq!(again.unwrap().host_ref, href);
        let (r, _) = ask(&mut db, "T1", &refund_req("r2", "s1", "rf2", 401));
        assert_eq!(
            r.unwrap().reason.as_deref(),
            Some("amount exceeds what is left to refund")
        );
        let (r, _) = ask(&mut db, "T1", &refund_req("r3", "s1", "rf3", 400));
        assert_eq!(r.unwrap().status, RespStatus::Approved);
        let (r, _) = ask(&mut db, "T1", &refund_req("r4", "nope", "rf4", 1));
        assert_eq!(r.unwrap().reason.as_deref(), Some("no such payment"));
        ask(&mut db, "T1", &authorize("s2", "134567890123456711", 1000));
        let (r, _) = ask(&mut db, "T1", &refund_req("r5", "s2", "rf5", 1));
        assert_eq!(r.unwrap().reason.as_deref(), Some("not charged"));
        let (r, _) = ask(&mut db, "T1", &refund_req("r6", "s1", "rf6", 0));
        assert_eq!(r.unwrap().status, RespStatus::Declined);
        // Declined answers are kept too.
        let (r, _) = ask(&mut db, "T1", &refund_req("r2b", "s1", "rf2", 401));
        assert_eq!(
            r.unwrap().reason.as_deref(),
            Some("amount exceeds what is left to refund")
        );
        // The same refund_id for another amount or sale is not answered with the first verdict.
        let (r, _) = ask(&mut db, "T1", &refund_req("r2c", "s1", "rf1", 1));
        assert_eq!(
            r.unwrap().reason.as_deref(),
            Some("refund_id reused for another refund")
        );
        // Another terminal cannot refund T1's payment.
        let (r, _) = ask(&mut db, "T2", &refund_req("r7", "s1", "rf7", 1));
        assert_eq!(r.unwrap().reason.as_deref(), Some("no such payment"));
        // Refund ids are per terminal: T2's "rf1" is its own refund, not T1's.
        ask(&mut db, "T2", &authorize("s9", "134567890123456700", 500));
        let (r, _) = ask(&mut db, "T2", &refund_req("r8", "s9", "rf1", 500));
        assert_eq!(r.unwrap().status, RespStatus::Approved);
        assert_eq!(audit(&db).unwrap().refunds, 3);
    }

    #[test]
    fn voids_undo_or_prevent_charges() {
        let db = mem_db();
        // Charged first, voided later: the ledger row becomes voided.
        db.execute(
            "INSERT INTO ledger (txn_id, terminal, amount, currency, behaviour, state, created_at, updated_at)
             VALUES ('s1', 'T1', 500, 'CNY', 'offline', 'charged', 0, 0)",
            [],
        )
        .unwrap();
        store(&db, &event(1, "s1", "sale", "approved_offline", 500, None));
        store(&db, &event(2, "s1", "sale", "voided", 500, None));
        store(
            &db,
            &event(
                3,
                "v1",
                "void",
                "approved",
                500,
                Some(json!({"original": "s1"})),
            ),
        );
        assert_eq!(ledger_state(&db, "s1").as_deref(), Some("voided"));
        // Void before the sale's approval: never charged.
        store(
            &db,
            &event(
                4,
                "v2",
                "void",
                "approved",
                300,
                Some(json!({"original": "s2"})),
            ),
        );
        let mut late: PosEvent =
            serde_json::from_slice(&event(5, "s2", "sale", "approved_offline", 300, None)).unwrap();
        late.method = "offline_code".into();
        assert_eq!(store(&db, &serde_json::to_vec(&late).unwrap()), None);
        assert_eq!(ledger_state(&db, "s2").as_deref(), Some("voided"));
        // A void without an original is skipped, not fatal.
        store(
            &db,
            &event(6, "v3", "void", "approved", 0, Some(json!({"x": 1}))),
        );
        let a = audit(&db).unwrap();
        assert_eq!(a.charges, 0);
        assert!(a.sale_without_charge.is_empty());
    }

    const SECRET: [u8; 32] = [0x42; 32];

    fn card_cfg() -> HostConfig {
        let mut c = cfg();
        c.card_secret = Some(SECRET);
        c
    }

    fn sealed(pan: &str, aad: &str) -> serde_json::Value {
        let card = posd_core::card::parse_swipe(&format!(";{pan}=3012101?")).unwrap();
        let public = posd_core::card::seal::public_from_secret(&SECRET);
        let sealed =
            posd_core::card::seal::seal(&card, &public, aad.as_bytes(), [7; 32], [9; 12]).unwrap();
        json!({"masked_pan": card.masked_pan(), "brand": "visa", "sealed": sealed})
    }

    fn card_auth(
        db: &mut Connection,
        c: &HostConfig,
        txn: &str,
        pan: &str,
        aad_amount: i64,
    ) -> Option<Response> {
        let mut r = req(&format!("a-{txn}"), Op::Authorize, txn);
        r.method = Some("card".into());
        r.channel = Some("visa".into());
        r.amount = Some(1000);
        r.currency = Some("EUR".into());
        r.card = Some(sealed(pan, &format!("{txn}|{aad_amount}|EUR")));
        let mut fx = Effects::default();
        let t = db.transaction().unwrap();
        let reply = answer(&t, "T1", &r, 1_000, c, &mut fx).unwrap();
        t.commit().unwrap();
        match reply {
            Reply::Now(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn cards_by_number_and_never_the_pan() {
        let mut db = mem_db();
        let c = card_cfg();
        let r = card_auth(&mut db, &c, "k1", "4111111111111111", 1000).unwrap();
        assert_eq!(r.status, RespStatus::Approved);
        let r = card_auth(&mut db, &c, "k2", "4000000000000002", 1000).unwrap();
        assert_eq!(r.reason.as_deref(), Some("do not honor"));
        let r = card_auth(&mut db, &c, "k3", "4000000000009995", 1000).unwrap();
        assert_eq!(r.reason.as_deref(), Some("insufficient funds"));
        let r = card_auth(&mut db, &c, "k4", "4000000000000259", 1000).unwrap();
        assert_eq!(r.status, RespStatus::Pending);
        let (q, _) = ask(&mut db, "T1", &req("q4", Op::Query, "k4"));
        assert_eq!(q.unwrap().status, RespStatus::Approved);
        assert!(card_auth(&mut db, &c, "k5", "4000000000000119", 1000).is_none());
        assert_eq!(ledger_state(&db, "k5").as_deref(), Some("charged"));
        let (q, _) = ask(&mut db, "T1", &req("q5", Op::Query, "k5"));
        assert!(q.is_none());
        // The amount in the AAD differs: unreadable, nothing charged.
        let r = card_auth(&mut db, &c, "k6", "4111111111111111", 999).unwrap();
        assert_eq!(r.reason.as_deref(), Some("card data unreadable"));
        assert_eq!(ledger_state(&db, "k6").as_deref(), Some("declined"));
        // No key: unreadable.
        let r = card_auth(&mut db, &cfg(), "k7", "4111111111111111", 1000).unwrap();
        assert_eq!(r.reason.as_deref(), Some("card data unreadable"));
        // The ledger keeps the masked PAN only.
        let pans: Vec<Option<String>> = db
            .prepare("SELECT masked_pan FROM ledger ORDER BY txn_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(pans[0].as_deref(), Some("411111******1111"));
        let dump: String = db
            .query_row("SELECT group_concat(COALESCE(masked_pan, '') || COALESCE(reason, ''), ',') FROM ledger", [], |r| r.get(0))
            .unwrap();
        assert!(
            !dump.contains("4111111111111111") && !dump.contains("4000000000000002"),
            "{dump}"
        );
    }

    #[test]
    fn store_and_forward_cards_settle_when_they_arrive() {
        let db = mem_db();
        let c = card_cfg();
        let ev = |seq: u64, txn: &str, pan: &str| {
            let mut e: PosEvent =
                serde_json::from_slice(&event(seq, txn, "sale", "approved_offline", 800, None))
                    .unwrap();
            e.method = "card".into();
            e.detail = Some(json!({"card": sealed(pan, &format!("{txn}|800|CNY"))}));
            serde_json::to_vec(&e).unwrap()
        };
        let n = |p: &[u8]| match store_event(&db, "T1", p, 1_000, &c).unwrap() {
            Stored::Notify(n) => n,
            _ => panic!("no notify"),
        };
        assert_eq!(n(&ev(1, "f1", "4111111111111111"))["status"], "settled");
        assert_eq!(n(&ev(2, "f2", "4000000000000119"))["status"], "settled");
        let r = n(&ev(3, "f3", "4000000000009995"));
        assert_eq!(r["status"], "rejected");
        assert_eq!(r["reason"], "insufficient funds");
        assert_eq!(ledger_state(&db, "f3").as_deref(), Some("rejected"));
        // Sealed for another transaction: unreadable, rejected.
        let mut e: PosEvent = serde_json::from_slice(&ev(4, "f4", "4111111111111111")).unwrap();
        e.detail = Some(json!({"card": sealed("4111111111111111", "f1|800|CNY")}));
        let r = n(&serde_json::to_vec(&e).unwrap());
        assert_eq!(r["reason"], "card data unreadable");
        // Redelivery: stored once, no second verdict.
        assert!(matches!(
            store_event(&db, "T1", &ev(1, "f1", "4111111111111111"), 1_000, &c).unwrap(),
            Stored::Ok
        ));
    }

    /// A batch: sale charged (1000), sale declined, refund approved (-300) of the first, a
    /// card sale charged (700); one sale before the batch.
    fn batch_db() -> Connection {
        let db = mem_db();
        let ins = |t: &str, amount: i64, state: &str| {
            db.execute(
                "INSERT INTO ledger (txn_id, terminal, amount, currency, behaviour, state, created_at, updated_at)
                 VALUES (?1, 'T1', ?2, 'CNY', 'approve', ?3, 0, 0)",
                params![t, amount, state],
            )
            .unwrap();
        };
        ins("old", 50, "charged");
        ins("s1", 1000, "charged");
        ins("s2", 200, "declined");
        ins("c1", 700, "charged");
        db.execute(
            "INSERT INTO refunds (refund_id, txn_id, terminal, amount, currency, state, created_at)
             VALUES ('r1', 's1', 'T1', 300, 'CNY', 'approved', 0)",
            [],
        )
        .unwrap();
        store(&db, &event(10, "old", "sale", "approved", 50, None));
        store(&db, &event(11, "s1", "sale", "authorizing", 1000, None));
        store(&db, &event(12, "s1", "sale", "approved", 1000, None));
        store(&db, &event(13, "s2", "sale", "declined", 200, None));
        store(
            &db,
            &event(
                14,
                "r1",
                "refund",
                "approved",
                300,
                Some(json!({"refund_id": "r1"})),
            ),
        );
        let mut card: PosEvent =
            serde_json::from_slice(&event(15, "c1", "sale", "approved", 700, None)).unwrap();
        card.method = "card".into();
        card.channel = None;
        store(&db, &serde_json::to_vec(&card).unwrap());
        // Refund of "old" after the batch: not in it.
        store(&db, &event(16, "old", "sale", "approved", 50, None));
        db
    }

    fn z(net: serde_json::Value, txns: serde_json::Value) -> serde_json::Value {
        json!({"batch_no": 1, "from_seq": 10, "upto_seq": 15, "net": net, "txns": txns})
    }

    #[test]
    fn reconcile_batch_agrees_with_the_ledger() {
        let db = batch_db();
        let detail = z(
            json!({"payment_code/wechat": 700, "card/": 700}),
            json!({"s1": 1000, "s2": 0, "r1": -300, "c1": 700}),
        );
        let r = reconcile_batch(&db, "T1", &detail).unwrap();
        assert_eq!(r.status(), "reconciled", "{r:?}");
        assert_eq!(r.host_net.get("payment_code/wechat"), Some(&700));
        assert_eq!(r.host_txns.len(), 4);
        assert!(!r.host_txns.contains_key("old"));
        assert_eq!(r.missing_events, 0);
    }

    #[test]
    fn reconcile_batch_reports_differences() {
        let db = batch_db();
        let detail = z(
            json!({"payment_code/wechat": 900, "card/": 700, "cash/": 5}),
            json!({"s1": 1000, "s2": 200, "r1": -300, "c1": 700}),
        );
        let r = reconcile_batch(&db, "T1", &detail).unwrap();
        assert_eq!(r.status(), "mismatch");
        assert_eq!(
            r.mismatches,
            vec![
                BatchMismatch {
                    key: "cash/".into(),
                    terminal: 5,
                    host: 0
                },
                BatchMismatch {
                    key: "payment_code/wechat".into(),
                    terminal: 900,
                    host: 700
                },
            ]
        );
        assert_eq!(r.txns, vec!["s2".to_string()]);
        // Events the host lacks make it a mismatch too.
        let r = reconcile_batch(&db, "T1", &json!({"from_seq": 10, "upto_seq": 20})).unwrap();
        assert_eq!(r.missing_events, 4);
        assert_eq!(r.status(), "mismatch");
        assert!(matches!(
            reconcile_batch(&db, "T1", &json!({"net": {}})),
            Err(BatchError::Malformed)
        ));
        // Non-integer entries are skipped, not fatal.
        let r = reconcile_batch(&db, "T1", &z(json!({"card/": "x"}), json!([]))).unwrap();
        assert_eq!(r.status(), "mismatch");
    }

    #[test]
    fn batch_close_event_is_reconciled_once_and_audited() {
        let db = batch_db();
        let detail = z(
            json!({"payment_code/wechat": 700, "card/": 700}),
            json!({"s1": 1000, "r1": -300, "c1": 700}),
        );
        let n = store(
            &db,
            &event(17, "b1", "batch_close", "closed", 0, Some(detail.clone())),
        )
        .unwrap();
        assert_eq!(n["type"], "batch_close");
        assert_eq!(n["status"], "reconciled");
        assert_eq!(n["txn_id"], "b1");
        // A later event of the same batch close does not reconcile again.
        assert!(store(
            &db,
            &event(18, "b1", "batch_close", "reconciled", 0, Some(detail))
        )
        .is_none());
        let a = audit(&db).unwrap();
        assert_eq!(a.batches.len(), 1);
        assert_eq!(a.batches[0].status, "reconciled");
        assert_eq!(a.refunds, 1);
    }
}
