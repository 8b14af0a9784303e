//! The till's rules, without I/O: how a scanned text is paid, what card data is bound to, and
//! the shop-time calendar. The engine (the product's shell) asks these and carries out the answers.

use crate::codes::{self, CodeKind, Patterns};
use crate::txn::Transaction;

/// How a scanned code is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRoute {
    Online {
        channel: String,
    },
    Offline,
    Card,
    /// A receipt's QR: the transaction it names (refunds).
    Receipt {
        txn_id: String,
    },
    Refuse(String),
}

/// Routes scanned text with the configured patterns (the classifier in `codes`).
pub fn route(text: &str, patterns: &Patterns) -> CodeRoute {
    match codes::classify(text, patterns) {
        Err(e) => CodeRoute::Refuse(e.to_string()),
        Ok(c) => {
            if let Some(channel) = c.kind.online_channel() {
                return CodeRoute::Online {
                    channel: channel.to_string(),
                };
            }
            match c.kind {
                CodeKind::P1Offline => CodeRoute::Offline,
                CodeKind::CardTrack => CodeRoute::Card,
                CodeKind::ReceiptRef => match patterns.receipt_ref(c.text) {
                    Some(r) => CodeRoute::Receipt { txn_id: r.txn_id },
                    None => CodeRoute::Refuse("unreadable receipt reference".into()),
                },
                k => CodeRoute::Refuse(
                    k.refusal()
                        .map(|r| r.1.to_string())
                        .unwrap_or_else(|| format!("{} cannot pay a sale", k.name())),
                ),
            }
        }
    }
}

/// The additional data sealed card data is bound to: this transaction, amount and currency.
pub fn card_aad(t: &Transaction) -> String {
    format!("{}|{}|{}", t.id, t.amount, t.currency.code())
}

/// (year, month) of a unix-ms instant at a UTC offset (card expiry is checked in shop time).
pub fn local_year_month(now_ms: u64, utc_offset_s: i32) -> (u16, u8) {
    let secs = (now_ms / 1000) as i64 + i64::from(utc_offset_s);
    let days = secs.div_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year.clamp(0, 9999) as u16, month as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_month_in_shop_time() {
        // 2026-11-30T20:00:00Z is already December in China (UTC+8).
        let ms = 1_796_068_800_000;
        assert_eq!(local_year_month(ms, 0), (2026, 11));
        assert_eq!(local_year_month(ms, 28_800), (2026, 12));
        assert_eq!(local_year_month(0, 0), (1970, 1));
        assert_eq!(local_year_month(951_782_400_000, 0), (2000, 2)); // 2000-02-29
    }
}
