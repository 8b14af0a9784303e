//! The receipt each transaction earns, the Z report of a batch and the pay slip: what the
//! journal stores in a print job, built from the transaction alone (pure).
//!
//! The journal inserts a job in the same SQLite transaction as the state that earns it, so it
//! calls [`receipt_for`] on the writer thread; the printer task turns a [`PrintDoc`] into bytes
//! with [`doc_bytes`].

use super::{
    self as receipt, CopyKind, DrawerOn, DrawerPin, PayMethod, ReceiptConfig, ReceiptData,
    ReceiptKind, ReceiptStatus,
};
use crate::txn::{Method, Transaction, TxnKind, TxnState};

/// What the store needs to owe a receipt (and a drawer pulse) for a state change.
#[derive(Debug, Clone, Default)]
pub struct ReceiptCtx {
    pub terminal: String,
    /// The shop's time zone: each printed time carries the offset in force at that instant.
    pub zone: crate::zone::ShopZone,
    /// When the cash drawer opens.
    pub drawer: DrawerPolicy,
    /// The shop's language when a document is owed: a print job keeps it, so a receipt
    /// printed late (paper out, then a language push) says what was in force when it was made.
    pub language: crate::i18n::Language,
}

/// When the cash drawer opens: once per approved sale, as its own job (`[receipt]`
/// `drawer_kick`, `drawer_on`, `cash_like`, `drawer_pin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrawerPolicy {
    pub enabled: bool,
    pub on: DrawerOn,
    pub cash_like: Vec<Method>,
    pub pin: DrawerPin,
}

impl DrawerPolicy {
    pub fn from_config(cfg: &ReceiptConfig) -> DrawerPolicy {
        DrawerPolicy {
            enabled: cfg.drawer_kick,
            on: cfg.drawer_on,
            cash_like: cfg.cash_like.clone(),
            pin: cfg.drawer_pin,
        }
    }

    /// Whether this sale, paid this way, opens the drawer at all.
    pub fn opens_for(&self, method: Method) -> bool {
        self.enabled
            && method != Method::None
            && match self.on {
                DrawerOn::All => true,
                DrawerOn::CashLike => self.cash_like.contains(&method),
            }
    }
}

fn approved(s: TxnState) -> bool {
    matches!(s, TxnState::Approved | TxnState::ApprovedOffline)
}

/// What a state change owes the printer, drawer first (pure): the drawer pulse when a sale
/// becomes approved (online or offline) and the policy says so, and the receipt the new state
/// earns. `prev` is the state the journal held before (`None`: a new transaction); a state
/// written again owes nothing again.
pub fn owed_on_change(
    prev: Option<TxnState>,
    txn: &Transaction,
    ctx: &ReceiptCtx,
) -> Vec<PrintDoc> {
    let mut out = Vec::new();
    if prev == Some(txn.state) {
        return out;
    }
    if txn.kind == TxnKind::Sale
        && approved(txn.state)
        && !prev.is_some_and(|p| approved(p) || p == TxnState::Settled)
        && ctx.drawer.opens_for(txn.method)
    {
        out.push(PrintDoc::Drawer {
            drawer: ctx.drawer.pin,
        });
    }
    if let Some(r) = receipt_for(txn, ctx, false) {
        out.push(PrintDoc::Receipt(r));
    }
    out
}

/// The kind and status a transaction's receipt shows. `any`: every final state (reprints and
/// rendering); otherwise only the states that earn a receipt when they are reached.
fn kind_status(txn: &Transaction, any: bool) -> Option<(ReceiptKind, ReceiptStatus)> {
    let earned = match (txn.kind, txn.state) {
        (TxnKind::Sale, TxnState::Approved) => Some((ReceiptKind::Sale, ReceiptStatus::Approved)),
        (TxnKind::Sale, TxnState::ApprovedOffline) => {
            Some((ReceiptKind::Sale, ReceiptStatus::ApprovedOffline))
        }
        (TxnKind::Sale, TxnState::Declined) => Some((ReceiptKind::Sale, ReceiptStatus::Declined)),
        (TxnKind::Sale, TxnState::Reversed) => {
            Some((ReceiptKind::Reversal, ReceiptStatus::Reversed))
        }
        (TxnKind::Refund, TxnState::Approved) => Some((ReceiptKind::Refund, ReceiptStatus::Refund)),
        (TxnKind::Refund, TxnState::Declined) => {
            Some((ReceiptKind::Refund, ReceiptStatus::Declined))
        }
        (TxnKind::Void, TxnState::Voided) => Some((ReceiptKind::Void, ReceiptStatus::Void)),
        _ => None,
    };
    if earned.is_some() || !any {
        return earned;
    }
    match (txn.kind, txn.state) {
        (TxnKind::Sale, TxnState::Settled) => Some((ReceiptKind::Sale, ReceiptStatus::Settled)),
        (TxnKind::Sale, TxnState::Voided) => Some((ReceiptKind::Sale, ReceiptStatus::Voided)),
        (TxnKind::Sale, TxnState::SettlementRejected) => {
            Some((ReceiptKind::Sale, ReceiptStatus::Rejected))
        }
        (TxnKind::Sale, TxnState::Closed) => Some((ReceiptKind::Sale, ReceiptStatus::NotPaid)),
        (TxnKind::Sale, TxnState::Refused) => Some((ReceiptKind::Sale, ReceiptStatus::Refused)),
        (TxnKind::Refund, TxnState::Refused) => Some((ReceiptKind::Refund, ReceiptStatus::Refused)),
        _ => None,
    }
}

