//! The online refund flow (DESIGN §1.5, docs/payments.md), with no I/O.
//!
//! Why it exists: a refund moves money back to a customer, so it has the same failure modes as
//! a sale in reverse — a lost answer must not become a second refund, and a refund the host
//! never heard of must not be forgotten. Each refund is its own transaction with an idempotent
//! `refund_id`; its intent is journaled before the request leaves, and without a final answer
//! the same `refund_id` is sent again with backoff until the host gives one, across restarts.
//! The limits (the original exists, the sum of refunds stays within it, the manager PIN) are
//! checked by the shell against the journal before this machine starts.

use crate::backoff::Backoff;
use crate::protocol::{Op, RespStatus};
use crate::txn::{Action, Ignored, Input, Millis, Requests, SaleOutcome, Transaction, TxnState};

/// Timing rules of refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundPolicy {
    /// How long the cashier waits for the first final answer before being told "pending".
    pub answer_wait_ms: u64,
    /// Resends of the same `refund_id` until a final answer.
    pub retry: Backoff,
}

impl Default for RefundPolicy {
    fn default() -> Self {
        RefundPolicy {
            answer_wait_ms: 15_000,
            retry: Backoff {
                initial_ms: 3_000,
                max_ms: 300_000,
            },
        }
    }
}

/// The longest `refund_id` a till may give (bytes): an id, not a document. A longer one would
/// ride in every event and request of its refund, past the event size limit.
pub const MAX_REFUND_ID_LEN: usize = 64;

/// A `refund_id` given by the till is 1–64 visible ASCII characters (letters, digits,
/// punctuation; no spaces or control characters): it is an idempotency key the host compares
/// byte for byte, printed and logged.
pub fn check_refund_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_REFUND_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "refund_id must be 1 to {MAX_REFUND_ID_LEN} visible ASCII characters (letters, digits, \
             punctuation; no spaces); leave it out and posd makes one"
        ));
    }
    Ok(())
}

/// The original sale and the idempotency key a refund transaction carries in `detail`.
pub fn refund_keys(txn: &Transaction) -> Option<(String, String)> {
    let d = txn.detail.as_ref()?;
    Some((
        d.get("original")?.as_str()?.to_string(),
        d.get("refund_id")?.as_str()?.to_string(),
    ))
}

/// One refund in flight.
#[derive(Debug, Clone)]
pub struct RefundFlow {
    txn: Transaction,
    original: String,
    refund_id: String,
    policy: RefundPolicy,
    requests: Requests,
    next_wake: Option<Millis>,
    attempts: u32,
    outcome_sent: bool,
}

impl RefundFlow {
    /// Starts a refund: the durable intent, then the request. `txn.detail` must hold
    /// `original` and `refund_id` (see [`refund_keys`]); None if it does not.
    pub fn start(
        mut txn: Transaction,
        policy: RefundPolicy,
        now: Millis,
    ) -> Option<(RefundFlow, Vec<Action>)> {
        let (original, refund_id) = refund_keys(&txn)?;
        txn.state = TxnState::Authorizing;
        txn.updated_at = now;
        let mut f = RefundFlow {
            txn,
            original,
            refund_id,
            policy,
            requests: Requests::default(),
            next_wake: None,
            attempts: 0,
            outcome_sent: false,
        };
        let mut out = vec![Action::Persist(f.txn.clone())];
        f.send(now, &mut out);
        Some((f, out))
    }

    /// Resumes a refund already journaled (after a restart, or created together with its
    /// sale): sends at once; `waiting` says whether somebody waits for the outcome.
    pub fn resume(
        txn: Transaction,
        policy: RefundPolicy,
        now: Millis,
        waiting: bool,
    ) -> Option<RefundFlow> {
        let (original, refund_id) = refund_keys(&txn)?;
        Some(RefundFlow {
            txn,
            original,
            refund_id,
            policy,
            requests: Requests::default(),
            next_wake: Some(now),
            attempts: 0,
            outcome_sent: !waiting,
        })
    }

    pub fn txn(&self) -> &Transaction {
        &self.txn
    }

    /// The sale being refunded.
    pub fn original(&self) -> &str {
        &self.original
    }

    pub fn refund_id(&self) -> &str {
        &self.refund_id
    }

    pub fn next_wake(&self) -> Option<Millis> {
        self.next_wake
    }

    fn send(&mut self, now: Millis, out: &mut Vec<Action>) {
        let mut req = self
            .requests
            .issue(&self.txn.id, Op::Refund, self.original.clone(), now);
        req.refund_id = Some(self.refund_id.clone());
        req.amount = Some(self.txn.amount);
        req.currency = Some(self.txn.currency.code().to_string());
        req.method = Some(self.txn.method.as_str().to_string());
        out.push(Action::Send(req));
        let mut wake = now + self.policy.retry.delay_ms(self.attempts);
        if !self.outcome_sent {
            wake = wake.min(self.txn.created_at + self.policy.answer_wait_ms);
        }
        self.attempts = self.attempts.saturating_add(1);
        self.next_wake = Some(wake);
    }

    fn finish(&mut self, state: TxnState, outcome: SaleOutcome, now: Millis) -> Vec<Action> {
        self.txn.state = state;
        self.txn.updated_at = now;
        let mut out = vec![Action::Persist(self.txn.clone())];
        if !self.outcome_sent {
            self.outcome_sent = true;
            out.push(Action::Outcome(outcome));
        }
        self.next_wake = None;
        self.requests.clear();
        out.push(Action::Finished);
        out
    }

