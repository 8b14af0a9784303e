//! HID scanner tests through the evdev reader's own path: recorded `input_event` streams
//! (with real timestamps) go through `run_hid_scanner` — the loop the device uses — and the
//! codes are read where the engine would read them. Where `/dev/uinput` exists, the same
//! stream also runs through a uinput keyboard; elsewhere that test says it was skipped.

use posd::devices::evdev_reader::{
    self, input_event, parse_recording, synthesize, RecordedEnd, RecordedOpener, EV_KEY, EV_SYN,
};
use posd::devices::{status_channel, DeviceStatus};
use posd::engine::EngineMsg;
use posd_core::hid::assembler::{Assembled, AssemblerConfig, DropReason, Terminator};
use posd_core::hid::keymap::{code, Layout};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const T0: u64 = 1_785_312_000_000_000;

/// Runs recorded segments through the scanner loop; returns the code receiver, the status
/// receiver and the shutdown sender (kept alive by the caller).
fn start(
    segments: Vec<Vec<evdev::InputEvent>>,
    last_end: RecordedEnd,
    cfg: AssemblerConfig,
) -> (
    mpsc::Receiver<EngineMsg>,
    watch::Receiver<DeviceStatus>,
    watch::Sender<bool>,
) {
    let (tx, rx) = mpsc::channel(64);
    let (st_tx, st_rx) = status_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(evdev_reader::run_hid_scanner(
        RecordedOpener::new(segments, last_end),
        cfg,
        Duration::from_millis(10),
        "hid_scanner",
        tx,
        st_tx,
        stop_rx,
    ));
    (rx, st_rx, stop_tx)
}

/// The next code, with a guard against hanging forever on a bug.
async fn next_code(rx: &mut mpsc::Receiver<EngineMsg>) -> String {
    match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        Ok(Some(EngineMsg::Code { text, source })) => {
            assert_eq!(source, "hid_scanner");
            text
        }
        Ok(Some(_)) => panic!("unexpected engine message"),
        Ok(None) => panic!("scanner task ended"),
        Err(_) => panic!("no code arrived"),
    }
}

fn cfg(layout: Layout) -> AssemblerConfig {
    AssemblerConfig {
        layout,
        ..AssemblerConfig::default()
    }
}

/// A deterministic 1–2 ms per key rhythm with jitter.
fn scanner_rhythm(i: usize) -> u64 {
    1000 + ((i as u64 * 7919) % 1000)
}

fn long_code(n: usize) -> String {
    let alphabet: Vec<char> =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
            .chars()
            .collect();
    (0..n)
        .map(|i| alphabet[(i * 31 + i / 7) % alphabet.len()])
        .collect()
}

#[tokio::test]
async fn a_500_character_code_at_1_to_2_ms_per_key_arrives_whole() {
    let text = long_code(500);
    let events = synthesize(Layout::Us, &text, T0, scanner_rhythm, code::ENTER).unwrap();
    let (mut rx, _st, _stop) = start(vec![events], RecordedEnd::Stay, cfg(Layout::Us));
    assert_eq!(next_code(&mut rx).await, text);
}

#[tokio::test]
async fn the_recorded_file_yields_both_bursts_and_not_the_typing() {
    let text = std::fs::read_to_string("tests/data/evdev/us_burst_typing_burst.events").unwrap();
    let segments = parse_recording(&text).unwrap();
    assert_eq!(segments.len(), 1);
    let (mut rx, _st, _stop) = start(segments, RecordedEnd::Stay, cfg(Layout::Us));
    assert_eq!(next_code(&mut rx).await, "HELLO-123/xyz");
    // "42" typed by a person in between is not a code: the next one is the second burst.
    assert_eq!(next_code(&mut rx).await, "Pay:0042");
}

/// Key strokes written by hand from the physical keyboards (not from posd's tables):
/// (key code, shift, altgr).
fn by_hand(strokes: &[(u16, bool, bool)], start: u64) -> Vec<evdev::InputEvent> {
    let mut out = Vec::new();
    let mut t = start;
    for &(k, shift, altgr) in strokes {
        let m = if shift {
            Some(code::LEFTSHIFT)
        } else if altgr {
            Some(code::RIGHTALT)
        } else {
            None
        };
        if let Some(m) = m {
            out.push(input_event(t, EV_KEY, m, 1));
        }
        out.push(input_event(t + 80, EV_KEY, k, 1));
        out.push(input_event(t + 80, EV_SYN, 0, 0));
        out.push(input_event(t + 250, EV_KEY, k, 0));
        if let Some(m) = m {
            out.push(input_event(t + 300, EV_KEY, m, 0));
        }
        out.push(input_event(t + 300, EV_SYN, 0, 0));
        t += 1500;
    }
    out.push(input_event(t, EV_KEY, code::ENTER, 1));
    out.push(input_event(t + 200, EV_KEY, code::ENTER, 0));
    out
}

