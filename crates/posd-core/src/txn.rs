//! Transactions and the online payment-code state machine (DESIGN §1.1), with no I/O.
//!
//! The machine takes inputs (a host response, a clock tick, a cashier's cancel) together with
//! `now` and returns actions for the shell to carry out *in order*: `Persist` must be durable
//! in SQLite before the `Send` that follows it leaves the box. That ordering is the whole
//! defence against the "one-sided account": every request is preceded by its durable intent,
//! and every unknown outcome ends in a query and, failing that, a durable, retried reversal.

use crate::backoff::Backoff;
use crate::money::Currency;
use crate::protocol::{Op, Request, RespStatus, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Unix time in milliseconds; always passed in, never read inside the core.
pub type Millis = u64;

/// How the customer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Customer-presented code verified online (reverse scan).
    PaymentCode,
    /// Customer-presented `P1` code verified on the box.
    OfflineCode,
    /// Merchant-presented QR.
    MerchantQr,
    /// Magnetic-stripe card.
    Card,
    /// Not a payment (a batch close).
    None,
}

impl Method {
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::PaymentCode => "payment_code",
            Method::OfflineCode => "offline_code",
            Method::MerchantQr => "merchant_qr",
            Method::Card => "card",
            Method::None => "none",
        }
    }
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "payment_code" => Method::PaymentCode,
            "offline_code" => Method::OfflineCode,
            "merchant_qr" => Method::MerchantQr,
            "card" => Method::Card,
            "none" => Method::None,
            _ => return None,
        })
    }
}

/// What a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnKind {
    Sale,
    Refund,
    Void,
    BatchClose,
}

impl TxnKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TxnKind::Sale => "sale",
            TxnKind::Refund => "refund",
            TxnKind::Void => "void",
            TxnKind::BatchClose => "batch_close",
        }
    }
    pub fn parse(s: &str) -> Option<TxnKind> {
        Some(match s {
            "sale" => TxnKind::Sale,
            "refund" => TxnKind::Refund,
            "void" => TxnKind::Void,
            "batch_close" => TxnKind::BatchClose,
            _ => return None,
        })
    }
}

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnState {
    /// Durable intent written; the request may or may not have left.
    Authorizing,
    /// The host said the customer is confirming (or did not answer): we query.
    Pending,
    /// The host approved: a sale.
    Approved,
    /// The host declined: nobody was charged.
    Declined,
    /// Cancelled or timed out: a reversal is durable and retried until confirmed.
    Reversing,
    /// The host confirmed the reversal: nobody is charged.
    Reversed,
    /// Approved on the box by the offline rules; settles later.
    ApprovedOffline,
    /// The host accepted an offline sale at settlement.
    Settled,
    /// The host refused an offline sale at settlement.
    SettlementRejected,
    /// A void of a not-yet-settled offline sale.
    Voided,
    /// Refused on the box before anything left (e.g. an offline rule).
    Refused,
    /// A merchant-presented order is being closed: `close` is durable and retried until answered.
    Closing,
    /// The host confirmed the order closed unpaid: nobody is charged.
    Closed,
    /// A batch close the host reconciled with its own ledger.
    Reconciled,
    /// A batch close whose totals the host does not agree with (see the reason).
    Mismatch,
}

