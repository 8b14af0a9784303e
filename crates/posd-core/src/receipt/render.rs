//! ESC/POS interpreter: reads the bytes posd would send to a printer and draws the receipt — as a
//! PNG people can look at without a printer (and tests can read the QR back from), or as plain
//! text for diffs and terminals.
//!
//! It models an Epson-style 203 dpi thermal printer closely enough to check our own output:
//! font A (12 × 24 dots) and B (9 × 17), `ESC !`/`GS !` magnification, bold, underline,
//! reverse, justification, code pages 437/858, GB18030 Chinese mode (`FS &`), line spacing and
//! feeds, native QR (`GS ( k`), `GS v 0` raster images, cuts and the drawer kick. Other
//! commands are skipped by their declared length. It faces arbitrary bytes: it never panics,
//! never allocates beyond what the input and [`RenderOptions::max_height`] allow, and stops at
//! truncated input.
//!
//! Glyphs come from Noto Sans Mono (pre-rasterised, OFL) at the printer's 24-dot height, and
//! from GNU Unifont (16 × 16, scaled) for Chinese and anything else Noto lacks.

use image::{GrayImage, Luma};
use noto_sans_mono_bitmap::{get_raster, FontWeight, RasterHeight};

use super::charset::{decode_code_page, decode_gb18030};
use super::escpos_enc::{qr_matrix, QrEcc};
use super::paper::PaperWidth;

/// Paper and safety limits of the renderer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Printable width in dots (384 for 58 mm, 576 for 80 mm).
    pub paper_dots: u32,
    /// Paper length in dots after which rendering stops (default 40 000 ≈ 5 m).
    pub max_height: u32,
}

impl RenderOptions {
    pub fn for_width(w: PaperWidth) -> Self {
        RenderOptions {
            paper_dots: w.dots(),
            max_height: 40_000,
        }
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions::for_width(PaperWidth::Mm80)
    }
}

/// Why a PNG could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("PNG encoding: {0}")]
    Png(image::ImageError),
}

crate::wraps_error!(RenderError { Png(image::ImageError) });

/// Default line spacing (`ESC 2`): 1/6 inch at 180 dpi units, 30 dots.
const DEFAULT_SPACING: u32 = 30;
/// Margin drawn around the paper in the PNG.
const MARGIN: u32 = 16;
/// Stop after this many blocks whatever their height (zero-height commands repeated).
const MAX_BLOCKS: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Center,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Glyph {
    ch: char,
    /// Dots this glyph takes (cell width × magnification).
    w: u32,
    h: u32,
    bold: bool,
    underline: bool,
    reverse: bool,
    /// Double-byte (Chinese) character.
    wide: bool,
}

/// Something printed, top to bottom.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Text {
        align: Align,
        glyphs: Vec<Glyph>,
        advance: u32,
    },
    Feed(u32),
    Image {
        align: Align,
        width: u32,
        height: u32,
        bits: Vec<bool>,
    },
    Qr {
        align: Align,
        data: Vec<u8>,
        module: u8,
        /// Side in modules and dark modules; `None` when the data cannot be a QR.
        matrix: Option<(usize, Vec<bool>)>,
    },
    Cut {
        partial: bool,
    },
    Drawer {
        pin: u8,
    },
}

#[derive(Debug, Clone)]
struct State {
    align: Align,
    bold: bool,
    underline: bool,
    reverse: bool,
    font_b: bool,
    wmul: u32,
    hmul: u32,
    code_page: u8,
    kanji: bool,
    spacing: u32,
    qr_module: u8,
    qr_ecc: QrEcc,
    qr_data: Vec<u8>,
}

impl Default for State {
    fn default() -> Self {
        State {
            align: Align::Left,
            bold: false,
            underline: false,
            reverse: false,
            font_b: false,
            wmul: 1,
            hmul: 1,
            code_page: 0,
            kanji: false,
            spacing: DEFAULT_SPACING,
            qr_module: 3,
            qr_ecc: QrEcc::L,
            qr_data: Vec::new(),
        }
    }
}

struct Interp<'a> {
    b: &'a [u8],
    i: usize,
    opts: RenderOptions,
    st: State,
    line: Vec<Glyph>,
    line_dots: u32,
    line_align: Align,
    blocks: Vec<Block>,
    height: u64,
    done: bool,
}

