//! Retention (issue 14): what the journal may forget, in small steps, and how the space goes
//! back to the file system — so the database is bounded by configuration, not by history.
//!
//! A transaction may be pruned (its `txns` row, every journal row and its print jobs) only when
//! all of these hold, checked row by row inside the step's SQLite transaction:
//! - its first event belongs to a batch whose close the host **reconciled** (state
//!   `reconciled`), and that reconciliation was acknowledged by the host;
//! - every event of it is acknowledged (`seq <= acked_seq`: nothing of it is in the outbox);
//! - it is final: not in flight, not an offline sale waiting for settlement;
//! - its last change is older than `[retention] days`, and a sale is also older than
//!   `refund_window_days` with no refund of it in flight;
//! - no print job of it is still waiting.
//!
//! The current batch has no close, so nothing of it can match. What must outlive the rows is
//! not in them: `meta.last_seq` (the next `seq` never goes back), `p1_counters`, the fleet's
//! version (meta `fleet.*`) and command records (`fleet_cmds`), and today's per-user offline
//! totals (`days >= 2` keeps every row they sum).
//!
//! Walk: `meta.retention.cursor` is the highest `seq` examined in this sweep. A step finds the
//! first batch close after it (partial index `journal_closed`), and if that batch qualifies
//! examines at most `max_rows` journal rows of it; when a batch is done its close is pruned
//! too if nothing of the batch is left. A batch too young ends the sweep, and the cursor goes
//! back to 0 so the next sweep looks again at what was kept (an offline sale settled since,
//! a batch reconciled late).
//!
//! Space: new databases are created with `auto_vacuum = INCREMENTAL`; each step that deleted
//! something runs `incremental_vacuum`, and [`Db::reclaim`] checkpoints with `TRUNCATE` at quiet
//! times, which is when the file actually shrinks. An older database is converted once by
//! [`Db::convert_auto_vacuum`] (a full `VACUUM`).

use super::{meta_u64, Db, StoreError};
use posd_core::txn::{Millis, TxnKind, TxnState};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};

/// Longest the write-ahead log is left on disk after a checkpoint resets it.
pub const WAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;
/// Pages given back per `incremental_vacuum` call (4 MiB of 4 KiB pages).
const VACUUM_PAGES: u32 = 1024;

/// Free-space thresholds the journal itself acts on (acks checkpoint the log below `low`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLimits {
    /// Below this many free bytes the disk is low: acks checkpoint the log before and after.
    pub low_bytes: u64,
}

impl Default for DiskLimits {
    fn default() -> Self {
        DiskLimits {
            low_bytes: 256 << 20,
        }
    }
}

/// What one prune step may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRules {
    /// Transactions last changed before this (Unix ms) may go.
    pub cutoff: Millis,
    /// Sales created before this may go (the refund window; never later than `cutoff`).
    pub sale_cutoff: Millis,
    /// Journal rows examined at most.
    pub max_rows: u32,
}

impl PruneRules {
    /// The rules at `now` for `days` of retention and a refund window of `refund_days`.
    pub fn at(now: Millis, days: u32, refund_days: u32, max_rows: u32) -> PruneRules {
        let day = 86_400_000u64;
        let cutoff = now.saturating_sub(u64::from(days) * day);
        let sale_cutoff = cutoff.min(now.saturating_sub(u64::from(refund_days) * day));
        PruneRules {
            cutoff,
            sale_cutoff,
            max_rows: max_rows.max(1),
        }
    }
}

/// What one prune step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    pub txns: u64,
    pub journal_rows: u64,
    pub print_jobs: u64,
    /// Journal rows looked at.
    pub scanned: u64,
    /// Another step now would find more to look at (false: the sweep is over).
    pub more: bool,
}

/// Sizes of the journal's files and its free pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbSize {
    pub db_bytes: u64,
    pub wal_bytes: u64,
    pub free_pages: u64,
    pub page_size: u64,
    /// `PRAGMA auto_vacuum`: 0 none, 1 full, 2 incremental.
    pub auto_vacuum: i64,
    pub oldest_txn_at: Option<Millis>,
}

/// (free bytes for unprivileged writers, total bytes) of the file system holding `path`.
pub fn free_space(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the
    // right type; statvfs fills it in on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the struct.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize as u64;
    Ok((
        (st.f_bavail as u64).saturating_mul(frsize),
        (st.f_blocks as u64).saturating_mul(frsize),
    ))
}

