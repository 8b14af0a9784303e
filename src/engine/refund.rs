//! Refunds and voids (DESIGN §1.5), behind the manager PIN: the till's lockout decides, the
//! argon2 check runs on its own thread (`pin.rs`), the refund's intent is checked against its original
//! inside the SQLite transaction that records it.

use super::{rand10, Engine, Flow, RefundRequest, Reply, SaleError};
use crate::clock::now_ms;
use posd_core::control::SaleReply;
use posd_core::display::UiEvent;
use posd_core::refund::RefundFlow;
use posd_core::till::Awaiting;
use posd_core::txn::{Method, SaleOutcome, Transaction, TxnKind, TxnState};

impl Engine {
    /// The manager PIN, with the till's lockout after repeated failures.
    pub(super) async fn check_pin(&mut self, pin: String) -> Result<(), SaleError> {
        let now = now_ms();
        self.till.pin_gate(now, self.p.pin_hash.is_some())?;
        let hash = self.p.pin_hash.clone().unwrap_or_default();
        let ok = self.pin.check(pin, hash).await;
        let r = self.till.pin_checked(now, ok);
        if r.is_err() {
            log::warn!("wrong manager PIN ({} in a row)", self.till.pin_failures());
        }
        Ok(r?)
    }

    /// A refund from the till: PIN, then the original named or the next receipt scanned.
    pub(super) async fn refund(&mut self, req: RefundRequest, reply: Reply) {
        if let Err(r) = self.till.check_refund() {
            let _ = reply.send(Err(r.into()));
            return;
        }
        if let Err(e) = self.check_pin(req.pin.clone()).await {
            let _ = reply.send(Err(e));
            return;
        }
        if req.original.is_none() {
            self.ui(UiEvent::Notice {
                text: super::say(posd_core::i18n::Msg::NoticeRefundScanReceipt),
            });
            self.till.wait_for(Awaiting::Receipt {
                amount: req.amount,
                refund_id: req.refund_id,
                reply,
            });
            return;
        }
        self.start_refund(req, reply).await;
    }

    /// Refund: the PIN is checked; the original and the amount are checked against the
    /// journal in the same SQLite transaction that records the refund's intent.
    pub(super) async fn start_refund(&mut self, req: RefundRequest, reply: Reply) {
        let Some(original) = req.original else {
            let _ = reply.send(Err(SaleError::NotFound(super::say(
                posd_core::i18n::Msg::NotFoundOriginal,
            ))));
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
                        posd_core::money::Money {
                            minor: t.amount,
                            currency: t.currency
                        },
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
        if let Err(r) = self.till.check_refund_online(self.p.link.verdict(now_ms())) {
            self.ui(UiEvent::Notice {
                text: r.to_string(),
            });
            let _ = reply.send(Err(r.into()));
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
        self.launch(
            Flow::Refund(m),
            actions,
            reply,
            &super::say(posd_core::i18n::Msg::DoingRefund),
            None,
        )
        .await;
    }

    pub(super) async fn void(&mut self, original: String, reply: Reply) {
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
                    text: super::say(posd_core::i18n::Msg::ResultVoided),
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
}
