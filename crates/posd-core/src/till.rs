//! The till's rules, without I/O: one sale undecided at a time, what the till waits for, the
//! manager-PIN lockout, which money moves need the host, when a batch may close, the card's
//! store-and-forward decision, how a scanned text is paid and the shop-time calendar.
//!
//! [`Till`] is the state a cashier sees; the engine (the product's shell) asks it before every
//! step and carries out the answer — journal writes, MQTT, the argon2 check itself. Every rule
//! here is unit-tested without a broker, a database or a clock (`now` comes in as a value).

use crate::card::saf::{saf_allowed, SafLimits, SafRefusal};
use crate::codes::{self, CodeKind, Patterns};
use crate::money::Currency;
use crate::txn::{Millis, Transaction};
use uuid::Uuid;

/// Wrong manager PINs in a row before refunds and voids lock, and for how long.
pub const PIN_TRIES: u32 = 5;
pub const PIN_LOCK_MS: u64 = 60_000;

/// Why the till refuses a step. The messages are what the cashier reads; `code` is for machines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TillRefusal {
    #[error("a sale is already in progress")]
    Busy,
    #[error("no sale in progress")]
    NoSale,
    #[error("the amount must be above zero")]
    NotPositive,
    #[error("amount {amount} is above the limit {limit}")]
    OverLimit { amount: String, limit: String },
    #[error("currency {0} is not this terminal's currency")]
    Currency(String),
    #[error("wrong manager PIN")]
    WrongPin,
    #[error("too many wrong manager PINs: locked for {0} s")]
    PinLocked(u64),
    #[error("no manager PIN is configured ([manager] pin_hash): refunds and voids are disabled")]
    NoPin,
    #[error("{0}")]
    HostUnreachable(String),
    #[error(
        "{count} transaction(s) still waiting for the host ({ids}); close the batch when they end"
    )]
    InFlight { count: usize, ids: String },
}

impl TillRefusal {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TillRefusal::Busy => "busy",
            TillRefusal::NoSale => "no_sale",
            TillRefusal::NotPositive | TillRefusal::NoPin => "refused",
            TillRefusal::OverLimit { .. } => "over_limit",
            TillRefusal::Currency(_) => "currency",
            TillRefusal::WrongPin => "wrong_pin",
            TillRefusal::PinLocked(_) => "pin_locked",
            TillRefusal::HostUnreachable(_) => "host_unreachable",
            TillRefusal::InFlight { .. } => "in_flight",
        }
    }
}

/// What the till waits for before a sale or refund can go on. `R` is whatever the shell needs
/// to answer the caller later (a reply channel); tests use `()`.
#[derive(Debug)]
pub enum Awaiting<R> {
    /// The customer's code or card for a sale of `amount`.
    Code {
        amount: i64,
        currency: Currency,
        reply: R,
    },
    /// The receipt naming the sale to refund (the PIN was already checked).
    Receipt {
        amount: Option<i64>,
        refund_id: Option<String>,
        reply: R,
    },
    /// A receipt to find (the keypad's reprint and void): the transaction its QR names on
    /// this terminal is the answer; nothing else happens.
    Lookup { reply: R },
}

impl<R> Awaiting<R> {
    pub fn reply(self) -> R {
        match self {
            Awaiting::Code { reply, .. }
            | Awaiting::Receipt { reply, .. }
            | Awaiting::Lookup { reply } => reply,
        }
    }
}

/// How a card sale goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardPath {
    /// Authorize it with the host now.
    Online,
    /// Approve it offline and forward it when the host is back.
    StoreAndForward,
    /// Neither: the host is unreachable and store-and-forward does not allow it.
    Refuse(SafRefusal),
}

/// The card's store-and-forward decision: online while the host is reachable, else within the
/// configured floor limit, queue size and age (DESIGN §1.4).
pub fn card_path(
    online: bool,
    limits: &SafLimits,
    amount: i64,
    queued: u32,
    oldest_queued_at_ms: Option<Millis>,
    now: Millis,
) -> CardPath {
    if online {
        return CardPath::Online;
    }
    match saf_allowed(
        limits,
        amount,
        queued,
        oldest_queued_at_ms.map(|ms| ms / 1000),
        now / 1000,
    ) {
        Ok(()) => CardPath::StoreAndForward,
        Err(r) => CardPath::Refuse(r),
    }
}

/// The till: the sale in progress, what it waits for, and the manager-PIN lockout.
#[derive(Debug)]
pub struct Till<R> {
    currency: Currency,
    max_amount: i64,
    /// The transaction whose outcome the cashier waits for.
    current: Option<Uuid>,
    awaiting: Option<Awaiting<R>>,
    pin_failures: u32,
    pin_locked_until: Millis,
}

impl<R> Till<R> {
    pub fn new(currency: Currency, max_amount: i64) -> Till<R> {
        Till {
            currency,
            max_amount,
            current: None,
            awaiting: None,
            pin_failures: 0,
            pin_locked_until: 0,
        }
    }

    /// A fleet push changed the sale limit.
    pub fn set_max_amount(&mut self, max_amount: i64) {
        self.max_amount = max_amount;
    }

