//! Retention (issue 14): what the journal may forget, in small steps, and how the space goes
//! back to the file system — so the database is bounded by configuration, not by history.
//!
//! A transaction may be pruned (its `txns` row, every journal row and its print jobs) only when
//! all of these hold, checked row by row inside the step's SQLite transaction:
//! - its first event belongs to a batch whose close the host **reconciled** (state
//!   `reconciled`), and that reconciliation was acknowledged by the host;
//! - every event of it is acknowledged (`seq <= acked_seq`: nothing of it is in the outbox);
//! - it is final: not in flight, not an offline sale waiting for settlement;
//! - its last change is older than `[retention] days`, and a sale that can be refunded
//!   (approved or settled) is also older than `refund_window_days` with no refund in flight;
//! - no print job of it is still waiting.
//!
//! The current batch has no close, so nothing of it can match. What must outlive the rows is
//! not in them: the `last_seq` counter (the next `seq` never goes back), `p1_counters`, the fleet's
//! version (meta `fleet.*`) and command records (`fleet_cmds`). The per-user offline totals
//! (`p1_totals`) lose a pruned P1 sale's share with it, so they hold as many quarter hours as
//! the journal does; `days >= 2` keeps every row today's totals sum.
//!
//! Walk: `meta.retention.cursor` is the highest `seq` examined in this sweep. A step finds the
//! first batch close after it (partial index `journal_closed`), and if that batch qualifies
//! examines at most `max_rows` journal rows of it; when a batch is done its close is pruned
//! too if nothing of the batch is left. A batch too young ends the sweep, and the cursor goes
//! back to 0 so the next sweep looks again at what was kept (an offline sale settled since,
//! a batch reconciled late).
//!
//! Space: new databases are created with `auto_vacuum = INCREMENTAL`; when a sweep is over,
//! [`Db::reclaim_step`] runs `incremental_vacuum` in bounded calls and a `TRUNCATE` checkpoint
//! follows, which is when the file actually shrinks. An older database is converted once by
//! [`Db::convert_auto_vacuum`] (a full `VACUUM`).

use super::{meta_u64, Db, StoreError};
use posd_core::txn::{Millis, TxnKind, TxnState};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest the write-ahead log is left on disk after a checkpoint resets it.
pub const WAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;
/// Events acknowledged per SQLite transaction on a low disk.
const ACK_CHUNK: u64 = 32;
/// The reserve file beside the journal (`posd.sqlite-reserve`): given up on a full disk so an
/// ack and a checkpoint can still be recorded.
pub const RESERVE_BYTES: u64 = 1 << 20;

/// The creation time of the first transaction journaled of those kept (`db_size`): the first
/// entry of `txns_first_seq` (migration #15 dropped the index on `created_at` every sale wrote).
pub(super) const OLDEST_TXN_SQL: &str =
    "SELECT created_at FROM txns WHERE first_seq IS NOT NULL ORDER BY first_seq LIMIT 1";
/// A sweep's next journal rows, in seq order up to the close. No `LIMIT ?` (SQLite prepares
/// such a statement again at every run, see the store's `OUTBOX_NEXT_SQL`): the rows come in
/// seq order from the index, and the step takes at most `max_rows` of them.
pub(super) const WALK_SQL: &str =
    "SELECT seq, txn_id FROM journal WHERE seq > ?1 AND seq < ?2 ORDER BY seq";
/// `wal_autocheckpoint` on a low disk, in bytes of the log (in pages of the journal's own size:
/// [`Db::pages`]).
pub const LOW_DISK_AUTOCHECKPOINT_BYTES: u64 = 64 * 1024;
/// Bytes given back per `incremental_vacuum` call (in pages: [`Db::pages`]), so one call holds
/// the writer thread only briefly; a call waiting for the writer ends it after one page.
const VACUUM_BYTES: u64 = 1024 * 1024;
/// The page size of a journal this version creates (`PRAGMA page_size`, SQLite's default is 4 KiB).
/// Every page a commit changes is a frame of the log that the commit writes and syncs (page + 24
/// bytes). A P1 sale's commit wrote 12.75 frames of 4 KiB (52.5 KB) and writes 17 of 1 KiB
/// (17.8 KB): on the bench's disk 30-90 µs off a P1 approval's p50, and a drain writes 8× fewer
/// bytes; a flash card wears by the bytes it programs. The price is the drain's acks, whose
/// deletes rebalance 4× as many pages (+46 % of the drain's journal instructions); see
/// docs/performance.md, stop 44. A journal keeps the size it was created with (SQLite cannot
/// change it in WAL mode); every limit the journal counts in pages is set from bytes
/// ([`Db::pages`]).
pub const PAGE_SIZE: u32 = 1024;

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
    /// A step also ends once it has worked this long (it always examines at least one row),
    /// so a sale that arrives meanwhile waits at most about this, whatever the journal's size,
    /// the disk's speed or how much aged at once. None: rows alone bound the step. Under a
    /// `Store`, a step also ends after the row it is on as soon as a call waits for the writer
    /// thread (a sale, `status`), so that call waits for one row and the step's commit.
    pub budget: Option<Duration>,
}

