//! The QR decode pipeline: turns one [`LumaFrame`] into payloads, reading as many real-world
//! photos as possible within a time budget, and never letting a decoder's panic escape.
//!
//! Why two decoders: rqrr (the product card's choice) reads ~72 % of `shared/testdata/qr`, panics
//! on some images and reads no inverted codes; rxing (a zxing port) reads nearly all of them. The
//! pipeline runs rxing (normal, then inverted) on every frame, then slower retries (halved,
//! zxing's classic reader, rqrr as a second opinion, upscaled) while the frame's budget lasts.
//! `docs/camera.md` has the measurements behind this order.
//!
//! Payload bytes: see [`Payload`] for how text and binary content are told apart.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rxing::common::{BitMatrix, GlobalHistogramBinarizer};
use rxing::multi::MultipleBarcodeReader;
use rxing::qrcode::cpp_port::detector::FindFinderPatterns;
use rxing::qrcode::cpp_port::QrReader;
use rxing::qrcode::QRCodeReader;
use rxing::{
    BarcodeFormat, BinaryBitmap, DecodeHints, Luma8Source, RXingResult, RXingResultMetadataType,
    RXingResultMetadataValue, Reader,
};
use serde::Serialize;

use super::binarize::LocalBinarizer;
use super::frame::LumaFrame;

/// The content of one decoded QR code.
///
/// `bytes` is the code's content as text encoded in UTF-8 whenever the content is text: payloads
/// that are UTF-8 already, and payloads a decoder identified as another character set (an ECI, or
/// Shift_JIS detected the way zxing does) converted to UTF-8. Content that is neither stays as the
/// raw bytes of the code (rxing's byte segments / rqrr's raw stream); such payloads are reported
/// as hex. Consequence: a byte-mode code holding ISO-8859-1 text without an ECI is reported raw.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Payload {
    pub bytes: Vec<u8>,
}

impl Payload {
    /// The payload as text, when it is valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

impl Serialize for Payload {
    /// `{"text": "..."}` for UTF-8 payloads, `{"hex": "..."}` otherwise.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self.text() {
            Some(t) => m.serialize_entry("text", t)?,
            None => m.serialize_entry("hex", &hex::encode(&self.bytes))?,
        }
        m.end()
    }
}

/// One step of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// rxing's port of zxing-cpp's QR reader ("try harder", all codes in the frame).
    Rxing,
    /// The same on the inverted binarised frame: light-on-dark ("dark mode") codes. Cheap: it
    /// reuses the binarisation of [`Stage::Rxing`] when that ran just before.
    RxingInverted,
    /// rxing on the frame halved by 2×2 averaging: smooths texture and sensor noise that break
    /// binarisation of large, busy codes (artistic codes, photos behind the modules).
    RxingHalved,
    /// rxing's port of zxing's original (Java) QR reader: a different finder-pattern search that
    /// reads some skewed codes the first one misses.
    RxingClassic,
    /// rqrr, the product card's decoder, as a second opinion.
    Rqrr,
    /// rxing on the frame upscaled 2× (frames up to 640 px on the short side): tiny modules.
    RxingUpscaled,
    /// rxing on the inverted *luma*, binarised afresh: a light-on-dark code on a mid-grey
    /// ground, where the hybrid binariser's low-contrast rule keeps the inverted binarisation
    /// of [`Stage::RxingInverted`] from finding the finder patterns.
    RxingInvertedLuma,
    /// rxing with zxing's global-histogram binariser (one threshold between the two tallest
    /// histogram peaks), both polarities: low-contrast codes whose modules differ from the
    /// ground by a few tens of grey levels, where local thresholds follow the texture.
    RxingGlobal,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Rxing => "rxing",
            Stage::RxingInverted => "rxing_inverted",
            Stage::RxingHalved => "rxing_halved",
            Stage::RxingClassic => "rxing_classic",
            Stage::Rqrr => "rqrr",
            Stage::RxingUpscaled => "rxing_upscaled",
            Stage::RxingInvertedLuma => "rxing_inverted_luma",
            Stage::RxingGlobal => "rxing_global",
        }
    }
}

/// A payload and the stage that read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decoded {
    #[serde(flatten)]
    pub payload: Payload,
    pub stage: Stage,
}

