//! Receipt layout: the pure core that turns a transaction (or a Z report) and the shop's receipt
//! configuration into a device-independent [`Receipt`] — lines of text already sanitised for the
//! target character set and fitted to the paper's columns, rules, feeds and the QR.
//!
//! No I/O happens here, and nothing here panics on any input: every string from a transaction or
//! from config goes through [`printable`] (control, format and unencodable characters removed or
//! replaced) and every line through width-aware wrapping, so that whatever the encoder later sends
//! is text the printer can print, in the width it has. Amounts are integer minor units formatted
//! with the currency exponent; floats never appear.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::charset::TextEncoding;
pub use super::kinds::{CopyKind, PayMethod, ReceiptKind, ReceiptStatus};
use super::labels::{for_printer, labels, labels_in, Labels};
use super::model::PrinterModel;
pub use super::paper::PaperWidth;

/// Longest receipt reference printed as a QR (bytes). `R1.<terminal>.<uuid>` is ~45.
pub const MAX_QR_REF_LEN: usize = 256;

// ------------------------------------------------------------------------------------------------
// Inputs
// ------------------------------------------------------------------------------------------------

impl ReceiptKind {
    /// Title printed at the top of the receipt.
    pub fn title(self) -> &'static str {
        labels().kind_title(self)
    }
}

impl ReceiptStatus {
    pub fn label(self) -> &'static str {
        labels().status(self)
    }

    /// Sold money as a Z report counts it: approved online or offline, settled later or voided
    /// later (the void takes it back on its own row).
    pub fn is_sale(self) -> bool {
        matches!(
            self,
            ReceiptStatus::Approved
                | ReceiptStatus::ApprovedOffline
                | ReceiptStatus::Settled
                | ReceiptStatus::Voided
        )
    }
}

impl PayMethod {
    pub fn label(self) -> &'static str {
        labels().method(self)
    }
}

impl CopyKind {
    pub fn label(self) -> &'static str {
        labels().copy(self)
    }
}

/// A moment as the shop sees it: unix seconds plus the UTC offset in force there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalTime {
    pub unix_secs: i64,
    /// Seconds east of UTC (`28800` for China). Clamped to ±18 h when printed.
    pub utc_offset_secs: i32,
}

/// One transaction receipt, as the daemon knows it. The lead's store adapts to this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptData {
    pub kind: ReceiptKind,
    pub status: ReceiptStatus,
    pub terminal_id: String,
    /// Transaction reference shown to people (the journal's id or the host reference).
    pub txn_ref: String,
    /// Text of the QR, `R1.<terminal>.<txn uuid>`: scanning it later finds the transaction.
    pub receipt_ref: String,
    /// For refunds, voids and reversals: the reference of the sale they undo.
    #[serde(default)]
    pub original_ref: Option<String>,
    pub method: PayMethod,
    /// The channel as the journal keeps it (`wechat`, `visa`, `emv_mpm`, ...; older jobs hold
    /// display names); printed with its name from [`labels`], or not at all when it adds
    /// nothing to the method.
    pub channel: String,
    /// Masked payment code or PAN (first 6, last 4). Long digit runs are masked again here.
    pub masked: String,
    pub amount_minor: i64,
    /// ISO 4217 alphabetic code.
    pub currency: String,
    /// Minor-unit exponent of the currency (0 JPY, 2 CNY, 3 KWD).
    pub exponent: u8,
    pub at: LocalTime,
    pub copy: CopyKind,
    /// Printed again on request: marked `REPRINT` under the title.
    #[serde(default)]
    pub reprint: bool,
    /// Printed again because the printer may have cut the first one off: marked
    /// `REPRINT — printer fault` (with `reprint`).
    #[serde(default)]
    pub printer_fault: bool,
    /// Free lines for this receipt only (decline reason, operator, ...).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Why a [`ReceiptData`] is not fit to print as given (see [`ReceiptData::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("receipt reference is empty")]
    EmptyReceiptRef,
    #[error("receipt reference is longer than {MAX_QR_REF_LEN} bytes")]
    ReceiptRefTooLong,
    #[error("receipt reference must be printable ASCII")]
    ReceiptRefNotAscii,
    #[error("currency {0:?} is not three ASCII letters")]
    BadCurrency(String),
    #[error("currency exponent {0} is above 4")]
    BadExponent(u8),
}

impl ReceiptData {
    /// Checks what layout would otherwise have to degrade (the QR is left out when the
    /// reference is unfit, an odd currency prints as `???`). Layout itself never fails.
    pub fn validate(&self) -> Result<(), DataError> {
        validate_ref(&self.receipt_ref)?;
        validate_currency(&self.currency, self.exponent)
    }
}

fn validate_ref(r: &str) -> Result<(), DataError> {
    if r.is_empty() {
        return Err(DataError::EmptyReceiptRef);
    }
    if r.len() > MAX_QR_REF_LEN {
        return Err(DataError::ReceiptRefTooLong);
    }
    if !r.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(DataError::ReceiptRefNotAscii);
    }
    Ok(())
}

fn validate_currency(c: &str, exponent: u8) -> Result<(), DataError> {
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(DataError::BadCurrency(c.chars().take(8).collect()));
    }
    if exponent > 4 {
        return Err(DataError::BadExponent(exponent));
    }
    Ok(())
}

/// End-of-day totals (Z report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZReport {
    pub terminal_id: String,
    /// Batch number or id the host reconciles against.
    pub batch: String,
    pub from: LocalTime,
    pub to: LocalTime,
    pub printed_at: LocalTime,
    /// The shop's business day the batch belongs to (the local date of the close in the shop's
    /// time zone, `2027-03-28`); Z reports stored before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_day: Option<String>,
    pub rows: Vec<ZRow>,
    /// Transactions still talking to the host at the close, carried into the next batch and
    /// counted there (issue 15): how many, and the short references of the first ten.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub carried_count: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried_refs: Vec<String>,
    /// Members of this batch an earlier close carried into it (counted in these totals).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub carried_in_count: u64,
    /// Printed again (by batch number, or after a printer fault).
    #[serde(default)]
    pub reprint: bool,
    #[serde(default)]
    pub printer_fault: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Count and amount of one method/channel/state in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZRow {
    pub method: PayMethod,
    pub channel: String,
    pub state: ReceiptStatus,
    pub count: u64,
    /// Sum in minor units, positive for refunds too (the state says what it is).
    pub amount_minor: i64,
    pub currency: String,
    pub exponent: u8,
}

