//! The local control API (DESIGN §4): the Unix socket server and client for the typed contract
//! in `posd_core::control`.
//!
//! Till software ("ECR") and `posctl` use it to ask for status, the queue and transactions, and
//! to run sales. Every request line gets exactly one answer line; a malformed line gets a
//! refusal and changes nothing.

use crate::clock::now_ms;
use crate::engine::{EngineMsg, RefundRequest, SaleError};
use crate::printq::Target;
use crate::store::{Store, StoreError};
use posd_core::control::{self as ctl, answer_line, codes, AnswerError, Command, Refusal, Request};
use posd_core::money::Currency;
use posd_core::receipt::{PrintDoc, ReceiptConfig, ReceiptCtx};
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot listen on {path}: {error}")]
    Listen {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Said once, with the fix for its cause (no socket, no permission, nobody listening);
    /// the I/O error is in the message, not chained again as a source.
    #[error("{}", connect_message(path, error))]
    Connect {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("control socket I/O: {0}")]
    Io(std::io::Error),
    #[error("bad answer from posd: {0}")]
    BadAnswer(String),
    #[error("{message}")]
    Refused { code: String, message: String },
}

posd_core::wraps_error!(ControlError { Io(std::io::Error) });

impl ControlError {
    /// The machine code of this failure: the daemon's refusal code, or the client's own
    /// (`no_socket`, `permission_denied`, `not_listening`, `unreachable`, `io`, `bad_answer`).
    pub fn code(&self) -> &str {
        match self {
            ControlError::Refused { code, .. } => code,
            ControlError::Connect { error, .. } => match error.kind() {
                std::io::ErrorKind::NotFound => "no_socket",
                std::io::ErrorKind::PermissionDenied => "permission_denied",
                std::io::ErrorKind::ConnectionRefused => "not_listening",
                _ => "unreachable",
            },
            ControlError::Listen { .. } => "listen",
            ControlError::Io(_) => "io",
            ControlError::BadAnswer(_) => "bad_answer",
        }
    }
}

fn connect_message(path: &Path, e: &std::io::Error) -> String {
    let p = path.display();
    match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "no control socket at {p}: posd is not running (systemctl status posd), or its \
             [control] socket is another path (give it with --socket)"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "permission denied on {p}: run as root or as a member of the socket's group \
             (ls -l {p})"
        ),
        std::io::ErrorKind::ConnectionRefused => {
            format!("nothing listens on {p}: posd is not running (systemctl status posd)")
        }
        _ => format!("cannot reach posd at {p}: {e}"),
    }
}

impl From<AnswerError> for ControlError {
    fn from(e: AnswerError) -> ControlError {
        match e {
            AnswerError::Refused(r) => ControlError::Refused {
                code: r.code,
                message: r.error,
            },
            AnswerError::Malformed(m) => ControlError::BadAnswer(m),
        }
    }
}

/// Produces the status document (shared with the MQTT `status` topic).
pub type StatusProvider = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ctl::StatusDoc> + Send>>
        + Send
        + Sync,
>;

#[derive(Clone)]
pub struct ControlCtx {
    pub store: Store,
    pub engine: mpsc::Sender<EngineMsg>,
    pub currency: Currency,
    pub status: StatusProvider,
    pub receipt_ctx: ReceiptCtx,
    pub receipt_cfg: ReceiptConfig,
    /// Reprints; None when no printer is configured.
    pub printer: Option<crate::printq::PrintHandle>,
}

/// Binds the socket (replacing a stale one), mode 0660.
/// Binds the socket (a blocking listener: [`serve`] adopts it on the runtime that serves it).
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, ControlError> {
    let err = |error| ControlError::Listen {
        path: path.to_path_buf(),
        error,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if let Ok(m) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        // Only a socket is ever replaced (or removed at stop: `remove_socket`): a path that
        // names the journal or any other file is refused, never deleted.
        if !m.file_type().is_socket() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket: refusing to replace it (choose another control.socket)",
            )));
        }
        // A live daemon answers; a stale socket from a crash is replaced.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another posd is listening there",
            )));
        }
        let _ = std::fs::remove_file(path);
    }
    let l = std::os::unix::net::UnixListener::bind(path).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    Ok(l)
}

