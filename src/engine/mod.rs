//! The sale engine: the tokio shell around the core's transaction state machines and the till.
//!
//! It owns every transaction with a host conversation open, feeds them host responses, cashier
//! cancels and clock ticks, and carries out their actions in order — `Persist` through the
//! journal (durable before the next action), `Send` through the MQTT link. Sales arrive from
//! the control socket, the keypad or the console; codes arrive from any scanner. What may
//! happen next is the pure `posd_core::till::Till`'s decision; this module only does it.
//! Each way to pay is its own file: [`sale`] (customer-presented codes and what the till
//! waits for), [`card`], [`order`] (merchant-presented), [`offline`] (P1 and settlement),
//! [`refund`] (refunds, voids, the PIN), [`batch`].

mod batch;
mod card;
mod offline;
mod onecode;
mod order;
mod pin;
mod refund;
mod rules;
mod sale;

pub use rules::{
    clock_trusted, CardRuntime, EngineParams, EngineRules, MerchantQrRuntime, OfflineRuntime,
};

use crate::clock::now_ms;
use crate::store::StoreError;
use posd_core::control::{BatchReply, CurrentReply, SaleMethod, SaleReply};
use posd_core::display::UiEvent;
use posd_core::i18n::Msg;
use posd_core::money::Currency;
use posd_core::order::MerchantOrder;
use posd_core::protocol::{RespStatus, Response};
use posd_core::refund::RefundFlow;
use posd_core::till::{Till, TillRefusal};
use posd_core::txn::{
    Action, Ignored, Input, Method, OnlineSale, SaleOutcome, Transaction, TxnKind, TxnState,
};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// `m` in the shop's language now (`posd_core::i18n`, `crate::lang`).
pub(crate) fn say(m: Msg) -> String {
    posd_core::i18n::text(crate::lang::current(), m).to_string()
}

/// `m` with its values, in the shop's language now.
pub(crate) fn say_with(m: Msg, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    posd_core::i18n::tr(crate::lang::current(), m, args)
}