/// Whether reaching this state earns the transaction a receipt (what [`receipt_for`] prints
/// and the journal's "newest receipt" follows), whatever the printer and its settings.
pub fn earns_receipt(txn: &Transaction) -> bool {
    kind_status(txn, false).is_some()
}

/// The short reference people read: the last 12 hex digits of the UUIDv7 (its random part).
fn short_ref(id: &uuid::Uuid) -> String {
    crate::txn::short_ref(id)
}

/// The receipt a transaction state earns when it is reached, if any (pure).
pub fn receipt_for(txn: &Transaction, ctx: &ReceiptCtx, reprint: bool) -> Option<ReceiptData> {
    build_receipt(txn, ctx, reprint, false)
}

/// The receipt of a transaction in any final state — settled, voided, rejected, closed unpaid
/// and refused included — for a reprint (mark it: [`PrintDoc::mark_reprint`]) or a rendering
/// (pure).
pub fn receipt_of(txn: &Transaction, ctx: &ReceiptCtx) -> Option<ReceiptData> {
    build_receipt(txn, ctx, false, true)
}

fn build_receipt(
    txn: &Transaction,
    ctx: &ReceiptCtx,
    reprint: bool,
    any: bool,
) -> Option<ReceiptData> {
    let (kind, status) = kind_status(txn, any)?;
    let method = match txn.method {
        Method::PaymentCode => PayMethod::PaymentCode,
        Method::OfflineCode => PayMethod::OfflineCode,
        Method::MerchantQr => PayMethod::MerchantCode,
        Method::Card => PayMethod::Card,
        Method::None => return None,
    };
    let original_ref = txn
        .detail
        .as_ref()
        .filter(|_| matches!(txn.kind, TxnKind::Refund | TxnKind::Void))
        .and_then(|d| d.get("original"))
        .and_then(|o| o.as_str())
        .map(|o| {
            let simple: String = o.chars().filter(|c| *c != '-').collect();
            simple
                .chars()
                .skip(simple.chars().count().saturating_sub(12))
                .collect::<String>()
        });
    let mut notes = Vec::new();
    if let (
        TxnState::Declined
        | TxnState::Reversed
        | TxnState::Voided
        | TxnState::SettlementRejected
        | TxnState::Refused
        | TxnState::Closed,
        Some(r),
    ) = (txn.state, &txn.reason)
    {
        notes.push(r.clone());
    }
    if let Some(h) = &txn.host_ref {
        notes.push(format!("{} {h}", receipt::labels::labels().note_host_ref));
    }
    Some(ReceiptData {
        kind,
        status,
        terminal_id: ctx.terminal.clone(),
        txn_ref: short_ref(&txn.id),
        receipt_ref: crate::codes::format_receipt_ref(&ctx.terminal, &txn.id.to_string()),
        original_ref,
        method,
        // The journal's key; layout prints the name people know (receipt::labels).
        channel: txn.channel.clone().unwrap_or_default(),
        masked: txn.code_masked.clone().unwrap_or_default(),
        amount_minor: txn.amount,
        currency: txn.currency.code().to_string(),
        exponent: txn.currency.exponent(),
        at: ctx.zone.local_time(txn.updated_at),
        copy: CopyKind::Merchant,
        reprint,
        printer_fault: false,
        notes,
    })
}

