//! Golden ESC/POS bytes (and their text rendering) for every receipt kind at 58 and 80 mm, and
//! the PNG of each with its QR read back to the receipt reference.
//!
//! `UPDATE_GOLDEN=1 cargo test --test receipt_golden` rewrites `tests/golden/receipt/`;
//! otherwise bytes must match exactly. PNGs land in `target/tmp/receipt-png/` for people.

#[path = "common/receipt_fixtures.rs"]
mod fixtures;

use std::path::PathBuf;

use posd_core::i18n::Language;
use posd_core::money::Currency;
use posd_core::receipt::charset::TextEncoding;
use posd_core::receipt::escpos_enc::{encode, PrinterProfile};
use posd_core::receipt::layout::*;
use posd_core::receipt::render::{render_image, render_png, render_text, RenderOptions};
use posd_core::receipt::{
    doc_bytes, owed_on_change, receipt_of, DrawerPolicy, PrintDoc, ReceiptCtx,
};
use posd_core::txn::{Method, Transaction, TxnKind, TxnState};

struct Case {
    name: String,
    width: PaperWidth,
    bytes: Vec<u8>,
    /// QR text expected on the paper, if any.
    qr: Option<String>,
}

fn config_for(width: PaperWidth) -> ReceiptConfig {
    match width {
        PaperWidth::Mm58 => fixtures::config(width, TextEncoding::Cp858, true),
        PaperWidth::Mm80 => fixtures::config(width, TextEncoding::Gb18030, true),
    }
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for width in [PaperWidth::Mm58, PaperWidth::Mm80] {
        let cfg = config_for(width);
        let profile = PrinterProfile::from_config(&cfg);
        for (name, data) in fixtures::transactions() {
            let r = layout(&data, &cfg);
            out.push(Case {
                name: format!("{name}-{}", width.columns()),
                width,
                bytes: encode(&r, &profile).expect("encode"),
                qr: Some(data.receipt_ref.clone()),
            });
        }
        // Raster QR for printers without GS ( k.
        let raster_cfg = ReceiptConfig {
            native_qr: false,
            ..cfg.clone()
        };
        let data = fixtures::sale();
        out.push(Case {
            name: format!("sale-raster-{}", width.columns()),
            width,
            bytes: encode(
                &layout(&data, &raster_cfg),
                &PrinterProfile::from_config(&raster_cfg),
            )
            .expect("encode"),
            qr: Some(data.receipt_ref.clone()),
        });
        let z = layout_z(&fixtures::z_report(), &cfg);
        out.push(Case {
            name: format!("z-report-{}", width.columns()),
            width,
            bytes: encode(&z, &profile).expect("encode"),
            qr: None,
        });
    }
    // Chinese shop on a GB18030 printer.
    let cfg = ReceiptConfig {
        shop_name: "金莲面馆 Golden Lotus".into(),
        address: vec!["深圳市南山区海港路12号".into()],
        footer: vec!["谢谢惠顾 Thank you".into()],
        ..fixtures::config(PaperWidth::Mm80, TextEncoding::Gb18030, true)
    };
    let data = ReceiptData {
        channel: "微信支付 WeChat Pay".into(),
        ..fixtures::sale()
    };
    out.push(Case {
        name: "sale-zh-48".into(),
        width: PaperWidth::Mm80,
        bytes: encode(&layout(&data, &cfg), &PrinterProfile::from_config(&cfg)).expect("encode"),
        qr: Some(data.receipt_ref.clone()),
    });
    out.extend(language_cases());
    out
}

/// The Chinese shop's receipt config in `lang` (`[terminal] language`) on a GB18030 printer.
fn zh_shop(width: PaperWidth, lang: Language) -> ReceiptConfig {
    ReceiptConfig {
        shop_name: "金莲面馆".into(),
        address: vec!["深圳市南山区海港路12号".into()],
        tax_id: "91440300MA5F000X1Q".into(),
        footer: vec!["谢谢惠顾".into()],
        language: lang,
        ..fixtures::config(width, TextEncoding::Gb18030, true)
    }
}

