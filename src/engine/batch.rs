//! The batch close (DESIGN §1.5): the till's preconditions, the Z report journaled and queued
//! for the printer in one SQLite transaction, and the host's reconciliation of it.

use super::{rand10, Engine, SaleError};
use crate::clock::now_ms;
use posd_core::control::BatchReply;
use posd_core::display::UiEvent;
use posd_core::txn::{Method, Transaction, TxnKind, TxnState};

impl Engine {
    pub(super) async fn batch_close(&mut self) -> Result<BatchReply, SaleError> {
        // Local and immediate (issue 15): what still talks to the host is carried into the
        // next batch by the journal (`Db::batch_close`), whatever the link's state.
        let now = now_ms();
        let mut t = Transaction::new(
            TxnKind::BatchClose,
            Method::None,
            0,
            self.p.currency,
            TxnState::Closed,
            now,
            rand10(),
        );
        t.channel = None;
        let (t, seq) = self.p.store.call(move |db| db.batch_close(t)).await?;
        self.p.link.kick();
        let carried = t
            .detail
            .as_ref()
            .and_then(|d| d.get("carried_count"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        log::info!(txn_id = t.id.to_string(), seq = seq; "batch closed ({carried} transaction(s) in flight carried into the next batch)");
        self.ui(UiEvent::Notice {
            text: super::say(posd_core::i18n::Msg::NoticeBatchClosed),
        });
        Ok(BatchReply {
            txn_id: t.id.to_string(),
            seq,
            business_day: Some(self.p.zone.business_day(t.created_at)),
            report: serde_json::from_value(t.detail.clone().unwrap_or_default()).map_err(|e| {
                SaleError::Refused(super::say_with(
                    posd_core::i18n::Msg::ZUnreadable,
                    &[("error", &e)],
                ))
            })?,
        })
    }

    pub(super) async fn batch_result(
        &mut self,
        txn_id: String,
        reconciled: bool,
        detail: serde_json::Value,
    ) {
        let key = txn_id.clone();
        let t = match self.p.store.call(move |db| db.txn(&key)).await {
            Ok(Some(t)) if t.kind == TxnKind::BatchClose => t,
            Ok(_) => {
                log::warn!("batch result for unknown batch {txn_id}: ignored");
                return;
            }
            Err(e) => {
                log::error!("batch result for {txn_id} not recorded: {e}");
                return;
            }
        };
        if t.state != TxnState::Closed {
            log::info!(txn_id = txn_id.as_str(); "batch result ignored: batch already {}", t.state.as_str());
            return;
        }
        let mut t = t;
        t.state = if reconciled {
            TxnState::Reconciled
        } else {
            TxnState::Mismatch
        };
        if !reconciled {
            t.reason = Some(format!("host reports a mismatch: {detail}"));
            log::warn!(txn_id = txn_id.as_str(); "batch close does not match the host: {detail}");
        }
        if let Some(d) = t.detail.as_mut() {
            d["host"] = detail;
        }
        t.updated_at = now_ms();
        match self.p.store.call(move |db| db.record(&t)).await {
            Ok(_) => self.p.link.kick(),
            Err(e) => log::error!("batch result for {txn_id} not recorded: {e}"),
        }
    }
}
