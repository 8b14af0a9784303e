//! ESC/POS encoding: turns a laid-out [`Receipt`] into the exact bytes a printer gets, for one
//! [`PrinterProfile`] (character set, native or raster QR, cutter, cash drawer).
//!
//! Commands come from the escpos crate's `Printer` writing into an in-memory driver, so the
//! command bytes are the crate's; text bytes are ours ([`TextEncoding::encode`]) because the
//! crate would pass characters its tables lack through as UTF-8. Two commands are written by
//! hand: the raster image `GS v 0` (escpos only offers it behind its `graphics` feature, which
//! pulls every image format) and the drawer kick `ESC p` (escpos 0.20 sends it without the pulse
//! times `t1 t2`, so the printer would eat the next two bytes of the receipt).

use std::cell::RefCell;
use std::rc::Rc;

use escpos::driver::Driver;
use escpos::printer::Printer;
use escpos::utils::{
    JustifyMode, PageCode, Protocol, QRCodeCorrectionLevel, QRCodeModel, QRCodeOption,
    RealTimeStatusRequest,
};
use serde::{Deserialize, Serialize};

use super::charset::TextEncoding;
use super::layout::{Align, DrawerPin, Line, PaperWidth, Receipt, ReceiptConfig, TextSize};

/// QR error correction level used everywhere (M: 15 %, survives a crease).
pub const QR_ECC: QrEcc = QrEcc::M;

/// `ESC p 0 25 250`: 50 ms pulse on drawer pin 2, 500 ms off.
const DRAWER_KICK_PIN2: [u8; 5] = [0x1B, b'p', 0, 25, 250];
/// `ESC p 1 25 250`: the same on pin 5.
const DRAWER_KICK_PIN5: [u8; 5] = [0x1B, b'p', 1, 25, 250];
/// `FS &`: Chinese (double-byte) character mode on.
const FS_KANJI_ON: [u8; 2] = [0x1C, b'&'];
/// `FS .`: Chinese mode off. Printers sold in China start in Chinese mode (and return to it on
/// `ESC @`); without this, single-byte code page text would be read in byte pairs.
const FS_KANJI_OFF: [u8; 2] = [0x1C, b'.'];
/// `GS I 67`: the printer's name (Epson answers `_` name NUL).
pub const PRINTER_NAME_QUERY: [u8; 3] = [0x1D, b'I', 67];

/// The drawer job: `ESC p m 25 250` alone (50 ms pulse, 500 ms off), sent as its own short job
/// at approval — processed in order like any command, so only when the printer is ready.
pub fn drawer_bytes(pin: DrawerPin) -> Vec<u8> {
    match pin {
        DrawerPin::Pin2 => DRAWER_KICK_PIN2.to_vec(),
        DrawerPin::Pin5 => DRAWER_KICK_PIN5.to_vec(),
    }
}

/// `GS ( H 6 0 48 48 d1 d2 d3 d4`: the printer answers `37 22 d1 d2 d3 d4 00` once everything
/// sent before it has printed. `id` bytes must be 0x20..=0x7E.
pub fn process_id_bytes(id: [u8; 4]) -> [u8; 11] {
    let c = |b: u8| b.clamp(0x20, 0x7E);
    [
        0x1D,
        b'(',
        b'H',
        6,
        0,
        48,
        48,
        c(id[0]),
        c(id[1]),
        c(id[2]),
        c(id[3]),
    ]
}

/// QR error correction levels as `GS ( k` numbers them (48..=51).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrEcc {
    L,
    M,
    Q,
    H,
}

impl QrEcc {
    pub fn from_escpos(n: u8) -> Option<QrEcc> {
        match n {
            48 => Some(QrEcc::L),
            49 => Some(QrEcc::M),
            50 => Some(QrEcc::Q),
            51 => Some(QrEcc::H),
            _ => None,
        }
    }
    fn level(self) -> qrcode::EcLevel {
        match self {
            QrEcc::L => qrcode::EcLevel::L,
            QrEcc::M => qrcode::EcLevel::M,
            QrEcc::Q => qrcode::EcLevel::Q,
            QrEcc::H => qrcode::EcLevel::H,
        }
    }
    fn escpos(self) -> QRCodeCorrectionLevel {
        match self {
            QrEcc::L => QRCodeCorrectionLevel::L,
            QrEcc::M => QRCodeCorrectionLevel::M,
            QrEcc::Q => QRCodeCorrectionLevel::Q,
            QrEcc::H => QRCodeCorrectionLevel::H,
        }
    }
}