impl<'a> Interp<'a> {
    fn new(b: &'a [u8], opts: RenderOptions) -> Self {
        let opts = RenderOptions {
            paper_dots: opts.paper_dots.clamp(48, 4096),
            max_height: opts.max_height.clamp(1, 1_000_000),
        };
        Interp {
            b,
            i: 0,
            opts,
            st: State::default(),
            line: Vec::new(),
            line_dots: 0,
            line_align: Align::Left,
            blocks: Vec::new(),
            height: 0,
            done: false,
        }
    }

    fn byte(&mut self) -> Option<u8> {
        let v = self.b.get(self.i).copied();
        if v.is_some() {
            self.i += 1;
        }
        v
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.i.checked_add(n)?;
        let s = self.b.get(self.i..end)?;
        self.i = end;
        Some(s)
    }

    fn push(&mut self, block: Block, height: u32) {
        if self.done {
            return;
        }
        if self.blocks.len() >= MAX_BLOCKS
            || self.height + u64::from(height) > u64::from(self.opts.max_height)
        {
            self.done = true;
            return;
        }
        self.height += u64::from(height);
        self.blocks.push(block);
    }

    fn char_cell(&self) -> (u32, u32) {
        if self.st.font_b {
            (9, 17)
        } else {
            (12, 24)
        }
    }

    fn add_glyph(&mut self, ch: char, wide: bool) {
        let (cw, chh) = self.char_cell();
        let w = if wide { 24 } else { cw } * self.st.wmul;
        let h = if wide { 24 } else { chh } * self.st.hmul;
        if self.line_dots + w > self.opts.paper_dots && !self.line.is_empty() {
            self.print_line(None);
        }
        if self.line.is_empty() {
            self.line_align = self.st.align;
        }
        self.line.push(Glyph {
            ch,
            w,
            h,
            bold: self.st.bold,
            underline: self.st.underline,
            reverse: self.st.reverse,
            wide,
        });
        self.line_dots += w;
    }

    /// Prints the line buffer and advances by `advance` dots (line spacing when `None`).
    fn print_line(&mut self, advance: Option<u32>) {
        let tallest = self.line.iter().map(|g| g.h).max().unwrap_or(0);
        let adv = advance.unwrap_or(self.st.spacing).max(tallest);
        let glyphs = std::mem::take(&mut self.line);
        self.line_dots = 0;
        if glyphs.is_empty() {
            self.push(Block::Feed(adv), adv);
        } else {
            let align = self.line_align;
            self.push(
                Block::Text {
                    align,
                    glyphs,
                    advance: adv,
                },
                adv,
            );
        }
    }

    /// Prints a pending partial line before a block that starts at the left margin.
    fn flush_partial(&mut self) {
        if !self.line.is_empty() {
            self.print_line(None);
        }
    }

    fn run(&mut self) {
        while !self.done {
            let Some(c) = self.byte() else { break };
            match c {
                0x0A => self.print_line(None),
                0x0C => self.print_line(None),
                0x09 => {
                    // Tab stops every 8 columns: spaces up to the next stop, or the line's end.
                    let (cw, _) = self.char_cell();
                    let tab = cw * 8;
                    let next = (self.line_dots / tab + 1) * tab;
                    let w = cw * self.st.wmul;
                    let room = self.opts.paper_dots.saturating_sub(self.line_dots) / w;
                    let spaces = next.saturating_sub(self.line_dots).div_ceil(w).min(room);
                    for _ in 0..spaces {
                        self.add_glyph(' ', false);
                    }
                }
                0x1B => self.esc(),
                0x1D => self.gs(),
                0x1C => self.fs(),
                0x10 => self.dle(),
                0x00..=0x1F | 0x7F => {}
                0x20..=0x7E => self.add_glyph(char::from(c), false),
                _ => self.high_byte(c),
            }
        }
        if !self.done {
            // Data left in the buffer without a line feed prints when the job ends (at the cut).
            self.flush_partial();
        }
    }

    fn high_byte(&mut self, c: u8) {
        if !self.st.kanji {
            let ch = decode_code_page(self.st.code_page, c);
            self.add_glyph(ch, false);
            return;
        }
        if c == 0x80 || c == 0xFF {
            self.add_glyph('?', false);
            return;
        }
        let Some(&second) = self.b.get(self.i) else {
            return;
        };
        if (0x30..=0x39).contains(&second) {
            // Four-byte GB18030: consume it, print a replacement (printers vary here).
            self.i = (self.i + 3).min(self.b.len());
            self.add_glyph('?', true);
            return;
        }
        self.i += 1;
        let ch = decode_gb18030(&[c, second]).unwrap_or('?');
        self.add_glyph(ch, true);
    }

