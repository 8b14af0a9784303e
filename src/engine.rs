//! The sale engine: the tokio shell around the core's transaction state machines.
//!
//! It owns every sale in flight, feeds them host responses, cashier cancels and clock ticks,
//! and carries out their actions in order — `Persist` through the journal (durable before the
//! next action), `Send` through the MQTT link. Sales arrive from the control socket, the
//! keypad or the console; codes arrive from any scanner. One sale is undecided at a time, as at
//! a real till; reversals of earlier sales continue in the background.

use crate::codes::{
    self, CodeKind, IssuerKeys, OfflineLimits, OfflinePolicy, OfflineState, Patterns,
};
use crate::config::ClockTrust;
use crate::core::money::Currency;
use crate::core::protocol::{RespStatus, Response};
use crate::core::txn::{
    Action, Input, Method, OnlinePolicy, OnlineSale, SaleOutcome, Transaction, TxnKind, TxnState,
};
use crate::link::{now_ms, Link};
use crate::store::{Store, StoreError};
use serde::Serialize;
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
            SaleError::Store(_) => "journal",
            SaleError::Stopping => "stopping",
        }
    }
}

/// The final answer to a sale request.
#[derive(Debug, Clone, Serialize)]
pub struct SaleReply {
    pub txn_id: String,
    pub state: TxnState,
    #[serde(flatten)]
    pub outcome: SaleOutcome,
    pub amount: i64,
    pub currency: String,
    pub method: Method,
    pub channel: Option<String>,
    pub code_masked: Option<String>,
}

/// What the cashier and customer should see (console, customer display).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "ui", rename_all = "snake_case")]
pub enum UiEvent {
    AwaitingCode {
        amount: String,
    },
    Processing {
        txn_id: String,
        what: String,
    },
    CustomerConfirming {
        txn_id: String,
    },
    Result {
        txn_id: String,
        text: String,
        approved: bool,
    },
    Notice {
        text: String,
    },
}

pub enum EngineMsg {
    Sale {
        amount: i64,
        currency: Currency,
        code: Option<String>,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
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
        policy: OnlinePolicy,
        max_amount: i64,
        patterns: Patterns,
        offline: Box<OfflineRuntime>,
        reply: oneshot::Sender<()>,
    },
}

/// How a scanned code is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRoute {
    Online { channel: String },
    Offline,
    Refuse(String),
}