/// Removes the control socket at stop, if what is there is still a socket.
pub fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// The control socket's bounds (`[control]`): connections at once and how long one may sit
/// without a complete request. Lines are bounded by `posd_core::control::MAX_LINE`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub idle: std::time::Duration,
}

impl Limits {
    pub fn from_config(c: &crate::config::ControlConfig) -> Limits {
        Limits {
            max_connections: c.max_connections.max(1),
            idle: std::time::Duration::from_secs(c.idle_timeout_s.max(1)),
        }
    }
}

/// One open connection, as the accept loop sees it.
struct Slot {
    last_active: std::time::Instant,
    /// Inside a request (a sale can take 45 s): never closed to make room.
    busy: bool,
    close: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct Slots {
    next_id: u64,
    open: std::collections::HashMap<u64, Slot>,
}

type SharedSlots = Arc<std::sync::Mutex<Slots>>;

fn with_slots<T>(slots: &SharedSlots, f: impl FnOnce(&mut Slots) -> T) -> T {
    let mut g = slots.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g)
}

/// Admits a new connection: at the cap, the longest-idle connection is closed to make room; when
/// every connection is inside a request, None (the client is told `busy`).
fn admit(slots: &SharedSlots, max: usize) -> Option<(u64, Arc<tokio::sync::Notify>)> {
    with_slots(slots, |s| {
        if s.open.len() >= max {
            let victim = s
                .open
                .iter()
                .filter(|(_, v)| !v.busy)
                .min_by_key(|(_, v)| v.last_active)
                .map(|(id, _)| *id);
            if let Some(v) = victim.and_then(|id| s.open.remove(&id)) {
                log::debug!("control: {max} connections open; closing the longest idle one");
                v.close.notify_one();
            }
        }
        if s.open.len() >= max {
            return None;
        }
        let id = s.next_id;
        s.next_id += 1;
        let close = Arc::new(tokio::sync::Notify::new());
        s.open.insert(
            id,
            Slot {
                last_active: std::time::Instant::now(),
                busy: false,
                close: close.clone(),
            },
        );
        Some((id, close))
    })
}

fn mark(slots: &SharedSlots, id: u64, busy: bool) {
    with_slots(slots, |s| {
        if let Some(slot) = s.open.get_mut(&id) {
            slot.busy = busy;
            slot.last_active = std::time::Instant::now();
        }
    })
}

pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    ctx: ControlCtx,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("control socket: cannot serve it: {e}");
            return;
        }
    };
    let slots: SharedSlots = Arc::default();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => match admit(&slots, limits.max_connections) {
                    Some((id, close)) => {
                        let ctx = ctx.clone();
                        let slots = slots.clone();
                        tokio::spawn(async move {
                            if let Err(e) = connection(stream, ctx, limits, id, &slots, close).await {
                                log::debug!("control connection: {e}");
                            }
                            with_slots(&slots, |s| s.open.remove(&id));
                        });
                    }
                    None => {
                        tokio::spawn(async move {
                            let line = answer_line::<()>(&Err(Refusal::new(
                                codes::BUSY,
                                format!(
                                    "all {} control connections are inside a request; try again \
                                     (raise [control] max_connections if this is normal here)",
                                    limits.max_connections
                                ),
                            )));
                            let mut stream = stream;
                            let _ = tokio::time::timeout(
                                std::time::Duration::from_secs(1),
                                stream.write_all(&line),
                            )
                            .await;
                        });
                    }
                },
                Err(e) => {
                    log::warn!("control accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Serves one connection: one answer line per request line. A line longer than `MAX_LINE` is
/// refused and the connection closed (nothing of it is kept beyond `MAX_LINE`); a connection
/// with no complete request within the idle timeout, or closed to make room, ends quietly.
async fn connection(
    stream: UnixStream,
    ctx: ControlCtx,
    limits: Limits,
    id: u64,
    slots: &SharedSlots,
    close: Arc<tokio::sync::Notify>,
) -> Result<(), std::io::Error> {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        mark(slots, id, false);
        let mut limited = (&mut lines).take(ctl::MAX_LINE as u64 + 1);
        let read = limited.read_until(b'\n', &mut buf);
        let n = tokio::select! {
            _ = close.notified() => return Ok(()),
            r = tokio::time::timeout(limits.idle, read) => match r {
                Ok(r) => r?,
                Err(_) => {
                    log::debug!("control: closing a connection idle for {:?}", limits.idle);
                    return Ok(());
                }
            },
        };
        if n == 0 {
            return Ok(());
        }
        mark(slots, id, true);
        if buf.len() > ctl::MAX_LINE {
            let refusal = answer_line::<()>(&Err(Refusal::new(
                codes::TOO_LONG,
                format!(
                    "request line longer than {} bytes; the connection is closed",
                    ctl::MAX_LINE
                ),
            )));
            let _ = tokio::time::timeout(limits.idle, w.write_all(&refusal)).await;
            return Ok(());
        }
        let answer = match ctl::parse_request(&buf) {
            Ok(req) => handle(req, &ctx).await,
            Err(e) => answer_line::<()>(&Err(e)),
        };
        match tokio::time::timeout(limits.idle, w.write_all(&answer)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()), // the client stopped reading its answers
        }
    }
}