impl TxnState {
    /// Every state (what the journal may hold).
    pub const ALL: [TxnState; 15] = [
        TxnState::Authorizing,
        TxnState::Pending,
        TxnState::Approved,
        TxnState::Declined,
        TxnState::Reversing,
        TxnState::Reversed,
        TxnState::ApprovedOffline,
        TxnState::Settled,
        TxnState::SettlementRejected,
        TxnState::Voided,
        TxnState::Refused,
        TxnState::Closing,
        TxnState::Closed,
        TxnState::Reconciled,
        TxnState::Mismatch,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            TxnState::Authorizing => "authorizing",
            TxnState::Pending => "pending",
            TxnState::Approved => "approved",
            TxnState::Declined => "declined",
            TxnState::Reversing => "reversing",
            TxnState::Reversed => "reversed",
            TxnState::ApprovedOffline => "approved_offline",
            TxnState::Settled => "settled",
            TxnState::SettlementRejected => "settlement_rejected",
            TxnState::Voided => "voided",
            TxnState::Refused => "refused",
            TxnState::Closing => "closing",
            TxnState::Closed => "closed",
            TxnState::Reconciled => "reconciled",
            TxnState::Mismatch => "mismatch",
        }
    }
    pub fn parse(s: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|t| t.as_str() == s)
    }
    /// States with a host conversation still open: resolved on start-up.
    pub fn in_flight(&self) -> bool {
        matches!(
            self,
            TxnState::Authorizing | TxnState::Pending | TxnState::Reversing | TxnState::Closing
        )
    }
}

/// One transaction as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: Uuid,
    pub kind: TxnKind,
    pub method: Method,
    pub channel: Option<String>,
    pub amount: i64,
    pub currency: Currency,
    pub state: TxnState,
    pub reason: Option<String>,
    pub code_masked: Option<String>,
    pub host_ref: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Method-specific data kept with the transaction and sent with its events.
    pub detail: Option<serde_json::Value>,
}

impl Transaction {
    /// A new transaction with a UUIDv7 id whose timestamp is `now`.
    pub fn new(
        kind: TxnKind,
        method: Method,
        amount: i64,
        currency: Currency,
        state: TxnState,
        now: Millis,
        random: [u8; 10],
    ) -> Transaction {
        Transaction {
            id: uuid_v7(now, random),
            kind,
            method,
            channel: None,
            amount,
            currency,
            state,
            reason: None,
            code_masked: None,
            host_ref: None,
            created_at: now,
            updated_at: now,
            detail: None,
        }
    }

    /// The event type on `events` for this transaction's current state.
    pub fn event_type(&self) -> &'static str {
        match self.state {
            TxnState::Reversing | TxnState::Reversed => "reversal",
            _ => self.kind.as_str(),
        }
    }
}

/// Builds a UUIDv7 from a time and caller-supplied randomness (keeps the core deterministic).
pub fn uuid_v7(now: Millis, random: [u8; 10]) -> Uuid {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        now / 1000,
        ((now % 1000) * 1_000_000) as u32,
    );
    let mut b = *Uuid::new_v7(ts).as_bytes();
    // Bytes 6..16 hold version, rand_a and rand_b; keep the version and variant bits.
    b[6] = 0x70 | (random[0] & 0x0f);
    b[7] = random[1];
    b[8] = 0x80 | (random[2] & 0x3f);
    b[9..16].copy_from_slice(&random[3..10]);
    Uuid::from_bytes(b)
}

/// The short reference people read (receipts, refusals, `posctl current`): the last 12 hex
/// digits of the UUIDv7, its random part.
pub fn short_ref(id: &Uuid) -> String {
    let id = id.simple().to_string();
    id[id.len().saturating_sub(12)..].to_string()
}

/// Masks a payment code for storage and display: first 4 and last 4 characters.
pub fn mask_code(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// Timing rules of the online flow; DESIGN §1.1 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnlinePolicy {
    pub query_interval_ms: u64,
    pub query_total_ms: u64,
    pub reverse_backoff: Backoff,
}

impl Default for OnlinePolicy {
    fn default() -> Self {
        OnlinePolicy {
            query_interval_ms: 5_000,
            query_total_ms: 45_000,
            reverse_backoff: Backoff {
                initial_ms: 2_000,
                max_ms: 300_000,
            },
        }
    }
}

