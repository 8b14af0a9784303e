//! The capture loop the daemon runs: one thread owns the [`FrameSource`] (open, read, retry),
//! a one-frame mailbox keeps only the newest frame, and the async side decodes it on the blocking
//! pool, de-duplicates and sends each new scan. A missing, busy or unplugged camera is a
//! [`CameraStatus`] and a retry, never a crash.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch, Notify};

use super::decode::{Payload, Pipeline, Stage};
use super::dedupe::Deduper;
use super::source::{FrameSource, SourceError};
use super::{CameraError, LumaFrame};
use crate::config::devices::CameraConfig;

/// A new scan: a code that was not in view a moment ago.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScannedCode {
    pub payload: Payload,
    /// Which pipeline stage read it.
    pub stage: Stage,
    /// The frame's capture time on the source's clock.
    pub frame_timestamp: Duration,
}

/// The camera's state as the daemon shows it (status topic, `posctl status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CameraStatus {
    /// `run_capture` has not opened anything yet.
    Starting,
    /// Streaming.
    Ok {
        device: String,
        width: u32,
        height: u32,
        fps: u32,
    },
    /// No such device; retried every `retry_ms`.
    Absent {
        device: String,
        detail: String,
        attempts: u32,
        retry_ms: u64,
    },
    /// Busy, unplugged mid-stream, or any other failure; retried every `retry_ms`.
    Error {
        device: String,
        detail: String,
        attempts: u32,
        retry_ms: u64,
    },
    /// The loop has ended (the scan receiver went away, or a finite source ran out).
    Stopped,
}

impl std::fmt::Display for CameraStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CameraStatus::Starting => write!(f, "starting"),
            CameraStatus::Ok {
                device,
                width,
                height,
                fps,
            } => write!(f, "ok: {device} {width}x{height}@{fps}"),
            CameraStatus::Absent {
                detail, retry_ms, ..
            } => write!(f, "absent: {detail} (retrying every {retry_ms} ms)"),
            CameraStatus::Error {
                detail, retry_ms, ..
            } => write!(f, "error: {detail} (retrying every {retry_ms} ms)"),
            CameraStatus::Stopped => write!(f, "stopped"),
        }
    }
}

/// Counters for one run of [`run_capture`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CaptureSummary {
    /// Frames the source delivered.
    pub captured: u64,
    /// Frames decoded.
    pub decoded: u64,
    /// Frames overwritten by a newer one before the decoder got to them.
    pub dropped: u64,
    /// Frames on which some stage was skipped for lack of budget.
    pub over_budget: u64,
    /// Decoder panics caught.
    pub panics: u64,
    /// Scans sent.
    pub scans: u64,
    /// Times the source was opened successfully.
    pub opens: u64,
}

/// The one-frame mailbox between the source thread and the decoder.
#[derive(Default)]
struct Mailbox {
    state: Mutex<MailboxState>,
    /// Signalled when the decoder takes a frame (a non-live source waits for it).
    taken: Condvar,
    /// Signalled when a frame arrives or the source ends.
    ready: Notify,
}

