//! Money as integer minor units plus an ISO 4217 currency.
//!
//! Amounts never pass through floats: keyed amounts are parsed digit by digit against the
//! currency's exponent (0, 2 or 3 decimals), and formatted back the same way.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an amount or a currency was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency {0:?} (ISO 4217 alphabetic code expected)")]
    UnknownCurrency(String),
    #[error("amount {0:?} is not a decimal number")]
    NotANumber(String),
    #[error("amount {amount:?} has more than {exponent} decimals for {currency}")]
    TooManyDecimals {
        amount: String,
        exponent: u8,
        currency: &'static str,
    },
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

/// An ISO 4217 currency known to posd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    numeric: u16,
    exponent: u8,
}

/// (alphabetic, numeric, minor-unit exponent). Covers the exponents 0, 2 and 3 in use.
const CURRENCIES: &[(&str, u16, u8)] = &[
    ("AED", 784, 2),
    ("AUD", 36, 2),
    ("BHD", 48, 3),
    ("BRL", 986, 2),
    ("CAD", 124, 2),
    ("CHF", 756, 2),
    ("CLP", 152, 0),
    ("CNY", 156, 2),
    ("CZK", 203, 2),
    ("DKK", 208, 2),
    ("EUR", 978, 2),
    ("GBP", 826, 2),
    ("HKD", 344, 2),
    ("HUF", 348, 2),
    ("IDR", 360, 2),
    ("INR", 356, 2),
    ("IQD", 368, 3),
    ("ISK", 352, 0),
    ("JOD", 400, 3),
    ("JPY", 392, 0),
    ("KHR", 116, 2),
    ("KRW", 410, 0),
    ("KWD", 414, 3),
    ("LAK", 418, 2),
    ("LYD", 434, 3),
    ("MMK", 104, 2),
    ("MOP", 446, 2),
    ("MXN", 484, 2),
    ("MYR", 458, 2),
    ("NOK", 578, 2),
    ("NZD", 554, 2),
    ("OMR", 512, 3),
    ("PHP", 608, 2),
    ("PKR", 586, 2),
    ("PLN", 985, 2),
    ("SAR", 682, 2),
    ("SEK", 752, 2),
    ("SGD", 702, 2),
    ("THB", 764, 2),
    ("TND", 788, 3),
    ("TWD", 901, 2),
    ("UGX", 800, 0),
    ("USD", 840, 2),
    ("VND", 704, 0),
    ("XAF", 950, 0),
    ("XOF", 952, 0),
    ("ZAR", 710, 2),
];

/// The largest amount posd handles in minor units (keeps sums of a day's sales far from overflow).
pub const MAX_MINOR: i64 = 1_000_000_000_000;