    pub fn handle(&mut self, input: Input, now: Millis) -> Result<Vec<Action>, Ignored> {
        if !self.txn.state.in_flight() {
            return Err(Ignored::AlreadyFinal);
        }
        let mut out = Vec::new();
        match input {
            Input::Paid { .. } => return Err(Ignored::NotExpected("paid")),
            // A refund cannot be called back once asked for: the same refund_id is resent
            // until the host answers; cancelling only stops the wait.
            Input::Cancel { .. } => {}
            // The same refund_id is resent with backoff until the host answers.
            Input::NotSent { .. } => {}
            Input::Tick => {
                if self.next_wake.is_none_or(|w| now < w) {
                    return Ok(out);
                }
                if !self.outcome_sent && now >= self.txn.created_at + self.policy.answer_wait_ms {
                    self.outcome_sent = true;
                    self.txn.state = TxnState::Pending;
                    self.txn.updated_at = now;
                    out.push(Action::Persist(self.txn.clone()));
                    out.push(Action::Outcome(SaleOutcome::Pending {
                        reason: "the host has not answered; the refund is retried until it does"
                            .into(),
                    }));
                }
                self.send(now, &mut out);
            }
            Input::Resp(resp) => {
                if resp.txn_id != self.original {
                    return Err(Ignored::OtherTransaction);
                }
                self.requests.op_of(&resp.req_id)?;
                match resp.status {
                    RespStatus::Approved => {
                        self.txn.host_ref = resp.host_ref.clone();
                        self.txn.reason = None;
                        return Ok(self.finish(
                            TxnState::Approved,
                            SaleOutcome::Approved {
                                host_ref: resp.host_ref,
                            },
                            now,
                        ));
                    }
                    RespStatus::Declined => {
                        let reason = resp
                            .reason
                            .unwrap_or_else(|| "refund declined by the host".into());
                        self.txn.reason = Some(reason.clone());
                        return Ok(self.finish(
                            TxnState::Declined,
                            SaleOutcome::Declined { reason },
                            now,
                        ));
                    }
                    RespStatus::Pending | RespStatus::Unknown | RespStatus::Error => {}
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::protocol::{Request, Response};
    use crate::txn::{Method, TxnKind};
    use serde_json::json;

    #[test]
    fn a_tills_refund_id_is_a_short_visible_ascii_key() {
        for ok in [
            "r1",
            "R-2026-12-05/0042",
            "0123456789abcdef0123456789abcdef",
            &"x".repeat(64),
        ] {
            assert_eq!(check_refund_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", " r1", "r 1", "r1\n", "réf", &"x".repeat(65), "\u{0}"] {
            let err = check_refund_id(bad).unwrap_err();
            assert!(err.contains("1 to 64"), "{bad:?}: {err}");
        }
    }

    fn refund(now: Millis) -> (RefundFlow, Vec<Action>) {
        let mut t = Transaction::new(
            TxnKind::Refund,
            Method::PaymentCode,
            500,
            Currency::from_code("CNY").unwrap(),
            TxnState::Authorizing,
            now,
            [1; 10],
        );
        t.detail = Some(json!({"original": "orig-1", "refund_id": "r-1"}));
        RefundFlow::start(t, RefundPolicy::default(), now).unwrap()
    }

    fn req(a: &[Action]) -> Request {
        a.iter()
            .find_map(|x| match x {
                Action::Send(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn answer(r: &Request, status: RespStatus) -> Input {
        Input::Resp(Response {
            req_id: r.req_id.clone(),
            txn_id: r.txn_id.clone(),
            status,
            reason: None,
            host_ref: Some("R9".into()),
            qr: None,
        })
    }

    #[test]
    fn intent_first_then_request_naming_the_original() {
        let (_f, a) = refund(0);
        assert!(matches!(&a[0], Action::Persist(t) if t.state == TxnState::Authorizing));
        let r = req(&a);
        assert_eq!(r.op, Op::Refund);
        assert_eq!(r.txn_id, "orig-1");
        assert_eq!(r.refund_id.as_deref(), Some("r-1"));
        assert_eq!(r.amount, Some(500));
    }

    #[test]
    fn approved_and_declined_are_final() {
        let (mut f, a) = refund(0);
        let out = f
            .handle(answer(&req(&a), RespStatus::Approved), 10)
            .unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Approved));
        assert_eq!(f.handle(Input::Tick, 99_999), Err(Ignored::AlreadyFinal));
        let (mut f, a) = refund(0);
        let out = f
            .handle(answer(&req(&a), RespStatus::Declined), 10)
            .unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Declined));
    }

    #[test]
    fn silence_resends_the_same_refund_id_and_tells_pending() {
        let (mut f, a) = refund(0);
        let first = req(&a);
        let mut resent = Vec::new();
        let mut told = false;
        let mut now = 0;
        while now < 40_000 {
            let out = f.handle(Input::Tick, now).unwrap();
            if out
                .iter()
                .any(|x| matches!(x, Action::Outcome(SaleOutcome::Pending { .. })))
            {
                told = true;
                assert_eq!(now, 15_000);
            }
            for x in out {
                if let Action::Send(r) = x {
                    assert_eq!(r.refund_id, first.refund_id);
                    resent.push(now);
                }
            }
            now += 500;
        }
        assert!(told);
        assert!(resent.len() >= 3, "{resent:?}");
        // A late answer to the first request still counts.
        let out = f.handle(answer(&first, RespStatus::Approved), now).unwrap();
        assert!(matches!(&out[0], Action::Persist(t) if t.state == TxnState::Approved));
        assert!(!out.iter().any(|x| matches!(x, Action::Outcome(_))));
    }

    #[test]
    fn resume_sends_at_once() {
        let (f, _) = refund(0);
        let mut r =
            RefundFlow::resume(f.txn().clone(), RefundPolicy::default(), 100, false).unwrap();
        let out = r.handle(Input::Tick, 100).unwrap();
        assert_eq!(req(&out).op, Op::Refund);
    }
}