/// How a sale ended, as told to the cashier and the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum SaleOutcome {
    Approved {
        host_ref: Option<String>,
    },
    Declined {
        reason: String,
    },
    /// Not approved; the reversal is durable and runs until the host confirms it.
    Cancelled {
        reason: String,
    },
    /// No final answer yet (a refund the host has not answered): it is retried until it is.
    Pending {
        reason: String,
    },
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Journal this snapshot with its outbox event, durably, before any later action.
    Persist(Transaction),
    /// Publish this request on `req`.
    Send(Request),
    /// The sale's fate is decided: tell whoever waits for it.
    Outcome(SaleOutcome),
    /// Show this merchant-presented code to the customer (display and/or printer).
    ShowQr(String),
    /// Journal the sale as paid together with the durable intent of its automatic refund, in
    /// one SQLite transaction; then run the refund (a payment that raced a close).
    PersistWithRefund {
        sale: Transaction,
        refund: Transaction,
    },
    /// The machine has nothing left to do and may be dropped.
    Finished,
}

/// Inputs to the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Resp(Response),
    Tick,
    Cancel {
        reason: String,
    },
    /// The host's asynchronous word (`notify`) that a merchant-presented order was paid.
    Paid {
        host_ref: Option<String>,
    },
    /// The shell could not hand the last `Send` to the MQTT client (not connected, or its
    /// queue full): that request certainly never left the box.
    NotSent {
        reason: String,
    },
}

/// Why an input was ignored (logged by the shell; nothing changes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("response for unknown request {0}")]
    UnknownRequest(String),
    #[error("response for another transaction")]
    OtherTransaction,
    #[error("late {op} response ({status:?}) after the transaction moved on")]
    Late {
        op: &'static str,
        status: RespStatus,
    },
    #[error("transaction already final")]
    AlreadyFinal,
    #[error("a {0} message does not apply to this transaction")]
    NotExpected(&'static str),
}

/// The requests a state machine issued whose answers it still accepts (the newest
/// [`Requests::KEEP`]). Every `req_id` begins with the issuing transaction's id, so the shell
/// can route any answer by `req_id` alone ([`txn_of_req`]) — a refund's answer names the
/// original sale in `txn_id`.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    outstanding: Vec<(String, Op)>,
    counter: u32,
}

impl Requests {
    pub const KEEP: usize = 32;

    /// A new request from transaction `own` about `txn_id` (usually `own` itself).
    pub fn issue(&mut self, own: &Uuid, op: Op, txn_id: String, now: Millis) -> Request {
        self.counter += 1;
        let req_id = format!("{}.{}.{}", own.simple(), now, self.counter);
        if self.outstanding.len() >= Self::KEEP {
            self.outstanding.remove(0);
        }
        self.outstanding.push((req_id.clone(), op));
        Request::new(req_id, op, txn_id)
    }

    /// The operation of an outstanding request, or why its answer is ignored.
    pub fn op_of(&self, req_id: &str) -> Result<Op, Ignored> {
        self.outstanding
            .iter()
            .find(|(id, _)| id == req_id)
            .map(|(_, op)| *op)
            .ok_or_else(|| Ignored::UnknownRequest(req_id.to_string()))
    }

    /// The operation of the one outstanding request, when exactly one is.
    pub fn op_of_only(&self) -> Option<Op> {
        match self.outstanding.as_slice() {
            [(_, op)] => Some(*op),
            _ => None,
        }
    }

    /// Requests issued so far (cleared ones included).
    pub fn issued(&self) -> u32 {
        self.counter
    }

    /// Answers to earlier requests are no longer accepted.
    pub fn clear(&mut self) {
        self.outstanding.clear();
    }
}

/// The transaction that issued a request, from its `req_id` (see [`Requests`]).
pub fn txn_of_req(req_id: &str) -> Option<Uuid> {
    Uuid::try_parse(req_id.split('.').next()?).ok()
}

/// What an `authorize` carries.
enum Credential<'a> {
    Code(&'a str),
    Card(serde_json::Value),
}

/// The online payment-code flow of one sale.
#[derive(Debug, Clone)]
pub struct OnlineSale {
    txn: Transaction,
    policy: OnlinePolicy,
    /// Requests whose responses we still accept: (req_id, op).
    requests: Requests,
    next_wake: Option<Millis>,
    reverse_attempts: u32,
    /// After a restart: one query must go out before a reversal is decided.
    query_before_reverse: bool,
    outcome_sent: bool,
}