fn store_err(e: StoreError) -> Refusal {
    Refusal::new(codes::JOURNAL, e.to_string())
}

fn sale_err(e: SaleError) -> Refusal {
    Refusal::new(e.code(), e.to_string())
}

/// One answer line for any request.
async fn handle(req: Request, ctx: &ControlCtx) -> Vec<u8> {
    fn line<T: Serialize>(r: Result<T, Refusal>) -> Vec<u8> {
        answer_line(&r)
    }
    match req {
        Request::Status(_) => line::<ctl::StatusDoc>(Ok((ctx.status)().await)),
        Request::Queue(_) => line::<ctl::QueueStats>(Ok(ctx.store.queue_stats(now_ms()))),
        Request::TxnList(r) => {
            let limit = r.limit.unwrap_or(50).min(10_000);
            line(
                ctx.store
                    .call(move |db| db.txns(limit))
                    .await
                    .map_err(store_err),
            )
        }
        Request::TxnShow(r) => line(txn_show(ctx, r.id).await),
        Request::Sale(r) => line(sale(ctx, r).await),
        Request::Refund(r) => line(refund(ctx, r).await),
        Request::Void(r) => line(
            engine_call(ctx, |reply| EngineMsg::Void {
                original: r.original,
                pin: r.pin,
                reply,
            })
            .await,
        ),
        Request::BatchClose(_) => {
            line(engine_call(ctx, |reply| EngineMsg::BatchClose { reply }).await)
        }
        Request::Batches(r) => {
            let limit = r.limit.unwrap_or(10).min(1000);
            line(
                ctx.store
                    .call(move |db| db.batches(limit))
                    .await
                    .map_err(store_err),
            )
        }
        Request::Current(_) => line(ask_engine(ctx, |reply| EngineMsg::Current { reply }).await),
        Request::Cancel(_) => line(
            engine_call(ctx, |reply| EngineMsg::Cancel { reply })
                .await
                .map(|message| ctl::Message { message }),
        ),
        Request::Scan(r) => line(scan(ctx, r).await),
        Request::Reprint(r) => {
            let res = match (&ctx.printer, Target::of(r.txn_id, r.batch, r.pay_slip)) {
                (_, Err(e)) => Err(e),
                (None, _) => Err(crate::printq::ReprintError::NoPrinter),
                (Some(p), Ok(t)) => p.reprint_target(t).await,
            };
            line(
                res.map(|q| ctl::ReprintReply {
                    job: q.job,
                    txn_id: q.txn_id,
                    kind: q.kind.to_string(),
                    already_queued: q.already_queued,
                })
                .map_err(|e| Refusal::new(e.code(), e.to_string())),
            )
        }
        Request::Receipt(r) => line(receipt(ctx, r).await),
        Request::PrintJobs(r) => {
            let limit = r.limit.unwrap_or(20).min(1000);
            line(
                ctx.store
                    .call(move |db| db.print_jobs(limit))
                    .await
                    .map(|rows| {
                        rows.into_iter()
                            .map(|(id, txn_id, state, attempts, last_error)| ctl::PrintJob {
                                id,
                                txn_id,
                                state,
                                attempts,
                                last_error,
                            })
                            .collect::<Vec<_>>()
                    })
                    .map_err(store_err),
            )
        }
    }
}

