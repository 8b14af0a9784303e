//! Shared by the camera tests and `benches/camera_decode.rs`: loading the real QR photo set
//! (`shared/testdata/qr`, see its SOURCES.md) and making synthetic QR frames.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use posd::camera::LumaFrame;

pub const QR_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/qr");

/// Folders whose images each hold one code with a byte-exact expected payload in `N.txt`.
pub const CODE_FOLDERS: [&str; 3] = ["qrcode-1", "qrcode-2", "qrcode-3"];
/// Photos without any barcode: nothing may be decoded from them.
pub const NO_CODE_FOLDER: &str = "no-code";

pub struct Case {
    pub name: String,
    pub frame: LumaFrame,
    /// `None` for `no-code/`.
    pub expected: Option<Vec<u8>>,
}

/// The test set's root, or `None` (with the reason printed) when it is not there.
pub fn qr_root() -> Option<PathBuf> {
    let root = PathBuf::from(QR_DIR);
    if root.is_dir() {
        Some(root)
    } else {
        eprintln!(
            "SKIP: QR test set not found at {QR_DIR} (shared/ not checked out beside the repo)"
        );
        None
    }
}

/// Every `*.png` of a folder, sorted by number, with its expected payload when present.
pub fn load_folder(root: &Path, folder: &str) -> Vec<Case> {
    let dir = root.join(folder);
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pngs.sort_by_key(|p| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    });
    assert!(!pngs.is_empty(), "{} has no images", dir.display());
    pngs.into_iter()
        .map(|png| {
            let frame = LumaFrame::from_file(&png).unwrap_or_else(|e| panic!("{e}"));
            let expected = std::fs::read(png.with_extension("txt")).ok();
            Case {
                name: format!(
                    "{folder}/{}",
                    png.file_name().unwrap_or_default().to_string_lossy()
                ),
                frame,
                expected,
            }
        })
        .collect()
}

/// Real photos from outside the tuning set, in the repository: `tests/data/qr-photos/` (see its
/// SOURCES.md). Each `name.png` with its expected payload in `name.txt` when another decoder
/// could label it (`expected: None`: nobody else reads it; not judged).
pub const PHOTOS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/qr-photos");

/// Every photo of [`PHOTOS_DIR`], sorted by name.
pub fn load_photos() -> Vec<Case> {
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(PHOTOS_DIR)
        .unwrap_or_else(|e| panic!("{PHOTOS_DIR}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pngs.sort();
    pngs.into_iter()
        .map(|png| Case {
            name: png
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            frame: LumaFrame::from_file(&png).unwrap_or_else(|e| panic!("{e}")),
            expected: std::fs::read(png.with_extension("txt")).ok(),
        })
        .collect()
}

/// Renders `data` as a QR code: `module` pixels per module, a 4-module quiet zone, centred on a
/// `width`×`height` canvas of `background`. Dark modules are `fg`, light ones `bg`.
pub fn render_qr(data: &[u8], module: u32, width: u32, height: u32, fg: u8, bg: u8) -> LumaFrame {
    let code = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M)
        .expect("payload fits in a QR code");
    let n = code.width() as u32;
    let colors = code.to_colors();
    let size = (n + 8) * module;
    assert!(
        size <= width && size <= height,
        "code {size}px does not fit {width}x{height}"
    );
    let (x0, y0) = (
        (width - size) / 2 + 4 * module,
        (height - size) / 2 + 4 * module,
    );
    let mut data = vec![bg; (width * height) as usize];
    for my in 0..n {
        for mx in 0..n {
            if colors[(my * n + mx) as usize] == qrcode::Color::Dark {
                for dy in 0..module {
                    let row = ((y0 + my * module + dy) * width) as usize;
                    let start = row + (x0 + mx * module) as usize;
                    data[start..start + module as usize].fill(fg);
                }
            }
        }
    }
    LumaFrame::new(width, height, data).expect("size matches")
}

/// A separable box blur of radius `r` (a defocused lens, roughly).
pub fn box_blur(f: &LumaFrame, r: usize) -> LumaFrame {
    let (w, h) = (f.width as usize, f.height as usize);
    let pass = |src: &[u8], stride_along: usize, len: usize, count: usize, stride_across: usize| {
        let mut out = vec![0u8; src.len()];
        for i in 0..count {
            for j in 0..len {
                let lo = j.saturating_sub(r);
                let hi = (j + r).min(len - 1);
                let sum: u32 = (lo..=hi)
                    .map(|k| u32::from(src[i * stride_across + k * stride_along]))
                    .sum();
                out[i * stride_across + j * stride_along] = (sum / (hi - lo + 1) as u32) as u8;
            }
        }
        out
    };
    let horiz = pass(&f.data, 1, w, h, w);
    let both = pass(&horiz, w, h, w, 1);
    LumaFrame::new(f.width, f.height, both).expect("same size")
}

/// Deterministic pseudo-random noise frame (xorshift), for "no code" timing.
pub fn noise_frame(width: u32, height: u32, seed: u64) -> LumaFrame {
    let mut x = seed | 1;
    let data = (0..width * height)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect();
    LumaFrame::new(width, height, data).expect("size matches")
}

/// A `P1.` + base64url offline code of the DESIGN.md §1.2 shape: 121 + 72 bytes → 260 chars.
pub fn p1_code(seed: u8) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes: Vec<u8> = (0..193u32)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
        .collect();
    let mut out = String::from("P1.");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for k in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
        }
    }
    out
}
