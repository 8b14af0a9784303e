//! The keypad shell: evdev keys → bound [`Key`]s → the cashier state machine → the engine.
//!
//! The state machine is [`posd_core::cashier`]; this task only reads the keypad (through the
//! same opener and hotplug rules as the scanner), keeps the machine in step with the engine's
//! UI events (so a sale started on the control socket is the keypad's sale too), and carries
//! out its actions: `EngineMsg::Sale`/`Cancel`, screens as `UiEvent::Notice`, and "not
//! available yet" for the flows other issues build (merchant QR, card, refund, reprint,
//! batch close).

use super::evdev_reader::{HidSource, Opener, EV_KEY};
use super::DeviceStatus;
use crate::config::devices::KeypadConfig;
use crate::engine::EngineMsg;
use posd_core::cashier::{Action, Cashier, CashierConfig, Input, PayMethod, Screen};
use posd_core::display::UiEvent;
use posd_core::i18n::Msg;
use posd_core::money::Currency;
use posd_core::txn::SaleOutcome;

use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// `m` in the shop's language now.
fn t(m: Msg) -> String {
    posd_core::i18n::text(crate::lang::current(), m).to_string()
}

/// What a UI event from the engine means for the keypad's machine.
pub fn ui_input(ev: &UiEvent, currency: Currency) -> Option<Input> {
    match ev {
        UiEvent::AwaitingCode { amount } => {
            let number = amount.split_whitespace().next()?;
            Some(Input::SaleStarted {
                amount: currency.parse_amount(number).ok()?,
            })
        }
        UiEvent::Processing { what, .. } => Some(Input::Pending { text: what.clone() }),
        UiEvent::CustomerConfirming { .. } => Some(Input::Pending {
            text: t(Msg::KeyCustomerConfirming),
        }),
        UiEvent::Result { text, approved, .. } => Some(Input::Outcome {
            approved: *approved,
            text: text.clone(),
        }),
        UiEvent::ShowQr { .. } => Some(Input::Pending {
            text: t(Msg::KeyCustomerScansQr),
        }),
        UiEvent::Recovered { short_ref, .. } => Some(Input::Recovered {
            short_ref: short_ref.clone(),
        }),
        UiEvent::Alert { current, .. } => Some(Input::Alerts {
            current: current.clone(),
        }),
        UiEvent::Notice { .. } | UiEvent::Printer { .. } => None,
    }
}

/// The notice a screen is published as (`line1\nline2`).
pub fn screen_notice(s: &Screen) -> UiEvent {
    UiEvent::Notice {
        text: format!("{}\n{}", s.line1, s.line2),
    }
}

fn outcome_input(r: Result<posd_core::control::SaleReply, crate::engine::SaleError>) -> Input {
    match r {
        Ok(reply) => match reply.outcome {
            SaleOutcome::Approved { .. } => Input::Outcome {
                approved: true,
                text: t(Msg::KeyPaid),
            },
            SaleOutcome::Declined { reason }
            | SaleOutcome::Cancelled { reason }
            | SaleOutcome::Pending { reason } => Input::Outcome {
                approved: false,
                text: reason,
            },
        },
        Err(e) => Input::Outcome {
            approved: false,
            text: e.to_string(),
        },
    }
}

