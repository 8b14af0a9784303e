//! The till's rules, without I/O: one sale undecided at a time, what the till waits for, the
//! manager-PIN lockout, whether the link to the host is usable now ([`LinkState`]), which money
//! moves need the host, the card's store-and-forward decision, how a scanned text is paid and
//! the shop-time calendar.
//!
//! [`Till`] is the state a cashier sees; the engine (the product's shell) asks it before every
//! step and carries out the answer — journal writes, MQTT, the argon2 check itself. Every rule
//! here is unit-tested without a broker, a database or a clock (`now` comes in as a value).

use crate::card::saf::{saf_allowed, SafLimits, SafRefusal};
use crate::codes::{self, CodeKind, Patterns};
use crate::i18n::{text, tr, Language, Msg};
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
    /// An online code (or a merchant-presented order) while the link is not usable: refused
    /// before anything is journaled or sent.
    #[error("Offline — ask for the offline code, or pay another way")]
    LinkDown(LinkVerdict),
}

impl TillRefusal {
    /// What the cashier reads, in the shop's language (`Display` is the English text; the
    /// machine [`code`](Self::code) never changes with the language).
    pub fn text(&self, lang: Language) -> String {
        match self {
            TillRefusal::Busy => text(lang, Msg::RefuseBusy).to_string(),
            TillRefusal::NoSale => text(lang, Msg::RefuseNoSale).to_string(),
            TillRefusal::NotPositive => text(lang, Msg::RefuseNotPositive).to_string(),
            TillRefusal::OverLimit { amount, limit } => tr(
                lang,
                Msg::RefuseOverLimit,
                &[("amount", amount), ("limit", limit)],
            ),
            TillRefusal::Currency(c) => tr(lang, Msg::RefuseCurrency, &[("currency", c)]),
            TillRefusal::WrongPin => text(lang, Msg::RefuseWrongPin).to_string(),
            TillRefusal::PinLocked(s) => tr(lang, Msg::RefusePinLocked, &[("secs", s)]),
            TillRefusal::NoPin => text(lang, Msg::RefuseNoPin).to_string(),
            // The link's own words (built by the engine).
            TillRefusal::HostUnreachable(why) => why.clone(),
            TillRefusal::LinkDown(_) => text(lang, Msg::RefuseLinkDown).to_string(),
        }
    }

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
            TillRefusal::LinkDown(_) => LINK_DOWN,
        }
    }
}

/// The machine code of [`TillRefusal::LinkDown`] (control socket, `posctl --json`).
pub const LINK_DOWN: &str = "link_down";

/// Is the link to the host usable now, and if not, how the terminal knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkVerdict {
    /// Connected to the broker, and the host answered (or owes nothing).
    Usable,
    /// Not connected to the broker (never yet, or since `since`): nothing can leave the box.
    NotConnected { since: Option<Millis> },
    /// Connected, but something sent at `since` that the host owes an answer to (a request or
    /// an event) has had no message at all from the host for `silent_ms` — at least the
    /// configured `broker.host_silence_s`.
    HostSilent { since: Millis, silent_ms: u64 },
}

impl LinkVerdict {
    pub fn usable(&self) -> bool {
        matches!(self, LinkVerdict::Usable)
    }

    /// Stable name of the case (`status.link.state`, logs).
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkVerdict::Usable => "usable",
            LinkVerdict::NotConnected { .. } => "not_connected",
            LinkVerdict::HostSilent { .. } => "host_silent",
        }
    }
}

impl std::fmt::Display for LinkVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkVerdict::Usable => write!(f, "the link to the host is usable"),
            LinkVerdict::NotConnected { .. } => write!(f, "not connected to the broker"),
            LinkVerdict::HostSilent { silent_ms, .. } => write!(
                f,
                "connected, but the host has not answered for {} s",
                silent_ms / 1000
            ),
        }
    }
}

/// What the terminal knows of its link to the host, fed by the MQTT link as things happen
/// (times as values), read by the till before anything that needs the host.
///
/// The host is judged silent only when it owes an answer: `sent` marks the first message
/// (request or event) after the host was last heard from; an answer from the host (`heard`: an
/// `ack` that raised the watermark, a `resp` to a request in flight, signatures verified — not
/// any signed message, which an old one replayed would be) clears it. A new connection
/// clears it too: answers owed on the old one may have been lost with it, and what is still
/// owed is sent again on the new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkState {
    connected: bool,
    /// When the link last went down (None: never connected since start).
    down_since: Option<Millis>,
    /// The first send the host owes an answer to since it was last heard from.
    owed_since: Option<Millis>,
    last_heard: Option<Millis>,
}

impl LinkState {
    /// The broker accepted the connection and every subscription stands.
    pub fn connected(&mut self, _now: Millis) {
        self.connected = true;
        self.down_since = None;
        self.owed_since = None;
    }

    /// The connection is lost (or an attempt failed).
    pub fn disconnected(&mut self, now: Millis) {
        if self.connected || self.down_since.is_none() {
            self.down_since = Some(now);
        }
        self.connected = false;
    }

    /// A request or an event was handed to the MQTT client: the host owes an answer.
    pub fn sent(&mut self, now: Millis) {
        if self.owed_since.is_none() {
            self.owed_since = Some(now);
        }
    }

    /// The host answered something it owed (an ack that raised the watermark, a `resp` to a
    /// request in flight; signatures verified).
    pub fn heard(&mut self, now: Millis) {
        self.last_heard = Some(now);
        self.owed_since = None;
    }

    pub fn last_heard(&self) -> Option<Millis> {
        self.last_heard
    }

