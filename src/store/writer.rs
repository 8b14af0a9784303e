//! The journal's thread: it owns the one writing connection and runs a current-thread tokio
//! runtime, so the tasks that sell (the engine and the control socket, started with
//! [`Store::spawn`]) run beside the journal and call it directly — a sale's commit is no
//! longer two thread hand-offs away (issue 18). Every other thread's calls queue to it.

use super::{Db, QueueView, StoreError};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::mpsc as tmpsc;

/// A queued call: it runs the caller's closure through [`Journal::run`] and sends the answer
/// after the queue's view is refreshed, so a caller that has its answer sees what it did.
type Job = Box<dyn FnOnce(&mut Journal) + Send>;

/// What the journal thread is handed: a job to run in arrival order, word that one more
/// background job waits in [`Background`], or the word to close (answered once the journal
/// is closed).
enum Msg {
    Job(Job),
    Background,
    Close(tokio::sync::oneshot::Sender<()>),
}

/// Background jobs (acks, outbox reads for the drain, retention steps): run only when no
/// other job waits, so they never sit ahead of a sale's commit (issue 18).
type Background = Arc<std::sync::Mutex<std::collections::VecDeque<Job>>>;

/// A handle to the journal thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// This journal's number in the process: a call made on its own thread runs there and
    /// then (`HERE` says which journal a thread owns).
    id: u64,
    tx: tmpsc::UnboundedSender<Msg>,
    background: Background,
    /// [`Msg::Job`]s sent and not yet taken by the journal thread.
    pub(super) waiting: Arc<AtomicUsize>,
    /// What [`Store::queue_stats`] reads (the journal thread keeps it).
    queue_view: Arc<std::sync::Mutex<QueueView>>,
    /// The journal thread's runtime: what [`Store::spawn`] starts runs on that thread.
    rt: tokio::runtime::Handle,
}

/// Events journaled between two wake-ups of the checkpointer thread: about SQLite's own
/// 1000-page cadence (a sale's commit writes about 16 pages), so there are no more fsyncs
/// than before — only off the journal thread. (Every 16 calls measured slower online: the
/// extra syncs of the database file queue with the commits' on the same disk.)
pub const SEQS_PER_CHECKPOINT: u64 = 64;
/// Rows changed on the journal's connection between two wake-ups, whatever changed them: a
/// drain journals no event, its acks only delete (~2,000 outbox rows an ack at 40,000 events/s),
/// so counting events alone never woke the checkpointer during one. A sale changes 6 rows,
/// so sales alone still wake it every [`SEQS_PER_CHECKPOINT`] events, as before.
pub const CHANGES_PER_CHECKPOINT: u64 = 512;
/// `wal_autocheckpoint` on the writer's connection while a checkpointer thread checkpoints, in
/// bytes of the log (in pages: [`Db::pages`]): the writer checkpoints itself only if that thread
/// falls this far behind.
pub const CHECKPOINTER_BACKSTOP_BYTES: u64 = 32 * 1024 * 1024;
/// A waiting background job runs after at most this many calls, whatever else waits.
pub(super) const BACKGROUND_AFTER: usize = 16;

/// Checkpoints the write-ahead log on its own connection, off the journal thread (issue 18):
/// with SQLite's automatic checkpoint the commit that crosses 1000 pages copies them into the
/// database and syncs it before it returns — every ~60th sale waited milliseconds for that. A
/// `PASSIVE` checkpoint takes no lock a writer needs, so sales commit while it runs. Woken by
/// the writer every [`SEQS_PER_CHECKPOINT`] events or [`CHANGES_PER_CHECKPOINT`] rows changed;
/// ends when the writer drops its sender.
fn checkpointer(conn: rusqlite::Connection, wake: mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        while wake.try_recv().is_ok() {}
        let r: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
        if let Err(e) = r {
            log::debug!("journal: checkpoint skipped: {e}");
        }
    }
}