    fn esc(&mut self) {
        let Some(cmd) = self.byte() else { return };
        match cmd {
            b'@' => {
                self.flush_partial();
                self.st = State::default();
            }
            b'!' => {
                if let Some(n) = self.byte() {
                    self.st.font_b = n & 0x01 != 0;
                    self.st.bold = n & 0x08 != 0;
                    self.st.hmul = if n & 0x10 != 0 { 2 } else { 1 };
                    self.st.wmul = if n & 0x20 != 0 { 2 } else { 1 };
                    self.st.underline = n & 0x80 != 0;
                }
            }
            b'E' | b'G' => {
                if let Some(n) = self.byte() {
                    self.st.bold = n & 1 != 0;
                }
            }
            b'-' => {
                if let Some(n) = self.byte() {
                    self.st.underline = matches!(n, 1 | 2 | 49 | 50);
                }
            }
            b'M' => {
                if let Some(n) = self.byte() {
                    self.st.font_b = matches!(n, 1 | 49);
                }
            }
            b'a' => {
                if let Some(n) = self.byte() {
                    self.st.align = match n {
                        1 | 49 => Align::Center,
                        2 | 50 => Align::Right,
                        _ => Align::Left,
                    };
                }
            }
            b't' => {
                if let Some(n) = self.byte() {
                    self.st.code_page = n;
                }
            }
            b'd' => {
                if let Some(n) = self.byte() {
                    let sp = self.st.spacing;
                    if self.line.is_empty() {
                        let dots = sp.saturating_mul(u32::from(n));
                        if dots > 0 {
                            self.push(Block::Feed(dots), dots);
                        }
                    } else {
                        self.print_line(None);
                        let dots = sp.saturating_mul(u32::from(n.saturating_sub(1)));
                        if dots > 0 {
                            self.push(Block::Feed(dots), dots);
                        }
                    }
                }
            }
            b'J' => {
                if let Some(n) = self.byte() {
                    if self.line.is_empty() {
                        if n > 0 {
                            self.push(Block::Feed(u32::from(n)), u32::from(n));
                        }
                    } else {
                        self.print_line(Some(u32::from(n)));
                    }
                }
            }
            b'2' => self.st.spacing = DEFAULT_SPACING,
            b'3' => {
                if let Some(n) = self.byte() {
                    self.st.spacing = u32::from(n);
                }
            }
            b'p' => {
                if let Some(p) = self.take(3) {
                    let pin = if p[0] & 1 == 0 { 2 } else { 5 };
                    self.push(Block::Drawer { pin }, 0);
                }
            }
            b'i' | b'm' => {
                self.flush_partial();
                self.push(Block::Cut { partial: true }, 0);
            }
            b'*' => {
                // Column bit image: skipped (posd sends GS v 0).
                if let Some(h) = self.take(3) {
                    let n = usize::from(h[1]) | usize::from(h[2]) << 8;
                    let per = if h[0] >= 32 { 3 } else { 1 };
                    let _ = self.take(n * per);
                }
            }
            b'D' => {
                // Tab positions: up to 32 bytes ending with NUL.
                for _ in 0..33 {
                    match self.byte() {
                        Some(0) | None => break,
                        Some(_) => {}
                    }
                }
            }
            b'$' | b'\\' => {
                let _ = self.take(2);
            }
            b'c' => {
                let _ = self.take(2);
            }
            b'W' => {
                let _ = self.take(8);
            }
            b'&' => self.skip_user_chars(),
            b'L' | b'S' | b'<' => {}
            // One-parameter commands we do not draw: ESC SP, ESC %, ESC R, ESC T, ESC U, ESC V,
            // ESC {, ESC r, ESC K, ESC e, ESC ?, ESC =, ...
            _ => {
                let _ = self.byte();
            }
        }
    }

    /// `ESC & y c1 c2 [x d1..d(y*x)]...`: user-defined characters, skipped.
    fn skip_user_chars(&mut self) {
        let Some(h) = self.take(3) else { return };
        let y = usize::from(h[0]);
        let count = usize::from(h[2].saturating_sub(h[1])) + 1;
        for _ in 0..count {
            let Some(x) = self.byte() else { return };
            if self.take(y * usize::from(x)).is_none() {
                return;
            }
        }
    }

