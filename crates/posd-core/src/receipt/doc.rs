//! The receipt each transaction earns, the Z report of a batch and the pay slip: what the
//! journal stores in a print job, built from the transaction alone (pure).
//!
//! The journal inserts a job in the same SQLite transaction as the state that earns it, so it
//! calls [`receipt_for`] on the writer thread; the printer task turns a [`PrintDoc`] into bytes
//! with [`doc_bytes`].

use super::{
    self as receipt, CopyKind, LocalTime, PayMethod, ReceiptConfig, ReceiptData, ReceiptKind,
    ReceiptStatus,
};
use crate::txn::{Method, Transaction, TxnKind, TxnState};

/// What the store needs to owe a receipt for a state change.
#[derive(Debug, Clone)]
pub struct ReceiptCtx {
    pub terminal: String,
    pub utc_offset_s: i32,
}

/// The receipt a transaction state deserves, if any (pure).
pub fn receipt_for(txn: &Transaction, ctx: &ReceiptCtx, reprint: bool) -> Option<ReceiptData> {
    let (kind, status) = match (txn.kind, txn.state) {
        (TxnKind::Sale, TxnState::Approved) => (ReceiptKind::Sale, ReceiptStatus::Approved),
        (TxnKind::Sale, TxnState::ApprovedOffline) => {
            (ReceiptKind::Sale, ReceiptStatus::ApprovedOffline)
        }
        (TxnKind::Sale, TxnState::Declined) => (ReceiptKind::Sale, ReceiptStatus::Declined),
        (TxnKind::Sale, TxnState::Reversed) => (ReceiptKind::Reversal, ReceiptStatus::Reversed),
        (TxnKind::Refund, TxnState::Approved) => (ReceiptKind::Refund, ReceiptStatus::Refund),
        (TxnKind::Refund, TxnState::Declined) => (ReceiptKind::Refund, ReceiptStatus::Declined),
        (TxnKind::Void, TxnState::Voided) => (ReceiptKind::Void, ReceiptStatus::Void),
        _ => return None,
    };
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
    let channel = match txn.channel.as_deref() {
        Some("wechat") => "WeChat Pay",
        Some("alipay") => "Alipay",
        Some("unionpay") => "UnionPay",
        Some("emv_cpm") => "EMV QR",
        Some("p1") => "Offline code",
        Some(other) => other,
        None => "",
    }
    .to_string();
    let mut notes = Vec::new();
    if let (TxnState::Declined | TxnState::Reversed | TxnState::Voided, Some(r)) =
        (txn.state, &txn.reason)
    {
        notes.push(r.clone());
    }
    if let Some(h) = &txn.host_ref {
        notes.push(format!("Host ref {h}"));
    }
    Some(ReceiptData {
        kind,
        status,
        terminal_id: ctx.terminal.clone(),
        // People read the short tail (the random part of the UUIDv7); the QR has it all.
        txn_ref: {
            let id = txn.id.simple().to_string();
            id[id.len().saturating_sub(12)..].to_string()
        },
        receipt_ref: crate::codes::format_receipt_ref(&ctx.terminal, &txn.id.to_string()),
        original_ref,
        method,
        channel,
        masked: txn.code_masked.clone().unwrap_or_default(),
        amount_minor: txn.amount,
        currency: txn.currency.code().to_string(),
        exponent: txn.currency.exponent(),
        at: LocalTime {
            unix_secs: (txn.updated_at / 1000) as i64,
            utc_offset_secs: ctx.utc_offset_s,
        },
        copy: CopyKind::Merchant,
        reprint,
        notes,
    })
}

/// What a print job holds: a transaction receipt (stored as before) or a Z report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum PrintDoc {
    Receipt(ReceiptData),
    Z { z_report: receipt::ZReport },
    PaySlip { pay_slip: receipt::PaySlip },
}

/// The Z report a batch close prints (pure): the money rows of the totals.
pub fn z_report_for(
    z: &crate::batch::ZTotals,
    ctx: &ReceiptCtx,
    currency: crate::money::Currency,
) -> receipt::ZReport {
    let at = |ms: u64| LocalTime {
        unix_secs: (ms / 1000) as i64,
        utc_offset_secs: ctx.utc_offset_s,
    };
    let rows = z
        .rows
        .iter()
        .filter_map(|r| {
            let state = match (r.kind.as_str(), r.state.as_str()) {
                ("sale", "approved") => ReceiptStatus::Approved,
                ("sale", "approved_offline" | "settled" | "voided") => {
                    ReceiptStatus::ApprovedOffline
                }
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
        rows,
    }
}

/// The ESC/POS bytes of any job.
pub fn doc_bytes(doc: &PrintDoc, cfg: &ReceiptConfig) -> Result<Vec<u8>, receipt::EncodeError> {
    match doc {
        PrintDoc::Receipt(d) => job_bytes(d, cfg),
        PrintDoc::Z { z_report } => receipt::encode_all(
            &[receipt::layout_z(z_report, cfg)],
            &receipt::PrinterProfile::from_config(cfg),
        ),
        PrintDoc::PaySlip { pay_slip } => receipt::encode_all(
            &[receipt::layout_pay_slip(pay_slip, cfg)],
            &receipt::PrinterProfile::from_config(cfg),
        ),
    }
}

/// The ESC/POS bytes of a job: every configured copy of the receipt.
pub fn job_bytes(data: &ReceiptData, cfg: &ReceiptConfig) -> Result<Vec<u8>, receipt::EncodeError> {
    let copies = receipt::layout_copies(data, cfg);
    receipt::encode_all(&copies, &receipt::PrinterProfile::from_config(cfg))
}
