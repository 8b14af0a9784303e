//! The ledger audit a test ends with: nobody charged without a sale, no sale left uncharged,
//! no gaps in the journals received, and every batch close as the host reconciled it.

use super::HostError;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

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