// ------------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------------

/// `[receipt]` in posd.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptConfig {
    /// 32 (58 mm) or 48 (80 mm).
    pub width: PaperWidth,
    /// Character set the printer takes: gb18030, cp437, cp858, ascii.
    pub encoding: TextEncoding,
    /// Print QR with the printer's own `GS ( k`; false sends a raster image instead.
    pub native_qr: bool,
    /// QR module size in dots (1..=16).
    pub qr_module: u8,
    /// Cut after each copy (printers without a cutter ignore it; set false to save the feed).
    pub cut: bool,
    /// A cash drawer hangs on the printer: it opens once per approved sale, as its own short
    /// job at approval (never inside a receipt, never on a reprint).
    pub drawer_kick: bool,
    /// Which approved sales open it: `all`, or `cash_like` (the methods in `cash_like`).
    pub drawer_on: DrawerOn,
    /// The methods the shop treats like cash (`payment_code`, `offline_code`, `merchant_qr`,
    /// `card`).
    pub cash_like: Vec<crate::txn::Method>,
    /// The connector pin the drawer's solenoid is on (2 or 5).
    pub drawer_pin: DrawerPin,
    /// The printer model (`generic`, `epson_tm_t20`, `epson_tm_t88`, `xprinter_xp58`,
    /// `xprinter_xp80`, `generic_58_zh`): what it can print, see `receipt::model`.
    pub printer_model: PrinterModel,
    pub shop_name: String,
    pub address: Vec<String>,
    /// Printed as `Tax ID: ...` when not empty.
    pub tax_id: String,
    /// Extra lines under the shop's address.
    pub header: Vec<String>,
    /// Lines at the bottom ("Thank you", returns policy, ...).
    pub footer: Vec<String>,
    /// Copies printed per transaction, in order.
    pub copies: Vec<CopyKind>,
    /// The shop's language (`[terminal] language`, not a `[receipt]` key): the words on paper
    /// ([`ReceiptConfig::labels`]). Set by the product from its configuration at print time.
    #[serde(skip)]
    pub language: crate::i18n::Language,
}

impl Default for ReceiptConfig {
    fn default() -> Self {
        ReceiptConfig {
            width: PaperWidth::Mm58,
            encoding: TextEncoding::Gb18030,
            native_qr: true,
            qr_module: 6,
            cut: true,
            drawer_kick: false,
            drawer_on: DrawerOn::All,
            cash_like: vec![
                crate::txn::Method::PaymentCode,
                crate::txn::Method::OfflineCode,
                crate::txn::Method::MerchantQr,
            ],
            drawer_pin: DrawerPin::Pin2,
            printer_model: PrinterModel::Generic,
            shop_name: String::new(),
            address: Vec::new(),
            tax_id: String::new(),
            header: Vec::new(),
            footer: Vec::new(),
            copies: vec![CopyKind::Merchant, CopyKind::Customer],
            language: crate::i18n::Language::En,
        }
    }
}

/// Which connector pin opens the drawer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrawerPin {
    #[default]
    Pin2,
    Pin5,
}

/// Which approved sales open the cash drawer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrawerOn {
    /// Every approved sale.
    #[default]
    All,
    /// Approved sales paid by a method listed in `cash_like`.
    CashLike,
}

/// A `[receipt]` section that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("qr_module must be 1..=16 dots, not {0}")]
    QrModule(u8),
    #[error("copies must list 1 to 4 copies")]
    Copies,
    #[error("{0} has more than {1} lines")]
    TooManyLines(&'static str, usize),
}

impl ReceiptConfig {
    /// The words this printer prints for the shop's language: Chinese only in the printer's
    /// Chinese mode, else English (see `labels::for_printer`).
    pub fn labels(&self) -> &'static Labels {
        labels_in(for_printer(
            self.language,
            self.encoding,
            self.printer_model,
        ))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=16).contains(&self.qr_module) {
            return Err(ConfigError::QrModule(self.qr_module));
        }
        if self.copies.is_empty() || self.copies.len() > 4 {
            return Err(ConfigError::Copies);
        }
        for (name, lines) in [
            ("address", &self.address),
            ("header", &self.header),
            ("footer", &self.footer),
        ] {
            if lines.len() > 8 {
                return Err(ConfigError::TooManyLines(name, 8));
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------------
// Output: the device-independent document
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    Left,
    Center,
    Right,
}

/// Character magnification (ESC/POS `GS !`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextSize {
    Normal,
    /// Double height.
    Tall,
    /// Double width and height: half the columns.
    Big,
}

impl TextSize {
    pub fn width_mult(self) -> u16 {
        match self {
            TextSize::Normal | TextSize::Tall => 1,
            TextSize::Big => 2,
        }
    }
    pub fn height_mult(self) -> u16 {
        match self {
            TextSize::Normal => 1,
            TextSize::Tall | TextSize::Big => 2,
        }
    }
}

/// One printed line (or block) of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// Text that fits in `columns / size.width_mult()` columns and holds only printable characters.
    Text {
        text: String,
        align: Align,
        size: TextSize,
        bold: bool,
    },
    /// A full-width rule made of this character (ASCII).
    Rule(char),
    /// Blank lines.
    Feed(u8),
    /// A QR code carrying this text (printable ASCII, at most [`MAX_QR_REF_LEN`] bytes), centred.
    Qr(String),
}

/// A laid-out receipt, independent of the printer's command language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub width: PaperWidth,
    pub encoding: TextEncoding,
    pub lines: Vec<Line>,
    /// Open the cash drawer when this is printed.
    pub kick_drawer: bool,
}

