//! Receipts (issue 7): what a sale, refund, void, reversal or Z report looks like on paper, the
//! ESC/POS bytes that print it, the printers that take them, and a renderer that shows those
//! bytes as a picture without a printer.
//!
//! The pipeline, each step usable on its own:
//!
//! ```text
//! ReceiptData / ZReport + ReceiptConfig
//!     --layout()/layout_z()-->  Receipt            (pure: sanitised, fitted lines + QR)
//!     --encode(.., &PrinterProfile)-->  Vec<u8>   (ESC/POS job: init, code page, text, QR, cut)
//!     --Printer::print()-->  Printed | Fault(..)  (TCP 9100, file, serial, USB; DLE EOT status)
//!     --render_png()/render_text()-->  picture    (interprets the same bytes)
//! ```
//!
//! The durable print queue keeps either the `ReceiptData` (serde) or the encoded bytes, calls
//! [`Printer::print`], and on [`PrintOutcome::Fault`] waits and retries the whole job.
//! See `docs/receipts.md`.

pub mod charset;
pub mod emulator;
pub mod escpos_enc;
pub mod layout;
pub mod printer;
pub mod render;

pub use charset::TextEncoding;
pub use escpos_enc::{encode, encode_all, DrawerPin, EncodeError, PrinterProfile};
pub use layout::{
    layout, layout_copies, layout_pay_slip, layout_z, CopyKind, LocalTime, PaperWidth, PayMethod,
    PaySlip, Receipt, ReceiptConfig, ReceiptData, ReceiptKind, ReceiptStatus, ZReport, ZRow,
};
pub use printer::{
    Fault, PrintOutcome, Printer, PrinterConfig, PrinterStatus, StatusMode, Transport,
};
pub use render::{render_image, render_png, render_text, RenderError, RenderOptions};
