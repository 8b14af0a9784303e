//! The journal keyed by `seq`: migration #1 made it `id INTEGER PRIMARY KEY AUTOINCREMENT`
//! with `seq INTEGER NOT NULL UNIQUE`, so every event changed three b-trees (the table, the
//! `seq` constraint's index, and `sqlite_sequence` for the AUTOINCREMENT) where a table keyed by
//! `seq` changes one. Every query finds events by `seq` or `txn_id`; `id` was never read. Two of
//! a P1 sale's 13 pages and four of an online sale's 22 (issue 18: each page is a log frame
//! written and synced at the sale's commit; docs/performance.md, stop 38).
//!
//! SQLite cannot change a table's key in place, so the table is copied, with its other
//! indexes made again from their own SQL, in one SQLite transaction when the journal is
//! opened — and only while the copy is small and the disk roomy, as the outbox's copy
//! ([`super::slim_outbox`]). A journal too long to copy at a start keeps its layout: every
//! statement posd runs reads and writes both alike (it costs speed, never correctness), and it
//! is copied at a later start if retention has brought it under the limit. A fresh journal is
//! copied at its first open, while it is empty.

use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

use super::slim_outbox::{columns, no_room, Slimmed};
use super::StoreError;

/// Most events copied at an open: 90 days (retention's default) of ~2,700 events a day. A row
/// is ~70 B and ~50 B more in its three indexes; 100,000 were copied in 0.32 s on the development
/// VM (docs/performance.md, stop 38): this many in under a second there, a few seconds on a
/// slow eMMC, well inside the unit's start timeout.
pub(super) const MAX_ROWS: i64 = 250_000;
/// The most bytes a copy writes per event, table and indexes, generously.
const EVENT_BYTES: u64 = 256;

/// Free disk a copy of up to `rows` events needs: four times the most it writes (the new table
/// and the log that carries it) on top of the journal's "low disk" mark: on a low disk the
/// room is for money. At [`MAX_ROWS`], 244 MiB more than the mark.
fn needed_free(rows: i64) -> u64 {
    4 * EVENT_BYTES * rows.max(0) as u64 + super::DiskLimits::default().low_bytes
}

/// The journal's columns as migration #1 made them: the only layout this copy knows.
const COLUMNS: [&str; 5] = ["id", "txn_id", "state", "at", "seq"];

/// The journal copied into a table keyed by `seq`, then put in its place (its indexes are
/// made again by the caller).
const COPY_SQL: &str = "CREATE TABLE journal_copy (
         seq INTEGER PRIMARY KEY,
         txn_id TEXT NOT NULL,
         state TEXT NOT NULL,
         at INTEGER NOT NULL
     ) STRICT;
     INSERT INTO journal_copy (seq, txn_id, state, at)
         SELECT seq, txn_id, state, at FROM journal ORDER BY seq;
     DROP TABLE journal;
     ALTER TABLE journal_copy RENAME TO journal;";

/// Copies the journal keyed by `seq` when that is cheap (see the module's doc). `dir`: the
/// journal's directory, for its free space.
pub(super) fn slim(conn: &mut Connection, dir: &Path) -> Result<Slimmed, StoreError> {
    let columns = columns(conn, "journal")?;
    if columns.first().map(String::as_str) == Some("seq") {
        return Ok(Slimmed::Already);
    }
    if columns != COLUMNS {
        return Ok(Slimmed::Later(format!(
            "its columns ({}) are not the ones this copy knows",
            columns.join(", ")
        )));
    }
    // An upper bound of the rows from two ends of the table's b-tree (ids only grow): what a
    // start costs whatever the journal's age.
    let span: i64 = conn.query_row(
        "SELECT COALESCE(MAX(id) - MIN(id) + 1, 0) FROM journal",
        [],
        |r| r.get(0),
    )?;
    if span > MAX_ROWS {
        return Ok(Slimmed::Later(format!(
            "up to {span} events, more than {MAX_ROWS}"
        )));
    }
    if let Some(why) = no_room(dir, needed_free(span)) {
        return Ok(Slimmed::Later(why));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // The other indexes, as they were declared (a constraint's own index has no SQL).
    let indexes: Vec<String> = tx
        .prepare(
            "SELECT sql FROM sqlite_master
             WHERE type = 'index' AND tbl_name = 'journal' AND sql IS NOT NULL ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let rows: i64 = tx.query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))?;
    tx.execute_batch(COPY_SQL)?;
    for sql in &indexes {
        tx.execute_batch(sql)?;
    }
    tx.commit()?;
    // The old table's pages go back to the file system in `Db::slim`, after both copies.
    Ok(Slimmed::Now(rows))
}
