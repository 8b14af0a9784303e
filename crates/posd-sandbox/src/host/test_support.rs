//! Fixtures the host's unit tests share: an in-memory database, requests run as the loop runs
//! them, journal events, and sealed cards.

use super::db::SCHEMA;
use super::events::{store_event, Stored};
use super::reply::{Effects, Reply};
use super::requests::answer;
use super::HostConfig;
use posd_core::protocol::{Event as PosEvent, Op, Request, Response};
use rusqlite::{Connection, OptionalExtension};
use serde_json::json;
use std::path::Path;

pub(super) fn mem_db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c
}

pub(super) fn cfg() -> HostConfig {
    HostConfig::new("mqtt://127.0.0.1:1", Path::new(":memory:"))
}

pub(super) fn req(req_id: &str, op: Op, txn: &str) -> Request {
    Request::new(req_id.into(), op, txn.into())
}

/// Runs `answer` in its own transaction, like the loop does.
pub(super) fn ask(db: &mut Connection, terminal: &str, r: &Request) -> (Option<Response>, Effects) {
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

pub(super) fn event(
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

/// Stores an event of T1; the notify it produced, as JSON.
pub(super) fn store(db: &Connection, payload: &[u8]) -> Option<serde_json::Value> {
    match store_event(db, "T1", payload, 1_000, &cfg()).unwrap() {
        Stored::Notify(n) => Some(serde_json::to_value(n).unwrap()),
        Stored::Notifies(mut v) => v.pop().map(|n| serde_json::to_value(n).unwrap()),
        _ => None,
    }
}

pub(super) fn ledger_state(db: &Connection, txn: &str) -> Option<String> {
    db.query_row("SELECT state FROM ledger WHERE txn_id = ?1", [txn], |r| {
        r.get(0)
    })
    .optional()
    .unwrap()
}

pub(super) const SECRET: [u8; 32] = [0x42; 32];

pub(super) fn card_cfg() -> HostConfig {
    let mut c = cfg();
    c.card_secret = Some(SECRET);
    c
}

pub(super) fn sealed(pan: &str, aad: &str) -> serde_json::Value {
    let card = posd_core::card::parse_swipe(&format!(";{pan}=3012101?")).unwrap();
    let public = posd_core::card::seal::public_from_secret(&SECRET);
    let sealed =
        posd_core::card::seal::seal(&card, &public, aad.as_bytes(), [7; 32], [9; 12]).unwrap();
    json!({"masked_pan": card.masked_pan(), "brand": "visa", "sealed": sealed})
}
