//! The durable print queue: receipts survive paper-outs, printer faults and power cuts, are
//! never printed twice unmarked, and the cash drawer opens once per sale.
//!
//! Jobs — receipts, drawer pulses, Z reports, pay slips — are inserted in the same SQLite
//! transaction as the state that earns them (`store::write_states`), so a sale is never final
//! without its receipt and drawer pulse being owed. The printer task:
//!
//! - asks the printer's status without printing, every `health_interval_ms` while all is well
//!   and every `fault_poll_ms` (1–2 s) while it is faulted, so "ok" is never assumed and
//!   printing resumes within 2 s of the fix;
//! - takes an owed drawer pulse before anything else (it opens at approval, as its own short
//!   job, once the printer can take it), then the oldest job;
//! - records each attempt before its first byte leaves (`sending`);
//! - gives up a job the printer could not take within its age limit (`job_max_age_h`, 24 h;
//!   `drawer_max_age_s`, 5 min for a drawer pulse): before each pick, and every minute while the
//!   printer cannot print, so what a dead printer owes is bounded by configuration;
//! - on a fault or silence after bytes left, prints the job again marked
//!   `REPRINT — printer fault`, from the first part the printer did not confirm; a printer that
//!   confirms parts (`GS ( H`) is held through paper out or an open cover and resumes from its
//!   own buffer, so nothing is sent twice; a drawer pulse that may have gone out is never sent
//!   again.
//!
//! The rule for people is in `docs/receipts.md` ("Never twice, never silently").

use crate::clock::now_ms;
use crate::config::devices::{PrinterConfig, StatusMode};
use crate::printer::{Check, Fault, Job, JobEnd, JobEvent, Printer, PrinterStatus};
use crate::store::{Expired, NextPrintJob, OwedLimits, Store, StoreError};
use posd_core::control::{PrinterHealth, PrinterState};
use posd_core::receipt::{
    config_warnings, pay_slip_of, receipt_of, reported_name_warnings, z_report_of, PrintDoc,
    PrinterModel, ReceiptConfig, ReceiptCtx,
};
use posd_core::txn::TxnKind;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

/// How long the idle queue waits before looking for new jobs (the journal writer inserts them).
const IDLE_LOOK: Duration = Duration::from_millis(500);

/// How often jobs too old are given up while the printer cannot print or holds a job.
const EXPIRE_EVERY_BLOCKED: Duration = Duration::from_secs(60);

/// Jobs one expiry step gives up at most before a pick (one writer call), and while blocked.
const EXPIRE_BEFORE_PICK: usize = 64;
const EXPIRE_BLOCKED: usize = 512;

/// Giving up what waited too long (docs/receipts.md, "What a dead printer owes").
struct Expiry {
    limits: OwedLimits,
    /// When the next step is due while the printer cannot print (or holds a job).
    next: Instant,
}

impl Expiry {
    fn new(cfg: &PrinterConfig) -> Expiry {
        Expiry {
            limits: OwedLimits {
                job_max_age_ms: cfg.job_max_age_h.saturating_mul(3_600_000),
                drawer_max_age_ms: cfg.drawer_max_age_s.saturating_mul(1_000),
            },
            // The first pass gives up what waited too long while posd was stopped.
            next: Instant::now(),
        }
    }

    /// Says what a step gave up, with the fix, and shows it in the printer's health.
    fn saw(&self, e: Expired, store: &Store, hs: &mut Health) {
        if e.now > 0 {
            log::warn!(
                "printer: {} job(s) given up: the printer could not take them within job_max_age_h = {} h (a drawer pulse: drawer_max_age_s = {} s); {} given up since the journal was made. `posctl reprint <txn>` prints a receipt again, `posctl reprint --batch <n>` a Z report",
                e.now,
                self.limits.job_max_age_ms / 3_600_000,
                self.limits.drawer_max_age_ms / 1_000,
                e.total
            );
            hs.h.waiting = store.print_waiting();
        }
        hs.h.expired = e.total;
        hs.publish();
    }

