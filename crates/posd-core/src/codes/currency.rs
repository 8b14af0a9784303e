//! ISO 4217 currencies the payment codes need: alphabetic code ↔ numeric code ↔ minor-unit exponent.
//!
//! Why it exists: posd's sales carry an alphabetic currency (`CNY`), while EMVCo payloads (tag `53`)
//! and `P1` credentials carry the numeric one (`156`), and the EMVCo amount (tag `54`) is written in
//! major units with as many decimals as the currency's exponent. Amounts inside posd are always
//! integer minor units. The table itself is `core::money`'s (one table for the whole crate); this
//! view adds the EMVCo-facing helpers (unsigned amounts, three-digit numeric codes).

use serde::Serialize;

/// One ISO 4217 currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Currency {
    /// Alphabetic code, e.g. `"CNY"`.
    pub alpha: &'static str,
    /// Numeric code, e.g. `156`.
    pub numeric: u16,
    /// Minor-unit exponent (number of decimals), e.g. `2`.
    pub exponent: u8,
}

impl From<crate::money::Currency> for Currency {
    fn from(m: crate::money::Currency) -> Self {
        Currency {
            alpha: m.code(),
            numeric: m.numeric(),
            exponent: m.exponent(),
        }
    }
}

impl Currency {
    /// Looks a currency up by its alphabetic code (case-insensitive).
    #[must_use]
    pub fn from_alpha(alpha: &str) -> Option<Currency> {
        crate::money::Currency::from_code(alpha)
            .ok()
            .map(Currency::from)
    }

    /// Looks a currency up by its numeric code.
    #[must_use]
    pub fn from_numeric(numeric: u16) -> Option<Currency> {
        crate::money::Currency::from_numeric(numeric).map(Currency::from)
    }

    /// The numeric code as EMVCo writes it: three digits, zero-padded (`"036"`).
    #[must_use]
    pub fn numeric_str(&self) -> String {
        format!("{:03}", self.numeric)
    }

    /// Formats an amount in minor units as a decimal string in major units with exactly
    /// `exponent` decimals (`2372` CNY → `"23.72"`, `5` JPY → `"5"`, `5` CNY → `"0.05"`).
    #[must_use]
    pub fn format_minor(&self, minor: u64) -> String {
        if self.exponent == 0 {
            return minor.to_string();
        }
        let digits = minor.to_string();
        let exp = usize::from(self.exponent);
        let padded = format!("{digits:0>width$}", width = exp + 1);
        let split = padded.len() - exp;
        let (major, fraction) = padded.split_at(split);
        format!("{major}.{fraction}")
    }

    /// Parses a major-unit decimal amount (as in EMVCo tag `54`) into minor units. At most
    /// `exponent` decimals; digits and one optional `.` only; `None` on anything else or overflow.
    #[must_use]
    pub fn parse_major(&self, text: &str) -> Option<u64> {
        let (major, fraction) = match text.split_once('.') {
            Some((m, f)) => (m, f),
            None => (text, ""),
        };
        let exp = usize::from(self.exponent);
        if fraction.len() > exp || (major.is_empty() && fraction.is_empty()) {
            return None;
        }
        if !major.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut value: u64 = 0;
        for b in major.bytes().chain(fraction.bytes()) {
            value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
        for _ in fraction.len()..exp {
            value = value.checked_mul(10)?;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let cny = Currency::from_alpha("cny").unwrap();
        assert_eq!((cny.numeric, cny.exponent), (156, 2));
        assert_eq!(Currency::from_numeric(392).unwrap().alpha, "JPY");
        assert_eq!(Currency::from_alpha("AUD").unwrap().numeric_str(), "036");
        assert!(Currency::from_alpha("XXX").is_none());
        assert!(Currency::from_numeric(999).is_none());
    }

    #[test]
    fn formats_minor_units() {
        let cny = Currency::from_alpha("CNY").unwrap();
        let jpy = Currency::from_alpha("JPY").unwrap();
        let kwd = Currency::from_alpha("KWD").unwrap();
        assert_eq!(cny.format_minor(2372), "23.72");
        assert_eq!(cny.format_minor(5), "0.05");
        assert_eq!(cny.format_minor(0), "0.00");
        assert_eq!(cny.format_minor(100), "1.00");
        assert_eq!(jpy.format_minor(1234), "1234");
        assert_eq!(kwd.format_minor(1), "0.001");
        assert_eq!(cny.format_minor(u64::MAX), "184467440737095516.15");
    }

    #[test]
    fn parses_major_units() {
        let cny = Currency::from_alpha("CNY").unwrap();
        let jpy = Currency::from_alpha("JPY").unwrap();
        assert_eq!(cny.parse_major("23.72"), Some(2372));
        assert_eq!(cny.parse_major("4.2"), Some(420));
        assert_eq!(cny.parse_major("4"), Some(400));
        assert_eq!(cny.parse_major(".5"), Some(50));
        assert_eq!(cny.parse_major("4.221"), None);
        assert_eq!(cny.parse_major("-1"), None);
        assert_eq!(cny.parse_major(""), None);
        assert_eq!(cny.parse_major("."), None);
        assert_eq!(cny.parse_major("1e3"), None);
        assert_eq!(jpy.parse_major("12.5"), None);
        assert_eq!(cny.parse_major("999999999999999999999"), None);
        for v in [0u64, 1, 99, 100, 2372, u64::MAX] {
            assert_eq!(cny.parse_major(&cny.format_minor(v)), Some(v));
        }
    }
}
