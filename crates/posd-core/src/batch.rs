//! End-of-day batch totals (Z report), with no I/O (DESIGN §1.5, docs/payments.md).
//!
//! Why it exists: at the end of the day the shop and the platform must agree on how much money
//! moved. The terminal sums its journal per kind, method, channel and state; the money that
//! counts (`net`) is approved and offline-approved sales minus approved refunds. The host
//! computes the same `net` from its own ledger and reports any difference. This module is the
//! terminal's half of that rule, shared by the store (which streams the batch through a
//! [`ZBuilder`], one transaction at a time) and the host (which recomputes the
//! [`MembershipDigest`]).
//!
//! The report has a fixed size whatever the batch's size (issue 14): totals plus the number of
//! transactions and a SHA-256 digest over their ordered `(first seq, txn id, signed net)` list,
//! so the host, which holds every event, can recompute the membership and compare, instead of
//! receiving a per-transaction map (43 bytes a sale: a 6,000-sale batch overflowed a 256 KiB
//! MQTT packet).
//!
//! A batch close is local and immediate (issue 15): a transaction still talking to the host at
//! the close (in flight: authorizing, pending, reversing, closing) is not counted at its state
//! of the moment but **carried** into the next batch ([`ZBuilder::carry`]); a transaction
//! belongs to the batch in which it is first seen decided. The report counts the carried ones
//! and names at most [`CARRIED_LIST_MAX`] of them.

use crate::txn::{Transaction, TxnKind, TxnState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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

/// The Z report journaled (in `detail`) and sent with the `batch_close` event. Its size is
/// bounded by the number of kind/method/channel/state combinations, never by the batch's.
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
    /// Transactions in the batch (batch closes excepted).
    #[serde(default)]
    pub txn_count: u64,
    /// Lowercase hex SHA-256 over `"{first_seq} {txn_id} {signed_net}\n"` of every transaction
    /// of the batch in `first_seq` order ([`MembershipDigest`]). Empty in reports journaled
    /// before issue 14 (which carried a per-transaction `txns` map instead).
    #[serde(default)]
    pub txn_digest: String,
    pub sales_count: u64,
    pub sales_amount: i64,
    pub refunds_count: u64,
    pub refunds_amount: i64,
    #[serde(default)]
    pub voids_count: u64,
    #[serde(default)]
    pub voids_amount: i64,
    pub net_total: i64,
    /// Transactions in flight at the close, carried into the next batch (issue 15).
    #[serde(default)]
    pub carried_count: u64,
    /// The first [`CARRIED_LIST_MAX`] of them, in `first_seq` order.
    #[serde(default)]
    pub carried_txns: Vec<String>,
    /// Members of this batch that an earlier close carried into it (counted in the totals and
    /// the digest here).
    #[serde(default)]
    pub carried_in_count: u64,
}

/// Carried transactions a Z report names at most (it counts them all).
pub const CARRIED_LIST_MAX: usize = 10;

/// The `net` key of a transaction.
pub fn net_key(method: &str, channel: Option<&str>) -> String {
    format!("{method}/{}", channel.unwrap_or(""))
}

/// The money one transaction moved, as the terminal sees it now. A voided (offline) sale
/// counts as sold and its void takes it back, so a void in a later batch than its sale shows
/// there as money going out, and one in the same batch nets to zero.
pub fn signed_net(t: &Transaction) -> i64 {
    signed_net_of(t.kind, t.state, t.amount)
}

/// [`signed_net`] from the three fields it reads (what an event carries too).
pub fn signed_net_of(kind: TxnKind, state: TxnState, amount: i64) -> i64 {
    let sold = matches!(
        state,
        TxnState::Approved | TxnState::ApprovedOffline | TxnState::Settled | TxnState::Voided
    );
    match kind {
        TxnKind::Sale if sold => amount,
        TxnKind::Refund if state == TxnState::Approved => -amount,
        TxnKind::Void if state == TxnState::Voided => -amount,
        _ => 0,
    }
}

/// The digest over a batch's membership, fed one transaction at a time in `first_seq` order:
/// constant memory whatever the batch's size. The terminal and the host compute it the same way.
#[derive(Debug, Clone, Default)]
pub struct MembershipDigest {
    hasher: Sha256,
    count: u64,
}

impl MembershipDigest {
    pub fn new() -> MembershipDigest {
        MembershipDigest::default()
    }

    /// One member: the seq of its first event, its id, its signed net.
    pub fn add(&mut self, first_seq: u64, txn_id: &str, net: i64) {
        self.hasher
            .update(format!("{first_seq} {txn_id} {net}\n").as_bytes());
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// (members, lowercase hex SHA-256).
    pub fn finish(self) -> (u64, String) {
        (self.count, hex::encode(self.hasher.finalize()))
    }
}

/// One member of a batch as the store streams it (no detail, no receipt: what the totals read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZMember<'a> {
    pub first_seq: u64,
    pub txn_id: &'a str,
    pub kind: TxnKind,
    pub method: &'a str,
    pub channel: Option<&'a str>,
    pub state: TxnState,
    pub amount: i64,
    pub created_at: u64,
}

