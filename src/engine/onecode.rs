//! One code, one sale, and what the cashier is told (issue 15 items 3–4): the digest of a
//! code or card in flight, the refusal naming the transaction it already pays, the sale
//! recovered after a restart, the last refusal for `status`, and "receipt waiting" with a
//! result. The sentences are `posd_core::display::notices`'.

use super::{Engine, SaleError};
use crate::clock::now_ms;
use posd_core::code_guard::CodeDigest;
use posd_core::control::CodeRefusal;
use posd_core::display::{notices, UiEvent};
use posd_core::till::{route, CodeRoute};
use posd_core::txn::{short_ref, Transaction};

impl Engine {
    /// The digest naming what pays: an online payment code, or a card's PAN; None for what
    /// never waits for the host (P1 codes, receipts, garbage). The clear text is not kept.
    pub(super) fn code_digest(&self, text: &str) -> Option<CodeDigest> {
        let code = text.trim_end_matches(['\r', '\n']);
        match route(code, &self.p.patterns) {
            CodeRoute::Online { .. } => Some(self.p.code_key.payment_code(code)),
            CodeRoute::Card => posd_core::card::track::parse_swipe(code)
                .ok()
                .map(|card| self.p.code_key.card(&card.pan)),
            _ => None,
        }
    }

    /// The transaction in flight that this code or card already pays, if any (an index
    /// lookup in `codes_in_flight`; never a scan of the journal).
    pub(super) async fn in_flight_for(&self, text: &str) -> Option<SaleError> {
        let digest = self.code_digest(text)?;
        let found = self
            .p
            .store
            .call(move |db| db.txn_for_code(&digest.0))
            .await;
        match found {
            Ok(Some(t)) => Some(in_flight_error(&t)),
            Ok(None) => None,
            Err(e) => {
                log::warn!("cannot check whether the code is in flight: {e}");
                None
            }
        }
    }

    /// The refusal naming `txn_id`, read back from the journal for its amount and state.
    pub(super) async fn code_in_flight_error(&self, txn_id: String) -> SaleError {
        let key = txn_id.clone();
        match self.p.store.call(move |db| db.txn(&key)).await {
            Ok(Some(t)) => in_flight_error(&t),
            _ => SaleError::CodeInFlight {
                message: notices::code_in_flight(
                    crate::lang::current(),
                    "",
                    &txn_id,
                    "?",
                    posd_core::txn::TxnState::Pending,
                ),
                txn_id,
            },
        }
    }

    /// A code or card refused: said on the displays and kept for `status`.
    pub(super) fn refused(&self, e: &SaleError, txn_id: Option<String>) {
        let text = e.to_string();
        self.ui(UiEvent::Notice {
            text: notices::refused(crate::lang::current(), &text),
        });
        let txn_id = txn_id.or_else(|| match e {
            SaleError::CodeInFlight { txn_id, .. } => Some(txn_id.clone()),
            _ => None,
        });
        self.note_refusal(e.code(), &text, txn_id);
    }

    /// Keeps the last refusal for `status.last_refusal`.
    pub(super) fn note_refusal(&self, code: &str, reason: &str, txn_id: Option<String>) {
        self.p.refusals.send_replace(Some(CodeRefusal {
            code: code.to_string(),
            reason: reason.to_string(),
            txn_id,
            at: now_ms(),
        }));
    }

    /// "receipt waiting: paper out" while the printer cannot print what a result earns.
    pub(super) fn receipt_waiting(&self) -> Option<String> {
        let h = self.p.printer_health.as_ref()?.borrow().clone();
        notices::receipt_waiting(crate::lang::current(), h.state)
    }

    /// A result as the cashier reads it: "APPROVED — receipt waiting: paper out" while the
    /// receipt it earned cannot print.
    pub(super) fn with_receipt_note(&self, text: &str) -> String {
        match self.receipt_waiting() {
            Some(w) => format!("{text} — {w}"),
            None => text.to_string(),
        }
    }

    /// Tells every display that a sale from the last run is being resolved.
    pub(super) fn announce_recovered(&self, t: &Transaction) {
        let amount = format!("{} {}", t.currency.format(t.amount), t.currency);
        let short = short_ref(&t.id);
        let said = notices::recovered_sale(posd_core::i18n::Language::En, &short, &amount);
        log::warn!(txn_id = t.id.to_string(); "{said}");
        self.ui(UiEvent::Recovered {
            txn_id: t.id.to_string(),
            short_ref: short,
            amount,
        });
    }
}

fn in_flight_error(t: &Transaction) -> SaleError {
    let amount = format!("{} {}", t.currency.format(t.amount), t.currency);
    SaleError::CodeInFlight {
        txn_id: t.id.to_string(),
        message: notices::code_in_flight(
            crate::lang::current(),
            &short_ref(&t.id),
            &t.id.to_string(),
            &amount,
            t.state,
        ),
    }
}
