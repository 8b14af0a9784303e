//! The local control API (DESIGN §4): a Unix socket speaking one JSON object per line.
//!
//! Till software ("ECR") and `posctl` use it to ask for status, the queue and transactions, and
//! to run sales. Every request gets exactly one response line `{"ok":true,"data":...}` or
//! `{"ok":false,"error":"...","code":"..."}`; a malformed line gets an error and changes nothing.

use crate::core::money::Currency;
use crate::engine::{EngineMsg, SaleError};
use crate::link::now_ms;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach posd at {path}: {source} (is the daemon running?)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad answer from posd: {0}")]
    BadAnswer(String),
    #[error("{message}")]
    Refused { code: String, message: String },
}

/// A request line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    Status,
    Queue,
    TxnList {
        #[serde(default)]
        limit: Option<u32>,
    },
    TxnShow {
        id: String,
    },
    /// `amount` is a decimal string in the currency's units ("12.50").
    Sale {
        amount: String,
        #[serde(default)]
        currency: Option<String>,
        /// A code or card swipe as if scanned; absent: the next scan pays.
        #[serde(default)]
        code: Option<String>,
        /// "merchant_qr": the terminal shows a code; anything else: the customer presents one.
        #[serde(default)]
        method: Option<String>,
    },
    /// Refund (all or part of) a sale: named by `original` (txn id) or by `receipt` (the text
    /// of its receipt's QR); neither: the next receipt scanned names it.
    Refund {
        #[serde(default)]
        original: Option<String>,
        #[serde(default)]
        receipt: Option<String>,
        /// Decimal amount ("4.50"); absent: what is left to refund.
        #[serde(default)]
        amount: Option<String>,
        /// Idempotency key: repeating it never refunds twice.
        #[serde(default)]
        refund_id: Option<String>,
        pin: String,
    },
    /// Void an offline sale not yet settled.
    Void {
        original: String,
        pin: String,
    },
    /// Close the batch: Z report printed and sent to the host for reconciliation.
    BatchClose,
    /// Batch closes, newest first, with the host's reconciliation.
    Batches {
        #[serde(default)]
        limit: Option<u32>,
    },
    /// The sale in progress (and the merchant QR it shows).
    Current,
    Cancel,
    /// A code as if scanned (the way card networks' simulated readers work).
    Scan {
        code: String,
    },
    /// Print a transaction's receipt again (default: the last one), marked REPRINT.
    Reprint {
        #[serde(default)]
        txn_id: Option<String>,
    },
    /// The ESC/POS bytes posd would print for a transaction (default: the last one), base64.
    Receipt {
        #[serde(default)]
        txn_id: Option<String>,
    },
    /// The print queue, newest first.
    PrintJobs {
        #[serde(default)]
        limit: Option<u32>,
    },
}

/// Produces the status document (shared with the MQTT `status` topic).
pub type StatusProvider = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Value> + Send>> + Send + Sync,
>;

#[derive(Clone)]
pub struct ControlCtx {
    pub store: Store,
    pub engine: mpsc::Sender<EngineMsg>,
    pub currency: Currency,
    pub status: StatusProvider,
    pub receipt_ctx: crate::printq::ReceiptCtx,
    pub receipt_cfg: crate::receipt::ReceiptConfig,
    /// Reprints; None when no printer is configured.
    pub printer: Option<crate::printq::PrintHandle>,
}

/// The receipt a transaction earns, or the refusal to send back.
fn receipt_data(
    ctx: &ControlCtx,
    txn: &crate::core::txn::Transaction,
    reprint: bool,
) -> Result<crate::receipt::ReceiptData, Value> {
    crate::printq::receipt_for(txn, &ctx.receipt_ctx, reprint).ok_or_else(|| {
        err_json(
            "no_receipt",
            &format!(
                "transaction {} has no receipt ({})",
                txn.id,
                txn.state.as_str()
            ),
        )
    })
}

/// The transaction a receipt request names, or the newest one with a receipt.
async fn receipt_txn(
    ctx: &ControlCtx,
    txn_id: Option<String>,
) -> Result<crate::core::txn::Transaction, Value> {
    let r = match txn_id {
        Some(id) => ctx.store.call(move |db| db.txn(&id)).await,
        None => ctx.store.call(|db| db.last_receipt_txn()).await,
    };
    match r {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(err_json("not_found", "no such transaction")),
        Err(e) => Err(store_err(e)),
    }
}

/// Binds the socket (replacing a stale one), mode 0660.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let err = |source| ControlError::Listen {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if path.exists() {
        // A live daemon answers; a stale socket from a crash is replaced.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another posd is listening there",
            )));
        }
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path).map_err(err)?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    Ok(l)
}

