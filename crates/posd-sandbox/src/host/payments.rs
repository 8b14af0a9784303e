//! Online payments by payment code: `authorize`, `query` and `reverse` decided by the code's
//! last two digits ([`Behaviour`]), like card networks' test numbers.

use super::behaviour::Behaviour;
use super::cards::card_authorize;
use super::reply::{host_ref_of, resp, Reply};
use super::{HostConfig, HostError};
use posd_core::protocol::{Request, RespStatus};
use rusqlite::{params, Connection, OptionalExtension};

/// A transaction's ledger row as requests see it: (behaviour, state, queries, host_ref).
pub(super) type LedgerRow = (String, String, i64, Option<String>);

pub(super) fn ledger_row(db: &Connection, txn_id: &str) -> Result<Option<LedgerRow>, HostError> {
    Ok(db
        .query_row(
            "SELECT behaviour, state, queries, host_ref FROM ledger WHERE txn_id = ?1",
            [txn_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?)
}

fn set_state(db: &Connection, txn_id: &str, state: &str, now: u64) -> Result<(), HostError> {
    db.execute(
        "UPDATE ledger SET state = ?2, updated_at = ?3 WHERE txn_id = ?1",
        params![txn_id, state, now as i64],
    )?;
    Ok(())
}

/// `authorize`: by the card number for `method: "card"`, else by the payment code. `row` is the
/// transaction's ledger row, if it has one.
pub(super) fn authorize(
    db: &Connection,
    terminal: &str,
    req: &Request,
    row: Option<LedgerRow>,
    now: u64,
    cfg: &HostConfig,
) -> Result<Reply, HostError> {
    if let Some((_, state, _, href)) = row {
        // A second authorize for the same txn: report what happened, charge nothing new.
        let mut r = resp(req, status_of(&state));
        r.host_ref = href;
        return Ok(Reply::Now(r));
    }
    if req.method.as_deref() == Some("card") {
        return card_authorize(db, terminal, req, now, cfg);
    }
    // Any text may arrive as a txn_id: take characters, never slice bytes.
    let host_ref = host_ref_of('H', &req.txn_id);
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
        Behaviour::PendingThenApprove | Behaviour::PendingOnce | Behaviour::PendingForever => {
            ("pending", Reply::Now(resp(req, RespStatus::Pending)))
        }
        Behaviour::LostAnswer | Behaviour::Silent => ("charged", Reply::Never),
        Behaviour::LateAnswer => ("charged", {
            let mut r = resp(req, RespStatus::Approved);
            r.host_ref = Some(host_ref.clone());
            Reply::Later(now + cfg.late_ms, r)
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
    Ok(reply)
}

/// `query`: the ledger's state; pending behaviours confirm on a query, silent and late ones
/// never answer once charged; an unknown payment is `unknown` (no verdict), not declined.
pub(super) fn query(
    db: &Connection,
    req: &Request,
    row: Option<LedgerRow>,
    now: u64,
) -> Result<Reply, HostError> {
    let Some((b, state, queries, href)) = row else {
        // Not a verdict: with host workers sharing the load (`$share`), a query can overtake
        // its authorize on another worker; a final "declined" here would let that authorize
        // charge a sale the terminal already declined (found by fleet-sim, issue 20). The
        // terminal queries again and reverses at its deadline, which records the payment as
        // never having happened.
        let mut r = resp(req, RespStatus::Unknown);
        r.reason = Some("no such payment (yet)".into());
        return Ok(Reply::Now(r));
    };
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
        set_state(db, &req.txn_id, "charged", now)?;
        state = "charged".into();
    }
    Ok(match b {
        Behaviour::Silent | Behaviour::LateAnswer if state == "charged" => Reply::Never,
        _ => {
            let mut r = resp(req, status_of(&state));
            if state == "charged" {
                r.host_ref = href;
            }
            Reply::Now(r)
        }
    })
}

/// `reverse`: the payment is reversed; one that never reached us is recorded reversed.
pub(super) fn reverse(
    db: &Connection,
    terminal: &str,
    req: &Request,
    row: Option<LedgerRow>,
    now: u64,
) -> Result<Reply, HostError> {
    match row {
        Some(_) => set_state(db, &req.txn_id, "reversed", now)?,
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
    Ok(Reply::Now(resp(req, RespStatus::Approved)))
}

fn status_of(ledger_state: &str) -> RespStatus {
    match ledger_state {
        "charged" => RespStatus::Approved,
        "pending" => RespStatus::Pending,
        "declined" | "reversed" | "rejected" | "voided" => RespStatus::Declined,
        _ => RespStatus::Unknown,
    }
}