    /// A step while nothing prints (`holding`: the job the printer holds), when one is due.
    async fn when_due(&mut self, store: &Store, hs: &mut Health, holding: Option<i64>) {
        if Instant::now() < self.next {
            return;
        }
        let limits = self.limits;
        let step = store
            .call(move |db| db.expire_owed_print_jobs(now_ms(), limits, EXPIRE_BLOCKED, holding))
            .await;
        match step {
            Ok(e) => {
                // A full step: more may be due, go on soon.
                self.next = Instant::now()
                    + if e.now as usize >= EXPIRE_BLOCKED {
                        Duration::from_secs(1)
                    } else {
                        EXPIRE_EVERY_BLOCKED
                    };
                self.saw(e, store, hs);
            }
            Err(e) => {
                self.next = Instant::now() + EXPIRE_EVERY_BLOCKED;
                log::error!("print queue: {e}");
            }
        }
    }
}

/// The printer's health as the queue knows it, published on a watch channel.
struct Health {
    h: PrinterHealth,
    tx: watch::Sender<PrinterHealth>,
    /// The printer answered its status at least once since start: falling silent is a fault.
    answered: bool,
    mode: StatusMode,
}

impl Health {
    fn publish(&mut self) {
        let h = self.h.clone();
        self.tx.send_if_modified(|cur| {
            let changed = cur.state != h.state
                || cur.paper_near_end != h.paper_near_end
                || cur.detail != h.detail
                || cur.waiting != h.waiting
                || cur.expired != h.expired
                || cur.warnings != h.warnings
                || cur.reported_name != h.reported_name;
            *cur = h;
            changed
        });
    }

    fn saw_status(&mut self, st: &PrinterStatus) {
        self.answered = true;
        self.h.state = match st.fault() {
            Some(Fault::CoverOpen) => PrinterState::CoverOpen,
            Some(Fault::PaperOut) => PrinterState::PaperOut,
            Some(Fault::PrinterError) => PrinterState::Error,
            Some(_) => PrinterState::Offline,
            None if st.paper_near_end => PrinterState::PaperNearEnd,
            None => PrinterState::Ok,
        };
        self.h.paper_near_end = st.paper_near_end && !st.paper_out;
        self.h.detail = None;
        self.h.checked_at = now_ms();
    }

    fn saw_check(&mut self, c: Check) {
        match c {
            Check::Status(st) => self.saw_status(&st),
            Check::NoStatus => {
                self.h.state = PrinterState::Unchecked;
                self.h.detail = None;
            }
            Check::NotAnswering(d) => {
                self.h.state = PrinterState::NotAnswering;
                self.h.detail = Some(d);
            }
            Check::Unreachable(d) => {
                self.h.state = PrinterState::Unreachable;
                self.h.detail = Some(d);
            }
        }
        self.h.checked_at = now_ms();
    }

    fn saw_fault(&mut self, f: &Fault) {
        match f {
            Fault::PaperOut => self.h.state = PrinterState::PaperOut,
            Fault::CoverOpen => self.h.state = PrinterState::CoverOpen,
            Fault::PrinterError => self.h.state = PrinterState::Error,
            Fault::Offline => {
                self.h.state = PrinterState::NotAnswering;
                self.h.detail = Some(f.to_string());
            }
            Fault::Unreachable(d) => {
                self.h.state = PrinterState::Unreachable;
                self.h.detail = Some(d.clone());
            }
            other => {
                self.h.state = PrinterState::NotAnswering;
                self.h.detail = Some(other.to_string());
            }
        }
        self.h.checked_at = now_ms();
    }

    /// Whether jobs must wait: the printer says it cannot print, cannot be reached, or fell
    /// silent (a printer that never answered is printed to blind unless status is required).
    fn blocks(&self) -> bool {
        match self.h.state {
            PrinterState::NotAnswering => self.answered || self.mode == StatusMode::Required,
            s => s.is_fault(),
        }
    }
}

