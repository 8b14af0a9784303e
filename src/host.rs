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

use crate::codes::{self, IssuerKeys, OfflinePolicy};
use crate::core::protocol::{self, Event as PosEvent, Op, Request, RespStatus, Response};
use crate::link::{mqtt_options, now_ms};
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
    Link(#[from] crate::link::LinkError),
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
    state TEXT NOT NULL,          -- pending | charged | declined | reversed
    queries INTEGER NOT NULL DEFAULT 0,
    host_ref TEXT,
    reason TEXT,
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
            "pending_forever" => Behaviour::PendingForever,
            "lost_answer" => Behaviour::LostAnswer,
            "silent" => Behaviour::Silent,
            "late_answer" => Behaviour::LateAnswer,
            "error_then_approved" => Behaviour::ErrorThenApproved,
            _ => Behaviour::Approve,
        }
    }
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
    late_ms: u64,
) -> Result<Reply, HostError> {
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
    let host_ref: String = std::iter::once('H')
        .chain(req.txn_id.chars().filter(|c| *c != '-').take(12))
        .collect();
    let set_state = |state: &str| -> Result<(), rusqlite::Error> {
        db.execute(
            "UPDATE ledger SET state = ?2, updated_at = ?3 WHERE txn_id = ?1",
            params![req.txn_id, state, now as i64],
        )?;
        Ok(())
    };
    let mut reply = match req.op {
        Op::Authorize => {
            if let Some((b, state, _, href)) = row {
                // A second authorize for the same txn: report what happened, charge nothing new.
                let _ = b;
                let mut r = resp(req, status_of(&state));
                r.host_ref = href;
                Reply::Now(r)
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
                    Behaviour::PendingThenApprove | Behaviour::PendingForever => {
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
                if b == Behaviour::PendingThenApprove && state == "pending" && queries >= 1 {
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
        Op::Refund | Op::Order | Op::Close => {
            let mut r = resp(req, RespStatus::Error);
            r.reason = Some(format!(
                "{} is not offered by this sandbox yet",
                req.op.as_str()
            ));
            Reply::Now(r)
        }
    };
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
    if let Reply::Now(r) = &mut reply {
        if r.status == RespStatus::Approved && r.host_ref.is_none() && req.op != Op::Reverse {
            r.host_ref = Some(host_ref);
        }
    }
    Ok(reply)
}

fn status_of(ledger_state: &str) -> RespStatus {
    match ledger_state {
        "charged" => RespStatus::Approved,
        "pending" => RespStatus::Pending,
        "declined" | "reversed" => RespStatus::Declined,
        _ => RespStatus::Unknown,
    }
}

/// What storing one event produced.
enum Stored {
    /// Not an event (malformed): nothing stored, nothing to ack.
    Bad,
    /// Stored now or before.
    Ok,
    /// Stored now, and an offline sale was settled: tell the terminal.
    Settled(serde_json::Value),
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
    if ev.method == "offline_code" && ev.state == "approved_offline" {
        return settle_offline(db, terminal, &ev, now, cfg).map(Stored::Settled);
    }
    Ok(Stored::Ok)
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
    let state = if verdict.is_ok() {
        "charged"
    } else {
        "rejected"
    };
    db.execute(
        "INSERT OR IGNORE INTO ledger (txn_id, terminal, amount, currency, behaviour, state,
            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'offline', ?5, ?6, ?6)",
        params![
            ev.txn_id,
            terminal,
            ev.amount,
            ev.currency,
            state,
            now as i64
        ],
    )?;
    Ok(match verdict {
        Ok(()) => {
            serde_json::json!({"type": "settlement", "txn_id": ev.txn_id, "status": "settled"})
        }
        Err(reason) => {
            log::warn!(
                "host: offline sale {} from {terminal} rejected: {reason}",
                ev.txn_id
            );
            serde_json::json!({"type": "settlement", "txn_id": ev.txn_id, "status": "rejected", "reason": reason})
        }
    })
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
    let mut opts = mqtt_options(&cfg.client_id, &cfg.broker_url, None, 30)?;
    opts.set_clean_session(true);
    let (client, mut conn) = Client::new(opts, 4096);
    crate::link::disable_nagle(&mut conn.eventloop);
    let prefix = cfg.prefix.trim_end_matches('/').to_string();
    let mut later: Vec<(u64, String, Response)> = Vec::new();
    let mut batch_terminals: BTreeSet<String> = BTreeSet::new();
    let mut batch_started: Option<u64> = None;
    let mut tx_open = false;
    let mut notifies: Vec<(String, serde_json::Value)> = Vec::new();
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
                    let _ = client.try_publish(
                        format!("{prefix}/{term}/notify"),
                        QoS::AtLeastOnce,
                        false,
                        body.to_string(),
                    );
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
        let wait = match batch_started {
            Some(s) => (s + cfg.batch_ms).saturating_sub(now).max(1),
            None => 200,
        };
        let ev = match conn.recv_timeout(Duration::from_millis(wait)) {
            Ok(ev) => ev,
            Err(_) => continue,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                for leaf in ["events", "req"] {
                    let topic = match &cfg.group {
                        Some(g) => format!("$share/{g}/{prefix}/+/{leaf}"),
                        None => format!("{prefix}/+/{leaf}"),
                    };
                    if let Err(e) = client.try_subscribe(topic, QoS::AtLeastOnce) {
                        log::error!("host: subscribe: {e}");
                    }
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
                            Stored::Settled(n) => {
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
                        let reply = answer(&t, &terminal, &req, now, cfg.late_ms)?;
                        t.commit()?;
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
    for id in &charged {
        match last_state.get(id).map(|s| s.0.as_str()) {
            Some("approved" | "approved_offline" | "settled") => {}
            Some("authorizing" | "pending" | "reversing") => a.unresolved.push(id.clone()),
            _ => a.charged_without_sale.push(id.clone()),
        }
    }
    for (id, (state, kind)) in &last_state {
        let sold = matches!(state.as_str(), "approved" | "settled");
        if kind == "sale" && sold && !charged.contains(id) {
            a.sale_without_charge.push(id.clone());
        }
        if matches!(state.as_str(), "authorizing" | "pending" | "reversing")
            && !charged.contains(id)
        {
            a.unresolved.push(id.clone());
        }
    }
    Ok(a)
}