/// What the printer at hand can do, which the bytes depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterProfile {
    pub width: PaperWidth,
    pub encoding: TextEncoding,
    /// `GS ( k` QR; false sends the QR as a raster image.
    pub native_qr: bool,
    /// QR module size in dots.
    pub qr_module: u8,
    pub cut: bool,
    /// Pin to pulse when a receipt asks for the drawer; `None`: no drawer.
    pub drawer: Option<DrawerPin>,
    /// Send `FS .` before single-byte text: the printer may start in Chinese mode.
    pub cancel_chinese: bool,
}

impl PrinterProfile {
    /// The configuration as the chosen printer model can print it: no native QR or cut where
    /// the model has none (see `warnings::config_warnings` for what that changes).
    pub fn from_config(cfg: &ReceiptConfig) -> Self {
        let spec = cfg.printer_model.spec();
        PrinterProfile {
            width: cfg.width,
            encoding: cfg.encoding,
            native_qr: cfg.native_qr && spec.native_qr,
            qr_module: cfg.qr_module,
            cut: cfg.cut && spec.cutter,
            drawer: cfg.drawer_kick.then_some(cfg.drawer_pin),
            cancel_chinese: spec.chinese_mode != Some(false),
        }
    }
}

/// Why a receipt could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("escpos: {0}")]
    Escpos(String),
    #[error("QR data of {0} bytes cannot be encoded")]
    QrData(usize),
    #[error("QR of {modules} modules does not fit {dots} dots")]
    QrTooWide { modules: usize, dots: u32 },
}

impl From<escpos::errors::PrinterError> for EncodeError {
    fn from(e: escpos::errors::PrinterError) -> Self {
        EncodeError::Escpos(e.to_string())
    }
}

/// Collects what escpos' `Printer` writes.
#[derive(Clone, Default)]
struct MemDriver(Rc<RefCell<Vec<u8>>>);

impl Driver for MemDriver {
    fn name(&self) -> String {
        "memory".to_string()
    }
    fn write(&self, data: &[u8]) -> escpos::errors::Result<()> {
        self.0.borrow_mut().extend_from_slice(data);
        Ok(())
    }
    fn read(&self, _buf: &mut [u8]) -> escpos::errors::Result<usize> {
        Ok(0)
    }
    fn flush(&self) -> escpos::errors::Result<()> {
        Ok(())
    }
}

/// Style the printer is in, so only changes are sent.
struct Style {
    align: Align,
    bold: bool,
    size: TextSize,
}

fn justify(a: Align) -> JustifyMode {
    match a {
        Align::Left => JustifyMode::LEFT,
        Align::Center => JustifyMode::CENTER,
        Align::Right => JustifyMode::RIGHT,
    }
}

/// Encodes one receipt as a complete print job (starts with `ESC @`, ends with the cut).
pub fn encode(receipt: &Receipt, profile: &PrinterProfile) -> Result<Vec<u8>, EncodeError> {
    let driver = MemDriver::default();
    let mut p = Printer::new(driver.clone(), Protocol::default(), None);
    let enc = profile.encoding;
    p.init()?;
    match enc.code_page() {
        None => {
            p.custom(&FS_KANJI_ON)?;
        }
        Some(19) => {
            if profile.cancel_chinese {
                p.custom(&FS_KANJI_OFF)?;
            }
            p.page_code(PageCode::PC858)?;
        }
        Some(_) => {
            if profile.cancel_chinese {
                p.custom(&FS_KANJI_OFF)?;
            }
            p.page_code(PageCode::PC437)?;
        }
    }
    if receipt.kick_drawer {
        match profile.drawer {
            Some(DrawerPin::Pin2) => {
                p.custom(&DRAWER_KICK_PIN2)?;
            }
            Some(DrawerPin::Pin5) => {
                p.custom(&DRAWER_KICK_PIN5)?;
            }
            None => {}
        }
    }
    let mut st = Style {
        align: Align::Left,
        bold: false,
        size: TextSize::Normal,
    };
    let cols = usize::from(profile.width.columns());
    for line in &receipt.lines {
        match line {
            Line::Text {
                text,
                align,
                size,
                bold,
            } => {
                set_style(&mut p, &mut st, *align, *bold, *size)?;
                let mut bytes = enc.encode(text);
                bytes.push(b'\n');
                p.custom(&bytes)?;
            }
            Line::Rule(c) => {
                set_style(&mut p, &mut st, Align::Left, false, TextSize::Normal)?;
                let c = if c.is_ascii_graphic() { *c } else { '-' };
                let mut bytes = c.to_string().repeat(cols).into_bytes();
                bytes.push(b'\n');
                p.custom(&bytes)?;
            }
            Line::Feed(n) => {
                if *n > 0 {
                    p.feeds(*n)?;
                }
            }
            Line::Qr(data) => {
                set_style(&mut p, &mut st, Align::Center, false, TextSize::Normal)?;
                let module = profile.qr_module.clamp(1, 16);
                if profile.native_qr {
                    if data.is_empty() || data.len() > 7089 {
                        return Err(EncodeError::QrData(data.len()));
                    }
                    p.qrcode_option(
                        data,
                        QRCodeOption::new(QRCodeModel::Model2, module, QR_ECC.escpos()),
                    )?;
                } else {
                    let raster = qr_raster(data.as_bytes(), module, profile.width.dots())?;
                    p.custom(&raster)?;
                }
                // Quiet zone under the symbol before the next line of text.
                p.custom(&[0x1B, b'J', module.saturating_mul(4)])?;
            }
        }
    }
    set_style(&mut p, &mut st, Align::Left, false, TextSize::Normal)?;
    if profile.cut {
        p.feeds(1)?;
        p.cut()?;
    } else {
        p.feeds(4)?;
    }
    p.print()?;
    drop(p);
    let bytes = driver.0.borrow().clone();
    Ok(bytes)
}

