//! The merchant-presented QR flow (DESIGN §1.3, docs/payments.md), with no I/O.
//!
//! Why it exists: with a merchant-presented code the terminal does not charge anybody; it
//! shows a code and waits for the platform to say it was paid. The danger is the race at the
//! end: the cashier gives up and the customer pays at the same instant. This machine makes that
//! race end right: the order is closed with a durable, retried `close`, and a payment that the
//! close reports is either the sale (the cashier is still waiting) or, if the cashier was
//! already told "not paid", a paid sale journaled together with its automatic refund. Like
//! [`crate::txn::OnlineSale`] it takes inputs with `now` and returns ordered actions;
//! `Persist` is durable before the `Send` that follows it.

use crate::backoff::Backoff;
use crate::protocol::{Op, Request, RespStatus};
use crate::txn::{
    uuid_v7, Action, Ignored, Input, Method, Millis, Requests, SaleOutcome, Transaction, TxnKind,
    TxnState,
};
use serde_json::json;

/// Timing rules of merchant-presented orders (`[merchant_qr]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderPolicy {
    /// Poll the host with `query` this often (backup for a lost `notify`).
    pub query_interval_ms: u64,
    /// How long the code is offered before the order is closed.
    pub timeout_ms: u64,
    /// How long the cashier waits for the answer to `close` before being told "not paid".
    pub close_wait_ms: u64,
    /// Retries of `close` until the host answers.
    pub close_backoff: Backoff,
}

impl Default for OrderPolicy {
    fn default() -> Self {
        OrderPolicy {
            query_interval_ms: 3_000,
            timeout_ms: 120_000,
            close_wait_ms: 10_000,
            close_backoff: Backoff {
                initial_ms: 2_000,
                max_ms: 300_000,
            },
        }
    }
}

/// The reference label (EMV tag `62`/`05`) of a transaction: the first 25 hex digits of its id.
/// Both ends derive it from `txn_id` alone (docs/payments.md).
pub fn reference_of(txn_id: &uuid::Uuid) -> String {
    txn_id.simple().to_string().chars().take(25).collect()
}

/// The `refund_id` of the automatic refund of an order paid after the cashier gave up.
pub fn auto_refund_id(txn_id: &uuid::Uuid) -> String {
    format!("auto-{txn_id}")
}

/// One merchant-presented order.
#[derive(Debug, Clone)]
pub struct MerchantOrder {
    txn: Transaction,
    policy: OrderPolicy,
    requests: Requests,
    next_wake: Option<Millis>,
    close_attempts: u32,
    /// When the close began (the cashier is told "not paid" `close_wait_ms` later at most).
    closing_since: Option<Millis>,
    /// After a restart: one query before deciding to close.
    query_first: bool,
    outcome_sent: bool,
}

impl MerchantOrder {
    /// Starts an order. `payload` is the locally generated EMVCo code (`local` mode, shown at
    /// once) or `None` (`platform` mode: the host's `qr` is shown when it arrives).
    pub fn start(
        mut txn: Transaction,
        payload: Option<String>,
        policy: OrderPolicy,
        now: Millis,
    ) -> (MerchantOrder, Vec<Action>) {
        txn.state = if payload.is_some() {
            TxnState::Pending
        } else {
            TxnState::Authorizing
        };
        txn.updated_at = now;
        let mut detail = json!({ "reference": reference_of(&txn.id) });
        if let Some(p) = &payload {
            detail["qr"] = json!(p);
            detail["mode"] = json!("local");
        } else {
            detail["mode"] = json!("platform");
        }
        txn.detail = Some(detail);
        let mut m = MerchantOrder {
            txn,
            policy,
            requests: Requests::default(),
            next_wake: Some(now + policy.query_interval_ms),
            close_attempts: 0,
            closing_since: None,
            query_first: false,
            outcome_sent: false,
        };
        let mut req = m.request(Op::Order, now);
        req.method = Some(Method::MerchantQr.as_str().into());
        req.amount = Some(m.txn.amount);
        req.currency = Some(m.txn.currency.code().to_string());
        req.code = payload.clone();
        let mut out = vec![Action::Persist(m.txn.clone()), Action::Send(req)];
        if let Some(p) = payload {
            out.push(Action::ShowQr(p));
        }
        (m, out)
    }

    /// Resumes an order found in flight after a restart: nobody waits for it any more, so a
    /// payment reported by a close is refunded; an open order is queried first, then closed.
    pub fn recover(txn: Transaction, policy: OrderPolicy, now: Millis) -> MerchantOrder {
        let closing = txn.state == TxnState::Closing;
        MerchantOrder {
            txn,
            policy,
            requests: Requests::default(),
            next_wake: Some(now),
            close_attempts: 0,
            closing_since: closing.then_some(now),
            query_first: !closing,
            outcome_sent: true,
        }
    }

