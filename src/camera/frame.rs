//! Luma (8-bit greyscale) frames: the one pixel format the decoders see.
//!
//! Cameras deliver YUYV, NV12, GRAY or MJPEG and image files arrive as PNG/JPEG/WebP; everything is
//! turned into a [`LumaFrame`] here, as cheaply as the source format allows (YUYV and NV12 already
//! carry luma: taking it is a copy, not a colour conversion).

use std::path::Path;
use std::time::Duration;

use super::CameraError;

/// The most memory one decoded camera frame may take (bytes): a 4K colour frame is ~25 MiB.
const MAX_DECODED_BYTES: u64 = 64 << 20;

/// An 8-bit greyscale frame, row-major, `width * height` bytes, 0 = black.
#[derive(Clone, PartialEq, Eq)]
pub struct LumaFrame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    /// Capture time relative to the start of the source (camera open, or first image); the
    /// de-duplication hold-off is measured on this clock so image sequences are deterministic.
    pub timestamp: Duration,
}

impl std::fmt::Debug for LumaFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LumaFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

fn checked_len(width: u32, height: u32) -> Result<usize, CameraError> {
    (width as usize)
        .checked_mul(height as usize)
        .filter(|&n| n > 0)
        .ok_or_else(|| CameraError::Frame(format!("bad frame size {width}x{height}")))
}

impl LumaFrame {
    /// Wraps a luma buffer, checking that its length matches the size.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, CameraError> {
        let len = checked_len(width, height)?;
        if data.len() != len {
            return Err(CameraError::Frame(format!(
                "{width}x{height} luma frame needs {len} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
            timestamp: Duration::ZERO,
        })
    }

    /// Sets the capture timestamp.
    pub fn at(mut self, timestamp: Duration) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Packed YUYV 4:2:2 (Y0 U Y1 V): luma is every other byte.
    pub fn from_yuyv(width: u32, height: u32, raw: &[u8]) -> Result<Self, CameraError> {
        let len = checked_len(width, height)?;
        if raw.len() < len * 2 {
            return Err(CameraError::Frame(format!(
                "short YUYV frame: {} bytes for {width}x{height}",
                raw.len()
            )));
        }
        let data = raw[..len * 2].iter().step_by(2).copied().collect();
        Self::new(width, height, data)
    }

    /// GRAY (Y8) or the Y plane of NV12/I420: the first `width * height` bytes.
    pub fn from_luma_plane(width: u32, height: u32, raw: &[u8]) -> Result<Self, CameraError> {
        let len = checked_len(width, height)?;
        let plane = raw.get(..len).ok_or_else(|| {
            CameraError::Frame(format!(
                "short luma frame: {} bytes for {width}x{height}",
                raw.len()
            ))
        })?;
        Self::new(width, height, plane.to_vec())
    }

    /// Packed 8-bit RGB or BGR (`bgr`), using integer BT.601 weights.
    pub fn from_rgb(width: u32, height: u32, raw: &[u8], bgr: bool) -> Result<Self, CameraError> {
        let len = checked_len(width, height)?;
        let px = raw.get(..len * 3).ok_or_else(|| {
            CameraError::Frame(format!(
                "short RGB frame: {} bytes for {width}x{height}",
                raw.len()
            ))
        })?;
        let data = px
            .chunks_exact(3)
            .map(|c| {
                let (r, b) = if bgr { (c[2], c[0]) } else { (c[0], c[2]) };
                ((77 * u32::from(r) + 150 * u32::from(c[1]) + 29 * u32::from(b)) >> 8) as u8
            })
            .collect();
        Self::new(width, height, data)
    }

    /// A compressed image (PNG, JPEG, WebP) in memory, e.g. an MJPEG camera frame.
    pub fn from_encoded(bytes: &[u8]) -> Result<Self, CameraError> {
        let img = image::load_from_memory(bytes).map_err(|e| CameraError::Image(e.to_string()))?;
        Self::from_dynamic(img)
    }

    /// An MJPEG camera frame — JPEG only, so that the daemon links no other image decoder
    /// (issue 18: the PNG and WebP decoders stay in posctl's `code scan-image`) — no larger than `max_width` × `max_height` (the resolution the
    /// camera negotiated): the frame's own header is not trusted to size the allocation. A
    /// corrupt header claiming 65535×65535 would have the decoder ask for ~12 GiB — on a
    /// 512 MB box an allocation failure aborts the process, which no `catch_unwind` stops —
    /// so it is refused before anything is allocated, as is a frame over 64 MiB decoded.
    pub fn from_jpeg_within(
        bytes: &[u8],
        max_width: u32,
        max_height: u32,
    ) -> Result<Self, CameraError> {
        use image::ImageDecoder;
        let bad = |e: image::ImageError| CameraError::Image(format!("MJPEG frame: {e}"));
        let mut decoder =
            image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(bytes)).map_err(bad)?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(max_width);
        limits.max_image_height = Some(max_height);
        decoder.set_limits(limits).map_err(bad)?;
        // `from_decoder` allocates what the header says without asking the limits' `max_alloc`
        // (image 0.25): the bound is checked here.
        if decoder.total_bytes() > MAX_DECODED_BYTES {
            let (w, h) = decoder.dimensions();
            return Err(CameraError::Image(format!(
                "MJPEG frame: its header says {w}x{h}, over {} MiB decoded",
                MAX_DECODED_BYTES >> 20
            )));
        }
        let img = image::DynamicImage::from_decoder(decoder).map_err(bad)?;
        Self::from_dynamic(img)
    }

