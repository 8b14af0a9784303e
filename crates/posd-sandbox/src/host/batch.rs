//! Batch close (Z report): the host reconciles a terminal's totals with its own ledger, records
//! the result once in `batches` and tells the terminal in a `batch_close` notify.

use super::HostError;
use posd_core::batch;
use posd_core::protocol::{
    self, BatchCloseNotify, BatchMismatch, BatchStatus, Event as PosEvent, Notify,
};
use posd_core::txn::{TxnKind, TxnState};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Differing transactions a `batch_close` notify names at most; the rest are only counted, so
/// the answer stays small whatever the batch's size (issue 14).
pub const TXN_LIST_CAP: usize = 32;

/// The host's reconciliation of one Z report (docs/payments.md, batch close).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct BatchResult {
    pub batch_no: Option<i64>,
    pub from_seq: u64,
    pub upto_seq: u64,
    /// The host's own net per `"{method}/{channel}"`.
    pub host_net: BTreeMap<String, i64>,
    pub mismatches: Vec<BatchMismatch>,
    /// Transactions whose money differs, at most [`TXN_LIST_CAP`], in seq order.
    pub txns: Vec<String>,
    /// How many transactions differ in all.
    pub txns_count: u64,
    /// The batch's transactions as the host counts them, and its membership digest over
    /// `(first seq, txn id, ledger net)` (`posd_core::batch::MembershipDigest`).
    pub host_count: u64,
    pub host_digest: String,
    /// The report's `txn_count`/`txn_digest` differ from the host's (a report journaled before
    /// issue 14 carries no digest: its per-transaction `txns` map is compared instead).
    pub digest_mismatch: bool,
    /// Events of the range the host does not hold (it cannot vouch for those).
    pub missing_events: u64,
}

