//! Decode rate on real photos from outside the tuning set: `tests/data/qr-photos/` (jsQR's own
//! end-to-end photos — billboards, flyers, bus stops, stickers, screens, inverted codes; see its
//! SOURCES.md). Expected payloads come from jsQR and zxing-cpp, never from posd. The photos are
//! split by name into a tuning half and a hold-out half (docs/camera.md says what each read
//! and what the hold-out has already been seen by).
//!
//! `cargo test -p posd --test camera_photos -- --nocapture` prints both rates and each miss.

mod camera_common;

use std::time::Duration;

use camera_common::{load_photos, Case};
use posd::camera::Pipeline;

/// Reads recorded (docs/camera.md), upright, still-image mode, tuning and hold-out halves.
const MIN_TUNING: usize = 38;
const MIN_HOLDOUT: usize = 17;

/// Held out: every third labelled photo by name (index % 3 == 2).
fn is_holdout(index: usize) -> bool {
    index % 3 == 2
}

#[test]
fn photos_from_outside_read_at_the_recorded_rate_with_no_wrong_payload() {
    let pipeline = Pipeline::standard(Duration::MAX);
    let all = load_photos();
    let labelled: Vec<&Case> = all.iter().filter(|p| p.expected.is_some()).collect();
    assert_eq!(
        labelled.len(),
        56,
        "tests/data/qr-photos changed: update docs/camera.md"
    );
    let (mut read, mut total) = ([0usize; 2], [0usize; 2]);
    let (mut missed, mut wrong) = (Vec::new(), Vec::new());
    for (i, p) in labelled.iter().enumerate() {
        let half = usize::from(is_holdout(i));
        total[half] += 1;
        let want = p.expected.as_deref();
        let mut ok = false;
        for c in pipeline.decode(&p.frame).codes {
            if Some(c.payload.bytes.as_slice()) == want {
                ok = true;
            } else {
                wrong.push(format!(
                    "{}: {:?}",
                    p.name,
                    String::from_utf8_lossy(&c.payload.bytes)
                ));
            }
        }
        if ok {
            read[half] += 1;
        } else {
            missed.push(format!("{}{}", p.name, ["", " (hold-out)"][half]));
        }
    }
    // Photos no other decoder reads: what posd finds there is reported, not judged.
    let unlabelled: Vec<String> = all
        .iter()
        .filter(|p| p.expected.is_none())
        .map(|p| format!("{}: {}", p.name, pipeline.decode(&p.frame).codes.len()))
        .collect();
    println!(
        "tuning {}/{} read, hold-out {}/{} read; missed {missed:?}; codes found in photos \
         nobody else reads: {unlabelled:?}",
        read[0], total[0], read[1], total[1]
    );
    assert!(wrong.is_empty(), "wrong payloads: {wrong:?}");
    assert!(
        read[0] >= MIN_TUNING && read[1] >= MIN_HOLDOUT,
        "tuning {}/{} (at least {MIN_TUNING}), hold-out {}/{} (at least {MIN_HOLDOUT}); \
         missed {missed:?}",
        read[0],
        total[0],
        read[1],
        total[1]
    );
}