/// Asks the engine to wait for a receipt's QR: Some(txn id) when one was scanned, None when the
/// wait was cancelled (Cancel, or Enter for the newest), Err(text) when it was refused.
async fn find_receipt(
    engine: &mpsc::Sender<EngineMsg>,
    title: &str,
    prompt: &str,
) -> Result<Option<String>, String> {
    let (reply, rx) = oneshot::channel();
    let msg = EngineMsg::FindReceipt {
        prompt: format!("{title}\n{prompt}"),
        reply,
    };
    if engine.send(msg).await.is_err() {
        return Ok(None);
    }
    match rx.await {
        Ok(Ok(found)) => Ok(Some(found.txn_id)),
        Ok(Err(crate::engine::SaleError::Refused(_))) | Err(_) => Ok(None),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

/// What the cashier reads after a reprint was asked for.
fn reprint_text(r: Result<crate::printq::Queued, crate::printq::ReprintError>) -> String {
    match r {
        Ok(q) if q.already_queued => t(Msg::KeyReprintAlreadyQueued),
        Ok(_) => t(Msg::KeyReprintQueued),
        Err(crate::printq::ReprintError::NotFound) => t(Msg::KeyNoReceiptYet),
        Err(e) => {
            log::info!("keypad reprint: {e}");
            e.to_string()
        }
    }
}

/// Carries out the machine's actions. Replies come back on `done`.
fn perform(
    actions: Vec<Action>,
    currency: Currency,
    engine: &mpsc::Sender<EngineMsg>,
    ui: &broadcast::Sender<UiEvent>,
    printer: Option<&crate::printq::PrintHandle>,
    done: &mpsc::Sender<Input>,
) {
    for a in actions {
        match a {
            Action::Show(s) => {
                let _ = ui.send(screen_notice(&s));
            }
            Action::StartSale { amount, method } => {
                let done = done.clone();
                let engine = engine.clone();
                tokio::spawn(async move {
                    let method = match method {
                        // A card is swiped on the reader like any other presented code.
                        PayMethod::Scan | PayMethod::Card => {
                            posd_core::control::SaleMethod::Presented
                        }
                        PayMethod::MerchantQr => posd_core::control::SaleMethod::MerchantQr,
                    };
                    let (reply, rx) = oneshot::channel();
                    let msg = EngineMsg::Sale {
                        amount,
                        currency,
                        code: None,
                        method,
                        reply,
                    };
                    if engine.send(msg).await.is_err() {
                        return;
                    }
                    let input = match rx.await {
                        Ok(r) => outcome_input(r),
                        Err(_) => return,
                    };
                    let _ = done.send(input).await;
                });
            }
            Action::CancelSale => {
                let engine = engine.clone();
                tokio::spawn(async move {
                    let (reply, rx) = oneshot::channel();
                    if engine.send(EngineMsg::Cancel { reply }).await.is_ok() {
                        if let Ok(Err(e)) = rx.await {
                            log::info!("keypad cancel: {e}");
                        }
                    }
                });
            }
            Action::Refund { pin, amount } => {
                // `amount` (None: all that is left) of the sale whose receipt is scanned next.
                let done = done.clone();
                let engine = engine.clone();
                let pin = String::from_utf8_lossy(pin.expose()).into_owned();
                tokio::spawn(async move {
                    let (reply, rx) = oneshot::channel();
                    let msg = EngineMsg::Refund {
                        req: crate::engine::RefundRequest {
                            original: None,
                            amount,
                            refund_id: None,
                            pin,
                        },
                        reply,
                    };
                    if engine.send(msg).await.is_err() {
                        return;
                    }
                    let text = match rx.await {
                        Ok(Ok(r)) => match r.outcome {
                            SaleOutcome::Approved { .. } => t(Msg::KeyRefunded),
                            SaleOutcome::Declined { reason }
                            | SaleOutcome::Cancelled { reason }
                            | SaleOutcome::Pending { reason } => reason,
                        },
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => return,
                    };
                    let _ = done.send(Input::OperationDone { text }).await;
                });
            }
            Action::Void { pin } => {
                // The receipt scanned next names the offline sale; the engine checks the PIN.
                let done = done.clone();
                let engine = engine.clone();
                let pin = String::from_utf8_lossy(pin.expose()).into_owned();
                tokio::spawn(async move {
                    let (title, prompt) = (t(Msg::KeyVoid), t(Msg::KeyScanReceipt));
                    let text = match find_receipt(&engine, &title, &prompt).await {
                        Ok(Some(original)) => {
                            let (reply, rx) = oneshot::channel();
                            let msg = EngineMsg::Void {
                                original,
                                pin,
                                reply,
                            };
                            if engine.send(msg).await.is_err() {
                                return;
                            }
                            match rx.await {
                                Ok(Ok(_)) => t(Msg::KeyVoided),
                                Ok(Err(e)) => e.to_string(),
                                Err(_) => return,
                            }
                        }
                        Ok(None) => return,
                        Err(e) => e,
                    };
                    let _ = done.send(Input::OperationDone { text }).await;
                });
            }
            Action::Reprint => {
                // The receipt whose QR is scanned next (Enter: the newest, `ReprintLast`).
                let done = done.clone();
                let engine = engine.clone();
                let printer = printer.cloned();
                tokio::spawn(async move {
                    let Some(p) = printer else {
                        let _ = done
                            .send(Input::OperationDone {
                                text: t(Msg::KeyNoPrinter),
                            })
                            .await;
                        return;
                    };
                    let (title, prompt) = (t(Msg::KeyReprint), t(Msg::KeyScanForReprint));
                    let text = match find_receipt(&engine, &title, &prompt).await {
                        Ok(Some(txn_id)) => reprint_text(p.reprint(Some(txn_id)).await),
                        // Ended by Enter (the newest is reprinted) or by Cancel.
                        Ok(None) => return,
                        Err(e) => e,
                    };
                    let _ = done.send(Input::OperationDone { text }).await;
                });
            }
            Action::ZAgain => {
                let done = done.clone();
                let printer = printer.cloned();
                tokio::spawn(async move {
                    let text = match printer {
                        None => t(Msg::KeyNoPrinter),
                        Some(p) => match p.store.call(|db| db.batches(1)).await {
                            Ok(b) => match b.first() {
                                Some(close) => {
                                    reprint_text(p.reprint(Some(close.id.to_string())).await)
                                }
                                None => t(Msg::KeyNoBatch),
                            },
                            Err(e) => e.to_string(),
                        },
                    };
                    let _ = done.send(Input::OperationDone { text }).await;
                });
            }
            Action::ReprintLast => {
                let done = done.clone();
                let engine = engine.clone();
                let printer = printer.cloned();
                tokio::spawn(async move {
                    // End the wait for a scan first: the till is free again.
                    let (reply, rx) = oneshot::channel();
                    if engine.send(EngineMsg::Cancel { reply }).await.is_ok() {
                        let _ = rx.await;
                    }
                    let text = match printer {
                        None => t(Msg::KeyNoPrinter),
                        Some(p) => reprint_text(p.reprint(None).await),
                    };
                    let _ = done.send(Input::OperationDone { text }).await;
                });
            }
            Action::BatchClose => {
                let done = done.clone();
                let engine = engine.clone();
                tokio::spawn(async move {
                    let (reply, rx) = oneshot::channel();
                    if engine.send(EngineMsg::BatchClose { reply }).await.is_err() {
                        return;
                    }
                    let text = match rx.await {
                        Ok(Ok(r)) => posd_core::i18n::tr(
                            crate::lang::current(),
                            Msg::KeyBatchClosed,
                            &[("batch", &r.report.batch_no)],
                        ),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => return,
                    };
                    let _ = done.send(Input::OperationDone { text }).await;
                });
            }
            Action::Status => {
                let _ = done.try_send(Input::OperationDone {
                    text: t(Msg::KeySeeStatus),
                });
            }
        }
    }
}

fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis().min(u128::from(u64::MAX)) as u64
}

async fn next_event(src: &mut Option<HidSource>) -> std::io::Result<evdev::InputEvent> {
    match src {
        Some(s) => s.next_event().await,
        None => std::future::pending().await,
    }
}

/// The keypad task. Returns on shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn run<O: Opener>(
    mut opener: O,
    cfg: KeypadConfig,
    currency: Currency,
    max_sale_amount: i64,
    engine: mpsc::Sender<EngineMsg>,
    ui: broadcast::Sender<UiEvent>,
    printer: Option<crate::printq::PrintHandle>,
    status: watch::Sender<DeviceStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let bindings = match cfg.bindings.resolve() {
        Ok(b) => b,
        Err(e) => {
            status.send_replace(DeviceStatus::Error(e.to_string()));
            return;
        }
    };
    let mut cashier = Cashier::new(CashierConfig {
        currency,
        max_amount: cfg
            .max_amount
            .map_or(max_sale_amount, |m| m.min(max_sale_amount)),
        result_ms: cfg.result_ms,
        pin_min_len: cfg.pin_min_len,
        pin_max_len: cfg.pin_max_len,
        language: crate::lang::current(),
    });
    let start = Instant::now();
    let rescan = Duration::from_millis(cfg.rescan_ms.max(10));
    let mut ui_rx = ui.subscribe();
    let (done_tx, mut done_rx) = mpsc::channel::<Input>(16);
    // A sale recovered at start may have been announced before this task listened: ask.
    {
        let engine = engine.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let (reply, rx) = oneshot::channel();
            if engine.send(EngineMsg::Current { reply }).await.is_err() {
                return;
            }
            if let Ok(Some(posd_core::control::CurrentReply::Txn(t))) = rx.await {
                if t.recovered {
                    let _ = done
                        .send(Input::Recovered {
                            short_ref: t.short_ref,
                        })
                        .await;
                }
            }
        });
    }
    let mut src: Option<HidSource> = None;
    let mut desc = String::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_scan = tokio::time::Instant::now();
    loop {
        if src.is_none() && tokio::time::Instant::now() >= next_scan {
            next_scan = tokio::time::Instant::now() + rescan;
            let st = match opener.open() {
                Ok(Some((s, d))) => {
                    src = Some(s);
                    desc = d;
                    log::info!("keypad: using {desc}");
                    let _ = ui.send(screen_notice(&cashier.screen()));
                    DeviceStatus::Ok(desc.clone())
                }
                Ok(None) => DeviceStatus::Absent("keypad not found".into()),
                Err(e) => DeviceStatus::Error(e.to_string()),
            };
            if *status.borrow() != st {
                status.send_replace(st);
            }
        }
        let input = tokio::select! {
            _ = shutdown.changed() => return,
            ev = next_event(&mut src) => match ev {
                Ok(ev) if ev.event_type().0 == EV_KEY && ev.value() == 1 => {
                    bindings.get(&ev.code()).map(|k| Input::Key(*k))
                }
                Ok(_) => None,
                Err(e) => {
                    src = None;
                    let st = DeviceStatus::Absent(format!("{desc}: {e}"));
                    log::warn!("keypad: {st}");
                    status.send_replace(st);
                    None
                }
            },
            ev = ui_rx.recv() => match ev {
                Ok(ev) => ui_input(&ev, currency),
                Err(broadcast::error::RecvError::Lagged(_)) => None,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some(i) = done_rx.recv() => Some(i),
            _ = tick.tick() => Some(Input::Tick),
        };
        if let Some(input) = input {
            // A pushed language shows from the next screen on.
            cashier.set_language(crate::lang::current());
            let actions = cashier.handle(input, now_ms(start));
            perform(actions, currency, &engine, &ui, printer.as_ref(), &done_tx);
        }
    }
}