impl Currency {
    /// Looks a currency up by its alphabetic code (case-insensitive).
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        let upper = code.trim().to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(c, _, _)| *c == upper)
            .map(|&(code, numeric, exponent)| Currency {
                code,
                numeric,
                exponent,
            })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_string()))
    }

    /// Looks a currency up by its ISO 4217 numeric code.
    pub fn from_numeric(numeric: u16) -> Option<Currency> {
        CURRENCIES
            .iter()
            .find(|(_, n, _)| *n == numeric)
            .map(|&(code, numeric, exponent)| Currency {
                code,
                numeric,
                exponent,
            })
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
    pub fn numeric(&self) -> u16 {
        self.numeric
    }
    /// Number of decimals of the minor unit (JPY 0, CNY 2, KWD 3).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Parses a decimal amount ("12.5", "12.50", "1200") into minor units, strictly: digits,
    /// optionally one point followed by at least one digit, nothing else — no blanks, signs,
    /// exponents, separators, bare point ("12.") or missing integer part (".5"). Refuses more
    /// decimals than the currency has, zero and huge amounts.
    pub fn parse_amount(&self, text: &str) -> Result<i64, MoneyError> {
        let t = text;
        let (int_part, frac_part) = match t.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (t, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int_part) || frac_part.is_some_and(|f| !digits(f)) {
            return Err(MoneyError::NotANumber(text.to_string()));
        }
        let frac_part = frac_part.unwrap_or("");
        let frac_trimmed = frac_part.trim_end_matches('0');
        if frac_trimmed.len() > self.exponent as usize {
            return Err(MoneyError::TooManyDecimals {
                amount: text.to_string(),
                exponent: self.exponent,
                currency: self.code,
            });
        }
        if int_part.len() > 15 {
            return Err(MoneyError::TooLarge(text.to_string()));
        }
        let mut minor: i64 = 0;
        for b in int_part.bytes() {
            minor = minor * 10 + i64::from(b - b'0');
        }
        let mut scale = 0u8;
        for b in frac_trimmed.bytes() {
            minor = minor * 10 + i64::from(b - b'0');
            scale += 1;
        }
        while scale < self.exponent {
            minor *= 10;
            scale += 1;
        }
        if minor > MAX_MINOR {
            return Err(MoneyError::TooLarge(text.to_string()));
        }
        if minor <= 0 {
            return Err(MoneyError::NotPositive);
        }
        Ok(minor)
    }

    /// Formats minor units with the currency's decimals: 1250 CNY → "12.50", 5 JPY → "5".
    pub fn format(&self, minor: i64) -> String {
        let neg = minor < 0;
        let abs = minor.unsigned_abs();
        let s = if self.exponent == 0 {
            abs.to_string()
        } else {
            let p = 10u64.pow(u32::from(self.exponent));
            format!(
                "{}.{:0width$}",
                abs / p,
                abs % p,
                width = self.exponent as usize
            )
        };
        if neg {
            format!("-{s}")
        } else {
            s
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::from_code(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount of money: integer minor units and their currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.currency.format(self.minor),
            self.currency.code
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(c: &str) -> Currency {
        Currency::from_code(c).unwrap()
    }

    #[test]
    fn parses_by_exponent() {
        assert_eq!(cur("CNY").parse_amount("12.50"), Ok(1250));
        assert_eq!(cur("CNY").parse_amount("12.5"), Ok(1250));
        assert_eq!(cur("CNY").parse_amount("12"), Ok(1200));
        assert_eq!(cur("CNY").parse_amount("0.5"), Ok(50));
        assert_eq!(cur("CNY").parse_amount("007.10"), Ok(710));
        assert_eq!(cur("JPY").parse_amount("1200"), Ok(1200));
        assert_eq!(cur("JPY").parse_amount("1200.00"), Ok(1200));
        assert_eq!(cur("KWD").parse_amount("1.234"), Ok(1234));
        assert_eq!(cur("KWD").parse_amount("0.001"), Ok(1));
    }

    #[test]
    fn refuses_bad_amounts() {
        let cny = cur("CNY");
        assert!(matches!(
            cny.parse_amount("1.234"),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            cur("JPY").parse_amount("1.5"),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        for bad in [
            "", ".", "-1", "+1", "1e3", "1,00", "12.3.4", " 1 2", "abc", "1.", "12.", ".5", " 1",
            "1 ", "\t1", "1\n", "１２", "0x10", "1_000", "1.-5", "1.+5",
        ] {
            let r = cny.parse_amount(bad);
            assert!(
                matches!(r, Err(MoneyError::NotANumber(_))),
                "{bad:?} gave {r:?}"
            );
        }
        assert_eq!(cny.parse_amount("0"), Err(MoneyError::NotPositive));
        assert_eq!(cny.parse_amount("0.00"), Err(MoneyError::NotPositive));
        assert!(matches!(
            cny.parse_amount("99999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            cny.parse_amount("10000000000.01"),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_by_exponent() {
        assert_eq!(cur("CNY").format(1250), "12.50");
        assert_eq!(cur("CNY").format(5), "0.05");
        assert_eq!(cur("CNY").format(-5), "-0.05");
        assert_eq!(cur("JPY").format(1200), "1200");
        assert_eq!(cur("BHD").format(1234), "1.234");
        for c in ["CNY", "JPY", "KWD"] {
            let c = cur(c);
            for m in [1, 9, 10, 99, 100, 12345, MAX_MINOR] {
                assert_eq!(c.parse_amount(&c.format(m)), Ok(m));
            }
        }
    }

    #[test]
    fn currency_lookup() {
        assert_eq!(cur("cny").numeric(), 156);
        assert_eq!(Currency::from_numeric(392).map(|c| c.code()), Some("JPY"));
        assert!(Currency::from_code("XXX").is_err());
    }
}