/// A call waits for the writer thread (`Store`; a `Db` opened alone has no callers).
pub(super) fn call_waiting(waiting: &std::sync::atomic::AtomicUsize) -> bool {
    waiting.load(std::sync::atomic::Ordering::SeqCst) > 0
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
            budget: None,
        }
    }

    /// The same rules, with each step also bounded in time (see [`PruneRules::budget`]).
    pub fn with_budget(self, budget: Duration) -> PruneRules {
        PruneRules {
            budget: Some(budget),
            ..self
        }
    }
}

/// What one prune step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    pub txns: u64,
    pub journal_rows: u64,
    pub print_jobs: u64,
    /// Events of the pruned transactions that had been set aside (`set_aside`).
    pub set_aside: u64,
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
// The casts are needed on 32-bit ARM, where statvfs' block counts are 32 bits.
#[allow(clippy::unnecessary_cast)]
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
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
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

    /// On a low disk the log is checkpointed every [`LOW_DISK_AUTOCHECKPOINT_BYTES`] instead of
    /// SQLite's 1000 pages: the database file then already holds nearly everything when the
    /// disk fills, so a checkpoint never needs more room than there is, and the log's own
    /// (small) file is reused from its start instead of growing.
    pub fn set_disk_low(&mut self, low: bool) -> Result<(), StoreError> {
        let pages = if low {
            self.pages(LOW_DISK_AUTOCHECKPOINT_BYTES)
        } else {
            self.autocheckpoint
        };
        let _: i64 =
            self.conn
                .query_row(&format!("PRAGMA wal_autocheckpoint = {pages}"), [], |r| {
                    r.get(0)
                })?;
        Ok(())
    }

    /// `wal_autocheckpoint` while the disk is not low (a checkpointer thread does the rest:
    /// `Store`); applied now.
    pub fn set_autocheckpoint(&mut self, pages: u32) -> Result<(), StoreError> {
        self.autocheckpoint = pages;
        let _: i64 =
            self.conn
                .query_row(&format!("PRAGMA wal_autocheckpoint = {pages}"), [], |r| {
                    r.get(0)
                })?;
        Ok(())
    }

    /// `bytes` in pages of this journal's size (at least one): what a pragma that counts pages
    /// is given for a limit set in bytes.
    pub fn pages(&self, bytes: u64) -> u32 {
        super::pages_of(bytes, self.page_size)
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
    /// `low_bytes` free the log is checkpointed with `RESTART` before the ack — so the ack's
    /// pages are written over the start of the log file already on disk rather than added to
    /// its end — and again after it, which puts them in the database file (an ack only frees
    /// pages there, it never needs the file to grow). So an ack is still recorded when the
    /// disk has no byte left for money.
    ///
    /// On a low disk the ack is also recorded in chunks of [`ACK_CHUNK`] events, each
    /// checkpointed, so the log never needs more than a few pages; and if the disk is full to
    /// the last byte, the reserve file ([`RESERVE_BYTES`], made when the journal is opened) is
    /// given up so the checkpoint and the ack have room. It is made again when space is back
    /// ([`Db::ensure_reserve`]).
    pub fn ack_bounded(&mut self, upto: u64) -> Result<super::AckOutcome, StoreError> {
        let low = self.free_bytes().is_some_and(|f| f < self.disk.low_bytes);
        // Nothing to drop, or an ack beyond the last seq (refused whole by `ack`).
        if !low || upto <= self.acked_seq || upto > self.last_seq {
            return self.ack(upto);
        }
        match self.ack_in_chunks(upto) {
            Err(StoreError::DiskFull) if self.release_reserve() => {
                log::warn!(
                    "the disk is full: the journal's reserve was given up to record an ack; \
                     free space on the state directory's file system"
                );
                self.ack_in_chunks(upto)
            }
            other => other,
        }
    }

    fn ack_in_chunks(&mut self, upto: u64) -> Result<super::AckOutcome, StoreError> {
        let from = self.acked_seq;
        // Best effort: a checkpoint that cannot finish still leaves the ack to try.
        let _ = self.checkpoint("RESTART");
        let mut at = from;
        while at < upto {
            at = upto.min(at + ACK_CHUNK);
            self.ack(at)?;
            let _ = self.checkpoint("RESTART");
        }
        Ok(super::AckOutcome {
            acked_seq: upto,
            dropped: upto - from,
        })
    }

    fn reserve_path(&self) -> Option<PathBuf> {
        let mut p = self.path()?.into_os_string();
        p.push("-reserve");
        Some(PathBuf::from(p))
    }

    /// Gives up the reserve file; whether there was one.
    fn release_reserve(&mut self) -> bool {
        self.reserve_path()
            .is_some_and(|p| std::fs::remove_file(p).is_ok())
    }

    /// Makes the reserve file (allocated, not sparse) when it is missing and the disk has
    /// room for it twice over. Whether it exists afterwards.
    pub fn ensure_reserve(&self) -> bool {
        let Some(p) = self.reserve_path() else {
            return false;
        };
        if p.exists() {
            return true;
        }
        if self.free_bytes().is_none_or(|f| f < 2 * RESERVE_BYTES) {
            return false;
        }
        let made = (|| -> std::io::Result<()> {
            use std::os::unix::io::AsRawFd;
            let f = std::fs::File::create(&p)?;
            // SAFETY: a valid open file descriptor and a length within off_t.
            let rc =
                unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, RESERVE_BYTES as libc::off_t) };
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            f.sync_all()
        })();
        if made.is_err() {
            let _ = std::fs::remove_file(&p);
        }
        made.is_ok()
    }

    /// `PRAGMA wal_checkpoint(mode)`: (busy, log frames, frames checkpointed).
    fn checkpoint(&mut self, mode: &str) -> Result<(i64, i64, i64), StoreError> {
        Ok(self
            .conn
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?)
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`: (busy, log frames, frames checkpointed).
    pub fn checkpoint_truncate(&mut self) -> Result<(i64, i64, i64), StoreError> {
        self.checkpoint("TRUNCATE")
    }

    /// Sizes of the database, its log and its free pages.
    pub fn db_size(&self) -> Result<DbSize, StoreError> {
        let pragma = |name: &str| -> Result<i64, StoreError> {
            Ok(self
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
        };
        let page_size = u64::from(self.page_size);
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
        // The first journaled transaction (an index's first entry, not a scan of every row).
        let oldest: Option<i64> = self
            .conn
            .prepare_cached(OLDEST_TXN_SQL)?
            .query_row([], |r| r.get(0))
            .optional()?;
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
        if let Ok(out) = &result {
            if out.set_aside > 0 {
                // What `status` shows, kept here so it never counts the table: the count, and
                // the newest set-aside event still kept (one probe of the key).
                self.set_aside.0 = self.set_aside.0.saturating_sub(out.set_aside);
                let last: Option<i64> =
                    self.conn
                        .query_row("SELECT MAX(seq) FROM set_aside", [], |r| r.get(0))?;
                self.set_aside.1 = last.unwrap_or(0).max(0) as u64;
            }
        }
        result
    }

    /// One bounded step of giving space back: up to [`VACUUM_BYTES`] of free pages moved out of
    /// the file's end. Returns the free pages left (0 when done, or when the journal predates
    /// incremental vacuum and cannot give them back).
    pub fn reclaim_step(&mut self) -> Result<u64, StoreError> {
        if self
            .conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0))?
            != 2
        {
            return Ok(0);
        }
        self.incremental_vacuum(self.pages(VACUUM_BYTES))?;
        let left: i64 = self
            .conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        Ok(left.max(0) as u64)
    }

    /// Gives up to `pages` free pages back (they leave the file at the next checkpoint); under
    /// a `Store`, at least one and no more once a call waits for the writer thread.
    pub fn incremental_vacuum(&mut self, pages: u32) -> Result<(), StoreError> {
        if self
            .conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0))?
            != 2
        {
            return Ok(());
        }
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The pragma frees one page per step of the statement: step it to the end, or stop
        // after a page once a call waits for the writer (the pages freed so far are committed
        // when the statement ends; the next step goes on).
        let waiting = self.waiting.clone();
        let r = (|| -> rusqlite::Result<()> {
            let mut st = self
                .conn
                .prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {
                if call_waiting(&waiting) {
                    break;
                }
            }
            Ok(())
        })();
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(r?)
    }

    /// Every free page back to the file system, then the log checkpointed and truncated, in
    /// one call (tools and tests; the daemon uses [`Db::reclaim_step`] between sales).
    /// Returns the sizes after.
    pub fn reclaim(&mut self) -> Result<DbSize, StoreError> {
        loop {
            let before: i64 = self
                .conn
                .pragma_query_value(None, "freelist_count", |r| r.get(0))?;
            self.incremental_vacuum(self.pages(VACUUM_BYTES))?;
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
        let started = Instant::now();
        let set_aside = self.set_aside.0 > 0;
        let acked = self.acked_seq as i64;
        let waiting = self.waiting.clone();
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
            let mut st = tx.prepare_cached(WALK_SQL)?;
            let rows = st.query_map(params![cursor, close_seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.take(rules.max_rows as usize)
                .collect::<Result<_, _>>()?
        };
        for (seq, txn_id) in &rows {
            // Out of time: the rows from here on are the next step's.
            // Or a call waits for the writer (a sale, `status`): it goes first.
            if out.scanned > 0
                && (rules.budget.is_some_and(|b| started.elapsed() >= b) || call_waiting(&waiting))
            {
                break;
            }
            out.scanned += 1;
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
                remove_txn(&tx, txn_id, set_aside, &mut out)?;
            }
        }
        let examined = &rows[..out.scanned as usize];
        if examined.len() < rows.len() || rows.len() as u32 == rules.max_rows {
            if let Some((seq, _)) = examined.last() {
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
                remove_txn(&tx, &close_id, set_aside, &mut out)?;
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
    // Only a sale that can still be refunded (approved or settled) waits for the window.
    if t.kind == TxnKind::Sale && matches!(t.state, TxnState::Approved | TxnState::Settled) {
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
    // Carried into a batch not closed yet (issue 15): that close still counts it.
    let carried: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM carried WHERE txn_id = ?1)",
        [txn_id],
        |r| r.get(0),
    )?;
    if carried {
        return Ok(false);
    }
    let printing: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM print_jobs WHERE txn_id = ?1 AND state IN ('queued', 'sending'))",
        [txn_id],
        |r| r.get(0),
    )?;
    Ok(!printing)
}

/// `set_aside`: the journal holds set-aside events at all (`Db::set_aside`'s count, kept in
/// memory), so a journal that never set one aside pays no statement for them.
fn remove_txn(
    tx: &rusqlite::Transaction<'_>,
    txn_id: &str,
    set_aside: bool,
    out: &mut PruneOutcome,
) -> Result<(), StoreError> {
    // A P1 sale's money leaves its user's quarter-hour total with it: the totals count what the
    // journal holds, so they shrink with it instead of keeping a row per user and quarter hour
    // for ever. A pruned sale is older than `days` (at least two), never in today's sum.
    if let Some(row) = super::counted_row(tx, txn_id)? {
        super::count_row_change(tx, Some(&row), None)?;
    }
    // An event of it that had been set aside (too large to send) goes with its journal row: the
    // table would otherwise keep whole payloads for ever, and every start counts it.
    if set_aside {
        out.set_aside += tx.execute(
            "DELETE FROM set_aside WHERE seq IN (SELECT seq FROM journal WHERE txn_id = ?1)",
            [txn_id],
        )? as u64;
    }
    out.journal_rows += tx.execute("DELETE FROM journal WHERE txn_id = ?1", [txn_id])? as u64;
    out.print_jobs += tx.execute("DELETE FROM print_jobs WHERE txn_id = ?1", [txn_id])? as u64;
    out.txns += tx.execute("DELETE FROM txns WHERE id = ?1", [txn_id])? as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use posd_core::money::Currency;
    use posd_core::txn::{Method, Transaction};

    const DAY: u64 = 86_400_000;

    /// A journal with a counter for unique transaction ids.
    struct J {
        db: Db,
        n: u32,
        _dir: tempfile::TempDir,
    }

    fn cny() -> Currency {
        Currency::from_code("CNY").unwrap()
    }

    impl J {
        fn new() -> J {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(&dir.path().join("j.sqlite")).unwrap();
            J {
                db,
                n: 0,
                _dir: dir,
            }
        }
        fn rand(&mut self) -> [u8; 10] {
            self.n += 1;
            let mut r = [0u8; 10];
            r[..4].copy_from_slice(&self.n.to_be_bytes());
            r
        }
        fn txn(&mut self, kind: TxnKind, method: Method, state: TxnState, at: u64) -> Transaction {
            let r = self.rand();
            let mut t = Transaction::new(kind, method, 1250, cny(), state, at, r);
            t.channel = Some("wechat".into());
            t
        }
        /// An online sale: authorizing then its final state.
        fn sale(&mut self, at: u64, state: TxnState) -> Transaction {
            let mut t = self.txn(
                TxnKind::Sale,
                Method::PaymentCode,
                TxnState::Authorizing,
                at,
            );
            self.db.record(&t).unwrap();
            t.state = state;
            t.updated_at = at + 1000;
            self.db.record(&t).unwrap();
            t
        }
        /// A P1 offline sale of `user` with `counter`.
        fn offline(&mut self, at: u64, user: u64, counter: u32) -> Transaction {
            let mut t = self.txn(
                TxnKind::Sale,
                Method::OfflineCode,
                TxnState::ApprovedOffline,
                at,
            );
            t.channel = Some("p1".into());
            t.detail = Some(serde_json::json!({ "user_id": user }));
            self.db.record_offline_sale(&t, user, counter).unwrap();
            t
        }
        fn settle(&mut self, t: &mut Transaction, at: u64) {
            t.state = TxnState::Settled;
            t.updated_at = at;
            self.db.record(t).unwrap();
        }
        /// Closes the batch at `at`; `host`: Some(true) reconciled, Some(false) mismatch.
        fn close(&mut self, at: u64, host: Option<bool>) -> Transaction {
            let t = self.txn(TxnKind::BatchClose, Method::None, TxnState::Closed, at);
            let (mut c, _) = self.db.batch_close(t).unwrap();
            if let Some(ok) = host {
                c.state = if ok {
                    TxnState::Reconciled
                } else {
                    TxnState::Mismatch
                };
                c.updated_at = at + 60_000;
                self.db.record(&c).unwrap();
            }
            c
        }
        /// Sales owe receipts (and closes their Z report) from now on.
        fn owe_receipts(&mut self) {
            self.db.set_receipts(Some(posd_core::receipt::ReceiptCtx {
                terminal: "T1".into(),
                zone: Default::default(),
                ..Default::default()
            }));
        }
        fn ack_all(&mut self) {
            let last = self.db.last_seq();
            self.db.ack(last).unwrap();
        }
        /// `n` approved sales one ms apart from `DAY`, closed at `close_at` and reconciled,
        /// every event acknowledged and every print job printed: all of it prunable once old.
        fn reconciled_batch(&mut self, n: u64, close_at: u64) {
            for i in 0..n {
                self.sale(DAY + i, TxnState::Approved);
            }
            self.close(close_at, Some(true));
            self.ack_all();
            self.printed();
        }
        fn printed(&mut self) {
            self.db
                .conn()
                .execute("UPDATE print_jobs SET state = 'printed'", [])
                .unwrap();
        }
        /// Prune steps until the sweep is over; the total.
        fn prune(&mut self, now: u64, days: u32, refund_days: u32) -> PruneOutcome {
            let rules = PruneRules::at(now, days, refund_days, 64);
            let mut total = PruneOutcome::default();
            for _ in 0..10_000 {
                let o = self.db.prune_step(rules).unwrap();
                assert!(o.scanned <= 64, "a step looked at {} rows", o.scanned);
                total.txns += o.txns;
                total.journal_rows += o.journal_rows;
                total.print_jobs += o.print_jobs;
                total.set_aside += o.set_aside;
                total.scanned += o.scanned;
                if !o.more {
                    return total;
                }
            }
            panic!("the sweep never ended");
        }
        fn has(&self, t: &Transaction) -> bool {
            self.db.txn(&t.id.to_string()).unwrap().is_some()
        }
        fn count(&self, table: &str) -> i64 {
            self.db
                .conn()
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        }
    }

    /// An event that was set aside (too large to send) goes with its transaction: the table of
    /// whole payloads follows what the journal keeps, and so does the count `status` shows.
    #[test]
    fn a_pruned_transactions_set_aside_events_go_with_it() {
        let mut j = J::new();
        let old = j.sale(10 * DAY, TxnState::Approved);
        j.close(11 * DAY, Some(true));
        // In the batch still open: kept.
        let kept = j.sale(150 * DAY, TxnState::Approved);
        // Each sale's final event (its second) set aside before it was sent.
        let seq_of = |j: &J, t: &Transaction| -> u64 {
            j.db.conn()
                .query_row(
                    "SELECT MAX(seq) FROM journal WHERE txn_id = ?1",
                    [t.id.to_string()],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap() as u64
        };
        for t in [&old, &kept] {
            let seq = seq_of(&j, t);
            j.db.set_aside(
                seq,
                posd_core::protocol::limits::SetAsideReason::TooLarge,
                100,
                t.created_at,
            )
            .unwrap();
        }
        j.ack_all();
        assert_eq!(j.db.queue_stats(200 * DAY).unwrap().set_aside, 2);
        let out = j.prune(200 * DAY, 90, 90);
        assert!(!j.has(&old) && j.has(&kept), "{out:?}");
        assert_eq!(out.set_aside, 1);
        assert_eq!(j.count("set_aside"), 1);
        let q = j.db.queue_stats(200 * DAY).unwrap();
        assert_eq!((q.set_aside, q.set_aside_last_seq), (1, seq_of(&j, &kept)));
        assert!(j.db.set_aside_payload(seq_of(&j, &kept)).unwrap().is_some());
    }

    #[test]
    fn old_reconciled_synced_batches_go_and_what_must_outlive_them_stays() {
        let mut j = J::new();
        j.owe_receipts();
        let d10 = 10 * DAY;
        let s1 = j.sale(d10, TxnState::Approved);
        let declined = j.sale(d10 + 1, TxnState::Declined);
        let mut o1 = j.offline(d10 + 2, 7, 5);
        let o2 = j.offline(d10 + 3, 7, 6);
        j.settle(&mut o1, d10 + 4);
        let c1 = j.close(d10 + 10, Some(true));
        j.db.set_meta("fleet.version", "42").unwrap();
        j.db.fleet_cmd_done("cmd-1", "{}", d10, d10).unwrap();
        j.ack_all();
        // Print jobs are finished (a waiting one would keep its transaction).
        j.printed();
        let jobs_before = j.count("print_jobs");
        assert!(jobs_before >= 4, "receipts and the Z report were owed");
        let last = j.db.last_seq();

        let now = 200 * DAY;
        let out = j.prune(now, 90, 90);
        assert_eq!(out.txns, 3, "{out:?}");
        assert!(!j.has(&s1) && !j.has(&declined) && !j.has(&o1));
        assert!(j.db.history(&s1.id.to_string()).unwrap().is_empty());
        // The unsettled offline sale stays, and so does the close of its batch.
        assert!(j.has(&o2) && j.has(&c1));
        assert!(out.print_jobs >= 3);
        // seq continuity, the P1 counter, the fleet's version and command ids.
        assert_eq!(j.db.last_seq(), last);
        let replay = j.txn(
            TxnKind::Sale,
            Method::OfflineCode,
            TxnState::ApprovedOffline,
            now,
        );
        assert!(matches!(
            j.db.record_offline_sale(&replay, 7, 5),
            Err(StoreError::CounterReplayed { last: 6, .. })
        ));
        assert_eq!(j.db.fleet_record().unwrap().version, 42);
        assert!(j.db.fleet_cmd("cmd-1").unwrap().is_some());

        // Settled later (and acked), it goes at the next sweep, and the close with it.
        let mut o2 = o2;
        j.settle(&mut o2, d10 + 5 * DAY);
        j.ack_all();
        let out = j.prune(now, 90, 90);
        assert_eq!(out.txns, 2, "{out:?}");
        assert!(!j.has(&o2) && !j.has(&c1));
        assert_eq!((j.count("txns"), j.count("journal")), (0, 0));
        assert_eq!(j.count("print_jobs"), 0);
        // Every row is gone: the next seq still follows the last one, also after a restart.
        let last = j.db.last_seq();
        let t = j.sale(now, TxnState::Approved);
        assert_eq!(j.db.history(&t.id.to_string()).unwrap()[0].0, last + 1);
        let path = j.db.path().unwrap();
        drop(j.db);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.last_seq(), last + 2);
        assert_eq!(db.fleet_record().unwrap().version, 42);
        assert_eq!(db.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn an_owed_receipt_keeps_its_sale_only_until_the_printer_queue_gives_it_up() {
        let mut j = J::new();
        j.owe_receipts();
        let d10 = 10 * DAY;
        let s = j.sale(d10, TxnState::Approved);
        j.close(d10 + 10, Some(true));
        j.ack_all();
        // The printer never printed: everything is old, reconciled and synced, but owed.
        let now = 200 * DAY;
        assert_eq!(j.prune(now, 90, 90).txns, 0);
        assert!(j.has(&s));
        let limits = super::super::OwedLimits {
            job_max_age_ms: 24 * 3_600_000,
            drawer_max_age_ms: 300_000,
        };
        let e = j.db.expire_owed_print_jobs(now, limits, 64, None).unwrap();
        assert!(e.now >= 2, "the receipt and the Z report: {e:?}");
        assert_eq!(j.prune(now, 90, 90).txns, 2, "the sale and its close");
        assert!(!j.has(&s));
        assert_eq!(j.count("print_jobs"), 0);
    }

    #[test]
    fn nothing_unreconciled_unsynced_young_or_of_the_open_batch_goes() {
        let mut j = J::new();
        let mismatch = j.sale(DAY, TxnState::Approved);
        j.close(DAY + 10, Some(false));
        let unanswered = j.sale(2 * DAY, TxnState::Approved);
        j.close(2 * DAY + 10, None);
        let reconciled = j.sale(3 * DAY, TxnState::Approved);
        j.close(3 * DAY + 10, Some(true));
        j.ack_all();
        // Reconciled and old, but an event of it is not acknowledged yet.
        let unsynced = j.sale(4 * DAY, TxnState::Approved);
        j.close(4 * DAY + 10, Some(true));
        // The open batch: old, but never closed.
        let open = j.sale(5 * DAY, TxnState::Approved);
        let now = 200 * DAY;
        let out = j.prune(now, 90, 90);
        assert_eq!(out.txns, 2, "the sale and its close: {out:?}");
        assert!(!j.has(&reconciled));
        for t in [&mismatch, &unanswered, &unsynced, &open] {
            assert!(j.has(t), "{} was pruned", t.id);
        }
        // Once acknowledged, the reconciled one goes; the others never.
        j.ack_all();
        assert_eq!(j.prune(now, 90, 90).txns, 2, "the sale and its close");
        assert!(!j.has(&unsynced));
        for t in [&mismatch, &unanswered, &open] {
            assert!(j.has(t));
        }
        // A young reconciled batch stays.
        let young = j.sale(now - 10 * DAY, TxnState::Approved);
        j.close(now - 10 * DAY + 10, Some(true));
        j.ack_all();
        assert_eq!(j.prune(now, 90, 90).txns, 0);
        assert!(j.has(&young) && j.has(&open));
    }

    #[test]
    fn refund_originals_within_the_window_and_refunds_in_flight_keep_their_sale() {
        let mut j = J::new();
        let now = 400 * DAY;
        // 100 days old: past `days` (30) but inside the refund window (180).
        let in_window = j.sale(now - 100 * DAY, TxnState::Approved);
        let declined = j.sale(now - 100 * DAY + 1, TxnState::Declined);
        // 300 days old, with a refund still in flight.
        let refunded = j.sale(now - 300 * DAY, TxnState::Approved);
        let mut r = j.txn(
            TxnKind::Refund,
            Method::PaymentCode,
            TxnState::Authorizing,
            now - 300 * DAY + 5,
        );
        r.amount = 100;
        r.detail =
            Some(serde_json::json!({"original": refunded.id.to_string(), "refund_id": "r1"}));
        j.db.record_refund(&r, &refunded.id.to_string()).unwrap();
        let old = j.sale(now - 300 * DAY + 10, TxnState::Approved);
        j.close(now - 99 * DAY, Some(true));
        j.ack_all();
        let out = j.prune(now, 30, 180);
        assert_eq!(out.txns, 2, "{out:?}");
        assert!(!j.has(&declined) && !j.has(&old));
        assert!(j.has(&in_window) && j.has(&refunded) && j.has(&r));
        // The refund can still be made against the kept original.
        assert_eq!(
            j.db.refund_context(&in_window.id.to_string())
                .unwrap()
                .committed,
            0
        );
        // The refund approved: the original goes (out of the window, nothing in flight). The
        // refund was in flight at the close, so the next batch counts it (issue 15): it stays
        // until that batch is closed, then goes too.
        r.state = TxnState::Approved;
        r.updated_at = now - 300 * DAY + 10;
        j.db.record(&r).unwrap();
        j.ack_all();
        assert_eq!(j.prune(now, 30, 180).txns, 1);
        assert!(!j.has(&refunded) && j.has(&r));
        j.close(now - 98 * DAY, Some(true));
        j.ack_all();
        assert_eq!(j.prune(now, 30, 180).txns, 1);
        assert!(!j.has(&r) && j.has(&in_window));
        assert!(!j.has(&refunded) && !j.has(&r) && j.has(&in_window));
    }

    #[test]
    fn todays_offline_totals_survive_the_shortest_retention() {
        let mut j = J::new();
        let now = 50 * DAY + 12 * 3_600_000;
        let day_start = 50 * DAY;
        let mut old = j.offline(10 * DAY, 9, 1);
        j.settle(&mut old, 11 * DAY);
        j.close(12 * DAY, Some(true));
        let mut today = j.offline(day_start + 1000, 9, 2);
        j.settle(&mut today, day_start + 2000);
        // Closed and reconciled this morning.
        j.close(day_start + 3000, Some(true));
        j.ack_all();
        let before = j.db.offline_snapshot(9, day_start).unwrap();
        assert_eq!(before.user_total_today, 1250);
        let old_quarter = (10 * DAY / 900_000) as i64;
        assert!(j
            .db
            .counters()
            .unwrap()
            .p1_totals
            .iter()
            .any(|r| r.1 == old_quarter));
        let out = j.prune(now, 2, 0);
        assert_eq!(out.txns, 2, "the old sale and its close: {out:?}");
        assert!(!j.has(&old) && j.has(&today));
        assert_eq!(j.db.offline_snapshot(9, day_start).unwrap(), before);
        // The old sale's share left the totals with it: they hold what the journal holds.
        let counters = j.db.counters().unwrap();
        assert_eq!(counters, j.db.recount_counters().unwrap());
        assert!(
            counters.p1_totals.iter().all(|r| r.1 != old_quarter),
            "{:?}",
            counters.p1_totals
        );
    }

    #[test]
    fn steps_are_bounded_and_the_file_shrinks() {
        let mut j = J::new();
        j.owe_receipts();
        assert_eq!(
            j.db.db_size().unwrap().auto_vacuum,
            2,
            "new journals can shrink"
        );
        j.reconciled_batch(3000, DAY + 5000);
        let before = j.db.reclaim().unwrap();
        let rules = PruneRules::at(200 * DAY, 90, 90, 100);
        let mut steps = 0;
        loop {
            let o = j.db.prune_step(rules).unwrap();
            assert!(o.scanned <= 100 && o.txns <= 100, "{o:?}");
            steps += 1;
            if !o.more {
                break;
            }
        }
        // 6000 journal rows, 100 a step, plus the close and the end of the sweep.
        assert!((60..=63).contains(&steps), "{steps} steps");
        assert_eq!(j.count("txns"), 0);
        let after = j.db.reclaim().unwrap();
        assert!(
            after.db_bytes * 10 < before.db_bytes,
            "{} bytes before, {} after",
            before.db_bytes,
            after.db_bytes
        );
        assert_eq!(after.wal_bytes, 0);
        assert_eq!(j.db.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn a_step_out_of_time_stops_after_one_row_and_the_walk_goes_on_from_there() {
        // Two journals with the same history: one pruned with no time budget, one with a
        // budget already spent when each step starts (zero): one row examined a step, the
        // cursor after it, and in the end the same rows gone and the same rows kept.
        let mut a = J::new();
        let mut b = J::new();
        for j in [&mut a, &mut b] {
            for n in 0..40 {
                j.sale(DAY + n, TxnState::Approved);
            }
            j.close(DAY + 500, Some(true));
            for n in 0..5 {
                j.sale(DAY + 1_000 + n, TxnState::Approved);
            }
            j.ack_all();
            j.printed();
        }
        let whole = a.prune(200 * DAY, 90, 90);
        let rules = PruneRules::at(200 * DAY, 90, 90, 64).with_budget(Duration::ZERO);
        let mut total = PruneOutcome::default();
        let mut steps = 0;
        loop {
            let o = b.db.prune_step(rules).unwrap();
            assert!(o.scanned <= 1 && o.txns <= 2, "step {steps}: {o:?}");
            total.txns += o.txns;
            total.scanned += o.scanned;
            steps += 1;
            if !o.more {
                break;
            }
            assert!(steps < 1_000, "the walk does not move on");
        }
        assert!(steps > 40, "{steps} steps: one row each");
        assert_eq!(total.txns, whole.txns, "{total:?} against {whole:?}");
        assert_eq!(total.txns, 41, "the 40 old sales and their close");
        assert_eq!(a.count("txns"), 5);
        assert_eq!(b.count("txns"), 5, "the open batch stays");
        assert_eq!(a.count("journal"), b.count("journal"));
    }

    #[test]
    fn a_step_ends_after_one_row_while_a_call_waits_for_the_writer() {
        // As with a spent budget: with a call waiting (a sale, `status`) each step examines
        // one row and commits, and the walk ends with what an unhurried prune removes.
        let mut a = J::new();
        let mut b = J::new();
        for j in [&mut a, &mut b] {
            j.reconciled_batch(30, DAY + 500);
        }
        let whole = a.prune(200 * DAY, 90, 90);
        let waiting = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
        b.db.waiting = waiting.clone();
        let rules = PruneRules::at(200 * DAY, 90, 90, 64);
        let (mut txns, mut steps) = (0, 0);
        loop {
            let o = b.db.prune_step(rules).unwrap();
            assert!(o.scanned <= 1, "step {steps}: {o:?}");
            txns += o.txns;
            steps += 1;
            if !o.more {
                break;
            }
            assert!(steps < 1_000, "the walk does not move on");
        }
        assert!(steps > 30, "{steps} steps: one row each");
        assert_eq!(txns, whole.txns);
        assert_eq!(b.count("txns"), 0);
        // Nobody waiting: one step takes the rows again.
        waiting.store(0, std::sync::atomic::Ordering::SeqCst);
        let mut c = J::new();
        c.reconciled_batch(30, DAY + 500);
        c.db.waiting = waiting;
        assert!(c.db.prune_step(rules).unwrap().scanned > 1);
    }

    #[test]
    fn a_reclaim_step_gives_back_one_page_while_a_call_waits_for_the_writer() {
        let mut j = J::new();
        j.reconciled_batch(1000, DAY + 5000);
        while j
            .db
            .prune_step(PruneRules::at(200 * DAY, 90, 90, 128))
            .unwrap()
            .more
        {}
        let free = |j: &J| j.db.db_size().unwrap().free_pages;
        let start = free(&j);
        assert!(start > 20, "{start} free pages");
        let waiting = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
        j.db.waiting = waiting.clone();
        assert_eq!(
            j.db.reclaim_step().unwrap(),
            start - 1,
            "one page, then the call"
        );
        assert_eq!(free(&j), start - 1, "and that page stays given back");
        waiting.store(0, std::sync::atomic::Ordering::SeqCst);
        let left = j.db.reclaim_step().unwrap();
        let step = u64::from(j.db.pages(VACUUM_BYTES));
        assert_eq!(left, (start - 1).saturating_sub(step));
        assert_eq!(j.db.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn an_older_journal_is_converted_once_by_a_vacuum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        {
            // A journal created before migration #9 (auto_vacuum = NONE).
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE legacy (x INTEGER)").unwrap();
        }
        let db = Db::open(&path).unwrap();
        let mut j = J {
            db,
            n: 0,
            _dir: dir,
        };
        assert_eq!(j.db.db_size().unwrap().auto_vacuum, 0);
        for n in 0..2000 {
            j.sale(DAY + n, TxnState::Approved);
        }
        j.close(DAY + 5000, Some(true));
        j.ack_all();
        j.prune(200 * DAY, 90, 90);
        let kept = j.db.reclaim().unwrap();
        assert!(
            kept.free_pages > 100,
            "the pages are free but still in the file"
        );
        // Not enough room for the rewrite: refused, nothing changed.
        assert!(!j.db.convert_auto_vacuum(kept.db_bytes).unwrap());
        assert!(j.db.convert_auto_vacuum(u64::MAX).unwrap());
        let after = j.db.db_size().unwrap();
        assert_eq!((after.auto_vacuum, after.free_pages), (2, 0));
        assert!(after.db_bytes * 5 < kept.db_bytes, "{after:?} {kept:?}");
        assert!(!j.db.convert_auto_vacuum(u64::MAX).unwrap(), "only once");
    }
}