/// A code as if scanned, passed on only when something waits for one: the answer says what
/// took it, or refuses (`no_sale`, `not_waiting`) instead of claiming a sale got it.
async fn scan(ctx: &ControlCtx, r: ctl::Scan) -> Result<ctl::Message, Refusal> {
    let current = ask_engine(ctx, |reply| EngineMsg::Current { reply }).await?;
    let message = match current {
        None => {
            let e = posd_core::till::TillRefusal::NoSale;
            return Err(Refusal::new(
                e.code(),
                "no sale waits for a code: start one first (posctl sale --amount 12.50)",
            ));
        }
        Some(ctl::CurrentReply::Txn(t)) => {
            return Err(Refusal::new(
                codes::NOT_WAITING,
                format!(
                    "the till waits for no code: transaction {} is {} (posctl current)",
                    t.txn_id,
                    t.state.as_str()
                ),
            ))
        }
        Some(ctl::CurrentReply::Awaiting(a)) if a.awaiting == "receipt" => {
            "code passed to the refund waiting for its receipt"
        }
        Some(ctl::CurrentReply::Awaiting(_)) => "code passed to the sale waiting for it",
    };
    let msg = EngineMsg::Code {
        text: r.code,
        source: "control".into(),
    };
    ctx.engine
        .send(msg)
        .await
        .map_err(|_| sale_err(SaleError::Stopping))?;
    Ok(ctl::Message {
        message: message.into(),
    })
}

/// The code patterns that read a receipt's reference, compiled once (not at each request: the
/// control socket runs on the journal's thread, where time spent delays every journal caller).
fn receipt_patterns() -> Result<&'static posd_core::codes::Patterns, Refusal> {
    static PATTERNS: std::sync::OnceLock<Result<posd_core::codes::Patterns, String>> =
        std::sync::OnceLock::new();
    PATTERNS
        .get_or_init(|| {
            posd_core::codes::Patterns::new(Default::default()).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Refusal::new("internal", e.clone()))
}

/// `txn show` takes the full id, the receipt's short reference (its last 12 hex digits) or
/// the text of the receipt's QR (`R1.<terminal>.<uuid>`).
async fn txn_show(ctx: &ControlCtx, id: String) -> Result<ctl::TxnDetail, Refusal> {
    let given = id.trim().to_string();
    let patterns = receipt_patterns()?;
    let key = match patterns.receipt_ref(&given) {
        Some(rr) => rr
            .txn_on(&ctx.receipt_ctx.terminal)
            .map_err(|e| Refusal::new(codes::OTHER_TERMINAL, e.to_string()))?
            .to_string(),
        None => given.to_ascii_lowercase(),
    };
    let short = key.len() == 12 && key.bytes().all(|b| b.is_ascii_hexdigit());
    let not_found = || {
        Refusal::new(
            codes::NOT_FOUND,
            format!(
                "no transaction {given} in this terminal's journal (a full id, the receipt's \
                 12-digit reference or its QR text)"
            ),
        )
    };
    let key = if short {
        short_ref_owner(ctx, &key).await?.ok_or_else(not_found)?
    } else {
        key
    };
    let (txn, history) = ctx
        .store
        .call(move |db| {
            let txn = db.txn(&key)?;
            let history = match &txn {
                Some(t) => db.history(&t.id.to_string())?,
                None => Vec::new(),
            };
            Ok((txn, history))
        })
        .await
        .map_err(store_err)?;
    let txn = txn.ok_or_else(not_found)?;
    Ok(ctl::TxnDetail {
        txn,
        history: history
            .into_iter()
            .map(|(seq, state, at)| ctl::HistoryEntry { seq, state, at })
            .collect(),
    })
}