/// Prints queued jobs until shutdown. `wake` is notified when a job is queued; `health`
/// carries what the printer last said.
pub async fn run(
    store: Store,
    printer_cfg: PrinterConfig,
    receipt_cfg: ReceiptConfig,
    wake: std::sync::Arc<Notify>,
    health: watch::Sender<PrinterHealth>,
    mut shutdown: watch::Receiver<bool>,
) {
    let printer = Printer::new(printer_cfg.clone());
    let spec = receipt_cfg.printer_model.spec();
    let confirm = spec.process_id && printer.can_confirm();
    let mut hs = Health {
        h: PrinterHealth {
            warnings: config_warnings(&receipt_cfg),
            job_max_age_h: printer_cfg.job_max_age_h,
            ..PrinterHealth::default()
        },
        tx: health,
        answered: false,
        mode: printer_cfg.status,
    };
    for w in &hs.h.warnings {
        log::warn!("printer: {w}");
    }
    let want_name = printer_cfg.status != StatusMode::Off
        && (spec.reports_name || receipt_cfg.printer_model == PrinterModel::Generic);
    let mut named = false;
    let fault_poll = Duration::from_millis(printer_cfg.fault_poll_ms);
    let health_every = Duration::from_millis(printer_cfg.health_interval_ms);
    let mut expiry = Expiry::new(&printer_cfg);
    let mut next_check = Instant::now();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if Instant::now() >= next_check {
            let c = tokio::select! {
                _ = shutdown.changed() => return,
                c = printer.check() => c,
            };
            hs.saw_check(c);
            hs.h.waiting = store.print_waiting();
            if !named && want_name && hs.h.state.is_ok() {
                named = true;
                if let Some(name) = printer.identify().await {
                    for w in reported_name_warnings(&receipt_cfg, &name) {
                        log::warn!("printer: {w}");
                        hs.h.warnings.push(w);
                    }
                    hs.h.reported_name = Some(name);
                }
            }
            hs.publish();
            next_check = Instant::now()
                + if hs.blocks() {
                    fault_poll
                } else {
                    health_every
                };
        }
        if hs.blocks() {
            expiry.when_due(&store, &mut hs, None).await;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep_until(next_check) => {}
            }
            continue;
        }
        // Jobs too old are given up before one is taken; a full step takes none (more may be
        // due), so a job too old is never printed.
        let limits = expiry.limits;
        let pick = store
            .call(move |db| {
                let e = db.expire_owed_print_jobs(now_ms(), limits, EXPIRE_BEFORE_PICK, None)?;
                let full = e.now as usize >= EXPIRE_BEFORE_PICK;
                Ok((e, full, if full { None } else { db.next_print_job()? }))
            })
            .await;
        let job = match pick {
            Ok((e, full, j)) => {
                expiry.saw(e, &store, &mut hs);
                if full {
                    continue;
                }
                j
            }
            Err(e) => {
                log::error!("print queue: {e}");
                None
            }
        };
        let Some(job) = job else {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(next_check.min(Instant::now() + IDLE_LOOK)) => {}
            }
            continue;
        };
        // The count includes the job now taken, so `status` never shows nothing waiting while a
        // job (the close's Z report, say) has yet to print.
        hs.h.waiting = store.print_waiting();
        hs.publish();
        if job.sending {
            // posd stopped (or lost power) while this job was going out.
            let settled = settle_uncertain(
                &store,
                job.clone(),
                job.parts_done,
                "posd stopped while printing",
            )
            .await;
            // The journal refused the write (a full disk, a flash error): the same job would be
            // picked again at once. Wait as for a printer fault instead of spinning.
            if !settled && stopped_within(&mut shutdown, fault_poll).await {
                return;
            }
            continue;
        }
        let at = Printing {
            store: &store,
            printer: &printer,
            receipt_cfg: &receipt_cfg,
            confirm,
        };
        let end = match print_one(at, &job, &mut hs, &mut expiry, &mut shutdown).await {
            Attempt::Ended(end) => end,
            Attempt::Unprintable { recorded: true } => continue,
            Attempt::Unprintable { recorded: false } => {
                // Not recorded as failed: it would be picked again at once.
                if stopped_within(&mut shutdown, fault_poll).await {
                    return;
                }
                continue;
            }
            Attempt::Shutdown => return,
        };
        match end {
            JobEnd::Printed { status } => {
                let id = job.id;
                if let Err(e) = store
                    .call(move |db| db.finish_print_job(id, None, now_ms()))
                    .await
                {
                    log::error!("print job {id} printed but not marked: {e}");
                }
                match status {
                    Some(st) => hs.saw_status(&st),
                    None if hs.h.state == PrinterState::Printing => {
                        hs.h.state = if hs.answered {
                            PrinterState::Ok
                        } else {
                            PrinterState::Unchecked
                        }
                    }
                    None => {}
                }
            }
            JobEnd::NotSent(f) => {
                log::warn!("printer: {f}; {} {} waits", job.doc.kind(), job.id);
                let (id, msg) = (job.id, f.to_string());
                let _ = store.call(move |db| db.unsend_print_job(id, &msg)).await;
                hs.saw_fault(&f);
                next_check = Instant::now() + fault_poll;
            }
            JobEnd::Uncertain { fault, done } => {
                log::warn!(
                    "printer: {fault} after {} {} went out",
                    job.doc.kind(),
                    job.id
                );
                let _ = settle_uncertain(&store, job, done, &fault.to_string()).await;
                hs.saw_fault(&fault);
                // Ask again soon: it prints again once the printer answers and can print.
                next_check = Instant::now() + fault_poll;
            }
        }
        hs.h.waiting = store.print_waiting();
        hs.publish();
    }
}