/// Sums a batch streamed in `first_seq` order; memory is bounded by the number of distinct
/// kind/method/channel/state lines, not by the number of transactions.
#[derive(Debug, Clone)]
pub struct ZBuilder {
    z: ZTotals,
    lines: BTreeMap<(String, String, String, String), (u64, i64)>,
    digest: MembershipDigest,
    first_created: Option<u64>,
}

impl ZBuilder {
    pub fn new(
        batch_no: u64,
        from_seq: u64,
        upto_seq: u64,
        closed_at: u64,
        currency: &str,
    ) -> ZBuilder {
        ZBuilder {
            z: ZTotals {
                batch_no,
                from_seq,
                upto_seq,
                opened_at: 0,
                closed_at,
                currency: currency.to_string(),
                rows: Vec::new(),
                net: BTreeMap::new(),
                txn_count: 0,
                txn_digest: String::new(),
                sales_count: 0,
                sales_amount: 0,
                refunds_count: 0,
                refunds_amount: 0,
                voids_count: 0,
                voids_amount: 0,
                net_total: 0,
                carried_count: 0,
                carried_txns: Vec::new(),
                carried_in_count: 0,
            },
            lines: BTreeMap::new(),
            digest: MembershipDigest::new(),
            first_created: None,
        }
    }

    /// Adds one transaction of the batch (a batch close is skipped).
    pub fn add(&mut self, t: &ZMember<'_>) {
        if t.kind == TxnKind::BatchClose {
            return;
        }
        self.first_created = Some(
            self.first_created
                .map_or(t.created_at, |c| c.min(t.created_at)),
        );
        let line = self
            .lines
            .entry((
                t.kind.as_str().to_string(),
                t.method.to_string(),
                t.channel.unwrap_or_default().to_string(),
                t.state.as_str().to_string(),
            ))
            .or_default();
        line.0 += 1;
        line.1 = line.1.saturating_add(t.amount);
        let n = signed_net_of(t.kind, t.state, t.amount);
        self.digest.add(t.first_seq, t.txn_id, n);
        let z = &mut self.z;
        if n != 0 || matches!(t.kind, TxnKind::Sale | TxnKind::Refund | TxnKind::Void) {
            let e = z.net.entry(net_key(t.method, t.channel)).or_default();
            *e = e.saturating_add(n);
        }
        if n > 0 {
            z.sales_count += 1;
            z.sales_amount = z.sales_amount.saturating_add(n);
        } else if t.kind == TxnKind::Void && n < 0 {
            z.voids_count += 1;
            z.voids_amount = z.voids_amount.saturating_sub(n);
        } else if n < 0 {
            z.refunds_count += 1;
            z.refunds_amount = z.refunds_amount.saturating_sub(n);
        }
        z.net_total = z.net_total.saturating_add(n);
    }

    /// A member an earlier close carried into this batch, decided since: counted here. Members
    /// must still come in `first_seq` order: carried ones (older) first.
    pub fn add_carried_in(&mut self, t: &ZMember<'_>) {
        self.z.carried_in_count += 1;
        self.add(t);
    }

    /// A transaction still in flight at the close: not counted here, carried into the next
    /// batch (counted, named while under [`CARRIED_LIST_MAX`]).
    pub fn carry(&mut self, txn_id: &str) {
        self.z.carried_count += 1;
        if self.z.carried_txns.len() < CARRIED_LIST_MAX {
            self.z.carried_txns.push(txn_id.to_string());
        }
    }

    /// The earliest creation time among the members so far (the first batch opens with it).
    pub fn first_created(&self) -> Option<u64> {
        self.first_created
    }