// ------------------------------------------------------------------------------------------------
// Text helpers (pure, width-aware)
// ------------------------------------------------------------------------------------------------

/// Characters that draw nothing or reorder text: dropped rather than printed as `?`.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFF0}'..='\u{FFF8}'
        | '\u{0300}'..='\u{036F}' | '\u{E0000}'..='\u{E0FFF}')
}

/// ASCII stand-ins for typographic punctuation a character set lacks (our own labels use the em
/// dash; a code page 858 printer prints `-`).
fn ascii_stand_in(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' => "\"",
        '\u{2026}' => "...",
        // Latin letters without their accents (Spanish on a code page or ASCII printer).
        'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => "a",
        'À' | 'Á' | 'Â' | 'Ä' | 'Ã' | 'Å' => "A",
        'è' | 'é' | 'ê' | 'ë' => "e",
        'È' | 'É' | 'Ê' | 'Ë' => "E",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' => "I",
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Õ' => "O",
        'ù' | 'ú' | 'û' | 'ü' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ü' => "U",
        'ç' => "c",
        'Ç' => "C",
        'ñ' => "n",
        'Ñ' => "N",
        _ => return None,
    })
}

/// Makes `s` printable in `enc`: control characters (C0, DEL, C1) and invisible format
/// characters are removed, any whitespace becomes one space, typographic dashes and quotes the
/// set lacks become their ASCII forms, accented Latin letters it lacks lose their accents, other characters the printer's character set lacks
/// become `?`, and the ends are trimmed. The result is safe to encode as-is.
pub fn printable(s: &str, enc: TextEncoding) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_space = true; // trims leading spaces and collapses runs
    for c in s.chars() {
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
            continue;
        }
        if c.is_control() || is_invisible(c) {
            continue;
        }
        if enc.can_print(c) {
            out.push(c);
        } else if let Some(a) = ascii_stand_in(c) {
            out.push_str(a);
        } else {
            out.push('?');
        }
        last_space = false;
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Columns `s` takes on paper (CJK takes two in GB18030 mode).
pub fn text_cols(s: &str, enc: TextEncoding) -> usize {
    s.chars().map(|c| enc.char_cols(c)).sum()
}

/// Splits printable text into lines of at most `cols` columns, at spaces where it can and
/// inside words where it must. Never returns an empty vector for non-empty input.
pub fn wrap(s: &str, cols: usize, enc: TextEncoding) -> Vec<String> {
    let cols = cols.max(2);
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut cur_cols = 0usize;
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let wc = text_cols(word, enc);
        let sep = usize::from(!cur.is_empty());
        if cur_cols + sep + wc <= cols {
            if sep == 1 {
                cur.push(' ');
            }
            cur.push_str(word);
            cur_cols += sep + wc;
            continue;
        }
        if !cur.is_empty() {
            lines.push(std::mem::take(&mut cur));
            cur_cols = 0;
        }
        if wc <= cols {
            cur.push_str(word);
            cur_cols = wc;
            continue;
        }
        // Hard-break a word longer than a line.
        for c in word.chars() {
            let w = enc.char_cols(c);
            if cur_cols + w > cols {
                lines.push(std::mem::take(&mut cur));
                cur_cols = 0;
            }
            cur.push(c);
            cur_cols += w;
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// [`wrap`] keeping at most `max_lines`; a cut is shown with `...` at the end of the last line.
pub fn wrap_capped(s: &str, cols: usize, max_lines: usize, enc: TextEncoding) -> Vec<String> {
    let mut lines = wrap(s, cols, enc);
    if lines.len() > max_lines && max_lines > 0 {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            let room = cols.max(2).saturating_sub(3);
            let mut kept = String::new();
            let mut used = 0;
            for c in last.chars() {
                let w = enc.char_cols(c);
                if used + w > room {
                    break;
                }
                kept.push(c);
                used += w;
            }
            kept.push_str("...");
            *last = kept;
        }
    }
    lines
}

/// Formats integer minor units with the currency exponent: `123456, 2` → `1,234.56`.
/// Exponents above 18 are treated as 18; never uses floating point.
pub fn format_amount(minor: i128, exponent: u8) -> String {
    let exp = u32::from(exponent.min(18));
    let abs = minor.unsigned_abs();
    let div = 10u128.pow(exp);
    let int = (abs / div).to_string();
    let frac = abs % div;
    let mut out = String::with_capacity(int.len() + 8);
    if minor < 0 {
        out.push('-');
    }
    let first = int.len() % 3;
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (i + 3 - first).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if exp > 0 {
        out.push('.');
        out.push_str(&format!("{:0width$}", frac, width = exp as usize));
    }
    out
}

/// `CNY 1,234.56`; a malformed currency code prints as `???`.
pub fn format_money(minor: i128, currency: &str, exponent: u8) -> String {
    let cur = if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        currency.to_ascii_uppercase()
    } else {
        "???".to_string()
    };
    format!("{cur} {}", format_amount(minor, exponent))
}

/// `2026-11-21 14:03:05 +08:00` (civil calendar, proleptic Gregorian; clamped to years 1970..=9999).
pub fn format_time(t: LocalTime) -> String {
    let off = i64::from(t.utc_offset_secs.clamp(-18 * 3600, 18 * 3600));
    let secs = t
        .unix_secs
        .clamp(0, 253_402_300_799)
        .saturating_add(off)
        .max(0);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if off < 0 { '-' } else { '+' };
    let oa = off.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} {sign}{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        oa / 3600,
        (oa % 3600) / 60
    )
}

