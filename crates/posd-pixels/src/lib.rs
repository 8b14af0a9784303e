//! Per-pixel kernels for camera frames, in a crate of their own so that they are built for
//! speed (opt-level 3) while posd is built for size: a camera frame's budget is spent here.
//!
//! - [`halve`]: a frame halved by 2×2 averaging (the camera's screen looks at every frame
//!   at half size);
//! - [`hybrid_black_words`]: zxing's hybrid (local-threshold) binarisation, bit for bit as
//!   rxing's `HybridBinarizer` computes it (posd's `camera::binarize` hands it to rxing and
//!   its tests compare the two on every test photo).
//!
//! Slices in, slices out: no dependencies, no I/O, no panics on any input size (a short slice
//! gives `None` or a shorter output, never an index out of bounds).

/// Halves a `width`×`height` luma frame by 2×2 averaging (rounded; an odd last row or column
/// is dropped). Returns `(width / 2, height / 2, pixels)`; a frame shorter than `width *
/// height` bytes is read as far as it goes (missing rows stay 0).
pub fn halve(src: &[u8], width: usize, height: usize) -> (usize, usize, Vec<u8>) {
    let (w, h) = (width / 2, height / 2);
    let mut data = vec![0u8; w * h];
    if w > 0 {
        for (out, rows) in data.chunks_exact_mut(w).zip(src.chunks_exact(2 * width)) {
            let (r0, r1) = rows.split_at(width);
            halve_rows(&r0[..2 * w], &r1[..2 * w], out);
        }
    }
    (w, h, data)
}

/// One output row of [`halve`]: `out[i]` is the rounded mean of `r0[2i]`,
/// `r0[2i+1]`, `r1[2i]` and `r1[2i+1]`. `r0` and `r1` hold `2 * out.len()` pixels.
fn halve_rows(r0: &[u8], r1: &[u8], out: &mut [u8]) {
    let mut o = out.chunks_exact_mut(4);
    let mut a = r0.chunks_exact(8);
    let mut b = r1.chunks_exact(8);
    for ((o, a), b) in (&mut o).zip(&mut a).zip(&mut b) {
        let (a, b) = (le_u64(a), le_u64(b));
        // Four 16-bit lanes, each the sum of one 2×2 block (at most 4 × 255 = 1020), plus 2
        // for rounding.
        let s =
            (a & EVEN) + ((a >> 8) & EVEN) + (b & EVEN) + ((b >> 8) & EVEN) + 0x0002_0002_0002_0002;
        let q = (s >> 2) & EVEN;
        o.copy_from_slice(&[q as u8, (q >> 16) as u8, (q >> 32) as u8, (q >> 48) as u8]);
    }
    let (o, a, b) = (o.into_remainder(), a.remainder(), b.remainder());
    for ((o, a), b) in o.iter_mut().zip(a.chunks_exact(2)).zip(b.chunks_exact(2)) {
        let s = u16::from(a[0]) + u16::from(a[1]) + u16::from(b[0]) + u16::from(b[1]);
        *o = ((s + 2) >> 2) as u8;
    }
}

const BLOCK: usize = 8;
/// Below this many pixels on a side zxing uses the global histogram instead (5 blocks).
pub const MINIMUM_DIMENSION: usize = BLOCK * 5;
/// A block whose pixels span at most this many grey levels is "flat".
const MIN_DYNAMIC_RANGE: u8 = 24;
pub const WORD_BITS: usize = usize::BITS as usize;