#[derive(Default)]
struct MailboxState {
    frame: Option<LumaFrame>,
    ended: bool,
    captured: u64,
    dropped: u64,
    opens: u64,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, MailboxState> {
        // A poisoned lock only means a thread panicked while holding it; the data is counters
        // and an Option, always consistent, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a frame. Live: replaces an unread one (counted as dropped). Not live: waits until
    /// the previous frame was taken or `stop` is set.
    fn put(&self, frame: LumaFrame, live: bool, stop: &AtomicBool) {
        let mut st = self.lock();
        if !live {
            while st.frame.is_some() && !stop.load(Ordering::Relaxed) {
                st = self
                    .taken
                    .wait_timeout(st, Duration::from_millis(50))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        if st.frame.replace(frame).is_some() {
            st.dropped += 1;
        }
        st.captured += 1;
        drop(st);
        self.ready.notify_one();
    }

    fn end(&self) {
        self.lock().ended = true;
        self.ready.notify_one();
    }

    /// The newest frame, or `None` once the source has ended and nothing is left.
    async fn take(&self) -> Option<LumaFrame> {
        loop {
            {
                let mut st = self.lock();
                if let Some(f) = st.frame.take() {
                    drop(st);
                    self.taken.notify_all();
                    return Some(f);
                }
                if st.ended {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }
}

/// Sets the stop flag when `run_capture` returns or is cancelled, so the source thread ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the camera until `tx`'s receiver is dropped, the task is cancelled, or a finite source
/// (an image sequence) runs out. `make_source` is called on the capture thread, because a
/// nokhwa camera cannot move between threads.
///
/// Scans go to `tx`; the device state goes to `status`. Errors only for an invalid config.
pub async fn run_capture<F, S>(
    make_source: F,
    config: CameraConfig,
    tx: mpsc::Sender<ScannedCode>,
    status: watch::Sender<CameraStatus>,
) -> Result<CaptureSummary, CameraError>
where
    F: FnOnce() -> S + Send + 'static,
    S: FrameSource,
{
    config
        .validate()
        .map_err(|e| CameraError::Config(e.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_guard = StopOnDrop(stop.clone());
    let mailbox = Arc::new(Mailbox::default());
    let status = Arc::new(status);
    status.send_replace(CameraStatus::Starting);

    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let (mailbox, stop, status, config) = (
            mailbox.clone(),
            stop.clone(),
            status.clone(),
            config.clone(),
        );
        std::thread::Builder::new()
            .name("posd-camera".into())
            .spawn(move || {
                source_thread(make_source, &config, &mailbox, &stop, &status);
                let _ = done_tx.send(());
            })
            .map_err(|e| CameraError::Config(format!("cannot start camera thread: {e}")))?;
    }

    let pipeline = Arc::new(Pipeline::standard(config.frame_budget()));
    let mut dedupe = Deduper::new(config.hold_off());
    let mut summary = CaptureSummary::default();

    loop {
        let frame = tokio::select! {
            f = mailbox.take() => f,
            _ = tx.closed() => None,
        };
        let Some(frame) = frame else { break };
        let p = pipeline.clone();
        let n = summary.decoded;
        let (frame, outcome) = match tokio::task::spawn_blocking(move || {
            let out = p.decode_nth(&frame, n);
            (frame, out)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                // Decoders are already contained; this is a last line of defence.
                log::error!("camera: decode task failed: {e}");
                summary.panics += 1;
                continue;
            }
        };
        summary.decoded += 1;
        summary.panics += u64::from(outcome.panics);
        if outcome.stages_skipped > 0 {
            summary.over_budget += 1;
        }
        let new = dedupe.observe(frame.timestamp, outcome.codes.iter().map(|c| &c.payload));
        for payload in new {
            let stage = outcome
                .codes
                .iter()
                .find(|c| c.payload == payload)
                .map_or(Stage::Rxing, |c| c.stage);
            let scan = ScannedCode {
                payload,
                stage,
                frame_timestamp: frame.timestamp,
            };
            if tx.send(scan).await.is_err() {
                break;
            }
            summary.scans += 1;
        }
        if tx.is_closed() {
            break;
        }
    }

    stop.store(true, Ordering::Relaxed);
    mailbox.taken.notify_all();
    // The source thread notices `stop` within one frame or one 50 ms retry slice.
    let _ = tokio::time::timeout(Duration::from_secs(2), done_rx).await;
    {
        let st = mailbox.lock();
        summary.captured = st.captured;
        summary.dropped = st.dropped;
        summary.opens = st.opens;
    }
    status.send_replace(CameraStatus::Stopped);
    Ok(summary)
}

fn source_thread<F, S>(
    make_source: F,
    config: &CameraConfig,
    mailbox: &Mailbox,
    stop: &AtomicBool,
    status: &watch::Sender<CameraStatus>,
) where
    F: FnOnce() -> S,
    S: FrameSource,
{
    let mut source = make_source();
    let device = source.describe();
    let live = source.is_live();
    let retry_ms = config.retry_ms;
    let mut attempts: u32 = 0;
    let set_status = |s: CameraStatus| {
        if !stop.load(Ordering::Relaxed) {
            status.send_replace(s);
        }
    };
    // The same failure again (an absent camera, every retry_ms) is a warning once, then once
    // every 10 minutes; `status` shows it all along.
    let last_warned: std::cell::RefCell<Option<(String, std::time::Instant)>> =
        std::cell::RefCell::new(None);
    let failed = |err: &SourceError, attempts: u32| {
        let text = err.to_string();
        let mut last = last_warned.borrow_mut();
        let repeat = last.as_ref().is_some_and(|(t, at)| {
            *t == text && at.elapsed() < std::time::Duration::from_secs(600)
        });
        if repeat {
            log::debug!("camera {device}: {err} (attempt {attempts}); retrying in {retry_ms} ms");
        } else {
            log::warn!(
                "camera {device}: {err}; retrying every {retry_ms} ms (said again in 10 min \
                 if it persists; posctl status shows it)"
            );
            *last = Some((text, std::time::Instant::now()));
        }
        let device = device.clone();
        match err {
            SourceError::Absent(detail) => CameraStatus::Absent {
                detail: detail.clone(),
                device,
                attempts,
                retry_ms,
            },
            _ => CameraStatus::Error {
                device,
                detail: err.to_string(),
                attempts,
                retry_ms,
            },
        }
    };

    'open: while !stop.load(Ordering::Relaxed) {
        attempts = attempts.saturating_add(1);
        match source.open() {
            Ok(info) => {
                log::info!(
                    "camera: {} {}x{}@{}",
                    info.description,
                    info.width,
                    info.height,
                    info.fps
                );
                attempts = 0;
                mailbox.lock().opens += 1;
                set_status(CameraStatus::Ok {
                    device: info.description,
                    width: info.width,
                    height: info.height,
                    fps: info.fps,
                });
            }
            Err(e) => {
                set_status(failed(&e, attempts));
                sleep_unless_stopped(config.retry(), stop);
                continue 'open;
            }
        }
        while !stop.load(Ordering::Relaxed) {
            match source.next_frame() {
                Ok(Some(frame)) => mailbox.put(frame, live, stop),
                Ok(None) => {
                    source.close();
                    mailbox.end();
                    return;
                }
                Err(e) => {
                    source.close();
                    attempts = 1;
                    set_status(failed(&e, attempts));
                    sleep_unless_stopped(config.retry(), stop);
                    continue 'open;
                }
            }
        }
    }
    source.close();
    mailbox.end();
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let slice = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let d = left.min(slice);
        std::thread::sleep(d);
        left -= d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: u8) -> LumaFrame {
        LumaFrame::new(1, 1, vec![v]).unwrap()
    }

    #[tokio::test]
    async fn live_mailbox_keeps_only_the_newest_frame() {
        let m = Mailbox::default();
        let stop = AtomicBool::new(false);
        for v in 1..=3 {
            m.put(frame(v), true, &stop);
        }
        assert_eq!(m.take().await.unwrap().data, vec![3]);
        let st = m.lock();
        assert_eq!((st.captured, st.dropped), (3, 2));
    }

    #[tokio::test]
    async fn ended_mailbox_drains_then_returns_none() {
        let m = Mailbox::default();
        let stop = AtomicBool::new(false);
        m.put(frame(7), false, &stop);
        m.end();
        assert_eq!(m.take().await.unwrap().data, vec![7]);
        assert!(m.take().await.is_none());
    }

    #[test]
    fn status_displays_for_humans() {
        let s = CameraStatus::Absent {
            device: "v4l2 0".into(),
            detail: "/dev/video0 does not exist".into(),
            attempts: 3,
            retry_ms: 2000,
        };
        assert_eq!(
            s.to_string(),
            "absent: /dev/video0 does not exist (retrying every 2000 ms)"
        );
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["state"], "absent");
    }
}