/// Routes scanned text with the configured patterns (the classifier in `codes`).
pub fn route(text: &str, patterns: &Patterns) -> CodeRoute {
    match codes::classify(text, patterns) {
        Err(e) => CodeRoute::Refuse(e.to_string()),
        Ok(c) => {
            if let Some(channel) = c.kind.online_channel() {
                return CodeRoute::Online {
                    channel: channel.to_string(),
                };
            }
            match c.kind {
                CodeKind::P1Offline => CodeRoute::Offline,
                CodeKind::CardTrack => {
                    CodeRoute::Refuse("card payments are not available on this terminal yet".into())
                }
                k => CodeRoute::Refuse(
                    k.refusal()
                        .map(|r| r.1.to_string())
                        .unwrap_or_else(|| format!("{} cannot pay a sale", k.name())),
                ),
            }
        }
    }
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

/// Unix seconds of this build: a clock earlier than that is certainly wrong.
pub const BUILD_UNIX: &str = env!("POSD_BUILD_UNIX");

/// Whether the clock can be trusted for offline codes at `now_ms`.
pub fn clock_trusted(mode: ClockTrust, now_ms: u64) -> bool {
    let floor = BUILD_UNIX
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

pub struct EngineParams {
    pub store: Store,
    pub link: Link,
    pub policy: OnlinePolicy,
    pub currency: Currency,
    pub max_amount: i64,
    pub patterns: Patterns,
    pub offline: OfflineRuntime,
    pub ui: broadcast::Sender<UiEvent>,
}

struct AwaitingCode {
    amount: i64,
    currency: Currency,
    reply: oneshot::Sender<Result<SaleReply, SaleError>>,
}

struct Engine {
    p: EngineParams,
    machines: HashMap<Uuid, OnlineSale>,
    waiters: HashMap<Uuid, oneshot::Sender<Result<SaleReply, SaleError>>>,
    awaiting: Option<AwaitingCode>,
    /// The sale whose outcome is not yet decided.
    current: Option<Uuid>,
    /// Outstanding settlement queries: req_id → txn_id.
    settle_queries: HashMap<String, String>,
    next_settle_check: u64,
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
        current: None,
        settle_queries: HashMap::new(),
        next_settle_check: 0,
    };
    let now = now_ms();
    let in_flight = e.p.store.call(|db| db.in_flight()).await?;
    for txn in in_flight {
        if txn.method != Method::PaymentCode {
            continue;
        }
        log::warn!(txn_id = txn.id.to_string(); "resolving a transaction left {} by the last run", txn.state.as_str());
        let m = OnlineSale::recover(txn, e.p.policy, now);
        e.machines.insert(m.txn().id, m);
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
    for (_, w) in e.waiters.drain() {
        let _ = w.send(Err(SaleError::Stopping));
    }
    Ok(())
}

impl Engine {
    fn ui(&self, ev: UiEvent) {
        let _ = self.p.ui.send(ev);
    }

    async fn on_msg(&mut self, msg: EngineMsg) {
        match msg {
            EngineMsg::Sale {
                amount,
                currency,
                code,
                reply,
            } => {
                if self.current.is_some() || self.awaiting.is_some() {
                    let _ = reply.send(Err(SaleError::Busy));
                    return;
                }
                if currency != self.p.currency {
                    let _ = reply.send(Err(SaleError::Currency(currency.code().into())));
                    return;
                }
                if amount > self.p.max_amount {
                    let _ = reply.send(Err(SaleError::OverLimit {
                        amount: currency.format(amount),
                        limit: currency.format(self.p.max_amount),
                    }));
                    return;
                }
                match code {
                    Some(code) => self.start_with_code(amount, currency, &code, reply).await,
                    None => {
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
                let Some(a) = self.awaiting.take() else {
                    log::info!("code from {source} ignored: no sale waits for one");
                    self.ui(UiEvent::Notice {
                        text: "No sale in progress".into(),
                    });
                    return;
                };
                self.start_with_code(a.amount, a.currency, &text, a.reply)
                    .await;
            }
            EngineMsg::Cancel { reply } => {
                if let Some(a) = self.awaiting.take() {
                    let _ = a
                        .reply
                        .send(Err(SaleError::Refused("cancelled by the cashier".into())));
                    let _ = reply.send(Ok("cancelled before a code was scanned".into()));
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
                match actions {
                    Ok(a) => {
                        self.execute(id, a).await;
                        let _ = reply.send(Ok(format!("sale {id} cancelled; reversal under way")));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(SaleError::Refused(e.to_string())));
                    }
                }
            }
            EngineMsg::Settlement {
                txn_id,
                settled,
                reason,
            } => self.settle(txn_id, settled, reason).await,
            EngineMsg::Reconfigure {
                policy,
                max_amount,
                patterns,
                offline,
                reply,
            } => {
                self.p.policy = policy;
                self.p.max_amount = max_amount;
                self.p.patterns = patterns;
                self.p.offline = *offline;
                let _ = reply.send(());
            }
            EngineMsg::Resp(resp) => {
                let Ok(id) = Uuid::parse_str(&resp.txn_id) else {
                    log::warn!("resp for a malformed txn id {:?}: ignored", resp.txn_id);
                    return;
                };
                let now = now_ms();
                if let Some(txn_id) = self.settle_queries.remove(&resp.req_id) {
                    match resp.status {
                        RespStatus::Approved => self.settle(txn_id, true, None).await,
                        RespStatus::Declined => self.settle(txn_id, false, resp.reason).await,
                        _ => {}
                    }
                    return;
                }
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

    async fn start_with_code(
        &mut self,
        amount: i64,
        currency: Currency,
        code: &str,
        reply: oneshot::Sender<Result<SaleReply, SaleError>>,
    ) {
        let code = code.trim_end_matches(['\r', '\n']);
        let channel = match route(code, &self.p.patterns) {
            CodeRoute::Online { channel } => channel,
            CodeRoute::Offline => {
                self.start_offline(amount, currency, code, reply).await;
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
        let (m, actions) = OnlineSale::start(txn, code, self.p.policy, now);
        let id = m.txn().id;
        // The intent must be durable before anything else happens.
        let first = actions.first().cloned();
        if let Some(Action::Persist(t)) = first {
            if let Err(e) = self.p.store.call(move |db| db.record(&t)).await {
                log::error!("sale refused, journal error: {e}");
                let _ = reply.send(Err(SaleError::Store(e)));
                return;
            }
            self.p.link.kick();
        }
        self.machines.insert(id, m);
        self.waiters.insert(id, reply);
        self.current = Some(id);
        self.ui(UiEvent::Processing {
            txn_id: id.to_string(),
            what: "asking the payment platform".into(),
        });
        self.execute(id, actions.into_iter().skip(1).collect())
            .await;
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
        let _ = reply.send(Ok(SaleReply {
            txn_id: txn.id.to_string(),
            state: txn.state,
            outcome: SaleOutcome::Approved { host_ref: None },
            amount: txn.amount,
            currency: txn.currency.code().to_string(),
            method: txn.method,
            channel: txn.channel.clone(),
            code_masked: txn.code_masked.clone(),
        }));
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
            let req = crate::core::protocol::Request::new(
                req_id.clone(),
                crate::core::protocol::Op::Query,
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

    async fn execute(&mut self, id: Uuid, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Persist(t) => {
                    let state = t.state;
                    let snapshot = t.clone();
                    match self.p.store.call(move |db| db.record(&snapshot)).await {
                        Ok(seq) => {
                            log::info!(txn_id = id.to_string(), seq = seq; "sale {}", state.as_str());
                            self.p.link.kick();
                            if state == TxnState::Pending {
                                self.ui(UiEvent::CustomerConfirming {
                                    txn_id: id.to_string(),
                                });
                            }
                        }
                        Err(e) => {
                            // Stop here: nothing external may follow an intent that is not durable.
                            // Resume from the last durable state, which queries and decides again.
                            log::error!(txn_id = id.to_string(); "journal refused state {}: {e}", state.as_str());
                            let durable = {
                                let key = id.to_string();
                                self.p.store.call(move |db| db.txn(&key)).await
                            };
                            if let Ok(Some(d)) = durable {
                                let m = OnlineSale::recover(d, self.p.policy, now_ms() + 1000);
                                self.machines.insert(id, m);
                            }
                            return;
                        }
                    }
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
                    let (text, approved) = match &outcome {
                        SaleOutcome::Approved { .. } => ("APPROVED".to_string(), true),
                        SaleOutcome::Declined { reason } => (format!("DECLINED: {reason}"), false),
                        SaleOutcome::Cancelled { reason } => (format!("NOT PAID: {reason}"), false),
                    };
                    self.ui(UiEvent::Result {
                        txn_id: id.to_string(),
                        text,
                        approved,
                    });
                    let reply = SaleReply {
                        txn_id: id.to_string(),
                        state: t.state,
                        outcome,
                        amount: t.amount,
                        currency: t.currency.code().to_string(),
                        method: t.method,
                        channel: t.channel.clone(),
                        code_masked: t.code_masked.clone(),
                    };
                    if let Some(w) = self.waiters.remove(&id) {
                        let _ = w.send(Ok(reply));
                    }
                }
                Action::Finished => {
                    self.machines.remove(&id);
                    self.waiters.remove(&id);
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