    fn gs(&mut self) {
        let Some(cmd) = self.byte() else { return };
        match cmd {
            b'!' => {
                if let Some(n) = self.byte() {
                    self.st.wmul = u32::from((n >> 4) & 0x07) + 1;
                    self.st.hmul = u32::from(n & 0x07) + 1;
                }
            }
            b'B' => {
                if let Some(n) = self.byte() {
                    self.st.reverse = n & 1 != 0;
                }
            }
            b'V' => {
                let Some(m) = self.byte() else { return };
                if matches!(m, 65 | 66 | 97 | 98 | 103 | 104) {
                    let _ = self.byte();
                }
                self.flush_partial();
                let partial = matches!(m, 1 | 49 | 66 | 98 | 104);
                self.push(Block::Cut { partial }, 0);
            }
            b'v' => self.raster(),
            b'(' => self.gs_paren(),
            b'8' => {
                // GS 8 L p1 p2 p3 p4 ...: large graphics data, skipped.
                let _ = self.byte();
                if let Some(p) = self.take(4) {
                    let n = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
                    let _ = self.take(n);
                }
            }
            b'k' => self.barcode(),
            b'*' => {
                if let Some(p) = self.take(2) {
                    let _ = self.take(usize::from(p[0]) * usize::from(p[1]) * 8);
                }
            }
            b'L' | b'W' | b'P' | b'$' | b'\\' => {
                let _ = self.take(2);
            }
            b'^' => {
                let _ = self.take(3);
            }
            _ => {
                let _ = self.byte();
            }
        }
    }

    /// `GS v 0 m xL xH yL yH d...`
    fn raster(&mut self) {
        let Some(h) = self.take(6) else { return };
        if h[0] != b'0' && h[0] != 0 {
            return;
        }
        let xb = usize::from(u16::from_le_bytes([h[2], h[3]]));
        let rows = usize::from(u16::from_le_bytes([h[4], h[5]]));
        let avail_rows = (self.b.len() - self.i).checked_div(xb).unwrap_or(0);
        let rows_ok = rows.min(avail_rows);
        let budget = u64::from(self.opts.max_height).saturating_sub(self.height) as usize;
        let keep_rows = rows_ok.min(budget);
        let width = (xb * 8).min(self.opts.paper_dots as usize);
        let Some(data) = self.take(xb * rows_ok) else {
            return;
        };
        self.flush_partial();
        let mut bits = vec![false; width * keep_rows];
        for y in 0..keep_rows {
            for x in 0..width {
                let byte = data[y * xb + x / 8];
                bits[y * width + x] = byte & (0x80 >> (x % 8)) != 0;
            }
        }
        let align = self.st.align;
        if keep_rows > 0 {
            self.push(
                Block::Image {
                    align,
                    width: width as u32,
                    height: keep_rows as u32,
                    bits,
                },
                keep_rows as u32,
            );
        }
        if rows_ok < rows || keep_rows < rows_ok {
            self.done = true;
        }
    }

    /// `GS ( X pL pH payload`: QR handled, other functions skipped.
    fn gs_paren(&mut self) {
        let Some(h) = self.take(3) else { return };
        let (kind, len) = (h[0], usize::from(u16::from_le_bytes([h[1], h[2]])));
        let Some(p) = self.take(len) else {
            self.done = true;
            return;
        };
        if kind != b'k' || p.len() < 2 || p[0] != 49 {
            return;
        }
        match p[1] {
            67 if p.len() >= 3 && (1..=16).contains(&p[2]) => self.st.qr_module = p[2],
            69 if p.len() >= 3 => {
                if let Some(e) = QrEcc::from_escpos(p[2]) {
                    self.st.qr_ecc = e;
                }
            }
            80 if p.len() >= 3 => self.st.qr_data = p[3..].to_vec(),
            81 => {
                self.flush_partial();
                let matrix = qr_matrix(&self.st.qr_data, self.st.qr_ecc);
                let module = self.st.qr_module;
                let side = qr_side(&matrix, module);
                let align = self.st.align;
                let data = self.st.qr_data.clone();
                self.push(
                    Block::Qr {
                        align,
                        data,
                        module,
                        matrix,
                    },
                    side,
                );
            }
            _ => {}
        }
    }

