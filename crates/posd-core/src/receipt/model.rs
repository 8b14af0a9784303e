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
use super::paper::PaperWidth;

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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
