//! The durable print queue: receipts survive paper-outs, printer faults and power cuts.
//!
//! A receipt job is inserted in the same SQLite transaction as the transaction state that
//! deserves it (see `store::write_states`), so a sale is never final without its receipt being
//! owed, and a job is marked printed only after the printer said so. The printer task prints
//! the oldest job, waits on a fault (paper out, cover open, offline) and tries again by itself;
//! nothing is printed twice unless asked (`posctl reprint`), nothing is skipped. A job that may
//! have been cut off half-way is printed again in full, marked REPRINT.

use crate::core::txn::{Method, Transaction, TxnKind, TxnState};
use crate::receipt::{
    self, CopyKind, Fault, LocalTime, PayMethod, PrintOutcome, Printer, PrinterConfig,
    ReceiptConfig, ReceiptData, ReceiptKind, ReceiptStatus,
};
use crate::store::{Store, StoreError};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// What the store needs to owe a receipt for a state change.
#[derive(Debug, Clone)]
pub struct ReceiptCtx {
    pub terminal: String,
    pub utc_offset_s: i32,
}

/// The receipt a transaction state deserves, if any (pure).
pub fn receipt_for(txn: &Transaction, ctx: &ReceiptCtx, reprint: bool) -> Option<ReceiptData> {
    let (kind, status) = match (txn.kind, txn.state) {
        (TxnKind::Sale, TxnState::Approved) => (ReceiptKind::Sale, ReceiptStatus::Approved),
        (TxnKind::Sale, TxnState::ApprovedOffline) => {
            (ReceiptKind::Sale, ReceiptStatus::ApprovedOffline)
        }
        (TxnKind::Sale, TxnState::Declined) => (ReceiptKind::Sale, ReceiptStatus::Declined),
        (TxnKind::Sale, TxnState::Reversed) => (ReceiptKind::Reversal, ReceiptStatus::Reversed),
        (TxnKind::Refund, TxnState::Approved) => (ReceiptKind::Refund, ReceiptStatus::Refund),
        (TxnKind::Refund, TxnState::Declined) => (ReceiptKind::Refund, ReceiptStatus::Declined),
        (TxnKind::Void, TxnState::Voided) => (ReceiptKind::Void, ReceiptStatus::Void),
        _ => return None,
    };
    let method = match txn.method {
        Method::PaymentCode => PayMethod::PaymentCode,
        Method::OfflineCode => PayMethod::OfflineCode,
        Method::MerchantQr => PayMethod::MerchantCode,
        Method::Card => PayMethod::Card,
        Method::None => return None,
    };
    let original_ref = txn
        .detail
        .as_ref()
        .filter(|_| matches!(txn.kind, TxnKind::Refund | TxnKind::Void))
        .and_then(|d| d.get("original"))
        .and_then(|o| o.as_str())
        .map(|o| {
            let simple: String = o.chars().filter(|c| *c != '-').collect();
            simple
                .chars()
                .skip(simple.chars().count().saturating_sub(12))
                .collect::<String>()
        });
    let channel = match txn.channel.as_deref() {
        Some("wechat") => "WeChat Pay",
        Some("alipay") => "Alipay",
        Some("unionpay") => "UnionPay",
        Some("emv_cpm") => "EMV QR",
        Some("p1") => "Offline code",
        Some(other) => other,
        None => "",
    }
    .to_string();
    let mut notes = Vec::new();
    if let (TxnState::Declined | TxnState::Reversed | TxnState::Voided, Some(r)) =
        (txn.state, &txn.reason)
    {
        notes.push(r.clone());
    }
    if let Some(h) = &txn.host_ref {
        notes.push(format!("Host ref {h}"));
    }
    Some(ReceiptData {
        kind,
        status,
        terminal_id: ctx.terminal.clone(),
        // People read the short tail (the random part of the UUIDv7); the QR has it all.
        txn_ref: {
            let id = txn.id.simple().to_string();
            id[id.len().saturating_sub(12)..].to_string()
        },
        receipt_ref: crate::codes::format_receipt_ref(&ctx.terminal, &txn.id.to_string()),
        original_ref,
        method,
        channel,
        masked: txn.code_masked.clone().unwrap_or_default(),
        amount_minor: txn.amount,
        currency: txn.currency.code().to_string(),
        exponent: txn.currency.exponent(),
        at: LocalTime {
            unix_secs: (txn.updated_at / 1000) as i64,
            utc_offset_secs: ctx.utc_offset_s,
        },
        copy: CopyKind::Merchant,
        reprint,
        notes,
    })
}