/// What one run of the pipeline on one frame found, and what it cost.
#[derive(Clone, Debug, Default)]
pub struct DecodeOutcome {
    /// Distinct payloads, from the first stage that read anything.
    pub codes: Vec<Decoded>,
    /// Stages that ran.
    pub stages_run: u32,
    /// Stages left out because the frame's budget was spent.
    pub stages_skipped: u32,
    /// Decoder panics caught (each counts as "nothing read" for its stage).
    pub panics: u32,
    /// Camera schedule: the screen found nothing code-like, so the core did not run.
    pub screened_out: bool,
    pub elapsed: Duration,
}

/// Stages and a per-frame time budget.
///
/// `core` stages run on every frame; `extras` are the slower retries. On a still image
/// ([`Pipeline::decode`]) every extra runs until one reads a code. On a camera
/// ([`Pipeline::decode_nth`]) every `extra_every`-th frame gets one slot, taking turns over the
/// extras. With `screen` (the standard pipeline) each camera frame is first looked at cheaply
/// ([`screen`]: a half-size binarisation, pixel noise, finder patterns): the core runs only when
/// three finder patterns of one polarity show there — and always on a slot frame, at full
/// resolution, so a small code the half-size look misses is still read within `extra_every`
/// frames (0.1 s at 30 fps), not once a cycle. An empty or noise frame costs the look, and one
/// frame in `extra_every` the core and its slot. A code held in view meets every slot within
/// [`Pipeline::cycle_frames`] frames (18, 0.6 s at 30 fps). No stage starts once the budget is
/// spent, so a frame costs at most the budget plus one stage; meanwhile the capture loop keeps
/// only the newest frame, so decoding never lags the camera.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub core: Vec<Stage>,
    pub extras: Vec<Stage>,
    /// On a camera, give one frame in this many a slot (1 = every frame).
    pub extra_every: u64,
    pub budget: Duration,
    /// On a camera, look at each frame cheaply first ([`screen`]) and run the core only when
    /// something code-like shows, or on a slot frame.
    pub screen: bool,
}

/// Upscaling only helps small images; above this short side it only costs time.
const UPSCALE_MAX_SHORT_SIDE: u32 = 640;
/// Halving a frame whose short side is below this leaves too few pixels per module.
const HALVE_MIN_SHORT_SIDE: u32 = 200;

impl Pipeline {
    /// The production pipeline (see `docs/camera.md` for the measurements behind the order).
    pub fn standard(budget: Duration) -> Self {
        Self {
            core: vec![Stage::Rxing, Stage::RxingInverted],
            extras: vec![
                Stage::RxingHalved,
                Stage::RxingClassic,
                Stage::RxingInvertedLuma,
                Stage::Rqrr,
                Stage::RxingUpscaled,
                Stage::RxingGlobal,
            ],
            extra_every: 3,
            budget,
            screen: true,
        }
    }

    /// Frames a code must stay in view on a camera for every slot to get its turn.
    pub fn cycle_frames(&self) -> u64 {
        self.extra_every.max(1) * (self.slots() as u64).max(1)
    }

    /// Slots on the camera schedule: one for each extra.
    fn slots(&self) -> usize {
        self.extras.len()
    }

    /// Exactly these stages, in order, no budget (for measurements and tests).
    pub fn only(stages: &[Stage]) -> Self {
        Self {
            core: stages.to_vec(),
            extras: Vec::new(),
            extra_every: 1,
            budget: Duration::MAX,
            screen: false,
        }
    }

    /// rxing alone, once (for measurements).
    pub fn rxing_only() -> Self {
        Self::only(&[Stage::Rxing])
    }

    /// rqrr alone, once (for measurements; the product card's decoder).
    pub fn rqrr_only() -> Self {
        Self::only(&[Stage::Rqrr])
    }

    /// Still image: the core, then every extra, until one reads a code or the budget is spent.
    pub fn decode(&self, frame: &LumaFrame) -> DecodeOutcome {
        let stages: Vec<Stage> = self.core.iter().chain(&self.extras).copied().collect();
        self.run(frame, &stages, Instant::now())
    }

    /// Camera frame number `n`: the core (when the screen lets it, see [`Pipeline`]), plus the
    /// slot of every `extra_every`-th frame.
    pub fn decode_nth(&self, frame: &LumaFrame, n: u64) -> DecodeOutcome {
        let start = Instant::now();
        let every = self.extra_every.max(1);
        let slot = (self.slots() > 0 && n % every == every - 1)
            .then(|| ((n / every) % self.slots() as u64) as usize);
        if !self.screen {
            let mut stages = self.core.clone();
            stages.extend(slot.map(|s| self.extras[s]));
            return self.run(frame, &stages, start);
        }
        // A slot frame runs the core whatever the screen says (a small code it misses is read
        // within `extra_every` frames), then the slot's extra.
        let slot_frame = slot.is_some();
        let extra = slot.map(|s| self.extras[s]);
        let codeish = slot_frame || (start.elapsed() < self.budget && screen(frame));
        let mut stages = if codeish {
            self.core.clone()
        } else {
            Vec::new()
        };
        stages.extend(extra);
        let mut out = self.run(frame, &stages, start);
        out.screened_out = !codeish;
        out
    }