    pub fn txn(&self) -> &Transaction {
        &self.txn
    }

    pub fn next_wake(&self) -> Option<Millis> {
        self.next_wake
    }

    /// The code being shown, once known.
    pub fn qr(&self) -> Option<&str> {
        self.txn.detail.as_ref()?.get("qr")?.as_str()
    }

    fn deadline(&self) -> Millis {
        self.txn.created_at + self.policy.timeout_ms
    }

    fn request(&mut self, op: Op, now: Millis) -> Request {
        self.requests
            .issue(&self.txn.id, op, self.txn.id.to_string(), now)
    }

    fn persist(&mut self, state: TxnState, now: Millis, out: &mut Vec<Action>) {
        self.txn.state = state;
        self.txn.updated_at = now;
        out.push(Action::Persist(self.txn.clone()));
    }

    fn tell(&mut self, outcome: SaleOutcome, out: &mut Vec<Action>) {
        if !self.outcome_sent {
            self.outcome_sent = true;
            out.push(Action::Outcome(outcome));
        }
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        self.next_wake = None;
        self.requests.clear();
        out.push(Action::Finished);
    }

    /// The platform reports the order paid (notify, query or close).
    fn paid(&mut self, host_ref: Option<String>, now: Millis, out: &mut Vec<Action>) {
        self.txn.host_ref = host_ref.clone();
        if self.outcome_sent && self.closing_since.is_some() {
            // The cashier was told "not paid": keep nothing silently — refund it, durably,
            // in the same SQLite transaction that records the payment.
            self.txn.reason =
                Some("paid while the order was closing: refunded automatically".into());
            self.txn.state = TxnState::Approved;
            self.txn.updated_at = now;
            let refund = auto_refund(&self.txn, now);
            out.push(Action::PersistWithRefund {
                sale: self.txn.clone(),
                refund,
            });
        } else {
            self.txn.reason = None;
            self.persist(TxnState::Approved, now, out);
            self.tell(SaleOutcome::Approved { host_ref }, out);
        }
        self.finish(out);
    }

    fn begin_close(&mut self, reason: String, now: Millis, out: &mut Vec<Action>) {
        self.txn.reason = Some(reason);
        self.closing_since = Some(now);
        self.requests.clear();
        self.persist(TxnState::Closing, now, out);
        self.send_close(now, out);
    }

    fn send_close(&mut self, now: Millis, out: &mut Vec<Action>) {
        let req = self.request(Op::Close, now);
        out.push(Action::Send(req));
        let delay = self.policy.close_backoff.delay_ms(self.close_attempts);
        self.close_attempts = self.close_attempts.saturating_add(1);
        let mut wake = now + delay;
        if !self.outcome_sent {
            if let Some(since) = self.closing_since {
                wake = wake.min(since + self.policy.close_wait_ms);
            }
        }
        self.next_wake = Some(wake);
    }

