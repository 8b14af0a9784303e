//! What in `[receipt]` the chosen printer model cannot print as asked, each with its fix: the
//! configuration checked against the model's profile (`model.rs`), for `posctl status` and the log.

use super::charset::TextEncoding;
use super::layout::{DrawerOn, ReceiptConfig};
use super::model::PrinterModel;
use super::paper::PaperWidth;

fn width_words(w: PaperWidth) -> String {
    match w {
        PaperWidth::Mm58 => "32 (58 mm)".into(),
        PaperWidth::Mm80 => "48 (80 mm)".into(),
    }
}

fn widths_words(ws: &[PaperWidth]) -> String {
    ws.iter()
        .map(|w| width_words(*w))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn encoding_word(e: TextEncoding) -> &'static str {
    match e {
        TextEncoding::Gb18030 => "gb18030",
        TextEncoding::Cp437 => "cp437",
        TextEncoding::Cp858 => "cp858",
        TextEncoding::Ascii => "ascii",
    }
}

/// What in `[receipt]` the chosen model cannot print as asked, each with its fix. Printing goes
/// on (a wrong width still prints, clipped or narrow); these are warnings for `posctl status`
/// and the log.
pub fn config_warnings(cfg: &ReceiptConfig) -> Vec<String> {
    let spec = cfg.printer_model.spec();
    let mut out = Vec::new();
    if !spec.widths.contains(&cfg.width) {
        out.push(format!(
            "[receipt] width = {} but the {} takes {} paper: set width = {}",
            width_words(cfg.width),
            spec.name,
            widths_words(spec.widths),
            spec.widths.first().map(|w| w.columns()).unwrap_or(32)
        ));
    }
    if !spec.encodings.contains(&cfg.encoding) {
        let fix: Vec<&str> = spec.encodings.iter().map(|e| encoding_word(*e)).collect();
        out.push(format!(
            "[receipt] encoding = {} but the {} cannot print it: set encoding to {}",
            encoding_word(cfg.encoding),
            spec.name,
            fix.join(" or ")
        ));
    }
    if cfg.native_qr && !spec.native_qr {
        out.push(format!(
            "the {} has no native QR: the QR is printed as an image (set native_qr = false to say so)",
            spec.name
        ));
    }
    if cfg.drawer_kick && cfg.drawer_on == DrawerOn::CashLike && cfg.cash_like.is_empty() {
        out.push(
            "[receipt] drawer_on = \"cash_like\" with an empty cash_like list: the drawer never opens (list the methods, or set drawer_on = \"all\")"
                .to_string(),
        );
    }
    if cfg.cut && !spec.cutter {
        out.push(format!(
            "the {} has no cutter: paper is fed to the tear bar instead (set cut = false to say so)",
            spec.name
        ));
    }
    out
}

/// A warning when the printer's reported name belongs to a model whose paper is not the
/// configured width, or to another model than the one configured.
pub fn reported_name_warnings(cfg: &ReceiptConfig, reported: &str) -> Vec<String> {
    let Some(model) = PrinterModel::from_reported_name(reported) else {
        return Vec::new();
    };
    let spec = model.spec();
    let mut out = Vec::new();
    if !spec.widths.contains(&cfg.width) {
        out.push(format!(
            "the printer reports itself as {} ({}), which takes {} paper, but [receipt] width = {}: set width = {}",
            reported.trim(),
            spec.name,
            widths_words(spec.widths),
            width_words(cfg.width),
            spec.widths.first().map(|w| w.columns()).unwrap_or(32)
        ));
    }
    if model != cfg.printer_model && cfg.printer_model != PrinterModel::Generic {
        out.push(format!(
            "the printer reports itself as {} but [receipt] printer_model = {}: set printer_model = \"{}\"",
            reported.trim(),
            serde_json::to_value(cfg.printer_model)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            serde_json::to_value(model)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_58mm_printer_warns_about_80mm_paper() {
        let cfg = ReceiptConfig {
            printer_model: PrinterModel::XprinterXp58,
            width: PaperWidth::Mm80,
            cut: false,
            ..ReceiptConfig::default()
        };
        let w = config_warnings(&cfg);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("set width = 32"), "{w:?}");
        let ok = ReceiptConfig {
            width: PaperWidth::Mm58,
            ..cfg
        };
        assert!(config_warnings(&ok).is_empty());
    }

    #[test]
    fn epson_has_no_chinese_mode_and_the_generic_zh_no_native_qr() {
        let cfg = ReceiptConfig {
            printer_model: PrinterModel::EpsonTmT88,
            width: PaperWidth::Mm80,
            ..ReceiptConfig::default()
        };
        let w = config_warnings(&cfg);
        assert!(w.iter().any(|w| w.contains("encoding")), "{w:?}");
        let zh = ReceiptConfig {
            printer_model: PrinterModel::Generic58Zh,
            ..ReceiptConfig::default()
        };
        let w = config_warnings(&zh);
        assert!(w.iter().any(|w| w.contains("native QR")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("cutter")), "{w:?}");
    }

    #[test]
    fn a_reported_name_of_another_width_warns() {
        let cfg = ReceiptConfig {
            printer_model: PrinterModel::Generic,
            width: PaperWidth::Mm80,
            ..ReceiptConfig::default()
        };
        let w = reported_name_warnings(&cfg, "XP-58IIH");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("set width = 32"));
        assert!(reported_name_warnings(&cfg, "TM-T88V").is_empty());
    }
}
