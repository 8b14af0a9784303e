//! Receipts (issues 7 and 16): what a sale, refund, void, reversal or Z report looks like on
//! paper, the ESC/POS bytes that print it for a printer model, and a renderer that shows those
//! bytes as a picture without a printer. Pure: the printer transports and the durable queue are
//! the product's shells. Every printed word is in [`labels`].
//!
//! The pipeline, each step usable on its own:
//!
//! ```text
//! Transaction --doc::receipt_for()--> ReceiptData / ZReport + ReceiptConfig
//!     --layout()/layout_z()-->  Receipt            (pure: sanitised, fitted lines + QR)
//!     --encode(.., &PrinterProfile)-->  Vec<u8>   (ESC/POS job: init, code page, text, QR, cut)
//!     --render_png()/render_text()-->  picture    (interprets the same bytes)
//! ```
//!
//! See `docs/receipts.md`.

pub mod charset;
pub mod doc;
pub mod escpos_enc;
pub mod kinds;
pub mod labels;
pub mod layout;
pub mod model;
pub mod paper;
pub mod render;
pub mod warnings;

pub use charset::TextEncoding;
pub use doc::{
    doc_bytes, earns_receipt, job_bytes, owed_on_change, pay_slip_of, receipt_for, receipt_of,
    z_report_for, z_report_of, DrawerPolicy, PrintDoc, ReceiptCtx,
};
pub use escpos_enc::{encode, encode_all, EncodeError, PrinterProfile};
pub use labels::{labels, Labels};
pub use layout::{
    layout, layout_copies, layout_pay_slip, layout_z, CopyKind, DrawerOn, DrawerPin, LocalTime,
    PaperWidth, PayMethod, PaySlip, Receipt, ReceiptConfig, ReceiptData, ReceiptKind,
    ReceiptStatus, ZReport, ZRow,
};
pub use model::PrinterModel;
pub use render::{render_image, render_png, render_text, RenderError, RenderOptions};
pub use warnings::{config_warnings, reported_name_warnings};