/// Receipts in the shop's language (issue 15): zh-CN in the printer's Chinese mode at both
/// widths (a sale with the platform's reference, an offline sale, the Z report, the pay slip),
/// Spanish in code page 858 and on an ASCII-only printer, and zh-CN on a printer without
/// Chinese mode (English labels, never `?`).
fn language_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let one = |name: String, width: PaperWidth, r: &Receipt, cfg: &ReceiptConfig, qr| Case {
        name,
        width,
        bytes: encode(r, &PrinterProfile::from_config(cfg)).expect("encode"),
        qr,
    };
    let sale = ReceiptData {
        channel: "wechat".into(),
        notes: vec!["Host ref 4200001234202611211403".into()],
        ..fixtures::sale()
    };
    for width in [PaperWidth::Mm58, PaperWidth::Mm80] {
        let cols = width.columns();
        let cfg = zh_shop(width, Language::ZhCn);
        let qr = Some(sale.receipt_ref.clone());
        out.push(one(
            format!("lang-zh-CN-sale-{cols}"),
            width,
            &layout(&sale, &cfg),
            &cfg,
            qr,
        ));
        let z = layout_z(&fixtures::z_report(), &cfg);
        out.push(one(
            format!("lang-zh-CN-z-report-{cols}"),
            width,
            &z,
            &cfg,
            None,
        ));
    }
    let cfg = zh_shop(PaperWidth::Mm58, Language::ZhCn);
    let offline = ReceiptData {
        status: ReceiptStatus::ApprovedOffline,
        method: PayMethod::OfflineCode,
        channel: "p1".into(),
        masked: "user ****5678".into(),
        amount_minor: 350,
        reprint: true,
        ..fixtures::sale()
    };
    out.push(one(
        "lang-zh-CN-sale-offline-32".into(),
        PaperWidth::Mm58,
        &layout(&offline, &cfg),
        &cfg,
        Some(offline.receipt_ref.clone()),
    ));
    let slip = PaySlip {
        terminal_id: "T0001".into(),
        txn_ref: "20261121-000043".into(),
        amount_minor: 2_800,
        currency: "CNY".into(),
        exponent: 2,
        qr: "00020101021226190015cn.example.pay520458125303156540528.005802CN5904Shop6008Shenzhen6304ABCD".into(),
        at: fixtures::at(),
        reprint: false,
        printer_fault: false,
    };
    out.push(one(
        "lang-zh-CN-pay-slip-32".into(),
        PaperWidth::Mm58,
        &layout_pay_slip(&slip, &cfg),
        &cfg,
        Some(slip.qr.clone()),
    ));
    for (name, encoding) in [
        ("cp858", TextEncoding::Cp858),
        ("ascii", TextEncoding::Ascii),
    ] {
        let cfg = ReceiptConfig {
            language: Language::Es,
            ..fixtures::config(PaperWidth::Mm58, encoding, true)
        };
        let refund = fixtures::transactions()
            .into_iter()
            .find(|(n, _)| *n == "refund")
            .map(|(_, d)| d)
            .expect("refund fixture");
        out.push(one(
            format!("lang-es-refund-{name}-32"),
            PaperWidth::Mm58,
            &layout(&refund, &cfg),
            &cfg,
            Some(refund.receipt_ref.clone()),
        ));
    }
    let cfg = ReceiptConfig {
        language: Language::Es,
        ..fixtures::config(PaperWidth::Mm80, TextEncoding::Cp858, true)
    };
    let z = layout_z(&fixtures::z_report(), &cfg);
    out.push(one(
        "lang-es-z-report-48".into(),
        PaperWidth::Mm80,
        &z,
        &cfg,
        None,
    ));
    let epson = ReceiptConfig {
        language: Language::ZhCn,
        printer_model: posd_core::receipt::PrinterModel::EpsonTmT88,
        ..fixtures::config(PaperWidth::Mm80, TextEncoding::Cp858, true)
    };
    out.push(one(
        "lang-zh-CN-on-epson-sale-48".into(),
        PaperWidth::Mm80,
        &layout(&sale, &epson),
        &epson,
        Some(sale.receipt_ref.clone()),
    ));
    out
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/receipt")
}

