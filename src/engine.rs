//! The sale engine: the tokio shell around the core's transaction state machines.
//!
//! It owns every sale in flight, feeds them host responses, cashier cancels and clock ticks,
//! and carries out their actions in order — `Persist` through the journal (durable before the
//! next action), `Send` through the MQTT link. Sales arrive from the control socket, the
//! keypad or the console; codes arrive from any scanner. One sale is undecided at a time, as at
//! a real till; reversals of earlier sales continue in the background.

use crate::clock::now_ms;
use crate::config::ClockTrust;
use crate::link::Link;
use crate::store::{Store, StoreError};
use posd_core::codes::{self, IssuerKeys, OfflineLimits, OfflinePolicy, OfflineState, Patterns};
use posd_core::control::{
    AwaitingInput, BatchReply, CurrentReply, CurrentTxn, SaleMethod, SaleReply,
};
use posd_core::display::UiEvent;
use posd_core::money::Currency;
use posd_core::order::{self, MerchantOrder, OrderPolicy};
use posd_core::pin::verify_pin;
use posd_core::protocol::{RespStatus, Response};
use posd_core::refund::{RefundFlow, RefundPolicy};
use posd_core::till::{card_aad, local_year_month, route, CodeRoute};
use posd_core::txn::{
    Action, Ignored, Input, Method, OnlinePolicy, OnlineSale, SaleOutcome, Transaction, TxnKind,
    TxnState,
};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use uuid::Uuid;

/// Why a sale could not be started or completed.
#[derive(Debug, thiserror::Error)]
pub enum SaleError {
    #[error("a sale is already in progress")]
    Busy,
    #[error("no sale in progress")]
    NoSale,
    #[error("amount {amount} is above the limit {limit}")]
    OverLimit { amount: String, limit: String },
    #[error("currency {0} is not this terminal's currency")]
    Currency(String),
    #[error("{0}")]
    Code(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("offline code refused: {message}")]
    Offline { code: &'static str, message: String },
    #[error("the journal refused the sale: {0}")]
    Store(#[from] StoreError),
    #[error("the daemon is stopping")]
    Stopping,
    #[error("wrong manager PIN")]
    Pin,
    #[error("too many wrong manager PINs: locked for {0} s")]
    PinLocked(u64),
    #[error("{0}")]
    NotFound(String),
    #[error("the host is unreachable: {0}")]
    HostUnreachable(String),
    #[error("{0}")]
    InFlight(String),
}

impl SaleError {
    /// A stable machine-readable code for callers.
    pub fn code(&self) -> &'static str {
        match self {
            SaleError::Busy => "busy",
            SaleError::NoSale => "no_sale",
            SaleError::OverLimit { .. } => "over_limit",
            SaleError::Currency(_) => "currency",
            SaleError::Code(_) => "bad_code",
            SaleError::Refused(_) => "refused",
            SaleError::Offline { code, .. } => code,
            SaleError::Store(StoreError::Refused(_)) => "refused",
            SaleError::Store(_) => "journal",
            SaleError::Stopping => "stopping",
            SaleError::Pin => "wrong_pin",
            SaleError::PinLocked(_) => "pin_locked",
            SaleError::NotFound(_) => "not_found",
            SaleError::HostUnreachable(_) => "host_unreachable",
            SaleError::InFlight(_) => "in_flight",
        }
    }
}

/// A refund request (control socket, keypad).
#[derive(Debug)]
pub struct RefundRequest {
    /// The sale to refund; None: the next receipt scanned names it.
    pub original: Option<String>,
    /// Minor units; None: what is left to refund.
    pub amount: Option<i64>,
    /// Idempotency key chosen by the caller; None: the refund's own id.
    pub refund_id: Option<String>,
    pub pin: String,
}

pub enum EngineMsg {
    Sale {
        amount: i64,
        currency: Currency,
        code: Option<String>,
        method: SaleMethod,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    },
    Refund {
        req: RefundRequest,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    },
    /// Void an offline sale not yet settled.
    Void {
        original: String,
        pin: String,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    },
    BatchClose {
        reply: oneshot::Sender<Result<BatchReply, SaleError>>,
    },
    /// The sale in progress and the code it shows, if any.
    Current {
        reply: oneshot::Sender<Option<CurrentReply>>,
    },
    /// The host says a merchant-presented order was paid (`notify {type:"payment"}`).
    Paid {
        txn_id: String,
        host_ref: Option<String>,
        /// What the platform says was paid (minor units), when it says.
        amount: Option<i64>,
    },
    /// The host's reconciliation of a batch close (`notify {type:"batch_close"}`).
    BatchResult {
        txn_id: String,
        reconciled: bool,
        detail: serde_json::Value,
    },
    /// A code from a scanner, the camera, the keypad or the console.
    Code {
        text: String,
        source: String,
    },
    Cancel {
        reply: oneshot::Sender<Result<String, SaleError>>,
    },
    Resp(Response),
    /// The host settled (or refused) an offline sale.
    Settlement {
        txn_id: String,
        settled: bool,
        reason: Option<String>,
    },
    /// A fleet push (issue 8): new timeouts, limits, code patterns and offline rules (issuer
    /// keys, denylist). They hold from the next sale on; sales in flight keep their policy.
    Reconfigure {
        rules: Box<EngineRules>,
        reply: oneshot::Sender<()>,
    },
}

/// The engine's rules a fleet push may change without a restart.
pub struct EngineRules {
    pub policy: OnlinePolicy,
    pub max_amount: i64,
    pub patterns: Patterns,
    pub offline: OfflineRuntime,
    pub merchant_qr: MerchantQrRuntime,
    pub saf: posd_core::card::saf::SafLimits,
}

/// The offline rules as the engine applies them (built from `[offline]`).
#[derive(Debug, Clone)]
pub struct OfflineRuntime {
    pub enabled: bool,
    pub keys: IssuerKeys,
    pub policy: OfflinePolicy,
    pub limits: OfflineLimits,
    pub deny_users: HashSet<u64>,
    pub deny_credentials: HashSet<String>,
    pub clock: ClockTrust,
    pub settle_query_ms: u64,
}

impl OfflineRuntime {
    pub fn from_config(
        cfg: &crate::config::OfflineConfig,
        currency: Currency,
    ) -> Result<OfflineRuntime, codes::P1Error> {
        Ok(OfflineRuntime {
            enabled: cfg.enabled,
            keys: IssuerKeys::from_config(&cfg.issuer_keys)?,
            policy: OfflinePolicy {
                allowed_skew_s: cfg.allowed_skew_s,
                currency: currency.code().to_string(),
                ..OfflinePolicy::default()
            },
            limits: cfg.limits.clone(),
            deny_users: cfg.denylist.user_ids.iter().copied().collect(),
            deny_credentials: cfg
                .denylist
                .credentials
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect(),
            clock: cfg.clock,
            settle_query_ms: cfg.settle_query_interval_s.max(1) * 1000,
        })
    }
}

/// Whether the clock can be trusted for offline codes at `now_ms`.
pub fn clock_trusted(mode: ClockTrust, now_ms: u64) -> bool {
    let floor = crate::clock::BUILD_UNIX
        .parse::<u64>()
        .unwrap_or(0)
        .saturating_sub(86_400);
    if now_ms / 1000 < floor {
        return false;
    }
    match mode {
        ClockTrust::Always => true,
        ClockTrust::Synchronized => kernel_clock_synchronized(),
    }
}

/// The kernel's NTP state: synchronised unless `adjtimex` reports STA_UNSYNC / TIME_ERROR.
fn kernel_clock_synchronized() -> bool {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state into `t`.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::adjtimex(&mut t) };
    r != -1 && r != libc::TIME_ERROR && (t.status & libc::STA_UNSYNC) == 0
}