/// The pay slip of a merchant-presented order (the code it offered), for printing at the
/// order's start and for reprints.
pub fn pay_slip_of(txn: &Transaction, ctx: &ReceiptCtx) -> Option<receipt::PaySlip> {
    if txn.method != Method::MerchantQr {
        return None;
    }
    let qr = txn.detail.as_ref()?.get("qr")?.as_str()?.to_string();
    Some(receipt::PaySlip {
        terminal_id: ctx.terminal.clone(),
        txn_ref: short_ref(&txn.id),
        amount_minor: txn.amount,
        currency: txn.currency.code().to_string(),
        exponent: txn.currency.exponent(),
        qr,
        at: ctx.zone.local_time(txn.created_at),
        reprint: false,
        printer_fault: false,
    })
}

/// The Z report of a batch close journaled earlier (its `detail` holds the totals).
pub fn z_report_of(close: &Transaction, ctx: &ReceiptCtx) -> Option<receipt::ZReport> {
    if close.kind != TxnKind::BatchClose {
        return None;
    }
    let z: crate::batch::ZTotals = serde_json::from_value(close.detail.clone()?).ok()?;
    Some(z_report_for(&z, ctx, close.currency))
}

/// What a print job holds: a transaction receipt (stored as before), a Z report, a pay slip or
/// a drawer pulse.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum PrintDoc {
    Receipt(ReceiptData),
    Z {
        z_report: receipt::ZReport,
    },
    PaySlip {
        pay_slip: receipt::PaySlip,
    },
    /// Open the cash drawer: at most once, never as a reprint.
    Drawer {
        drawer: DrawerPin,
    },
}

impl PrintDoc {
    /// A drawer pulse: delivered at most once (a pulse that may have gone out is never sent
    /// again — the drawer must not open twice for one sale).
    pub fn is_drawer(&self) -> bool {
        matches!(self, PrintDoc::Drawer { .. })
    }

    /// Marks the document as a reprint someone asked for.
    pub fn mark_reprint(&mut self) {
        self.set_marks(true, false);
    }

    /// Marks the document as printed again because the printer may have cut the first print
    /// off (`REPRINT — printer fault`).
    pub fn mark_printer_fault(&mut self) {
        self.set_marks(true, true);
    }

    fn set_marks(&mut self, reprint: bool, fault: bool) {
        match self {
            PrintDoc::Receipt(d) => {
                d.reprint |= reprint;
                d.printer_fault |= fault;
            }
            PrintDoc::Z { z_report } => {
                z_report.reprint |= reprint;
                z_report.printer_fault |= fault;
            }
            PrintDoc::PaySlip { pay_slip } => {
                pay_slip.reprint |= reprint;
                pay_slip.printer_fault |= fault;
            }
            PrintDoc::Drawer { .. } => {}
        }
    }

    /// What kind of document it is, for machines (`receipt`, `z_report`, `pay_slip`, `drawer`).
    pub fn kind(&self) -> &'static str {
        match self {
            PrintDoc::Receipt(_) => "receipt",
            PrintDoc::Z { .. } => "z_report",
            PrintDoc::PaySlip { .. } => "pay_slip",
            PrintDoc::Drawer { .. } => "drawer",
        }
    }

    /// The ESC/POS bytes of the job in parts the printer can confirm one by one: each copy of
    /// a receipt, the Z report, the pay slip, the drawer pulse.
    pub fn parts(&self, cfg: &ReceiptConfig) -> Result<Vec<Vec<u8>>, receipt::EncodeError> {
        let profile = receipt::PrinterProfile::from_config(cfg);
        match self {
            PrintDoc::Receipt(d) => receipt::layout_copies(d, cfg)
                .iter()
                .map(|r| receipt::encode(r, &profile))
                .collect(),
            PrintDoc::Z { z_report } => Ok(vec![receipt::encode(
                &receipt::layout_z(z_report, cfg),
                &profile,
            )?]),
            PrintDoc::PaySlip { pay_slip } => Ok(vec![receipt::encode(
                &receipt::layout_pay_slip(pay_slip, cfg),
                &profile,
            )?]),
            PrintDoc::Drawer { drawer } => Ok(vec![receipt::escpos_enc::drawer_bytes(*drawer)]),
        }
    }
}