    /// One sale at a time: a transaction undecided, or a code or receipt awaited.
    pub fn busy(&self) -> bool {
        self.current.is_some() || self.awaiting.is_some()
    }

    pub fn current(&self) -> Option<Uuid> {
        self.current
    }

    pub fn awaiting(&self) -> Option<&Awaiting<R>> {
        self.awaiting.as_ref()
    }

    /// May a sale of `amount` in `currency` start now?
    pub fn check_sale(&self, amount: i64, currency: Currency) -> Result<(), TillRefusal> {
        if self.busy() {
            return Err(TillRefusal::Busy);
        }
        if currency != self.currency {
            return Err(TillRefusal::Currency(currency.code().into()));
        }
        if amount <= 0 {
            return Err(TillRefusal::NotPositive);
        }
        if amount > self.max_amount {
            return Err(TillRefusal::OverLimit {
                amount: currency.format(amount),
                limit: currency.format(self.max_amount),
            });
        }
        Ok(())
    }

    /// May a refund start now? (Its amount is checked against the original in the journal.)
    pub fn check_refund(&self) -> Result<(), TillRefusal> {
        if self.busy() {
            return Err(TillRefusal::Busy);
        }
        Ok(())
    }

    /// Before the (slow) PIN check: refused while locked, or when no PIN is configured.
    pub fn pin_gate(&self, now: Millis, pin_configured: bool) -> Result<(), TillRefusal> {
        if now < self.pin_locked_until {
            return Err(TillRefusal::PinLocked(
                (self.pin_locked_until - now).div_ceil(1000),
            ));
        }
        if !pin_configured {
            return Err(TillRefusal::NoPin);
        }
        Ok(())
    }

    /// After the PIN check: a wrong PIN counts; [`PIN_TRIES`] in a row lock for [`PIN_LOCK_MS`].
    pub fn pin_checked(&mut self, now: Millis, ok: bool) -> Result<(), TillRefusal> {
        if ok {
            self.pin_failures = 0;
            return Ok(());
        }
        self.pin_failures += 1;
        if self.pin_failures >= PIN_TRIES {
            self.pin_failures = 0;
            self.pin_locked_until = now + PIN_LOCK_MS;
        }
        Err(TillRefusal::WrongPin)
    }

    /// Wrong PINs in a row so far.
    pub fn pin_failures(&self) -> u32 {
        self.pin_failures
    }

    /// Refunds move money at the host: refused at once while it cannot be reached.
    pub fn check_refund_online(&self, online: bool) -> Result<(), TillRefusal> {
        if online {
            Ok(())
        } else {
            Err(TillRefusal::HostUnreachable(
                "refunds need the host: try again when the terminal is online".into(),
            ))
        }
    }

    /// May the batch close now? Not during a sale, and not while transactions still talk to
    /// the host (they would be counted at their state now and never again).
    pub fn check_batch_close(&self, in_flight: &[Uuid]) -> Result<(), TillRefusal> {
        if self.busy() {
            return Err(TillRefusal::Busy);
        }
        if !in_flight.is_empty() {
            let ids: Vec<String> = in_flight.iter().take(5).map(|id| id.to_string()).collect();
            return Err(TillRefusal::InFlight {
                count: in_flight.len(),
                ids: ids.join(", "),
            });
        }
        Ok(())
    }

    /// Wait for the customer's code (or the refund's receipt).
    pub fn wait_for(&mut self, what: Awaiting<R>) {
        self.awaiting = Some(what);
    }

    /// What was awaited, now that it came (or was cancelled).
    pub fn take_awaiting(&mut self) -> Option<Awaiting<R>> {
        self.awaiting.take()
    }

    /// The awaited code is a sale's; a receipt awaited for a refund is handed back.
    pub fn take_awaited_code(&mut self) -> Option<Awaiting<R>> {
        match self.awaiting {
            Some(Awaiting::Code { .. }) => self.awaiting.take(),
            _ => None,
        }
    }

    /// A transaction started: the cashier waits for its outcome.
    pub fn started(&mut self, id: Uuid) {
        self.current = Some(id);
    }

    /// `id` has an outcome (or ended): the till is free again if it was the current one.
    pub fn decided(&mut self, id: Uuid) {
        if self.current == Some(id) {
            self.current = None;
        }
    }
}

