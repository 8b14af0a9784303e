//! Receipts used by the receipt tests: every kind and status, both paper widths, the
//! character sets, native and raster QR.
#![allow(dead_code)]

use posd_core::receipt::charset::TextEncoding;
use posd_core::receipt::layout::*;

pub const UUID: &str = "5f0c2a9e-3b7d-4c1a-9e2f-8d6b4a1c7e30";

pub fn at() -> LocalTime {
    LocalTime {
        unix_secs: 1_795_269_785, // 2026-11-21 14:03:05 UTC
        utc_offset_secs: 8 * 3600,
    }
}

pub fn config(width: PaperWidth, encoding: TextEncoding, native_qr: bool) -> ReceiptConfig {
    ReceiptConfig {
        width,
        encoding,
        native_qr,
        qr_module: if width == PaperWidth::Mm58 { 5 } else { 6 },
        cut: true,
        drawer_kick: true,
        shop_name: "Golden Lotus Noodle Bar".into(),
        address: vec!["12 Harbour Road, Unit 3".into(), "Shenzhen 518000".into()],
        tax_id: "91440300MA5F000X1Q".into(),
        header: vec![],
        footer: vec!["Thank you!".into(), "Keep this receipt for refunds".into()],
        copies: vec![CopyKind::Merchant, CopyKind::Customer],
        ..ReceiptConfig::default()
    }
}

pub fn sale() -> ReceiptData {
    ReceiptData {
        kind: ReceiptKind::Sale,
        status: ReceiptStatus::Approved,
        terminal_id: "T0001".into(),
        txn_ref: "20261121-000042".into(),
        receipt_ref: format!("R1.T0001.{UUID}"),
        original_ref: None,
        method: PayMethod::PaymentCode,
        channel: "WeChat Pay".into(),
        masked: "134567********6789".into(),
        amount_minor: 12_345,
        currency: "CNY".into(),
        exponent: 2,
        at: at(),
        copy: CopyKind::Customer,
        reprint: false,
        printer_fault: false,
        notes: vec![],
    }
}

/// (name, data) of every transaction receipt kind.
pub fn transactions() -> Vec<(&'static str, ReceiptData)> {
    vec![
        ("sale", sale()),
        (
            "sale-offline",
            ReceiptData {
                status: ReceiptStatus::ApprovedOffline,
                method: PayMethod::OfflineCode,
                channel: "P1 offline".into(),
                masked: "user ****5678".into(),
                amount_minor: 350,
                ..sale()
            },
        ),
        (
            "sale-card",
            ReceiptData {
                method: PayMethod::Card,
                channel: "UnionPay".into(),
                masked: "622202******7890".into(),
                amount_minor: 1_999_900,
                copy: CopyKind::Merchant,
                ..sale()
            },
        ),
        (
            "sale-merchant-qr",
            ReceiptData {
                method: PayMethod::MerchantCode,
                channel: "Alipay".into(),
                masked: "order 7731".into(),
                ..sale()
            },
        ),
        (
            "declined",
            ReceiptData {
                status: ReceiptStatus::Declined,
                channel: "Alipay".into(),
                masked: "2840********1234".into(),
                notes: vec!["Reason: insufficient balance".into()],
                ..sale()
            },
        ),
        (
            "reversal",
            ReceiptData {
                kind: ReceiptKind::Reversal,
                status: ReceiptStatus::Reversed,
                notes: vec!["No answer from the host within 45 s".into()],
                ..sale()
            },
        ),
        (
            "refund",
            ReceiptData {
                kind: ReceiptKind::Refund,
                status: ReceiptStatus::Refund,
                txn_ref: "20261121-000057".into(),
                receipt_ref: "R1.T0001.0b1e9f3c-6a2d-4e8b-b7c1-2f5d9a8e6c41".into(),
                original_ref: Some("20261121-000042".into()),
                amount_minor: 5_000,
                ..sale()
            },
        ),
        (
            "void",
            ReceiptData {
                kind: ReceiptKind::Void,
                status: ReceiptStatus::Void,
                method: PayMethod::OfflineCode,
                channel: "P1 offline".into(),
                masked: "user ****5678".into(),
                amount_minor: 350,
                reprint: true,
                ..sale()
            },
        ),
    ]
}

pub fn z_report() -> ZReport {
    let row = |method, channel: &str, state, count, amount_minor| ZRow {
        method,
        channel: channel.into(),
        state,
        count,
        amount_minor,
        currency: "CNY".into(),
        exponent: 2,
    };
    ZReport {
        terminal_id: "T0001".into(),
        batch: "000042".into(),
        from: LocalTime {
            unix_secs: 1_795_190_400,
            utc_offset_secs: 8 * 3600,
        },
        to: at(),
        printed_at: at(),
        // The shop's day of the close, as a daemon's Z report always has it.
        business_day: Some("2026-11-21".into()),
        // Two sales still talking to the host at the close, one carried in from the last one.
        carried_count: 2,
        carried_refs: vec!["0a1b2c3d4e5f".into(), "9f8e7d6c5b4a".into()],
        carried_in_count: 1,
        reprint: false,
        printer_fault: false,
        rows: vec![
            row(
                PayMethod::PaymentCode,
                "WeChat Pay",
                ReceiptStatus::Approved,
                57,
                1_234_550,
            ),
            row(
                PayMethod::PaymentCode,
                "WeChat Pay",
                ReceiptStatus::Refund,
                2,
                8_800,
            ),
            row(
                PayMethod::PaymentCode,
                "Alipay",
                ReceiptStatus::Approved,
                31,
                655_000,
            ),
            row(
                PayMethod::PaymentCode,
                "Alipay",
                ReceiptStatus::Declined,
                3,
                12_000,
            ),
            row(
                PayMethod::OfflineCode,
                "P1 offline",
                ReceiptStatus::ApprovedOffline,
                120,
                42_000,
            ),
            row(
                PayMethod::OfflineCode,
                "P1 offline",
                ReceiptStatus::Void,
                1,
                350,
            ),
            row(
                PayMethod::Card,
                "UnionPay",
                ReceiptStatus::Approved,
                4,
                1_999_900,
            ),
            row(
                PayMethod::Card,
                "UnionPay",
                ReceiptStatus::Reversed,
                1,
                2_500,
            ),
            ZRow {
                currency: "JPY".into(),
                exponent: 0,
                ..row(PayMethod::Card, "JCB", ReceiptStatus::Approved, 2, 15_800)
            },
        ],
    }
}