/// Called by [`Db::open`] before the first migration of a new database: the file can shrink.
pub(super) fn prepare_new(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables == 0 {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    Ok(())
}

/// Called by [`Db::open`] on every open: the log is cut back to [`WAL_SIZE_LIMIT`] whenever a
/// checkpoint resets it.
pub(super) fn tune(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    let _: i64 = conn.query_row(
        &format!("PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}"),
        [],
        |r| r.get(0),
    )?;
    Ok(())
}

impl Db {
    /// Free-space thresholds the journal acts on.
    pub fn set_disk_limits(&mut self, limits: DiskLimits) {
        self.disk = limits;
    }

    /// The database file's path (None: in memory).
    pub fn path(&self) -> Option<PathBuf> {
        self.conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }

    /// Free bytes on the journal's file system (None: unknown).
    fn free_bytes(&self) -> Option<u64> {
        let path = self.path()?;
        free_space(path.parent()?).ok().map(|(free, _)| free)
    }

    /// [`Db::ack`] that does not let the write-ahead log grow on a low disk: below
    /// `low_bytes` free the log is checkpointed (and truncated) before the ack — giving back
    /// the space a grown log holds — and after it, so an ack can still be recorded when money
    /// no longer can.
    pub fn ack_bounded(&mut self, upto: u64) -> Result<super::AckOutcome, StoreError> {
        let low = self.free_bytes().is_some_and(|f| f < self.disk.low_bytes);
        if low && upto > self.acked_seq {
            // Best effort: a busy or failed checkpoint still leaves the ack to try.
            let _ = self.checkpoint_truncate();
        }
        let out = self.ack(upto)?;
        if low && out.dropped > 0 {
            let _ = self.checkpoint_truncate();
        }
        Ok(out)
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`: (busy, log frames, frames checkpointed).
    pub fn checkpoint_truncate(&mut self) -> Result<(i64, i64, i64), StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?)
    }

    /// Sizes of the database, its log and its free pages.
    pub fn db_size(&self) -> Result<DbSize, StoreError> {
        let pragma = |name: &str| -> Result<i64, StoreError> {
            Ok(self
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
        };
        let page_size = pragma("page_size")?.max(0) as u64;
        let pages = pragma("page_count")?.max(0) as u64;
        let free_pages = pragma("freelist_count")?.max(0) as u64;
        let auto_vacuum = pragma("auto_vacuum")?;
        let (db_bytes, wal_bytes) = match self.path() {
            Some(p) => {
                let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                let mut wal = p.clone().into_os_string();
                wal.push("-wal");
                (len(&p), len(Path::new(&wal)))
            }
            None => (pages * page_size, 0),
        };
        let oldest: Option<i64> =
            self.conn
                .query_row("SELECT MIN(created_at) FROM txns", [], |r| r.get(0))?;
        Ok(DbSize {
            db_bytes,
            wal_bytes,
            free_pages,
            page_size,
            auto_vacuum,
            oldest_txn_at: oldest.map(|o| o.max(0) as u64),
        })
    }

    /// One bounded prune step (module docs). Runs with `synchronous=NORMAL`: a prune lost to
    /// a power cut is simply done again.
    pub fn prune_step(&mut self, rules: PruneRules) -> Result<PruneOutcome, StoreError> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let result = self.prune_step_inner(rules);
        // Money commits are FULL again whatever happened above.
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let out = result?;
        if out.txns > 0 {
            self.incremental_vacuum(VACUUM_PAGES)?;
        }
        Ok(out)
    }

    /// Gives up to `pages` free pages back (they leave the file at the next checkpoint).
    pub fn incremental_vacuum(&mut self, pages: u32) -> Result<(), StoreError> {
        if self
            .conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0))?
            != 2
        {
            return Ok(());
        }
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let r = self
            .conn
            .execute_batch(&format!("PRAGMA incremental_vacuum({pages})"));
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(r?)
    }

    /// At a quiet time: every free page back to the file system, then the log checkpointed
    /// and truncated. Returns the sizes after.
    pub fn reclaim(&mut self) -> Result<DbSize, StoreError> {
        loop {
            let before: i64 = self
                .conn
                .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
            self.incremental_vacuum(VACUUM_PAGES)?;
            let after: i64 = self
                .conn
                .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
            if after == 0 || after >= before {
                break;
            }
        }
        self.checkpoint_truncate()?;
        self.db_size()
    }

    /// Switches a database made before migration #9 to `auto_vacuum = INCREMENTAL`. That takes
    /// one full `VACUUM`: it rewrites the whole file (through a temporary copy and the log, so
    /// it needs about twice the database's size free) and holds the writer thread meanwhile.
    /// Refused (Ok(false)) unless `free_bytes` is at least three times the database.
    pub fn convert_auto_vacuum(&mut self, free_bytes: u64) -> Result<bool, StoreError> {
        let size = self.db_size()?;
        if size.auto_vacuum == 2 {
            return Ok(false);
        }
        if free_bytes
            < size
                .db_bytes
                .saturating_add(size.wal_bytes)
                .saturating_mul(3)
        {
            return Ok(false);
        }
        self.conn
            .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
        self.checkpoint_truncate()?;
        Ok(true)
    }

    fn prune_step_inner(&mut self, rules: PruneRules) -> Result<PruneOutcome, StoreError> {
        let acked = self.acked_seq as i64;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut out = PruneOutcome::default();
        let cursor = meta_u64(&tx, "retention.cursor")? as i64;
        let set_cursor = |tx: &rusqlite::Transaction<'_>, c: i64| -> Result<(), StoreError> {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('retention.cursor', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [c.to_string()],
            )?;
            Ok(())
        };
        // The first batch close after the cursor.
        let next: Option<(i64, String)> = tx
            .query_row(
                "SELECT j.seq, j.txn_id FROM journal j JOIN txns t ON t.id = j.txn_id
                 WHERE j.state = 'closed' AND j.seq > ?1 AND t.kind = 'batch_close'
                 ORDER BY j.seq LIMIT 1",
                [cursor],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((close_seq, close_id)) = next else {
            // Only the open batch is left: the sweep is over.
            set_cursor(&tx, 0)?;
            tx.commit()?;
            return Ok(out);
        };
        let close = super::txn_by_id(&tx, &close_id)?
            .ok_or_else(|| StoreError::BadRow(format!("batch close {close_id} has no row")))?;
        if close.created_at >= rules.cutoff {
            // This batch and every later one are too young: the sweep is over.
            set_cursor(&tx, 0)?;
            tx.commit()?;
            return Ok(out);
        }
        let close_last_seq = max_seq(&tx, &close_id)?;
        if close.state != TxnState::Reconciled || close_last_seq > acked {
            // Not reconciled (or not yet known to the host to be): nothing of it goes. The
            // next sweep looks again.
            set_cursor(&tx, close_seq)?;
            tx.commit()?;
            out.more = true;
            return Ok(out);
        }
        let rows: Vec<(i64, String)> = {
            let mut st = tx.prepare_cached(
                "SELECT seq, txn_id FROM journal WHERE seq > ?1 AND seq < ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = st.query_map(params![cursor, close_seq, rules.max_rows], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        out.scanned = rows.len() as u64;
        for (seq, txn_id) in &rows {
            let first: bool = tx.query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM journal WHERE txn_id = ?1 AND seq < ?2)",
                params![txn_id, seq],
                |r| r.get(0),
            )?;
            if !first {
                // A later event of a transaction of an earlier batch.
                continue;
            }
            if prunable(&tx, txn_id, rules, acked)? {
                remove_txn(&tx, txn_id, &mut out)?;
            }
        }
        if rows.len() as u32 == rules.max_rows {
            if let Some((seq, _)) = rows.last() {
                set_cursor(&tx, *seq)?;
            }
        } else {
            // The whole batch was looked at: its close goes too when nothing of it is left.
            let from_seq = close
                .detail
                .as_ref()
                .and_then(|d| d.get("from_seq"))
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            let left: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM journal WHERE seq > ?1 AND seq < ?2)",
                params![from_seq, close_seq],
                |r| r.get(0),
            )?;
            let printing: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM print_jobs WHERE txn_id = ?1
                                  AND state IN ('queued', 'sending'))",
                [&close_id],
                |r| r.get(0),
            )?;
            if !left && !printing && close.updated_at < rules.cutoff {
                remove_txn(&tx, &close_id, &mut out)?;
            }
            set_cursor(&tx, close_seq)?;
        }
        tx.commit()?;
        out.more = true;
        Ok(out)
    }
}

/// The highest seq of a transaction's events.
fn max_seq(tx: &rusqlite::Transaction<'_>, txn_id: &str) -> Result<i64, StoreError> {
    Ok(tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM journal WHERE txn_id = ?1",
        [txn_id],
        |r| r.get(0),
    )?)
}

/// Whether a member of a reconciled batch may go (module docs).
fn prunable(
    tx: &rusqlite::Transaction<'_>,
    txn_id: &str,
    rules: PruneRules,
    acked: i64,
) -> Result<bool, StoreError> {
    let Some(t) = super::txn_by_id(tx, txn_id)? else {
        return Ok(false);
    };
    if t.kind == TxnKind::BatchClose
        || t.state.in_flight()
        || t.state == TxnState::ApprovedOffline
        || t.updated_at >= rules.cutoff
    {
        return Ok(false);
    }
    if t.kind == TxnKind::Sale {
        if t.created_at >= rules.sale_cutoff {
            return Ok(false);
        }
        let refund_in_flight: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM txns WHERE kind = 'refund'
                AND json_extract(detail, '$.original') = ?1
                AND state IN ('authorizing', 'pending', 'reversing'))",
            [txn_id],
            |r| r.get(0),
        )?;
        if refund_in_flight {
            return Ok(false);
        }
    }
    if max_seq(tx, txn_id)? > acked {
        return Ok(false);
    }
    let printing: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM print_jobs WHERE txn_id = ?1 AND state IN ('queued', 'sending'))",
        [txn_id],
        |r| r.get(0),
    )?;
    Ok(!printing)
}

fn remove_txn(
    tx: &rusqlite::Transaction<'_>,
    txn_id: &str,
    out: &mut PruneOutcome,
) -> Result<(), StoreError> {
    out.journal_rows += tx.execute("DELETE FROM journal WHERE txn_id = ?1", [txn_id])? as u64;
    out.print_jobs += tx.execute("DELETE FROM print_jobs WHERE txn_id = ?1", [txn_id])? as u64;
    out.txns += tx.execute("DELETE FROM txns WHERE id = ?1", [txn_id])? as u64;
    Ok(())
}