/// Waits `d`, or less if posd stops meanwhile: true when it stops.
async fn stopped_within(shutdown: &mut tokio::sync::watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.changed() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// How one attempt went.
enum Attempt {
    Ended(JobEnd),
    /// The document cannot be encoded (recorded as failed, unless the journal refused it).
    Unprintable {
        recorded: bool,
    },
    /// posd is stopping: the job stays as it is (`sending` if bytes may have left: uncertain at
    /// the next start).
    Shutdown,
}

/// What an attempt prints with.
#[derive(Clone, Copy)]
struct Printing<'a> {
    store: &'a Store,
    printer: &'a Printer,
    receipt_cfg: &'a ReceiptConfig,
    /// The printer confirms the parts it printed (`GS ( H`).
    confirm: bool,
}

/// One attempt at one job.
async fn print_one(
    at: Printing<'_>,
    job: &NextPrintJob,
    hs: &mut Health,
    expiry: &mut Expiry,
    shutdown: &mut watch::Receiver<bool>,
) -> Attempt {
    let Printing {
        store,
        printer,
        receipt_cfg,
        confirm,
    } = at;
    // The words on paper are the shop's language when the job was queued: a receipt is a
    // record of its moment, even when it prints after a language push (paper out, say). A
    // job queued before jobs kept their language prints in the language in force now.
    let cfg = ReceiptConfig {
        language: job.language.unwrap_or_else(crate::lang::current),
        ..receipt_cfg.clone()
    };
    let parts = match job.doc.parts(&cfg) {
        Ok(p) => p,
        Err(e) => {
            // A job that cannot be encoded never will be: record why and move on.
            log::error!("print job {} cannot be encoded: {e}", job.id);
            let (id, msg) = (job.id, e.to_string());
            let recorded = store
                .call(move |db| db.finish_print_job(id, Some(&msg), now_ms()))
                .await
                .map_err(|e| log::error!("print job {id}: {e}"))
                .is_ok();
            return Attempt::Unprintable { recorded };
        }
    };
    hs.h.state = PrinterState::Printing;
    hs.publish();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = Job {
        parts: &parts,
        first: job.parts_done.min(parts.len()),
        confirm: confirm && !job.doc.is_drawer(),
        tag: job.id.unsigned_abs(),
    };
    let run = printer.run(&spec, &tx);
    tokio::pin!(run);
    // A printer may hold this job through a fault for days (a confirming one, paper out): the
    // others still age and are given up meanwhile; this one is in its buffer.
    expiry.next = Instant::now() + EXPIRE_EVERY_BLOCKED;
    let end = loop {
        tokio::select! {
            end = &mut run => break end,
            Some(ev) = rx.recv() => on_event(store, job.id, ev, hs).await,
            _ = tokio::time::sleep_until(expiry.next) => {
                expiry.when_due(store, hs, Some(job.id)).await;
            }
            _ = shutdown.changed() => return Attempt::Shutdown,
        }
    };
    while let Ok(ev) = rx.try_recv() {
        on_event(store, job.id, ev, hs).await;
    }
    Attempt::Ended(end)
}