/// Merchant-presented codes as the engine makes them (`[merchant_qr]`).
#[derive(Debug, Clone)]
pub struct MerchantQrRuntime {
    /// Ask the host for the platform's code instead of generating the EMVCo payload here.
    pub platform: bool,
    /// What a generated payload carries (`local` mode).
    pub merchant: Option<codes::MpmMerchant>,
    /// Print the code on a pay slip (when a printer is configured).
    pub print: bool,
    pub policy: OrderPolicy,
}

/// Cards as the engine takes them (`[card]`).
#[derive(Clone)]
pub struct CardRuntime {
    /// The host's X25519 public key; None: cards are refused.
    pub host_key: Option<[u8; 32]>,
    /// A chip reader exists: chip cards are told to use it.
    pub chip_reader: bool,
    pub saf: posd_core::card::saf::SafLimits,
    pub utc_offset_s: i32,
}

pub struct EngineParams {
    pub store: Store,
    pub link: Link,
    pub policy: OnlinePolicy,
    pub currency: Currency,
    pub max_amount: i64,
    pub patterns: Patterns,
    pub offline: OfflineRuntime,
    pub ui: broadcast::Sender<UiEvent>,
    pub terminal: String,
    pub merchant_qr: MerchantQrRuntime,
    pub card: CardRuntime,
    pub refund_policy: RefundPolicy,
    /// The manager PIN's argon2 hash (PHC string); None: refunds and voids are refused.
    pub pin_hash: Option<String>,
    /// The printer task's wake-up, when a printer is configured (pay slips).
    pub printer: Option<std::sync::Arc<tokio::sync::Notify>>,
    pub utc_offset_s: i32,
}

struct AwaitingCode {
    amount: i64,
    currency: Currency,
    reply: oneshot::Sender<Result<SaleReply, SaleError>>,
}

/// A refund whose original will be named by the next receipt scanned (PIN already checked).
struct AwaitingReceipt {
    amount: Option<i64>,
    refund_id: Option<String>,
    reply: oneshot::Sender<Result<SaleReply, SaleError>>,
}

/// One transaction with a host conversation open.
enum Flow {
    Online(OnlineSale),
    Order(MerchantOrder),
    Refund(RefundFlow),
}

impl Flow {
    fn txn(&self) -> &Transaction {
        match self {
            Flow::Online(m) => m.txn(),
            Flow::Order(m) => m.txn(),
            Flow::Refund(m) => m.txn(),
        }
    }
    fn next_wake(&self) -> Option<u64> {
        match self {
            Flow::Online(m) => m.next_wake(),
            Flow::Order(m) => m.next_wake(),
            Flow::Refund(m) => m.next_wake(),
        }
    }
    fn handle(&mut self, input: Input, now: u64) -> Result<Vec<Action>, Ignored> {
        match self {
            Flow::Online(m) => m.handle(input, now),
            Flow::Order(m) => m.handle(input, now),
            Flow::Refund(m) => m.handle(input, now),
        }
    }
    /// Rebuilds the flow of a transaction found in flight in the journal.
    fn recover(txn: Transaction, p: &EngineParams, now: u64) -> Option<Flow> {
        match (txn.kind, txn.method) {
            (TxnKind::Refund, _) => {
                RefundFlow::resume(txn, p.refund_policy, now, false).map(Flow::Refund)
            }
            (TxnKind::Sale, Method::MerchantQr) => Some(Flow::Order(MerchantOrder::recover(
                txn,
                p.merchant_qr.policy,
                now,
            ))),
            (TxnKind::Sale, Method::PaymentCode | Method::Card) => {
                Some(Flow::Online(OnlineSale::recover(txn, p.policy, now)))
            }
            _ => None,
        }
    }
}

/// Wrong PINs before refunds and voids lock, and for how long.
const PIN_TRIES: u32 = 5;
const PIN_LOCK_MS: u64 = 60_000;

struct Engine {
    p: EngineParams,
    machines: HashMap<Uuid, Flow>,
    waiters: HashMap<Uuid, oneshot::Sender<Result<SaleReply, SaleError>>>,
    awaiting: Option<AwaitingCode>,
    awaiting_receipt: Option<AwaitingReceipt>,
    /// The sale whose outcome is not yet decided.
    current: Option<Uuid>,
    /// Outstanding settlement queries: req_id → txn_id.
    settle_queries: HashMap<String, String>,
    next_settle_check: u64,
    pin_failures: u32,
    pin_locked_until: u64,
}

/// Settlement queries per round.
const SETTLE_BATCH: u32 = 256;