impl OnlineSale {
    /// Starts a sale: the durable intent, then the `authorize` request carrying the code.
    pub fn start(
        mut txn: Transaction,
        code: &str,
        policy: OnlinePolicy,
        now: Millis,
    ) -> (OnlineSale, Vec<Action>) {
        txn.code_masked = Some(mask_code(code));
        Self::start_with(txn, Credential::Code(code), policy, now)
    }

    /// Starts a card sale: the `authorize` carries the sealed card (`{masked_pan, brand,
    /// sealed}`), never the clear track data; `txn.code_masked` holds the masked PAN.
    pub fn start_card(
        txn: Transaction,
        card: serde_json::Value,
        policy: OnlinePolicy,
        now: Millis,
    ) -> (OnlineSale, Vec<Action>) {
        Self::start_with(txn, Credential::Card(card), policy, now)
    }

    fn start_with(
        mut txn: Transaction,
        credential: Credential<'_>,
        policy: OnlinePolicy,
        now: Millis,
    ) -> (OnlineSale, Vec<Action>) {
        txn.state = TxnState::Authorizing;
        txn.updated_at = now;
        let mut m = OnlineSale {
            txn,
            policy,
            requests: Requests::default(),
            next_wake: Some(now + policy.query_interval_ms),
            reverse_attempts: 0,
            query_before_reverse: false,
            outcome_sent: false,
        };
        let mut req = m.request(Op::Authorize, now);
        req.method = Some(m.txn.method.as_str().to_string());
        req.channel = m.txn.channel.clone();
        match credential {
            Credential::Code(code) => req.code = Some(code.to_string()),
            Credential::Card(card) => req.card = Some(card),
        }
        req.amount = Some(m.txn.amount);
        req.currency = Some(m.txn.currency.code().to_string());
        let actions = vec![Action::Persist(m.txn.clone()), Action::Send(req)];
        (m, actions)
    }

    /// Resumes a transaction found in flight after a restart: query first, then the usual rules.
    pub fn recover(txn: Transaction, policy: OnlinePolicy, now: Millis) -> OnlineSale {
        let reversing = txn.state == TxnState::Reversing;
        OnlineSale {
            txn,
            policy,
            requests: Requests::default(),
            next_wake: Some(now),
            reverse_attempts: 0,
            query_before_reverse: !reversing,
            outcome_sent: reversing,
        }
    }

    pub fn txn(&self) -> &Transaction {
        &self.txn
    }

    /// When the shell should next call `handle(Input::Tick, ..)`.
    pub fn next_wake(&self) -> Option<Millis> {
        self.next_wake
    }

    fn deadline(&self) -> Millis {
        self.txn.created_at + self.policy.query_total_ms
    }

    fn request(&mut self, op: Op, now: Millis) -> Request {
        self.requests
            .issue(&self.txn.id, op, self.txn.id.to_string(), now)
    }

    fn set_state(&mut self, state: TxnState, now: Millis, out: &mut Vec<Action>) {
        self.txn.state = state;
        self.txn.updated_at = now;
        out.push(Action::Persist(self.txn.clone()));
    }

    fn finish(&mut self, outcome: Option<SaleOutcome>, out: &mut Vec<Action>) {
        if let Some(o) = outcome {
            if !self.outcome_sent {
                self.outcome_sent = true;
                out.push(Action::Outcome(o));
            }
        }
        self.next_wake = None;
        self.requests.clear();
        out.push(Action::Finished);
    }

    fn begin_reversal(&mut self, reason: String, now: Millis, out: &mut Vec<Action>) {
        self.txn.reason = Some(reason.clone());
        self.set_state(TxnState::Reversing, now, out);
        self.requests.clear();
        if !self.outcome_sent {
            self.outcome_sent = true;
            out.push(Action::Outcome(SaleOutcome::Cancelled { reason }));
        }
        self.send_reverse(now, out);
    }