    fn run(&self, frame: &LumaFrame, stages: &[Stage], start: Instant) -> DecodeOutcome {
        let mut out = DecodeOutcome::default();
        // The binarised frame, kept from `Rxing` for `RxingInverted`.
        let mut bitmap: Option<RxingBitmap<'_>> = None;
        for (i, &stage) in stages.iter().enumerate() {
            if start.elapsed() >= self.budget {
                out.stages_skipped = (stages.len() - i) as u32;
                break;
            }
            let found = match stage {
                Stage::Rxing | Stage::RxingInverted => {
                    let invert = stage == Stage::RxingInverted;
                    contained(|| {
                        let bm = match bitmap.as_mut() {
                            Some(bm) => bm,
                            None => match rxing_bitmap(frame) {
                                Some(bm) => bitmap.insert(bm),
                                None => return Vec::new(),
                            },
                        };
                        if invert {
                            bm.invert();
                        }
                        let found = rxing_cpp(bm);
                        if invert {
                            bm.invert();
                        }
                        found
                    })
                }
                Stage::RxingHalved => {
                    if frame.width.min(frame.height) < HALVE_MIN_SHORT_SIDE {
                        continue;
                    }
                    contained(|| rxing_frame(&frame.halved()))
                }
                Stage::RxingClassic => contained(|| {
                    rxing_bitmap(frame)
                        .map(|mut bm| rxing_classic(&mut bm))
                        .unwrap_or_default()
                }),
                Stage::Rqrr => contained(|| rqrr_decode(frame)),
                Stage::RxingUpscaled => {
                    if frame.width.min(frame.height) > UPSCALE_MAX_SHORT_SIDE {
                        continue;
                    }
                    contained(|| rxing_frame(&frame.upscaled(2)))
                }
                Stage::RxingInvertedLuma => contained(|| rxing_frame(&frame.inverted())),
                Stage::RxingGlobal => contained(|| rxing_global(frame)),
            };
            out.stages_run += 1;
            match found {
                Ok(payloads) if !payloads.is_empty() => {
                    let mut seen = HashSet::new();
                    out.codes = payloads
                        .into_iter()
                        .filter(|p| seen.insert(p.clone()))
                        .map(|payload| Decoded { payload, stage })
                        .collect();
                    break;
                }
                Ok(_) => {}
                Err(msg) => {
                    out.panics += 1;
                    // A panic may leave the cached bitmap half-inverted: drop it.
                    bitmap = None;
                    log::warn!(
                        "camera: {} panicked on a {}x{} frame: {msg}",
                        stage.name(),
                        frame.width,
                        frame.height
                    );
                }
            }
        }
        out.elapsed = start.elapsed();
        out
    }
}

/// Frames whose short side is below this are not screened (the core on them is cheap).
const SCREEN_MIN_SHORT_SIDE: u32 = 200;
/// Side of the noise test's square tiles, in pixels of the half-size frame.
const NOISE_TILE: u32 = 16;

/// The camera schedule's first look at a frame: is there anything code-like? On a half-size
/// copy (a quarter of the pixels), rxing's hybrid binarisation, then: a frame that is pixel
/// noise almost everywhere ([`mostly_noise`]) is not; otherwise it is when rxing's finder-pattern
/// search (the first step of its reader) finds the three finder patterns a QR code needs in one
/// polarity. Codes too small or too faint to show here are still read on the frames whose slot
/// is the full-resolution core, and by the extras. Panics count as "code-like".
pub fn screen(frame: &LumaFrame) -> bool {
    if frame.width.min(frame.height) < SCREEN_MIN_SHORT_SIDE {
        return true;
    }
    contained(|| {
        let half = frame.halved();
        let Ok(source) = Luma8Source::new_with_slice(&half.data, half.width, half.height) else {
            return true;
        };
        let mut bm = BinaryBitmap::new(LocalBinarizer::new(source));
        if mostly_noise(bm.get_black_matrix()) {
            return false;
        }
        if FindFinderPatterns(bm.get_black_matrix(), true, 0).len() >= 3 {
            return true;
        }
        bm.invert();
        FindFinderPatterns(bm.get_black_matrix(), true, 0).len() >= 3
    })
    .unwrap_or(true)
}