async fn on_event(store: &Store, id: i64, ev: JobEvent, hs: &mut Health) {
    match ev {
        JobEvent::Sending(ack) => match store.call(move |db| db.start_print_job(id)).await {
            // Only once the attempt is on disk may the first byte leave.
            Ok(()) => {
                let _ = ack.send(());
            }
            Err(e) => log::error!("print job {id} not started: {e}"),
        },
        JobEvent::Status(st) => {
            hs.saw_status(&st);
            if st.fault().is_none() {
                hs.h.state = PrinterState::Printing;
            }
            hs.publish();
        }
        JobEvent::PartsDone(n) => {
            if let Err(e) = store.call(move |db| db.print_job_progress(id, n)).await {
                log::error!("print job {id}: progress not recorded: {e}");
            }
        }
    }
}

/// A job whose delivery is uncertain: a drawer pulse is never sent again; anything else waits
/// to print again, marked `REPRINT — printer fault`, from the first part not confirmed (at most
/// `MAX_UNCERTAIN_SENDS` sends in all). False: the journal did not record it.
async fn settle_uncertain(store: &Store, job: NextPrintJob, done: usize, why: &str) -> bool {
    let id = job.id;
    let why = why.to_string();
    let r = if job.doc.is_drawer() {
        store
            .call(move |db| db.unconfirmed_print_job(id, &why, now_ms()))
            .await
    } else {
        let mut doc = job.doc;
        let kind = doc.kind();
        doc.mark_printer_fault();
        let language = job.language.unwrap_or_else(crate::lang::current);
        let given_up = store
            .call(move |db| db.requeue_uncertain_print_job(id, &doc, language, done, &why))
            .await;
        if let Ok(true) = given_up {
            let again = if kind == "pay_slip" {
                " --pay-slip"
            } else {
                ""
            };
            log::error!(
                txn_id = job.txn_id.as_str();
                "printer: {kind} {id} went out {} times without the printer confirming it; not \
                 sent again (it may have printed). `posctl reprint {}{again}` prints it again",
                crate::store::MAX_UNCERTAIN_SENDS,
                job.txn_id
            );
        }
        given_up.map(|_| ())
    };
    match r {
        Ok(()) => true,
        Err(e) => {
            log::error!("print job {id}: {e}");
            false
        }
    }
}

/// Which document to reprint or render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A transaction's receipt (a batch close: its Z report); `None`: the newest transaction
    /// with a receipt.
    Txn(Option<String>),
    /// The pay slip of a merchant-presented order.
    PaySlip(Option<String>),
    /// The Z report of this batch number.
    Batch(u64),
}

impl Target {
    /// The target a control request names.
    pub fn of(
        txn_id: Option<String>,
        batch: Option<u64>,
        pay_slip: bool,
    ) -> Result<Target, ReprintError> {
        match (txn_id, batch, pay_slip) {
            (Some(_), Some(_), _) | (None, Some(_), true) => Err(ReprintError::Ambiguous),
            (None, Some(b), false) => Ok(Target::Batch(b)),
            (t, None, true) => Ok(Target::PaySlip(t)),
            (t, None, false) => Ok(Target::Txn(t)),
        }
    }
}

/// A document found for a reprint or a rendering.
#[derive(Debug, Clone)]
pub struct Found {
    pub doc: PrintDoc,
    pub txn_id: String,
}

