//! Printer profiles: what a common receipt printer model can do — paper widths, character sets,
//! whether it has a Chinese (double-byte) mode it starts in, a cutter, native QR (`GS ( k`),
//! process ID responses (`GS ( H`, the printer's own word that a job finished printing) and the
//! name it reports (`GS I 67`). `[receipt] printer_model` picks one; the encoder and the print
//! queue follow it, and a configuration the model cannot print is a warning, not a refusal.
//!
//! Pure: the values are from the makers' command references; the names reported are matched by
//! prefix, so "TM-T20III" is a TM-T20.

use serde::{Deserialize, Serialize};

use super::charset::TextEncoding;
use super::layout::{PaperWidth, ReceiptConfig};

/// The printer models posd knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterModel {
    /// Unknown: `[receipt]` decides everything; Chinese mode is cancelled (`FS .`) before
    /// single-byte text in case the printer starts in it.
    #[default]
    Generic,
    /// Epson TM-T20 (II, III): 80 mm (58 mm by setting), cutter, code pages, no Chinese mode.
    EpsonTmT20,
    /// Epson TM-T88 (IV–VII): as the TM-T20.
    EpsonTmT88,
    /// Xprinter XP-58 family: 58 mm, tear bar, starts in Chinese (GB18030) mode.
    XprinterXp58,
    /// Xprinter XP-80 family: 80 mm, cutter, starts in Chinese mode.
    XprinterXp80,
    /// The unbranded 58 mm Chinese printer: Chinese mode, code page 437, no cutter, no
    /// native QR.
    Generic58Zh,
}

/// What one model can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// For people ("Xprinter XP-58").
    pub name: &'static str,
    /// Paper it takes.
    pub widths: &'static [PaperWidth],
    /// Character sets it prints.
    pub encodings: &'static [TextEncoding],
    /// `Some(true)`: has a Chinese mode and starts in it (`FS .` is needed for single-byte
    /// text); `Some(false)`: has none (`FS` commands are not sent); `None`: unknown (cancel it).
    pub chinese_mode: Option<bool>,
    pub cutter: bool,
    pub native_qr: bool,
    /// Answers `GS ( H` when the data before it has printed: a job can be confirmed, and
    /// resumed without duplication after a fault.
    pub process_id: bool,
    /// Answers `GS I 67` with its name.
    pub reports_name: bool,
    /// Name prefixes it reports.
    pub names: &'static [&'static str],
}

const BOTH: &[PaperWidth] = &[PaperWidth::Mm80, PaperWidth::Mm58];
const ALL_SETS: &[TextEncoding] = &[
    TextEncoding::Gb18030,
    TextEncoding::Cp437,
    TextEncoding::Cp858,
    TextEncoding::Ascii,
];
const LATIN: &[TextEncoding] = &[
    TextEncoding::Cp437,
    TextEncoding::Cp858,
    TextEncoding::Ascii,
];

impl PrinterModel {
    pub const ALL: [PrinterModel; 6] = [
        PrinterModel::Generic,
        PrinterModel::EpsonTmT20,
        PrinterModel::EpsonTmT88,
        PrinterModel::XprinterXp58,
        PrinterModel::XprinterXp80,
        PrinterModel::Generic58Zh,
    ];

    pub fn spec(self) -> ModelSpec {
        match self {
            PrinterModel::Generic => ModelSpec {
                name: "generic ESC/POS printer",
                widths: BOTH,
                encodings: ALL_SETS,
                chinese_mode: None,
                cutter: true,
                native_qr: true,
                process_id: false,
                reports_name: false,
                names: &[],
            },
            PrinterModel::EpsonTmT20 => ModelSpec {
                name: "Epson TM-T20",
                widths: BOTH,
                encodings: LATIN,
                chinese_mode: Some(false),
                cutter: true,
                native_qr: true,
                process_id: true,
                reports_name: true,
                names: &["TM-T20"],
            },
            PrinterModel::EpsonTmT88 => ModelSpec {
                name: "Epson TM-T88",
                widths: BOTH,
                encodings: LATIN,
                chinese_mode: Some(false),
                cutter: true,
                native_qr: true,
                process_id: true,
                reports_name: true,
                names: &["TM-T88"],
            },
            PrinterModel::XprinterXp58 => ModelSpec {
                name: "Xprinter XP-58",
                widths: &[PaperWidth::Mm58],
                encodings: ALL_SETS,
                chinese_mode: Some(true),
                cutter: false,
                native_qr: true,
                process_id: false,
                reports_name: false,
                names: &["XP-58"],
            },
            PrinterModel::XprinterXp80 => ModelSpec {
                name: "Xprinter XP-80",
                widths: &[PaperWidth::Mm80],
                encodings: ALL_SETS,
                chinese_mode: Some(true),
                cutter: true,
                native_qr: true,
                process_id: false,
                reports_name: false,
                names: &["XP-80"],
            },
            PrinterModel::Generic58Zh => ModelSpec {
                name: "generic 58 mm Chinese printer",
                widths: &[PaperWidth::Mm58],
                encodings: &[
                    TextEncoding::Gb18030,
                    TextEncoding::Cp437,
                    TextEncoding::Ascii,
                ],
                chinese_mode: Some(true),
                cutter: false,
                native_qr: false,
                process_id: false,
                reports_name: false,
                names: &[],
            },
        }
    }

    /// The model a printer's reported name (`GS I 67`) belongs to, if posd knows it.
    pub fn from_reported_name(name: &str) -> Option<PrinterModel> {
        let n = name.trim().to_ascii_uppercase();
        PrinterModel::ALL.into_iter().find(|m| {
            m.spec()
                .names
                .iter()
                .any(|p| n.starts_with(&p.to_ascii_uppercase()))
        })
    }
}

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
    if cfg.drawer_kick
        && cfg.drawer_on == super::layout::DrawerOn::CashLike
        && cfg.cash_like.is_empty()
    {
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
    fn reported_names_find_their_model() {
        assert_eq!(
            PrinterModel::from_reported_name("TM-T20III"),
            Some(PrinterModel::EpsonTmT20)
        );
        assert_eq!(
            PrinterModel::from_reported_name("tm-t88v"),
            Some(PrinterModel::EpsonTmT88)
        );
        assert_eq!(PrinterModel::from_reported_name("ACME-1"), None);
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
