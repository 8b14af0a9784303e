//! receipts
pub mod charset;
pub mod emulator;
pub mod escpos_enc;
pub mod layout;
pub mod printer;
pub mod render;