/// Pixel noise almost everywhere: in at least 90 % of the tiles, sampled rows change colour at
/// more than 40 % of pixel steps. A QR code whose modules are two pixels or more changes at most
/// at about half of them even at full resolution, and a real scene far less; white noise at
/// every other step.
fn mostly_noise(m: &BitMatrix) -> bool {
    let (tx, ty) = (m.width() / NOISE_TILE, m.height() / NOISE_TILE);
    if tx == 0 || ty == 0 {
        return false;
    }
    let mut noisy = 0u32;
    for j in 0..ty {
        for i in 0..tx {
            let (x0, y0) = (i * NOISE_TILE, j * NOISE_TILE);
            let (mut flips, mut steps) = (0u32, 0u32);
            for y in (y0 + 1..y0 + NOISE_TILE).step_by(4) {
                let mut prev = m.get(x0, y);
                for x in x0 + 1..x0 + NOISE_TILE {
                    let b = m.get(x, y);
                    flips += u32::from(b != prev);
                    prev = b;
                    steps += 1;
                }
            }
            if flips * 10 > steps * 4 {
                noisy += 1;
            }
        }
    }
    noisy * 10 >= tx * ty * 9
}

/// Runs a third-party decoder, turning a panic into an error message.
fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        e.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| e.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".to_string())
    })
}

/// zxing's hybrid binarisation, computed by [`LocalBinarizer`] (the same matrix as rxing's
/// `HybridBinarizer`, in a fifth to a half of its time).
type RxingBitmap<'a> = BinaryBitmap<LocalBinarizer<'a>>;

fn qr_hints() -> DecodeHints {
    DecodeHints {
        PossibleFormats: Some(HashSet::from([BarcodeFormat::QR_CODE])),
        TryHarder: Some(true),
        ..DecodeHints::default()
    }
}

fn rxing_bitmap(frame: &LumaFrame) -> Option<RxingBitmap<'_>> {
    let source = Luma8Source::new_with_slice(&frame.data, frame.width, frame.height).ok()?;
    Some(BinaryBitmap::new(LocalBinarizer::new(source)))
}

/// zxing-cpp's reader: every QR code in the frame in one pass.
fn rxing_cpp(bitmap: &mut RxingBitmap<'_>) -> Vec<Payload> {
    QrReader
        .decode_multiple_with_hints(bitmap, &qr_hints())
        .map(|results| results.iter().map(rxing_payload).collect())
        .unwrap_or_default()
}

/// zxing's original reader: one code.
fn rxing_classic(bitmap: &mut RxingBitmap<'_>) -> Vec<Payload> {
    QRCodeReader
        .decode_with_hints(bitmap, &qr_hints())
        .map(|r| vec![rxing_payload(&r)])
        .unwrap_or_default()
}

/// zxing-cpp's reader on a global-histogram binarisation, then on its inverse.
fn rxing_global(frame: &LumaFrame) -> Vec<Payload> {
    let Ok(source) = Luma8Source::new_with_slice(&frame.data, frame.width, frame.height) else {
        return Vec::new();
    };
    let mut bm = BinaryBitmap::new(GlobalHistogramBinarizer::new(source));
    let hints = qr_hints();
    let mut found: Vec<Payload> = QrReader
        .decode_multiple_with_hints(&mut bm, &hints)
        .map(|results| results.iter().map(rxing_payload).collect())
        .unwrap_or_default();
    if found.is_empty() {
        bm.invert();
        found = QrReader
            .decode_multiple_with_hints(&mut bm, &hints)
            .map(|results| results.iter().map(rxing_payload).collect())
            .unwrap_or_default();
    }
    found
}

fn rxing_frame(frame: &LumaFrame) -> Vec<Payload> {
    rxing_bitmap(frame)
        .map(|mut bm| rxing_cpp(&mut bm))
        .unwrap_or_default()
}

