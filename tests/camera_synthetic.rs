//! Synthetic frames the photo set lacks: inverted ("dark mode") codes, small modules, blur,
//! and the `P1` offline code (DESIGN.md §1.2, ~260 characters) at VGA; plus how payload bytes
//! are reported (UTF-8 text, Shift_JIS converted, binary as hex).

mod camera_common;

use std::time::Duration;

use camera_common::{box_blur, noise_frame, p1_code, render_qr};
use posd::camera::{LumaFrame, Pipeline, Stage};

const DARK: u8 = 25;
const LIGHT: u8 = 230;

fn reads(frame: &LumaFrame, want: &[u8]) -> bool {
    let out = Pipeline::standard(Duration::MAX).decode(frame);
    out.codes.iter().any(|c| c.payload.bytes == want)
}

fn reads_only(frame: &LumaFrame, want: &[u8]) -> Option<Stage> {
    let out = Pipeline::standard(Duration::MAX).decode(frame);
    assert!(
        out.codes.iter().all(|c| c.payload.bytes == want),
        "unexpected payloads {:?}",
        out.codes
    );
    out.codes.first().map(|c| c.stage)
}

#[test]
fn p1_offline_code_reads_at_vga_with_every_module_size_that_fits() {
    let p1 = p1_code(3);
    // "P1." + base64url of 121 + 72 bytes without padding = 3 + 258 characters
    assert_eq!(p1.len(), 261);
    assert!(p1.starts_with("P1."));
    // 261 bytes (byte mode: base64url has lower case) at level M is version 11, 61 modules;
    // with the quiet zone 1 to 6 px per module fit a 640x480 frame.
    for module in 1..=6 {
        let f = render_qr(p1.as_bytes(), module, 640, 480, DARK, LIGHT);
        assert_eq!(
            reads_only(&f, p1.as_bytes()),
            Some(Stage::Rxing),
            "module {module} px"
        );
    }
}

#[test]
fn inverted_codes_are_read_and_only_by_the_inverted_stage() {
    let p1 = p1_code(5);
    for module in [2, 4, 6] {
        let f = render_qr(p1.as_bytes(), module, 640, 480, LIGHT, DARK);
        assert_eq!(
            reads_only(&f, p1.as_bytes()),
            Some(Stage::RxingInverted),
            "module {module} px"
        );
        // rxing's plain pass and rqrr cannot read them: the inverted pass is what does.
        assert!(Pipeline::only(&[Stage::Rxing]).decode(&f).codes.is_empty());
        assert!(Pipeline::rqrr_only().decode(&f).codes.is_empty());
    }
    // a short payment code in dark mode, rotated
    let f = render_qr(b"134567890123456789", 5, 640, 480, LIGHT, DARK).rotated(1);
    assert!(reads(&f, b"134567890123456789"));
}

#[test]
fn small_modules_are_read() {
    // An 18-digit WeChat-style code (version 1, 21 modules) at 1 and 2 px per module: 21 or
    // 42 px across in a VGA frame, as when the phone is held far away.
    for module in [1, 2] {
        let f = render_qr(b"134567890123456789", module, 640, 480, DARK, LIGHT);
        assert!(reads(&f, b"134567890123456789"), "module {module} px");
    }
}

#[test]
fn blurred_codes_are_read_up_to_half_a_module_of_blur() {
    let p1 = p1_code(9);
    // box blur of radius r spreads each edge over 2r+1 px
    for (module, radius) in [(3, 1), (4, 1), (4, 2), (6, 2)] {
        let f = box_blur(
            &render_qr(p1.as_bytes(), module, 640, 480, DARK, LIGHT),
            radius,
        );
        assert!(
            reads(&f, p1.as_bytes()),
            "module {module}, blur radius {radius}"
        );
    }
    // and a blur wider than a module is honestly unreadable (this test can fail both ways)
    let f = box_blur(&render_qr(p1.as_bytes(), 3, 640, 480, DARK, LIGHT), 3);
    assert!(Pipeline::standard(Duration::MAX)
        .decode(&f)
        .codes
        .is_empty());
}

#[test]
fn low_contrast_code_on_a_grey_frame_is_read() {
    let p1 = p1_code(11);
    let f = render_qr(p1.as_bytes(), 4, 640, 480, 100, 150);
    assert!(reads(&f, p1.as_bytes()));
}