/// The black matrix as rows of `usize` words (bit `x % WORD_BITS` of word `x / WORD_BITS` is
/// pixel `x`, as in rxing's `BitMatrix`), for an image of at least 40×40 pixels.
pub fn hybrid_black_words(luma: &[u8], width: usize, height: usize) -> Option<Vec<usize>> {
    let short = width.checked_mul(height).is_none_or(|n| luma.len() < n);
    if width < MINIMUM_DIMENSION || height < MINIMUM_DIMENSION || short {
        return None;
    }
    let (sub_w, sub_h) = (width.div_ceil(BLOCK), height.div_ceil(BLOCK));
    let (max_x, max_y) = (width - BLOCK, height - BLOCK);
    // Block x starts at column `min(8x, width - 8)`: full blocks, and a last one moved back.
    let full = width / BLOCK;
    let last_moved = sub_w > full;

    // Black points, one per block.
    let mut points = vec![0u32; sub_w * sub_h];
    let mut acc = vec![Block::EMPTY; sub_w];
    for by in 0..sub_h {
        let y0 = (by * BLOCK).min(max_y);
        acc.fill(Block::EMPTY);
        for y in y0..y0 + BLOCK {
            let row = &luma[y * width..(y + 1) * width];
            for (b, px) in acc.iter_mut().zip(row.chunks_exact(BLOCK)) {
                b.add(le_u64(px));
            }
            if let (true, Some(b)) = (last_moved, acc.get_mut(full)) {
                b.add(le_u64(&row[max_x..]));
            }
        }
        let (done, rest) = points.split_at_mut(by * sub_w);
        let above = done.get(done.len().saturating_sub(sub_w)..).unwrap_or(&[]);
        let here = &mut rest[..sub_w];
        for bx in 0..sub_w {
            let (sum, min, max) = acc[bx].total();
            let mut point = sum >> 6;
            if max - min <= MIN_DYNAMIC_RANGE {
                // A flat block: assume background (half its minimum), unless its darkest pixel
                // is darker than what the neighbours above and to the left estimated.
                point = u32::from(min) / 2;
                if by > 0 && bx > 0 {
                    let neighbours = (above[bx] + 2 * here[bx - 1] + above[bx - 1]) / 4;
                    if u32::from(min) < neighbours {
                        point = neighbours;
                    }
                }
            }
            here[bx] = point;
        }
    }

    // Each block's threshold: the mean of the 5×5 black points around it (clamped inside).
    let row_words = width.div_ceil(WORD_BITS);
    let mut words = vec![0usize; row_words * height];
    let mut columns = vec![0u32; sub_w];
    let mut thresholds = vec![0u8; sub_w];
    for by in 0..sub_h {
        let top = by.clamp(2, sub_h - 3);
        columns.fill(0);
        for r in points[(top - 2) * sub_w..(top + 3) * sub_w].chunks_exact(sub_w) {
            for (c, p) in columns.iter_mut().zip(r) {
                *c += p;
            }
        }
        for (bx, t) in thresholds.iter_mut().enumerate() {
            let left = bx.clamp(2, sub_w - 3);
            let s: u32 = columns[left - 2..left + 3].iter().sum();
            // Black points are grey levels (at most 255), so is their mean.
            *t = (s / 25).min(255) as u8;
        }
        let y0 = (by * BLOCK).min(max_y);
        for y in y0..y0 + BLOCK {
            let row = &luma[y * width..(y + 1) * width];
            let out = &mut words[y * row_words..(y + 1) * row_words];
            for (bx, (px, &t)) in row.chunks_exact(BLOCK).zip(&thresholds).enumerate() {
                or_mask(out, bx * BLOCK, dark_mask(le_u64(px), t));
            }
            if let (true, Some(&t)) = (last_moved, thresholds.get(full)) {
                or_mask(out, max_x, dark_mask(le_u64(&row[max_x..]), t));
            }
        }
    }
    Some(words)
}

/// Pixels of even and odd columns of a word, each in a 16-bit lane.
const EVEN: u64 = 0x00FF_00FF_00FF_00FF;
/// The top bit of each 16-bit lane.
const LANE_TOP: u64 = 0x8000_8000_8000_8000;
/// 1 in each 16-bit lane.
const LANE_ONE: u64 = 0x0001_0001_0001_0001;