/// Unix ms of the engine loop's last turn (watchdog).
pub type Heartbeat = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// Resumes every transaction left in flight, then serves messages until shutdown.
pub async fn run(
    p: EngineParams,
    mut rx: mpsc::Receiver<EngineMsg>,
    heartbeat: Heartbeat,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut e = Engine {
        p,
        machines: HashMap::new(),
        waiters: HashMap::new(),
        awaiting: None,
        awaiting_receipt: None,
        current: None,
        settle_queries: HashMap::new(),
        next_settle_check: 0,
        pin_failures: 0,
        pin_locked_until: 0,
    };
    let now = now_ms();
    let in_flight = e.p.store.call(|db| db.in_flight()).await?;
    for txn in in_flight {
        let id = txn.id;
        let state = txn.state;
        match Flow::recover(txn, &e.p, now) {
            Some(f) => {
                log::warn!(txn_id = id.to_string(); "resolving a transaction left {} by the last run", state.as_str());
                e.machines.insert(id, f);
            }
            None => {
                log::error!(txn_id = id.to_string(); "transaction left {} cannot be resumed", state.as_str())
            }
        }
    }
    loop {
        heartbeat.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        let wake = e.machines.values().filter_map(|m| m.next_wake()).min();
        let sleep_ms = wake
            .map(|w| w.saturating_sub(now_ms()))
            .unwrap_or(500)
            .min(500);
        tokio::select! {
            _ = shutdown.changed() => break,
            msg = rx.recv() => match msg {
                Some(m) => e.on_msg(m).await,
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
        }
        e.tick().await;
    }
    if let Some(a) = e.awaiting.take() {
        let _ = a.reply.send(Err(SaleError::Stopping));
    }
    if let Some(a) = e.awaiting_receipt.take() {
        let _ = a.reply.send(Err(SaleError::Stopping));
    }
    for (_, w) in e.waiters.drain() {
        let _ = w.send(Err(SaleError::Stopping));
    }
    Ok(())
}

impl Engine {
    fn ui(&self, ev: UiEvent) {
        let _ = self.p.ui.send(ev);
    }

    fn busy(&self) -> bool {
        self.current.is_some() || self.awaiting.is_some() || self.awaiting_receipt.is_some()
    }

    /// The manager PIN, with a lockout after repeated failures.
    async fn check_pin(&mut self, pin: String) -> Result<(), SaleError> {
        let now = now_ms();
        if now < self.pin_locked_until {
            return Err(SaleError::PinLocked(
                (self.pin_locked_until - now).div_ceil(1000),
            ));
        }
        let Some(hash) = self.p.pin_hash.clone() else {
            return Err(SaleError::Refused(
                "no manager PIN is configured ([manager] pin_hash): refunds and voids are disabled"
                    .into(),
            ));
        };
        let ok = tokio::task::spawn_blocking(move || verify_pin(&pin, &hash))
            .await
            .unwrap_or(false);
        if ok {
            self.pin_failures = 0;
            Ok(())
        } else {
            self.pin_failures += 1;
            log::warn!("wrong manager PIN ({} in a row)", self.pin_failures);
            if self.pin_failures >= PIN_TRIES {
                self.pin_failures = 0;
                self.pin_locked_until = now + PIN_LOCK_MS;
            }
            Err(SaleError::Pin)
        }
    }

    async fn on_msg(&mut self, msg: EngineMsg) {
        match msg {
            EngineMsg::Sale {
                amount,
                currency,
                code,
                method,
                reply,
            } => {
                if self.busy() {
                    let _ = reply.send(Err(SaleError::Busy));
                    return;
                }
                if currency != self.p.currency {
                    let _ = reply.send(Err(SaleError::Currency(currency.code().into())));
                    return;
                }
                if amount <= 0 {
                    let _ = reply.send(Err(SaleError::Refused(
                        "the amount must be above zero".into(),
                    )));
                    return;
                }
                if amount > self.p.max_amount {
                    let _ = reply.send(Err(SaleError::OverLimit {
                        amount: currency.format(amount),
                        limit: currency.format(self.p.max_amount),
                    }));
                    return;
                }
                match (method, code) {
                    (SaleMethod::MerchantQr, _) => self.start_order(amount, currency, reply).await,
                    (SaleMethod::Presented, Some(code)) => {
                        self.start_with_code(amount, currency, code, reply).await
                    }
                    (SaleMethod::Presented, None) => {
                        self.ui(UiEvent::AwaitingCode {
                            amount: format!("{} {}", currency.format(amount), currency),
                        });
                        self.awaiting = Some(AwaitingCode {
                            amount,
                            currency,
                            reply,
                        });
                    }
                }
            }
            EngineMsg::Code { text, source } => {
                if let Some(a) = self.awaiting.take() {
                    self.start_with_code(a.amount, a.currency, text, a.reply)
                        .await;
                    return;
                }
                if let Some(a) = self.awaiting_receipt.take() {
                    match route(&text, &self.p.patterns) {
                        CodeRoute::Receipt { txn_id } => {
                            let req = RefundRequest {
                                original: Some(txn_id),
                                amount: a.amount,
                                refund_id: a.refund_id,
                                pin: String::new(),
                            };
                            self.start_refund(req, a.reply).await;
                        }
                        _ => {
                            let mut text = text;
                            zeroize::Zeroize::zeroize(&mut text);
                            self.ui(UiEvent::Notice {
                                text: "Scan the receipt's QR code".into(),
                            });
                            self.awaiting_receipt = Some(a);
                        }
                    }
                    return;
                }
                log::info!("code from {source} ignored: no sale waits for one");
                let mut text = text;
                zeroize::Zeroize::zeroize(&mut text);
                self.ui(UiEvent::Notice {
                    text: "No sale in progress".into(),
                });
            }
            EngineMsg::Cancel { reply } => {
                if let Some(a) = self.awaiting.take() {
                    let _ = a
                        .reply
                        .send(Err(SaleError::Refused("cancelled by the cashier".into())));
                    let _ = reply.send(Ok("cancelled before a code was scanned".into()));
                    return;
                }
                if let Some(a) = self.awaiting_receipt.take() {
                    let _ = a
                        .reply
                        .send(Err(SaleError::Refused("cancelled by the cashier".into())));
                    let _ = reply.send(Ok("refund cancelled before a receipt was scanned".into()));
                    return;
                }
                let Some(id) = self.current else {
                    let _ = reply.send(Err(SaleError::NoSale));
                    return;
                };
                let now = now_ms();
                let actions = match self.machines.get_mut(&id) {
                    Some(m) => m.handle(
                        Input::Cancel {
                            reason: "cancelled by the cashier".into(),
                        },
                        now,
                    ),
                    None => {
                        let _ = reply.send(Err(SaleError::NoSale));
                        return;
                    }
                };
                let what = match self.machines.get(&id) {
                    Some(Flow::Order(_)) => "closing the order",
                    Some(Flow::Refund(_)) => {
                        "a refund cannot be called back; it is retried until the host answers"
                    }
                    _ => "reversal under way",
                };
                match actions {
                    Ok(a) => {
                        self.execute(id, a).await;
                        let _ = reply.send(Ok(format!("sale {id} cancelled; {what}")));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(SaleError::Refused(e.to_string())));
                    }
                }
            }
            EngineMsg::Refund { req, reply } => {
                if self.busy() {
                    let _ = reply.send(Err(SaleError::Busy));
                    return;
                }
                if let Err(e) = self.check_pin(req.pin.clone()).await {
                    let _ = reply.send(Err(e));
                    return;
                }
                if req.original.is_none() {
                    self.ui(UiEvent::Notice {
                        text: "Refund\nScan the receipt".into(),
                    });
                    self.awaiting_receipt = Some(AwaitingReceipt {
                        amount: req.amount,
                        refund_id: req.refund_id,
                        reply,
                    });
                    return;
                }
                self.start_refund(req, reply).await;
            }
            EngineMsg::Void {
                original,
                pin,
                reply,
            } => {
                if let Err(e) = self.check_pin(pin).await {
                    let _ = reply.send(Err(e));
                    return;
                }
                self.void(original, reply).await;
            }
            EngineMsg::BatchClose { reply } => {
                let r = self.batch_close().await;
                let _ = reply.send(r);
            }
            EngineMsg::Current { reply } => {
                let v = match self.current.and_then(|id| self.machines.get(&id)) {
                    Some(f) => {
                        let t = f.txn();
                        Some(CurrentReply::Txn(CurrentTxn {
                            txn_id: t.id.to_string(),
                            kind: t.kind,
                            method: t.method,
                            state: t.state,
                            amount: t.amount,
                            currency: t.currency.code().to_string(),
                            qr: match f {
                                Flow::Order(o) => o.qr().map(str::to_string),
                                _ => None,
                            },
                        }))
                    }
                    None => match (&self.awaiting, &self.awaiting_receipt) {
                        (Some(a), _) => Some(CurrentReply::Awaiting(AwaitingInput {
                            awaiting: "code".into(),
                            amount: Some(a.amount),
                            currency: Some(a.currency.code().to_string()),
                        })),
                        (_, Some(_)) => Some(CurrentReply::Awaiting(AwaitingInput {
                            awaiting: "receipt".into(),
                            amount: None,
                            currency: None,
                        })),
                        _ => None,
                    },
                };
                let _ = reply.send(v);
            }
            EngineMsg::Paid {
                txn_id,
                host_ref,
                amount,
            } => {
                let Ok(id) = Uuid::parse_str(&txn_id) else {
                    log::warn!("payment notify for a malformed txn id: ignored");
                    return;
                };
                let now = now_ms();
                let Some(m) = self.machines.get_mut(&id) else {
                    log::info!(txn_id = txn_id.as_str(); "payment notify for no order in flight: ignored (a query or close decides)");
                    return;
                };
                if let Some(paid) = amount.filter(|a| *a != m.txn().amount) {
                    log::error!(txn_id = txn_id.as_str(); "payment notify for {paid} but the order is for {}: not taken as paid (the query and the close decide)", m.txn().amount);
                    return;
                }
                match m.handle(Input::Paid { host_ref }, now) {
                    Ok(a) => self.execute(id, a).await,
                    Err(e) => log::warn!(txn_id = txn_id.as_str(); "payment notify ignored: {e}"),
                }
            }
            EngineMsg::BatchResult {
                txn_id,
                reconciled,
                detail,
            } => self.batch_result(txn_id, reconciled, detail).await,
            EngineMsg::Settlement {
                txn_id,
                settled,
                reason,
            } => self.settle(txn_id, settled, reason).await,
            EngineMsg::Reconfigure { rules, reply } => {
                let r = *rules;
                self.p.policy = r.policy;
                self.p.max_amount = r.max_amount;
                self.p.patterns = r.patterns;
                self.p.offline = r.offline;
                self.p.merchant_qr = r.merchant_qr;
                self.p.card.saf = r.saf;
                let _ = reply.send(());
            }
            EngineMsg::Resp(resp) => {
                let now = now_ms();
                if let Some(txn_id) = self.settle_queries.remove(&resp.req_id) {
                    match resp.status {
                        RespStatus::Approved => self.settle(txn_id, true, None).await,
                        RespStatus::Declined => self.settle(txn_id, false, resp.reason).await,
                        _ => {}
                    }
                    return;
                }
                // Every req_id names the transaction that issued it (a refund's answer carries
                // the original sale in txn_id).
                let Some(id) = posd_core::txn::txn_of_req(&resp.req_id)
                    .or_else(|| Uuid::parse_str(&resp.txn_id).ok())
                else {
                    log::warn!("resp {:?} names no transaction: ignored", resp.req_id);
                    return;
                };
                let Some(m) = self.machines.get_mut(&id) else {
                    log::warn!(txn_id = resp.txn_id.as_str(); "resp {} for no transaction in flight: ignored", resp.req_id);
                    return;
                };
                match m.handle(Input::Resp(resp), now) {
                    Ok(a) => self.execute(id, a).await,
                    Err(e) => log::warn!(txn_id = id.to_string(); "resp ignored: {e}"),
                }
            }
        }
    }

    /// Journals a new transaction's first state (its intent), then runs the rest of its actions.
    async fn launch(
        &mut self,
        flow: Flow,
        actions: Vec<Action>,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
        what: &str,
    ) {
        let id = flow.txn().id;
        // A refund's intent is checked against its original inside the same SQLite transaction.
        let original = match &flow {
            Flow::Refund(f) => Some(f.original().to_string()),
            _ => None,
        };
        let mut actions = actions.into_iter();
        if let Some(Action::Persist(t)) = actions.next() {
            let r = self
                .p
                .store
                .call(move |db| match &original {
                    Some(o) => db.record_refund(&t, o),
                    None => db.record(&t),
                })
                .await;
            if let Err(e) = r {
                log::info!("transaction refused by the journal: {e}");
                let _ = reply.send(Err(SaleError::Store(e)));
                return;
            }
            self.p.link.kick();
        }
        self.machines.insert(id, flow);
        self.waiters.insert(id, reply);
        self.current = Some(id);
        self.ui(UiEvent::Processing {
            txn_id: id.to_string(),
            what: what.into(),
        });
        self.execute(id, actions.collect()).await;
    }

    async fn start_with_code(
        &mut self,
        amount: i64,
        currency: Currency,
        mut text: String,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    ) {
        let code = text.trim_end_matches(['\r', '\n']).to_string();
        let routed = route(&code, &self.p.patterns);
        let channel = match routed {
            CodeRoute::Online { channel } => channel,
            CodeRoute::Offline => {
                self.start_offline(amount, currency, &code, reply).await;
                return;
            }
            CodeRoute::Card => {
                zeroize::Zeroize::zeroize(&mut text);
                self.start_card(amount, currency, code, reply).await;
                return;
            }
            CodeRoute::Receipt { .. } => {
                let reason =
                    "this is a receipt: scan the customer's payment code, or use the refund menu"
                        .to_string();
                self.ui(UiEvent::Notice {
                    text: reason.clone(),
                });
                let _ = reply.send(Err(SaleError::Code(reason)));
                return;
            }
            CodeRoute::Refuse(reason) => {
                self.ui(UiEvent::Notice {
                    text: reason.clone(),
                });
                let _ = reply.send(Err(SaleError::Code(reason)));
                return;
            }
        };
        let now = now_ms();
        let mut txn = Transaction::new(
            TxnKind::Sale,
            Method::PaymentCode,
            amount,
            currency,
            TxnState::Authorizing,
            now,
            rand10(),
        );
        txn.channel = Some(channel);
        let (m, actions) = OnlineSale::start(txn, &code, self.p.policy, now);
        self.launch(
            Flow::Online(m),
            actions,
            reply,
            "asking the payment platform",
        )
        .await;
    }

    /// DESIGN §1.4: check the swipe, seal it to the host's key, wipe it; then online, or
    /// store-and-forward under the floor limit when the host is unreachable and config allows.
    async fn start_card(
        &mut self,
        amount: i64,
        currency: Currency,
        mut swipe: String,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    ) {
        let refuse =
            |this: &Self, text: String, reply: oneshot::Sender<Result<SaleReply, SaleError>>| {
                log::info!("card refused: {text}");
                this.ui(UiEvent::Notice { text: text.clone() });
                let _ = reply.send(Err(SaleError::Refused(text)));
            };
        let parsed = posd_core::card::track::parse_swipe(&swipe);
        zeroize::Zeroize::zeroize(&mut swipe);
        let card = match parsed {
            Ok(c) => c,
            Err(e) => return refuse(self, format!("card not read: {e}"), reply),
        };
        let now = now_ms();
        let (year, month) = local_year_month(now, self.p.card.utc_offset_s);
        if let Err(e) = card.check(year, month, self.p.card.chip_reader) {
            return refuse(self, e.to_string(), reply);
        }
        let Some(host_key) = self.p.card.host_key else {
            return refuse(
                self,
                "card payments are not configured on this terminal ([card] host_public_key)".into(),
                reply,
            );
        };
        let mut txn = Transaction::new(
            TxnKind::Sale,
            Method::Card,
            amount,
            currency,
            TxnState::Authorizing,
            now,
            rand10(),
        );
        txn.channel = Some(card.brand().as_str().to_string());
        txn.code_masked = Some(card.masked_pan());
        let aad = card_aad(&txn);
        let sealed = posd_core::card::seal::seal_random(&card, &host_key, aad.as_bytes());
        drop(card);
        let sealed = match sealed {
            Ok(s) => s,
            Err(e) => return refuse(self, format!("card could not be sealed: {e}"), reply),
        };
        let card_json = serde_json::json!({
            "masked_pan": txn.code_masked,
            "brand": txn.channel,
            "sealed": sealed,
        });
        if self.p.link.is_connected() {
            let (m, actions) = OnlineSale::start_card(txn, card_json, self.p.policy, now);
            self.launch(Flow::Online(m), actions, reply, "authorizing the card")
                .await;
            return;
        }
        // The host is unreachable: store and forward, only where the config allows it.
        let (queued, oldest) = match self.p.store.call(|db| db.card_saf_queue()).await {
            Ok(q) => q,
            Err(e) => {
                let _ = reply.send(Err(SaleError::Store(e)));
                return;
            }
        };
        if let Err(r) = posd_core::card::saf::saf_allowed(
            &self.p.card.saf,
            amount,
            queued,
            oldest.map(|ms| ms / 1000),
            now / 1000,
        ) {
            log::info!("card store-and-forward refused: {}", r.code());
            self.ui(UiEvent::Notice {
                text: r.to_string(),
            });
            let _ = reply.send(Err(SaleError::HostUnreachable(r.to_string())));
            return;
        }
        txn.state = TxnState::ApprovedOffline;
        txn.detail = Some(serde_json::json!({ "card": card_json, "store_and_forward": true }));
        let snapshot = txn.clone();
        match self.p.store.call(move |db| db.record(&snapshot)).await {
            Ok(seq) => {
                log::info!(txn_id = txn.id.to_string(), seq = seq; "card sale stored for forwarding");
                self.p.link.kick();
            }
            Err(e) => {
                let _ = reply.send(Err(SaleError::Store(e)));
                return;
            }
        }
        self.ui(UiEvent::Result {
            txn_id: txn.id.to_string(),
            text: "APPROVED (STORED)".into(),
            approved: true,
        });
        let _ = reply.send(Ok(SaleReply::of(
            &txn,
            SaleOutcome::Approved { host_ref: None },
        )));
    }

    /// DESIGN §1.3: make (or ask for) the code, show it, wait for the payment.
    async fn start_order(
        &mut self,
        amount: i64,
        currency: Currency,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    ) {
        let now = now_ms();
        let mut txn = Transaction::new(
            TxnKind::Sale,
            Method::MerchantQr,
            amount,
            currency,
            TxnState::Authorizing,
            now,
            rand10(),
        );
        let local = if self.p.merchant_qr.platform {
            None
        } else {
            match &self.p.merchant_qr.merchant {
                Some(m) => Some(m),
                None => {
                    let text =
                        "merchant QR is not configured on this terminal ([merchant_qr.merchant])"
                            .to_string();
                    self.ui(UiEvent::Notice { text: text.clone() });
                    let _ = reply.send(Err(SaleError::Refused(text)));
                    return;
                }
            }
        };
        let payload = match local {
            Some(merchant) => {
                txn.channel = Some("emv_mpm".into());
                let reference = order::reference_of(&txn.id);
                match codes::generate_dynamic(
                    merchant,
                    amount.max(0) as u64,
                    currency.code(),
                    &reference,
                    &self.p.terminal,
                ) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        let text = format!("merchant QR cannot be made: {e}");
                        self.ui(UiEvent::Notice { text: text.clone() });
                        let _ = reply.send(Err(SaleError::Refused(text)));
                        return;
                    }
                }
            }
            None => {
                if !self.p.link.is_connected() {
                    let _ = reply.send(Err(SaleError::HostUnreachable(
                        "the platform's merchant QR needs the host".into(),
                    )));
                    return;
                }
                txn.channel = Some("platform".into());
                None
            }
        };
        let (m, actions) = MerchantOrder::start(txn, payload, self.p.merchant_qr.policy, now);
        self.launch(
            Flow::Order(m),
            actions,
            reply,
            "waiting for the customer to pay",
        )
        .await;
    }

    /// Refund: the PIN is checked; the original and the amount are checked against the
    /// journal in the same SQLite transaction that records the refund's intent.
    async fn start_refund(
        &mut self,
        req: RefundRequest,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    ) {
        let Some(original) = req.original else {
            let _ = reply.send(Err(SaleError::NotFound("no original sale named".into())));
            return;
        };
        let original = original.trim().to_ascii_lowercase();
        // Idempotent: a refund_id already journaled answers with that refund, refunds nothing new.
        if let Some(rid) = req.refund_id.clone() {
            match self.p.store.call(move |db| db.refund_by_id(&rid)).await {
                Ok(Some(t))
                    if posd_core::refund::refund_keys(&t).map(|k| k.0)
                        != Some(original.clone())
                        || req.amount.is_some_and(|a| a != t.amount) =>
                {
                    let _ = reply.send(Err(SaleError::Refused(format!(
                        "refund_id {} was used for another refund ({} of sale {})",
                        req.refund_id.as_deref().unwrap_or(""),
                        t.amount,
                        posd_core::refund::refund_keys(&t)
                            .map(|k| k.0)
                            .unwrap_or_default()
                    ))));
                    return;
                }
                Ok(Some(t)) => {
                    let outcome = match t.state {
                        TxnState::Approved => SaleOutcome::Approved {
                            host_ref: t.host_ref.clone(),
                        },
                        TxnState::Declined => SaleOutcome::Declined {
                            reason: t.reason.clone().unwrap_or_default(),
                        },
                        _ => SaleOutcome::Pending {
                            reason: "this refund is already under way".into(),
                        },
                    };
                    let _ = reply.send(Ok(SaleReply::of(&t, outcome)));
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = reply.send(Err(SaleError::Store(e)));
                    return;
                }
            }
        }
        if !self.p.link.is_connected() {
            let text = "refunds need the host: try again when the terminal is online".to_string();
            self.ui(UiEvent::Notice { text: text.clone() });
            let _ = reply.send(Err(SaleError::HostUnreachable(text)));
            return;
        }
        let key = original.clone();
        let ctx = match self.p.store.call(move |db| db.refund_context(&key)).await {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Err(SaleError::Store(e)));
                return;
            }
        };
        let Some(orig) = ctx.original else {
            let _ = reply.send(Err(SaleError::NotFound(format!(
                "no sale {original} on this terminal"
            ))));
            return;
        };
        let amount = req.amount.unwrap_or(orig.amount - ctx.committed).max(0);
        let now = now_ms();
        let mut txn = Transaction::new(
            TxnKind::Refund,
            orig.method,
            amount,
            orig.currency,
            TxnState::Authorizing,
            now,
            rand10(),
        );
        txn.channel = orig.channel.clone();
        txn.code_masked = orig.code_masked.clone();
        let refund_id = req.refund_id.unwrap_or_else(|| txn.id.to_string());
        txn.detail = Some(serde_json::json!({
            "original": orig.id.to_string(),
            "refund_id": refund_id,
        }));
        let Some((m, actions)) = RefundFlow::start(txn, self.p.refund_policy, now) else {
            let _ = reply.send(Err(SaleError::Refused("refund without keys".into())));
            return;
        };
        self.launch(Flow::Refund(m), actions, reply, "refunding")
            .await;
    }

    async fn void(
        &mut self,
        original: String,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    ) {
        let original = original.trim().to_ascii_lowercase();
        let now = now_ms();
        let mut v = Transaction::new(
            TxnKind::Void,
            Method::OfflineCode,
            0,
            self.p.currency,
            TxnState::Voided,
            now,
            rand10(),
        );
        v.detail = Some(serde_json::json!({ "original": original }));
        let key = original.clone();
        match self
            .p
            .store
            .call(move |db| db.record_void(&v, &key, now))
            .await
        {
            Ok(t) => {
                log::info!(txn_id = original.as_str(); "offline sale voided by {}", t.id);
                self.p.link.kick();
                self.ui(UiEvent::Result {
                    txn_id: t.id.to_string(),
                    text: "VOIDED".into(),
                    approved: true,
                });
                let _ = reply.send(Ok(SaleReply::of(
                    &t,
                    SaleOutcome::Approved { host_ref: None },
                )));
            }
            Err(e) => {
                let _ = reply.send(Err(SaleError::Store(e)));
            }
        }
    }

    async fn batch_close(&mut self) -> Result<BatchReply, SaleError> {
        if self.busy() {
            return Err(SaleError::Busy);
        }
        // A transaction still talking to the host would be counted at its state now and never
        // again (it belongs to the batch of its first event): close when they have ended.
        if !self.machines.is_empty() {
            let ids: Vec<String> = self
                .machines
                .keys()
                .take(5)
                .map(|id| id.to_string())
                .collect();
            return Err(SaleError::InFlight(format!(
                "{} transaction(s) still waiting for the host ({}); close the batch when they end",
                self.machines.len(),
                ids.join(", ")
            )));
        }
        let now = now_ms();
        let mut t = Transaction::new(
            TxnKind::BatchClose,
            Method::None,
            0,
            self.p.currency,
            TxnState::Closed,
            now,
            rand10(),
        );
        t.channel = None;
        let (t, seq) = self.p.store.call(move |db| db.batch_close(t)).await?;
        self.p.link.kick();
        log::info!(txn_id = t.id.to_string(), seq = seq; "batch closed");
        self.ui(UiEvent::Notice {
            text: "Batch closed\nZ report printed".into(),
        });
        Ok(BatchReply {
            txn_id: t.id.to_string(),
            seq,
            report: serde_json::from_value(t.detail.clone().unwrap_or_default()).map_err(|e| {
                SaleError::Refused(format!("the Z report cannot be read back: {e}"))
            })?,
        })
    }

    /// Prints the merchant-presented code when the config asks for it and a printer exists.
    async fn print_pay_slip(&mut self, id: Uuid, qr: &str) {
        let (Some(wake), true) = (self.p.printer.clone(), self.p.merchant_qr.print) else {
            return;
        };
        let Some(t) = self.machines.get(&id).map(|m| m.txn().clone()) else {
            return;
        };
        let simple = t.id.simple().to_string();
        let slip = posd_core::receipt::PaySlip {
            terminal_id: self.p.terminal.clone(),
            txn_ref: simple.chars().skip(20).collect(),
            amount_minor: t.amount,
            currency: t.currency.code().to_string(),
            exponent: t.currency.exponent(),
            qr: qr.to_string(),
            at: posd_core::receipt::LocalTime {
                unix_secs: (t.created_at / 1000) as i64,
                utc_offset_secs: self.p.utc_offset_s,
            },
        };
        let doc = posd_core::receipt::PrintDoc::PaySlip { pay_slip: slip };
        let key = t.id.to_string();
        match self
            .p
            .store
            .call(move |db| db.enqueue_doc(&key, &doc, now_ms()))
            .await
        {
            Ok(_) => wake.notify_one(),
            Err(e) => log::warn!(txn_id = id.to_string(); "pay slip not queued: {e}"),
        }
    }

    async fn batch_result(&mut self, txn_id: String, reconciled: bool, detail: serde_json::Value) {
        let key = txn_id.clone();
        let t = match self.p.store.call(move |db| db.txn(&key)).await {
            Ok(Some(t)) if t.kind == TxnKind::BatchClose => t,
            Ok(_) => {
                log::warn!("batch result for unknown batch {txn_id}: ignored");
                return;
            }
            Err(e) => {
                log::error!("batch result for {txn_id} not recorded: {e}");
                return;
            }
        };
        if t.state != TxnState::Closed {
            log::info!(txn_id = txn_id.as_str(); "batch result ignored: batch already {}", t.state.as_str());
            return;
        }
        let mut t = t;
        t.state = if reconciled {
            TxnState::Reconciled
        } else {
            TxnState::Mismatch
        };
        if !reconciled {
            t.reason = Some(format!("host reports a mismatch: {detail}"));
            log::warn!(txn_id = txn_id.as_str(); "batch close does not match the host: {detail}");
        }
        if let Some(d) = t.detail.as_mut() {
            d["host"] = detail;
        }
        t.updated_at = now_ms();
        match self.p.store.call(move |db| db.record(&t)).await {
            Ok(_) => self.p.link.kick(),
            Err(e) => log::error!("batch result for {txn_id} not recorded: {e}"),
        }
    }

    /// DESIGN §1.2: verify, check every rule against the journal, approve durably, queue.
    async fn start_offline(
        &mut self,
        amount: i64,
        currency: Currency,
        text: &str,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    ) {
        let refuse = |this: &Self,
                      code: &'static str,
                      short: &str,
                      message: String,
                      reply: oneshot::Sender<Result<SaleReply, SaleError>>| {
            log::info!("offline code refused: {code}: {message}");
            this.ui(UiEvent::Notice {
                text: short.to_string(),
            });
            let _ = reply.send(Err(SaleError::Offline { code, message }));
        };
        let off = &self.p.offline;
        if !off.enabled {
            refuse(
                self,
                "offline_disabled",
                "Offline not accepted",
                "this terminal does not accept offline codes".into(),
                reply,
            );
            return;
        }
        let now = now_ms();
        let now_s = now / 1000;
        let verified = match codes::verify_p1(text, now_s, &off.keys, &off.policy) {
            Ok(v) => v,
            Err(r) => {
                refuse(self, r.code(), r.short_message(), r.to_string(), reply);
                return;
            }
        };
        let user = verified.user_id();
        let counter = verified.counter();
        let day_start = now - now % 86_400_000;
        let snap = match self
            .p
            .store
            .call(move |db| db.offline_snapshot(user, day_start))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(SaleError::Store(e)));
                return;
            }
        };
        let fingerprint = verified.credential_fingerprint.clone();
        let state = OfflineState {
            last_counter: snap.last_counter,
            user_total_today: snap.user_total_today,
            unsynced_count: snap.unsynced_count,
            unsynced_amount: snap.unsynced_amount,
            oldest_unsynced_at: snap.oldest_unsynced_at.map(|ms| ms / 1000),
            denylisted: off.deny_users.contains(&user)
                || off.deny_credentials.contains(&fingerprint),
            clock_trusted: clock_trusted(off.clock, now),
        };
        let amount_u = amount.max(0) as u64;
        if let Err(r) = codes::check_offline_acceptance(
            &verified,
            amount_u,
            currency.code(),
            &state,
            &off.limits,
            now_s,
        ) {
            refuse(self, r.code(), r.short_message(), r.to_string(), reply);
            return;
        }
        let mut txn = Transaction::new(
            TxnKind::Sale,
            Method::OfflineCode,
            amount,
            currency,
            TxnState::ApprovedOffline,
            now,
            rand10(),
        );
        txn.channel = Some("p1".into());
        txn.code_masked = Some(format!("P1 user {user} #{counter}"));
        txn.detail = Some(serde_json::json!({
            "p1": verified.text(),
            "user_id": user,
            "counter": counter,
            "credential": fingerprint,
            "issuer_key_id": verified.code.credential.issuer_key_id,
        }));
        let snapshot = txn.clone();
        match self
            .p
            .store
            .call(move |db| db.record_offline_sale(&snapshot, user, counter))
            .await
        {
            Ok(seq) => {
                log::info!(txn_id = txn.id.to_string(), seq = seq; "offline sale approved");
                self.p.link.kick();
            }
            Err(StoreError::CounterReplayed { .. }) => {
                refuse(
                    self,
                    "counter_replayed",
                    "Code already used",
                    "this code was already used".into(),
                    reply,
                );
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(SaleError::Store(e)));
                return;
            }
        }
        self.ui(UiEvent::Result {
            txn_id: txn.id.to_string(),
            text: "APPROVED OFFLINE".into(),
            approved: true,
        });
        let _ = reply.send(Ok(SaleReply::of(
            &txn,
            SaleOutcome::Approved { host_ref: None },
        )));
    }

    /// The host's verdict on an offline sale at settlement: journaled, visible in `txn show`.
    async fn settle(&mut self, txn_id: String, settled: bool, reason: Option<String>) {
        let key = txn_id.clone();
        let txn = match self.p.store.call(move |db| db.txn(&key)).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                log::warn!("settlement for unknown transaction {txn_id}: ignored");
                return;
            }
            Err(e) => {
                log::error!("settlement for {txn_id} not recorded: {e}");
                return;
            }
        };
        if txn.state != TxnState::ApprovedOffline {
            log::info!(txn_id = txn_id.as_str(); "settlement ignored: transaction is {}", txn.state.as_str());
            return;
        }
        let mut t = txn;
        t.state = if settled {
            TxnState::Settled
        } else {
            TxnState::SettlementRejected
        };
        t.reason = reason;
        t.updated_at = now_ms();
        match self.p.store.call(move |db| db.record(&t)).await {
            Ok(seq) => {
                log::info!(txn_id = txn_id.as_str(), seq = seq; "offline sale {}", if settled { "settled" } else { "rejected at settlement" });
                self.p.link.kick();
            }
            Err(e) => log::error!("settlement for {txn_id} not recorded: {e}"),
        }
    }

    /// Asks the host about offline sales it holds but has not settled (its notify may be lost).
    async fn settlement_round(&mut self, now: u64) {
        if now < self.next_settle_check || !self.p.link.is_connected() {
            return;
        }
        self.next_settle_check = now + self.p.offline.settle_query_ms;
        self.settle_queries.clear();
        let before = now.saturating_sub(self.p.offline.settle_query_ms);
        let ids = match self
            .p
            .store
            .call(move |db| db.unsettled_offline(before, SETTLE_BATCH))
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                log::error!("cannot list unsettled offline sales: {e}");
                return;
            }
        };
        for (n, id) in ids.into_iter().enumerate() {
            let req_id = format!("{}.settle.{now}.{n}", id.replace('-', ""));
            let req = posd_core::protocol::Request::new(
                req_id.clone(),
                posd_core::protocol::Op::Query,
                id.clone(),
            );
            if self.p.link.send_request(&req).is_ok() {
                self.settle_queries.insert(req_id, id);
            }
        }
    }

    async fn tick(&mut self) {
        let now = now_ms();
        self.settlement_round(now).await;
        let due: Vec<Uuid> = self
            .machines
            .iter()
            .filter(|(_, m)| m.next_wake().is_some_and(|w| w <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let r = match self.machines.get_mut(&id) {
                Some(m) => m.handle(Input::Tick, now),
                None => continue,
            };
            if let Ok(a) = r {
                self.execute(id, a).await;
            }
        }
    }

    /// Stops after a journal failure: nothing external may follow an intent that is not
    /// durable. Resumes from the last durable state, which queries and decides again.
    async fn resume_from_journal(&mut self, id: Uuid, error: StoreError) {
        // Whoever waits hears of the failure now; the till is free again.
        if let Some(w) = self.waiters.remove(&id) {
            let _ = w.send(Err(SaleError::Store(error)));
        }
        if self.current == Some(id) {
            self.current = None;
        }
        let key = id.to_string();
        let durable = self.p.store.call(move |db| db.txn(&key)).await;
        match durable
            .ok()
            .flatten()
            .and_then(|d| Flow::recover(d, &self.p, now_ms() + 1000))
        {
            Some(f) => {
                self.machines.insert(id, f);
            }
            None => {
                // Not even the last durable state can be read: drop it from memory; the next
                // start resumes it from the journal.
                self.machines.remove(&id);
            }
        }
    }

    async fn execute(&mut self, id: Uuid, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Persist(t) => {
                    let state = t.state;
                    let kind = t.kind;
                    let snapshot = t.clone();
                    match self.p.store.call(move |db| db.record(&snapshot)).await {
                        Ok(seq) => {
                            log::info!(txn_id = id.to_string(), seq = seq; "{} {}", kind.as_str(), state.as_str());
                            self.p.link.kick();
                            if state == TxnState::Pending
                                && kind == TxnKind::Sale
                                && t.method != Method::MerchantQr
                            {
                                self.ui(UiEvent::CustomerConfirming {
                                    txn_id: id.to_string(),
                                });
                            }
                        }
                        Err(e) => {
                            log::error!(txn_id = id.to_string(); "journal refused state {}: {e}", state.as_str());
                            self.resume_from_journal(id, e).await;
                            return;
                        }
                    }
                }
                Action::PersistWithRefund { sale, refund } => {
                    let pair = [sale.clone(), refund.clone()];
                    match self.p.store.call(move |db| db.record_batch(&pair)).await {
                        Ok(_) => {
                            log::warn!(txn_id = id.to_string(); "order paid after the cashier was told it was not: refunding it automatically ({})", refund.id);
                            self.p.link.kick();
                            if let Some(f) =
                                RefundFlow::resume(refund, self.p.refund_policy, now_ms(), false)
                            {
                                self.machines.insert(f.txn().id, Flow::Refund(f));
                            }
                        }
                        Err(e) => {
                            log::error!(txn_id = id.to_string(); "journal refused the paid order and its refund: {e}");
                            self.resume_from_journal(id, e).await;
                            return;
                        }
                    }
                }
                Action::ShowQr(qr) => {
                    let amount = self
                        .machines
                        .get(&id)
                        .map(|m| {
                            let t = m.txn();
                            format!("{} {}", t.currency.format(t.amount), t.currency)
                        })
                        .unwrap_or_default();
                    self.print_pay_slip(id, &qr).await;
                    self.ui(UiEvent::ShowQr {
                        txn_id: id.to_string(),
                        qr,
                        amount,
                    });
                }
                Action::Send(req) => {
                    if let Err(e) = self.p.link.send_request(&req) {
                        log::warn!(txn_id = id.to_string(); "{} not sent: {e}", req.op.as_str());
                    }
                }
                Action::Outcome(outcome) => {
                    if self.current == Some(id) {
                        self.current = None;
                    }
                    let Some(m) = self.machines.get(&id) else {
                        continue;
                    };
                    let t = m.txn();
                    let refund = t.kind == TxnKind::Refund;
                    let (text, approved) = match &outcome {
                        SaleOutcome::Approved { .. } if refund => ("REFUNDED".to_string(), true),
                        SaleOutcome::Approved { .. } => ("APPROVED".to_string(), true),
                        SaleOutcome::Declined { reason } => (format!("DECLINED: {reason}"), false),
                        SaleOutcome::Cancelled { reason } => (format!("NOT PAID: {reason}"), false),
                        SaleOutcome::Pending { reason } => (format!("PENDING: {reason}"), false),
                    };
                    self.ui(UiEvent::Result {
                        txn_id: id.to_string(),
                        text,
                        approved,
                    });
                    let reply = SaleReply::of(t, outcome);
                    if let Some(w) = self.waiters.remove(&id) {
                        let _ = w.send(Ok(reply));
                    }
                }
                Action::Finished => {
                    self.machines.remove(&id);
                    self.waiters.remove(&id);
                    if self.current == Some(id) {
                        self.current = None;
                    }
                }
            }
        }
    }
}

fn rand10() -> [u8; 10] {
    let mut b = [0u8; 10];
    for x in &mut b {
        *x = fastrand::u8(..);
    }
    b
}