    /// Feeds one input; returns the actions to carry out in order, or why it was ignored.
    pub fn handle(&mut self, input: Input, now: Millis) -> Result<Vec<Action>, Ignored> {
        let mut out = Vec::new();
        let state = self.txn.state;
        if !state.in_flight() {
            return Err(Ignored::AlreadyFinal);
        }
        match input {
            Input::Paid { host_ref } => self.paid(host_ref, now, &mut out),
            Input::NotSent { reason } => {
                // Platform mode, the `order` itself not taken by the link: nothing was shown
                // and nothing reached the platform, so the sale ends `refused`. In local mode
                // the code may be on show already: the query/close rules decide.
                let first_order = state == TxnState::Authorizing
                    && !self.query_first
                    && self.requests.issued() == 1
                    && self.requests.op_of_only() == Some(Op::Order);
                if first_order {
                    self.txn.reason = Some(reason.clone());
                    self.persist(TxnState::Refused, now, &mut out);
                    self.tell(SaleOutcome::Declined { reason }, &mut out);
                    self.finish(&mut out);
                }
            }
            Input::Cancel { reason } => {
                if state != TxnState::Closing {
                    self.begin_close(reason, now, &mut out);
                }
            }
            Input::Tick => {
                if self.next_wake.is_none_or(|w| now < w) {
                    return Ok(out);
                }
                if state == TxnState::Closing {
                    let waited_out = self
                        .closing_since
                        .is_some_and(|s| now >= s + self.policy.close_wait_ms);
                    if waited_out && !self.outcome_sent {
                        let reason = self.txn.reason.clone().unwrap_or_else(|| "not paid".into());
                        self.tell(
                            SaleOutcome::Cancelled {
                                reason: format!(
                                    "{reason}; the close is not confirmed yet: a late payment \
                                     will be refunded automatically"
                                ),
                            },
                            &mut out,
                        );
                    }
                    self.send_close(now, &mut out);
                } else if self.query_first {
                    self.query_first = false;
                    let req = self.request(Op::Query, now);
                    out.push(Action::Send(req));
                    self.next_wake = Some(now + self.policy.query_interval_ms);
                } else if now >= self.deadline() || self.outcome_sent {
                    // Timed out, or recovered after a restart (nobody shows the code any more).
                    self.begin_close("not paid in time".into(), now, &mut out);
                } else {
                    let req = self.request(Op::Query, now);
                    out.push(Action::Send(req));
                    self.next_wake =
                        Some((now + self.policy.query_interval_ms).min(self.deadline()));
                }
            }
            Input::Resp(resp) => {
                if resp.txn_id != self.txn.id.to_string() {
                    return Err(Ignored::OtherTransaction);
                }
                let op = self.requests.op_of(&resp.req_id)?;
                match (op, resp.status) {
                    // Paid, whatever we asked: a payment is never dropped.
                    (Op::Query | Op::Close | Op::Order, RespStatus::Approved) => {
                        self.paid(resp.host_ref, now, &mut out)
                    }
                    (Op::Order, RespStatus::Pending) if self.qr().is_none() => {
                        let Some(qr) = resp.qr.filter(|q| !q.is_empty()) else {
                            return Ok(out);
                        };
                        if let Some(d) = self.txn.detail.as_mut() {
                            d["qr"] = json!(qr);
                        }
                        if state == TxnState::Authorizing {
                            self.persist(TxnState::Pending, now, &mut out);
                        }
                        out.push(Action::ShowQr(qr));
                    }
                    (Op::Order, RespStatus::Declined | RespStatus::Error)
                        if self.qr().is_none() && state == TxnState::Authorizing =>
                    {
                        // Platform mode and no code was ever shown: nobody can have paid.
                        let reason = resp
                            .reason
                            .unwrap_or_else(|| "the platform refused the order".into());
                        self.txn.reason = Some(reason.clone());
                        self.persist(TxnState::Declined, now, &mut out);
                        self.tell(SaleOutcome::Declined { reason }, &mut out);
                        self.finish(&mut out);
                    }
                    (Op::Close, RespStatus::Declined) => {
                        // Closed unpaid: the code can no longer be paid.
                        let reason = self
                            .txn
                            .reason
                            .clone()
                            .unwrap_or_else(|| "closed unpaid".into());
                        self.persist(TxnState::Closed, now, &mut out);
                        self.tell(SaleOutcome::Cancelled { reason }, &mut out);
                        self.finish(&mut out);
                    }
                    (Op::Query, _) if state == TxnState::Closing => {}
                    (Op::Query, _) => {
                        // Not paid (yet). After a restart: the next tick closes it.
                    }
                    _ => {
                        // Pending/unknown/error to a close: the backoff schedule retries.
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The automatic full refund of a paid order (docs/payments.md step 6). Its id is derived from
/// the order's, so the same refund is never created twice.
pub fn auto_refund(sale: &Transaction, now: Millis) -> Transaction {
    let mut random = [0u8; 10];
    random.copy_from_slice(&sale.id.as_bytes()[6..16]);
    random[0] ^= 0x0a;
    let mut r = Transaction::new(
        TxnKind::Refund,
        sale.method,
        sale.amount,
        sale.currency,
        TxnState::Authorizing,
        now,
        random,
    );
    r.id = uuid_v7(now, random);
    r.channel = sale.channel.clone();
    r.code_masked = sale.code_masked.clone();
    r.reason = Some("automatic refund of a payment that raced the close".into());
    r.detail = Some(json!({
        "original": sale.id.to_string(),
        "refund_id": auto_refund_id(&sale.id),
        "automatic": true,
    }));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::protocol::Response;

    fn order(now: Millis, local: bool) -> (MerchantOrder, Vec<Action>) {
        let t = Transaction::new(
            TxnKind::Sale,
            Method::MerchantQr,
            1234,
            Currency::from_code("CNY").unwrap(),
            TxnState::Authorizing,
            now,
            [3; 10],
        );
        let payload = local.then(|| "000201010212...6304ABCD".to_string());
        MerchantOrder::start(t, payload, OrderPolicy::default(), now)
    }

    fn sent(a: &[Action]) -> Vec<Request> {
        a.iter()
            .filter_map(|x| match x {
                Action::Send(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn resp(m: &MerchantOrder, r: &Request, status: RespStatus, qr: Option<&str>) -> Input {
        Input::Resp(Response {
            req_id: r.req_id.clone(),
            txn_id: m.txn().id.to_string(),
            status,
            reason: None,
            host_ref: Some("H9".into()),
            qr: qr.map(str::to_string),
        })
    }

    fn states(a: &[Action]) -> Vec<TxnState> {
        a.iter()
            .filter_map(|x| match x {
                Action::Persist(t) => Some(t.state),
                Action::PersistWithRefund { sale, .. } => Some(sale.state),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn local_mode_persists_then_orders_then_shows() {
        let (m, a) = order(1_000, true);
        assert!(matches!(&a[0], Action::Persist(t) if t.state == TxnState::Pending));
        assert!(matches!(&a[1], Action::Send(r) if r.op == Op::Order && r.code.is_some()));
        assert!(matches!(&a[2], Action::ShowQr(_)));
        assert_eq!(m.qr(), Some("000201010212...6304ABCD"));
        let d = m.txn().detail.clone().unwrap();
        assert_eq!(d["reference"].as_str().unwrap().len(), 25);
    }

    #[test]
    fn an_order_never_sent_ends_refused_in_platform_mode_only() {
        let (mut m, _a) = order(1_000, false);
        let out = m
            .handle(
                Input::NotSent {
                    reason: "not sent: not connected to the broker".into(),
                },
                1_001,
            )
            .unwrap();
        assert_eq!(states(&out), [TxnState::Refused]);
        assert!(sent(&out).is_empty());
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Outcome(SaleOutcome::Declined { .. }))));
        assert_eq!(out.last(), Some(&Action::Finished));
        // Local mode: the code may be on show; query and close decide.
        let (mut l, _a) = order(1_000, true);
        assert!(l
            .handle(Input::NotSent { reason: "x".into() }, 1_001)
            .unwrap()
            .is_empty());
        assert_eq!(l.txn().state, TxnState::Pending);
    }

    #[test]
    fn platform_mode_shows_the_hosts_code() {
        let (mut m, a) = order(0, false);
        assert!(matches!(&a[0], Action::Persist(t) if t.state == TxnState::Authorizing));
        assert!(!a.iter().any(|x| matches!(x, Action::ShowQr(_))));
        let o = sent(&a)[0].clone();
        let out = m
            .handle(resp(&m, &o, RespStatus::Pending, Some("https://x/o/1")), 10)
            .unwrap();
        assert_eq!(states(&out), vec![TxnState::Pending]);
        assert!(out.contains(&Action::ShowQr("https://x/o/1".into())));
        assert_eq!(m.qr(), Some("https://x/o/1"));
    }

    #[test]
    fn platform_refusal_declines_without_a_code() {
        let (mut m, a) = order(0, false);
        let o = sent(&a)[0].clone();
        let out = m.handle(resp(&m, &o, RespStatus::Error, None), 10).unwrap();
        assert_eq!(states(&out), vec![TxnState::Declined]);
        assert_eq!(out.last(), Some(&Action::Finished));
    }

    #[test]
    fn notify_pays_before_timeout() {
        let (mut m, _) = order(0, true);
        let out = m
            .handle(
                Input::Paid {
                    host_ref: Some("P1".into()),
                },
                2_000,
            )
            .unwrap();
        assert_eq!(states(&out), vec![TxnState::Approved]);
        assert!(out.contains(&Action::Outcome(SaleOutcome::Approved {
            host_ref: Some("P1".into())
        })));
        assert_eq!(m.handle(Input::Tick, 3_000), Err(Ignored::AlreadyFinal));
    }

    #[test]
    fn query_finds_the_payment_when_notify_is_lost() {
        let (mut m, _) = order(0, true);
        let out = m.handle(Input::Tick, 3_000).unwrap();
        let q = sent(&out);
        assert_eq!(q[0].op, Op::Query);
        let out = m
            .handle(resp(&m, &q[0], RespStatus::Approved, None), 3_100)
            .unwrap();
        assert_eq!(states(&out), vec![TxnState::Approved]);
    }

    #[test]
    fn timeout_closes_and_closed_means_not_paid() {
        let (mut m, _) = order(0, true);
        let mut now = 0;
        let mut close = None;
        while now <= 130_000 && close.is_none() {
            for r in sent(&m.handle(Input::Tick, now).unwrap()) {
                if r.op == Op::Close {
                    close = Some((now, r));
                }
            }
            now += 500;
        }
        let (at, c) = close.unwrap();
        assert_eq!(at, 120_000);
        assert_eq!(m.txn().state, TxnState::Closing);
        let out = m
            .handle(resp(&m, &c, RespStatus::Declined, None), at + 50)
            .unwrap();
        assert_eq!(states(&out), vec![TxnState::Closed]);
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Outcome(SaleOutcome::Cancelled { .. }))));
    }

    #[test]
    fn payment_racing_the_close_is_the_sale_while_the_cashier_waits() {
        let (mut m, _) = order(0, true);
        let out = m
            .handle(
                Input::Cancel {
                    reason: "cancelled by the cashier".into(),
                },
                5_000,
            )
            .unwrap();
        assert_eq!(states(&out), vec![TxnState::Closing]);
        // No outcome yet: the cashier waits for the close's answer.
        assert!(!out.iter().any(|a| matches!(a, Action::Outcome(_))));
        let c = sent(&out)[0].clone();
        assert_eq!(c.op, Op::Close);
        let out = m
            .handle(resp(&m, &c, RespStatus::Approved, None), 5_100)
            .unwrap();
        assert_eq!(states(&out), vec![TxnState::Approved]);
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Outcome(SaleOutcome::Approved { .. }))));
        assert!(!out
            .iter()
            .any(|a| matches!(a, Action::PersistWithRefund { .. })));
    }

    #[test]
    fn payment_after_the_cashier_was_told_not_paid_is_refunded() {
        let (mut m, _) = order(0, true);
        let out = m
            .handle(Input::Cancel { reason: "c".into() }, 1_000)
            .unwrap();
        let c1 = sent(&out)[0].clone();
        // The host is silent; after close_wait the cashier hears "not paid".
        let out = m.handle(Input::Tick, 11_000).unwrap();
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Outcome(SaleOutcome::Cancelled { .. }))));
        let c2 = sent(&out)[0].clone();
        assert_eq!(c2.op, Op::Close);
        let out = m
            .handle(resp(&m, &c1, RespStatus::Approved, None), 12_000)
            .unwrap();
        let Some(Action::PersistWithRefund { sale, refund }) = out.first() else {
            panic!("{out:?}")
        };
        assert_eq!(sale.state, TxnState::Approved);
        assert_eq!(refund.kind, TxnKind::Refund);
        assert_eq!(refund.amount, sale.amount);
        assert_eq!(
            refund.detail.as_ref().unwrap()["refund_id"],
            json!(auto_refund_id(&sale.id))
        );
        assert_eq!(
            auto_refund(sale, 5).id.as_bytes()[6..],
            refund.id.as_bytes()[6..]
        );
        assert_eq!(out.last(), Some(&Action::Finished));
    }

    #[test]
    fn recovery_queries_then_closes_and_refunds_a_late_payment() {
        let (m, _) = order(0, true);
        let mut r = MerchantOrder::recover(m.txn().clone(), OrderPolicy::default(), 50_000);
        let q = sent(&r.handle(Input::Tick, 50_000).unwrap());
        assert_eq!(q[0].op, Op::Query);
        r.handle(resp(&r, &q[0], RespStatus::Pending, None), 50_010)
            .unwrap();
        let out = r.handle(Input::Tick, 53_000).unwrap();
        assert_eq!(states(&out), vec![TxnState::Closing]);
        let c = sent(&out)[0].clone();
        let out = r
            .handle(resp(&r, &c, RespStatus::Approved, None), 53_100)
            .unwrap();
        assert!(matches!(
            out.first(),
            Some(Action::PersistWithRefund { .. })
        ));

        // A paid order found by the recovery query is a sale, not a refund.
        let (m, _) = order(0, true);
        let mut r = MerchantOrder::recover(m.txn().clone(), OrderPolicy::default(), 50_000);
        let q = sent(&r.handle(Input::Tick, 50_000).unwrap());
        let out = r
            .handle(resp(&r, &q[0], RespStatus::Approved, None), 50_010)
            .unwrap();
        assert_eq!(states(&out), vec![TxnState::Approved]);
        assert!(matches!(out.first(), Some(Action::Persist(_))));
    }

    #[test]
    fn close_retries_with_backoff() {
        let (mut m, _) = order(0, true);
        m.handle(Input::Cancel { reason: "c".into() }, 0).unwrap();
        let w1 = m.next_wake().unwrap();
        assert_eq!(w1, 2_000);
        let out = m.handle(Input::Tick, w1).unwrap();
        assert_eq!(sent(&out)[0].op, Op::Close);
        assert!(m.next_wake().unwrap() > w1);
    }
}