#[tokio::test]
async fn each_layout_reads_its_own_keyboard() {
    let (s, a, p) = (true, true, false);
    type Strokes = Vec<(u16, bool, bool)>;
    let cases: Vec<(Layout, Strokes, &str)> = vec![
        // US: H e l l o ! @ # { " ~
        (
            Layout::Us,
            vec![
                (35, s, false),
                (18, p, p),
                (38, p, p),
                (38, p, p),
                (24, p, p),
                (2, s, false),
                (3, s, false),
                (4, s, false),
                (26, s, false),
                (40, s, false),
                (41, s, false),
            ],
            "Hello!@#{\"~",
        ),
        // UK: " £ @ # ~ \ | €
        (
            Layout::Uk,
            vec![
                (3, s, false),
                (4, s, false),
                (40, s, false),
                (43, p, p),
                (43, s, false),
                (86, p, p),
                (86, s, false),
                (5, false, a),
            ],
            "\"£@#~\\|€",
        ),
        // DE: Z ü r i c h @ € y - _ ( =   (qwertz: Y and Z swapped; AltGr+Q = @)
        (
            Layout::De,
            vec![
                (21, s, false),
                (26, p, p),
                (19, p, p),
                (23, p, p),
                (46, p, p),
                (35, p, p),
                (16, false, a),
                (18, false, a),
                (44, p, p),
                (53, p, p),
                (53, s, false),
                (9, s, false),
                (11, s, false),
            ],
            "Zürich@€y-_(=",
        ),
        // FR: A Z E R T Y 1 2 & é " a z q w m ù @   (azerty: digits need Shift)
        (
            Layout::FrAzerty,
            vec![
                (16, s, false),
                (17, s, false),
                (18, s, false),
                (19, s, false),
                (20, s, false),
                (21, s, false),
                (2, s, false),
                (3, s, false),
                (2, p, p),
                (3, p, p),
                (4, p, p),
                (16, p, p),
                (17, p, p),
                (30, p, p),
                (44, p, p),
                (39, p, p),
                (40, p, p),
                (11, false, a),
            ],
            "AZERTY12&é\"azqwmù@",
        ),
    ];
    for (layout, strokes, want) in cases {
        let (mut rx, _st, _stop) =
            start(vec![by_hand(&strokes, T0)], RecordedEnd::Stay, cfg(layout));
        assert_eq!(next_code(&mut rx).await, want, "layout {}", layout.name());
    }
}

#[tokio::test]
async fn every_printable_character_round_trips_on_every_layout() {
    let text: String = (0x21u8..0x7f).map(char::from).collect();
    for layout in Layout::ALL {
        let events = synthesize(layout, &text, T0, scanner_rhythm, code::KPENTER).unwrap();
        let (mut rx, _st, _stop) = start(vec![events], RecordedEnd::Stay, cfg(layout));
        assert_eq!(next_code(&mut rx).await, text, "layout {}", layout.name());
    }
}

#[tokio::test]
async fn capslock_and_numlock_from_the_stream_are_honoured() {
    let mut ev = vec![
        input_event(T0, EV_KEY, code::CAPSLOCK, 1),
        input_event(T0 + 100, EV_KEY, code::CAPSLOCK, 0),
    ];
    // caps: a → A, Shift+b → b, 1 stays 1
    ev.extend(by_hand(
        &[(30, false, false), (48, true, false), (2, false, false)],
        T0 + 1000,
    ));
    // NumLock off then keypad 7 (nothing), KP minus ('-'), NumLock on, keypad 7 → '7'.
    let t = T0 + 20_000;
    ev.extend([
        input_event(t, EV_KEY, code::CAPSLOCK, 1),
        input_event(t + 1000, EV_KEY, code::NUMLOCK, 1),
        input_event(t + 2000, EV_KEY, code::KP7, 1),
        input_event(t + 3000, EV_KEY, code::KPMINUS, 1),
        input_event(t + 4000, EV_KEY, code::NUMLOCK, 1),
        input_event(t + 5000, EV_KEY, code::KP7, 1),
        input_event(t + 6000, EV_KEY, code::A, 1),
        input_event(t + 7000, EV_KEY, code::KPENTER, 1),
    ]);
    let (mut rx, _st, _stop) = start(vec![ev], RecordedEnd::Stay, cfg(Layout::Us));
    assert_eq!(next_code(&mut rx).await, "Ab1");
    assert_eq!(next_code(&mut rx).await, "-7a");
}

