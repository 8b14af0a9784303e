//! Where frames come from: the [`FrameSource`] trait, the V4L2 camera behind it (nokhwa), and an
//! image-sequence source that drives the very same capture loop in tests and demos.
//!
//! A source only captures and converts to luma; opening, retrying, dropping stale frames and
//! decoding are the capture loop's job, so a camera and a file sequence share all of that code.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nokhwa::utils::{CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType};

use super::{CameraError, LumaFrame};
use crate::config::devices::CameraConfig;

/// Why a source has no frame for us. Every variant is a status and a retry, never a crash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// No such device (not plugged in, wrong index or path).
    #[error("absent: {0}")]
    Absent(String),
    /// The device exists but another process holds it.
    #[error("busy: {0}")]
    Busy(String),
    /// The device went away while streaming (unplugged).
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// Anything else: permissions, unsupported formats, a bad frame, a driver error.
    #[error("{0}")]
    Other(String),
}

/// What an opened source delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    pub description: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// A producer of luma frames. Implementations are driven from one dedicated thread (so they
/// need not be `Send`; nokhwa's camera is not) and may block in [`FrameSource::next_frame`].
pub trait FrameSource {
    /// A human-readable name for status lines and logs.
    fn describe(&self) -> String;
    /// Opens (or re-opens after an error) the device.
    fn open(&mut self) -> Result<SourceInfo, SourceError>;
    /// Blocks until the next frame. `Ok(None)` means the source has ended for good (an image
    /// sequence ran out); a camera never ends.
    fn next_frame(&mut self) -> Result<Option<LumaFrame>, SourceError>;
    /// Releases the device; `open` may be called again afterwards.
    fn close(&mut self);
    /// A live source overwrites frames the decoder has not taken yet (it only ever sees the
    /// newest); a non-live one waits until the previous frame was taken, so none is lost.
    fn is_live(&self) -> bool {
        true
    }
}

/// A fixed list of frames, played once, stamped `i × interval` on the frame clock.
///
/// Not live by default (every frame is decoded, deterministic); [`ImageSequenceSource::live`]
/// makes it pace itself at `interval` and lets the capture loop drop stale frames, like a camera.
pub struct ImageSequenceSource {
    name: String,
    frames: Vec<LumaFrame>,
    interval: Duration,
    next: usize,
    live: bool,
    started: Option<Instant>,
}

impl ImageSequenceSource {
    pub fn new(name: impl Into<String>, frames: Vec<LumaFrame>, interval: Duration) -> Self {
        let frames = frames
            .into_iter()
            .enumerate()
            .map(|(i, f)| f.at(interval.saturating_mul(i as u32)))
            .collect();
        Self {
            name: name.into(),
            frames,
            interval,
            next: 0,
            live: false,
            started: None,
        }
    }

    /// Loads image files (PNG, JPEG, WebP) as a sequence.
    pub fn from_files(paths: &[PathBuf], interval: Duration) -> Result<Self, CameraError> {
        let frames = paths
            .iter()
            .map(|p| LumaFrame::from_file(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(
            format!("{} image(s)", paths.len()),
            frames,
            interval,
        ))
    }

    /// Plays in real time and lets the capture loop drop frames it has no time for.
    pub fn live(mut self, live: bool) -> Self {
        self.live = live;
        self
    }
}

impl FrameSource for ImageSequenceSource {
    fn describe(&self) -> String {
        format!("image sequence {}", self.name)
    }

    fn open(&mut self) -> Result<SourceInfo, SourceError> {
        let first = self
            .frames
            .first()
            .ok_or_else(|| SourceError::Absent(format!("{}: no frames", self.name)))?;
        self.started = Some(Instant::now());
        Ok(SourceInfo {
            description: self.describe(),
            width: first.width,
            height: first.height,
            fps: (1000 / self.interval.as_millis().max(1)) as u32,
        })
    }