    /// An image file (PNG, JPEG, WebP; the format is sniffed from the content).
    pub fn from_file(path: &Path) -> Result<Self, CameraError> {
        let reader = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| CameraError::Image(format!("{}: {e}", path.display())))?;
        let img = reader
            .decode()
            .map_err(|e| CameraError::Image(format!("{}: {e}", path.display())))?;
        Self::from_dynamic(img)
    }

    fn from_dynamic(img: image::DynamicImage) -> Result<Self, CameraError> {
        // Transparent pixels are composited on white, so a code drawn on a transparent
        // background (common in generated PNGs) keeps its quiet zone.
        let (width, height) = (img.width(), img.height());
        let data = if img.color().has_alpha() {
            img.into_luma_alpha8()
                .pixels()
                .map(|p| {
                    let [l, a] = p.0;
                    ((u32::from(l) * u32::from(a) + 255 * (255 - u32::from(a))) / 255) as u8
                })
                .collect()
        } else {
            img.into_luma8().into_raw()
        };
        Self::new(width, height, data)
    }

    /// Light-on-dark becomes dark-on-light.
    pub fn inverted(&self) -> Self {
        Self {
            data: self.data.iter().map(|v| 255 - v).collect(),
            ..self.clone()
        }
    }

    /// Rotated clockwise by `quarter_turns` × 90°.
    pub fn rotated(&self, quarter_turns: u32) -> Self {
        let (w, h) = (self.width as usize, self.height as usize);
        let src = &self.data;
        match quarter_turns % 4 {
            0 => self.clone(),
            2 => Self {
                data: src.iter().rev().copied().collect(),
                ..self.clone()
            },
            q => {
                // 90° clockwise: dst(x', y') with x' = h-1-y, y' = x; 270°: x' = y, y' = w-1-x.
                let mut data = vec![0u8; w * h];
                for y in 0..h {
                    for x in 0..w {
                        let (dx, dy) = if q == 1 {
                            (h - 1 - y, x)
                        } else {
                            (y, w - 1 - x)
                        };
                        data[dy * h + dx] = src[y * w + x];
                    }
                }
                Self {
                    width: self.height,
                    height: self.width,
                    data,
                    timestamp: self.timestamp,
                }
            }
        }
    }

    /// Scaled by an integer factor with nearest-neighbour sampling (cheap; keeps module edges
    /// sharp, which is what small codes need for the finder-pattern search).
    pub fn upscaled(&self, factor: u32) -> Self {
        let f = factor.max(1) as usize;
        let (w, h) = (self.width as usize, self.height as usize);
        let mut data = Vec::with_capacity(w * h * f * f);
        for row in self.data.chunks_exact(w) {
            let start = data.len();
            for &v in row {
                data.extend(std::iter::repeat_n(v, f));
            }
            let end = data.len();
            for _ in 1..f {
                data.extend_from_within(start..end);
            }
        }
        debug_assert_eq!(data.len(), w * h * f * f);
        Self {
            width: self.width * f as u32,
            height: self.height * f as u32,
            data,
            timestamp: self.timestamp,
        }
    }

    /// Halved in both directions by 2×2 averaging (rounded; an odd last row or column is
    /// dropped): [`posd_pixels::halve`], built for speed (the camera's screen halves every
    /// frame).
    pub fn halved(&self) -> Self {
        let (w, h, data) =
            posd_pixels::halve(&self.data, self.width as usize, self.height as usize);
        Self {
            width: w as u32,
            height: h as u32,
            data,
            timestamp: self.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    fn frame(w: u32, h: u32) -> LumaFrame {
        LumaFrame::new(w, h, (0..w * h).map(|i| i as u8).collect()).unwrap()
    }

    #[test]
    fn rotations_compose_to_identity() {
        let f = frame(5, 3);
        assert_eq!(f.rotated(1).width, 3);
        assert_eq!(f.rotated(1).rotated(3), f);
        assert_eq!(f.rotated(2).rotated(2), f);
        assert_eq!(f.rotated(1).rotated(1), f.rotated(2));
        // top-left pixel moves to the top-right after a clockwise quarter turn
        assert_eq!(f.rotated(1).data[2], f.data[0]);
    }

    #[test]
    fn yuyv_takes_every_other_byte_and_rejects_short_input() {
        let f = LumaFrame::from_yuyv(2, 1, &[10, 99, 20, 98]).unwrap();
        assert_eq!(f.data, vec![10, 20]);
        assert!(LumaFrame::from_yuyv(2, 2, &[0; 4]).is_err());
        assert!(LumaFrame::from_yuyv(0, 2, &[]).is_err());
    }

    /// A 16×8 test frame as a baseline JPEG.
    fn jpeg_16x8() -> (LumaFrame, Vec<u8>) {
        let f = frame(16, 8);
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100)
            .encode(&f.data, 16, 8, image::ExtendedColorType::L8)
            .unwrap();
        (f, jpeg)
    }

    #[test]
    fn mjpeg_frames_decode_as_jpeg_only() {
        let (f, jpeg) = jpeg_16x8();
        let j = LumaFrame::from_jpeg_within(&jpeg, 16, 8).unwrap();
        assert_eq!(j, LumaFrame::from_encoded(&jpeg).unwrap());
        assert_eq!((j.width, j.height), (16, 8));
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&f.data, 16, 8, image::ExtendedColorType::L8)
            .unwrap();
        assert!(LumaFrame::from_encoded(&png).is_ok());
        let err = LumaFrame::from_jpeg_within(&png, 16, 8)
            .unwrap_err()
            .to_string();
        assert!(err.contains("MJPEG frame"), "{err}");
    }

    /// A frame whose header claims more than the camera negotiated is refused before its
    /// pixels are allocated; a truncated one is an error, not a panic.
    #[test]
    fn an_mjpeg_frame_larger_than_negotiated_is_refused_unread() {
        let (_, jpeg) = jpeg_16x8();
        assert!(LumaFrame::from_jpeg_within(&jpeg, 16, 8).is_ok());
        let err = LumaFrame::from_jpeg_within(&jpeg, 8, 8)
            .unwrap_err()
            .to_string();
        assert!(err.contains("MJPEG frame"), "{err}");
        // The start-of-frame header rewritten to claim 65535 × 65535 (~12 GiB decoded).
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG has SOF0");
        let mut huge = jpeg.clone();
        huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(LumaFrame::from_jpeg_within(&huge, 640, 480).is_err());
        // Within the negotiated size but past the memory bound: refused too.
        assert!(LumaFrame::from_jpeg_within(&huge, u32::MAX, u32::MAX).is_err());
        for cut in [0, 2, jpeg.len() / 2, jpeg.len() - 2] {
            let _ = LumaFrame::from_jpeg_within(&jpeg[..cut], 640, 480);
        }
    }

    #[test]
    fn scaling() {
        let f = frame(2, 2);
        let up = f.upscaled(2);
        assert_eq!((up.width, up.height), (4, 4));
        assert_eq!(&up.data[..4], &[0, 0, 1, 1]);
        assert_eq!(&up.data[4..8], &[0, 0, 1, 1]);
        assert_eq!(up.halved(), f);
        assert_eq!(f.inverted().data, vec![255, 254, 253, 252]);
    }
}
