//! Customer-presented codes (DESIGN §1.1): a sale asked for by the till, the code that pays it
//! (from any scanner, or in the request), routing it to the online, offline or card path, and
//! the cashier's cancel.

use super::{rand10, Engine, Flow, RefundRequest, Reply, SaleError};
use crate::clock::now_ms;
use posd_core::control::{AwaitingInput, CurrentReply, CurrentTxn, SaleMethod};
use posd_core::display::UiEvent;
use posd_core::i18n::Msg;
use posd_core::money::Currency;
use posd_core::till::{route, Awaiting, CodeRoute, TillRefusal};
use posd_core::txn::{Input, Method, OnlineSale, Transaction, TxnKind, TxnState};

impl Engine {
    /// A sale from the till: checked by the till's rules, then started or left waiting for a code.
    pub(super) async fn sale(
        &mut self,
        amount: i64,
        currency: Currency,
        code: Option<String>,
        method: SaleMethod,
        reply: Reply,
    ) {
        // One code, one sale: a code already paying a transaction in flight is refused with
        // that transaction, even while the till waits for it (issue 15). An online payment
        // code is checked by the journal call that records its intent (`record_with_code`,
        // one round trip fewer, issue 18), or here before any other refusal of it.
        let online = code.as_deref().is_some_and(|c| self.is_online_code(c));
        let refused = self.till.check_sale(amount, currency).err();
        if let Some(c) = code.as_deref().filter(|_| !online || refused.is_some()) {
            if let Some(e) = self.in_flight_for(c).await {
                self.refused(&e, None);
                let _ = reply.send(Err(e));
                return;
            }
        }
        if let Some(r) = refused {
            let _ = reply.send(Err(r.into()));
            return;
        }
        match (method, code) {
            (SaleMethod::MerchantQr, _) => self.start_order(amount, currency, reply).await,
            (SaleMethod::Presented, Some(code)) => {
                self.start_code(amount, currency, code, reply, online).await
            }
            (SaleMethod::Presented, None) => {
                self.ui(UiEvent::AwaitingCode {
                    amount: format!("{} {}", currency.format(amount), currency),
                });
                self.till.wait_for(Awaiting::Code {
                    amount,
                    currency,
                    reply,
                });
            }
        }
    }

    /// A code from a scanner, the camera, the keypad or the console: it pays the awaited sale
    /// or names the awaited refund's receipt; otherwise it is wiped and ignored.
    pub(super) async fn code(&mut self, text: String, source: &str) {
        match self.till.take_awaiting() {
            Some(Awaiting::Code {
                amount,
                currency,
                reply,
            }) => self.start_code(amount, currency, text, reply, false).await,
            Some(Awaiting::Receipt {
                amount,
                refund_id,
                reply,
            }) => match route(&text, &self.p.patterns) {
                CodeRoute::Receipt(r) => match r.txn_on(&self.p.terminal) {
                    Ok(txn_id) => {
                        let req = RefundRequest {
                            original: Some(txn_id.to_string()),
                            amount,
                            refund_id,
                            pin: String::new(),
                        };
                        self.start_refund(req, reply).await;
                    }
                    Err(other) => {
                        self.ui(UiEvent::Notice {
                            text: other.to_string(),
                        });
                        self.till.wait_for(Awaiting::Receipt {
                            amount,
                            refund_id,
                            reply,
                        });
                    }
                },
                _ => {
                    let mut text = text;
                    zeroize::Zeroize::zeroize(&mut text);
                    self.ui(UiEvent::Notice {
                        text: super::say(posd_core::i18n::Msg::NoticeScanReceiptQr),
                    });
                    self.till.wait_for(Awaiting::Receipt {
                        amount,
                        refund_id,
                        reply,
                    });
                }
            },
            Some(Awaiting::Lookup { reply }) => self.lookup_receipt(text, reply).await,
            None => {
                let mut text = text;
                let in_flight = self.in_flight_for(&text).await;
                zeroize::Zeroize::zeroize(&mut text);
                match in_flight {
                    Some(e) => {
                        log::info!("code from {source} refused: {e}");
                        self.refused(&e, None);
                    }
                    None => {
                        log::info!("code from {source} ignored: no sale waits for one");
                        self.ui(UiEvent::Notice {
                            text: super::say(posd_core::i18n::Msg::NoticeNoSale),
                        });
                    }
                }
            }
        }
    }

    /// A receipt scanned for a lookup: the transaction its QR names on this terminal. Anything
    /// else is wiped and the wait goes on.
    async fn lookup_receipt(&mut self, text: String, reply: Reply) {
        let txn_id = match route(&text, &self.p.patterns) {
            CodeRoute::Receipt(r) => r.txn_on(&self.p.terminal).map(|id| id.to_string()),
            _ => {
                let mut text = text;
                zeroize::Zeroize::zeroize(&mut text);
                self.ui(UiEvent::Notice {
                    text: "Scan the receipt's QR code".into(),
                });
                self.till.wait_for(Awaiting::Lookup { reply });
                return;
            }
        };
        let txn_id = match txn_id {
            Ok(id) => id,
            Err(other) => {
                self.ui(UiEvent::Notice {
                    text: other.to_string(),
                });
                self.till.wait_for(Awaiting::Lookup { reply });
                return;
            }
        };
        let key = txn_id.clone();
        let _ = match self.p.store.call(move |db| db.txn(&key)).await {
            Ok(Some(t)) => {
                let outcome = match t.state {
                    TxnState::Declined => posd_core::txn::SaleOutcome::Declined {
                        reason: t.reason.clone().unwrap_or_default(),
                    },
                    _ => posd_core::txn::SaleOutcome::Approved {
                        host_ref: t.host_ref.clone(),
                    },
                };
                reply.send(Ok(posd_core::control::SaleReply::of(&t, outcome)))
            }
            Ok(None) => reply.send(Err(SaleError::NotFound(super::say_with(
                Msg::NotFoundTxn,
                &[("txn", &txn_id)],
            )))),
            Err(e) => reply.send(Err(SaleError::Store(e))),
        };
    }

