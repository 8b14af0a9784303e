//! Offline sales settled at the host: `P1` codes verified again (signatures, freshness, the
//! per-user counter across terminals) and store-and-forward card sales authorized when they
//! arrive; each verdict is recorded once and told to the terminal in a `settlement` notify.

use super::cards::{card_masked, read_card, CardBehaviour};
use super::payments::LedgerRow;
use super::reply::{resp, Reply};
use super::{HostConfig, HostError};
use posd_core::codes::{self, OfflinePolicy};
use posd_core::protocol::{
    Event as PosEvent, Notify, Request, RespStatus, SettlementNotify, SettlementStatus,
};
use rusqlite::{params, Connection, OptionalExtension};

/// A `query` of an offline sale: its settlement verdict, with the ledger's reason. None: the
/// transaction is not an offline sale.
pub(super) fn query_verdict(
    db: &Connection,
    req: &Request,
    row: Option<&LedgerRow>,
) -> Result<Option<Reply>, HostError> {
    let Some((_, state, ..)) = row.filter(|r| r.0 == "offline") else {
        return Ok(None);
    };
    let reason: Option<String> = db.query_row(
        "SELECT reason FROM ledger WHERE txn_id = ?1",
        [&req.txn_id],
        |r| r.get(0),
    )?;
    let charged = state == "charged";
    let mut r = resp(
        req,
        if charged {
            RespStatus::Approved
        } else {
            RespStatus::Declined
        },
    );
    r.reason = reason;
    Ok(Some(Reply::Now(r)))
}

/// A store-and-forward card sale, authorized when it first arrives: approved/declined by the
/// card-number table (numbers that would be pending or silent online settle as approved).
pub(super) fn settle_card(
    db: &Connection,
    terminal: &str,
    ev: &PosEvent,
    now: u64,
    cfg: &HostConfig,
) -> Result<Notify, HostError> {
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
) -> Result<Notify, HostError> {
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
    let (status, reason) = match verdict {
        Ok(()) => (SettlementStatus::Settled, None),
        Err(reason) => {
            log::warn!(
                "host: {what} {} from {terminal} rejected: {reason}",
                ev.txn_id
            );
            (SettlementStatus::Rejected, Some(reason))
        }
    };
    Ok(Notify::Settlement(SettlementNotify {
        txn_id: ev.txn_id.clone(),
        status,
        reason,
    }))
}

/// Verifies an offline sale again at the host: signatures and issuer key, validity and
/// freshness against the terminal's approval time, the per-user counter across all terminals,
/// the credential's maximum. Records the ledger entry and returns the `notify` to send.
pub(super) fn settle_offline(
    db: &Connection,
    terminal: &str,
    ev: &PosEvent,
    now: u64,
    cfg: &HostConfig,
) -> Result<Notify, HostError> {
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

#[cfg(test)]
mod tests {
    use crate::host::events::{store_event, Stored};
    use crate::host::test_support::{card_cfg, event, ledger_state, mem_db, sealed};
    use posd_core::protocol::Event as PosEvent;
    use serde_json::json;

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
            Stored::Notify(n) => serde_json::to_value(n).unwrap(),
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
}