/// The connection and what runs after every call on it, wherever the call came from.
struct Journal {
    db: Db,
    /// Wakes the checkpointer (None: the writer checkpoints the log itself).
    ck: Option<mpsc::SyncSender<()>>,
    checkpointed_at: u64,
    /// The connection's rows changed at the last wake-up.
    changes_at: u64,
    /// A call on this thread answered before the queue's view was refreshed
    /// ([`Journal::run_here`]); `serve` refreshes it once the tasks that answer woke have run.
    view_owed: bool,
    /// Wakes `serve` for that refresh.
    wake: Rc<tokio::sync::Notify>,
}

impl Journal {
    /// Runs `f`, refreshes the queue's view, and every [`SEQS_PER_CHECKPOINT`] events
    /// journaled wakes the checkpointer (never waiting for it).
    fn run<R>(&mut self, f: impl FnOnce(&mut Db) -> R) -> R {
        let r = self.db.answer(f);
        self.view_owed = false;
        self.checkpoint_now_and_then();
        r
    }

    /// [`Journal::run`] for a call from a task on this thread: the answer comes before the
    /// queue's view is refreshed (~30 µs a sale), which `serve` does next. A reader on this
    /// thread refreshes it first ([`Store::queue_stats`]), so a control client that has its
    /// answer sees what the call did; other threads see it a moment later.
    fn run_here<R>(&mut self, f: impl FnOnce(&mut Db) -> R) -> R {
        let r = f(&mut self.db);
        self.view_owed = true;
        self.wake.notify_one();
        self.checkpoint_now_and_then();
        r
    }

    fn checkpoint_now_and_then(&mut self) {
        let changes = self.db.total_changes();
        if self.db.last_seq >= self.checkpointed_at + SEQS_PER_CHECKPOINT
            || changes >= self.changes_at + CHANGES_PER_CHECKPOINT
        {
            self.checkpointed_at = self.db.last_seq;
            self.changes_at = changes;
            if let Some(ck) = &self.ck {
                let _ = ck.try_send(());
            }
        }
    }
}

/// The journal a thread owns (set on the journal thread only), by [`Store::id`].
struct Here {
    id: u64,
    journal: Rc<RefCell<Journal>>,
}

thread_local! {
    static HERE: RefCell<Option<Here>> = const { RefCell::new(None) };
}

/// Gives each opened journal its number.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The journal `id`, if this is its thread.
fn here(id: u64) -> Option<Rc<RefCell<Journal>>> {
    HERE.with(|h| {
        h.borrow()
            .as_ref()
            .filter(|h| h.id == id)
            .map(|h| h.journal.clone())
    })
}

/// Runs `f` with `journal` there and then, unless a call of it is running here already, which
/// is refused (waiting would wait for itself).
fn with_journal<R>(
    journal: &RefCell<Journal>,
    f: impl FnOnce(&mut Journal) -> R,
) -> Result<R, StoreError> {
    match journal.try_borrow_mut() {
        Ok(mut j) => Ok(f(&mut j)),
        Err(_) => Err(StoreError::Io(
            "a journal call made from inside another journal call: refused".into(),
        )),
    }
}

/// Runs a queued job. A job that panics is logged and its caller answered
/// [`StoreError::Closed`] (its reply is dropped); its SQLite transaction, if any, was rolled
/// back as it unwound, and the journal goes on serving the others (no panic reaches the loop).
fn run_job(journal: &RefCell<Journal>, job: Job) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        job(&mut journal.borrow_mut())
    }));
    if r.is_err() {
        log::error!("journal: a call panicked; its caller was told the journal is closed, nothing of it was written");
    }
}

