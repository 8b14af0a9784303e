//! Bad input: control and unprintable characters in names, very long names, amounts in
//! currencies with 0, 2 and 3 decimals (and the extremes of i64), odd currencies and receipt
//! references. Property tests check that whatever the strings, every laid-out line is printable
//! in the printer's character set and fits the paper, and that nothing but our own commands
//! reaches the printer.

#[path = "common/receipt_fixtures.rs"]
mod fixtures;

use posd_core::receipt::charset::TextEncoding;
use posd_core::receipt::escpos_enc::{encode, PrinterProfile};
use posd_core::receipt::layout::*;
use posd_core::receipt::render::{render_text, RenderOptions};
use proptest::prelude::*;

fn print_text(data: &ReceiptData, cfg: &ReceiptConfig) -> String {
    let bytes = encode(&layout(data, cfg), &PrinterProfile::from_config(cfg)).unwrap();
    render_text(&bytes, &RenderOptions::for_width(cfg.width))
}

#[test]
fn control_characters_in_names_never_reach_the_printer() {
    let hostile = "Evil\u{1d}VA\u{0}Shop\u{1b}@\u{10}\u{4}\u{1}\u{7}\u{85}\u{202e}\u{200b}";
    for enc in [
        TextEncoding::Ascii,
        TextEncoding::Cp437,
        TextEncoding::Cp858,
        TextEncoding::Gb18030,
    ] {
        let cfg = ReceiptConfig {
            shop_name: hostile.into(),
            footer: vec![hostile.into()],
            drawer_kick: false,
            ..fixtures::config(PaperWidth::Mm58, enc, true)
        };
        let data = ReceiptData {
            channel: hostile.into(),
            terminal_id: hostile.into(),
            masked: hostile.into(),
            notes: vec![hostile.into()],
            ..fixtures::sale()
        };
        // What the printer gets is exactly what it would get for the cleaned-up names
        // (controls and invisible characters removed, NEL read as a space).
        let clean = "EvilVAShop@";
        let cfg_clean = ReceiptConfig {
            shop_name: clean.into(),
            footer: vec![clean.into()],
            ..cfg.clone()
        };
        let data_clean = ReceiptData {
            channel: clean.into(),
            terminal_id: clean.into(),
            masked: clean.into(),
            notes: vec![clean.into()],
            ..fixtures::sale()
        };
        let profile = PrinterProfile::from_config(&cfg);
        assert_eq!(
            encode(&layout(&data, &cfg), &profile).unwrap(),
            encode(&layout(&data_clean, &cfg_clean), &profile).unwrap(),
            "{enc:?}"
        );
        let text = print_text(&data, &cfg);
        assert_eq!(text.matches(" cut ").count(), 1, "{text}");
        assert!(!text.contains("drawer"), "{text}");
    }
}

#[test]
fn very_long_names_wrap_and_are_capped() {
    let long = "Supercalifragilistic Noodle and Dumpling House ".repeat(12);
    let cfg = ReceiptConfig {
        shop_name: long.clone(),
        address: vec![long.clone(); 8],
        ..fixtures::config(PaperWidth::Mm58, TextEncoding::Cp437, true)
    };
    let data = ReceiptData {
        channel: long.clone(),
        txn_ref: "X".repeat(400),
        masked: "9".repeat(300),
        notes: vec![long.clone(); 40],
        ..fixtures::sale()
    };
    let r = layout(&data, &cfg);
    let shop_lines = r
        .lines
        .iter()
        .take_while(|l| !matches!(l, Line::Rule(_)))
        .filter(|l| {
            matches!(
                l,
                Line::Text {
                    size: TextSize::Tall,
                    ..
                }
            )
        })
        .count();
    assert_eq!(shop_lines, 3);
    assert!(r.lines.len() < 120, "{} lines", r.lines.len());
    for l in &r.lines {
        if let Line::Text { text, size, .. } = l {
            let room = 32 / usize::from(size.width_mult());
            assert!(text_cols(text, TextEncoding::Cp437) <= room, "{text:?}");
        }
    }
    let text = print_text(&data, &cfg);
    // A 300-digit "masked" value is masked again: no long run of clear digits.
    assert!(!text.contains("9999999"), "{text}");
    assert!(text.contains("..."));
}

