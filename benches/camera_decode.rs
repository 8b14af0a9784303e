//! Decode time and decode rate of the camera pipeline on the real photo set and on frames with
//! no code; also rqrr alone and rxing alone, the comparison `docs/camera.md` records.
//!
//! `nice -n 10 cargo bench --bench camera_decode` (add `-- --quick` for one timing pass).
//! Prints, per folder and decoder set: read / total, wrong payloads, panics, median and p95 ms.

#[path = "../tests/camera_common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use posd::camera::{LumaFrame, Pipeline};

/// A frame and its expected payload (`None`: nothing may be read).
type Cases = Vec<(LumaFrame, Option<Vec<u8>>)>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

struct Row {
    read: usize,
    total: usize,
    wrong: usize,
    panics: u32,
    mean: f64,
    median: f64,
    p95: f64,
    max: f64,
}

/// How a pipeline is driven.
#[derive(Clone, Copy)]
enum Mode {
    /// `decode`: a still image, every stage until a read.
    Still,
    /// `decode_nth` for n = 0..cycle: the image held in front of the camera for one cycle of
    /// frames (`Pipeline::cycle_frames`: every extra stage gets its turn); each frame is timed,
    /// the code counts as read if any of those frames read it.
    Camera,
}

/// Decodes every frame `reps` times; a frame's time is the median of its runs.
fn run(
    pipeline: &Pipeline,
    mode: Mode,
    cases: &[(LumaFrame, Option<Vec<u8>>)],
    reps: usize,
) -> Row {
    let mut times = Vec::new();
    let (mut read, mut wrong, mut panics) = (0, 0, 0);
    for (frame, expected) in cases {
        let frames: Vec<u64> = match mode {
            Mode::Still => vec![0],
            Mode::Camera => (0..pipeline.cycle_frames()).collect(),
        };
        let mut payloads = Vec::new();
        for &n in &frames {
            let mut t = Vec::with_capacity(reps);
            for rep in 0..reps {
                let t0 = Instant::now();
                let out = match mode {
                    Mode::Still => pipeline.decode(frame),
                    Mode::Camera => pipeline.decode_nth(frame, n),
                };
                t.push(t0.elapsed().as_secs_f64() * 1e3);
                if rep == 0 {
                    panics += out.panics;
                    payloads.extend(out.codes.into_iter().map(|c| c.payload.bytes));
                }
            }
            t.sort_by(f64::total_cmp);
            times.push(t[t.len() / 2]);
        }
        payloads.sort();
        payloads.dedup();
        match expected {
            Some(exp) => {
                if payloads.contains(exp) {
                    read += 1;
                }
                // a payload other than the expected one (qrcode-2/16.png legitimately holds a
                // second, inner code: counted here all the same; the tests name it)
                wrong += payloads.iter().filter(|p| *p != exp).count();
            }
            None => wrong += payloads.len(),
        }
    }
    times.sort_by(f64::total_cmp);
    Row {
        read,
        total: cases.len(),
        wrong,
        panics,
        mean: times.iter().sum::<f64>() / times.len().max(1) as f64,
        median: percentile(&times, 0.5),
        p95: percentile(&times, 0.95),
        max: times.last().copied().unwrap_or(f64::NAN),
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 5 };
    let Some(root) = common::qr_root() else {
        return;
    };
    let budget =
        Duration::from_millis(posd::config::devices::CameraConfig::default().frame_budget_ms);
    let pipelines: [(&str, Pipeline, Mode); 4] = [
        ("rqrr alone", Pipeline::rqrr_only(), Mode::Still),
        ("rxing alone", Pipeline::rxing_only(), Mode::Still),
        (
            "pipeline, still image",
            Pipeline::standard(Duration::MAX),
            Mode::Still,
        ),
        (
            "pipeline, camera (one cycle of frames, 25 ms budget)",
            Pipeline::standard(budget),
            Mode::Camera,
        ),
    ];

    let mut sets: Vec<(String, Cases)> = Vec::new();
    for folder in common::CODE_FOLDERS.iter().chain([&common::NO_CODE_FOLDER]) {
        let cases = common::load_folder(&root, folder)
            .into_iter()
            .map(|c| (c.frame, c.expected))
            .collect();
        sets.push((folder.to_string(), cases));
    }
    let photos: Cases = common::load_photos()
        .into_iter()
        .filter(|c| c.expected.is_some())
        .map(|c| (c.frame, c.expected))
        .collect();
    sets.push(("qr-photos (jsQR's, labelled)".into(), photos));
    let flat = (0..5u8)
        .map(|i| {
            (
                LumaFrame::new(640, 480, vec![60 + 30 * i; 640 * 480]).expect("size"),
                None,
            )
        })
        .collect();
    sets.push(("flat VGA frames".into(), flat));
    let noise = (1..6)
        .map(|i| (common::noise_frame(640, 480, i), None))
        .collect();
    sets.push(("white-noise VGA frames (worst case)".into(), noise));

    println!("| set | decoders | read | other payloads | panics | mean ms | median ms | p95 ms | max ms |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, cases) in &sets {
        for (label, p, mode) in &pipelines {
            let r = run(p, *mode, cases, reps);
            let read = if cases.iter().all(|c| c.1.is_none()) {
                "-".to_string()
            } else {
                format!(
                    "{}/{} ({:.0} %)",
                    r.read,
                    r.total,
                    100.0 * r.read as f64 / r.total as f64
                )
            };
            println!(
                "| {name} | {label} | {read} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r.wrong, r.panics, r.mean, r.median, r.p95, r.max
            );
        }
    }

    // Rates at all four rotations (one timing pass; the rates are what matter here).
    println!();
    println!("| all code folders at 0/90/180/270° | read | other payloads | panics |");
    println!("| --- | --- | --- | --- |");
    let rotated: Cases = sets
        .iter()
        .filter(|(name, _)| common::CODE_FOLDERS.contains(&name.as_str()))
        .flat_map(|(_, cases)| cases.iter())
        .flat_map(|(f, e)| (0..4).map(move |r| (f.rotated(r), e.clone())))
        .collect();
    for (label, p, mode) in &pipelines {
        let r = run(p, *mode, &rotated, 1);
        println!(
            "| {label} | {}/{} ({:.1} %) | {} | {} |",
            r.read,
            r.total,
            100.0 * r.read as f64 / r.total as f64,
            r.wrong,
            r.panics
        );
    }
}
