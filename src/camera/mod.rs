//! Camera scanning (DESIGN.md §3 "Camera"): read QR codes from a V4L2 camera or from image files.
//!
//! Layers, from pure to I/O:
//! - [`frame`]: luma frames and cheap conversions (YUYV/NV12/GRAY/RGB/MJPEG/PNG/WebP → luma);
//! - [`binarize`]: zxing's local-threshold binarisation, the same matrix as rxing's, cheaper;
//! - [`decode`]: the decode pipeline (rxing, rqrr as second opinion, inverted and upscaled
//!   retries), panic-contained and bounded by a per-frame time budget;
//! - [`dedupe`]: one scan per presentation of a code;
//! - [`source`]: where frames come from ([`source::FrameSource`]: a V4L2 camera via nokhwa, or an
//!   image sequence for tests and demos);
//! - [`capture`]: the async loop the daemon runs: newest frame only, decode, de-duplicate, send,
//!   and keep a device status (absent / ok / error, retrying) instead of ever crashing.
//!
//! Entry points: [`scan_image_files`] for `posctl code scan-image`, [`capture::run_capture`] for
//! the daemon, [`CameraConfig`] for `posd.toml`'s `[camera]` table.

pub mod binarize;
pub mod capture;
pub mod decode;
pub mod dedupe;
pub mod frame;
pub mod source;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use capture::{run_capture, CameraStatus, ScannedCode};
pub use decode::{DecodeOutcome, Decoded, Payload, Pipeline, Stage};
pub use frame::LumaFrame;
pub use source::{FrameSource, ImageSequenceSource, SourceError, V4lSource};

/// Errors of the camera path that are not about the device itself (see [`SourceError`]).
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("bad frame: {0}")]
    Frame(String),
    #[error("cannot read image: {0}")]
    Image(String),
    #[error("invalid camera config: {0}")]
    Config(String),
}

/// One line of `posctl code scan-image --json`.
#[derive(Clone, Debug, Serialize)]
pub struct ScanImageReport {
    pub file: String,
    /// Distinct codes read, each `{"text": ...}` or `{"hex": ...}` plus the stage that read it.
    pub payloads: Vec<Decoded>,
    /// Decode time (the pipeline only, not reading the file).
    pub ms: f64,
    /// Time to read and convert the file to luma.
    pub load_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs the standard pipeline on image files (PNG, JPEG, WebP). Files are not a live stream, so
/// there is no per-frame budget: every stage runs until one reads a code.
pub fn scan_image_files(paths: &[PathBuf]) -> Vec<ScanImageReport> {
    scan_image_files_with(paths, &Pipeline::standard(Duration::MAX))
}

/// [`scan_image_files`] with a chosen pipeline (e.g. the camera's budget, or one decoder alone).
pub fn scan_image_files_with(paths: &[PathBuf], pipeline: &Pipeline) -> Vec<ScanImageReport> {
    paths
        .iter()
        .map(|path| {
            let file = path.display().to_string();
            let t0 = Instant::now();
            match LumaFrame::from_file(path) {
                Ok(frame) => {
                    let load_ms = ms(t0.elapsed());
                    let out = pipeline.decode(&frame);
                    ScanImageReport {
                        file,
                        payloads: out.codes,
                        ms: ms(out.elapsed),
                        load_ms,
                        error: None,
                    }
                }
                Err(e) => ScanImageReport {
                    file,
                    payloads: Vec::new(),
                    ms: 0.0,
                    load_ms: ms(t0.elapsed()),
                    error: Some(e.to_string()),
                },
            }
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_a_report_not_a_panic() {
        let r = scan_image_files(&[PathBuf::from("/nonexistent/x.png")]);
        assert_eq!(r.len(), 1);
        assert!(r[0].error.is_some());
        assert!(r[0].payloads.is_empty());
    }
}