/// The Z report a batch close prints (pure): the money rows of the totals.
pub fn z_report_for(
    z: &crate::batch::ZTotals,
    ctx: &ReceiptCtx,
    currency: crate::money::Currency,
) -> receipt::ZReport {
    let at = |ms: u64| ctx.zone.local_time(ms);
    let rows = z
        .rows
        .iter()
        .filter_map(|r| {
            let state = match (r.kind.as_str(), r.state.as_str()) {
                ("sale", "approved") => ReceiptStatus::Approved,
                ("sale", "approved_offline") => ReceiptStatus::ApprovedOffline,
                ("sale", "settled") => ReceiptStatus::Settled,
                ("sale", "voided") => ReceiptStatus::Voided,
                ("sale", "settlement_rejected") => ReceiptStatus::Rejected,
                ("sale", "declined") => ReceiptStatus::Declined,
                ("sale", "reversed") => ReceiptStatus::Reversed,
                ("refund", "approved") => ReceiptStatus::Refund,
                ("void", "voided") => ReceiptStatus::Void,
                _ => return None,
            };
            let method = match Method::parse(&r.method)? {
                Method::PaymentCode => PayMethod::PaymentCode,
                Method::OfflineCode => PayMethod::OfflineCode,
                Method::MerchantQr => PayMethod::MerchantCode,
                Method::Card => PayMethod::Card,
                Method::None => return None,
            };
            Some(receipt::ZRow {
                method,
                channel: r.channel.clone(),
                state,
                count: r.count,
                amount_minor: r.amount,
                currency: currency.code().to_string(),
                exponent: currency.exponent(),
            })
        })
        .collect();
    receipt::ZReport {
        terminal_id: ctx.terminal.clone(),
        batch: z.batch_no.to_string(),
        from: at(z.opened_at),
        to: at(z.closed_at),
        printed_at: at(z.closed_at),
        business_day: Some(ctx.zone.business_day(z.closed_at)),
        rows,
        carried_count: z.carried_count,
        carried_refs: z
            .carried_txns
            .iter()
            .take(crate::batch::CARRIED_LIST_MAX)
            .map(|id| match uuid::Uuid::parse_str(id) {
                Ok(u) => crate::txn::short_ref(&u),
                Err(_) => id.clone(),
            })
            .collect(),
        carried_in_count: z.carried_in_count,
        reprint: false,
        printer_fault: false,
    }
}

/// The ESC/POS bytes of any job (its parts, one after the other).
pub fn doc_bytes(doc: &PrintDoc, cfg: &ReceiptConfig) -> Result<Vec<u8>, receipt::EncodeError> {
    Ok(doc.parts(cfg)?.concat())
}