impl BatchResult {
    pub fn status(&self) -> &'static str {
        match self.verdict() {
            BatchStatus::Reconciled => "reconciled",
            BatchStatus::Mismatch => "mismatch",
        }
    }

    /// Reconciled only when the totals, the membership, the transactions and the events all
    /// agree.
    fn verdict(&self) -> BatchStatus {
        if self.mismatches.is_empty()
            && self.txns_count == 0
            && !self.digest_mismatch
            && self.missing_events == 0
        {
            BatchStatus::Reconciled
        } else {
            BatchStatus::Mismatch
        }
    }

    /// Lists one differing transaction (counted always, named while under the cap).
    fn differs(&mut self, id: &str) {
        self.txns_count += 1;
        if self.txns.len() < TXN_LIST_CAP {
            self.txns.push(id.to_string());
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

/// A map of integers from the Z report (`net`, a legacy `txns`); entries that are not integers
/// are logged and skipped.
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

/// The money a transaction moved as the terminal's own events say (its last event up to the
/// close), by the terminal's rule (`posd_core::batch::signed_net_of`).
fn terminal_net(ev: &PosEvent) -> i64 {
    match (TxnKind::parse(&ev.kind), TxnState::parse(&ev.state)) {
        (Some(kind), Some(state)) => batch::signed_net_of(kind, state, ev.amount),
        // `reversal` events: a reversed sale moved nothing.
        _ => 0,
    }
}

/// Compares a terminal's Z report (`detail` of its `batch_close` event) with the host's own
/// view: every transaction of that terminal first seen decided (in a state that is not in
/// flight) at `from_seq < seq <= upto_seq`, in the order of its first event's seq; a sale counts its ledger amount when charged, a refund minus its approved
/// refund's amount, under `"{method}/{channel}"` of the transaction's last event in the range.
/// The host's digest over `(first seq, id, ledger net)` must equal the report's; a transaction
/// whose ledger net differs from what the terminal's own events say is listed (capped).
/// Streams the batch; read-only.
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
    // A report journaled before issue 14: a per-transaction map instead of a digest.
    let legacy = match detail.get("txn_digest").and_then(|v| v.as_str()) {
        Some(d) if !d.is_empty() => None,
        _ => Some(int_map(detail.get("txns"), "txns")),
    };
    let mut digest = batch::MembershipDigest::new();
    let mut host_ids = BTreeSet::new();
    // Members (issue 15): the transactions first seen decided in the range — the event of the
    // range that is the first of its transaction in a state that is not in flight. One still
    // in flight at the close was carried by the terminal into the next batch and is counted
    // there; one carried into this batch (first event before the range) is counted here.
    // In first-seq order, each with the seq of its very first event (the digest's line).
    let in_flight = TxnState::ALL
        .iter()
        .filter(|s| s.in_flight())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut members = db.prepare(&format!(
        "SELECT e.txn_id,
                (SELECT MIN(f.seq) FROM events f
                 WHERE f.terminal = e.terminal AND f.txn_id = e.txn_id) AS first_seq
         FROM events e
         WHERE e.terminal = ?1 AND e.seq > ?2 AND e.seq <= ?3
           AND e.state NOT IN ({in_flight})
           AND NOT EXISTS (SELECT 1 FROM events f
                           WHERE f.terminal = e.terminal AND f.txn_id = e.txn_id
                             AND f.seq < e.seq AND f.state NOT IN ({in_flight}))
         ORDER BY first_seq, e.seq"
    ))?;
    let mut rows = members.query(params![terminal, from_i, upto_i])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let first_seq = row.get::<_, i64>(1)?.max(0) as u64;
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
        if ev.kind == "batch_close" {
            continue;
        }
        let detail_str = |key: &str| {
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
                params![detail_str("original").unwrap_or_default()],
            )?),
            "refund" => 0i64.saturating_sub(amount_of(
                db,
                "SELECT amount FROM refunds
                 WHERE terminal = ?1 AND refund_id = ?2 AND state = 'approved'",
                params![
                    terminal,
                    detail_str("refund_id").unwrap_or_else(|| id.clone())
                ],
            )?),
            _ => 0,
        };
        let key = format!("{}/{}", ev.method, ev.channel.as_deref().unwrap_or(""));
        let e = res.host_net.entry(key).or_insert(0);
        *e = e.saturating_add(net);
        digest.add(first_seq, &id, net);
        let claimed = match &legacy {
            Some(map) => map.get(&id).copied().unwrap_or(0),
            None => terminal_net(&ev),
        };
        if claimed != net {
            res.differs(&id);
        }
        if legacy.is_some() {
            host_ids.insert(id);
        }
    }
    (res.host_count, res.host_digest) = digest.finish();
    match &legacy {
        None => {
            let count = detail.get("txn_count").and_then(|v| v.as_u64());
            let d = detail.get("txn_digest").and_then(|v| v.as_str());
            res.digest_mismatch =
                count != Some(res.host_count) || d != Some(res.host_digest.as_str());
        }
        Some(map) => {
            // Transactions the terminal listed that the host does not count.
            for (id, n) in map {
                if *n != 0 && !host_ids.contains(id) {
                    res.differs(id);
                }
            }
        }
    }
    let term_net = int_map(detail.get("net"), "net");
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
    res.mismatches = mismatches;
    Ok(res)
}

