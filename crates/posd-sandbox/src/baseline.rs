//! posd's way of keeping its write-ahead log short, given to a benchmark's baseline database,
//! so a bare commit is timed under the conditions posd's commits run in.
//!
//! posd moves SQLite's automatic checkpoint out of the way (`wal_autocheckpoint` at its
//! backstop) and checkpoints `PASSIVE` on a second connection and thread every 64 events
//! (`posd::store`'s checkpointer). A baseline left to SQLite's own 1000-page checkpoint lets its
//! log grow through a whole run — a one-row commit's reaches 1000 pages only at the end — so
//! every commit also extends the file; on an ext4 VM that doubled a bare commit's p50 (0.27
//! against 0.14 ms, `scripts/wal-growth.py`) and made every ratio to it look better than it is.

use std::cell::Cell;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};

/// A baseline database's checkpointer: a thread with its own connection, woken (never waited
/// for) every `every` commits.
pub struct Checkpointer {
    wake: SyncSender<()>,
    commits: Cell<u64>,
    every: u64,
}

impl Checkpointer {
    /// Sets `wal_autocheckpoint` on `c` to `backstop_pages` and starts the thread on a
    /// connection to `path`, the same database, to be woken every `every` commits: posd's
    /// `store::CHECKPOINTER_BACKSTOP_BYTES` in pages of the database's size and
    /// `store::SEQS_PER_CHECKPOINT`, which a bench passes in (this crate never depends on the
    /// product).
    pub fn start(
        c: &rusqlite::Connection,
        path: &Path,
        backstop_pages: u32,
        every: u64,
    ) -> anyhow::Result<Checkpointer> {
        c.pragma_update(None, "wal_autocheckpoint", backstop_pages)?;
        let ck = rusqlite::Connection::open(path)?;
        let (wake, rx) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("baseline-checkpoint".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    // A checkpoint that cannot run now runs at the next wake-up, as posd's.
                    let _ = ck.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })?;
        Ok(Checkpointer {
            wake,
            commits: Cell::new(0),
            every: every.max(1),
        })
    }

    /// `events` more committed (a baseline commit stands for as many journal events as the
    /// posd commit it is compared with): wakes the thread when posd's checkpointer would wake.
    pub fn committed(&self, events: u64) {
        let before = self.commits.get();
        let after = before.saturating_add(events);
        self.commits.set(after);
        if after / self.every > before / self.every {
            let _ = self.wake.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log is written over from its start once the checkpointer has run: it stops growing
    /// at about 64 commits' frames, where SQLite's own checkpoint would let it reach 1000.
    #[test]
    fn a_baseline_log_stays_near_sixty_four_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.sqlite");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", [])
            .unwrap();
        let ck = Checkpointer::start(&c, &path, 8000, 64).unwrap();
        for i in 0..900 {
            c.execute("INSERT INTO t (v) VALUES (?1)", [i]).unwrap();
            ck.committed(1);
            if i % 64 == 63 {
                // Let the thread's checkpoint finish before the next commit (a test, not a bench).
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let wal = std::fs::metadata(dir.path().join("b.sqlite-wal"))
            .unwrap()
            .len();
        let frame = 4096 + 24;
        assert!(
            wal < 200 * frame,
            "the log holds {} frames; 900 commits unchecked would hold 900",
            wal / frame
        );
    }
}
