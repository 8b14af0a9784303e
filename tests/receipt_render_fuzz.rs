//! The renderer faces arbitrary bytes (`posctl receipt render` reads any file): it must never
//! panic and must keep the picture within its bounds, for random bytes, for ESC/POS-shaped
//! noise, and for real receipts with bytes flipped, cut short or spliced.

#[path = "common/receipt_fixtures.rs"]
mod fixtures;

use posd_core::receipt::charset::TextEncoding;
use posd_core::receipt::escpos_enc::{encode, PrinterProfile};
use posd_core::receipt::layout::{layout, PaperWidth, ReceiptConfig};
use posd_core::receipt::render::{render_image, render_text, RenderOptions};
use proptest::prelude::*;

const OPTS: RenderOptions = RenderOptions {
    paper_dots: 384,
    max_height: 3_000,
};

fn real_receipt(native_qr: bool) -> Vec<u8> {
    let cfg = ReceiptConfig {
        native_qr,
        ..fixtures::config(PaperWidth::Mm58, TextEncoding::Gb18030, native_qr)
    };
    encode(
        &layout(&fixtures::sale(), &cfg),
        &PrinterProfile::from_config(&cfg),
    )
    .unwrap()
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let _ = render_text(bytes, &OPTS);
    let img = render_image(bytes, &OPTS);
    prop_assert_eq!(img.width(), 384 + 32);
    prop_assert!(img.height() <= 3_000 + 32);
    Ok(())
}

/// Bytes biased towards command introducers and their parameters (mapped from plain random
/// bytes: a `prop_oneof!` per byte is slow to generate in a debug build).
fn escpos_noise() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048).prop_map(|v| {
        v.into_iter()
            .map(|b| match b % 20 {
                0 => 0x1B,
                1 => 0x1D,
                2 => 0x1C,
                3 => 0x10,
                4 => b'\n',
                5 => b'v',
                6 => b'(',
                7 => b'k',
                8 => b'0',
                9 => 0xFF,
                _ => b.rotate_left(3),
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        check(&bytes)?;
    }

    #[test]
    fn escpos_shaped_noise_never_panics(bytes in escpos_noise()) {
        check(&bytes)?;
    }

}

proptest! {
    // Each case renders three full receipts: fewer cases keep the debug build's run short.
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn mutated_receipts_never_panic(
        native in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        splice in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = real_receipt(native);
        for (i, v) in flips {
            let at = i.index(bytes.len());
            bytes[at] = v;
        }
        let at = cut.index(bytes.len());
        let mut spliced = bytes[..at].to_vec();
        spliced.extend_from_slice(&splice);
        spliced.extend_from_slice(&bytes[at..]);
        check(&bytes)?;
        check(&bytes[..at])?;
        check(&spliced)?;
    }
}

#[test]
fn huge_declared_sizes_are_bounded() {
    // GS v 0 claiming 65535 x 65535 bytes, GS ( k claiming 64 KiB, GS 8 L claiming 4 GiB.
    for b in [
        &[0x1D, b'v', b'0', 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3][..],
        &[0x1D, b'(', b'k', 0xFF, 0xFF, 49, 80, 48],
        &[0x1D, b'8', b'L', 0xFF, 0xFF, 0xFF, 0xFF, 0],
    ] {
        check(b).unwrap();
    }
    // A tall but complete raster image is cut at max_height.
    let mut tall = vec![0x1D, b'v', b'0', 0, 1, 0, 0x10, 0x27]; // 1 x 10000
    tall.extend(std::iter::repeat_n(0xFF, 10_000));
    let img = render_image(&tall, &OPTS);
    assert_eq!(img.height(), 3_000 + 32);
}