/// The journal thread's queue: every job in arrival order, except that a background job runs
/// only once no other job is waiting (the ones queued meanwhile go first). It yields after
/// each job, so the tasks on this thread (a sale) go between two background jobs. Returns the
/// close request's answer, if one came.
async fn serve(
    journal: Rc<RefCell<Journal>>,
    mut rx: tmpsc::UnboundedReceiver<Msg>,
    background: Background,
) -> Option<tokio::sync::oneshot::Sender<()>> {
    let mut owed = 0usize;
    // Calls run since a background job last ran: after `BACKGROUND_AFTER` of them a waiting
    // background job runs even if more calls wait, so acks and the drain cannot be starved by
    // a stream of calls (many control clients polling `status`, say).
    let mut calls_since = 0usize;
    loop {
        let msg = if owed > 0 && calls_since >= BACKGROUND_AFTER {
            None
        } else if owed == 0 {
            if journal.borrow().view_owed {
                // The tasks the last call's answer woke (the reply to the cashier) go first.
                tokio::task::yield_now().await;
                journal.borrow_mut().run(|_| ());
                continue;
            }
            let wake = journal.borrow().wake.clone();
            tokio::select! {
                biased;
                m = rx.recv() => Some(m?),
                _ = wake.notified() => continue,
            }
        } else {
            match rx.try_recv() {
                Ok(m) => Some(m),
                Err(tmpsc::error::TryRecvError::Empty) => None,
                Err(tmpsc::error::TryRecvError::Disconnected) => return None,
            }
        };
        match msg {
            Some(Msg::Job(job)) => {
                journal.borrow().db.waiting.fetch_sub(1, Ordering::SeqCst);
                calls_since += 1;
                run_job(&journal, job);
            }
            Some(Msg::Background) => {
                owed += 1;
                continue;
            }
            Some(Msg::Close(done)) => return Some(done),
            None => {
                owed -= 1;
                calls_since = 0;
                let job = background
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop_front();
                if let Some(job) = job {
                    run_job(&journal, job);
                }
            }
        }
        tokio::task::yield_now().await;
    }
}

/// The journal thread: opens the journal (told on `ready`), starts the checkpointer, serves
/// calls until every handle is gone or [`Store::close`] asks; then stops what runs on its
/// runtime and closes the journal (its close checkpoints and removes the log).
fn journal_thread(
    path: &Path,
    id: u64,
    rx: tmpsc::UnboundedReceiver<Msg>,
    background: Background,
    waiting: Arc<AtomicUsize>,
    queue_view: Arc<std::sync::Mutex<QueueView>>,
    ready: mpsc::Sender<Result<tokio::runtime::Handle, StoreError>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StoreError::Io(format!(
                "cannot start the journal's runtime: {e}"
            ))));
            return;
        }
    };
    let mut db = match Db::open(path) {
        Ok(db) => db,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // The log is checkpointed on a thread of its own (`checkpointer`). Its connection is
    // opened here: only a checkpointer that exists takes the writer's automatic checkpoints
    // away (else SQLite's 1000 pages stay).
    let (ck_tx, ck_rx) = mpsc::sync_channel::<()>(1);
    let ck = match rusqlite::Connection::open(path) {
        Ok(conn) => std::thread::Builder::new()
            .name("posd-checkpoint".into())
            .spawn(move || checkpointer(conn, ck_rx))
            .ok(),
        Err(e) => {
            log::warn!("journal: no checkpointer ({e}); the writer checkpoints the log itself");
            None
        }
    };
    let ck_tx = if ck.is_some() {
        if let Err(e) = db.set_autocheckpoint(db.pages(CHECKPOINTER_BACKSTOP_BYTES)) {
            log::warn!("journal: automatic checkpoints kept ({e})");
        }
        Some(ck_tx)
    } else {
        None
    };
    db.waiting = waiting;
    db.queue_view = queue_view;
    db.refresh_queue_view();
    let checkpointed_at = db.last_seq;
    let changes_at = db.total_changes();
    let journal = Rc::new(RefCell::new(Journal {
        db,
        ck: ck_tx,
        checkpointed_at,
        changes_at,
        view_owed: false,
        wake: Rc::default(),
    }));
    HERE.with(|h| {
        *h.borrow_mut() = Some(Here {
            id,
            journal: journal.clone(),
        })
    });
    let _ = ready.send(Ok(rt.handle().clone()));
    let closed = rt.block_on(serve(journal.clone(), rx, background.clone()));
    // Background calls still waiting are answered `Closed` (their replies dropped).
    background
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    // The tasks started here end with the runtime (their handles to this journal with them).
    drop(rt);
    HERE.with(|h| *h.borrow_mut() = None);
    // The checkpointer ends first, so the writer's connection is the last one open and its
    // close checkpoints and removes the log.
    let journal = Rc::try_unwrap(journal).ok().map(RefCell::into_inner);
    if let Some(j) = journal {
        drop(j.ck);
        if let Some(h) = ck {
            let _ = h.join();
        }
        drop(j.db);
    }
    if let Some(done) = closed {
        let _ = done.send(());
    }
}

