//! The paper a receipt printer takes: its width in columns and dots. Its own room, so the
//! printer models and the layout both name it without importing each other.

use serde::{Deserialize, Serialize};

/// Paper width in columns of font A (12 × 24 dots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum PaperWidth {
    /// 58 mm paper, 384 dots, 32 columns.
    Mm58,
    /// 80 mm paper, 576 dots, 48 columns.
    Mm80,
}

impl PaperWidth {
    pub fn columns(self) -> u16 {
        match self {
            PaperWidth::Mm58 => 32,
            PaperWidth::Mm80 => 48,
        }
    }

    /// Printable dots at 203 dpi.
    pub fn dots(self) -> u32 {
        u32::from(self.columns()) * 12
    }
}

impl TryFrom<u16> for PaperWidth {
    type Error = String;
    fn try_from(v: u16) -> Result<Self, String> {
        match v {
            32 => Ok(PaperWidth::Mm58),
            48 => Ok(PaperWidth::Mm80),
            other => Err(format!(
                "width must be 32 (58 mm) or 48 (80 mm), not {other}"
            )),
        }
    }
}

impl From<PaperWidth> for u16 {
    fn from(w: PaperWidth) -> u16 {
        w.columns()
    }
}
