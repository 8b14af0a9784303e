//! zxing's hybrid (local-threshold) binarisation, bit for bit as rxing's `HybridBinarizer`
//! computes it, in a fifth to a half of its time: it was most of a camera frame's cost.
//!
//! Why not rxing's own: on 640×480 camera frames the binarisation was about half of the decode
//! instructions of an empty frame (callgrind, docs/performance.md "stop 37"): rxing sets the
//! matrix one pixel at a time (`BitMatrix::set`, an offset and a bounds check per pixel) and
//! keeps the 8×8 blocks' minimum and maximum with an early exit that stops the compiler from
//! keeping them in registers. This module runs the same algorithm — black points of 8×8 blocks
//! (mean, or half the minimum / the neighbours' estimate on flat blocks), each block
//! thresholded at the mean of the 5×5 black points around it, the last block of a row or column
//! moved back inside the image and OR-ed over its neighbour — a block row at a time, eight
//! pixels to a mask, a matrix word at a time. rxing stays the decoder and the oracle: the tests
//! compare this matrix with rxing's on every test frame and on odd sizes.

use std::borrow::Cow;
use std::cell::OnceCell;

use posd_pixels::{hybrid_black_words, MINIMUM_DIMENSION, WORD_BITS};
use rxing::common::{BitArray, BitMatrix, GlobalHistogramBinarizer, LineOrientation};
use rxing::{Binarizer, Exceptions, Luma8Source, LuminanceSource};

/// Drop-in for rxing's `HybridBinarizer<Luma8Source>`: the same black matrix (rows and columns
/// for 1D readers come from the global histogram, as there).
pub struct LocalBinarizer<'a> {
    ghb: GlobalHistogramBinarizer<Luma8Source<'a>>,
    matrix: OnceCell<Option<BitMatrix>>,
}

impl<'a> LocalBinarizer<'a> {
    pub fn new(source: Luma8Source<'a>) -> Self {
        Self {
            ghb: GlobalHistogramBinarizer::new(source),
            matrix: OnceCell::new(),
        }
    }

    fn compute(&self) -> Option<BitMatrix> {
        let source = self.ghb.get_luminance_source();
        let (width, height) = (source.get_width(), source.get_height());
        if width < MINIMUM_DIMENSION || height < MINIMUM_DIMENSION {
            return self.ghb.get_black_matrix().ok().cloned();
        }
        let luma = source.get_matrix();
        let words = hybrid_black_words(&luma, width, height)?;
        let mut matrix = BitMatrix::new(width as u32, height as u32).ok()?;
        let row_words = width.div_ceil(WORD_BITS);
        let mut row = BitArray::with_size(width);
        for (y, w) in words.chunks_exact(row_words).enumerate() {
            for (i, &bits) in w.iter().enumerate() {
                row.setBulk(i * WORD_BITS, bits);
            }
            matrix.setRow(y as u32, &row);
        }
        Some(matrix)
    }
}

impl<'a> Binarizer for LocalBinarizer<'a> {
    type Source = Luma8Source<'a>;

    fn get_luminance_source(&self) -> &Luma8Source<'a> {
        self.ghb.get_luminance_source()
    }

    fn get_black_row(&self, y: usize) -> rxing::common::Result<Cow<'_, BitArray>> {
        self.ghb.get_black_row(y)
    }

    fn get_black_row_from_matrix(&self, y: usize) -> rxing::common::Result<Cow<'_, BitArray>> {
        match self.matrix.get() {
            Some(Some(m)) => Ok(Cow::Owned(m.getRow(y as u32))),
            _ => self.get_black_row(y),
        }
    }

    fn get_black_matrix(&self) -> rxing::common::Result<&BitMatrix> {
        self.matrix
            .get_or_init(|| self.compute())
            .as_ref()
            .ok_or(Exceptions::NOT_FOUND)
    }

    fn get_black_line(
        &self,
        l: usize,
        lt: LineOrientation,
    ) -> rxing::common::Result<Cow<'_, BitArray>> {
        self.ghb.get_black_line(l, lt)
    }

    fn create_binarizer(&self, source: Luma8Source<'a>) -> Self {
        Self::new(source)
    }

    fn get_width(&self) -> usize {
        self.ghb.get_width()
    }

    fn get_height(&self) -> usize {
        self.ghb.get_height()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rxing::common::HybridBinarizer;

    /// The black matrix a binariser (rxing's or posd's) makes of a frame.
    fn matrix<'a, B: Binarizer<Source = Luma8Source<'a>>>(
        new: impl Fn(Luma8Source<'a>) -> B,
        luma: &'a [u8],
        w: u32,
        h: u32,
    ) -> BitMatrix {
        let source = Luma8Source::new_with_slice(luma, w, h).unwrap();
        new(source).get_black_matrix().unwrap().clone()
    }

    /// Frames that reach every rule: noise (busy blocks), flat areas of several greys (the
    /// half-minimum and the neighbours' estimate), dark flat blocks below a lighter top-left
    /// (the neighbours win), a code-like checkerboard, and sizes that are not multiples of 8
    /// (the last block moved back and OR-ed) or below 40 (the global histogram).
    #[test]
    fn the_matrix_is_rxings_bit_for_bit() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let sizes = [
            (40, 40),
            (41, 43),
            (47, 40),
            (64, 64),
            (65, 97),
            (100, 77),
            (129, 71),
            (200, 150),
            (30, 50),
            (50, 39),
            (640, 480),
        ];
        let mut checked = 0;
        for (w, h) in sizes {
            for kind in 0..5 {
                let luma: Vec<u8> = (0..w * h)
                    .map(|i| {
                        let (x, y) = (i % w, i / w);
                        let r = next();
                        match kind {
                            0 => r as u8,
                            // flat regions of several greys, a little noise
                            1 => ((x / 13 + y / 11) % 4) as u8 * 60 + (r % 8) as u8,
                            // light top-left, dark flat elsewhere
                            2 => {
                                if x < w / 3 && y < h / 3 {
                                    200 + (r % 20) as u8
                                } else {
                                    30 + (r % 10) as u8
                                }
                            }
                            // a checkerboard of 5-pixel modules on mid grey
                            3 => {
                                if (x / 5 + y / 5) % 2 == 0 {
                                    40
                                } else {
                                    180
                                }
                            }
                            // a smooth gradient with sparse dark dots
                            _ => {
                                let g = ((x * 255) / w) as u8 / 2 + ((y * 127) / h) as u8;
                                if r % 97 == 0 {
                                    g / 4
                                } else {
                                    g
                                }
                            }
                        }
                    })
                    .collect();
                let (w, h) = (w as u32, h as u32);
                assert_eq!(
                    matrix(LocalBinarizer::new, &luma, w, h),
                    matrix(HybridBinarizer::new, &luma, w, h),
                    "{w}x{h}, frame kind {kind}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, sizes.len() * 5);
    }
}
