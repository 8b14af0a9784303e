//! Merchant-presented orders (`order`, then `query`/`close`): the code the terminal shows, the
//! sandbox customer or a wallet paying it (on `{prefix}/sandbox/pay`), and the `payment` notify.

use super::reply::{declined, host_ref_of, resp, Effects, Reply};
use super::{HostConfig, HostError};
use posd_core::codes;
use posd_core::protocol::{Notify, Op, PaymentNotify, PaymentStatus, Request, RespStatus};
use rusqlite::{params, Connection, OptionalExtension};

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

/// `order`: registers the order once per txn_id and answers `pending` with the code to show.
pub(super) fn order_open(
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
pub(super) fn order_answer(
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

/// `close` of a transaction that never was an order: recorded closed, so it is never paid.
pub(super) fn close_unordered(
    db: &Connection,
    terminal: &str,
    req: &Request,
    now: u64,
) -> Result<Reply, HostError> {
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
    Ok(declined(req, "closed unpaid"))
}

/// What paying an order came to.
#[derive(Debug)]
pub(super) enum PayOutcome {
    Paid {
        terminal: String,
        host_ref: String,
        /// The `notify` to send the terminal (None: behaviour 33, the notify is lost).
        notify: Option<Notify>,
    },
    Refused(String),
}

/// Pays an open order: order `paid` and a `charged` ledger row (behaviour `mpm`), inside the
/// caller's transaction. A closed or paid order is refused.
pub(super) fn pay_order(
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
        Notify::Payment(PaymentNotify {
            txn_id: txn_id.to_string(),
            status: PaymentStatus::Paid,
            host_ref: Some(href.clone()),
            amount: Some(amount),
        })
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
pub(super) fn wallet_pay(
    db: &Connection,
    payload: &[u8],
    now: u64,
) -> Result<(serde_json::Value, Option<(String, Notify)>), HostError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::audit;
    use crate::host::test_support::{ask, cfg, ledger_state, mem_db, req};
    use posd_core::codes::emv_mpm::{generate_dynamic, MerchantAccount, MpmMerchant};
    use serde_json::json;

    fn order(txn: &str, amount: i64, code: Option<&str>) -> Request {
        let mut r = req(&format!("o-{txn}"), Op::Order, txn);
        r.amount = Some(amount);
        r.currency = Some("CNY".into());
        r.method = Some("merchant_qr".into());
        r.code = code.map(str::to_string);
        r
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
        let n = serde_json::to_value(n).unwrap();
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
        let n = serde_json::to_value(n.unwrap().1).unwrap();
        assert_eq!(n["txn_id"], txn);
    }
}