/// Seqs of history one step of a short-reference lookup reads (`Db::txns_by_short_ref_step`):
/// a few milliseconds of the journal thread, newest first, each step a background call that
/// waits for any sale queued meanwhile.
const SHORT_REF_SPAN: u64 = 5_000;

/// The full id of the one transaction whose id ends with `short`, walking the journal from
/// its newest transaction back in bounded steps; refused as ambiguous when two do.
async fn short_ref_owner(ctx: &ControlCtx, short: &str) -> Result<Option<String>, Refusal> {
    let mut below = ctx
        .store
        .call(|db| Ok(db.last_seq()))
        .await
        .map_err(store_err)?;
    let mut found: Vec<String> = Vec::new();
    while below > 0 && found.len() < 2 {
        let key = short.to_string();
        let (step, next) = ctx
            .store
            .call_background(move |db| db.txns_by_short_ref_step(&key, below, SHORT_REF_SPAN))
            .await
            .map_err(store_err)?;
        // The steps' ranges do not overlap: a transaction is found once.
        found.extend(step.into_iter().map(|t| t.id.to_string()));
        below = next;
    }
    if found.len() > 1 {
        return Err(Refusal::new(
            codes::AMBIGUOUS,
            format!("the short reference {short} names more than one transaction: give the full id (posctl txn list)"),
        ));
    }
    Ok(found.pop())
}

async fn sale(ctx: &ControlCtx, r: ctl::Sale) -> Result<ctl::SaleReply, Refusal> {
    let currency = match r.currency {
        Some(c) => {
            Currency::from_code(&c).map_err(|e| Refusal::new(codes::CURRENCY, e.to_string()))?
        }
        None => ctx.currency,
    };
    let amount = currency
        .parse_amount(&r.amount)
        .map_err(|e| Refusal::new(codes::AMOUNT, e.to_string()))?;
    engine_call(ctx, |reply| EngineMsg::Sale {
        amount,
        currency,
        code: r.code,
        method: r.method.unwrap_or_default(),
        reply,
    })
    .await
}

async fn refund(ctx: &ControlCtx, r: ctl::Refund) -> Result<ctl::SaleReply, Refusal> {
    let original = match (r.original, r.receipt) {
        (Some(o), _) => Some(o),
        (None, Some(receipt)) => {
            let patterns = receipt_patterns()?;
            match patterns.receipt_ref(receipt.trim()) {
                Some(rr) => Some(
                    rr.txn_on(&ctx.receipt_ctx.terminal)
                        .map_err(|e| Refusal::new(codes::OTHER_TERMINAL, e.to_string()))?
                        .to_string(),
                ),
                None => {
                    return Err(Refusal::new(
                        codes::BAD_CODE,
                        "not a posd receipt reference",
                    ))
                }
            }
        }
        (None, None) => None,
    };
    let amount = match r.amount {
        Some(a) => Some(
            ctx.currency
                .parse_amount(&a)
                .map_err(|e| Refusal::new(codes::AMOUNT, e.to_string()))?,
        ),
        None => None,
    };
    if let Some(id) = &r.refund_id {
        posd_core::refund::check_refund_id(id).map_err(|e| Refusal::new(codes::BAD_REQUEST, e))?;
    }
    let req = RefundRequest {
        original,
        amount,
        refund_id: r.refund_id,
        pin: r.pin,
    };
    engine_call(ctx, |reply| EngineMsg::Refund { req, reply }).await
}