/// Howard Hinnant's days-to-civil algorithm for non-negative day counts.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Masks any run of 12 or more digits to its first 6 and last 4 (a PAN or payment code that
/// reached us in clear is never printed in clear).
pub fn mask_digits(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let run = &chars[start..i];
            if run.len() >= 12 {
                for (k, c) in run.iter().enumerate() {
                    out.push(if k < 6 || k >= run.len() - 4 { *c } else { '*' });
                }
            } else {
                out.extend(run.iter());
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Builder
// ------------------------------------------------------------------------------------------------

struct Doc {
    width: PaperWidth,
    enc: TextEncoding,
    /// The words in the shop's language.
    l: &'static Labels,
    lines: Vec<Line>,
}

impl Doc {
    fn new(cfg: &ReceiptConfig) -> Self {
        Doc {
            width: cfg.width,
            enc: cfg.encoding,
            l: cfg.labels(),
            lines: Vec::new(),
        }
    }

    fn cols(&self) -> usize {
        usize::from(self.width.columns())
    }

    /// Wrapped text block; `raw` is sanitised here.
    fn text(&mut self, raw: &str, align: Align, size: TextSize, bold: bool, max_lines: usize) {
        let clean = printable(raw, self.enc);
        if clean.is_empty() {
            return;
        }
        let cols = self.cols() / usize::from(size.width_mult());
        for t in wrap_capped(&clean, cols, max_lines, self.enc) {
            self.lines.push(Line::Text {
                text: t,
                align,
                size,
                bold,
            });
        }
    }

    fn center(&mut self, raw: &str, max_lines: usize) {
        self.text(raw, Align::Center, TextSize::Normal, false, max_lines);
    }

    /// `label ........ value`; when they do not fit on one line the value goes right-aligned
    /// underneath, wrapped. A value with nothing printable left makes no row at all.
    fn pair(&mut self, label: &str, value: &str, size: TextSize, bold: bool) {
        let label = printable(label, self.enc);
        let value = printable(value, self.enc);
        if value.is_empty() {
            return;
        }
        let cols = self.cols() / usize::from(size.width_mult());
        let lc = text_cols(&label, self.enc);
        let vc = text_cols(&value, self.enc);
        if lc + 1 + vc <= cols {
            let pad = cols - lc - vc;
            self.lines.push(Line::Text {
                text: format!("{label}{}{value}", " ".repeat(pad)),
                align: Align::Left,
                size,
                bold,
            });
            return;
        }
        self.text(&label, Align::Left, size, bold, 2);
        for t in wrap_capped(&value, cols, 4, self.enc) {
            self.lines.push(Line::Text {
                text: t,
                align: Align::Right,
                size,
                bold,
            });
        }
    }

    fn rule(&mut self, c: char) {
        self.lines.push(Line::Rule(c));
    }

    fn feed(&mut self, n: u8) {
        self.lines.push(Line::Feed(n));
    }

    fn shop_header(&mut self, cfg: &ReceiptConfig) {
        self.text(&cfg.shop_name, Align::Center, TextSize::Tall, true, 3);
        for l in &cfg.address {
            self.center(l, 2);
        }
        if !printable(&cfg.tax_id, self.enc).is_empty() {
            self.center(&format!("{} {}", self.l.tax_id, cfg.tax_id), 2);
        }
        for l in &cfg.header {
            self.center(l, 2);
        }
    }

    fn footer(&mut self, cfg: &ReceiptConfig) {
        for l in &cfg.footer {
            self.center(l, 2);
        }
    }

    /// The reprint mark under a title, if any.
    fn reprint_mark(&mut self, reprint: bool, printer_fault: bool) {
        if printer_fault {
            self.center(self.l.reprint_printer_fault, 2);
        } else if reprint {
            self.center(self.l.reprint, 1);
        }
    }

    /// The receipt reference under its QR, broken only after its `.` and `-` separators so
    /// that every group stays whole and readable at 58 mm (`R1.T0001.5f0c2a9e-3b7d-4c1a-` /
    /// `9e2f-8d6b4a1c7e30`), centred.
    fn reference(&mut self, r: &str) {
        for l in ref_lines(&printable(r, self.enc), self.cols()) {
            self.lines.push(Line::Text {
                text: l,
                align: Align::Center,
                size: TextSize::Normal,
                bold: false,
            });
        }
    }

    fn finish(self, kick_drawer: bool) -> Receipt {
        Receipt {
            width: self.width,
            encoding: self.enc,
            lines: self.lines,
            kick_drawer,
        }
    }
}

/// A merchant-presented code printed for the customer to scan (DESIGN §1.3), where the box has
/// no screen the customer can see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaySlip {
    pub terminal_id: String,
    pub txn_ref: String,
    pub amount_minor: i64,
    pub currency: String,
    pub exponent: u8,
    /// The code's text: an EMVCo payload or the platform's URL.
    pub qr: String,
    pub at: LocalTime,
    /// Printed again (on request, or after a printer fault).
    #[serde(default)]
    pub reprint: bool,
    #[serde(default)]
    pub printer_fault: bool,
}

/// Lays out a pay slip: the amount and the code, nothing that looks like a receipt.
pub fn layout_pay_slip(s: &PaySlip, cfg: &ReceiptConfig) -> Receipt {
    let l = cfg.labels();
    let mut d = Doc::new(cfg);
    d.shop_header(cfg);
    d.rule('-');
    d.text(l.pay_slip_title, Align::Center, TextSize::Big, true, 1);
    d.reprint_mark(s.reprint, s.printer_fault);
    d.feed(1);
    d.text(
        &format_money(i128::from(s.amount_minor), &s.currency, s.exponent),
        Align::Center,
        TextSize::Big,
        true,
        1,
    );
    d.feed(1);
    d.lines.push(Line::Qr(s.qr.clone()));
    d.feed(1);
    d.pair(l.date, &format_time(s.at), TextSize::Normal, false);
    d.pair(l.terminal, &s.terminal_id, TextSize::Normal, false);
    d.pair(l.txn_ref, &s.txn_ref, TextSize::Normal, false);
    d.center(l.pay_slip_not_a_receipt, 1);
    d.feed(1);
    d.finish(false)
}

/// The channel's name on paper, or nothing when it would only repeat the method.
fn channel_shown(l: &Labels, method: PayMethod, channel: &str) -> Option<String> {
    let name = l.channel_name(channel)?;
    (!name.trim().eq_ignore_ascii_case(l.method(method))).then(|| name.into_owned())
}

/// Lines of a receipt reference: whole if it fits, else broken after `.` or `-` (inside a group
/// only when one group alone is wider than the paper).
pub fn ref_lines(r: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(2);
    let mut groups: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in r.chars() {
        cur.push(c);
        if c == '.' || c == '-' {
            groups.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for g in groups {
        if line.chars().count() + g.chars().count() <= cols {
            line.push_str(&g);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for c in g.chars() {
            if line.chars().count() == cols {
                lines.push(std::mem::take(&mut line));
            }
            line.push(c);
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Lays out one copy (the one named in `data.copy`) of a transaction receipt. The cash drawer
/// is never part of a receipt: it is its own job, owed once per sale at approval.
pub fn layout(data: &ReceiptData, cfg: &ReceiptConfig) -> Receipt {
    let l = cfg.labels();
    let mut d = Doc::new(cfg);
    d.shop_header(cfg);
    d.rule('-');
    d.text(
        l.kind_title(data.kind),
        Align::Center,
        TextSize::Big,
        true,
        1,
    );
    d.reprint_mark(data.reprint, data.printer_fault);
    d.feed(1);
    d.pair(l.date, &format_time(data.at), TextSize::Normal, false);
    d.pair(l.terminal, &data.terminal_id, TextSize::Normal, false);
    d.pair(l.txn_ref, &data.txn_ref, TextSize::Normal, false);
    if let Some(orig) = &data.original_ref {
        d.pair(l.original, orig, TextSize::Normal, false);
    }
    d.pair(l.method, l.method(data.method), TextSize::Normal, false);
    if let Some(ch) = channel_shown(l, data.method, &data.channel) {
        d.pair(l.channel, &ch, TextSize::Normal, false);
    }
    let masked_label = if data.method == PayMethod::Card {
        l.card
    } else {
        l.code
    };
    d.pair(
        masked_label,
        &mask_digits(&data.masked),
        TextSize::Normal,
        false,
    );
    d.rule('-');
    d.pair(
        l.total,
        &format_money(i128::from(data.amount_minor), &data.currency, data.exponent),
        TextSize::Tall,
        true,
    );
    d.rule('-');
    d.text(l.status(data.status), Align::Center, TextSize::Big, true, 2);
    for n in data.notes.iter().take(8) {
        // The platform's reference is stored with the English word before it.
        let n = match n.strip_prefix(labels().note_host_ref) {
            Some(rest) if rest.starts_with(' ') => format!("{}{rest}", l.note_host_ref),
            _ => n.clone(),
        };
        d.text(&n, Align::Left, TextSize::Normal, false, 4);
    }
    d.feed(1);
    if validate_ref(&data.receipt_ref).is_ok() {
        d.lines.push(Line::Qr(data.receipt_ref.clone()));
        d.reference(&data.receipt_ref);
    } else {
        d.center(l.ref_unavailable, 1);
    }
    d.feed(1);
    d.footer(cfg);
    d.center(&format!("-- {} --", l.copy(data.copy)), 1);
    d.finish(false)
}

/// Lays out every copy listed in `cfg.copies` (the `copy` field of `data` is ignored).
pub fn layout_copies(data: &ReceiptData, cfg: &ReceiptConfig) -> Vec<Receipt> {
    cfg.copies
        .iter()
        .map(|&copy| {
            let mut one = data.clone();
            one.copy = copy;
            layout(&one, cfg)
        })
        .collect()
}

/// Per-currency totals of a Z report: sales (approved, online or offline), refunds, net.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZTotals {
    pub sales_count: u128,
    pub sales_minor: i128,
    pub refund_count: u128,
    pub refund_minor: i128,
    /// Voids of offline sales: the sale counts where it was approved, its void takes it back
    /// (in the same batch or a later one).
    pub void_count: u128,
    pub void_minor: i128,
}

impl ZTotals {
    pub fn net_minor(&self) -> i128 {
        self.sales_minor
            .saturating_sub(self.refund_minor)
            .saturating_sub(self.void_minor)
    }
}

/// Sums rows per currency (sorted by currency code). Sales count approved online and offline,
/// settled and later-voided rows; declined, reversed and rejected rows are listed on the report
/// but count in neither sales nor refunds; voids take their sale back.
pub fn z_totals(report: &ZReport) -> Vec<(String, u8, ZTotals)> {
    let mut out: Vec<(String, u8, ZTotals)> = Vec::new();
    for r in &report.rows {
        let cur = r.currency.to_ascii_uppercase();
        let idx = match out.iter().position(|(c, _, _)| *c == cur) {
            Some(i) => i,
            None => {
                out.push((cur, r.exponent, ZTotals::default()));
                out.len() - 1
            }
        };
        let t = &mut out[idx].2;
        match r.state {
            s if s.is_sale() => {
                t.sales_count = t.sales_count.saturating_add(u128::from(r.count));
                t.sales_minor = t.sales_minor.saturating_add(i128::from(r.amount_minor));
            }
            ReceiptStatus::Refund => {
                t.refund_count = t.refund_count.saturating_add(u128::from(r.count));
                t.refund_minor = t.refund_minor.saturating_add(i128::from(r.amount_minor));
            }
            ReceiptStatus::Void => {
                t.void_count = t.void_count.saturating_add(u128::from(r.count));
                t.void_minor = t.void_minor.saturating_add(i128::from(r.amount_minor));
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Lays out the end-of-day Z report: rows grouped by currency, then method and channel, with
/// count and amount per state, and per-currency sales / refunds / net.
pub fn layout_z(report: &ZReport, cfg: &ReceiptConfig) -> Receipt {
    let l = cfg.labels();
    let mut d = Doc::new(cfg);
    let cols = d.cols();
    d.shop_header(cfg);
    d.rule('=');
    d.text(l.z_title, Align::Center, TextSize::Big, true, 1);
    d.reprint_mark(report.reprint, report.printer_fault);
    d.feed(1);
    d.pair(l.terminal, &report.terminal_id, TextSize::Normal, false);
    d.pair(l.z_batch, &report.batch, TextSize::Normal, false);
    if let Some(day) = &report.business_day {
        d.pair(l.z_business_day, day, TextSize::Normal, false);
    }
    d.pair(l.z_from, &format_time(report.from), TextSize::Normal, false);
    d.pair(l.z_to, &format_time(report.to), TextSize::Normal, false);
    d.pair(
        l.z_printed,
        &format_time(report.printed_at),
        TextSize::Normal,
        false,
    );

    let mut rows: Vec<&ZRow> = report.rows.iter().collect();
    rows.sort_by(|a, b| {
        (
            a.currency.to_ascii_uppercase(),
            a.method,
            &a.channel,
            a.state,
        )
            .cmp(&(
                b.currency.to_ascii_uppercase(),
                b.method,
                &b.channel,
                b.state,
            ))
    });
    let totals = z_totals(report);
    if rows.is_empty() {
        d.rule('-');
        d.center(l.z_empty, 1);
    }
    for (cur, exp, t) in &totals {
        d.rule('=');
        d.text(cur, Align::Center, TextSize::Tall, true, 1);
        let mut last_group: Option<(PayMethod, &str)> = None;
        for r in rows.iter().filter(|r| r.currency.eq_ignore_ascii_case(cur)) {
            if last_group != Some((r.method, r.channel.as_str())) {
                d.rule('-');
                let group = match channel_shown(l, r.method, &r.channel) {
                    Some(ch) => format!("{} / {ch}", l.method(r.method)),
                    None => l.method(r.method).to_string(),
                };
                d.text(&group, Align::Left, TextSize::Normal, true, 2);
                last_group = Some((r.method, r.channel.as_str()));
            }
            let amount = format_amount(i128::from(r.amount_minor), *exp);
            z_line(&mut d, l.z_state(r.state), r.count.into(), &amount, cols);
        }
        d.rule('-');
        let sales = format_amount(t.sales_minor, *exp);
        let refunds = format_amount(t.refund_minor, *exp);
        z_line(&mut d, l.z_sales, t.sales_count, &sales, cols);
        z_line(&mut d, l.z_refunds, t.refund_count, &refunds, cols);
        if t.void_count > 0 {
            let voids = format_amount(t.void_minor, *exp);
            z_line(&mut d, l.z_voids, t.void_count, &voids, cols);
        }
        d.pair(
            l.z_net,
            &format_money(t.net_minor(), cur, *exp),
            TextSize::Tall,
            true,
        );
    }
    if report.carried_count > 0 || report.carried_in_count > 0 {
        d.rule('-');
    }
    if report.carried_count > 0 {
        let n = report.carried_count.to_string();
        d.pair(l.z_carried, &n, TextSize::Normal, true);
        // Indented under their count, one per line (the references are short hex).
        let indented = |d: &mut Doc, s: &str| {
            let clean = printable(s, d.enc);
            let room = cols.saturating_sub(2).max(1);
            for t in wrap_capped(&clean, room, 2, d.enc) {
                d.lines.push(Line::Text {
                    text: format!("  {t}"),
                    align: Align::Left,
                    size: TextSize::Normal,
                    bold: false,
                });
            }
        };
        for r in &report.carried_refs {
            indented(&mut d, r);
        }
        let listed = u64::try_from(report.carried_refs.len()).unwrap_or(u64::MAX);
        if report.carried_count > listed {
            let more =
                crate::i18n::fill(l.z_carried_more, &[("n", &(report.carried_count - listed))]);
            indented(&mut d, &more);
        }
    }
    if report.carried_in_count > 0 {
        let n = report.carried_in_count.to_string();
        d.pair(l.z_carried_in, &n, TextSize::Normal, false);
    }
    d.rule('=');
    d.feed(1);
    d.footer(cfg);
    d.finish(false)
}

/// `  STATE        count       amount`, count and amount right-aligned in fixed columns; a
/// label too long for its column goes on a line of its own above the numbers. Labels come from
/// the label table, so they are sanitised and measured in columns like any other text.
fn z_line(d: &mut Doc, label: &str, count: u128, amount: &str, cols: usize) {
    let count = count.to_string();
    let amount_w = amount.len().max(12);
    let count_w = 6usize.max(count.len());
    let label_w = cols.saturating_sub(amount_w + count_w + 2);
    let clean = printable(label, d.enc);
    let label = format!("  {clean}");
    let label_cols = text_cols(&label, d.enc);
    let numbers = |lab: &str, lab_cols: usize| {
        let pad = " ".repeat(label_w.saturating_sub(lab_cols));
        format!("{lab}{pad}{count:>count_w$}  {amount:>amount_w$}")
    };
    let text = if label_cols <= label_w {
        numbers(&label, label_cols)
    } else {
        for t in wrap_capped(&clean, cols.saturating_sub(2), 2, d.enc) {
            d.lines.push(Line::Text {
                text: format!("  {t}"),
                align: Align::Left,
                size: TextSize::Normal,
                bold: false,
            });
        }
        numbers("", 0)
    };
    if text_cols(&text, d.enc) <= cols {
        d.lines.push(Line::Text {
            text,
            align: Align::Left,
            size: TextSize::Normal,
            bold: false,
        });
    } else {
        d.pair("", &format!("{count} x {amount}"), TextSize::Normal, false);
    }
}

impl fmt::Display for Receipt {
    /// Plain-text preview of the document (not of the printed bytes; see `render::render_text`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cols = usize::from(self.width.columns());
        for l in &self.lines {
            match l {
                Line::Text {
                    text, align, size, ..
                } => {
                    let room = cols / usize::from(size.width_mult());
                    let w = text_cols(text, self.encoding);
                    let pad = room.saturating_sub(w);
                    let left = match align {
                        Align::Left => 0,
                        Align::Center => pad / 2,
                        Align::Right => pad,
                    };
                    writeln!(f, "{}{}", " ".repeat(left), text)?;
                }
                Line::Rule(c) => writeln!(f, "{}", c.to_string().repeat(cols))?,
                Line::Feed(n) => {
                    for _ in 0..*n {
                        writeln!(f)?;
                    }
                }
                Line::Qr(data) => writeln!(f, "[QR {data}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_use_the_exponent() {
        assert_eq!(format_amount(0, 2), "0.00");
        assert_eq!(format_amount(5, 2), "0.05");
        assert_eq!(format_amount(-5, 2), "-0.05");
        assert_eq!(format_amount(123_456, 2), "1,234.56");
        assert_eq!(format_amount(123_456, 0), "123,456");
        assert_eq!(format_amount(123_456, 3), "123.456");
        assert_eq!(format_amount(1_000, 3), "1.000");
        assert_eq!(format_amount(100, 0), "100");
        assert_eq!(format_amount(1_000_000, 0), "1,000,000");
        assert_eq!(
            format_amount(i128::from(i64::MIN), 2),
            "-92,233,720,368,547,758.08"
        );
        assert_eq!(format_amount(i128::MIN, 255).len(), 47);
    }

    #[test]
    fn time_is_civil_with_offset() {
        let t = LocalTime {
            unix_secs: 1_763_733_785, // 2025-11-21 14:03:05 UTC
            utc_offset_secs: 8 * 3600,
        };
        assert_eq!(format_time(t), "2025-11-21 22:03:05 +08:00");
        let t = LocalTime {
            unix_secs: 951_782_400, // 2000-02-29 00:00:00 UTC
            utc_offset_secs: -5 * 3600 - 1800,
        };
        assert_eq!(format_time(t), "2000-02-28 18:30:00 -05:30");
        let extreme = LocalTime {
            unix_secs: i64::MAX,
            utc_offset_secs: i32::MIN,
        };
        assert_eq!(format_time(extreme), "9999-12-31 05:59:59 -18:00");
    }

    #[test]
    fn printable_strips_controls_and_unencodables() {
        let s = "A\u{1b}@B\tC\n\u{7f}D\u{202e}E\u{0085}F  ";
        assert_eq!(printable(s, TextEncoding::Ascii), "A@B C DE F");
        // Accents the set lacks are dropped (Spanish labels on an ASCII printer); CJK is not Latin.
        assert_eq!(printable("Café 咖啡", TextEncoding::Ascii), "Cafe ??");
        assert_eq!(printable("DEVOLUCIÓN", TextEncoding::Cp437), "DEVOLUCION");
        assert_eq!(printable("DEVOLUCIÓN", TextEncoding::Cp858), "DEVOLUCIÓN");
        assert_eq!(printable("Café 咖啡", TextEncoding::Cp858), "Café ??");
        assert_eq!(printable("Café 咖啡", TextEncoding::Gb18030), "Café 咖啡");
        // Emoji encode to 4 bytes in GB18030: printers that take GB18030 print 2-byte codes only.
        assert_eq!(printable("ok 😀", TextEncoding::Gb18030), "ok ?");
    }

    #[test]
    fn wrap_respects_double_width_cjk() {
        let lines = wrap("咖啡咖啡咖啡咖啡咖啡", 8, TextEncoding::Gb18030);
        assert_eq!(lines, vec!["咖啡咖啡", "咖啡咖啡", "咖啡"]);
        for l in &lines {
            assert!(text_cols(l, TextEncoding::Gb18030) <= 8);
        }
        let lines = wrap("aaa bbb cccccccccccc", 5, TextEncoding::Ascii);
        assert_eq!(lines, vec!["aaa", "bbb", "ccccc", "ccccc", "cc"]);
        let capped = wrap_capped("aaaa bbbb cccc dddd", 6, 2, TextEncoding::Ascii);
        assert_eq!(capped, vec!["aaaa", "bbb..."]);
    }

    #[test]
    fn clear_digit_runs_are_masked() {
        assert_eq!(mask_digits("6222021234567890"), "622202******7890");
        assert_eq!(mask_digits("134567890123456789"), "134567********6789");
        assert_eq!(mask_digits("622202******7890"), "622202******7890");
        assert_eq!(mask_digits("12345678901"), "12345678901");
    }

    fn data(method: PayMethod, channel: &str, masked: &str) -> ReceiptData {
        ReceiptData {
            kind: ReceiptKind::Sale,
            status: ReceiptStatus::Approved,
            terminal_id: "T0001".into(),
            txn_ref: "8d6b4a1c7e30".into(),
            receipt_ref: "R1.T0001.5f0c2a9e-3b7d-4c1a-9e2f-8d6b4a1c7e30".into(),
            original_ref: None,
            method,
            channel: channel.into(),
            masked: masked.into(),
            amount_minor: 1250,
            currency: "CNY".into(),
            exponent: 2,
            at: LocalTime {
                unix_secs: 1_795_269_785,
                utc_offset_secs: 0,
            },
            copy: CopyKind::Customer,
            reprint: false,
            printer_fault: false,
            notes: vec![],
        }
    }

    fn text_of(r: &Receipt) -> String {
        r.to_string()
    }

    #[test]
    fn words_for_people_no_internal_names_no_empty_rows() {
        let cfg = ReceiptConfig::default();
        let card = text_of(&layout(
            &data(PayMethod::Card, "visa", "411111******1111"),
            &cfg,
        ));
        assert!(card.contains("Visa"), "{card}");
        assert!(!card.contains("visa"), "{card}");
        let mqr = text_of(&layout(&data(PayMethod::MerchantCode, "emv_mpm", ""), &cfg));
        assert!(mqr.contains("EMV QR"), "{mqr}");
        assert!(!mqr.contains("emv_mpm"), "{mqr}");
        assert!(
            !mqr.lines().any(|l| l.trim() == "Code"),
            "an empty Code row: {mqr}"
        );
        let p1 = text_of(&layout(
            &data(PayMethod::OfflineCode, "p1", "user ****5678"),
            &cfg,
        ));
        assert_eq!(p1.matches("Offline code").count(), 1, "{p1}");
        assert!(!p1.contains("Channel"), "{p1}");
    }

    #[test]
    fn the_reference_breaks_only_at_its_separators() {
        let r = "R1.T0001.5f0c2a9e-3b7d-4c1a-9e2f-8d6b4a1c7e30";
        let lines = ref_lines(r, 32);
        assert_eq!(
            lines,
            vec!["R1.T0001.5f0c2a9e-3b7d-4c1a-", "9e2f-8d6b4a1c7e30"]
        );
        assert_eq!(lines.concat(), r);
        assert_eq!(ref_lines(r, 48), vec![r.to_string()]);
        // A group wider than the paper is cut inside, and nothing is lost.
        let long = "R1.".to_string() + &"x".repeat(40);
        let lines = ref_lines(&long, 32);
        assert!(lines.iter().all(|l| l.len() <= 32));
        assert_eq!(lines.concat(), long);
    }

    #[test]
    fn a_fault_reprint_says_so_in_every_character_set() {
        for enc in [
            TextEncoding::Gb18030,
            TextEncoding::Cp858,
            TextEncoding::Cp437,
            TextEncoding::Ascii,
        ] {
            let cfg = ReceiptConfig {
                encoding: enc,
                ..ReceiptConfig::default()
            };
            let d = ReceiptData {
                reprint: true,
                printer_fault: true,
                ..data(PayMethod::PaymentCode, "wechat", "134567********6789")
            };
            let t = text_of(&layout(&d, &cfg));
            let want = if enc == TextEncoding::Gb18030 {
                "REPRINT — printer fault"
            } else {
                "REPRINT - printer fault"
            };
            assert!(t.contains(want), "{enc:?}: {t}");
            assert!(!t.contains("*** REPRINT ***"));
        }
    }

    #[test]
    fn z_rows_of_settled_and_voided_sales_have_their_own_words() {
        let row = |state, count| ZRow {
            method: PayMethod::OfflineCode,
            channel: "p1".into(),
            state,
            count,
            amount_minor: 100 * count as i64,
            currency: "CNY".into(),
            exponent: 2,
        };
        let z = ZReport {
            terminal_id: "T1".into(),
            batch: "7".into(),
            from: LocalTime {
                unix_secs: 0,
                utc_offset_secs: 0,
            },
            to: LocalTime {
                unix_secs: 0,
                utc_offset_secs: 0,
            },
            printed_at: LocalTime {
                unix_secs: 0,
                utc_offset_secs: 0,
            },
            business_day: Some("1970-01-01".into()),
            carried_count: 0,
            carried_refs: Vec::new(),
            carried_in_count: 0,
            rows: vec![
                row(ReceiptStatus::Settled, 3),
                row(ReceiptStatus::Voided, 1),
                row(ReceiptStatus::Void, 1),
                row(ReceiptStatus::ApprovedOffline, 2),
            ],
            reprint: false,
            printer_fault: false,
        };
        let t = text_of(&layout_z(&z, &ReceiptConfig::default()));
        assert!(
            t.contains("Business day") && t.contains("1970-01-01"),
            "{t}"
        );
        assert!(t.contains("APPROVED, SETTLED"), "{t}");
        assert!(t.contains("APPROVED, VOIDED"), "{t}");
        assert!(t.contains("APPROVED, UNSETTLED"), "{t}");
        assert!(!t.contains("APPROVED OFFLINE"), "{t}");
        let totals = z_totals(&z);
        // Settled, voided and unsettled sales are sales; the void takes one back.
        assert_eq!(totals[0].2.sales_count, 6);
        assert_eq!(totals[0].2.net_minor(), 600 - 100);
        assert!(!t.contains("Carried"), "nothing carried, nothing said: {t}");

        // Twelve carried at the close: ten named, the rest counted; one carried in.
        let refs: Vec<String> = (0..10).map(|i| format!("{i:012x}")).collect();
        let carried = ZReport {
            carried_count: 12,
            carried_refs: refs.clone(),
            carried_in_count: 1,
            ..z.clone()
        };
        let t = text_of(&layout_z(&carried, &ReceiptConfig::default()));
        assert!(t.contains("Carried to next batch"), "{t}");
        assert!(refs.iter().all(|r| t.contains(r.as_str())), "{t}");
        assert!(t.contains("+2 more") && t.contains("Carried in"), "{t}");
        for lang in [crate::i18n::Language::ZhCn, crate::i18n::Language::Es] {
            let cfg = ReceiptConfig {
                language: lang,
                ..ReceiptConfig::default()
            };
            let t = text_of(&layout_z(&carried, &cfg));
            let more = crate::i18n::tr(lang, crate::i18n::Msg::ZCarriedMore, &[("n", &2)]);
            assert!(t.contains(&more), "{lang}: {t}");
            let carried_in = crate::i18n::text(lang, crate::i18n::Msg::ZCarriedIn);
            assert!(t.contains(carried_in), "{lang}: {t}");
        }
        // The stored form of a report without carried transactions is unchanged.
        let json = serde_json::to_string(&z).unwrap();
        assert!(!json.contains("carried"), "{json}");
    }

    #[test]
    fn config_rejects_unknown_fields_and_bad_widths() {
        let ok: ReceiptConfig = toml::from_str("width = 48\nencoding = \"cp858\"").unwrap();
        assert_eq!(ok.width, PaperWidth::Mm80);
        assert_eq!(ok.encoding, TextEncoding::Cp858);
        assert!(ok.validate().is_ok());
        assert!(toml::from_str::<ReceiptConfig>("width = 40").is_err());
        assert!(toml::from_str::<ReceiptConfig>("colour = \"red\"").is_err());
        assert!(toml::from_str::<ReceiptConfig>("encoding = \"utf8\"").is_err());
        let bad = ReceiptConfig {
            qr_module: 0,
            ..ReceiptConfig::default()
        };
        assert_eq!(bad.validate(), Err(ConfigError::QrModule(0)));
    }
}
