//! Merchant-presented codes (DESIGN §1.3): the code made here or asked of the platform, shown
//! (and printed on a pay slip), paid by the host's `notify` or found by `query`/`close`.

use super::{rand10, Engine, Flow, Reply, SaleError};
use crate::clock::now_ms;
use posd_core::codes;
use posd_core::display::UiEvent;
use posd_core::money::Currency;
use posd_core::order::{self, MerchantOrder};
use posd_core::txn::{Input, Method, Transaction, TxnKind, TxnState};
use uuid::Uuid;

impl Engine {
    /// DESIGN §1.3: make (or ask for) the code, show it, wait for the payment.
    pub(super) async fn start_order(&mut self, amount: i64, currency: Currency, reply: Reply) {
        let now = now_ms();
        // Both modes need the host (the platform matches the payment to the `order`): refused
        // at once while the link is not usable, before anything is journaled or shown.
        let link = self.p.link.verdict(now);
        if let Err(r) = self.till.check_online(link) {
            log::info!("merchant QR refused: {link}");
            self.ui(UiEvent::Notice {
                text: r.to_string(),
            });
            let _ = reply.send(Err(r.into()));
            return;
        }
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
                    let text = super::say(posd_core::i18n::Msg::QrNotConfigured);
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
                        let text =
                            super::say_with(posd_core::i18n::Msg::QrCannotMake, &[("error", &e)]);
                        self.ui(UiEvent::Notice { text: text.clone() });
                        let _ = reply.send(Err(SaleError::Refused(text)));
                        return;
                    }
                }
            }
            None => {
                txn.channel = Some("platform".into());
                None
            }
        };
        let (m, actions) = MerchantOrder::start(txn, payload, self.p.merchant_qr.policy, now);
        self.launch(
            Flow::Order(m),
            actions,
            reply,
            &super::say(posd_core::i18n::Msg::DoingWaitCustomerPay),
            None,
        )
        .await;
    }

    /// Prints the merchant-presented code when the config asks for it and a printer exists.
    pub(super) async fn print_pay_slip(&mut self, id: Uuid, qr: &str) {
        let (Some(wake), true) = (self.p.printer.clone(), self.p.merchant_qr.print) else {
            return;
        };
        let Some(mut t) = self.machines.get(&id).map(|m| m.txn().clone()) else {
            return;
        };
        // The slip shows the code offered now (a platform's code arrives in the answer).
        match t.detail.as_mut().and_then(|d| d.as_object_mut()) {
            Some(d) => {
                d.insert("qr".into(), serde_json::json!(qr));
            }
            None => t.detail = Some(serde_json::json!({ "qr": qr })),
        }
        let ctx = posd_core::receipt::ReceiptCtx {
            terminal: self.p.terminal.clone(),
            zone: self.p.zone.clone(),
            ..Default::default()
        };
        let Some(slip) = posd_core::receipt::pay_slip_of(&t, &ctx) else {
            return;
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

    /// The host says an order was paid (`notify {type:"payment"}`).
    pub(super) async fn paid(
        &mut self,
        txn_id: String,
        host_ref: Option<String>,
        amount: Option<i64>,
    ) {
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
            log::error!(txn_id = txn_id.as_str(); "payment notify for {} but the order is for {}: not taken as paid (the query and the close decide)", m.txn().currency.format(paid), posd_core::money::Money { minor: m.txn().amount, currency: m.txn().currency });
            return;
        }
        match m.handle(Input::Paid { host_ref }, now) {
            Ok(a) => self.execute(id, a).await,
            Err(e) => log::warn!(txn_id = txn_id.as_str(); "payment notify ignored: {e}"),
        }
    }
}