#[tokio::test]
async fn a_code_cut_off_by_an_unplug_is_dropped_and_the_replugged_device_resumes() {
    let full = long_code(120);
    let cut = synthesize(Layout::Us, &full, T0, scanner_rhythm, code::ENTER).unwrap();
    let half = cut[..cut.len() / 2].to_vec();
    // The replugged device types again within the gap timeout, so only the unplug (not the
    // gap rule) can keep the cut half from being glued to the next code.
    let last_half = evdev_reader::timestamp_us(half[half.len() - 1].timestamp());
    let after = synthesize(
        Layout::Us,
        "AFTER-REPLUG",
        last_half + 50_000,
        scanner_rhythm,
        code::ENTER,
    )
    .unwrap();
    let (mut rx, mut st, _stop) = start(vec![half, after], RecordedEnd::Unplug, cfg(Layout::Us));
    // Nothing of the cut code arrives: the first code is the one after the replug.
    assert_eq!(next_code(&mut rx).await, "AFTER-REPLUG");
    // Then the device goes away for good: absent, not a crash.
    let s = st
        .wait_for(|s| matches!(s, DeviceStatus::Absent(_)))
        .await
        .unwrap()
        .clone();
    assert_eq!(s.kind(), "absent");
}

#[tokio::test]
async fn a_person_typing_slowly_on_the_scanner_is_not_a_code() {
    let typed = synthesize(Layout::Us, "123456", T0, |_| 180_000, code::ENTER).unwrap();
    // Faster typing, still human: 60-90 ms per key.
    let quick = synthesize(
        Layout::Us,
        "987654",
        T0 + 3_000_000,
        |i| 60_000 + (i as u64 % 4) * 10_000,
        code::ENTER,
    )
    .unwrap();
    let burst = synthesize(
        Layout::Us,
        "SCANNED",
        T0 + 6_000_000,
        scanner_rhythm,
        code::ENTER,
    )
    .unwrap();
    let all: Vec<_> = typed.into_iter().chain(quick).chain(burst).collect();
    let (mut rx, _st, _stop) = start(vec![all], RecordedEnd::Stay, cfg(Layout::Us));
    assert_eq!(next_code(&mut rx).await, "SCANNED");
}

#[tokio::test]
async fn typed_input_is_accepted_where_configured() {
    let typed = synthesize(Layout::Us, "123456", T0, |_| 400_000, code::ENTER).unwrap();
    let c = AssemblerConfig {
        accept_typed: true,
        ..cfg(Layout::Us)
    };
    let (mut rx, _st, _stop) = start(vec![typed], RecordedEnd::Stay, c);
    assert_eq!(next_code(&mut rx).await, "123456");
}

#[tokio::test]
async fn tab_terminates_only_when_configured() {
    let with_tab = synthesize(Layout::Us, "TABBED", T0, scanner_rhythm, code::TAB).unwrap();
    let then_enter = synthesize(
        Layout::Us,
        "ENTERED",
        T0 + 1_000_000,
        scanner_rhythm,
        code::ENTER,
    )
    .unwrap();
    let all: Vec<_> = with_tab
        .iter()
        .copied()
        .chain(then_enter.iter().copied())
        .collect();
    // Default (Enter, KP-Enter): Tab is ignored, so the two run together.
    let (mut rx, _st, _stop) = start(vec![all.clone()], RecordedEnd::Stay, cfg(Layout::Us));
    // The 1 s pause between them is a gap: TABBED is dropped, ENTERED arrives alone.
    assert_eq!(next_code(&mut rx).await, "ENTERED");
    let c = AssemblerConfig {
        terminators: vec![Terminator::Tab],
        ..cfg(Layout::Us)
    };
    let (mut rx, _st, _stop) = start(vec![all], RecordedEnd::Stay, c);
    assert_eq!(next_code(&mut rx).await, "TABBED");
}