#[test]
fn golden_bytes_and_text_match() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = golden_dir();
    let mut bad = Vec::new();
    for c in cases() {
        let text = render_text(&c.bytes, &RenderOptions::for_width(c.width));
        let bin_path = dir.join(format!("{}.bin", c.name));
        let txt_path = dir.join(format!("{}.txt", c.name));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&bin_path, &c.bytes).unwrap();
            std::fs::write(&txt_path, &text).unwrap();
            continue;
        }
        match std::fs::read(&bin_path) {
            Ok(want) if want == c.bytes => {}
            Ok(_) => bad.push(format!("{}: bytes differ", c.name)),
            Err(e) => bad.push(format!("{}: {e} (run with UPDATE_GOLDEN=1)", c.name)),
        }
        match std::fs::read_to_string(&txt_path) {
            Ok(want) if want == text => {}
            Ok(_) => bad.push(format!("{}: text rendering differs", c.name)),
            Err(e) => bad.push(format!("{}: {e}", c.name)),
        }
    }
    assert!(bad.is_empty(), "golden mismatches:\n{}", bad.join("\n"));
}

/// Every golden case has its file, and no stale golden files linger.
#[test]
fn golden_directory_has_exactly_the_cases() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return;
    }
    let mut want: Vec<String> = cases()
        .iter()
        .flat_map(|c| [format!("{}.bin", c.name), format!("{}.txt", c.name)])
        .collect();
    want.sort();
    let mut have: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    have.sort();
    assert_eq!(have, want);
}

fn decode_qrs(img: &image::GrayImage) -> Vec<String> {
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(
        img.width() as usize,
        img.height() as usize,
        |x, y| img.get_pixel(x as u32, y as u32).0[0],
    );
    prepared
        .detect_grids()
        .iter()
        .filter_map(|g| g.decode().ok().map(|(_, s)| s))
        .collect()
}

#[test]
fn png_of_each_receipt_carries_its_reference_in_the_qr() {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("receipt-png");
    std::fs::create_dir_all(&out_dir).unwrap();
    for c in cases() {
        let opts = RenderOptions::for_width(c.width);
        let png = render_png(&c.bytes, &opts).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        std::fs::write(out_dir.join(format!("{}.png", c.name)), &png).unwrap();
        let img = render_image(&c.bytes, &opts);
        assert_eq!(img.width(), c.width.dots() + 32, "{}", c.name);
        let found = decode_qrs(&img);
        match &c.qr {
            Some(r) => assert_eq!(found, vec![r.clone()], "{}", c.name),
            None => assert!(found.is_empty(), "{}: unexpected QR {found:?}", c.name),
        }
    }
}