/// `DLE EOT 1`, `DLE EOT 2`, `DLE EOT 4`: printer, offline-cause and roll-paper status, as
/// escpos writes them.
pub fn status_query_bytes() -> Vec<u8> {
    const FALLBACK: [u8; 9] = [0x10, 0x04, 1, 0x10, 0x04, 2, 0x10, 0x04, 4];
    let driver = MemDriver::default();
    let mut p = Printer::new(driver.clone(), Protocol::default(), None);
    let built = (|| -> escpos::errors::Result<()> {
        p.real_time_status(RealTimeStatusRequest::Printer)?
            .real_time_status(RealTimeStatusRequest::OfflineCause)?
            .real_time_status(RealTimeStatusRequest::RollPaperSensor)?
            .send_status()?;
        Ok(())
    })();
    drop(p);
    let bytes = driver.0.borrow().clone();
    if built.is_ok() && bytes.len() == FALLBACK.len() {
        bytes
    } else {
        FALLBACK.to_vec()
    }
}

/// Encodes several receipts (e.g. merchant and customer copies) as one job.
pub fn encode_all(receipts: &[Receipt], profile: &PrinterProfile) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    for r in receipts {
        out.extend(encode(r, profile)?);
    }
    Ok(out)
}

fn set_style(
    p: &mut Printer<MemDriver>,
    st: &mut Style,
    align: Align,
    bold: bool,
    size: TextSize,
) -> Result<(), EncodeError> {
    if st.align != align {
        p.justify(justify(align))?;
        st.align = align;
    }
    if st.bold != bold {
        p.bold(bold)?;
        st.bold = bold;
    }
    if st.size != size {
        let w = u8::try_from(size.width_mult()).unwrap_or(1);
        let h = u8::try_from(size.height_mult()).unwrap_or(1);
        p.size(w, h)?;
        st.size = size;
    }
    Ok(())
}

/// QR modules of `data` at `ecc`: (side, row-major dark flags).
pub fn qr_matrix(data: &[u8], ecc: QrEcc) -> Option<(usize, Vec<bool>)> {
    let code = qrcode::QrCode::with_error_correction_level(data, ecc.level()).ok()?;
    let w = code.width();
    let dark = code
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    Some((w, dark))
}

/// The QR as a `GS v 0` raster image, module size reduced if needed to fit `max_dots`.
pub fn qr_raster(data: &[u8], module: u8, max_dots: u32) -> Result<Vec<u8>, EncodeError> {
    let (w, dark) = qr_matrix(data, QR_ECC).ok_or(EncodeError::QrData(data.len()))?;
    let fit = max_dots as usize / w.max(1);
    let m = usize::from(module).min(fit);
    if m == 0 {
        return Err(EncodeError::QrTooWide {
            modules: w,
            dots: max_dots,
        });
    }
    let side = w * m;
    let mut bits = vec![false; side * side];
    for y in 0..side {
        for x in 0..side {
            bits[y * side + x] = dark[(y / m) * w + x / m];
        }
    }
    raster_image(side, side, &bits).ok_or(EncodeError::QrTooWide {
        modules: w,
        dots: max_dots,
    })
}