    /// The report; `opened_at` is the previous close (or, for the first batch, the first
    /// member's creation, see [`ZBuilder::first_created`]).
    pub fn finish(self, opened_at: u64) -> ZTotals {
        let mut z = self.z;
        z.opened_at = opened_at;
        (z.txn_count, z.txn_digest) = self.digest.finish();
        z.rows = self
            .lines
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
}

/// Sums transactions given with the seq of their first event (tests and small tools; the store
/// streams instead).
pub fn totals<'a>(
    txns: impl IntoIterator<Item = (u64, &'a Transaction)>,
    batch_no: u64,
    from_seq: u64,
    upto_seq: u64,
    opened_at: u64,
    closed_at: u64,
    currency: &str,
) -> ZTotals {
    let mut b = ZBuilder::new(batch_no, from_seq, upto_seq, closed_at, currency);
    for (first_seq, t) in txns {
        let id = t.id.to_string();
        b.add(&ZMember {
            first_seq,
            txn_id: &id,
            kind: t.kind,
            method: t.method.as_str(),
            channel: t.channel.as_deref(),
            state: t.state,
            amount: t.amount,
            created_at: t.created_at,
        });
    }
    b.finish(opened_at)
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
        let z = totals(
            txns.iter().enumerate().map(|(i, t)| (i as u64 + 1, t)),
            1,
            0,
            20,
            0,
            5,
            "CNY",
        );
        assert_eq!(z.net["payment_code/wechat"], 600);
        assert_eq!(z.net["offline_code/p1"], 250);
        assert_eq!(z.net["merchant_qr/emv_mpm"], 0);
        assert_eq!(z.net_total, 850);
        // The voided sale counts as sold and its void takes it back.
        assert_eq!((z.sales_count, z.sales_amount), (3, 1340));
        assert_eq!((z.refunds_count, z.refunds_amount), (1, 400));
        assert_eq!((z.voids_count, z.voids_amount), (1, 90));
        assert_eq!(z.txn_count, 9);
        // The digest is over the ordered (first seq, id, signed net) list, nothing else.
        let mut d = MembershipDigest::new();
        for (i, t) in txns.iter().enumerate() {
            d.add(i as u64 + 1, &t.id.to_string(), signed_net(t));
        }
        assert_eq!(d.finish(), (9, z.txn_digest.clone()));
        // Another net for one member, or another order, is another digest.
        let mut changed = txns.clone();
        changed[1].state = TxnState::Approved;
        let z2 = totals(
            changed.iter().enumerate().map(|(i, t)| (i as u64 + 1, t)),
            1,
            0,
            20,
            0,
            5,
            "CNY",
        );
        assert_ne!(z2.txn_digest, z.txn_digest);
        let z3 = totals(
            txns.iter()
                .rev()
                .enumerate()
                .map(|(i, t)| (i as u64 + 1, t)),
            1,
            0,
            20,
            0,
            5,
            "CNY",
        );
        assert_ne!(z3.txn_digest, z.txn_digest);
        // The empty batch has the digest of nothing.
        let empty = totals(std::iter::empty(), 2, 20, 20, 5, 6, "CNY");
        assert_eq!(
            (empty.txn_count, empty.txn_digest.as_str()),
            (
                0,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
        );
        assert_eq!((z.carried_count, z.carried_in_count), (0, 0));
        let declined = z
            .rows
            .iter()
            .find(|r| r.state == "declined" && r.kind == "sale")
            .unwrap();
        assert_eq!((declined.count, declined.amount), (1, 700));
    }

    #[test]
    fn in_flight_transactions_are_carried_and_counted_where_they_end() {
        let pending = t(
            TxnKind::Sale,
            Method::PaymentCode,
            "wechat",
            TxnState::Authorizing,
            500,
            1,
        );
        let approved = t(
            TxnKind::Sale,
            Method::PaymentCode,
            "wechat",
            TxnState::Approved,
            700,
            2,
        );
        let member = |seq: u64, x: &Transaction, f: &mut dyn FnMut(&ZMember<'_>)| {
            let id = x.id.to_string();
            f(&ZMember {
                first_seq: seq,
                txn_id: &id,
                kind: x.kind,
                method: x.method.as_str(),
                channel: x.channel.as_deref(),
                state: x.state,
                amount: x.amount,
                created_at: x.created_at,
            });
        };
        // Batch 1: the pending sale is carried, not counted.
        let mut b1 = ZBuilder::new(1, 0, 10, 5, "CNY");
        b1.carry(&pending.id.to_string());
        member(4, &approved, &mut |m| b1.add(m));
        let z1 = b1.finish(0);
        assert_eq!(z1.carried_count, 1);
        assert_eq!(z1.carried_txns, [pending.id.to_string()]);
        assert_eq!((z1.txn_count, z1.net_total), (1, 700));
        // Batch 2: it ended approved, and counts here with its own first seq, first.
        let mut done = pending.clone();
        done.state = TxnState::Approved;
        let mut b2 = ZBuilder::new(2, 11, 20, 6, "CNY");
        member(3, &done, &mut |m| b2.add_carried_in(m));
        let z2 = b2.finish(5);
        assert_eq!((z2.carried_in_count, z2.carried_count), (1, 0));
        assert_eq!((z2.txn_count, z2.net_total), (1, 500));
        let mut d = MembershipDigest::new();
        d.add(3, &done.id.to_string(), 500);
        assert_eq!(d.finish().1, z2.txn_digest);
        // However many are carried, the report names at most CARRIED_LIST_MAX.
        let mut b = ZBuilder::new(3, 20, 30, 7, "CNY");
        for i in 0..(CARRIED_LIST_MAX as u64 + 5) {
            b.carry(&format!("t{i}"));
        }
        let z = b.finish(6);
        assert_eq!(z.carried_count, CARRIED_LIST_MAX as u64 + 5);
        assert_eq!(z.carried_txns.len(), CARRIED_LIST_MAX);
    }
}
