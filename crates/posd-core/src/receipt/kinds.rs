//! What a receipt is about — its kind, outcome, way of payment and copy — as plain types: the
//! word table (`labels.rs`) and the layout both use them, neither owns them.

use serde::{Deserialize, Serialize};

/// What happened, which sets the receipt's title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    Sale,
    Refund,
    Void,
    Reversal,
}

/// Outcome printed in large letters; on a Z report, the state a row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    Approved,
    ApprovedOffline,
    /// An offline sale the host settled.
    Settled,
    Declined,
    Reversed,
    Refund,
    Void,
    /// An offline sale voided afterwards (its void takes the money back).
    Voided,
    /// An offline sale the host refused at settlement: no money moved.
    Rejected,
    /// A merchant-presented order closed unpaid.
    NotPaid,
    /// Refused on the box before anything left it.
    Refused,
}

/// The four ways posd takes money (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayMethod {
    /// Customer-presented code verified online.
    PaymentCode,
    /// Customer-presented `P1` code verified offline.
    OfflineCode,
    /// Merchant-presented code.
    MerchantCode,
    Card,
}

/// Which copy this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyKind {
    Merchant,
    Customer,
}