/// All ones in each 16-bit lane where `a >= b`, for lanes below 32,768 (pixel values and
/// their sums): `a + 32768 - b` keeps the lane's top bit exactly then, and never borrows from
/// the next lane.
#[inline(always)]
fn lanes_ge(a: u64, b: u64) -> u64 {
    lanes_ge_bit(a, b) * 0xFFFF
}

/// 1 in each 16-bit lane where `a >= b` (see [`lanes_ge`]).
#[inline(always)]
fn lanes_ge_bit(a: u64, b: u64) -> u64 {
    (((a | LANE_TOP) - b) & LANE_TOP) >> 15
}

/// Sum, minimum and maximum of one 8×8 block, kept a row of eight pixels at a time in 16-bit
/// lanes of a `u64` (eight pixels a step on any target, 32-bit ARM included; byte by byte, in
/// the size-optimised product, this cost more instructions than rxing's own).
#[derive(Clone, Copy)]
struct Block {
    /// Per lane: sums of an even and an odd pixel, over the rows so far (at most 8 × 510).
    sum: u64,
    min_even: u64,
    min_odd: u64,
    max_even: u64,
    max_odd: u64,
}

impl Block {
    const EMPTY: Block = Block {
        sum: 0,
        min_even: EVEN,
        min_odd: EVEN,
        max_even: 0,
        max_odd: 0,
    };

    /// Eight pixels (a little-endian word) into the block.
    #[inline(always)]
    fn add(&mut self, v: u64) {
        let (e, o) = (v & EVEN, (v >> 8) & EVEN);
        self.sum += e + o;
        let m = lanes_ge(self.min_even, e);
        self.min_even = (e & m) | (self.min_even & !m);
        let m = lanes_ge(self.min_odd, o);
        self.min_odd = (o & m) | (self.min_odd & !m);
        let m = lanes_ge(self.max_even, e);
        self.max_even = (self.max_even & m) | (e & !m);
        let m = lanes_ge(self.max_odd, o);
        self.max_odd = (self.max_odd & m) | (o & !m);
    }

    /// The block's (sum, min, max) over all its pixels.
    fn total(&self) -> (u32, u8, u8) {
        let sum = (self.sum.wrapping_mul(LANE_ONE) >> 48) as u32;
        let min_of = |a: u64, b: u64| {
            let m = lanes_ge(a, b);
            (b & m) | (a & !m)
        };
        let max_of = |a: u64, b: u64| {
            let m = lanes_ge(a, b);
            (a & m) | (b & !m)
        };
        let lo = min_of(self.min_even, self.min_odd);
        let lo = min_of(lo, lo >> 32);
        let lo = min_of(lo, lo >> 16);
        let hi = max_of(self.max_even, self.max_odd);
        let hi = max_of(hi, hi >> 32);
        let hi = max_of(hi, hi >> 16);
        (sum, (lo & 0xFF) as u8, (hi & 0xFF) as u8)
    }
}

/// Bit i set where pixel i of the word is at or below the threshold: black. Even and odd
/// pixels are compared in 16-bit lanes, then the eight answers gathered into the low byte.
#[inline(always)]
fn dark_mask(v: u64, t: u8) -> usize {
    let t = u64::from(t) * LANE_ONE;
    let even = lanes_ge_bit(t, v & EVEN);
    let odd = lanes_ge_bit(t, (v >> 8) & EVEN);
    // Pixels 0/1 at bits 0/1, 2/3 at 16/17, 4/5 at 32/33, 6/7 at 48/49.
    let m = even | (odd << 1);
    ((m | (m >> 14) | (m >> 28) | (m >> 42)) & 0xFF) as usize
}

fn le_u64(px: &[u8]) -> u64 {
    let mut w = [0u8; BLOCK];
    w.copy_from_slice(&px[..BLOCK]);
    u64::from_le_bytes(w)
}