async fn receipt(ctx: &ControlCtx, r: ctl::Receipt) -> Result<ctl::ReceiptReply, Refusal> {
    let refuse = |e: crate::printq::ReprintError| Refusal::new(e.code(), e.to_string());
    let target = Target::of(r.txn_id, r.batch, r.pay_slip).map_err(refuse)?;
    let found = crate::printq::find_doc(&ctx.store, &ctx.receipt_ctx, target)
        .await
        .map_err(refuse)?;
    let cfg = posd_core::receipt::ReceiptConfig {
        language: crate::lang::current(),
        ..ctx.receipt_cfg.clone()
    };
    let bytes = posd_core::receipt::doc_bytes(&found.doc, &cfg)
        .map_err(|e| Refusal::new(codes::ENCODE, e.to_string()))?;
    use base64::Engine as _;
    Ok(ctl::ReceiptReply {
        txn_id: found.txn_id,
        kind: found.doc.kind().to_string(),
        width: ctx.receipt_cfg.width,
        receipt_ref: match &found.doc {
            PrintDoc::Receipt(d) => d.receipt_ref.clone(),
            _ => String::new(),
        },
        escpos_b64: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

/// Asks the engine something it always answers.
async fn ask_engine<T>(
    ctx: &ControlCtx,
    msg: impl FnOnce(oneshot::Sender<T>) -> EngineMsg,
) -> Result<T, Refusal> {
    let (tx, rx) = oneshot::channel();
    if ctx.engine.send(msg(tx)).await.is_err() {
        return Err(sale_err(SaleError::Stopping));
    }
    rx.await.map_err(|_| sale_err(SaleError::Stopping))
}

/// Sends a message to the engine and answers with its reply (or its refusal).
async fn engine_call<T>(
    ctx: &ControlCtx,
    msg: impl FnOnce(oneshot::Sender<Result<T, SaleError>>) -> EngineMsg,
) -> Result<T, Refusal> {
    ask_engine(ctx, msg).await?.map_err(sale_err)
}

/// A client connection, for posctl and tests.
pub struct ControlClient {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl ControlClient {
    pub async fn connect(path: &Path) -> Result<ControlClient, ControlError> {
        let s = UnixStream::connect(path)
            .await
            .map_err(|error| ControlError::Connect {
                path: path.to_path_buf(),
                error,
            })?;
        let (r, w) = s.into_split();
        Ok(ControlClient {
            reader: BufReader::new(r),
            writer: w,
        })
    }

    /// Sends one request and reads its typed reply, or the refusal.
    pub async fn call<C: Command>(&mut self, req: C) -> Result<C::Reply, ControlError> {
        let answer = self.exchange(&req.into()).await?;
        Ok(ctl::parse_answer(&answer)?)
    }

    /// Sends one request and returns the reply's JSON (tools and tests that read the wire).
    pub async fn call_json(
        &mut self,
        req: impl Into<Request>,
    ) -> Result<serde_json::Value, ControlError> {
        let answer = self.exchange(&req.into()).await?;
        Ok(ctl::parse_answer(&answer)?)
    }

    async fn exchange(&mut self, req: &Request) -> Result<Vec<u8>, ControlError> {
        let mut line =
            serde_json::to_vec(req).map_err(|e| ControlError::BadAnswer(e.to_string()))?;
        line.push(b'\n');
        self.send_line(&line).await
    }

    /// Sends raw bytes (one line) and parses the answer's JSON `data`.
    pub async fn call_raw(&mut self, line: &[u8]) -> Result<serde_json::Value, ControlError> {
        let answer = self.send_line(line).await?;
        Ok(ctl::parse_answer(&answer)?)
    }

    async fn send_line(&mut self, line: &[u8]) -> Result<Vec<u8>, ControlError> {
        self.writer.write_all(line).await?;
        let mut answer = Vec::new();
        let n = self.reader.read_until(b'\n', &mut answer).await?;
        if n == 0 {
            return Err(ControlError::BadAnswer("connection closed".into()));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(kind: std::io::ErrorKind) -> ControlError {
        ControlError::Connect {
            path: PathBuf::from("/run/posd/control.sock"),
            error: std::io::Error::from(kind),
        }
    }

    #[test]
    fn connect_failures_name_their_cause_once() {
        let denied = connect(std::io::ErrorKind::PermissionDenied);
        assert_eq!(denied.code(), "permission_denied");
        let text = denied.to_string();
        assert!(text.starts_with("permission denied on /run/posd/control.sock"));
        assert!(!text.contains("running"), "{text}");
        assert!(std::error::Error::source(&denied).is_none());
        assert_eq!(connect(std::io::ErrorKind::NotFound).code(), "no_socket");
        assert!(connect(std::io::ErrorKind::NotFound)
            .to_string()
            .contains("posd is not running"));
        assert_eq!(
            connect(std::io::ErrorKind::ConnectionRefused).code(),
            "not_listening"
        );
    }
}