/// What a print job holds: a transaction receipt (stored as before) or a Z report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum PrintDoc {
    Receipt(ReceiptData),
    Z { z_report: receipt::ZReport },
    PaySlip { pay_slip: receipt::PaySlip },
}

/// The Z report a batch close prints (pure): the money rows of the totals.
pub fn z_report_for(
    z: &crate::core::batch::ZTotals,
    ctx: &ReceiptCtx,
    currency: crate::core::money::Currency,
) -> receipt::ZReport {
    let at = |ms: u64| LocalTime {
        unix_secs: (ms / 1000) as i64,
        utc_offset_secs: ctx.utc_offset_s,
    };
    let rows = z
        .rows
        .iter()
        .filter_map(|r| {
            let state = match (r.kind.as_str(), r.state.as_str()) {
                ("sale", "approved") => ReceiptStatus::Approved,
                ("sale", "approved_offline" | "settled" | "voided") => {
                    ReceiptStatus::ApprovedOffline
                }
                ("sale", "declined") => ReceiptStatus::Declined,
                ("sale", "reversed") => ReceiptStatus::Reversed,
                ("refund", "approved") => ReceiptStatus::Refund,
                ("void", "voided") => ReceiptStatus::Void,
                _ => return None,
            };
            let method = match Method::parse(&r.method)? {
                Method::PaymentCode => PayMethod::PaymentCode,
                Method::OfflineCode => PayMethod::OfflineCode,
                Method::MerchantQr => PayMethod::MerchantCode,
                Method::Card => PayMethod::Card,
                Method::None => return None,
            };
            Some(receipt::ZRow {
                method,
                channel: r.channel.clone(),
                state,
                count: r.count,
                amount_minor: r.amount,
                currency: currency.code().to_string(),
                exponent: currency.exponent(),
            })
        })
        .collect();
    receipt::ZReport {
        terminal_id: ctx.terminal.clone(),
        batch: z.batch_no.to_string(),
        from: at(z.opened_at),
        to: at(z.closed_at),
        printed_at: at(z.closed_at),
        rows,
    }
}

/// The ESC/POS bytes of any job.
pub fn doc_bytes(doc: &PrintDoc, cfg: &ReceiptConfig) -> Result<Vec<u8>, receipt::EncodeError> {
    match doc {
        PrintDoc::Receipt(d) => job_bytes(d, cfg),
        PrintDoc::Z { z_report } => receipt::encode_all(
            &[receipt::layout_z(z_report, cfg)],
            &receipt::PrinterProfile::from_config(cfg),
        ),
        PrintDoc::PaySlip { pay_slip } => receipt::encode_all(
            &[receipt::layout_pay_slip(pay_slip, cfg)],
            &receipt::PrinterProfile::from_config(cfg),
        ),
    }
}

/// The ESC/POS bytes of a job: every configured copy of the receipt.
pub fn job_bytes(data: &ReceiptData, cfg: &ReceiptConfig) -> Result<Vec<u8>, receipt::EncodeError> {
    let copies = receipt::layout_copies(data, cfg);
    receipt::encode_all(&copies, &receipt::PrinterProfile::from_config(cfg))
}

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
                    .call(move |db| db.finish_print_job(id, Some(&msg)))
                    .await;
                continue;
            }
        };
        let _ = state.send(PrinterState::Printing);
        match printer.print(&bytes).await {
            PrintOutcome::Printed { .. } => {
                fault_wait = Duration::from_secs(2);
                if let Err(e) = store.call(move |db| db.finish_print_job(id, None)).await {
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
            .call(move |db| db.enqueue_receipt(&key, &data))
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
