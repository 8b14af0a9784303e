//! posctl's contract with people and scripts: the exit codes, and how every answer and every
//! failure is printed — words for people, or exactly one JSON line on stdout with `--json`
//! (failures included, with their machine code). Also the small table and time helpers the
//! commands share, so money, times and columns look the same everywhere.

use posd::control::ControlError;
use posd_core::money::{Currency, Money};
use posd_core::zone::ShopZone;
use std::process::ExitCode;

/// The exit codes (their meanings: `posd::cli::posctl::EXIT_STATUS`).
pub use posd::cli::posctl::exit;

/// A failure with its exit code and machine code; printed once by `main`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub exit: u8,
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit: exit::USAGE,
            code: "usage".into(),
            message: message.into(),
        }
    }

    pub fn refused(code: &str, message: impl Into<String>) -> Failure {
        Failure {
            exit: exit::REFUSED,
            code: code.into(),
            message: message.into(),
        }
    }

    /// What any error of a command becomes.
    pub fn of(e: &anyhow::Error) -> Failure {
        if let Some(f) = e.downcast_ref::<Failure>() {
            return Failure {
                exit: f.exit,
                code: f.code.clone(),
                message: f.message.clone(),
            };
        }
        if let Some(c) = e.downcast_ref::<ControlError>() {
            return Failure::from_control(c);
        }
        Failure {
            exit: exit::ERROR,
            code: "error".into(),
            message: format!("{e:#}"),
        }
    }

    pub fn from_control(e: &ControlError) -> Failure {
        let exit = match e {
            ControlError::Refused { .. } => exit::REFUSED,
            ControlError::Connect { .. } => exit::UNREACHABLE,
            _ => exit::ERROR,
        };
        Failure {
            exit,
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }

    /// Prints the failure once: `{"ok":false,...}` on stdout with `--json`, else one line on
    /// stderr ("refused: " only for a refusal).
    pub fn print(&self, json: bool) -> ExitCode {
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "ok": false,
                    "code": self.code,
                    "error": self.message,
                    "exit": self.exit,
                })
            );
        } else if self.exit == exit::REFUSED {
            eprintln!("posctl: refused: {}", self.message);
        } else {
            eprintln!("posctl: {}", self.message);
        }
        ExitCode::from(self.exit)
    }
}

/// An amount in minor units as people read it (`12.50 CNY`), through the one formatter
/// (`posd_core::money::Money`).
pub fn money(minor: i64, currency: Currency) -> String {
    Money { minor, currency }.to_string()
}

/// As [`money`] for a currency given by its code (a reply's `currency` field).
pub fn money_code(minor: i64, currency: &str) -> String {
    match Currency::from_code(currency) {
        Ok(c) => money(minor, c),
        Err(_) => format!("{minor} (minor units of {currency:?})"),
    }
}

/// Unix ms as the shop's wall clock (`2026-11-21 14:03:05 +08:00`, with the offset in force
/// at that instant); 0 is "-".
pub fn shop_time(ms: u64, zone: &ShopZone) -> String {
    if ms == 0 {
        return "-".into();
    }
    posd_core::receipt::layout::format_time(zone.local_time(ms))
}

/// The shop's zone as a daemon's status names it: its `time_zone` when this machine's tz data
/// (or posctl's bundled copy) knows it, else the fixed `utc_offset_s` (a daemon that predates
/// `time_zone`), else UTC.
pub fn zone_of_status(v: &posd_core::control::StatusDoc) -> ShopZone {
    v.time_zone
        .as_deref()
        .and_then(|n| posd::clock::named_zone(n).ok())
        .map(|(z, _)| z)
        .or_else(|| v.utc_offset_s.and_then(|o| ShopZone::fixed(o).ok()))
        .unwrap_or_default()
}

/// Which way a column's cells line up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table for people: a header, columns as wide as their widest cell (counted in chars),
/// two blanks between columns, trailing blanks trimmed.
pub fn table(header: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut width: Vec<usize> = header.iter().map(|(h, _)| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate().take(n) {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = width[i].saturating_sub(c.chars().count());
            if header[i].1 == Align::Right {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header.iter().map(|(h, _)| *h));
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up() {
        let t = table(
            &[
                ("ID", Align::Left),
                ("AMOUNT", Align::Right),
                ("NOTE", Align::Left),
            ],
            &[
                vec!["a".into(), "1.00 CNY".into(), "".into()],
                vec!["bbbb".into(), "1250.00 CNY".into(), "ok".into()],
            ],
        );
        assert_eq!(
            t,
            "ID         AMOUNT  NOTE\na        1.00 CNY\nbbbb  1250.00 CNY  ok\n"
        );
    }

    #[test]
    fn money_in_major_units() {
        assert_eq!(money_code(320, "CNY"), "3.20 CNY");
        assert_eq!(money_code(320, "JPY"), "320 JPY");
        let cst = ShopZone::fixed(8 * 3600).unwrap();
        assert_eq!(shop_time(0, &cst), "-");
        assert_eq!(
            shop_time(1_700_000_000_000, &cst),
            "2023-11-15 06:13:20 +08:00"
        );
        // A named zone: each time with the offset in force then (Madrid, 2027-03-28 01:00 UTC).
        let madrid = zone_of_status(&posd_core::control::StatusDoc {
            time_zone: Some("Europe/Madrid".into()),
            utc_offset_s: Some(7200),
            ..Default::default()
        });
        assert_eq!(madrid.name(), "Europe/Madrid");
        assert_eq!(
            shop_time(1_806_195_540_000, &madrid),
            "2027-03-28 01:59:00 +01:00"
        );
        assert_eq!(
            shop_time(1_806_195_600_000, &madrid),
            "2027-03-28 03:00:00 +02:00"
        );
        // A daemon that predates `time_zone`, or a name this machine does not know.
        let old = posd_core::control::StatusDoc {
            utc_offset_s: Some(3600),
            ..Default::default()
        };
        assert_eq!(zone_of_status(&old).name(), "UTC+01:00");
        let unknown = posd_core::control::StatusDoc {
            time_zone: Some("Mars/Olympus_Mons".into()),
            utc_offset_s: Some(-3600),
            ..Default::default()
        };
        assert_eq!(zone_of_status(&unknown).name(), "UTC-01:00");
    }
}
