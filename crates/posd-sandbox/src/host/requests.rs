//! The `req` → `resp` path: each request answered once per `req_id` (a repeat gets the stored
//! answer), routed by op to the concern that decides it.

use super::orders::{close_unordered, order_answer, order_open};
use super::payments::{self, ledger_row};
use super::refunds::refund;
use super::reply::{host_ref_of, Effects, Reply};
use super::settlement;
use super::{HostConfig, HostError};
use posd_core::protocol::{Op, Request, RespStatus};
use rusqlite::{params, OptionalExtension};

/// Decides and records the answer to a request, inside the caller's SQLite transaction.
pub(super) fn answer(
    db: &rusqlite::Transaction<'_>,
    terminal: &str,
    req: &Request,
    now: u64,
    cfg: &HostConfig,
    fx: &mut Effects,
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
    let row = ledger_row(db, &req.txn_id)?;
    // Merchant-presented orders: query, close (and a reversal) act on the order.
    if matches!(req.op, Op::Query | Op::Close | Op::Reverse) {
        if let Some(reply) = order_answer(db, terminal, req, now, fx)? {
            return record(db, terminal, req, now, reply);
        }
    }
    // Offline sales: a query asks for the settlement verdict.
    if req.op == Op::Query {
        if let Some(reply) = settlement::query_verdict(db, req, row.as_ref())? {
            return Ok(reply);
        }
    }
    let reply = match req.op {
        Op::Authorize => payments::authorize(db, terminal, req, row, now, cfg)?,
        Op::Query => payments::query(db, req, row, now)?,
        Op::Reverse => payments::reverse(db, terminal, req, row, now)?,
        Op::Order => order_open(db, terminal, req, now, cfg, fx)?,
        // Only for a transaction that never was an order (order_answer took the others).
        Op::Close => close_unordered(db, terminal, req, now)?,
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
