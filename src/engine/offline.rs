//! Offline `P1` codes (DESIGN §1.2): verified on the box, every rule checked against the
//! journal inside the SQLite transaction that approves the sale durably with the user's
//! counter (one journal call, one commit); then the host's settlement (its `notify`, or a
//! `query` when that notify was lost).

use super::{clock_trusted, rand10, Engine, Reply, SaleError};
use crate::clock::now_ms;
use crate::store::{Settled, SettlementVerdict, StoreError};
use posd_core::codes::{self, OfflineState};
use posd_core::control::SaleReply;
use posd_core::display::UiEvent;
use posd_core::money::Currency;
use posd_core::txn::{Method, SaleOutcome, Transaction, TxnKind, TxnState};

/// Settlement queries per round.
const SETTLE_BATCH: u32 = 256;

impl Engine {
    /// DESIGN §1.2: verify, check every rule against the journal, approve durably, queue.
    pub(super) async fn start_offline(
        &mut self,
        amount: i64,
        currency: Currency,
        text: &str,
        reply: Reply,
    ) {
        let refuse =
            |this: &Self, code: &'static str, short: &str, message: String, reply: Reply| {
                log::info!("offline code refused: {code}: {message}");
                this.ui(UiEvent::Notice {
                    text: short.to_string(),
                });
                this.note_refusal(code, &message, None);
                let _ = reply.send(Err(SaleError::Offline { code, message }));
            };
        // A code's own refusal, in the shop's language.
        let refuse_code = |this: &Self, r: codes::OfflineReject, reply: Reply| {
            refuse(
                this,
                r.code(),
                &super::say(r.short_msg()),
                r.message_for(crate::lang::current(), currency),
                reply,
            )
        };
        let off = &self.p.offline;
        if !off.enabled {
            refuse(
                self,
                "offline_disabled",
                &super::say(posd_core::i18n::Msg::OfflineNotAccepted),
                super::say(posd_core::i18n::Msg::OfflineWhyDisabled),
                reply,
            );
            return;
        }
        let now = now_ms();
        let now_s = now / 1000;
        let verified = match self.p1.verify(text, now_s, &off.keys, &off.policy) {
            Ok(v) => v,
            Err(r) => return refuse_code(self, r, reply),
        };
        let user = verified.user_id();
        let counter = verified.counter();
        // "Today" is the shop's local day (23, 24 or 25 hours): the totals are kept per UTC
        // quarter hour, and every local midnight in use is on one.
        let day_start = self.p.zone.day_start_ms(now);
        let fingerprint = verified.credential_fingerprint.clone();
        let denylisted =
            off.deny_users.contains(&user) || off.deny_credentials.contains(&fingerprint);
        let trusted = clock_trusted(off.clock, now);
        let limits = off.limits.clone();
        let amount_u = amount.max(0) as u64;
        let mut txn = Transaction::new(
            TxnKind::Sale,
            Method::OfflineCode,
            amount,
            currency,
            TxnState::ApprovedOffline,
            now,
            rand10(),
        );
        txn.channel = Some("p1".into());
        txn.code_masked = Some(format!("P1 user {user} #{counter}"));
        txn.detail = Some(serde_json::json!({
            "p1": verified.text(),
            "user_id": user,
            "counter": counter,
            "credential": fingerprint,
            "issuer_key_id": verified.code.credential.issuer_key_id,
        }));
        let snapshot = txn.clone();
        // Every rule that reads the journal is checked inside the SQLite transaction that
        // records the sale: one journal call, one commit (issue 18).
        let decided = self
            .p
            .store
            .call(move |db| {
                db.record_offline_sale_checked(&snapshot, user, counter, day_start, |snap| {
                    let state = OfflineState {
                        last_counter: snap.last_counter,
                        user_total_today: snap.user_total_today,
                        unsynced_count: snap.unsynced_count,
                        unsynced_amount: snap.unsynced_amount,
                        oldest_unsynced_at: snap.oldest_unsynced_at.map(|ms| ms / 1000),
                        denylisted,
                        clock_trusted: trusted,
                    };
                    codes::check_offline_acceptance(
                        &verified,
                        amount_u,
                        currency.code(),
                        &state,
                        &limits,
                        now_s,
                    )
                })
            })
            .await;
        match decided {
            Ok(Ok(seq)) => {
                log::info!(txn_id = txn.id.to_string(), seq = seq; "offline sale approved");
                self.p.link.kick();
            }
            Ok(Err(r)) => return refuse_code(self, r, reply),
            // The journal's own replay guard: the same refusal as the rules' counter check.
            Err(StoreError::CounterReplayed { counter, last, .. }) => {
                return refuse_code(
                    self,
                    codes::OfflineReject::CounterReplayed {
                        counter,
                        last_seen: last,
                    },
                    reply,
                )
            }
            Err(e) => {
                let _ = reply.send(Err(SaleError::Store(e)));
                return;
            }
        }
        self.ui(UiEvent::Result {
            txn_id: txn.id.to_string(),
            text: self.with_receipt_note(&super::say(posd_core::i18n::Msg::ResultApprovedOffline)),
            approved: true,
        });
        let _ = reply.send(Ok(SaleReply::of(
            &txn,
            SaleOutcome::Approved { host_ref: None },
        )));
    }

    /// The host's verdicts on offline sales at settlement, all in one commit (a burst of
    /// notifies after an outage costs one fsync, not one per sale, while a sale waits behind
    /// them): journaled, visible in `txn show`.
    pub(super) async fn settle(&mut self, verdicts: Vec<SettlementVerdict>) {
        let n = verdicts.len();
        let (asked, outcomes) = match self
            .p
            .store
            .call(move |db| Ok((db.record_settlements(&verdicts, now_ms())?, verdicts)))
            .await
        {
            Ok((o, v)) => (v, o),
            Err(e) => {
                log::error!("settlement of {n} offline sale(s) not recorded: {e}");
                return;
            }
        };
        let mut recorded = false;
        for (v, o) in asked.iter().zip(outcomes) {
            let txn_id = v.txn_id.as_str();
            match o {
                Settled::Recorded(seq) => {
                    recorded = true;
                    log::info!(txn_id = txn_id, seq = seq; "offline sale {}", if v.settled { "settled" } else { "rejected at settlement" });
                }
                Settled::Ignored(state) => {
                    log::info!(txn_id = txn_id; "settlement ignored: transaction is {}", state.as_str())
                }
                Settled::Unknown => {
                    log::warn!("settlement for unknown transaction {txn_id}: ignored")
                }
            }
        }
        if recorded {
            self.p.link.kick();
        }
    }

    /// Asks the host about offline sales it holds but has not settled (its notify may be lost).
    pub(super) async fn settlement_round(&mut self, now: u64) {
        if now < self.next_settle_check || !self.p.link.is_connected() {
            return;
        }
        self.next_settle_check = now + self.p.offline.settle_query_ms;
        self.settle_queries.clear();
        let before = now.saturating_sub(self.p.offline.settle_query_ms);
        let ids = match self
            .p
            .store
            .call(move |db| db.unsettled_offline(before, SETTLE_BATCH))
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                log::error!("cannot list unsettled offline sales: {e}");
                return;
            }
        };
        for (n, id) in ids.into_iter().enumerate() {
            let req_id = format!("{}.settle.{now}.{n}", id.replace('-', ""));
            let req = posd_core::protocol::Request::new(
                req_id.clone(),
                posd_core::protocol::Op::Query,
                id.clone(),
            );
            if self.p.link.send_request(&req).is_ok() {
                self.settle_queries.insert(req_id, id);
            }
        }
    }
}
