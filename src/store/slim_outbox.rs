//! The outbox without the index nothing reads: migration #1 declared `event_id` UNIQUE, which
//! gave the outbox a second b-tree (`sqlite_autoindex_outbox_1`). Events are found by `seq`
//! only, and an event id is a fresh UUIDv7 made by the same SQLite transaction that inserts it,
//! so the index found nothing and checked nothing — but every event wrote it and every ack
//! deleted from it: about a fifth of posd's CPU per event in the drain (issue 18,
//! docs/performance.md "The outbox's second index (stop 31)").
//!
//! SQLite cannot drop a constraint's index, so the table is copied without it, in one SQLite
//! transaction, when the journal is opened — and only while the copy is small: a journal
//! opened with a large backlog, or on a disk with too little room for the copy, keeps the
//! index (it costs speed, never correctness) and is slimmed at a later open, once the host has
//! taken the backlog. A fresh journal is slimmed at its first open, when the outbox is empty.

use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

use super::StoreError;

/// The constraint's index, as SQLite names it.
const INDEX: &str = "sqlite_autoindex_outbox_1";

/// Most events copied at an open (about 6 MB at a typical event's 300 B).
pub(super) const MAX_ROWS: i64 = 20_000;
/// Most payload bytes copied at an open.
pub(super) const MAX_BYTES: i64 = 16 << 20;
/// The copy goes ahead only with this many times its bytes free (the new table, the log that
/// carries it, and room to spare for money).
const FREE_FACTOR: u64 = 4;

const REBUILD: &str = "
CREATE TABLE outbox_slim (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO outbox_slim (seq, event_id, payload, created_at)
    SELECT seq, event_id, payload, created_at FROM outbox ORDER BY seq;
DROP TABLE outbox;
ALTER TABLE outbox_slim RENAME TO outbox;
";

/// What [`slim`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slimmed {
    /// The outbox has no second index (slimmed before).
    Already,
    /// Copied now, with this many events.
    Now(i64),
    /// Left for a later open: the outbox holds more than [`MAX_ROWS`] events or
    /// [`MAX_BYTES`] bytes, or the disk has too little room for the copy.
    Later,
}

/// Copies the outbox without its `event_id` index when that is cheap (see the module's doc).
/// `dir`: the journal's directory, for its free space (None: not checked).
pub(super) fn slim(conn: &mut Connection, dir: Option<&Path>) -> Result<Slimmed, StoreError> {
    let indexed: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)",
        [INDEX],
        |r| r.get(0),
    )?;
    if !indexed {
        return Ok(Slimmed::Already);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // The running counter first (one row), so a large backlog costs nothing at each start;
    // then the bytes, reading at most MAX_ROWS + 1 rows whatever the counter says.
    if super::counter(&tx, "outbox_pending")? > MAX_ROWS {
        return Ok(Slimmed::Later);
    }
    let (rows, bytes): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(octet_length(payload)), 0)
         FROM (SELECT payload FROM outbox ORDER BY seq LIMIT ?1)",
        [MAX_ROWS + 1],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if rows > MAX_ROWS || bytes > MAX_BYTES {
        return Ok(Slimmed::Later);
    }
    let needed = (bytes.max(0) as u64 + rows.max(0) as u64 * 64) * FREE_FACTOR;
    if let Some(dir) = dir {
        if super::retention::free_space(dir).is_ok_and(|(free, _)| free < needed) {
            return Ok(Slimmed::Later);
        }
    }
    tx.execute_batch(REBUILD)?;
    tx.commit()?;
    Ok(Slimmed::Now(rows))
}