    /// The cashier cancels: what was awaited ends; a transaction in flight is reversed or closed.
    pub(super) async fn cancel(&mut self) -> Result<String, SaleError> {
        if let Some(a) = self.till.take_awaiting() {
            let what = match &a {
                Awaiting::Code { .. } => Msg::CancelBeforeCode,
                Awaiting::Receipt { .. } => Msg::CancelBeforeReceipt,
                Awaiting::Lookup { .. } => Msg::CancelStoppedWaiting,
            };
            let _ = a
                .reply()
                .send(Err(SaleError::Refused(super::say(Msg::CancelledByCashier))));
            return Ok(super::say(what));
        }
        let id = self.till.current().ok_or(TillRefusal::NoSale)?;
        let now = now_ms();
        let flow = self.machines.get_mut(&id).ok_or(TillRefusal::NoSale)?;
        let what = super::say(match flow {
            Flow::Order(_) => Msg::CancelClosingOrder,
            Flow::Refund(_) => Msg::CancelRefundNoCallback,
            Flow::Online(_) => Msg::CancelReversal,
        });
        let actions = flow
            .handle(
                Input::Cancel {
                    reason: "cancelled by the cashier".into(),
                },
                now,
            )
            .map_err(|e| SaleError::Refused(e.to_string()))?;
        self.execute(id, actions).await;
        Ok(super::say_with(
            Msg::CancelSale,
            &[("txn", &id), ("what", &what)],
        ))
    }

    /// The sale in progress (and the code it shows), or what the till waits for.
    pub(super) fn current(&self) -> Option<CurrentReply> {
        if let Some(f) = self.till.current().and_then(|id| self.machines.get(&id)) {
            let t = f.txn();
            return Some(CurrentReply::Txn(CurrentTxn {
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
                short_ref: posd_core::txn::short_ref(&t.id),
                recovered: self.recovered.contains(&t.id),
            }));
        }
        self.till.awaiting().map(|a| {
            CurrentReply::Awaiting(match a {
                Awaiting::Code {
                    amount, currency, ..
                } => AwaitingInput {
                    awaiting: "code".into(),
                    amount: Some(*amount),
                    currency: Some(currency.code().to_string()),
                },
                Awaiting::Receipt { .. } | Awaiting::Lookup { .. } => AwaitingInput {
                    awaiting: "receipt".into(),
                    amount: None,
                    currency: None,
                },
            })
        })
    }

    /// Whether `text` is an online payment code (its in-flight check can wait for the
    /// journal call that records its intent).
    fn is_online_code(&self, text: &str) -> bool {
        let code = text.trim_end_matches(['\r', '\n']);
        matches!(route(code, &self.p.patterns), CodeRoute::Online { .. })
    }

    /// Routes a code: online, offline (P1), card, or a clear refusal. `check_first`: the
    /// code's in-flight check was left to the journal call (an online code from a sale
    /// request), so a refusal before that call checks it first.
    pub(super) async fn start_code(
        &mut self,
        amount: i64,
        currency: Currency,
        mut text: String,
        reply: Reply,
        check_first: bool,
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
            CodeRoute::Receipt(_) => {
                let reason = super::say(Msg::RefuseReceiptNotCode);
                let e = SaleError::Code(reason);
                self.refused(&e, None);
                let _ = reply.send(Err(e));
                return;
            }
            CodeRoute::Refuse(reason) => {
                let e = SaleError::Code(reason);
                self.refused(&e, None);
                let _ = reply.send(Err(e));
                return;
            }
        };
        let digest = self.p.code_key.payment_code(&code);
        let now = now_ms();
        // The till decides from the link's state: an online code while the link is not
        // usable is refused now, before its intent is journaled (nothing left in flight).
        let link = self.p.link.verdict(now);
        if let Err(r) = self.till.check_online(link) {
            if check_first {
                if let Some(e) = self.in_flight_for(&code).await {
                    zeroize::Zeroize::zeroize(&mut text);
                    self.refused(&e, None);
                    let _ = reply.send(Err(e));
                    return;
                }
            }
            zeroize::Zeroize::zeroize(&mut text);
            log::info!("online code refused at once: {link}");
            self.ui(UiEvent::Notice {
                text: r.to_string(),
            });
            let _ = reply.send(Err(r.into()));
            return;
        }
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
            &super::say(posd_core::i18n::Msg::DoingAskPlatform),
            Some(digest),
        )
        .await;
    }
}
