//! The capture loop driven through the same code as a camera: image sequences for scans and
//! de-duplication, a scripted flaky source for busy/unplugged cameras, and the real V4L2 source
//! on a machine without /dev/video* (absent → status and retry, never a crash).

mod camera_common;

use std::path::PathBuf;
use std::time::Duration;

use camera_common::{p1_code, render_qr};
use posd::camera::source::SourceInfo;
use posd::camera::{
    run_capture, CameraStatus, FrameSource, ImageSequenceSource, LumaFrame, ScannedCode,
    SourceError, V4lSource,
};
use posd::config::devices::CameraConfig;
use tokio::sync::{mpsc, watch};

const A: &str = "134567890123456789";
const B: &str = "287654321098765432";

fn code(text: &str) -> LumaFrame {
    render_qr(text.as_bytes(), 5, 640, 480, 20, 235)
}

fn blank() -> LumaFrame {
    LumaFrame::new(640, 480, vec![200; 640 * 480]).expect("size")
}

fn config(hold_off_ms: u64) -> CameraConfig {
    CameraConfig {
        hold_off_ms,
        // files are decoded in full whatever the machine's speed: no timing in these tests
        frame_budget_ms: 60_000,
        retry_ms: 20,
        ..CameraConfig::default()
    }
}

/// Runs a finite source to its end and returns the scans in order.
async fn scans_of(
    source: ImageSequenceSource,
    cfg: CameraConfig,
) -> (Vec<ScannedCode>, posd::camera::capture::CaptureSummary) {
    let (tx, mut rx) = mpsc::channel(64);
    let (status_tx, status_rx) = watch::channel(CameraStatus::Starting);
    let summary = run_capture(move || source, cfg, tx, status_tx)
        .await
        .expect("valid config");
    assert_eq!(*status_rx.borrow(), CameraStatus::Stopped);
    let mut scans = Vec::new();
    while let Ok(s) = rx.try_recv() {
        scans.push(s);
    }
    (scans, summary)
}