/// How a scanned code is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRoute {
    Online {
        channel: String,
    },
    Offline,
    Card,
    /// A receipt's QR: the terminal and transaction it names (refunds; only this terminal's,
    /// [`codes::ReceiptRef::txn_on`]).
    Receipt(codes::ReceiptRef),
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
                    Some(r) => CodeRoute::Receipt(r),
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

    fn cny() -> Currency {
        Currency::from_code("CNY").unwrap()
    }

    fn till() -> Till<()> {
        Till::new(cny(), 10_000)
    }

    fn id(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    #[test]
    fn one_sale_at_a_time() {
        let mut t = till();
        assert_eq!(t.check_sale(500, cny()), Ok(()));
        t.wait_for(Awaiting::Code {
            amount: 500,
            currency: cny(),
            reply: (),
        });
        assert_eq!(t.check_sale(100, cny()), Err(TillRefusal::Busy));
        assert_eq!(t.check_refund(), Err(TillRefusal::Busy));
        assert!(t.take_awaited_code().is_some());
        t.started(id(1));
        assert_eq!(t.check_sale(100, cny()), Err(TillRefusal::Busy));
        t.decided(id(2));
        assert!(
            t.busy(),
            "another transaction's outcome does not free the till"
        );
        t.decided(id(1));
        assert!(!t.busy());
    }

    #[test]
    fn a_waiting_receipt_is_not_a_code() {
        let mut t = till();
        t.wait_for(Awaiting::Receipt {
            amount: None,
            refund_id: None,
            reply: (),
        });
        assert!(t.take_awaited_code().is_none());
        assert!(matches!(t.take_awaiting(), Some(Awaiting::Receipt { .. })));
    }

    #[test]
    fn a_receipt_lookup_holds_the_till_like_a_refund() {
        let mut t = till();
        assert_eq!(t.check_refund(), Ok(()));
        t.wait_for(Awaiting::Lookup { reply: () });
        assert_eq!(t.check_sale(100, cny()), Err(TillRefusal::Busy));
        assert_eq!(t.check_refund(), Err(TillRefusal::Busy));
        assert!(t.take_awaited_code().is_none());
        assert!(matches!(t.take_awaiting(), Some(Awaiting::Lookup { .. })));
        assert!(!t.busy());
    }

    #[test]
    fn sale_limits_and_currency() {
        let t = till();
        assert_eq!(t.check_sale(0, cny()), Err(TillRefusal::NotPositive));
        assert_eq!(
            t.check_sale(10_001, cny()),
            Err(TillRefusal::OverLimit {
                amount: "100.01".into(),
                limit: "100.00".into()
            })
        );
        let usd = Currency::from_code("USD").unwrap();
        assert_eq!(
            t.check_sale(100, usd),
            Err(TillRefusal::Currency("USD".into()))
        );
        assert_eq!(t.check_sale(10_000, cny()), Ok(()));
    }

    #[test]
    fn five_wrong_pins_lock_for_a_minute() {
        let mut t = till();
        assert_eq!(t.pin_gate(0, false), Err(TillRefusal::NoPin));
        let now = 1_000_000;
        for n in 1..PIN_TRIES {
            assert_eq!(t.pin_gate(now, true), Ok(()));
            assert_eq!(t.pin_checked(now, false), Err(TillRefusal::WrongPin));
            assert_eq!(t.pin_failures(), n);
        }
        assert_eq!(t.pin_checked(now, false), Err(TillRefusal::WrongPin));
        assert_eq!(t.pin_gate(now + 1, true), Err(TillRefusal::PinLocked(60)));
        assert_eq!(
            t.pin_gate(now + 59_001, true),
            Err(TillRefusal::PinLocked(1))
        );
        assert_eq!(t.pin_gate(now + PIN_LOCK_MS, true), Ok(()));
        // A right PIN resets the count.
        t.pin_checked(now, false).unwrap_err();
        t.pin_checked(now, true).unwrap();
        assert_eq!(t.pin_failures(), 0);
    }

    #[test]
    fn refunds_need_the_host() {
        let t = till();
        assert!(matches!(
            t.check_refund_online(false),
            Err(TillRefusal::HostUnreachable(_))
        ));
        assert_eq!(t.check_refund_online(true), Ok(()));
    }

    #[test]
    fn batch_close_waits_for_sales_and_the_host() {
        let mut t = till();
        assert_eq!(t.check_batch_close(&[]), Ok(()));
        let err = t.check_batch_close(&[id(1), id(2)]).unwrap_err();
        assert_eq!(err.code(), "in_flight");
        assert!(err
            .to_string()
            .starts_with("2 transaction(s) still waiting"));
        t.started(id(3));
        assert_eq!(t.check_batch_close(&[]), Err(TillRefusal::Busy));
    }

    #[test]
    fn cards_go_online_or_store_and_forward_within_the_floor_limit() {
        let off = SafLimits::default();
        assert_eq!(card_path(true, &off, 100, 0, None, 0), CardPath::Online);
        assert_eq!(
            card_path(false, &off, 100, 0, None, 0),
            CardPath::Refuse(SafRefusal::Disabled)
        );
        let on = SafLimits {
            enabled: true,
            floor_limit: 5_000,
            max_count: 2,
            max_age_s: 3_600,
        };
        let now = 10_000_000;
        assert_eq!(
            card_path(false, &on, 5_000, 0, None, now),
            CardPath::StoreAndForward
        );
        assert_eq!(
            card_path(false, &on, 5_001, 0, None, now),
            CardPath::Refuse(SafRefusal::OverFloorLimit)
        );
        assert_eq!(
            card_path(false, &on, 100, 2, Some(now), now),
            CardPath::Refuse(SafRefusal::QueueFull)
        );
        assert_eq!(
            card_path(false, &on, 100, 1, Some(now - 3_601_000), now),
            CardPath::Refuse(SafRefusal::QueueTooOld)
        );
    }

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
