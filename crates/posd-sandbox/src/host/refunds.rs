//! Refunds of charged payments: idempotent per terminal by `refund_id`, never more than was
//! charged; declined refunds are stored too so a repeat gets the same answer.

use super::reply::{declined, host_ref_of, resp, Reply};
use super::HostError;
use posd_core::protocol::{Request, RespStatus};
use rusqlite::{params, Connection, OptionalExtension};

/// (state, reason, host_ref, original txn_id, amount) of a refund already answered.
type StoredRefund = (String, Option<String>, Option<String>, String, i64);

/// `refund`: idempotent by `refund_id`; declined ones are stored too.
pub(super) fn refund(
    db: &Connection,
    terminal: &str,
    req: &Request,
    now: u64,
) -> Result<Reply, HostError> {
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

#[cfg(test)]
mod tests {
    use crate::host::audit;
    use crate::host::test_support::{ask, mem_db, req};
    use posd_core::protocol::{Op, Request, RespStatus};

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
}