/// `GS v 0 0 xL xH yL yH d...` for a `width` × `height` bitmap (`true` = black).
pub fn raster_image(width: usize, height: usize, bits: &[bool]) -> Option<Vec<u8>> {
    let xb = width.div_ceil(8);
    let xb16 = u16::try_from(xb).ok()?;
    let y16 = u16::try_from(height).ok()?;
    if bits.len() != width * height {
        return None;
    }
    let mut out = Vec::with_capacity(8 + xb * height);
    out.extend_from_slice(&[0x1D, b'v', b'0', 0]);
    out.extend_from_slice(&xb16.to_le_bytes());
    out.extend_from_slice(&y16.to_le_bytes());
    for y in 0..height {
        for bx in 0..xb {
            let mut byte = 0u8;
            for bit in 0..8 {
                let x = bx * 8 + bit;
                if x < width && bits[y * width + x] {
                    byte |= 0x80 >> bit;
                }
            }
            out.push(byte);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::layout::Line;

    fn receipt(lines: Vec<Line>, kick: bool) -> Receipt {
        Receipt {
            width: PaperWidth::Mm58,
            encoding: TextEncoding::Cp858,
            lines,
            kick_drawer: kick,
        }
    }

    fn profile() -> PrinterProfile {
        PrinterProfile {
            width: PaperWidth::Mm58,
            encoding: TextEncoding::Cp858,
            native_qr: true,
            qr_module: 6,
            cut: true,
            drawer: Some(DrawerPin::Pin2),
            cancel_chinese: false,
        }
    }

    #[test]
    fn job_frame_is_init_codepage_text_cut() {
        let r = receipt(
            vec![Line::Text {
                text: "€5".into(),
                align: Align::Left,
                size: TextSize::Normal,
                bold: false,
            }],
            false,
        );
        let b = encode(&r, &profile()).unwrap();
        assert_eq!(
            b,
            vec![0x1B, b'@', 0x1B, b't', 19, 0xD5, b'5', b'\n', 0x1B, b'd', 1, 0x1D, b'V', b'A', 0]
        );
    }

    #[test]
    fn chinese_mode_is_cancelled_before_a_code_page_unless_the_model_has_none() {
        let r = receipt(vec![], false);
        let zh = PrinterProfile {
            cancel_chinese: true,
            ..profile()
        };
        let b = encode(&r, &zh).unwrap();
        assert_eq!(&b[..7], &[0x1B, b'@', 0x1C, b'.', 0x1B, b't', 19]);
        let b = encode(&r, &profile()).unwrap();
        assert!(!b.windows(2).any(|w| w == FS_KANJI_OFF));
        let gb = PrinterProfile {
            encoding: TextEncoding::Gb18030,
            cancel_chinese: true,
            ..profile()
        };
        let b = encode(&r, &gb).unwrap();
        assert_eq!(&b[..4], &[0x1B, b'@', 0x1C, b'&']);
    }

    #[test]
    fn drawer_job_and_process_id_bytes() {
        assert_eq!(drawer_bytes(DrawerPin::Pin2), vec![0x1B, b'p', 0, 25, 250]);
        assert_eq!(drawer_bytes(DrawerPin::Pin5), vec![0x1B, b'p', 1, 25, 250]);
        assert_eq!(
            process_id_bytes(*b"A001"),
            [0x1D, b'(', b'H', 6, 0, 48, 48, b'A', b'0', b'0', b'1']
        );
        assert_eq!(
            process_id_bytes([0, 0x7F, b'x', b'y'])[7..],
            [0x20, 0x7E, b'x', b'y']
        );
    }

    #[test]
    fn drawer_kick_has_pulse_times() {
        let b = encode(&receipt(vec![], true), &profile()).unwrap();
        assert!(b.windows(5).any(|w| w == DRAWER_KICK_PIN2));
        let mut no_drawer = profile();
        no_drawer.drawer = None;
        let b = encode(&receipt(vec![], true), &no_drawer).unwrap();
        assert!(!b.windows(2).any(|w| w == [0x1B, b'p']));
    }

    #[test]
    fn control_characters_in_a_hand_made_line_do_not_pass() {
        let r = receipt(
            vec![Line::Text {
                text: "a\u{1b}\u{1d}V\u{0}b".into(),
                align: Align::Left,
                size: TextSize::Normal,
                bold: false,
            }],
            false,
        );
        let b = encode(&r, &profile()).unwrap();
        assert!(b.windows(6).any(|w| w == b"a??V?b"));
    }

    #[test]
    fn status_query_is_dle_eot_1_2_4() {
        assert_eq!(
            status_query_bytes(),
            vec![0x10, 0x04, 1, 0x10, 0x04, 2, 0x10, 0x04, 4]
        );
    }

    #[test]
    fn raster_qr_fits_the_paper() {
        let data = vec![b'A'; 200];
        let r = qr_raster(&data, 16, 384).unwrap();
        let xb = usize::from(u16::from_le_bytes([r[4], r[5]]));
        assert!(xb * 8 <= 384 + 7);
        assert!(qr_raster(&vec![b'a'; 3000], 1, 100).is_err());
    }
}
