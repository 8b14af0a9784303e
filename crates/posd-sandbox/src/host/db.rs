//! The host's SQLite database: one schema shared by every host instance on the same file.

use super::HostError;
use rusqlite::config::DbConfig;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

pub(super) const SCHEMA: &str = r#"
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
-- A batch close finds each member's events by (terminal, txn_id): without this index SQLite
-- walked the terminal's whole history for every member (the (terminal, seq) index), so a close
-- took 363 s at 43,000 events (the year soak's day 11) and 0.04 s with it.
CREATE INDEX IF NOT EXISTS events_terminal_txn ON events(terminal, txn_id, seq);
-- Batch closes that arrived before every event of their batch (a reconnect can deliver the close
-- ahead of events the broker lost with the host's session; the terminal sends those again):
-- reconciled when the missing events have arrived, never on a partial journal.
CREATE TABLE IF NOT EXISTS deferred_closes (
    terminal TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (terminal, seq)
);
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
    state TEXT NOT NULL,          -- pending | charged | declined | reversed | rejected | voided
    queries INTEGER NOT NULL DEFAULT 0,
    host_ref TEXT,
    reason TEXT,
    masked_pan TEXT,              -- cards: first 6 and last 4 only, never the PAN
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
-- Merchant-presented orders (`order`): open until paid or closed; a closed order is never paid.
CREATE TABLE IF NOT EXISTS orders (
    txn_id TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    reference TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    behaviour TEXT NOT NULL,
    state TEXT NOT NULL,          -- open | paid | closed
    qr TEXT,
    host_ref TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_ref ON orders(terminal, reference);
-- Refunds by their idempotency key; declined ones are kept too (same answer when repeated).
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    terminal TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    state TEXT NOT NULL,          -- approved | declined
    reason TEXT,
    host_ref TEXT,
    created_at INTEGER NOT NULL,
    -- Idempotency is per terminal: tills may choose their own refund ids.
    PRIMARY KEY (terminal, refund_id)
);
CREATE INDEX IF NOT EXISTS refunds_txn ON refunds(txn_id);
-- Batch closes (Z reports) and the host's reconciliation of them.
CREATE TABLE IF NOT EXISTS batches (
    txn_id TEXT PRIMARY KEY,
    terminal TEXT NOT NULL,
    batch_no INTEGER,
    from_seq INTEGER NOT NULL,
    upto_seq INTEGER NOT NULL,
    status TEXT NOT NULL,         -- reconciled | mismatch
    mismatches TEXT NOT NULL,     -- JSON [{key, terminal, host}]
    txns TEXT NOT NULL,           -- JSON [txn ids whose nets differ]
    host_net TEXT NOT NULL,       -- JSON {key: net}
    missing_events INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
"#;

/// Opens (creating) a host database. Host workers of one group share it and start together:
/// SQLite can answer "locked" at once, without waiting out the busy timeout, to a connection
/// that switches a new database to WAL or creates its tables while another one does (the
/// fleet simulation lost a worker so), so the whole opening is tried again for up to 10 s.
pub fn open_db(path: &Path) -> Result<Connection, HostError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match try_open_db(path) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10 + fastrand::u64(0..40)));
            }
            r => return Ok(r?),
        }
    }
}

fn try_open_db(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // Plans made once per cached statement: without the query planner stability guarantee
    // SQLite prepared some statements again whenever a bound value changed (the deferred
    // closes' range read, at every event: a fifth of a drain's host CPU).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host workers of one group start together on one new database: each of them opens it
    /// (one failing here left a fleet with one worker and a phase that counts two).
    #[test]
    fn workers_opening_one_new_database_together_all_open_it() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("host.sqlite");
            let start = std::sync::Arc::new(std::sync::Barrier::new(4));
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        open_db(&path).map(drop)
                    })
                })
                .collect();
            for w in workers {
                if let Err(e) = w.join().unwrap() {
                    panic!("round {round}: {e}");
                }
            }
        }
    }
}