    fn send_reverse(&mut self, now: Millis, out: &mut Vec<Action>) {
        let req = self.request(Op::Reverse, now);
        out.push(Action::Send(req));
        let delay = self.policy.reverse_backoff.delay_ms(self.reverse_attempts);
        self.reverse_attempts = self.reverse_attempts.saturating_add(1);
        self.next_wake = Some(now + delay);
    }

    /// Feeds one input; returns the actions to carry out in order, or why it was ignored.
    pub fn handle(&mut self, input: Input, now: Millis) -> Result<Vec<Action>, Ignored> {
        let mut out = Vec::new();
        let state = self.txn.state;
        if !state.in_flight() {
            return Err(Ignored::AlreadyFinal);
        }
        match input {
            Input::Paid { .. } => return Err(Ignored::NotExpected("paid")),
            Input::NotSent { reason } => {
                // Only the first `authorize` certainly never reached the host: nothing can
                // have been charged, so the sale ends `refused` with no reversal or query.
                // Once a query was due, the authorize itself may have left: the usual rules.
                let only_authorize = state == TxnState::Authorizing
                    && !self.query_before_reverse
                    && self.requests.issued() == 1
                    && self.requests.op_of_only() == Some(Op::Authorize);
                if !only_authorize {
                    return Ok(out);
                }
                self.txn.reason = Some(reason.clone());
                self.set_state(TxnState::Refused, now, &mut out);
                self.finish(Some(SaleOutcome::Declined { reason }), &mut out);
            }
            Input::Cancel { reason } => {
                if state == TxnState::Reversing {
                    return Ok(out);
                }
                self.begin_reversal(reason, now, &mut out);
            }
            Input::Tick => {
                let due = self.next_wake.is_some_and(|w| now >= w);
                if !due {
                    return Ok(out);
                }
                match state {
                    TxnState::Reversing => self.send_reverse(now, &mut out),
                    _ if now >= self.deadline() && !self.query_before_reverse => {
                        self.begin_reversal(
                            "no final answer from the host in time".to_string(),
                            now,
                            &mut out,
                        );
                    }
                    _ => {
                        self.query_before_reverse = false;
                        let req = self.request(Op::Query, now);
                        out.push(Action::Send(req));
                        let next = now + self.policy.query_interval_ms;
                        // Never sleep past the deadline: the reversal is due then.
                        let deadline = self.deadline();
                        self.next_wake = Some(if now < deadline {
                            next.min(deadline)
                        } else {
                            next
                        });
                    }
                }
            }
            Input::Resp(resp) => {
                if resp.txn_id != self.txn.id.to_string() {
                    return Err(Ignored::OtherTransaction);
                }
                let op = self.requests.op_of(&resp.req_id)?;
                match (state, op) {
                    (TxnState::Reversing, Op::Reverse) => {
                        if resp.status == RespStatus::Approved {
                            self.set_state(TxnState::Reversed, now, &mut out);
                            self.finish(None, &mut out);
                        }
                        // Anything else: keep retrying on the backoff schedule.
                    }
                    (TxnState::Reversing, _) => {
                        return Err(Ignored::Late {
                            op: op.as_str(),
                            status: resp.status,
                        })
                    }
                    (_, Op::Authorize | Op::Query) => match resp.status {
                        RespStatus::Approved => {
                            self.txn.host_ref = resp.host_ref.clone();
                            self.txn.reason = None;
                            self.set_state(TxnState::Approved, now, &mut out);
                            self.finish(
                                Some(SaleOutcome::Approved {
                                    host_ref: resp.host_ref,
                                }),
                                &mut out,
                            );
                        }
                        RespStatus::Declined => {
                            let reason = resp
                                .reason
                                .unwrap_or_else(|| "declined by the host".to_string());
                            self.txn.reason = Some(reason.clone());
                            self.set_state(TxnState::Declined, now, &mut out);
                            self.finish(Some(SaleOutcome::Declined { reason }), &mut out);
                        }
                        RespStatus::Pending => {
                            if state == TxnState::Authorizing {
                                self.set_state(TxnState::Pending, now, &mut out);
                            }
                            if op == Op::Authorize {
                                self.next_wake = Some(
                                    (now + self.policy.query_interval_ms).min(self.deadline()),
                                );
                            }
                        }
                        RespStatus::Unknown | RespStatus::Error => {
                            // No verdict: the query schedule and the deadline decide.
                        }
                    },
                    (_, op) => {
                        return Err(Ignored::Late {
                            op: op.as_str(),
                            status: resp.status,
                        })
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(now: Millis) -> (OnlineSale, Vec<Action>) {
        let cny = Currency::from_code("CNY").unwrap();
        let mut t = Transaction::new(
            TxnKind::Sale,
            Method::PaymentCode,
            1250,
            cny,
            TxnState::Authorizing,
            now,
            [7; 10],
        );
        t.channel = Some("wechat".into());
        OnlineSale::start(t, "134567890123456789", OnlinePolicy::default(), now)
    }

    fn sent(actions: &[Action]) -> Vec<Request> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn resp(m: &OnlineSale, req: &Request, status: RespStatus) -> Input {
        Input::Resp(Response {
            req_id: req.req_id.clone(),
            txn_id: m.txn().id.to_string(),
            status,
            reason: None,
            host_ref: Some("H1".into()),
            qr: None,
        })
    }

    #[test]
    fn persist_comes_before_send() {
        let (_m, a) = sale(1_000);
        assert!(matches!(&a[0], Action::Persist(t) if t.state == TxnState::Authorizing));
        let reqs = sent(&a);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].op, Op::Authorize);
        assert_eq!(reqs[0].code.as_deref(), Some("134567890123456789"));
        assert!(matches!(&a[1], Action::Send(_)));
        if let Action::Persist(t) = &a[0] {
            assert_eq!(t.code_masked.as_deref(), Some("1345**********6789"));
        }
    }

    #[test]
    fn approved_at_once() {
        let (mut m, a) = sale(1_000);
        let auth = &sent(&a)[0];
        let out = m
            .handle(resp(&m, auth, RespStatus::Approved), 1_200)
            .unwrap();
        assert!(
            matches!(&out[0], Action::Persist(t) if t.state == TxnState::Approved && t.host_ref.as_deref() == Some("H1"))
        );
        assert!(out.contains(&Action::Outcome(SaleOutcome::Approved {
            host_ref: Some("H1".into())
        })));
        assert_eq!(out.last(), Some(&Action::Finished));
        assert_eq!(m.handle(Input::Tick, 99_999), Err(Ignored::AlreadyFinal));
    }

    #[test]
    fn an_authorize_that_never_left_ends_refused_without_reversal() {
        let (mut m, _a) = sale(1_000);
        let out = m
            .handle(
                Input::NotSent {
                    reason: "not connected to the broker".into(),
                },
                1_001,
            )
            .unwrap();
        assert!(
            matches!(&out[0], Action::Persist(t) if t.state == TxnState::Refused
                && t.reason.as_deref() == Some("not connected to the broker"))
        );
        assert!(sent(&out).is_empty(), "no query, no reversal: {out:?}");
        assert_eq!(out.last(), Some(&Action::Finished));
        assert_eq!(m.handle(Input::Tick, 99_999), Err(Ignored::AlreadyFinal));
    }

    #[test]
    fn a_query_not_sent_leaves_the_usual_rules() {
        // The authorize went out; a later query could not: it may have been charged.
        let (mut m, _a) = sale(0);
        let q = m.handle(Input::Tick, 5_000).unwrap();
        assert_eq!(sent(&q)[0].op, Op::Query);
        let out = m
            .handle(Input::NotSent { reason: "x".into() }, 5_001)
            .unwrap();
        assert!(out.is_empty());
        assert_eq!(m.txn().state, TxnState::Authorizing);
        // After a restart nothing certain is known of the authorize either.
        let r = OnlineSale::recover(m.txn().clone(), OnlinePolicy::default(), 6_000);
        let mut r = r;
        assert!(r
            .handle(Input::NotSent { reason: "x".into() }, 6_001)
            .unwrap()
            .is_empty());
        // The reversal is still decided at the deadline.
        let out = m.handle(Input::Tick, 45_000).unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Reversing));
    }

    #[test]
    fn declined() {
        let (mut m, a) = sale(0);
        let auth = &sent(&a)[0];
        let out = m.handle(resp(&m, auth, RespStatus::Declined), 10).unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Declined));
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Outcome(SaleOutcome::Declined { .. }))));
    }

    #[test]
    fn pending_then_query_approves() {
        let (mut m, a) = sale(0);
        let auth = &sent(&a)[0];
        let out = m.handle(resp(&m, auth, RespStatus::Pending), 100).unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Pending));
        assert_eq!(m.next_wake(), Some(5_100));
        assert!(m.handle(Input::Tick, 5_000).unwrap().is_empty());
        let out = m.handle(Input::Tick, 5_100).unwrap();
        let q = sent(&out);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].op, Op::Query);
        let out = m
            .handle(resp(&m, &q[0], RespStatus::Approved), 5_300)
            .unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Approved));
    }

    #[test]
    fn silence_queries_every_interval_then_reverses_at_deadline() {
        let (mut m, _a) = sale(0);
        let mut queries = 0;
        let mut now = 0;
        let mut reversed_at = None;
        while now <= 60_000 {
            let out = m.handle(Input::Tick, now).unwrap();
            for r in sent(&out) {
                match r.op {
                    Op::Query => queries += 1,
                    Op::Reverse => {
                        reversed_at.get_or_insert(now);
                    }
                    _ => panic!("unexpected {r:?}"),
                }
            }
            if reversed_at.is_some() {
                break;
            }
            now += 100;
        }
        // Queries at 5, 10, ..., 40 s; the reversal at 45 s exactly.
        assert_eq!(queries, 8);
        assert_eq!(reversed_at, Some(45_000));
        assert_eq!(m.txn().state, TxnState::Reversing);
    }

    #[test]
    fn reversal_retries_with_backoff_until_confirmed() {
        let (mut m, _) = sale(0);
        let out = m
            .handle(
                Input::Cancel {
                    reason: "cashier".into(),
                },
                1_000,
            )
            .unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Reversing));
        assert!(out.contains(&Action::Outcome(SaleOutcome::Cancelled {
            reason: "cashier".into()
        })));
        let first = sent(&out);
        assert_eq!(first[0].op, Op::Reverse);
        // The host errors: nothing changes; the retry comes at the backoff time.
        let out = m
            .handle(resp(&m, &first[0], RespStatus::Error), 1_100)
            .unwrap();
        assert!(out.is_empty());
        let w1 = m.next_wake().unwrap();
        assert_eq!(w1, 3_000);
        let out = m.handle(Input::Tick, w1).unwrap();
        let second = sent(&out);
        assert_eq!(second[0].op, Op::Reverse);
        let w2 = m.next_wake().unwrap();
        assert!(w2 - w1 > 2_000, "backoff grows: {w1} -> {w2}");
        let out = m
            .handle(resp(&m, &second[0], RespStatus::Approved), w1 + 10)
            .unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Reversed));
        assert_eq!(out.last(), Some(&Action::Finished));
        // The outcome was told once, at the cancel.
        assert!(!out.iter().any(|a| matches!(a, Action::Outcome(_))));
    }

    #[test]
    fn late_approval_after_reversal_started_is_ignored() {
        let (mut m, a) = sale(0);
        let auth = sent(&a)[0].clone();
        m.handle(Input::Cancel { reason: "c".into() }, 10).unwrap();
        // The authorize id is no longer outstanding once the reversal started.
        assert!(matches!(
            m.handle(resp(&m, &auth, RespStatus::Approved), 20),
            Err(Ignored::UnknownRequest(_))
        ));
        assert_eq!(m.txn().state, TxnState::Reversing);
    }

    #[test]
    fn unknown_request_and_other_txn_ignored() {
        let (mut m, a) = sale(0);
        let mut r = sent(&a)[0].clone();
        r.req_id = "nope".into();
        assert!(matches!(
            m.handle(resp(&m, &r, RespStatus::Approved), 1),
            Err(Ignored::UnknownRequest(_))
        ));
        let good = sent(&a)[0].clone();
        let Input::Resp(mut other) = resp(&m, &good, RespStatus::Approved) else {
            unreachable!()
        };
        other.txn_id = "x".into();
        assert_eq!(
            m.handle(Input::Resp(other), 1),
            Err(Ignored::OtherTransaction)
        );
        assert_eq!(m.txn().state, TxnState::Authorizing);
    }

    #[test]
    fn recovery_queries_before_reversing_even_past_deadline() {
        let (m, _) = sale(0);
        let txn = m.txn().clone();
        let mut r = OnlineSale::recover(txn, OnlinePolicy::default(), 600_000);
        let out = r.handle(Input::Tick, 600_000).unwrap();
        let q = sent(&out);
        assert_eq!(q[0].op, Op::Query);
        // The query finds the payment: a sale, not a reversal.
        let out = r
            .handle(resp(&r, &q[0], RespStatus::Approved), 600_100)
            .unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Approved));

        let (m, _) = sale(0);
        let mut r = OnlineSale::recover(m.txn().clone(), OnlinePolicy::default(), 600_000);
        let q = sent(&r.handle(Input::Tick, 600_000).unwrap());
        r.handle(resp(&r, &q[0], RespStatus::Unknown), 600_100)
            .unwrap();
        let out = r.handle(Input::Tick, 605_000).unwrap();
        assert_eq!(sent(&out)[0].op, Op::Reverse);
    }

    #[test]
    fn recovery_of_reversal_resends_at_once() {
        let (mut m, _) = sale(0);
        m.handle(Input::Cancel { reason: "c".into() }, 1).unwrap();
        let mut r = OnlineSale::recover(m.txn().clone(), OnlinePolicy::default(), 10_000);
        let out = r.handle(Input::Tick, 10_000).unwrap();
        assert_eq!(sent(&out)[0].op, Op::Reverse);
        assert!(!out.iter().any(|a| matches!(a, Action::Outcome(_))));
    }

    #[test]
    fn uuid_v7_is_time_ordered() {
        let a = uuid_v7(1_700_000_000_000, [0xff; 10]);
        let b = uuid_v7(1_700_000_000_001, [0; 10]);
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }

    #[test]
    fn every_state_round_trips_through_its_name() {
        for st in TxnState::ALL {
            assert_eq!(TxnState::parse(st.as_str()), Some(st));
        }
        assert_eq!(TxnState::parse("nope"), None);
    }

    #[test]
    fn answers_route_by_req_id() {
        let id = uuid_v7(5, [1; 10]);
        let mut r = Requests::default();
        let q = r.issue(&id, Op::Refund, "the-original".into(), 9);
        assert_eq!(q.txn_id, "the-original");
        assert_eq!(txn_of_req(&q.req_id), Some(id));
        assert_eq!(r.op_of(&q.req_id), Ok(Op::Refund));
        assert_eq!(txn_of_req("garbage"), None);
        for n in 0..Requests::KEEP {
            r.issue(&id, Op::Query, String::new(), n as u64);
        }
        assert!(r.op_of(&q.req_id).is_err(), "only the newest are kept");
    }

    #[test]
    fn masks() {
        assert_eq!(mask_code("12345678"), "********");
        assert_eq!(mask_code("1234567890"), "1234**7890");
    }
}
