//! The outbox without the index nothing reads: migration #1 declared `event_id` UNIQUE, which
//! gave the outbox a second b-tree (`sqlite_autoindex_outbox_1`). Events are found by `seq`
//! only, and an event id is a fresh UUIDv7 (`write_states`), so the index was never read and
//! never refused a row — but every event wrote it and every ack deleted from it: a quarter of
//! the journal's instructions per drained event (issue 18, docs/performance.md "The drain's
//! journal work (stop 31)").
//!
//! SQLite cannot drop a constraint's index, so the table is copied without it, in one SQLite
//! transaction, when the journal is opened — and only while the copy is small and the disk
//! roomy (32 MB on top of the low-disk mark): a journal opened with a large backlog, on a low disk, or whose outbox has columns
//! this copy does not know, keeps the index (it costs speed, never correctness) and is slimmed
//! at a later start, once the host has taken the backlog. A fresh journal is slimmed at its
//! first open, while the outbox is empty.

use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

use super::StoreError;

/// The constraint's index, as SQLite names it.
const INDEX: &str = "sqlite_autoindex_outbox_1";

/// Most events copied at an open (about 6 MB at a typical event's 300 B).
pub(super) const MAX_ROWS: i64 = 20_000;
/// Most payload bytes copied at an open: on a slow eMMC a second or two, well inside the unit's
/// start timeout.
pub(super) const MAX_BYTES: i64 = 8 << 20;
/// Free disk the copy needs: four times the most it copies (the new table and the log that
/// carries it) on top of the journal's "low disk" mark ([`super::DiskLimits`]'s default): on a
/// low disk the room is for money, not for speed. Checked before the outbox is read, so a low
/// disk costs one `statvfs` at a start.
pub(super) fn needed_free() -> u64 {
    4 * MAX_BYTES as u64 + super::DiskLimits::default().low_bytes
}

/// The outbox's columns as migration #1 made them: the only table this copy knows how to copy.
const COLUMNS: [&str; 4] = ["seq", "event_id", "payload", "created_at"];

/// The outbox copied into a table declared with `event_id TEXT NOT NULL {event_id}` (empty:
/// posd's; `UNIQUE`: migration #1's, which the tests make again), then put in its place.
pub(super) fn copy_sql(event_id: &str) -> String {
    format!(
        "CREATE TABLE outbox_copy (
             seq INTEGER PRIMARY KEY,
             event_id TEXT NOT NULL {event_id},
             payload TEXT NOT NULL,
             created_at INTEGER NOT NULL
         ) STRICT;
         INSERT INTO outbox_copy (seq, event_id, payload, created_at)
             SELECT seq, event_id, payload, created_at FROM outbox ORDER BY seq;
         DROP TABLE outbox;
         ALTER TABLE outbox_copy RENAME TO outbox;"
    )
}

/// What a copy at open ([`slim`], [`super::slim_journal::slim`]) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Slimmed {
    /// The table has its slim layout (copied before, or made so).
    Already,
    /// Copied now, with this many events.
    Now(i64),
    /// Left for a later start, for this reason (said in the log).
    Later(String),
}

/// A table's column names in their order.
pub(super) fn columns(conn: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    Ok(conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

/// Why a copy that wants `needed` bytes free in `dir` cannot run now; None when it can.
pub(super) fn no_room(dir: &Path, needed: u64) -> Option<String> {
    match super::retention::free_space(dir) {
        Ok((free, _)) if free >= needed => None,
        Ok((free, _)) => Some(format!(
            "{} MB free, the copy wants {} MB",
            free >> 20,
            needed >> 20
        )),
        Err(e) => Some(format!(
            "the free space of {} is unknown ({e})",
            dir.display()
        )),
    }
}

/// Copies the outbox without its `event_id` index when that is cheap (see the module's doc).
/// `dir`: the journal's directory, for its free space.
pub(super) fn slim(conn: &mut Connection, dir: &Path) -> Result<Slimmed, StoreError> {
    let indexed: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1)",
        [INDEX],
        |r| r.get(0),
    )?;
    if !indexed {
        return Ok(Slimmed::Already);
    }
    let columns = columns(conn, "outbox")?;
    if columns != COLUMNS {
        return Ok(Slimmed::Later(format!(
            "its columns ({}) are not the ones this copy knows",
            columns.join(", ")
        )));
    }
    if let Some(why) = no_room(dir, needed_free()) {
        return Ok(Slimmed::Later(why));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // The running counter first (one row), so a large backlog costs nothing at each start;
    // then the bytes, reading at most MAX_ROWS + 1 rows whatever the counter says.
    let pending = super::counter(&tx, "outbox_pending")?;
    if pending > MAX_ROWS {
        return Ok(Slimmed::Later(format!(
            "{pending} events wait, more than {MAX_ROWS}"
        )));
    }
    let (rows, bytes): (i64, i64) = tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(octet_length(payload)), 0)
         FROM (SELECT payload FROM outbox ORDER BY seq LIMIT ?1)",
        [MAX_ROWS + 1],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if rows > MAX_ROWS || bytes > MAX_BYTES {
        return Ok(Slimmed::Later(format!(
            "{rows} events of {} MB wait, more than {MAX_ROWS} or {} MB",
            bytes >> 20,
            MAX_BYTES >> 20
        )));
    }
    tx.execute_batch(&copy_sql(""))?;
    tx.commit()?;
    // The old table's pages go back to the file system in `Db::slim`, after both copies.
    Ok(Slimmed::Now(rows))
}