/// Finds the document `target` names, unmarked (pure lookups in the journal).
pub async fn find_doc(
    store: &Store,
    ctx: &ReceiptCtx,
    target: Target,
) -> Result<Found, ReprintError> {
    match target {
        Target::Batch(no) => {
            let close = store
                .call(move |db| db.batch_by_no(no))
                .await?
                .ok_or(ReprintError::NoBatch(no))?;
            let z = z_report_of(&close, ctx).ok_or(ReprintError::NoBatch(no))?;
            Ok(Found {
                doc: PrintDoc::Z { z_report: z },
                txn_id: close.id.to_string(),
            })
        }
        Target::Txn(None) => {
            let txn = store
                .call(|db| db.last_receipt_txn())
                .await?
                .ok_or(ReprintError::NotFound)?;
            let doc = receipt_of(&txn, ctx)
                .ok_or_else(|| ReprintError::NoReceipt(txn.id.to_string(), txn.state.as_str()))?;
            Ok(Found {
                doc: PrintDoc::Receipt(doc),
                txn_id: txn.id.to_string(),
            })
        }
        Target::PaySlip(None) => Err(ReprintError::Ambiguous),
        Target::Txn(Some(id)) => {
            let txn = store
                .call(move |db| db.txn(&id))
                .await?
                .ok_or(ReprintError::NotFound)?;
            let doc = if txn.kind == TxnKind::BatchClose {
                z_report_of(&txn, ctx).map(|z| PrintDoc::Z { z_report: z })
            } else {
                receipt_of(&txn, ctx).map(PrintDoc::Receipt)
            };
            let doc =
                doc.ok_or_else(|| ReprintError::NoReceipt(txn.id.to_string(), txn.state.as_str()))?;
            Ok(Found {
                doc,
                txn_id: txn.id.to_string(),
            })
        }
        Target::PaySlip(Some(id)) => {
            let txn = store
                .call(move |db| db.txn(&id))
                .await?
                .ok_or(ReprintError::NotFound)?;
            let slip = pay_slip_of(&txn, ctx)
                .ok_or_else(|| ReprintError::NoPaySlip(txn.id.to_string()))?;
            Ok(Found {
                doc: PrintDoc::PaySlip { pay_slip: slip },
                txn_id: txn.id.to_string(),
            })
        }
    }
}

/// What reprinting needs: the journal, the receipt context and the printer task's wake-up.
/// Shared by the control socket, fleet commands and the keypad menu.
#[derive(Clone)]
pub struct PrintHandle {
    pub store: Store,
    pub ctx: ReceiptCtx,
    pub wake: std::sync::Arc<Notify>,
}

/// A reprint queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub job: i64,
    pub txn_id: String,
    /// `receipt`, `pay_slip` or `z_report`.
    pub kind: &'static str,
    /// The same document of the same transaction was still waiting to print: `job` is that
    /// one, and no other copy was queued (`Db::enqueue_reprint`).
    pub already_queued: bool,
}

impl PrintHandle {
    /// Queues a reprint (marked REPRINT) of `txn_id`'s receipt, or of the newest transaction
    /// with a receipt.
    pub async fn reprint(&self, txn_id: Option<String>) -> Result<Queued, ReprintError> {
        self.reprint_target(Target::Txn(txn_id)).await
    }

    /// Queues a reprint (marked REPRINT) of any receipt, pay slip or Z report.
    pub async fn reprint_target(&self, target: Target) -> Result<Queued, ReprintError> {
        let Found { mut doc, txn_id } = find_doc(&self.store, &self.ctx, target).await?;
        doc.mark_reprint();
        let kind = doc.kind();
        let key = txn_id.clone();
        let (job, fresh) = self
            .store
            .call(move |db| db.enqueue_reprint(&key, &doc, now_ms()))
            .await?;
        self.wake.notify_one();
        Ok(Queued {
            job,
            txn_id,
            kind,
            already_queued: !fresh,
        })
    }
}

/// Why a reprint or render was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReprintError {
    #[error("no printer is configured ([devices.printer])")]
    NoPrinter,
    #[error("no such transaction")]
    NotFound,
    #[error("transaction {0} has no receipt (state {1})")]
    NoReceipt(String, &'static str),
    #[error("transaction {0} is not a merchant-QR order with a pay slip")]
    NoPaySlip(String),
    #[error("no batch number {0} was closed on this terminal")]
    NoBatch(u64),
    #[error("name one document: a transaction, a transaction's pay slip, or a batch number")]
    Ambiguous,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReprintError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReprintError::NoPrinter => "no_printer",
            ReprintError::NotFound => "not_found",
            ReprintError::NoReceipt(..) | ReprintError::NoPaySlip(_) => "no_receipt",
            ReprintError::NoBatch(_) => "no_batch",
            ReprintError::Ambiguous => "bad_request",
            ReprintError::Store(_) => "journal",
        }
    }
}