/// The ESC/POS bytes of a job: every configured copy of the receipt.
pub fn job_bytes(data: &ReceiptData, cfg: &ReceiptConfig) -> Result<Vec<u8>, receipt::EncodeError> {
    doc_bytes(&PrintDoc::Receipt(data.clone()), cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn ctx(drawer: bool, on: DrawerOn) -> ReceiptCtx {
        ReceiptCtx {
            terminal: "T1".into(),
            zone: Default::default(),
            drawer: DrawerPolicy {
                enabled: drawer,
                on,
                cash_like: vec![Method::OfflineCode],
                pin: DrawerPin::Pin2,
            },
            language: Default::default(),
        }
    }

    fn txn(kind: TxnKind, method: Method, state: TxnState) -> Transaction {
        Transaction::new(
            kind,
            method,
            500,
            Currency::from_code("CNY").unwrap(),
            state,
            1_000_000,
            [3; 10],
        )
    }

    fn drawers(docs: &[PrintDoc]) -> usize {
        docs.iter().filter(|d| d.is_drawer()).count()
    }

    #[test]
    fn the_drawer_opens_once_per_approved_sale() {
        let c = ctx(true, DrawerOn::All);
        let sale = txn(
            TxnKind::Sale,
            Method::OfflineCode,
            TxnState::ApprovedOffline,
        );
        let owed = owed_on_change(None, &sale, &c);
        assert_eq!(drawers(&owed), 1);
        assert!(owed[0].is_drawer(), "the drawer goes first");
        assert_eq!(owed.len(), 2);
        // Settled or voided later, written again: nothing more.
        for later in [
            TxnState::Settled,
            TxnState::Voided,
            TxnState::ApprovedOffline,
        ] {
            let t = Transaction {
                state: later,
                ..sale.clone()
            };
            assert!(owed_on_change(Some(TxnState::ApprovedOffline), &t, &c).is_empty());
        }
        // Online: approved after authorizing/pending.
        let online = txn(TxnKind::Sale, Method::Card, TxnState::Approved);
        assert_eq!(
            drawers(&owed_on_change(Some(TxnState::Pending), &online, &c)),
            1
        );
        // Refunds, voids, declines never.
        for t in [
            txn(TxnKind::Refund, Method::Card, TxnState::Approved),
            txn(TxnKind::Void, Method::OfflineCode, TxnState::Voided),
            txn(TxnKind::Sale, Method::Card, TxnState::Declined),
        ] {
            assert_eq!(drawers(&owed_on_change(None, &t, &c)), 0, "{:?}", t.kind);
        }
        // Cash-like only: the card sale does not open it, the offline code does.
        let cl = ctx(true, DrawerOn::CashLike);
        assert_eq!(
            drawers(&owed_on_change(Some(TxnState::Pending), &online, &cl)),
            0
        );
        assert_eq!(drawers(&owed_on_change(None, &sale, &cl)), 1);
        // No drawer configured.
        assert_eq!(
            drawers(&owed_on_change(None, &sale, &ctx(false, DrawerOn::All))),
            0
        );
    }

    #[test]
    fn every_final_state_has_a_receipt_to_reprint() {
        let c = ctx(false, DrawerOn::All);
        let cases = [
            (TxnKind::Sale, TxnState::Approved, ReceiptStatus::Approved),
            (
                TxnKind::Sale,
                TxnState::ApprovedOffline,
                ReceiptStatus::ApprovedOffline,
            ),
            (TxnKind::Sale, TxnState::Settled, ReceiptStatus::Settled),
            (TxnKind::Sale, TxnState::Voided, ReceiptStatus::Voided),
            (
                TxnKind::Sale,
                TxnState::SettlementRejected,
                ReceiptStatus::Rejected,
            ),
            (TxnKind::Sale, TxnState::Declined, ReceiptStatus::Declined),
            (TxnKind::Sale, TxnState::Reversed, ReceiptStatus::Reversed),
            (TxnKind::Sale, TxnState::Closed, ReceiptStatus::NotPaid),
            (TxnKind::Sale, TxnState::Refused, ReceiptStatus::Refused),
            (TxnKind::Refund, TxnState::Approved, ReceiptStatus::Refund),
            (TxnKind::Refund, TxnState::Declined, ReceiptStatus::Declined),
            (TxnKind::Void, TxnState::Voided, ReceiptStatus::Void),
        ];
        for (kind, state, want) in cases {
            let t = txn(kind, Method::OfflineCode, state);
            let r = receipt_of(&t, &c).unwrap_or_else(|| panic!("{kind:?} {state:?}"));
            assert_eq!(r.status, want, "{kind:?} {state:?}");
            assert!(!r.reprint);
        }
        // Only the states reached at the time earn one by themselves.
        let settled = txn(TxnKind::Sale, Method::OfflineCode, TxnState::Settled);
        assert!(receipt_for(&settled, &c, false).is_none());
        assert!(receipt_of(&txn(TxnKind::Sale, Method::Card, TxnState::Pending), &c).is_none());
    }

    #[test]
    fn marks_apply_to_every_document_but_the_drawer() {
        let c = ctx(false, DrawerOn::All);
        let mut r = PrintDoc::Receipt(
            receipt_of(&txn(TxnKind::Sale, Method::Card, TxnState::Approved), &c).unwrap(),
        );
        r.mark_printer_fault();
        match &r {
            PrintDoc::Receipt(d) => assert!(d.reprint && d.printer_fault),
            other => panic!("{other:?}"),
        }
        let mut d = PrintDoc::Drawer {
            drawer: DrawerPin::Pin5,
        };
        d.mark_printer_fault();
        assert_eq!(
            d,
            PrintDoc::Drawer {
                drawer: DrawerPin::Pin5
            }
        );
        // Old jobs read back as before; a drawer job reads back as a drawer job.
        let back: PrintDoc = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert!(back.is_drawer());
        let back: PrintDoc = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn pay_slips_and_z_reports_are_found_again() {
        let c = ctx(false, DrawerOn::All);
        let mut order = txn(TxnKind::Sale, Method::MerchantQr, TxnState::Closed);
        assert!(pay_slip_of(&order, &c).is_none());
        order.detail = Some(serde_json::json!({"qr": "000201...6304ABCD"}));
        assert_eq!(pay_slip_of(&order, &c).unwrap().qr, "000201...6304ABCD");
        let sale = txn(TxnKind::Sale, Method::OfflineCode, TxnState::Settled);
        let z = crate::batch::totals([(1, &sale)], 4, 0, 1, 10, 20, "CNY");
        let mut close = txn(TxnKind::BatchClose, Method::None, TxnState::Reconciled);
        close.detail = Some(serde_json::to_value(&z).unwrap());
        let report = z_report_of(&close, &c).unwrap();
        assert_eq!(report.batch, "4");
        assert_eq!(report.rows[0].state, ReceiptStatus::Settled);
    }
}