#[test]
fn both_copies_are_printed_and_the_drawer_opens_once() {
    let cfg = config_for(PaperWidth::Mm58);
    let copies = layout_copies(&fixtures::sale(), &cfg);
    assert_eq!(copies.len(), 2);
    // The drawer is never inside a receipt (issue 16): it is its own short job at approval.
    assert!(copies.iter().all(|r| !r.kick_drawer));
    let profile = PrinterProfile::from_config(&cfg);
    let opts = RenderOptions::for_width(cfg.width);
    let text: Vec<String> = copies
        .iter()
        .map(|r| render_text(&encode(r, &profile).unwrap(), &opts))
        .collect();
    assert!(text[0].contains("-- MERCHANT COPY --"));
    assert!(text[1].contains("-- CUSTOMER COPY --"));
    assert!(text.iter().all(|t| !t.contains("drawer")));
    // An approved sale owes one drawer pulse, before its receipt, exactly once.
    let ctx = ReceiptCtx {
        terminal: "T0001".into(),
        zone: posd_core::zone::ShopZone::fixed(8 * 3600).unwrap(),
        drawer: DrawerPolicy::from_config(&cfg),
        language: Default::default(),
    };
    let mut sale = Transaction::new(
        TxnKind::Sale,
        Method::PaymentCode,
        12_345,
        Currency::from_code("CNY").unwrap(),
        TxnState::Approved,
        1_795_269_785_000,
        [7; 10],
    );
    sale.channel = Some("wechat".into());
    let owed = owed_on_change(Some(TxnState::Authorizing), &sale, &ctx);
    assert_eq!(owed.len(), 2);
    assert!(owed[0].is_drawer());
    let drawer_text = render_text(&doc_bytes(&owed[0], &cfg).unwrap(), &opts);
    assert_eq!(drawer_text.matches("[drawer kick pin 2]").count(), 1);
    let receipt_text = render_text(&doc_bytes(&owed[1], &cfg).unwrap(), &opts);
    assert_eq!(receipt_text.matches("COPY --").count(), 2);
    assert!(!receipt_text.contains("drawer"));
    // The same state written again owes nothing again.
    assert!(owed_on_change(Some(TxnState::Approved), &sale, &ctx).is_empty());
    // Declined sales and reprints never open the drawer.
    let declined = Transaction {
        state: TxnState::Declined,
        ..sale.clone()
    };
    assert!(owed_on_change(Some(TxnState::Authorizing), &declined, &ctx)
        .iter()
        .all(|d| !d.is_drawer()));
    let mut reprint = PrintDoc::Receipt(receipt_of(&sale, &ctx).unwrap());
    reprint.mark_reprint();
    let t = render_text(&doc_bytes(&reprint, &cfg).unwrap(), &opts);
    assert!(
        t.contains("*** REPRINT ***") && !t.contains("drawer"),
        "{t}"
    );
}

#[test]
fn z_report_totals_per_currency() {
    let totals = z_totals(&fixtures::z_report());
    let names: Vec<&str> = totals.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(names, ["CNY", "JPY"]);
    let cny = &totals[0].2;
    assert_eq!(cny.sales_count, 57 + 31 + 120 + 4);
    assert_eq!(cny.sales_minor, 1_234_550 + 655_000 + 42_000 + 1_999_900);
    assert_eq!(cny.refund_count, 2);
    // The voided offline sale is among the approved ones; its void takes it back.
    assert_eq!((cny.void_count, cny.void_minor), (1, 350));
    assert_eq!(
        cny.net_minor(),
        1_234_550 + 655_000 + 42_000 + 1_999_900 - 8_800 - 350
    );
    let text = render_text(
        &encode(
            &layout_z(&fixtures::z_report(), &config_for(PaperWidth::Mm80)),
            &PrinterProfile::from_config(&config_for(PaperWidth::Mm80)),
        )
        .unwrap(),
        &RenderOptions::for_width(PaperWidth::Mm80),
    );
    assert!(text.contains("CNY 39,223.00"), "{text}");
    assert!(text.contains("Voids"), "{text}");
    assert!(text.contains("JPY 15,800"), "{text}");
    // The business day, and the sales still talking to the host at the close: counted, named
    // by their short reference, and the one carried in from the previous close.
    assert!(
        text.contains("Business day") && text.contains("2026-11-21"),
        "{text}"
    );
    assert!(text.contains("Carried to next batch"), "{text}");
    assert!(
        text.contains("  0a1b2c3d4e5f") && text.contains("  9f8e7d6c5b4a"),
        "{text}"
    );
    assert!(text.contains("Carried in"), "{text}");
}