/// ORs an eight-bit mask into a row of words at bit `x` (it may straddle two words).
#[inline(always)]
fn or_mask(out: &mut [usize], x: usize, mask: usize) {
    let (i, shift) = (x / WORD_BITS, x % WORD_BITS);
    if let Some(w) = out.get_mut(i) {
        *w |= mask << shift;
    }
    if shift + BLOCK > WORD_BITS {
        if let Some(w) = out.get_mut(i + 1) {
            *w |= mask >> (WORD_BITS - shift);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time halving gives what the 2×2 mean says, pixel by pixel: every width
    /// from 1 to 41 (the eight-pixel words and the remainder), odd heights, and the extremes
    /// (four 255s round to 255, carries must not cross lanes).
    #[test]
    fn halving_is_the_rounded_two_by_two_mean() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for (w, h) in (1..=41usize).map(|w| (w, 1 + w % 7)) {
            let data: Vec<u8> = (0..w * h)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    match i % 5 {
                        0 => 255,
                        1 => 0,
                        _ => seed as u8,
                    }
                })
                .collect();
            let (hw, hh, half) = halve(&data, w, h);
            assert_eq!((hw, hh), (w / 2, h / 2));
            let px = |x: usize, y: usize| u32::from(data[y * w + x]);
            for y in 0..hh {
                for x in 0..hw {
                    let s = px(2 * x, 2 * y)
                        + px(2 * x + 1, 2 * y)
                        + px(2 * x, 2 * y + 1)
                        + px(2 * x + 1, 2 * y + 1);
                    assert_eq!(
                        u32::from(half[y * hw + x]),
                        (s + 2) / 4,
                        "{w}x{h} at {x},{y}"
                    );
                }
            }
        }
        assert_eq!(halve(&[255; 32], 16, 2).2, vec![255; 8]);
        // short input: no panic, missing rows stay 0
        assert_eq!(halve(&[10; 8], 4, 4).2, vec![10, 10, 0, 0]);
    }

    #[test]
    fn too_small_or_short_frames_have_no_hybrid_matrix() {
        assert!(hybrid_black_words(&[0; 39 * 40], 39, 40).is_none());
        assert!(hybrid_black_words(&[0; 100], 40, 40).is_none());
        assert!(hybrid_black_words(&[0; 1600], 40, 40).is_some());
    }

    /// The lane arithmetic against plain byte comparisons: every threshold, words with the
    /// extremes (0 and 255) and random ones.
    #[test]
    fn lane_masks_minimum_and_maximum_are_the_plain_ones() {
        let mut seed = 0x1234_5678_9abc_def1_u64;
        let mut words = vec![0, u64::MAX, 0x00FF_00FF_00FF_00FF, 0xFF00_FF00_FF00_FF00];
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            words.push(seed);
        }
        for &v in &words {
            let b = v.to_le_bytes();
            for t in 0..=255u8 {
                let plain = (0..8).fold(0, |m, i| m | usize::from(b[i] <= t) << i);
                assert_eq!(dark_mask(v, t), plain, "{v:#x} at {t}");
            }
        }
        for rows in words.chunks_exact(8) {
            let mut block = Block::EMPTY;
            rows.iter().for_each(|&v| block.add(v));
            let px: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
            let sum = px.iter().map(|&p| u32::from(p)).sum::<u32>();
            let (min, max) = (*px.iter().min().unwrap(), *px.iter().max().unwrap());
            assert_eq!(block.total(), (sum, min, max));
        }
    }

    #[test]
    fn a_mask_straddling_two_words_lands_in_both() {
        let mut row = vec![0usize; 2];
        or_mask(&mut row, WORD_BITS - 3, 0b1111_1111);
        assert_eq!(row[0], 0b111 << (WORD_BITS - 3));
        assert_eq!(row[1], 0b1_1111);
        // past the row's end: dropped, not a panic
        or_mask(&mut row, 2 * WORD_BITS - 1, 0b1111_1111);
        assert_eq!(row[1] >> (WORD_BITS - 1), 1);
    }
}