    fn next_frame(&mut self) -> Result<Option<LumaFrame>, SourceError> {
        let Some(frame) = self.frames.get(self.next) else {
            return Ok(None);
        };
        if self.live {
            if let Some(started) = self.started {
                let due = started + frame.timestamp;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
        self.next += 1;
        Ok(Some(frame.clone()))
    }

    fn close(&mut self) {}

    fn is_live(&self) -> bool {
        self.live
    }
}

/// A V4L2 camera through nokhwa. Asks for YUYV (then GRAY, NV12, MJPEG) at the configured
/// size and rate, closest match; luma is taken straight from the raw frame.
pub struct V4lSource {
    config: CameraConfig,
    camera: Option<nokhwa::Camera>,
    /// The frame clock: kept across re-opens so timestamps never go backwards.
    epoch: Instant,
}

/// Formats we can turn into luma, cheapest first.
const WANTED_FORMATS: [FrameFormat; 4] = [
    FrameFormat::YUYV,
    FrameFormat::GRAY,
    FrameFormat::NV12,
    FrameFormat::MJPEG,
];

impl V4lSource {
    pub fn new(config: CameraConfig) -> Self {
        Self {
            config,
            camera: None,
            epoch: Instant::now(),
        }
    }

    /// Resolves `device` ("2", "/dev/video2", or a symlink like /dev/v4l/by-id/...) to the
    /// V4L2 index nokhwa wants. A bare index is passed on unchecked (nokhwa then reports a
    /// missing device itself); a path must exist.
    pub fn resolve_index(device: &str) -> Result<u32, SourceError> {
        let device = device.trim();
        if let Ok(i) = device.parse::<u32>() {
            return Ok(i);
        }
        let path = PathBuf::from(device);
        if !path.exists() {
            return Err(SourceError::Absent(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let real = std::fs::canonicalize(&path)
            .map_err(|e| SourceError::Other(format!("{}: {e}", path.display())))?;
        index_of(&real).ok_or_else(|| {
            SourceError::Other(format!(
                "{} ({}) is not a /dev/videoN device",
                path.display(),
                real.display()
            ))
        })
    }

    /// The device node, if it (still) exists.
    fn device_node(&self) -> Option<PathBuf> {
        Self::resolve_index(&self.config.device)
            .ok()
            .map(|i| PathBuf::from(format!("/dev/video{i}")))
            .filter(|p| p.exists())
    }
}

fn index_of(path: &Path) -> Option<u32> {
    path.file_name()?
        .to_str()?
        .strip_prefix("video")?
        .parse()
        .ok()
}

/// Sorts nokhwa's error text into our kinds (nokhwa reports errno only as text).
fn classify(context: &str, err: &nokhwa::NokhwaError) -> SourceError {
    let msg = format!("{context}: {err}");
    let lower = msg.to_ascii_lowercase();
    if lower.contains("busy") {
        SourceError::Busy(msg)
    } else if lower.contains("no such file") || lower.contains("no such device") {
        SourceError::Absent(msg)
    } else {
        SourceError::Other(msg)
    }
}

impl FrameSource for V4lSource {
    fn describe(&self) -> String {
        format!("v4l2 {}", self.config.device)
    }

    fn open(&mut self) -> Result<SourceInfo, SourceError> {
        self.close();
        let index = Self::resolve_index(&self.config.device)?;
        let node = format!("/dev/video{index}");
        let c = &self.config;
        let wanted = CameraFormat::new_from(c.width, c.height, FrameFormat::YUYV, c.fps);
        let request =
            RequestedFormat::with_formats(RequestedFormatType::Closest(wanted), &WANTED_FORMATS);
        let context = node;
        let mut camera = nokhwa::Camera::new(CameraIndex::Index(index), request)
            .map_err(|e| classify(&context, &e))?;
        camera.open_stream().map_err(|e| classify(&context, &e))?;
        let format = camera.camera_format();
        let info = SourceInfo {
            description: format!(
                "{context} {} {}",
                format.format(),
                camera.info().human_name()
            ),
            width: format.resolution().width(),
            height: format.resolution().height(),
            fps: format.frame_rate(),
        };
        self.camera = Some(camera);
        Ok(info)
    }

    fn next_frame(&mut self) -> Result<Option<LumaFrame>, SourceError> {
        let camera = self
            .camera
            .as_mut()
            .ok_or_else(|| SourceError::Other("camera not open".into()))?;
        // nokhwa turns the driver's bytes into a buffer: third-party code on device data,
        // contained like the decoders (a panic becomes an error: status, close, re-open).
        let frame = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| camera.frame()))
            .map_err(|_| SourceError::Other("the camera driver's frame read panicked".into()))?;
        let buffer = match frame {
            Ok(b) => b,
            Err(e) => {
                let gone = self.device_node().is_none();
                let err = classify(&self.config.device, &e);
                return Err(if gone {
                    SourceError::Disconnected(err.to_string())
                } else {
                    err
                });
            }
        };
        let timestamp = self.epoch.elapsed();
        let res = buffer.resolution();
        let (w, h) = (res.width(), res.height());
        let raw = buffer.buffer();
        let frame = match buffer.source_frame_format() {
            FrameFormat::YUYV => LumaFrame::from_yuyv(w, h, raw),
            FrameFormat::GRAY | FrameFormat::NV12 => LumaFrame::from_luma_plane(w, h, raw),
            FrameFormat::RAWRGB => LumaFrame::from_rgb(w, h, raw, false),
            FrameFormat::RAWBGR => LumaFrame::from_rgb(w, h, raw, true),
            // Third-party code on bytes from the device: contained (a panic would end this
            // thread silently, the camera left "ok" with no frames), within the negotiated size
            // up to whole 16-pixel blocks (some cameras say 1088 lines for a 1080-line mode).
            FrameFormat::MJPEG => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                LumaFrame::from_jpeg_within(raw, w.div_ceil(16) * 16, h.div_ceil(16) * 16)
            }))
            .unwrap_or_else(|_| {
                Err(CameraError::Image(
                    "MJPEG frame: the decoder panicked".into(),
                ))
            }),
        }
        .map_err(|e| SourceError::Other(e.to_string()))?;
        Ok(Some(frame.at(timestamp)))
    }