#[test]
fn the_assembler_reports_why_it_drops() {
    use posd::devices::evdev_reader::HidPipeline;
    let mut p = HidPipeline::new(cfg(Layout::Us));
    let ev = synthesize(Layout::Us, "ABCDEF", T0, scanner_rhythm, code::ENTER).unwrap();
    // Feed the first half, then a key after a 1 s gap.
    let mut outs = Vec::new();
    for e in &ev[..ev.len() / 2] {
        outs.extend(p.feed(e));
    }
    assert!(outs.is_empty());
    outs.extend(p.feed(&input_event(T0 + 1_000_000, EV_KEY, code::A, 1)));
    assert!(matches!(
        outs.as_slice(),
        [Assembled::Dropped { reason: DropReason::Gap, chars }] if *chars > 0
    ));
    assert!(matches!(
        p.unplugged(),
        Some(Assembled::Dropped {
            reason: DropReason::Unplugged,
            chars: 1
        })
    ));
    // Too long: dropped whole, never truncated.
    let mut p = HidPipeline::new(AssemblerConfig {
        max_len: 10,
        ..cfg(Layout::Us)
    });
    let ev = synthesize(Layout::Us, &long_code(11), T0, scanner_rhythm, code::ENTER).unwrap();
    let outs: Vec<_> = ev.iter().filter_map(|e| p.feed(e)).collect();
    assert_eq!(
        outs,
        vec![Assembled::Dropped {
            chars: 11,
            reason: DropReason::TooLong
        }]
    );
}

#[test]
fn dead_keys_compose_like_the_keyboard() {
    use posd::devices::evdev_reader::HidPipeline;
    // DE: ^ then e → ê; ^ then space → ^; ´ then a → á.
    let strokes = [
        (41, false, false),
        (18, false, false),
        (41, false, false),
        (57, false, false),
        (13, false, false),
        (30, false, false),
    ];
    let mut p = HidPipeline::new(cfg(Layout::De));
    let outs: Vec<_> = by_hand(&strokes, T0)
        .iter()
        .filter_map(|e| p.feed(e))
        .collect();
    assert!(matches!(outs.as_slice(), [Assembled::Code { text, .. }] if text == "ê^á"));
}

#[test]
fn recordings_round_trip_and_reject_garbage() {
    let ev = synthesize(Layout::Uk, "£5", T0, scanner_rhythm, code::ENTER).unwrap();
    let text = evdev_reader::format_recording(&ev);
    let back = parse_recording(&text).unwrap();
    assert_eq!(back, vec![ev]);
    assert!(parse_recording("1.5 1 2").is_err());
    assert!(parse_recording("x.000001 1 2 1").is_err());
    assert_eq!(
        parse_recording("1.000001 1 2 1\nunplug\n2.0 1 2 1")
            .unwrap()
            .len(),
        2
    );
}

/// The same burst through a uinput keyboard, where the kernel has uinput.
#[tokio::test]
async fn uinput_keyboard_through_the_device_path() {
    if !std::path::Path::new("/dev/uinput").exists() {
        println!("skipped: no /dev/uinput on this kernel (recorded streams cover this path)");
        return;
    }
    let mut keys = evdev::AttributeSet::<evdev::KeyCode>::new();
    for k in 1u16..=127 {
        keys.insert(evdev::KeyCode::new(k));
    }
    let Ok(builder) = evdev::uinput::VirtualDevice::builder() else {
        println!("skipped: /dev/uinput cannot be opened here");
        return;
    };
    let mut vdev = builder
        .name("posd-test-scanner")
        .with_keys(&keys)
        .unwrap()
        .build()
        .unwrap();
    let path = vdev
        .enumerate_dev_nodes_blocking()
        .unwrap()
        .flatten()
        .next()
        .unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let (st_tx, mut st_rx) = status_channel();
    let (_stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(evdev_reader::run_hid_scanner(
        evdev_reader::DeviceOpener {
            selector: posd_core::hid::Selector {
                path: Some(path),
                ..Default::default()
            },
            input_dir: "/dev/input".into(),
            grab: true,
        },
        cfg(Layout::Us),
        Duration::from_millis(20),
        "hid_scanner",
        tx,
        st_tx,
        stop_rx,
    ));
    st_rx.wait_for(|s| s.is_ok()).await.unwrap();
    let text = long_code(100);
    let events = synthesize(Layout::Us, &text, 0, |_| 0, code::ENTER).unwrap();
    for chunk in events.chunks(3) {
        vdev.emit(chunk).unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    assert_eq!(next_code(&mut rx).await, text);
}