    /// `GS k m ...`: barcodes are skipped (posd prints none).
    fn barcode(&mut self) {
        let Some(m) = self.byte() else { return };
        if m <= 6 {
            for _ in 0..256 {
                match self.byte() {
                    Some(0) | None => break,
                    Some(_) => {}
                }
            }
        } else if let Some(n) = self.byte() {
            let _ = self.take(usize::from(n));
        }
    }

    fn fs(&mut self) {
        let Some(cmd) = self.byte() else { return };
        match cmd {
            b'&' => self.st.kanji = true,
            b'.' => self.st.kanji = false,
            b'p' | b'S' => {
                let _ = self.take(2);
            }
            _ => {
                let _ = self.byte();
            }
        }
    }

    fn dle(&mut self) {
        let Some(cmd) = self.byte() else { return };
        match cmd {
            0x04 => {
                if let Some(n) = self.byte() {
                    if matches!(n, 7 | 8 | 18) {
                        let _ = self.byte();
                    }
                }
            }
            0x05 => {
                let _ = self.byte();
            }
            0x14 => {
                let Some(f) = self.byte() else { return };
                let n = match f {
                    7 => 1,
                    8 => 7,
                    _ => 2,
                };
                let _ = self.take(n);
            }
            _ => {}
        }
    }
}

fn interpret(bytes: &[u8], opts: RenderOptions) -> (RenderOptions, Vec<Block>) {
    let mut it = Interp::new(bytes, opts);
    it.run();
    (it.opts, it.blocks)
}

/// Height (and width) in dots of a QR block; a failed QR takes a 24-dot placeholder.
fn qr_side(matrix: &Option<(usize, Vec<bool>)>, module: u8) -> u32 {
    matrix
        .as_ref()
        .map(|(w, _)| (*w as u32).saturating_mul(u32::from(module)))
        .unwrap_or(24)
}

fn align_x(align: Align, paper: u32, w: u32) -> u32 {
    match align {
        Align::Left => 0,
        Align::Center => paper.saturating_sub(w) / 2,
        Align::Right => paper.saturating_sub(w),
    }
}

// ------------------------------------------------------------------------------------------------
// Text output
// ------------------------------------------------------------------------------------------------