#[test]
fn amounts_with_zero_two_and_three_decimals() {
    let cfg = fixtures::config(PaperWidth::Mm58, TextEncoding::Cp858, true);
    for (minor, cur, exp, want) in [
        (1_235, "JPY", 0, "JPY 1,235"),
        (0, "JPY", 0, "JPY 0"),
        (1_235, "CNY", 2, "CNY 12.35"),
        (7, "CNY", 2, "CNY 0.07"),
        (-1_235, "CNY", 2, "CNY -12.35"),
        (1_235, "KWD", 3, "KWD 1.235"),
        (1_000_000_001, "BHD", 3, "BHD 1,000,000.001"),
        (i64::MAX, "CNY", 2, "CNY 92,233,720,368,547,758.07"),
        (i64::MIN, "KWD", 3, "KWD -9,223,372,036,854,775.808"),
        (500, "c$\u{1b}", 2, "??? 5.00"),
    ] {
        let data = ReceiptData {
            amount_minor: minor,
            currency: cur.into(),
            exponent: exp,
            ..fixtures::sale()
        };
        let text = print_text(&data, &cfg);
        assert!(text.contains(want), "{want} not in\n{text}");
    }
    assert!(ReceiptData {
        currency: "c$".into(),
        ..fixtures::sale()
    }
    .validate()
    .is_err());
    assert!(ReceiptData {
        exponent: 7,
        ..fixtures::sale()
    }
    .validate()
    .is_err());
}

#[test]
fn unusable_receipt_reference_prints_no_qr() {
    let cfg = fixtures::config(PaperWidth::Mm80, TextEncoding::Gb18030, true);
    for bad in ["", "R1.T0001.\u{1b}x", "R1.终端.abc", &"R".repeat(300)] {
        let data = ReceiptData {
            receipt_ref: bad.into(),
            ..fixtures::sale()
        };
        assert!(data.validate().is_err());
        let text = print_text(&data, &cfg);
        assert!(!text.contains("[QR"), "{text}");
        assert!(text.contains("(receipt reference unavailable)"));
    }
}

#[test]
fn chinese_text_counts_double_width_and_drops_what_gb18030_printers_lack() {
    let cfg = ReceiptConfig {
        shop_name: "金莲面馆金莲面馆金莲面馆金莲面馆金莲面馆金莲面馆 😀".into(),
        ..fixtures::config(PaperWidth::Mm58, TextEncoding::Gb18030, true)
    };
    let r = layout(&fixtures::sale(), &cfg);
    let Some(Line::Text { text, .. }) = r.lines.first() else {
        panic!("no first line");
    };
    assert_eq!(text, "金莲面馆金莲面馆金莲面馆金莲面馆");
    let shop: Vec<&str> = r
        .lines
        .iter()
        .filter_map(|l| match l {
            Line::Text {
                text,
                size: TextSize::Tall,
                ..
            } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(shop[1], "金莲面馆金莲面馆 ?");
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<char>(), 0..200).prop_map(|v| v.into_iter().collect()),
        "[\\x00-\\x1f\\x7f-\\u{9f} a-z咖啡€é]{0,120}",
    ]
}

fn arb_encoding() -> impl Strategy<Value = TextEncoding> {
    prop_oneof![
        Just(TextEncoding::Ascii),
        Just(TextEncoding::Cp437),
        Just(TextEncoding::Cp858),
        Just(TextEncoding::Gb18030),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_strings_lay_out_into_printable_fitting_lines(
        shop in arb_text(),
        channel in arb_text(),
        masked in arb_text(),
        note in arb_text(),
        currency in arb_text(),
        amount in any::<i64>(),
        exponent in any::<u8>(),
        unix_secs in any::<i64>(),
        offset in any::<i32>(),
        enc in arb_encoding(),
        wide in any::<bool>(),
    ) {
        let width = if wide { PaperWidth::Mm80 } else { PaperWidth::Mm58 };
        let cfg = ReceiptConfig {
            shop_name: shop.clone(),
            footer: vec![note.clone()],
            ..fixtures::config(width, enc, true)
        };
        let data = ReceiptData {
            channel,
            masked,
            currency,
            amount_minor: amount,
            exponent,
            notes: vec![note],
            at: LocalTime { unix_secs, utc_offset_secs: offset },
            ..fixtures::sale()
        };
        let cols = usize::from(width.columns());
        let r = layout(&data, &cfg);
        for l in &r.lines {
            if let Line::Text { text, size, .. } = l {
                prop_assert!(text.chars().all(|c| enc.can_print(c)), "{:?}", text);
                prop_assert!(text_cols(text, enc) <= cols / usize::from(size.width_mult()), "{:?}", text);
            }
        }
        let bytes = encode(&r, &PrinterProfile::from_config(&cfg)).unwrap();
        let text = render_text(&bytes, &RenderOptions::for_width(width));
        prop_assert_eq!(text.matches(" cut ").count(), 1);
        let qr_marker = format!("[QR {}]", data.receipt_ref);
        prop_assert!(text.contains(&qr_marker));
    }
}