pub async fn serve(listener: UnixListener, ctx: ControlCtx, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, ctx).await {
                            log::debug!("control connection: {e}");
                        }
                    });
                }
                Err(e) => {
                    log::warn!("control accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

const MAX_LINE: usize = 64 * 1024;

async fn connection(stream: UnixStream, ctx: ControlCtx) -> Result<(), std::io::Error> {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut lines)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let answer = if buf.len() > MAX_LINE {
            // Skip the rest of the oversized line.
            let mut sink = Vec::new();
            lines.read_until(b'\n', &mut sink).await?;
            err_json("too_long", "request line too long")
        } else {
            match serde_json::from_slice::<ControlRequest>(&buf) {
                Ok(req) => handle(req, &ctx).await,
                Err(e) => err_json("bad_request", &format!("bad request: {e}")),
            }
        };
        let mut out = serde_json::to_vec(&answer).unwrap_or_default();
        out.push(b'\n');
        w.write_all(&out).await?;
    }
}

fn err_json(code: &str, message: &str) -> Value {
    json!({"ok": false, "code": code, "error": message})
}

fn ok_json(data: Value) -> Value {
    json!({"ok": true, "data": data})
}

fn store_err(e: StoreError) -> Value {
    err_json("journal", &e.to_string())
}

fn sale_err(e: SaleError) -> Value {
    err_json(e.code(), &e.to_string())
}

async fn handle(req: ControlRequest, ctx: &ControlCtx) -> Value {
    match req {
        ControlRequest::Status => ok_json((ctx.status)().await),
        ControlRequest::Queue => {
            let now = now_ms();
            match ctx.store.call(move |db| db.queue_stats(now)).await {
                Ok(q) => ok_json(json!(q)),
                Err(e) => store_err(e),
            }
        }
        ControlRequest::TxnList { limit } => {
            let limit = limit.unwrap_or(50).min(10_000);
            match ctx.store.call(move |db| db.txns(limit)).await {
                Ok(t) => ok_json(json!(t)),
                Err(e) => store_err(e),
            }
        }
        ControlRequest::TxnShow { id } => {
            let key = id.clone();
            let r = ctx
                .store
                .call(move |db| Ok((db.txn(&key)?, db.history(&key)?)))
                .await;
            match r {
                Ok((Some(t), h)) => {
                    let history: Vec<Value> = h
                        .into_iter()
                        .map(|(seq, state, at)| json!({"seq": seq, "state": state, "at": at}))
                        .collect();
                    ok_json(json!({"txn": t, "history": history}))
                }
                Ok((None, _)) => err_json("not_found", &format!("no transaction {id}")),
                Err(e) => store_err(e),
            }
        }
        ControlRequest::Sale {
            amount,
            currency,
            code,
            method,
        } => {
            let method = match method.as_deref() {
                None | Some("code" | "card" | "payment_code" | "presented") => {
                    crate::engine::SaleMethod::Presented
                }
                Some("merchant_qr") => crate::engine::SaleMethod::MerchantQr,
                Some(other) => {
                    return err_json(
                        "bad_request",
                        &format!("unknown method {other:?}: merchant_qr, code or card"),
                    )
                }
            };
            let cur = match currency {
                Some(c) => match Currency::from_code(&c) {
                    Ok(c) => c,
                    Err(e) => return err_json("currency", &e.to_string()),
                },
                None => ctx.currency,
            };
            let minor = match cur.parse_amount(&amount) {
                Ok(m) => m,
                Err(e) => return err_json("amount", &e.to_string()),
            };
            let (tx, rx) = oneshot::channel();
            let msg = EngineMsg::Sale {
                amount: minor,
                currency: cur,
                code,
                method,
                reply: tx,
            };
            engine_call(ctx, msg, rx).await
        }
        ControlRequest::Refund {
            original,
            receipt,
            amount,
            refund_id,
            pin,
        } => {
            let original = match (original, receipt) {
                (Some(o), _) => Some(o),
                (None, Some(r)) => {
                    let patterns = match crate::codes::Patterns::new(Default::default()) {
                        Ok(p) => p,
                        Err(e) => return err_json("internal", &e.to_string()),
                    };
                    match patterns.receipt_ref(r.trim()) {
                        Some(rr) => Some(rr.txn_id),
                        None => return err_json("bad_code", "not a posd receipt reference"),
                    }
                }
                (None, None) => None,
            };
            let amount = match amount {
                Some(a) => match ctx.currency.parse_amount(&a) {
                    Ok(m) => Some(m),
                    Err(e) => return err_json("amount", &e.to_string()),
                },
                None => None,
            };
            let (tx, rx) = oneshot::channel();
            let msg = EngineMsg::Refund {
                req: crate::engine::RefundRequest {
                    original,
                    amount,
                    refund_id,
                    pin,
                },
                reply: tx,
            };
            engine_call(ctx, msg, rx).await
        }
        ControlRequest::Void { original, pin } => {
            let (tx, rx) = oneshot::channel();
            let msg = EngineMsg::Void {
                original,
                pin,
                reply: tx,
            };
            engine_call(ctx, msg, rx).await
        }
        ControlRequest::BatchClose => {
            let (tx, rx) = oneshot::channel();
            engine_call(ctx, EngineMsg::BatchClose { reply: tx }, rx).await
        }
        ControlRequest::Batches { limit } => {
            let limit = limit.unwrap_or(10).min(1000);
            match ctx.store.call(move |db| db.batches(limit)).await {
                Ok(t) => ok_json(json!(t)),
                Err(e) => store_err(e),
            }
        }
        ControlRequest::Current => {
            let (tx, rx) = oneshot::channel();
            if ctx
                .engine
                .send(EngineMsg::Current { reply: tx })
                .await
                .is_err()
            {
                return sale_err(SaleError::Stopping);
            }
            match rx.await {
                Ok(v) => ok_json(v),
                Err(_) => sale_err(SaleError::Stopping),
            }
        }
        ControlRequest::Cancel => {
            let (tx, rx) = oneshot::channel();
            if ctx
                .engine
                .send(EngineMsg::Cancel { reply: tx })
                .await
                .is_err()
            {
                return sale_err(SaleError::Stopping);
            }
            match rx.await {
                Ok(Ok(m)) => ok_json(json!({"message": m})),
                Ok(Err(e)) => sale_err(e),
                Err(_) => sale_err(SaleError::Stopping),
            }
        }
        ControlRequest::Reprint { txn_id } => {
            let r = match &ctx.printer {
                Some(p) => p.reprint(txn_id).await,
                None => Err(crate::printq::ReprintError::NoPrinter),
            };
            match r {
                Ok((job, id)) => ok_json(json!({"job": job, "txn_id": id})),
                Err(e) => err_json(e.code(), &e.to_string()),
            }
        }
        ControlRequest::Receipt { txn_id } => {
            let txn = match receipt_txn(ctx, txn_id).await {
                Ok(t) => t,
                Err(e) => return e,
            };
            let data = match receipt_data(ctx, &txn, false) {
                Ok(d) => d,
                Err(e) => return e,
            };
            match crate::printq::job_bytes(&data, &ctx.receipt_cfg) {
                Ok(bytes) => {
                    use base64::Engine as _;
                    ok_json(json!({
                        "txn_id": txn.id.to_string(),
                        "width": ctx.receipt_cfg.width,
                        "receipt_ref": data.receipt_ref,
                        "escpos_b64": base64::engine::general_purpose::STANDARD.encode(bytes),
                    }))
                }
                Err(e) => err_json("encode", &e.to_string()),
            }
        }
        ControlRequest::PrintJobs { limit } => {
            let limit = limit.unwrap_or(20).min(1000);
            match ctx.store.call(move |db| db.print_jobs(limit)).await {
                Ok(rows) => ok_json(json!(rows
                    .into_iter()
                    .map(|(id, txn, state, attempts, err)| json!({"id": id, "txn_id": txn, "state": state, "attempts": attempts, "last_error": err}))
                    .collect::<Vec<_>>())),
                Err(e) => store_err(e),
            }
        }
        ControlRequest::Scan { code } => {
            let msg = EngineMsg::Code {
                text: code,
                source: "control".into(),
            };
            if ctx.engine.send(msg).await.is_err() {
                return sale_err(SaleError::Stopping);
            }
            ok_json(json!({"message": "code passed to the sale in progress"}))
        }
    }
}

