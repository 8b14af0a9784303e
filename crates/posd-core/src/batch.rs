//! End-of-day batch totals (Z report), with no I/O (DESIGN §1.5, docs/payments.md).
//!
//! Why it exists: at the end of the day the shop and the platform must agree on how much money
//! moved. The terminal sums its journal per kind, method, channel and state; the money that
//! counts (`net`) is approved and offline-approved sales minus approved refunds. The host
//! computes the same `net` from its own ledger and reports any difference. This module is the
//! terminal's half of that rule, shared by the store (which selects the batch) and the tests.

use crate::txn::{Transaction, TxnKind, TxnState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of the Z report: count and amount of one kind/method/channel/state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZLine {
    pub kind: String,
    pub method: String,
    pub channel: String,
    pub state: String,
    pub count: u64,
    pub amount: i64,
}

/// The Z report journaled (in `detail`) and sent with the `batch_close` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZTotals {
    pub batch_no: u64,
    /// Transactions whose first event has `from_seq < seq <= upto_seq` are in the batch.
    pub from_seq: u64,
    pub upto_seq: u64,
    pub opened_at: u64,
    pub closed_at: u64,
    pub currency: String,
    pub rows: Vec<ZLine>,
    /// Money per `"{method}/{channel}"`: sales in, refunds out.
    pub net: BTreeMap<String, i64>,
    /// Signed money per transaction (0 for those that moved none).
    pub txns: BTreeMap<String, i64>,
    pub sales_count: u64,
    pub sales_amount: i64,
    pub refunds_count: u64,
    pub refunds_amount: i64,
    #[serde(default)]
    pub voids_count: u64,
    #[serde(default)]
    pub voids_amount: i64,
    pub net_total: i64,
}

/// The `net` key of a transaction.
pub fn net_key(method: &str, channel: Option<&str>) -> String {
    format!("{method}/{}", channel.unwrap_or(""))
}

/// The money one transaction moved, as the terminal sees it now. A voided (offline) sale
/// counts as sold and its void takes it back, so a void in a later batch than its sale shows
/// there as money going out, and one in the same batch nets to zero.
pub fn signed_net(t: &Transaction) -> i64 {
    let sold = matches!(
        t.state,
        TxnState::Approved | TxnState::ApprovedOffline | TxnState::Settled | TxnState::Voided
    );
    match t.kind {
        TxnKind::Sale if sold => t.amount,
        TxnKind::Refund if t.state == TxnState::Approved => -t.amount,
        TxnKind::Void if t.state == TxnState::Voided => -t.amount,
        _ => 0,
    }
}

/// Sums a batch.
pub fn totals(
    txns: &[Transaction],
    batch_no: u64,
    from_seq: u64,
    upto_seq: u64,
    opened_at: u64,
    closed_at: u64,
    currency: &str,
) -> ZTotals {
    let mut rows: BTreeMap<(String, String, String, String), (u64, i64)> = BTreeMap::new();
    let mut z = ZTotals {
        batch_no,
        from_seq,
        upto_seq,
        opened_at,
        closed_at,
        currency: currency.to_string(),
        rows: Vec::new(),
        net: BTreeMap::new(),
        txns: BTreeMap::new(),
        sales_count: 0,
        sales_amount: 0,
        refunds_count: 0,
        refunds_amount: 0,
        voids_count: 0,
        voids_amount: 0,
        net_total: 0,
    };
    for t in txns {
        if t.kind == TxnKind::BatchClose {
            continue;
        }
        let r = rows
            .entry((
                t.kind.as_str().to_string(),
                t.method.as_str().to_string(),
                t.channel.clone().unwrap_or_default(),
                t.state.as_str().to_string(),
            ))
            .or_default();
        r.0 += 1;
        r.1 += t.amount;
        let n = signed_net(t);
        z.txns.insert(t.id.to_string(), n);
        if n != 0 || matches!(t.kind, TxnKind::Sale | TxnKind::Refund | TxnKind::Void) {
            *z.net
                .entry(net_key(t.method.as_str(), t.channel.as_deref()))
                .or_default() += n;
        }
        if n > 0 {
            z.sales_count += 1;
            z.sales_amount += n;
        } else if t.kind == TxnKind::Void && n < 0 {
            z.voids_count += 1;
            z.voids_amount -= n;
        } else if n < 0 {
            z.refunds_count += 1;
            z.refunds_amount -= n;
        }
        z.net_total += n;
    }
    z.rows = rows
        .into_iter()
        .map(|((kind, method, channel, state), (count, amount))| ZLine {
            kind,
            method,
            channel,
            state,
            count,
            amount,
        })
        .collect();
    z
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::txn::Method;

    fn t(
        kind: TxnKind,
        method: Method,
        ch: &str,
        state: TxnState,
        amount: i64,
        n: u8,
    ) -> Transaction {
        let mut x = Transaction::new(
            kind,
            method,
            amount,
            Currency::from_code("CNY").unwrap(),
            state,
            1_000 + u64::from(n),
            [n; 10],
        );
        x.channel = Some(ch.into());
        x
    }

    #[test]
    fn net_counts_money_that_moved() {
        let txns = vec![
            t(
                TxnKind::Sale,
                Method::PaymentCode,
                "wechat",
                TxnState::Approved,
                1000,
                1,
            ),
            t(
                TxnKind::Sale,
                Method::PaymentCode,
                "wechat",
                TxnState::Declined,
                700,
                2,
            ),
            t(
                TxnKind::Sale,
                Method::PaymentCode,
                "wechat",
                TxnState::Reversed,
                300,
                3,
            ),
            t(
                TxnKind::Sale,
                Method::OfflineCode,
                "p1",
                TxnState::Settled,
                250,
                4,
            ),
            t(
                TxnKind::Sale,
                Method::OfflineCode,
                "p1",
                TxnState::Voided,
                90,
                5,
            ),
            t(
                TxnKind::Refund,
                Method::PaymentCode,
                "wechat",
                TxnState::Approved,
                400,
                6,
            ),
            t(
                TxnKind::Refund,
                Method::PaymentCode,
                "wechat",
                TxnState::Declined,
                50,
                7,
            ),
            t(
                TxnKind::Sale,
                Method::MerchantQr,
                "emv_mpm",
                TxnState::Closed,
                10,
                8,
            ),
            t(
                TxnKind::Void,
                Method::OfflineCode,
                "p1",
                TxnState::Voided,
                90,
                9,
            ),
        ];
        let z = totals(&txns, 1, 0, 20, 0, 5, "CNY");
        assert_eq!(z.net["payment_code/wechat"], 600);
        assert_eq!(z.net["offline_code/p1"], 250);
        assert_eq!(z.net["merchant_qr/emv_mpm"], 0);
        assert_eq!(z.net_total, 850);
        // The voided sale counts as sold and its void takes it back.
        assert_eq!((z.sales_count, z.sales_amount), (3, 1340));
        assert_eq!((z.refunds_count, z.refunds_amount), (1, 400));
        assert_eq!((z.voids_count, z.voids_amount), (1, 90));
        assert_eq!(z.txns.len(), 9);
        let declined = z
            .rows
            .iter()
            .find(|r| r.state == "declined" && r.kind == "sale")
            .unwrap();
        assert_eq!((declined.count, declined.amount), (1, 700));
    }
}