/// Plain-text rendering: one line per printed line, aligned in columns of font A; QR codes,
/// images, cuts and drawer kicks as bracketed markers. Blank feeds become empty lines.
pub fn render_text(bytes: &[u8], opts: &RenderOptions) -> String {
    let (opts, blocks) = interpret(bytes, *opts);
    let cols = (opts.paper_dots / 12) as usize;
    let mut out = String::new();
    for b in &blocks {
        match b {
            Block::Text { align, glyphs, .. } => {
                let text: String = glyphs.iter().map(|g| g.ch).collect();
                let w: u32 = glyphs.iter().map(|g| g.w).sum();
                let pad = (align_x(*align, opts.paper_dots, w) / 12) as usize;
                let line = format!("{}{}", " ".repeat(pad), text);
                out.push_str(line.trim_end());
                out.push('\n');
            }
            Block::Feed(d) => {
                for _ in 0..(d / DEFAULT_SPACING) {
                    out.push('\n');
                }
            }
            Block::Image { width, height, .. } => {
                out.push_str(&format!("[image {width}x{height}]\n"));
            }
            Block::Qr { data, .. } => {
                out.push_str(&format!("[QR {}]\n", String::from_utf8_lossy(data)));
            }
            Block::Cut { partial } => {
                let label = if *partial { " partial cut " } else { " cut " };
                let side = cols.saturating_sub(label.len()) / 2;
                out.push_str(&format!("{0}{label}{0}\n", "~".repeat(side)));
            }
            Block::Drawer { pin } => out.push_str(&format!("[drawer kick pin {pin}]\n")),
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Image output
// ------------------------------------------------------------------------------------------------

const WHITE: Luma<u8> = Luma([255]);
const BLACK: Luma<u8> = Luma([0]);

/// Draws the receipt on white paper with a grey margin; cuts are dashed lines.
pub fn render_image(bytes: &[u8], opts: &RenderOptions) -> GrayImage {
    let (opts, blocks) = interpret(bytes, *opts);
    let paper = opts.paper_dots;
    let total: u64 = blocks.iter().map(block_height).sum();
    let height = (total.min(u64::from(opts.max_height)) as u32) + 2 * MARGIN;
    let width = paper + 2 * MARGIN;
    // White paper on a grey margin, built row by row (this is the hot path for tall receipts).
    let mut row = vec![200u8; width as usize];
    row[MARGIN as usize..(MARGIN + paper) as usize].fill(255);
    let mut raw = Vec::with_capacity(width as usize * height as usize);
    for y in 0..height {
        if y < MARGIN || y >= height - MARGIN {
            raw.extend(std::iter::repeat_n(200u8, width as usize));
        } else {
            raw.extend_from_slice(&row);
        }
    }
    let mut img = GrayImage::from_raw(width, height, raw)
        .unwrap_or_else(|| GrayImage::from_pixel(width, height, WHITE));
    let mut y = MARGIN;
    for b in &blocks {
        match b {
            Block::Text { align, glyphs, .. } => {
                let w: u32 = glyphs.iter().map(|g| g.w).sum();
                let mut x = MARGIN + align_x(*align, paper, w);
                let base = glyphs.iter().map(|g| g.h).max().unwrap_or(0);
                for g in glyphs {
                    // Characters sit on a common baseline.
                    draw_glyph(&mut img, x, y + base - g.h, g);
                    x += g.w;
                }
            }
            Block::Image {
                align,
                width,
                height,
                bits,
            } => {
                let x0 = MARGIN + align_x(*align, paper, *width);
                for yy in 0..*height {
                    for xx in 0..*width {
                        if bits
                            .get((yy * width + xx) as usize)
                            .copied()
                            .unwrap_or(false)
                        {
                            put(&mut img, x0 + xx, y + yy, BLACK);
                        }
                    }
                }
            }
            Block::Qr {
                align,
                module,
                matrix,
                ..
            } => draw_qr(&mut img, MARGIN, y, paper, *align, matrix, *module),
            Block::Cut { .. } => {
                for x in (0..img.width()).step_by(8) {
                    for dx in 0..4 {
                        put(&mut img, x + dx, y, Luma([90]));
                    }
                }
            }
            Block::Feed(_) | Block::Drawer { .. } => {}
        }
        y = y.saturating_add(block_height(b) as u32);
    }
    img
}

/// [`render_image`] encoded as PNG.
pub fn render_png(bytes: &[u8], opts: &RenderOptions) -> Result<Vec<u8>, RenderError> {
    let img = render_image(bytes, opts);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

fn block_height(b: &Block) -> u64 {
    match b {
        Block::Text { advance, .. } => u64::from(*advance),
        Block::Feed(d) => u64::from(*d),
        Block::Image { height, .. } => u64::from(*height),
        Block::Qr { matrix, module, .. } => u64::from(qr_side(matrix, *module)),
        Block::Cut { .. } | Block::Drawer { .. } => 0,
    }
}

fn put(img: &mut GrayImage, x: u32, y: u32, p: Luma<u8>) {
    if x < img.width() && y < img.height() {
        img.put_pixel(x, y, p);
    }
}

fn draw_qr(
    img: &mut GrayImage,
    x0: u32,
    y: u32,
    paper: u32,
    align: Align,
    matrix: &Option<(usize, Vec<bool>)>,
    module: u8,
) {
    let m = u32::from(module);
    match matrix {
        Some((w, dark)) => {
            let w = *w;
            let side = w as u32 * m;
            let x = x0 + align_x(align, paper, side);
            for my in 0..w {
                for mx in 0..w {
                    if dark[my * w + mx] {
                        for dy in 0..m {
                            for dx in 0..m {
                                put(img, x + mx as u32 * m + dx, y + my as u32 * m + dy, BLACK);
                            }
                        }
                    }
                }
            }
        }
        None => {
            // A QR the printer could not make: a crossed box.
            let x = x0 + align_x(align, paper, 24);
            for i in 0..24 {
                put(img, x + i, y, BLACK);
                put(img, x + i, y + 23, BLACK);
                put(img, x, y + i, BLACK);
                put(img, x + 23, y + i, BLACK);
                put(img, x + i, y + i, BLACK);
                put(img, x + 23 - i, y + i, BLACK);
            }
        }
    }
}

/// Draws one character cell, scaling the 11 × 24 source glyph to the cell.
fn draw_glyph(img: &mut GrayImage, x: u32, y: u32, g: &Glyph) {
    let (ink, paper) = if g.reverse {
        (WHITE, BLACK)
    } else {
        (BLACK, WHITE)
    };
    if g.reverse {
        for dy in 0..g.h {
            for dx in 0..g.w {
                put(img, x + dx, y + dy, paper);
            }
        }
    }
    let weight = if g.bold {
        FontWeight::Bold
    } else {
        FontWeight::Regular
    };
    if g.ch == ' ' {
        // nothing to draw
    } else if let Some(r) = (!g.wide)
        .then(|| get_raster(g.ch, weight, RasterHeight::Size24))
        .flatten()
    {
        // Noto Sans Mono, 11 x 24 in a 12 x 24 cell.
        for dy in 0..g.h {
            for dx in 0..g.w {
                let sx = (dx * 12 / g.w.max(1)) as usize;
                let sy = (dy * 24 / g.h.max(1)) as usize;
                if r.pixel(sx, sy).unwrap_or(0) > 110 {
                    put(img, x + dx, y + dy, ink);
                }
            }
        }
    } else if let Some(u) = unifont::get_glyph(g.ch) {
        // Unifont (Chinese and whatever Noto lacks): 8 x 16 or 16 x 16, scaled to the cell.
        let (gw, gh) = (u.get_width() as u32, 16u32);
        for dy in 0..g.h {
            for dx in 0..g.w {
                let sx = (dx * gw / g.w.max(1)) as usize;
                let sy = (dy * gh / g.h.max(1)) as usize;
                if u.get_pixel(sx, sy) {
                    put(img, x + dx, y + dy, ink);
                    if g.bold {
                        put(img, x + dx + 1, y + dy, ink);
                    }
                }
            }
        }
    } else {
        // No glyph anywhere: an outlined box the size of the character.
        let (w, h) = (g.w, g.h);
        let (ix, iy) = (w / 8, h / 8);
        for dx in ix..w - ix {
            put(img, x + dx, y + iy, ink);
            put(img, x + dx, y + h - iy - 1, ink);
        }
        for dy in iy..h - iy {
            put(img, x + ix, y + dy, ink);
            put(img, x + w - ix - 1, y + dy, ink);
        }
    }
    if g.underline {
        for dx in 0..g.w {
            put(img, x + dx, y + g.h - 2, ink);
            put(img, x + dx, y + g.h - 1, ink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &[u8]) -> String {
        render_text(b, &RenderOptions::for_width(PaperWidth::Mm58))
    }

    #[test]
    fn text_alignment_and_wrapping() {
        assert_eq!(text(b"\x1ba\x01ab\n"), "               ab\n");
        assert_eq!(text(b"\x1ba\x02ab\n"), "                              ab\n");
        let long = [b'x'; 40];
        assert_eq!(
            text(&long),
            format!("{}\n{}\n", "x".repeat(32), "x".repeat(8))
        );
    }

    #[test]
    fn code_pages_and_chinese_mode() {
        assert_eq!(text(b"\x1bt\x13\xd5 \x82\n"), "€ é\n");
        assert_eq!(text(b"\x1bt\x00\x82\n"), "é\n");
        assert_eq!(text(b"\x1c&\xbf\xa7\xb7\xc8\n"), "咖啡\n");
    }

    #[test]
    fn truncated_and_hostile_input_stops_cleanly() {
        for b in [
            &b"\x1dv0\x00\xff\xff\xff\xff"[..],
            b"\x1d(k\xff\xff1P0abc",
            b"\x1b",
            b"\x1d",
            b"\x1c&\xbf",
            b"\x1b&\x03\x20\x7e\x0c",
            b"\x1d8L\xff\xff\xff\xff",
        ] {
            let _ = text(b);
            let img = render_image(b, &RenderOptions::default());
            assert!(img.height() <= 40_000 + 2 * MARGIN);
        }
    }

    #[test]
    fn tabs_with_wide_characters_terminate() {
        let mut b = b"\x1d!\x77".to_vec();
        b.extend(std::iter::repeat_n(b'\t', 1000));
        let _ = text(&b);
        assert_eq!(text(b"a\tb\n"), "a       b\n");
    }

    #[test]
    fn height_is_bounded() {
        let opts = RenderOptions {
            paper_dots: 384,
            max_height: 1000,
        };
        let img = render_image(&[b'\n'; 100_000], &opts);
        assert_eq!(img.height(), 1000 - 1000 % DEFAULT_SPACING + 2 * MARGIN);
    }
}
