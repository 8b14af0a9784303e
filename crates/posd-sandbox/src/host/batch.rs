//! Batch close (Z report): the host reconciles a terminal's totals with its own ledger, records
//! the result once in `batches` and tells the terminal in a `batch_close` notify.

use super::HostError;
use posd_core::protocol::{
    self, BatchCloseNotify, BatchMismatch, BatchStatus, Event as PosEvent, Notify,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

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

impl BatchResult {
    pub fn status(&self) -> &'static str {
        match self.verdict() {
            BatchStatus::Reconciled => "reconciled",
            BatchStatus::Mismatch => "mismatch",
        }
    }

    /// Reconciled only when the totals, the transactions and the events all agree.
    fn verdict(&self) -> BatchStatus {
        if self.mismatches.is_empty() && self.txns.is_empty() && self.missing_events == 0 {
            BatchStatus::Reconciled
        } else {
            BatchStatus::Mismatch
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
    Ok(Some(Notify::BatchClose(
        BatchCloseNotify {
            txn_id: ev.txn_id.clone(),
            status: res.verdict(),
            mismatches: res.mismatches,
            txns: res.txns,
            missing_events: res.missing_events,
            mismatches_count: 0,
            txns_count: 0,
            truncated: false,
        }
        // The notify stays within the wire's size limit whatever the batch (docs/payments.md).
        .bounded(),
    )))
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