#[test]
fn noise_and_flat_frames_decode_to_nothing() {
    let p = Pipeline::standard(Duration::MAX);
    for seed in 1..4 {
        assert!(p.decode(&noise_frame(640, 480, seed)).codes.is_empty());
    }
    for v in [0u8, 128, 255] {
        let f = LumaFrame::new(640, 480, vec![v; 640 * 480]).expect("size");
        assert!(p.decode(&f).codes.is_empty());
    }
}

#[test]
fn binary_payloads_are_reported_raw_and_serialize_as_hex() {
    let raw: Vec<u8> = vec![0x00, 0x80, 0xff, 0xfe, 0x10, 0x9c, 0x81, 0x00, 0x7f];
    let f = render_qr(&raw, 6, 640, 480, DARK, LIGHT);
    let out = Pipeline::standard(Duration::MAX).decode(&f);
    assert_eq!(out.codes.len(), 1, "{:?}", out.codes);
    assert_eq!(out.codes[0].payload.bytes, raw);
    assert_eq!(out.codes[0].payload.text(), None);
    let json = serde_json::to_value(&out.codes[0]).expect("serializes");
    assert_eq!(json["hex"], "0080fffe109c81007f");
    assert_eq!(json["stage"], "rxing");
}

#[test]
fn utf8_payloads_serialize_as_text() {
    let text = "付款码 P1.äöü";
    let f = render_qr(text.as_bytes(), 6, 640, 480, DARK, LIGHT);
    let out = Pipeline::standard(Duration::MAX).decode(&f);
    assert_eq!(out.codes.len(), 1);
    assert_eq!(out.codes[0].payload.text(), Some(text));
    let json = serde_json::to_value(&out.codes[0]).expect("serializes");
    assert_eq!(json["text"], text);
}

#[test]
fn rqrr_second_opinion_converts_shift_jis_like_rxing() {
    // "テスト" in Shift_JIS, byte mode: both decoders must report the same UTF-8 text.
    let sjis = [0x83, 0x65, 0x83, 0x58, 0x83, 0x67];
    let f = render_qr(&sjis, 6, 640, 480, DARK, LIGHT);
    for p in [Pipeline::only(&[Stage::Rxing]), Pipeline::rqrr_only()] {
        let out = p.decode(&f);
        assert_eq!(out.codes.len(), 1, "{p:?}");
        assert_eq!(out.codes[0].payload.text(), Some("テスト"), "{p:?}");
    }
}

#[test]
fn two_codes_in_one_frame_are_both_read() {
    let a = render_qr(b"134567890123456789", 4, 320, 480, DARK, LIGHT);
    let b = render_qr(b"287654321098765432", 4, 320, 480, DARK, LIGHT);
    let mut data = Vec::with_capacity(640 * 480);
    for y in 0..480 {
        data.extend_from_slice(&a.data[y * 320..(y + 1) * 320]);
        data.extend_from_slice(&b.data[y * 320..(y + 1) * 320]);
    }
    let f = LumaFrame::new(640, 480, data).expect("size");
    let out = Pipeline::standard(Duration::MAX).decode(&f);
    let mut got: Vec<_> = out.codes.iter().filter_map(|c| c.payload.text()).collect();
    got.sort_unstable();
    assert_eq!(got, ["134567890123456789", "287654321098765432"]);
}

#[test]
fn degenerate_and_odd_frames_never_panic_out_of_the_pipeline() {
    // Tiny, one-pixel-wide and odd-sized frames: whatever a decoder does inside, the pipeline
    // returns (panics are caught and counted), reads nothing, and runs on every camera turn.
    let p = Pipeline::standard(Duration::MAX);
    let mut caught = 0;
    for (w, h) in [
        (1, 1),
        (1, 500),
        (500, 1),
        (2, 2),
        (3, 7),
        (21, 21),
        (641, 479),
    ] {
        for fill in [0u8, 255] {
            let f = LumaFrame::new(w, h, vec![fill; (w * h) as usize]).expect("size");
            let out = p.decode(&f);
            assert!(out.codes.is_empty(), "{w}x{h}");
            caught += out.panics;
            for n in 0..p.cycle_frames() {
                caught += p.decode_nth(&f, n).panics;
            }
        }
    }
    println!("decoder panics caught: {caught}");
    // A code cropped to its top half is not a code.
    let f = render_qr(b"134567890123456789", 6, 640, 480, DARK, LIGHT);
    let half = LumaFrame::new(640, 240, f.data[..640 * 240].to_vec()).expect("size");
    assert!(p.decode(&half).codes.is_empty());
}