fn case(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

#[test]
fn zh_cn_receipt_and_z_report_print_in_chinese_mode() {
    for name in ["lang-zh-CN-sale-32", "lang-zh-CN-z-report-48"] {
        let c = case(name);
        // ESC @, then FS & (Chinese mode) before any text.
        assert_eq!(&c.bytes[..4], &[0x1B, b'@', 0x1C, b'&'], "{name}");
        assert!(!c.bytes.windows(2).any(|w| w == [0x1C, b'.']), "{name}");
        let text = render_text(&c.bytes, &RenderOptions::for_width(c.width));
        assert!(!text.contains('?'), "{name}: {text}");
        if name.contains("sale") {
            // "消费" and "交易成功" in GB18030, as the printer receives them.
            assert!(
                c.bytes.windows(4).any(|w| w == [0xCF, 0xFB, 0xB7, 0xD1]),
                "{name}"
            );
            for want in [
                "消费",
                "交易成功",
                "合计",
                "微信支付",
                "平台单号",
                "客户存根",
                "123.45",
            ] {
                assert!(text.contains(want), "{name}: no {want} in\n{text}");
            }
        } else {
            for want in [
                "结算报告",
                "批次号",
                "净额",
                "成功, 未结算",
                "CNY 39,223.00",
                // The business day and the transactions carried over the close (issue 15).
                "营业日",
                "2026-11-21",
                "转入下一批次",
                "0a1b2c3d4e5f",
                "上批次转入",
            ] {
                assert!(text.contains(want), "{name}: no {want} in\n{text}");
            }
        }
    }
}

#[test]
fn a_printer_without_chinese_mode_prints_english_labels_not_question_marks() {
    let c = case("lang-zh-CN-on-epson-sale-48");
    assert!(!c.bytes.windows(2).any(|w| w == [0x1C, b'&']));
    let text = render_text(&c.bytes, &RenderOptions::for_width(c.width));
    assert!(text.contains("SALE") && text.contains("APPROVED"), "{text}");
    assert!(
        text.contains("Host ref") && text.contains("WeChat Pay"),
        "{text}"
    );
    assert!(!text.contains('?'), "{text}");
}

#[test]
fn spanish_prints_its_accents_where_the_code_page_has_them_and_folds_them_on_ascii() {
    let cp = render_text(
        &case("lang-es-refund-cp858-32").bytes,
        &RenderOptions::for_width(PaperWidth::Mm58),
    );
    assert!(cp.contains("DEVOLUCIÓN") && cp.contains("Código"), "{cp}");
    let ascii = render_text(
        &case("lang-es-refund-ascii-32").bytes,
        &RenderOptions::for_width(PaperWidth::Mm58),
    );
    assert!(
        ascii.contains("DEVOLUCION") && ascii.contains("Codigo"),
        "{ascii}"
    );
    assert!(!ascii.contains('?'), "{ascii}");
}

/// The zh-CN sale and Z report as pictures: `docs/receipts/*-zh-CN-58mm.png` are the renderer's
/// output for the golden bytes (CJK from GNU Unifont, in the tree through the `unifont` crate);
/// `UPDATE_GOLDEN=1` rewrites them.
#[test]
fn zh_cn_pngs_match_the_golden_pictures() {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/receipts");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, file) in [
        ("lang-zh-CN-sale-32", "sale-zh-CN-58mm.png"),
        ("lang-zh-CN-z-report-32", "z-report-zh-CN-58mm.png"),
    ] {
        let c = case(name);
        let opts = RenderOptions::for_width(c.width);
        let path = docs.join(file);
        if update {
            std::fs::write(&path, render_png(&c.bytes, &opts).unwrap()).unwrap();
            continue;
        }
        let want = image::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()))
            .to_luma8();
        let got = render_image(&c.bytes, &opts);
        assert_eq!(got.dimensions(), want.dimensions(), "{file}");
        assert!(got.as_raw() == want.as_raw(), "{file}: pixels differ");
    }
}