    fn close(&mut self) {
        if let Some(mut camera) = self.camera.take() {
            if let Err(e) = camera.stop_stream() {
                log::debug!("camera: stop_stream: {e}");
            }
        }
    }
}

impl Drop for V4lSource {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths_resolve_or_report_absent() {
        assert_eq!(index_of(Path::new("/dev/video7")), Some(7));
        assert_eq!(index_of(Path::new("/dev/null")), None);
        match V4lSource::resolve_index("/dev/null") {
            Err(SourceError::Other(m)) => assert!(m.contains("not a /dev/videoN")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            V4lSource::resolve_index("/nonexistent/video0"),
            Err(SourceError::Absent(_))
        ));
    }

    #[test]
    fn image_sequence_stamps_and_ends() {
        let f = LumaFrame::new(2, 2, vec![0; 4]).unwrap();
        let mut s = ImageSequenceSource::new("t", vec![f.clone(), f], Duration::from_millis(40));
        assert_eq!(s.open().unwrap().width, 2);
        assert_eq!(s.next_frame().unwrap().unwrap().timestamp, Duration::ZERO);
        assert_eq!(
            s.next_frame().unwrap().unwrap().timestamp,
            Duration::from_millis(40)
        );
        assert_eq!(s.next_frame().unwrap(), None);
        let mut empty = ImageSequenceSource::new("e", vec![], Duration::from_millis(40));
        assert!(matches!(empty.open(), Err(SourceError::Absent(_))));
    }
}
