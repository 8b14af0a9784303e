//! The durable print queue: receipts survive paper-outs, printer faults and power cuts.
//!
//! A receipt job is inserted in the same SQLite transaction as the transaction state that
//! deserves it (see `store::write_states`), so a sale is never final without its receipt being
//! owed, and a job is marked printed only after the printer said so. The printer task prints
//! the oldest job, waits on a fault (paper out, cover open, offline) and tries again by itself;
//! nothing is printed twice unless asked (`posctl reprint`), nothing is skipped. A job that may
//! have been cut off half-way is printed again in full, marked REPRINT.

use crate::clock::now_ms;
use crate::config::devices::PrinterConfig;
use crate::printer::{Fault, PrintOutcome, Printer};
use crate::store::{Store, StoreError};
use posd_core::receipt::{doc_bytes, receipt_for, PrintDoc, ReceiptConfig, ReceiptCtx};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// The printer's state for `posctl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterState {
    Idle,
    Printing,
    Fault(String),
}

impl ReprintError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReprintError::NoPrinter => "no_printer",
            ReprintError::NotFound => "not_found",
            ReprintError::NoReceipt(..) => "no_receipt",
            ReprintError::Store(_) => "journal",
        }
    }
}

impl std::fmt::Display for PrinterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrinterState::Idle => f.write_str("ok"),
            PrinterState::Printing => f.write_str("printing"),
            PrinterState::Fault(e) => write!(f, "fault: {e}"),
        }
    }
}

/// Prints queued jobs until shutdown. `wake` is notified when a job is queued.
pub async fn run(
    store: Store,
    printer_cfg: PrinterConfig,
    receipt_cfg: ReceiptConfig,
    wake: std::sync::Arc<Notify>,
    state: watch::Sender<PrinterState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let printer = Printer::new(printer_cfg);
    let mut fault_wait = Duration::from_secs(2);
    loop {
        let job = match store.call(|db| db.next_print_job()).await {
            Ok(j) => j,
            Err(e) => {
                log::error!("print queue: {e}");
                None
            }
        };
        let Some((id, mut doc)) = job else {
            let _ = state.send(PrinterState::Idle);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = wake.notified() => {}
                // New receipts are queued by the journal writer: look again shortly.
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            continue;
        };
        let bytes = match doc_bytes(&doc, &receipt_cfg) {
            Ok(b) => b,
            Err(e) => {
                // A job that cannot be encoded never will be: record why and move on.
                log::error!("receipt job {id} cannot be encoded: {e}");
                let msg = e.to_string();
                let _ = store
                    .call(move |db| db.finish_print_job(id, Some(&msg), now_ms()))
                    .await;
                continue;
            }
        };
        let _ = state.send(PrinterState::Printing);
        match printer.print(&bytes).await {
            PrintOutcome::Printed { .. } => {
                fault_wait = Duration::from_secs(2);
                if let Err(e) = store
                    .call(move |db| db.finish_print_job(id, None, now_ms()))
                    .await
                {
                    log::error!("receipt job {id} printed but not marked: {e}");
                }
            }
            PrintOutcome::Fault(fault) => {
                log::warn!("printer: {fault}; receipt {id} waits");
                // Cut off in the middle? Then the whole receipt again, marked REPRINT.
                let partial = matches!(fault, Fault::Disconnected(_) | Fault::Stalled);
                if let (true, PrintDoc::Receipt(data)) = (partial, &mut doc) {
                    if !data.reprint {
                        data.reprint = true;
                        let d = data.clone();
                        let _ = store.call(move |db| db.mark_print_reprint(id, &d)).await;
                    }
                }
                let msg = fault.to_string();
                let _ = store.call(move |db| db.note_print_attempt(id, &msg)).await;
                let _ = state.send(PrinterState::Fault(fault.to_string()));
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(fault_wait) => {}
                }
                fault_wait = (fault_wait * 2).min(Duration::from_secs(30));
            }
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

impl PrintHandle {
    /// Queues a reprint (marked REPRINT) of `txn_id`, or of the newest transaction with a
    /// receipt. Returns (job id, transaction id).
    pub async fn reprint(&self, txn_id: Option<String>) -> Result<(i64, String), ReprintError> {
        let found = match txn_id {
            Some(id) => self.store.call(move |db| db.txn(&id)).await?,
            None => self.store.call(|db| db.last_receipt_txn()).await?,
        };
        let txn = found.ok_or(ReprintError::NotFound)?;
        let data = receipt_for(&txn, &self.ctx, true)
            .ok_or_else(|| ReprintError::NoReceipt(txn.id.to_string(), txn.state.as_str()))?;
        let id = txn.id.to_string();
        let key = id.clone();
        let job = self
            .store
            .call(move |db| db.enqueue_receipt(&key, &data, now_ms()))
            .await?;
        self.wake.notify_one();
        Ok((job, id))
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
    #[error(transparent)]
    Store(#[from] StoreError),
}