/// Why a sale could not be started or completed.
#[derive(Debug, thiserror::Error)]
pub enum SaleError {
    /// The till's rules said no (busy, limits, PIN, host needed, batch preconditions).
    /// In the shop's language; its `code` stays English.
    #[error("{}", .0.text(crate::lang::current()))]
    Till(#[from] TillRefusal),
    #[error("{0}")]
    Code(String),
    /// Said without a "refused:" prefix: the caller says whether it was refused.
    #[error("{0}")]
    Refused(String),
    #[error("{}", say_with(Msg::OfflineRefused, &[("message", .message)]))]
    Offline { code: &'static str, message: String },
    /// The journal's own refusal (a refund over what is left, a void of a settled sale) is
    /// its message; any other store error says the journal failed.
    #[error("{}", store_message(.0))]
    Store(#[from] StoreError),
    #[error("{}", say(Msg::DaemonStopping))]
    Stopping,
    #[error("{0}")]
    NotFound(String),
    #[error("{}", say_with(Msg::HostUnreachable, &[("detail", .0)]))]
    HostUnreachable(String),
    /// Below `[retention] refuse_free_mb` free on the journal's disk.
    #[error("{0}")]
    DiskFull(String),
    /// The code or card already pays a transaction in flight (issue 15); the message names it.
    #[error("{message}")]
    CodeInFlight { txn_id: String, message: String },
}

fn store_message(e: &StoreError) -> String {
    match e {
        StoreError::Refused(r) => r.text(crate::lang::current()),
        other => say_with(Msg::JournalFailed, &[("error", other)]),
    }
}

impl SaleError {
    /// A stable machine-readable code for callers.
    pub fn code(&self) -> &'static str {
        match self {
            SaleError::Till(r) => r.code(),
            SaleError::Code(_) => "bad_code",
            SaleError::Refused(_) => "refused",
            SaleError::Offline { code, .. } => code,
            SaleError::Store(StoreError::Refused(_)) => "refused",
            SaleError::Store(StoreError::DiskFull) | SaleError::DiskFull(_) => {
                posd_core::control::codes::DISK_FULL
            }
            SaleError::Store(_) => "journal",
            SaleError::Stopping => "stopping",
            SaleError::NotFound(_) => "not_found",
            SaleError::HostUnreachable(_) => "host_unreachable",
            SaleError::CodeInFlight { .. } => posd_core::control::codes::CODE_IN_FLIGHT,
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
        reply: Reply,
    },
    Refund {
        req: RefundRequest,
        reply: Reply,
    },
    /// Wait for a receipt's QR to be scanned and answer with the transaction it names on
    /// this terminal (the keypad's reprint and void, issue 15). Cancel ends the wait.
    FindReceipt {
        /// What the displays say while it waits.
        prompt: String,
        reply: Reply,
    },
    /// Void an offline sale not yet settled.
    Void {
        original: String,
        pin: String,
        reply: Reply,
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
    /// The host settled (or refused) offline sales: the settlement notifies that came one
    /// after another, recorded in one commit.
    Settlements(Vec<crate::store::SettlementVerdict>),
    /// A fleet push (issue 8): new timeouts, limits, code patterns and offline rules (issuer
    /// keys, denylist). They hold from the next sale on; sales in flight keep their policy.
    Reconfigure {
        rules: Box<EngineRules>,
        reply: oneshot::Sender<()>,
    },
}

/// How a waiting caller is answered.
pub(crate) type Reply = oneshot::Sender<Result<SaleReply, SaleError>>;

/// One transaction with a host conversation open.
pub(crate) enum Flow {
    Online(OnlineSale),
    Order(MerchantOrder),
    Refund(RefundFlow),
}

impl Flow {
    pub(crate) fn txn(&self) -> &Transaction {
        match self {
            Flow::Online(m) => m.txn(),
            Flow::Order(m) => m.txn(),
            Flow::Refund(m) => m.txn(),
        }
    }
    pub(crate) fn next_wake(&self) -> Option<u64> {
        match self {
            Flow::Online(m) => m.next_wake(),
            Flow::Order(m) => m.next_wake(),
            Flow::Refund(m) => m.next_wake(),
        }
    }
    pub(crate) fn handle(&mut self, input: Input, now: u64) -> Result<Vec<Action>, Ignored> {
        match self {
            Flow::Online(m) => m.handle(input, now),
            Flow::Order(m) => m.handle(input, now),
            Flow::Refund(m) => m.handle(input, now),
        }
    }
    /// Rebuilds the flow of a transaction found in flight in the journal.
    pub(crate) fn recover(txn: Transaction, p: &EngineParams, now: u64) -> Option<Flow> {
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

pub(crate) struct Engine {
    pub(crate) p: EngineParams,
    /// One sale at a time, what the till waits for, the PIN lockout (pure).
    pub(crate) till: Till<Reply>,
    pub(crate) machines: HashMap<Uuid, Flow>,
    pub(crate) waiters: HashMap<Uuid, Reply>,
    /// Outstanding settlement queries: req_id → txn_id.
    pub(crate) settle_queries: HashMap<String, String>,
    pub(crate) next_settle_check: u64,
    /// The manager PIN's checks, on their own thread with one reused buffer.
    pub(crate) pin: pin::PinThread,
    /// P1 codes, remembering credentials whose issuer signature verified (bounded).
    pub(crate) p1: posd_core::codes::offline::P1Verifier,
    /// Sales left in flight by the last run and resumed at start (`current` says so).
    pub(crate) recovered: std::collections::HashSet<Uuid>,
}

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
        till: Till::new(p.currency, p.max_amount),
        p,
        machines: HashMap::new(),
        waiters: HashMap::new(),
        settle_queries: HashMap::new(),
        next_settle_check: 0,
        pin: pin::PinThread::default(),
        p1: posd_core::codes::offline::P1Verifier::default(),
        recovered: std::collections::HashSet::new(),
    };
    let now = now_ms();
    let in_flight = e.p.store.call(|db| db.in_flight()).await?;
    // The newest customer-facing sale still undecided (its outcome not yet told): the till
    // waits for it, as if it had just started (issue 15: the cashier must not sell it again).
    let mut till_waits: Option<Transaction> = None;
    for txn in in_flight {
        let id = txn.id;
        let state = txn.state;
        let undecided_sale =
            txn.kind == TxnKind::Sale && matches!(state, TxnState::Authorizing | TxnState::Pending);
        let snapshot = undecided_sale.then(|| txn.clone());
        match Flow::recover(txn, &e.p, now) {
            Some(f) => {
                log::warn!(txn_id = id.to_string(); "resolving a transaction left {} by the last run", state.as_str());
                e.machines.insert(id, f);
                if let Some(t) = snapshot {
                    if till_waits
                        .as_ref()
                        .is_none_or(|w| w.created_at <= t.created_at)
                    {
                        till_waits = Some(t);
                    }
                }
            }
            None => {
                log::error!(txn_id = id.to_string(); "transaction left {} cannot be resumed", state.as_str())
            }
        }
    }
    if let Some(t) = till_waits {
        e.till.started(t.id);
        e.recovered.insert(t.id);
        e.announce_recovered(&t);
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
    if let Some(a) = e.till.take_awaiting() {
        let _ = a.reply().send(Err(SaleError::Stopping));
    }
    for (_, w) in e.waiters.drain() {
        let _ = w.send(Err(SaleError::Stopping));
    }
    Ok(())
}

impl Engine {
    pub(crate) fn ui(&self, ev: UiEvent) {
        let _ = self.p.ui.send(ev);
    }

    async fn on_msg(&mut self, msg: EngineMsg) {
        match msg {
            EngineMsg::Sale {
                amount,
                currency,
                code,
                method,
                reply,
            } => match self.p.disk.refusal() {
                Some(why) => {
                    let _ = reply.send(Err(SaleError::DiskFull(why)));
                }
                None => self.sale(amount, currency, code, method, reply).await,
            },
            EngineMsg::Code { text, source } => self.code(text, &source).await,
            EngineMsg::Cancel { reply } => {
                let r = self.cancel().await;
                let _ = reply.send(r);
            }
            EngineMsg::Refund { req, reply } => match self.p.disk.refusal() {
                Some(why) => {
                    let _ = reply.send(Err(SaleError::DiskFull(why)));
                }
                None => self.refund(req, reply).await,
            },
            EngineMsg::Void {
                original,
                pin,
                reply,
            } => match self.check_pin(pin).await {
                Ok(()) => self.void(original, reply).await,
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            EngineMsg::FindReceipt { prompt, reply } => {
                if let Err(r) = self.till.check_refund() {
                    let _ = reply.send(Err(r.into()));
                } else {
                    self.ui(UiEvent::Notice { text: prompt });
                    self.till
                        .wait_for(posd_core::till::Awaiting::Lookup { reply });
                }
            }
            EngineMsg::BatchClose { reply } => {
                let r = self.batch_close().await;
                let _ = reply.send(r);
            }
            EngineMsg::Current { reply } => {
                let _ = reply.send(self.current());
            }
            EngineMsg::Paid {
                txn_id,
                host_ref,
                amount,
            } => self.paid(txn_id, host_ref, amount).await,
            EngineMsg::BatchResult {
                txn_id,
                reconciled,
                detail,
            } => self.batch_result(txn_id, reconciled, detail).await,
            EngineMsg::Settlements(verdicts) => self.settle(verdicts).await,
            EngineMsg::Reconfigure { rules, reply } => {
                let r = *rules;
                self.p.policy = r.policy;
                self.p.max_amount = r.max_amount;
                self.till.set_max_amount(r.max_amount);
                self.p.patterns = r.patterns;
                self.p.offline = r.offline;
                self.p.merchant_qr = r.merchant_qr;
                self.p.card.saf = r.saf;
                let _ = reply.send(());
            }
            EngineMsg::Resp(resp) => self.resp(resp).await,
        }
    }

    /// A host response: a settlement query's answer, or an input for the flow that asked.
    async fn resp(&mut self, resp: Response) {
        let now = now_ms();
        if let Some(txn_id) = self.settle_queries.remove(&resp.req_id) {
            self.p.link.shared.host_answered(now);
            match resp.status {
                RespStatus::Approved | RespStatus::Declined => {
                    let settled = resp.status == RespStatus::Approved;
                    let reason = if settled { None } else { resp.reason };
                    self.settle(vec![crate::store::SettlementVerdict {
                        txn_id,
                        settled,
                        reason,
                    }])
                    .await
                }
                _ => {}
            }
            return;
        }
        // Every req_id names the transaction that issued it (a refund's answer carries the
        // original sale in txn_id).
        let Some(id) =
            posd_core::txn::txn_of_req(&resp.req_id).or_else(|| Uuid::parse_str(&resp.txn_id).ok())
        else {
            log::warn!("resp {:?} names no transaction: ignored", resp.req_id);
            return;
        };
        let Some(m) = self.machines.get_mut(&id) else {
            log::warn!(txn_id = resp.txn_id.as_str(); "resp {} for no transaction in flight: ignored", resp.req_id);
            return;
        };
        match m.handle(Input::Resp(resp), now) {
            Ok(a) => {
                self.p.link.shared.host_answered(now);
                self.execute(id, a).await
            }
            Err(e) => log::warn!(txn_id = id.to_string(); "resp ignored: {e}"),
        }
    }

    /// Journals a new transaction's first state (its intent), then runs the rest of its actions.
    pub(crate) async fn launch(
        &mut self,
        flow: Flow,
        actions: Vec<Action>,
        reply: Reply,
        what: &str,
        code: Option<posd_core::code_guard::CodeDigest>,
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
                .call(move |db| match (&original, code) {
                    (Some(o), _) => db.record_refund(&t, o),
                    (None, Some(d)) => db.record_with_code(&t, &d.0),
                    (None, None) => db.record(&t),
                })
                .await;
            match r {
                Ok(_) => {}
                Err(StoreError::CodeInFlight(other)) => {
                    let e = self.code_in_flight_error(other).await;
                    self.refused(&e, None);
                    let _ = reply.send(Err(e));
                    return;
                }
                Err(e) => {
                    log::info!("transaction refused by the journal: {e}");
                    let _ = reply.send(Err(SaleError::Store(e)));
                    return;
                }
            }
            self.p.link.kick();
        }
        self.machines.insert(id, flow);
        self.waiters.insert(id, reply);
        self.till.started(id);
        self.ui(UiEvent::Processing {
            txn_id: id.to_string(),
            what: what.into(),
        });
        self.execute(id, actions.collect()).await;
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
        self.till.decided(id);
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

    /// Carries out a flow's actions in order. A request the link could not take certainly
    /// never left the box: the flow is told (`Input::NotSent`) and its answer carried out too.
    pub(crate) async fn execute(&mut self, id: Uuid, actions: Vec<Action>) {
        let mut actions = actions;
        loop {
            let Some(not_sent) = self.execute_once(id, actions).await else {
                return;
            };
            let now = now_ms();
            let reason = format!("not sent: {not_sent}");
            let r = match self.machines.get_mut(&id) {
                Some(m) => m.handle(Input::NotSent { reason }, now),
                None => return,
            };
            actions = match r {
                Ok(a) if !a.is_empty() => a,
                _ => return,
            };
            // The authorize never left: the caller is refused as if the till had seen the
            // link down first (nothing is charged, nothing stays in flight).
            if let Some(w) = self.waiters.remove(&id) {
                let refusal = match not_sent {
                    crate::link::LinkError::Offline => {
                        SaleError::Till(TillRefusal::LinkDown(self.p.link.verdict(now)))
                    }
                    other => {
                        SaleError::HostUnreachable(say_with(Msg::HostNotSent, &[("error", &other)]))
                    }
                };
                let _ = w.send(Err(refusal));
            }
        }
    }

    /// Carries out actions in order; returns why the first `Send` the link refused was not
    /// sent, if one was.
    async fn execute_once(
        &mut self,
        id: Uuid,
        actions: Vec<Action>,
    ) -> Option<crate::link::LinkError> {
        let mut not_sent = None;
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
                            return None;
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
                            return None;
                        }
                    }
                }
                // A code is never shown for an order the link did not take.
                Action::ShowQr(_) if not_sent.is_some() => {}
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
                        not_sent.get_or_insert(e);
                    }
                }
                Action::Outcome(outcome) => {
                    self.till.decided(id);
                    let Some(m) = self.machines.get(&id) else {
                        continue;
                    };
                    let t = m.txn();
                    let refund = t.kind == TxnKind::Refund;
                    let with = |m, reason: &String| say_with(m, &[("reason", reason)]);
                    let (mut text, approved) = match &outcome {
                        SaleOutcome::Approved { .. } if refund => (say(Msg::ResultRefunded), true),
                        SaleOutcome::Approved { .. } => (say(Msg::ResultApproved), true),
                        SaleOutcome::Declined { reason } => {
                            (with(Msg::ResultDeclined, reason), false)
                        }
                        SaleOutcome::Cancelled { reason } => {
                            (with(Msg::ResultNotPaid, reason), false)
                        }
                        SaleOutcome::Pending { reason } => {
                            (with(Msg::ResultPending, reason), false)
                        }
                    };
                    if let SaleOutcome::Declined { reason } = &outcome {
                        self.note_refusal("declined", reason, Some(id.to_string()));
                    }
                    // The receipt it earned cannot print now: the cashier hears it with the
                    // result, not from the log (issue 15).
                    if matches!(
                        outcome,
                        SaleOutcome::Approved { .. } | SaleOutcome::Declined { .. }
                    ) {
                        if let Some(w) = self.receipt_waiting() {
                            text = format!("{text} — {w}");
                        }
                    }
                    self.recovered.remove(&id);
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
                    self.recovered.remove(&id);
                    self.machines.remove(&id);
                    self.waiters.remove(&id);
                    self.till.decided(id);
                }
            }
        }
        not_sent
    }
}

pub(crate) fn rand10() -> [u8; 10] {
    let mut b = [0u8; 10];
    for x in &mut b {
        *x = fastrand::u8(..);
    }
    b
}