fn texts(scans: &[ScannedCode]) -> Vec<&str> {
    scans.iter().filter_map(|s| s.payload.text()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_held_for_many_frames_is_one_scan_and_shown_again_is_a_new_one() {
    // 30 fps frame clock (33 ms), hold-off 300 ms:
    // A for 10 frames, 2 blank frames (a missed read), A for 5 more: still one scan;
    // then 15 blank frames (500 ms > hold-off), A again: a second scan; then B while A stays.
    let mut frames = Vec::new();
    frames.extend(std::iter::repeat_n(code(A), 10));
    frames.extend(std::iter::repeat_n(blank(), 2));
    frames.extend(std::iter::repeat_n(code(A), 5));
    frames.extend(std::iter::repeat_n(blank(), 15));
    frames.extend(std::iter::repeat_n(code(A), 3));
    frames.extend(std::iter::repeat_n(code(B), 3));
    let n = frames.len() as u64;
    let source = ImageSequenceSource::new("dedupe", frames, Duration::from_millis(33));
    let (scans, summary) = scans_of(source, config(300)).await;
    assert_eq!(texts(&scans), [A, A, B]);
    // not live: every frame decoded, none dropped
    assert_eq!(
        (summary.captured, summary.decoded, summary.dropped),
        (n, n, 0)
    );
    assert_eq!(summary.scans, 3);
    assert_eq!(summary.opens, 1);
    // frame timestamps come from the source's clock
    assert_eq!(scans[0].frame_timestamp, Duration::ZERO);
    assert_eq!(scans[1].frame_timestamp, Duration::from_millis(33 * 32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_off_is_configurable() {
    // A, 4 blank frames (132 ms), A: one scan with a 300 ms hold-off, two with 100 ms.
    let frames = || {
        let mut f = vec![code(A)];
        f.extend(std::iter::repeat_n(blank(), 4));
        f.push(code(A));
        ImageSequenceSource::new("holdoff", f, Duration::from_millis(33))
    };
    assert_eq!(texts(&scans_of(frames(), config(300)).await.0), [A]);
    assert_eq!(texts(&scans_of(frames(), config(100)).await.0), [A, A]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_dark_mode_and_files_flow_through_the_loop() {
    let p1 = p1_code(1);
    let dir = std::env::temp_dir().join(format!("posd-camera-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("p1-dark.png");
    let f = render_qr(p1.as_bytes(), 4, 640, 480, 235, 20);
    image::GrayImage::from_raw(f.width, f.height, f.data.clone())
        .expect("size")
        .save(&path)
        .expect("write png");
    let source = ImageSequenceSource::from_files(&[path.clone(), path], Duration::from_millis(33))
        .expect("loads");
    let (scans, _) = scans_of(source, config(1000)).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(texts(&scans), [p1.as_str()]);
    assert_eq!(scans[0].stage, posd::camera::Stage::RxingInverted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_source_drops_stale_frames_but_accounts_for_every_one() {
    // Paced at 1 ms per frame, far faster than decoding: the loop keeps only the newest frame.
    // How many are dropped depends on the machine, so only the accounting is asserted, plus
    // that the final frame (a code, repeated) is read.
    let mut frames: Vec<LumaFrame> = std::iter::repeat_n(blank(), 40).collect();
    frames.extend(std::iter::repeat_n(code(B), 40));
    let source = ImageSequenceSource::new("live", frames, Duration::from_millis(1)).live(true);
    let (scans, s) = scans_of(source, config(10_000)).await;
    assert_eq!(s.captured, 80);
    assert_eq!(s.decoded + s.dropped, s.captured, "{s:?}");
    assert!(s.decoded >= 1);
    assert_eq!(texts(&scans), [B]);
}

/// Runs the real V4L2 source on `device` until its third failed attempt, then stops it.
async fn missing_camera(device: &str) -> CameraStatus {
    let cfg = CameraConfig {
        device: device.into(),
        ..config(500)
    };
    let (tx, rx) = mpsc::channel(4);
    let (status_tx, mut status_rx) = watch::channel(CameraStatus::Starting);
    let dev_cfg = cfg.clone();
    let task = tokio::spawn(run_capture(
        move || V4lSource::new(dev_cfg),
        cfg,
        tx,
        status_tx,
    ));
    // wait (bounded) until the third attempt has been reported
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            status_rx.changed().await.expect("status sender alive");
            let s = status_rx.borrow_and_update().clone();
            match &s {
                CameraStatus::Absent { attempts, .. } | CameraStatus::Error { attempts, .. }
                    if *attempts >= 3 =>
                {
                    return s
                }
                _ => {}
            }
        }
    })
    .await
    .expect("a failure status with retries");
    println!("{device}: {seen}");
    // the daemon stops the camera by dropping its scan receiver
    drop(rx);
    let summary = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("stops")
        .expect("no panic")
        .expect("valid config");
    assert_eq!((summary.opens, summary.captured), (0, 0));
    assert_eq!(*status_rx.borrow(), CameraStatus::Stopped);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_camera_path_is_absent_and_retried_never_a_crash() {
    assert!(
        !std::path::Path::new("/dev/video57").exists(),
        "needs /dev/video57 absent"
    );
    let seen = missing_camera("/dev/video57").await;
    let CameraStatus::Absent {
        detail, retry_ms, ..
    } = &seen
    else {
        panic!("expected absent, got {seen:?}")
    };
    assert!(detail.contains("/dev/video57"), "{detail}");
    assert_eq!(*retry_ms, 20);
    assert!(seen.to_string().starts_with("absent: "), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_camera_index_fails_inside_nokhwa_and_is_retried() {
    // A bare index goes to nokhwa's V4L2 backend unchecked: its own error must become a
    // status (absent, from "No such file or directory"), not a panic.
    assert!(
        !std::path::Path::new("/dev/video58").exists(),
        "needs /dev/video58 absent"
    );
    let seen = missing_camera("58").await;
    assert!(matches!(seen, CameraStatus::Absent { .. }), "{seen:?}");
    assert!(seen.to_string().contains("/dev/video58"), "{seen}");
}

#[tokio::test]
async fn an_invalid_config_is_an_error_not_a_panic() {
    let (tx, _rx) = mpsc::channel(1);
    let (status_tx, _status) = watch::channel(CameraStatus::Starting);
    let cfg = CameraConfig {
        width: 0,
        ..CameraConfig::default()
    };
    let r = run_capture(
        || ImageSequenceSource::new("x", vec![], Duration::from_millis(33)),
        cfg,
        tx,
        status_tx,
    )
    .await;
    assert!(r.is_err());
}

/// Busy on the first open, unplugged after two frames, then fine: the kind of camera a shop has.
struct FlakyCamera {
    opens: u32,
    frames_since_open: u32,
    clock: Duration,
    history: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FrameSource for FlakyCamera {
    fn describe(&self) -> String {
        "flaky".into()
    }
    fn open(&mut self) -> Result<SourceInfo, SourceError> {
        self.opens += 1;
        self.frames_since_open = 0;
        if self.opens == 1 {
            return Err(SourceError::Busy("held by another process".into()));
        }
        Ok(SourceInfo {
            description: format!("flaky#{}", self.opens),
            width: 640,
            height: 480,
            fps: 30,
        })
    }
    fn next_frame(&mut self) -> Result<Option<LumaFrame>, SourceError> {
        self.frames_since_open += 1;
        self.clock += Duration::from_millis(33);
        if self.opens == 2 && self.frames_since_open == 3 {
            return Err(SourceError::Disconnected("unplugged".into()));
        }
        if self.opens >= 3 && self.frames_since_open > 2 {
            return Ok(None);
        }
        let text = if self.opens == 2 { A } else { B };
        self.history
            .lock()
            .expect("lock")
            .push(format!("{}:{text}", self.opens));
        Ok(Some(code(text).at(self.clock)))
    }
    fn close(&mut self) {}
    fn is_live(&self) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_then_unplugged_camera_recovers_and_keeps_scanning() {
    let (tx, mut rx) = mpsc::channel(16);
    let (status_tx, status_rx) = watch::channel(CameraStatus::Starting);
    let history = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = history.clone();
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = statuses.clone();
    let mut watcher = status_rx.clone();
    let watch_task = tokio::spawn(async move {
        while watcher.changed().await.is_ok() {
            let s = watcher.borrow_and_update().to_string();
            seen.lock().expect("lock").push(s);
        }
    });
    let summary = run_capture(
        move || FlakyCamera {
            opens: 0,
            frames_since_open: 0,
            clock: Duration::ZERO,
            history: h,
        },
        config(300),
        tx,
        status_tx,
    )
    .await
    .expect("valid config");
    let _ = watch_task.await;
    let mut scans = Vec::new();
    while let Ok(s) = rx.try_recv() {
        scans.push(s);
    }
    assert_eq!(texts(&scans), [A, B]);
    assert_eq!(summary.opens, 2);
    assert_eq!(summary.captured, 4);
    assert_eq!(history.lock().expect("lock").len(), 4);
    let statuses = statuses.lock().expect("lock").clone();
    // status changes may be coalesced by the watch channel, but the final one is always seen
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("stopped"),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| s.starts_with("error: busy"))
            || statuses.iter().any(|s| s.starts_with("ok: ")),
        "{statuses:?}"
    );
}

#[test]
fn scan_image_files_reports_one_line_per_file() {
    let dir = std::env::temp_dir().join(format!("posd-camera-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let f = render_qr(A.as_bytes(), 4, 320, 240, 20, 235);
    let img = image::GrayImage::from_raw(f.width, f.height, f.data).expect("size");
    let png = dir.join("a.png");
    let jpg = dir.join("a.jpg");
    let webp = dir.join("a.webp");
    img.save(&png).expect("png");
    img.save(&jpg).expect("jpeg");
    image::DynamicImage::ImageLuma8(img)
        .to_rgb8()
        .save(&webp)
        .expect("webp");
    let garbage = dir.join("not-an-image.png");
    std::fs::write(&garbage, b"not a png").expect("write");
    let missing = PathBuf::from("/nonexistent/x.png");
    let reports = posd::camera::scan_image_files(&[png, jpg, webp, garbage, missing]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(reports.len(), 5);
    for r in &reports[..3] {
        assert!(r.error.is_none(), "{r:?}");
        let line = serde_json::to_value(r).expect("json");
        assert_eq!(line["payloads"][0]["text"], A, "{line}");
        assert_eq!(line["payloads"][0]["stage"], "rxing");
        assert!(line["ms"].is_number());
        assert!(line.get("error").is_none());
    }
    for r in &reports[3..] {
        assert!(r.payloads.is_empty());
        let line = serde_json::to_value(r).expect("json");
        assert!(line["error"].is_string(), "{line}");
    }
}