impl Store {
    /// Opens the journal on a new journal thread; returns once it is open (or failed).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let (tx, rx) = tmpsc::unbounded_channel::<Msg>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let background = Background::default();
        let waiting = Arc::new(AtomicUsize::new(0));
        let queue_view = Arc::<std::sync::Mutex<QueueView>>::default();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        {
            let path = path.to_path_buf();
            let (background, waiting, queue_view) =
                (background.clone(), waiting.clone(), queue_view.clone());
            std::thread::Builder::new()
                .name("posd-journal".into())
                .spawn(move || {
                    journal_thread(&path, id, rx, background, waiting, queue_view, ready_tx)
                })
                .map_err(|e| StoreError::Io(e.to_string()))?;
        }
        let rt = ready_rx.recv().map_err(|_| StoreError::Closed)??;
        Ok(Store {
            id,
            tx,
            background,
            waiting,
            queue_view,
            rt,
        })
    }

    /// Starts `task` on the journal thread, beside the journal: its [`Store::call`]s run
    /// there and then, with no hand-off to another thread. For the tasks on a sale's path (the
    /// engine, the control socket); what they do between calls delays every other caller, so
    /// nothing that blocks or computes long belongs there.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(task)
    }

    /// Closes the journal: the calls queued ahead of this run, then the tasks started with
    /// [`Store::spawn`] stop, the background calls still waiting and every later call are
    /// answered [`StoreError::Closed`], the journal is closed (its log checkpointed and
    /// removed), and this returns. (A second `close` returns once the first has begun.)
    pub async fn close(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Runs `f` on the journal thread and returns its result: there and then when called from
    /// a task on that thread ([`Store::spawn`]), else queued.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Db) -> Result<R, StoreError> + Send + 'static,
    {
        let inline = match here(self.id) {
            Some(j) => Ok(with_journal(&j, |j| j.run_here(f))),
            None => Err(f),
        };
        let f = match inline {
            Ok(r) => {
                // A task that calls in a loop still lets the others on the thread run.
                tokio::task::consume_budget().await;
                return r.and_then(|r| r);
            }
            Err(f) => f,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send_job(Box::new(move |j: &mut Journal| {
            let _ = tx.send(j.run(f));
        }))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Like [`Store::call`], for work that may wait: it runs only when no [`Store::call`] is
    /// waiting, so a sale's commit never waits behind it (acks, the drain's outbox reads,
    /// retention steps). Background jobs keep their own order.
    pub async fn call_background<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Db) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(Box::new(move |j: &mut Journal| {
                let _ = tx.send(j.run(f));
            }));
        self.tx
            .send(Msg::Background)
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Blocking variant for non-async callers (tools, tests). On the journal thread itself it
    /// runs there and then (waiting would wait for itself).
    pub fn call_blocking<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Db) -> Result<R, StoreError> + Send + 'static,
    {
        if let Some(j) = here(self.id) {
            return with_journal(&j, |j| j.run(f)).and_then(|r| r);
        }
        let (tx, rx) = mpsc::channel();
        self.send_job(Box::new(move |j: &mut Journal| {
            let _ = tx.send(j.run(f));
        }))?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// The queue's numbers as the journal's last call left them, without waiting for the
    /// journal thread: `status`, `queue`, the alerts and the retained status read this, so a
    /// busy journal (a sale's commit, an ack, a retention step) never delays them.
    pub fn queue_stats(&self, now: posd_core::txn::Millis) -> super::QueueStats {
        self.view_up_to_date();
        let v = self
            .queue_view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        super::with_age(v.stats, v.oldest, now)
    }

    /// Print jobs waiting (queued or sending) as the journal's last call left them, without
    /// waiting for the journal thread (the print queue asks after every job).
    pub fn print_waiting(&self) -> u64 {
        self.view_up_to_date();
        self.queue_view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .print_owed
    }

    /// On the journal's thread, the view refreshed if a call answered ahead of it
    /// ([`Journal::run_here`]); elsewhere nothing (it is at most a moment behind).
    fn view_up_to_date(&self) {
        if let Some(j) = here(self.id) {
            let _ = with_journal(&j, |j| {
                if j.view_owed {
                    j.run(|_| ())
                }
            });
        }
    }

    /// Queues a call for the journal thread, counted in `waiting` until the thread takes it.
    fn send_job(&self, job: Job) -> Result<(), StoreError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.tx.send(Msg::Job(job)).map_err(|_| {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            StoreError::Closed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{retention, tests::txn, QueueStats};
    use super::*;
    use posd_core::txn::TxnState;

    /// A drain journals nothing new: its acks only delete. The log must still be written
    /// over from its start (the checkpointer woken by the rows they change), not grow with
    /// every ack until the backstop, which the journal thread would then checkpoint itself.
    #[test]
    fn acks_alone_keep_the_log_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        {
            let mut db = Db::open(&path).unwrap();
            let batch: Vec<_> = (0..1000)
                .map(|i| txn(1_000 + i, TxnState::Approved))
                .collect();
            for _ in 0..20 {
                db.record_batch(&batch).unwrap();
            }
            db.checkpoint_truncate().unwrap();
        }
        let wal = dir.path().join("j.sqlite-wal");
        let store = Store::open(&path).unwrap();
        let mut most = 0;
        for step in 1..=40u64 {
            store.call_blocking(move |db| db.ack(step * 500)).unwrap();
            most = most.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            // The drain records acks at most every 50 ms (`link::ACK_RECORD_GAP`).
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let pages = most / (u64::from(crate::store::PAGE_SIZE) + 24);
        println!("log at most {pages} pages over 40 acks");
        assert!(pages < 1000, "the log grew to {pages} pages");
    }

    #[test]
    fn writer_thread_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("sub/j.sqlite")).unwrap();
        let t = txn(5, TxnState::Authorizing);
        let seq = store.call_blocking(move |db| db.record(&t)).unwrap();
        assert_eq!(seq, 1);
    }

    /// Polls a future once (it enqueues its job then) and drops it: the job still runs.
    fn enqueue<F: std::future::Future>(f: F) {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // Pending, or already answered when the writer thread was idle.
        let _ = f.as_mut().poll(&mut cx);
    }

    /// Holds the writer thread in a call until the returned sender sends (or is dropped).
    fn hold_writer(
        store: &Store,
    ) -> (
        mpsc::Sender<()>,
        std::thread::JoinHandle<Result<(), StoreError>>,
    ) {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let s = store.clone();
        let busy = std::thread::spawn(move || {
            s.call_blocking(move |_| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                Ok(())
            })
        });
        started_rx.recv().unwrap();
        (release_tx, busy)
    }

    /// Returns once a background job queued now has run (so every job before it has).
    fn wait_for_background(store: &Store) {
        let (done_tx, done_rx) = mpsc::channel();
        enqueue(store.call_background(move |_| {
            let _ = done_tx.send(());
            Ok(())
        }));
        done_rx.recv().unwrap();
    }

    #[test]
    fn calls_waiting_for_the_writer_are_counted_and_a_background_job_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.sqlite")).unwrap();
        let (release_tx, busy) = hold_writer(&store);
        enqueue(store.call(|_| Ok(())));
        enqueue(store.call(|_| Ok(())));
        assert_eq!(store.waiting.load(Ordering::SeqCst), 2);
        release_tx.send(()).unwrap();
        busy.join().unwrap().unwrap();
        wait_for_background(&store);
        assert_eq!(store.waiting.load(Ordering::SeqCst), 0);
        // A background job watching for a call, as a prune step does between rows.
        let (started_tx, started_rx) = mpsc::channel();
        let (seen_tx, seen_rx) = mpsc::channel();
        enqueue(store.call_background(move |db| {
            let _ = started_tx.send(retention::call_waiting(&db.waiting));
            let t0 = std::time::Instant::now();
            while !retention::call_waiting(&db.waiting)
                && t0.elapsed() < std::time::Duration::from_secs(10)
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let _ = seen_tx.send(retention::call_waiting(&db.waiting));
            Ok(())
        }));
        assert!(!started_rx.recv().unwrap(), "nothing waits yet");
        enqueue(store.call(|_| Ok(())));
        assert!(seen_rx.recv().unwrap(), "the call is seen");
        wait_for_background(&store);
        assert_eq!(store.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_queue_numbers_are_read_without_the_writer_and_show_each_answered_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.sqlite")).unwrap();
        assert_eq!(store.queue_stats(0), QueueStats::default());
        // A sale: once its call has answered, the numbers show it, as the writer reads them.
        let t = txn(1_000, TxnState::Approved);
        let seq = store.call_blocking(move |db| db.record(&t)).unwrap();
        let q = store.queue_stats(61_000);
        assert_eq!((q.pending, q.last_seq, q.oldest_age_s), (1, seq, 60));
        assert_eq!(q, store.call_blocking(|db| db.queue_stats(61_000)).unwrap());
        // The writer thread held in a call: still answered, here on the test's own thread
        // (a read that waited for the writer would never return).
        let (release_tx, busy) = hold_writer(&store);
        assert_eq!(store.queue_stats(61_000), q);
        release_tx.send(()).unwrap();
        busy.join().unwrap().unwrap();
        // An ack is a background job: shown once it has run.
        enqueue(store.call_background(move |db| db.ack(seq).map(|_| ())));
        wait_for_background(&store);
        let q = store.queue_stats(61_000);
        assert_eq!((q.pending, q.acked_seq, q.oldest_age_s), (0, seq, 0));
        assert_eq!(q, store.call_blocking(|db| db.queue_stats(61_000)).unwrap());
    }

    #[test]
    fn background_jobs_wait_for_every_call_queued_before_they_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.sqlite")).unwrap();
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::<&str>::new()));
        // Hold the writer thread until every job below is queued.
        let (release_tx, busy) = hold_writer(&store);
        for (what, background) in [
            ("ack 1", true),
            ("sale 1", false),
            ("ack 2", true),
            ("sale 2", false),
        ] {
            let o = order.clone();
            let job = move |_: &mut Db| {
                o.lock().unwrap().push(what);
                Ok(())
            };
            if background {
                enqueue(store.call_background(job));
            } else {
                enqueue(store.call(job));
            }
        }
        release_tx.send(()).unwrap();
        busy.join().unwrap().unwrap();
        // A background job queued last runs last: every job above has run.
        wait_for_background(&store);
        assert_eq!(
            *order.lock().unwrap(),
            ["sale 1", "sale 2", "ack 1", "ack 2"]
        );
    }

    #[test]
    fn a_stream_of_calls_cannot_starve_a_background_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.sqlite")).unwrap();
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let (release_tx, busy) = hold_writer(&store);
        let o = order.clone();
        enqueue(store.call_background(move |_| {
            o.lock().unwrap().push("ack".into());
            Ok(())
        }));
        for i in 0..(4 * BACKGROUND_AFTER) {
            let o = order.clone();
            enqueue(store.call(move |_| {
                o.lock().unwrap().push(format!("call {i}"));
                Ok(())
            }));
        }
        release_tx.send(()).unwrap();
        busy.join().unwrap().unwrap();
        wait_for_background(&store);
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 4 * BACKGROUND_AFTER + 1);
        let at = order.iter().position(|w| w == "ack").unwrap();
        // The held call counts as the first: the ack runs after at most BACKGROUND_AFTER calls,
        // not after all 64 queued behind it.
        assert_eq!(at, BACKGROUND_AFTER - 1, "{order:?}");
    }

    #[test]
    fn a_task_beside_the_journal_calls_it_on_its_own_thread_and_reads_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.sqlite")).unwrap();
        let s = store.clone();
        let (seq, thread, seen_here, blocking) = block_on(store.spawn(async move {
            let t = txn(1_000, TxnState::Approved);
            let thread = std::thread::current().name().map(str::to_string);
            let seq = s.call(move |db| db.record(&t)).await.unwrap();
            // Answered before the view was refreshed; a reader here sees the sale all the same.
            let q = s.queue_stats(61_000);
            // A blocking call here runs here (it would otherwise wait for itself).
            let b = s.call_blocking(|db| Ok(db.last_seq)).unwrap();
            (seq, thread, (q.pending, q.last_seq), b)
        }))
        .unwrap();
        assert_eq!(thread.as_deref(), Some("posd-journal"));
        assert_eq!(seen_here, (1, seq));
        assert_eq!(blocking, seq);
        // Another thread sees it once the journal thread has caught up: at once after a
        // queued call, which refreshes before it answers.
        store.call_blocking(|_| Ok(())).unwrap();
        let q = store.queue_stats(61_000);
        assert_eq!((q.pending, q.last_seq), (1, seq));
    }

    #[test]
    fn a_sale_beside_the_journal_goes_before_background_jobs_queued_ahead_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.sqlite")).unwrap();
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::<&str>::new()));
        let (release_tx, busy) = hold_writer(&store);
        for what in ["ack 1", "ack 2", "ack 3"] {
            let o = order.clone();
            enqueue(store.call_background(move |_| {
                o.lock().unwrap().push(what);
                Ok(())
            }));
        }
        let (s, o) = (store.clone(), order.clone());
        let sale = store.spawn(async move {
            s.call(move |_| {
                o.lock().unwrap().push("sale");
                Ok(())
            })
            .await
        });
        release_tx.send(()).unwrap();
        busy.join().unwrap().unwrap();
        block_on(sale).unwrap().unwrap();
        wait_for_background(&store);
        assert_eq!(*order.lock().unwrap(), ["sale", "ack 1", "ack 2", "ack 3"]);
    }

    #[test]
    fn close_stops_the_tasks_beside_the_journal_closes_it_and_refuses_later_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let store = Store::open(&path).unwrap();
        let t = txn(1_000, TxnState::Approved);
        store.call_blocking(move |db| db.record(&t)).unwrap();
        // A task that never ends on its own, holding a handle to the journal.
        let s = store.clone();
        let forever = store.spawn(async move {
            let _keep = s;
            std::future::pending::<()>().await
        });
        block_on(store.close());
        assert!(block_on(forever).unwrap_err().is_cancelled());
        // Closed as the last connection: the log was checkpointed and removed.
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        assert!(!std::path::Path::new(&wal).exists());
        assert!(matches!(
            store.call_blocking(|_| Ok(())),
            Err(StoreError::Closed)
        ));
        // Every event is there for the next open.
        assert_eq!(Db::open(&path).unwrap().last_seq, 1);
    }

    #[test]
    fn close_answers_the_background_calls_still_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.sqlite")).unwrap();
        let (release_tx, busy) = hold_writer(&store);
        // An ack waits behind the held call; the close is queued behind both.
        let s = store.clone();
        let ack = std::thread::spawn(move || block_on(s.call_background(|_| Ok(()))));
        while store.background.lock().unwrap().is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let s = store.clone();
        let closing = std::thread::spawn(move || block_on(s.close()));
        // The close message is queued before the held call returns.
        std::thread::sleep(std::time::Duration::from_millis(50));
        release_tx.send(()).unwrap();
        busy.join().unwrap().unwrap();
        closing.join().unwrap();
        assert!(matches!(ack.join().unwrap(), Err(StoreError::Closed)));
    }

    #[test]
    fn a_call_that_panics_is_answered_closed_and_the_journal_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("j.sqlite")).unwrap();
        let t = txn(1_000, TxnState::Approved);
        let r: Result<(), StoreError> = store.call_blocking(move |db| {
            db.record(&t)?;
            panic!("a bug inside a journal call")
        });
        assert!(matches!(r, Err(StoreError::Closed)));
        // What it committed before the panic stays (`record` commits at once: seq 1), and
        // the journal serves the next call.
        let t = txn(2_000, TxnState::Approved);
        let seq = store.call_blocking(move |db| db.record(&t)).unwrap();
        assert_eq!(seq, 2);
    }

    /// Waits for `f` on this (test) thread, outside any runtime.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }
}