/// rxing hands back text it has already decoded (ECI, else a UTF-8 / Shift_JIS / ISO-8859-1 guess).
/// When that guess was ISO-8859-1 for bytes that are not UTF-8, the content is binary as far as a
/// POS is concerned: return the raw content bytes instead of a Latin-1 reading of them. The raw
/// content is `getRawBytes()` for the zxing-cpp port and the byte segments for the classic reader
/// (whose `getRawBytes()` are codewords, which never equal the text's bytes).
fn rxing_payload(result: &RXingResult) -> Payload {
    let text = result.getText();
    let segments = match result
        .getRXingResultMetadata()
        .get(&RXingResultMetadataType::BYTE_SEGMENTS)
    {
        Some(RXingResultMetadataValue::ByteSegments(segments)) => Some(segments.concat()),
        _ => None,
    };
    let latin1 = latin1(text);
    for raw in [Some(result.getRawBytes().to_vec()), segments]
        .into_iter()
        .flatten()
    {
        if std::str::from_utf8(&raw).is_err() && latin1.as_deref() == Some(raw.as_slice()) {
            return Payload { bytes: raw };
        }
    }
    Payload {
        bytes: text.as_bytes().to_vec(),
    }
}

fn latin1(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

fn rqrr_decode(frame: &LumaFrame) -> Vec<Payload> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| frame.data[y * w + x]);
    img.detect_grids()
        .into_iter()
        .filter_map(|grid| {
            let mut raw = Vec::new();
            grid.decode_to(&mut raw).ok()?;
            Some(text_or_raw(raw))
        })
        .collect()
}

/// rqrr returns the raw content bytes (kanji segments as Shift_JIS). Apply zxing's rule: UTF-8 if
/// it is UTF-8, Shift_JIS if it decodes cleanly as Shift_JIS, raw bytes otherwise.
fn text_or_raw(raw: Vec<u8>) -> Payload {
    if std::str::from_utf8(&raw).is_ok() {
        return Payload { bytes: raw };
    }
    let (text, had_errors) = encoding_rs::SHIFT_JIS.decode_without_bom_handling(&raw);
    if !had_errors {
        return Payload {
            bytes: text.into_owned().into_bytes(),
        };
    }
    Payload { bytes: raw }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_serializes_text_or_hex() {
        let t = Payload {
            bytes: b"P1.abc".to_vec(),
        };
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"text":"P1.abc"}"#);
        let b = Payload {
            bytes: vec![0xff, 0x00],
        };
        assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"hex":"ff00"}"#);
    }

    #[test]
    fn shift_jis_becomes_utf8_and_binary_stays_raw() {
        // "テスト" in Shift_JIS
        let sjis = vec![0x83, 0x65, 0x83, 0x58, 0x83, 0x67];
        assert_eq!(text_or_raw(sjis).text(), Some("テスト"));
        let bin = vec![0x80, 0xff, 0x00];
        assert_eq!(text_or_raw(bin.clone()).bytes, bin);
    }

    #[test]
    fn panics_are_contained() {
        let r: Result<(), String> = contained(|| panic!("boom"));
        assert_eq!(r.unwrap_err(), "boom");
    }

    #[test]
    fn blank_frame_reads_nothing_and_budget_zero_runs_nothing() {
        let f = LumaFrame::new(64, 48, vec![200; 64 * 48]).unwrap();
        let out = Pipeline::standard(Duration::from_secs(1)).decode(&f);
        assert!(out.codes.is_empty());
        assert!(out.stages_run >= 3);
        let out = Pipeline::standard(Duration::ZERO).decode(&f);
        assert_eq!((out.stages_run, out.stages_skipped), (0, 8));
        // Camera schedule: frame 2 has slot 0 — the core whatever the screen says, then the
        // first extra (no budget: all three skipped).
        let p = Pipeline::standard(Duration::ZERO);
        let out = p.decode_nth(&f, 2);
        assert_eq!((out.stages_run, out.stages_skipped), (0, 3));
        assert!(!out.screened_out);
        // Frame 3 has no slot, and there is no time for the screen either: nothing runs.
        let out = p.decode_nth(&f, 3);
        assert_eq!((out.stages_run, out.stages_skipped), (0, 0));
        assert!(out.screened_out);
        assert_eq!(p.cycle_frames(), 18);
    }

    #[test]
    fn the_screen_passes_codes_and_drops_noise_and_flat_frames() {
        let flat = LumaFrame::new(640, 480, vec![128; 640 * 480]).unwrap();
        assert!(!screen(&flat));
        let mut x = 7u64;
        let noise: Vec<u8> = (0..640 * 480)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        let noise = LumaFrame::new(640, 480, noise).unwrap();
        assert!(!screen(&noise));
        let p = Pipeline::standard(Duration::from_secs(1));
        let out = p.decode_nth(&noise, 0);
        assert!(out.screened_out && out.stages_run == 0 && out.codes.is_empty());
        // A small frame is never screened out.
        let small = LumaFrame::new(64, 48, vec![200; 64 * 48]).unwrap();
        assert!(screen(&small));
    }
}