    /// Usable now? `host_silence_ms` is how long an owed answer may take before the host is
    /// taken for gone (0: never).
    pub fn verdict(&self, now: Millis, host_silence_ms: u64) -> LinkVerdict {
        if !self.connected {
            return LinkVerdict::NotConnected {
                since: self.down_since,
            };
        }
        match self.owed_since {
            Some(since) if host_silence_ms > 0 && now.saturating_sub(since) >= host_silence_ms => {
                LinkVerdict::HostSilent {
                    since,
                    silent_ms: now - since,
                }
            }
            _ => LinkVerdict::Usable,
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
    pub fn check_refund_online(&self, link: LinkVerdict) -> Result<(), TillRefusal> {
        if link.usable() {
            Ok(())
        } else {
            Err(TillRefusal::HostUnreachable(
                "refunds need the host: try again when the terminal is online".into(),
            ))
        }
    }

    /// May a request that needs the host now (an online code's `authorize`, a merchant-presented
    /// `order`) start? Refused at once while the link is not usable: nothing is journaled, so
    /// nothing is left in flight for a request that never left. (The card asks [`card_path`],
    /// P1 codes need no link.)
    pub fn check_online(&self, link: LinkVerdict) -> Result<(), TillRefusal> {
        if link.usable() {
            Ok(())
        } else {
            Err(TillRefusal::LinkDown(link))
        }
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
    fn refusals_speak_the_shop_language_and_keep_their_code() {
        for r in [
            TillRefusal::Busy,
            TillRefusal::NoSale,
            TillRefusal::NotPositive,
            TillRefusal::OverLimit {
                amount: "9.00".into(),
                limit: "5.00".into(),
            },
            TillRefusal::Currency("USD".into()),
            TillRefusal::WrongPin,
            TillRefusal::PinLocked(60),
            TillRefusal::NoPin,
            TillRefusal::LinkDown(LinkVerdict::NotConnected { since: None }),
        ] {
            assert_eq!(r.text(Language::En), r.to_string(), "{r:?}");
            let zh = r.text(Language::ZhCn);
            let es = r.text(Language::Es);
            assert_ne!(zh, r.to_string(), "{r:?}");
            assert_ne!(es, r.to_string(), "{r:?}");
            assert!(
                zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{zh}"
            );
        }
        let over = TillRefusal::OverLimit {
            amount: "9.00".into(),
            limit: "5.00".into(),
        };
        assert_eq!(over.code(), "over_limit");
        assert_eq!(
            over.text(Language::Es),
            "el importe 9.00 supera el límite 5.00"
        );
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
            t.check_refund_online(LinkVerdict::NotConnected { since: None }),
            Err(TillRefusal::HostUnreachable(_))
        ));
        assert_eq!(t.check_refund_online(LinkVerdict::Usable), Ok(()));
    }

    const SILENCE: u64 = 15_000;

    #[test]
    fn never_connected_is_not_connected() {
        let l = LinkState::default();
        assert_eq!(
            l.verdict(1_000, SILENCE),
            LinkVerdict::NotConnected { since: None }
        );
        let err = till().check_online(l.verdict(1_000, SILENCE)).unwrap_err();
        assert_eq!(err.code(), "link_down");
        assert_eq!(
            err.to_string(),
            "Offline — ask for the offline code, or pay another way"
        );
    }

    #[test]
    fn a_lost_connection_refuses_online_codes_at_once() {
        let mut l = LinkState::default();
        l.connected(1_000);
        assert_eq!(l.verdict(1_001, SILENCE), LinkVerdict::Usable);
        assert_eq!(till().check_online(l.verdict(1_001, SILENCE)), Ok(()));
        l.disconnected(2_000);
        // At once: no grace period, no timeout to wait out.
        assert_eq!(
            l.verdict(2_000, SILENCE),
            LinkVerdict::NotConnected { since: Some(2_000) }
        );
        // Failed attempts afterwards keep the time it went down.
        l.disconnected(3_000);
        assert_eq!(
            l.verdict(3_000, SILENCE),
            LinkVerdict::NotConnected { since: Some(2_000) }
        );
        l.connected(4_000);
        assert!(l.verdict(4_000, SILENCE).usable());
    }

    #[test]
    fn the_host_is_silent_only_when_it_owes_an_answer() {
        let mut l = LinkState::default();
        l.connected(0);
        // Nothing owed: however long the host says nothing, the link is usable.
        assert!(l.verdict(10 * SILENCE, SILENCE).usable());
        // Something sent at 100_000 and nothing heard since.
        l.sent(100_000);
        l.sent(105_000); // a later send does not restart the clock
        assert!(l.verdict(100_000 + SILENCE - 1, SILENCE).usable());
        assert_eq!(
            l.verdict(100_000 + SILENCE, SILENCE),
            LinkVerdict::HostSilent {
                since: 100_000,
                silent_ms: SILENCE
            }
        );
        assert_eq!(
            till()
                .check_online(l.verdict(120_000, SILENCE))
                .unwrap_err()
                .code(),
            LINK_DOWN
        );
        // Any word from the host: usable again.
        l.heard(121_000);
        assert!(l.verdict(121_000, SILENCE).usable());
        assert_eq!(l.last_heard(), Some(121_000));
        // 0 turns the silence rule off.
        l.sent(130_000);
        assert!(l.verdict(1_000_000, 0).usable());
        // A new connection starts the judgement again (what is owed is sent again on it).
        l.disconnected(140_000);
        l.connected(141_000);
        assert!(l.verdict(141_000 + SILENCE, SILENCE).usable());
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