/// Sends a message to the engine and answers with its reply (or its refusal).
async fn engine_call<T: Serialize>(
    ctx: &ControlCtx,
    msg: EngineMsg,
    rx: oneshot::Receiver<Result<T, SaleError>>,
) -> Value {
    if ctx.engine.send(msg).await.is_err() {
        return sale_err(SaleError::Stopping);
    }
    match rx.await {
        Ok(Ok(r)) => ok_json(json!(r)),
        Ok(Err(e)) => sale_err(e),
        Err(_) => sale_err(SaleError::Stopping),
    }
}

/// A client connection, for posctl, the demo and tests.
pub struct ControlClient {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl ControlClient {
    pub async fn connect(path: &Path) -> Result<ControlClient, ControlError> {
        let s = UnixStream::connect(path)
            .await
            .map_err(|source| ControlError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        let (r, w) = s.into_split();
        Ok(ControlClient {
            reader: BufReader::new(r),
            writer: w,
        })
    }

    /// Sends one request and returns `data` of an ok answer, or the refusal.
    pub async fn call(&mut self, req: &ControlRequest) -> Result<Value, ControlError> {
        let mut line =
            serde_json::to_vec(req).map_err(|e| ControlError::BadAnswer(e.to_string()))?;
        line.push(b'\n');
        self.call_raw(&line).await
    }

    /// Sends raw bytes (one line) and parses the answer.
    pub async fn call_raw(&mut self, line: &[u8]) -> Result<Value, ControlError> {
        self.writer.write_all(line).await?;
        let mut answer = String::new();
        let n = self.reader.read_line(&mut answer).await?;
        if n == 0 {
            return Err(ControlError::BadAnswer("connection closed".into()));
        }
        let v: Value =
            serde_json::from_str(&answer).map_err(|e| ControlError::BadAnswer(e.to_string()))?;
        if v.get("ok") == Some(&Value::Bool(true)) {
            Ok(v.get("data").cloned().unwrap_or(Value::Null))
        } else {
            Err(ControlError::Refused {
                code: v
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string(),
                message: v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("refused")
                    .to_string(),
            })
        }
    }
}