/// The first time a `batch_close` event is stored: reconcile, record in `batches`, and return
/// the `notify` to send once the batch commits.
pub(super) fn batch_close(
    db: &Connection,
    terminal: &str,
    ev: &PosEvent,
    now: u64,
) -> Result<Option<Notify>, HostError> {
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
    if res.missing_events > 0 {
        // Not yet: the batch's journal is incomplete here (events behind the close were lost
        // with a broker session and are on their way again). Reconcile when they are in.
        let payload = serde_json::to_string(ev).unwrap_or_default();
        let fresh = db.execute(
            "INSERT OR IGNORE INTO deferred_closes (terminal, seq, payload) VALUES (?1, ?2, ?3)",
            params![terminal, i64::try_from(ev.seq).unwrap_or(i64::MAX), payload],
        )?;
        if fresh > 0 {
            log::info!(
                "host: batch close {} of {terminal} waits for {} missing event(s) of its batch",
                ev.txn_id,
                res.missing_events
            );
        }
        return Ok(None);
    }
    db.execute(
        "DELETE FROM deferred_closes WHERE terminal = ?1 AND seq = ?2",
        params![terminal, i64::try_from(ev.seq).unwrap_or(i64::MAX)],
    )?;
    let status = res.status();
    if status != "reconciled" {
        log::warn!(
            "host: batch close {} of {terminal}: mismatch {:?}, {} txns differ {:?}, digest {}, \
             {} events missing",
            ev.txn_id,
            res.mismatches,
            res.txns_count,
            res.txns,
            if res.digest_mismatch {
                "differs"
            } else {
                "agrees"
            },
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
    Ok(Some(Notify::BatchClose(
        BatchCloseNotify {
            txn_id: ev.txn_id.clone(),
            status: res.verdict(),
            mismatches: res.mismatches,
            txns_count: res.txns_count,
            txns: res.txns,
            digest_mismatch: res.digest_mismatch,
            missing_events: res.missing_events,
            mismatches_count: 0,
            truncated: false,
        }
        // The notify stays within the wire's size limit whatever the batch (docs/payments.md).
        .bounded(),
    )))
}

/// The batch closes of terminal `?1` after seq `?2`, waiting for missing events.
pub(super) const DEFERRED_AFTER_SQL: &str =
    "SELECT payload FROM deferred_closes WHERE terminal = ?1 AND seq > ?2 ORDER BY seq";

/// Batch closes of `terminal` that were waiting for missing events, reconciled now if those
/// have arrived. Called after each new event of the terminal with its `seq`: only a close
/// after it can have been waiting for it, so a new event past every waiting close costs one
/// primary-key probe, and a close never reconciles again for events that cannot complete it.
pub(super) fn release_deferred(
    db: &Connection,
    terminal: &str,
    seq: u64,
    now: u64,
) -> Result<Vec<Notify>, HostError> {
    let waiting: Vec<String> = {
        let mut st = db.prepare_cached(DEFERRED_AFTER_SQL)?;
        let rows = st.query_map(
            params![terminal, i64::try_from(seq).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?;
        rows.collect::<Result<_, _>>()?
    };
    let mut out = Vec::new();
    for payload in waiting {
        let Ok(ev) = protocol::parse_event(payload.as_bytes()) else {
            continue;
        };
        if let Some(n) = batch_close(db, terminal, &ev, now)? {
            out.push(n);
        }
    }
    Ok(out)
}

/// The amount one row of a query holds, 0 when there is no such row (reconciliation).
fn amount_of(db: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<i64, HostError> {
    Ok(db
        .query_row(sql, p, |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::audit;
    use crate::host::test_support::{event, mem_db, store};
    use serde_json::json;

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

    /// A report journaled before issue 14: a per-transaction map, no digest.
    fn z(net: serde_json::Value, txns: serde_json::Value) -> serde_json::Value {
        json!({"batch_no": 1, "from_seq": 10, "upto_seq": 15, "net": net, "txns": txns})
    }

    /// A report as posd sends it now: totals, the member count and their digest.
    fn z_digest(net: serde_json::Value, members: &[(u64, &str, i64)]) -> serde_json::Value {
        let mut d = batch::MembershipDigest::new();
        for (seq, id, n) in members {
            d.add(*seq, id, *n);
        }
        let (count, digest) = d.finish();
        json!({"batch_no": 1, "from_seq": 10, "upto_seq": 15, "net": net,
               "txn_count": count, "txn_digest": digest})
    }

    const MEMBERS: [(u64, &str, i64); 4] = [
        (11, "s1", 1000),
        (13, "s2", 0),
        (14, "r1", -300),
        (15, "c1", 700),
    ];

    #[test]
    fn the_host_recomputes_the_membership_digest_from_its_ledger() {
        let db = batch_db();
        let net = json!({"payment_code/wechat": 700, "card/": 700});
        let r = reconcile_batch(&db, "T1", &z_digest(net.clone(), &MEMBERS)).unwrap();
        assert_eq!(r.status(), "reconciled", "{r:?}");
        assert_eq!((r.host_count, r.txns_count), (4, 0));
        // One net the terminal got wrong in its own report: the digest tells, although every
        // event agrees with the ledger (nothing to name).
        let mut wrong = MEMBERS;
        wrong[1].2 = 200;
        let r = reconcile_batch(&db, "T1", &z_digest(net.clone(), &wrong)).unwrap();
        assert_eq!(r.status(), "mismatch");
        assert!(r.digest_mismatch && r.txns.is_empty(), "{r:?}");
        // A transaction missing from the report's membership.
        let r = reconcile_batch(&db, "T1", &z_digest(net.clone(), &MEMBERS[..3])).unwrap();
        assert!(r.digest_mismatch, "{r:?}");
        // The host did not charge what the terminal's events call approved: named.
        db.execute(
            "UPDATE ledger SET state = 'declined' WHERE txn_id = 's1'",
            [],
        )
        .unwrap();
        let r = reconcile_batch(&db, "T1", &z_digest(net, &MEMBERS)).unwrap();
        assert_eq!(r.txns, ["s1"]);
        assert_eq!(r.txns_count, 1);
        assert!(r.digest_mismatch);
        assert_eq!(r.mismatches[0].key, "payment_code/wechat");
    }

    #[test]
    fn a_notify_names_a_bounded_number_of_differing_transactions() {
        let db = mem_db();
        let n = 100u64;
        for i in 0..n {
            // Approved on the terminal, never charged at the host.
            store(
                &db,
                &event(i + 1, &format!("t{i:03}"), "sale", "approved", 10, None),
            );
        }
        let mut d = batch::MembershipDigest::new();
        for i in 0..n {
            d.add(i + 1, &format!("t{i:03}"), 10);
        }
        let (count, digest) = d.finish();
        let detail = json!({"batch_no": 1, "from_seq": 0, "upto_seq": n,
            "net": {"payment_code/wechat": 1000}, "txn_count": count, "txn_digest": digest});
        let notify = store(
            &db,
            &event(n + 1, "b1", "batch_close", "closed", 0, Some(detail)),
        )
        .unwrap();
        assert_eq!(notify["status"], "mismatch");
        assert_eq!(notify["txns"].as_array().unwrap().len(), TXN_LIST_CAP);
        assert_eq!(notify["txns"][0], "t000");
        assert_eq!(notify["txns_count"], n);
        assert_eq!(notify["truncated"], true);
        assert_eq!(notify["digest_mismatch"], true);
        assert!(serde_json::to_string(&notify).unwrap().len() < 4096);
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
        assert_eq!(r.host_count, 4);
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
    fn a_close_ahead_of_its_batch_waits_for_the_missing_events() {
        // A reconnect delivered the close (seq 4) before seq 2, which the broker lost with the
        // host's session: reconciling now would call a complete batch a mismatch.
        let db = mem_db();
        let mut d = batch::MembershipDigest::new();
        for (seq, id) in [(1, "a1"), (2, "a2"), (3, "a3")] {
            d.add(seq, id, 100);
        }
        let (count, digest) = d.finish();
        let detail = json!({"batch_no": 1, "from_seq": 0, "upto_seq": 3,
            "net": {"payment_code/wechat": 300}, "txn_count": count, "txn_digest": digest});
        for (ledger_id, state) in [("a1", "charged"), ("a2", "charged"), ("a3", "charged")] {
            db.execute(
                "INSERT INTO ledger (txn_id, terminal, amount, currency, behaviour, state, created_at, updated_at)
                 VALUES (?1, 'T1', 100, 'CNY', 'approve', ?2, 0, 0)",
                params![ledger_id, state],
            )
            .unwrap();
        }
        store(&db, &event(1, "a1", "sale", "approved", 100, None));
        store(&db, &event(3, "a3", "sale", "approved", 100, None));
        let early = store(
            &db,
            &event(4, "b1", "batch_close", "closed", 0, Some(detail)),
        );
        assert!(early.is_none(), "{early:?}");
        assert!(audit(&db).unwrap().batches.is_empty());
        // The missing event arrives (resent after the ack timeout): the close is reconciled.
        let n = store(&db, &event(2, "a2", "sale", "approved", 100, None)).unwrap();
        assert_eq!(
            (n["txn_id"].as_str(), n["status"].as_str()),
            (Some("b1"), Some("reconciled")),
            "{n}"
        );
        // Once: a redelivery of the close changes nothing.
        let detail_again = json!({"batch_no": 1, "from_seq": 0, "upto_seq": 3});
        assert!(store(
            &db,
            &event(4, "b1", "batch_close", "closed", 0, Some(detail_again))
        )
        .is_none());
        let a = audit(&db).unwrap();
        assert_eq!(a.batches.len(), 1);
        assert_eq!(a.batches[0].status, "reconciled");
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

    /// Issue 15: a sale in flight at a close belongs to the batch in which it ends.
    #[test]
    fn a_transaction_in_flight_at_the_close_reconciles_in_the_next_batch() {
        let db = mem_db();
        for (t, amount) in [("p1", 500), ("a1", 700)] {
            db.execute(
                "INSERT INTO ledger (txn_id, terminal, amount, currency, behaviour, state, created_at, updated_at)
                 VALUES (?1, 'T1', ?2, 'CNY', 'approve', 'charged', 0, 0)",
                params![t, amount],
            )
            .unwrap();
        }
        let report = |no: u64, from: u64, upto: u64, net: i64, members: &[(u64, &str, i64)]| {
            let mut d = batch::MembershipDigest::new();
            for (seq, id, n) in members {
                d.add(*seq, id, *n);
            }
            let (count, digest) = d.finish();
            json!({"batch_no": no, "from_seq": from, "upto_seq": upto,
                   "net": {"payment_code/wechat": net}, "txn_count": count, "txn_digest": digest,
                   "carried_count": if no == 1 { 1 } else { 0 }})
        };
        // Batch 1: p1 is still authorizing at the close (seq 3): carried, not a member.
        store(&db, &event(1, "p1", "sale", "authorizing", 500, None));
        store(&db, &event(2, "a1", "sale", "approved", 700, None));
        let z1 = report(1, 0, 2, 700, &[(2, "a1", 700)]);
        let n1 = store(&db, &event(3, "b1", "batch_close", "closed", 0, Some(z1))).unwrap();
        assert_eq!(n1["status"], "reconciled", "{n1}");
        // Batch 2: p1 ends approved; it is counted here, with the seq of its first event.
        store(&db, &event(4, "p1", "sale", "pending", 500, None));
        store(&db, &event(5, "p1", "sale", "approved", 500, None));
        let z2 = report(2, 3, 5, 500, &[(1, "p1", 500)]);
        let r = reconcile_batch(&db, "T1", &z2).unwrap();
        assert_eq!(r.status(), "reconciled", "{r:?}");
        assert_eq!((r.host_count, r.txns_count), (1, 0));
        let n2 = store(&db, &event(6, "b2", "batch_close", "closed", 0, Some(z2))).unwrap();
        assert_eq!(n2["status"], "reconciled", "{n2}");
        // Counting p1 in the first batch (the rule before issue 15) is a mismatch now.
        let old = report(1, 0, 2, 1200, &[(1, "p1", 500), (2, "a1", 700)]);
        assert_eq!(
            reconcile_batch(&db, "T1", &old).unwrap().status(),
            "mismatch"
        );
    }
}
