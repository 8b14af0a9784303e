//! Cards (DESIGN §1.4): the swipe checked, sealed to the host's key and wiped; then online, or
//! store-and-forward under the floor limit when the host is unreachable (the till decides).

use super::{rand10, Engine, Flow, Reply, SaleError};
use crate::clock::now_ms;
use posd_core::control::SaleReply;
use posd_core::display::UiEvent;
use posd_core::money::Currency;
use posd_core::till::{card_aad, card_path, CardPath};
use posd_core::txn::{Method, OnlineSale, SaleOutcome, Transaction, TxnKind, TxnState};

impl Engine {
    /// DESIGN §1.4: check the swipe, seal it to the host's key, wipe it; then online, or
    /// store-and-forward under the floor limit when the host is unreachable and config allows.
    pub(super) async fn start_card(
        &mut self,
        amount: i64,
        currency: Currency,
        mut swipe: String,
        reply: Reply,
    ) {
        let refuse = |this: &Self, text: String, reply: Reply| {
            log::info!("card refused: {text}");
            let e = SaleError::Refused(text);
            this.refused(&e, None);
            let _ = reply.send(Err(e));
        };
        let parsed = posd_core::card::track::parse_swipe(&swipe);
        zeroize::Zeroize::zeroize(&mut swipe);
        let card = match parsed {
            Ok(c) => c,
            Err(e) => return refuse(self, super::say(e.msg()), reply),
        };
        let now = now_ms();
        let (year, month) = self.p.zone.year_month(now);
        if let Err(e) = card.check(year, month, self.p.card.chip_reader) {
            return refuse(self, super::say(e.msg()), reply);
        }
        let Some(host_key) = self.p.card.host_key else {
            return refuse(
                self,
                super::say(posd_core::i18n::Msg::CardNotConfigured),
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
        // The card's name in the in-flight index (issue 15), taken before the data is wiped.
        let digest = self.p.code_key.card(&card.pan);
        let aad = card_aad(&txn);
        let sealed = posd_core::card::seal::seal_random(&card, &host_key, aad.as_bytes());
        drop(card);
        let sealed = match sealed {
            Ok(s) => s,
            Err(e) => {
                return refuse(
                    self,
                    super::say_with(posd_core::i18n::Msg::CardCannotSeal, &[("error", &e)]),
                    reply,
                )
            }
        };
        let card_json = serde_json::json!({
            "masked_pan": txn.code_masked,
            "brand": txn.channel,
            "sealed": sealed,
        });
        // The till's verdict on the link: connected and the host not silent.
        let online = self.p.link.verdict(now).usable();
        // The store-and-forward queue is read only when the host is unreachable.
        let (queued, oldest) = if online {
            (0, None)
        } else {
            match self.p.store.call(|db| db.card_saf_queue()).await {
                Ok(q) => q,
                Err(e) => {
                    let _ = reply.send(Err(SaleError::Store(e)));
                    return;
                }
            }
        };
        match card_path(online, &self.p.card.saf, amount, queued, oldest, now) {
            CardPath::Online => {
                let (m, actions) = OnlineSale::start_card(txn, card_json, self.p.policy, now);
                self.launch(
                    Flow::Online(m),
                    actions,
                    reply,
                    &super::say(posd_core::i18n::Msg::DoingAuthorizeCard),
                    Some(digest),
                )
                .await;
                return;
            }
            CardPath::Refuse(r) => {
                log::info!("card store-and-forward refused: {}", r.code());
                let text = super::say(r.msg());
                self.ui(UiEvent::Notice { text: text.clone() });
                let _ = reply.send(Err(SaleError::HostUnreachable(text)));
                return;
            }
            CardPath::StoreAndForward => {}
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
            text: self.with_receipt_note(&super::say(posd_core::i18n::Msg::ResultApprovedStored)),
            approved: true,
        });
        let _ = reply.send(Ok(SaleReply::of(
            &txn,
            SaleOutcome::Approved { host_ref: None },
        )));
    }
}
