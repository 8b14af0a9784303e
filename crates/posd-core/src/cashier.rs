//! The cashier's keypad state machine: what each key means at each step of a sale.
//!
//! idle → amount entry → method → waiting → result → idle, plus a menu: a refund (manager PIN,
//! then the amount — Enter alone: all that is left — then the receipt scanned), a reprint of any
//! receipt found by scanning its QR (Enter: the last one), the batch close, status, a void
//! (manager PIN, then the receipt scanned) and the last Z report again (issue 15 item 5). Pure: it takes key actions, sale outcomes
//! and `now`, and returns actions for the shell (start or cancel the sale in the engine, show a
//! screen, run an operation). Sales started on the control socket reach it as
//! [`Input::SaleStarted`], so the keypad's Cancel cancels *that* sale: there is one sale.
//! Amounts are integer minor units keyed digit by digit against the currency's exponent.

use super::i18n::{text, tr, Language, Msg};
use super::money::Currency;
use serde::{Deserialize, Serialize};

/// What a key on the keypad means (the binding from physical keys is configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Key {
    Digit(u8),
    DoubleZero,
    Point,
    Backspace,
    Clear,
    Enter,
    Cancel,
    Menu,
    MethodScan,
    MethodQr,
    MethodCard,
}

/// How the customer pays a sale keyed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayMethod {
    /// The customer's code is scanned (reverse scan; the default).
    Scan,
    /// A merchant-presented QR is shown.
    MerchantQr,
    Card,
}

/// The manager PIN as keyed: never printed, wiped when dropped.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Pin(Vec<u8>);

impl Pin {
    /// The digits (ASCII). Only for verification against the stored hash.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pin({})", "*".repeat(self.0.len()))
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.0.fill(0);
    }
}

/// Two lines for the cashier (and the 2×20 customer display).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Screen {
    pub line1: String,
    pub line2: String,
}

impl Screen {
    pub fn new(line1: impl Into<String>, line2: impl Into<String>) -> Screen {
        Screen {
            line1: line1.into(),
            line2: line2.into(),
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Show(Screen),
    /// Start a sale in the engine (the same as a control-socket sale without a code).
    StartSale {
        amount: i64,
        method: PayMethod,
    },
    /// Cancel the sale in progress (whoever started it).
    CancelSale,
    /// Refund, after the manager PIN was keyed (the shell verifies it against the hash):
    /// `amount` in minor units, None for all that is left; the receipt scanned names the sale.
    Refund {
        pin: Pin,
        amount: Option<i64>,
    },
    /// Void the offline sale whose receipt is scanned next, behind the manager PIN.
    Void {
        pin: Pin,
    },
    /// Reprint the receipt scanned next (its QR names the transaction).
    Reprint,
    /// Reprint the newest receipt instead (Enter while the reprint waits for a scan): the
    /// shell ends the wait for a scan first.
    ReprintLast,
    /// Print the last batch's Z report again.
    ZAgain,
    BatchClose,
    Status,
}

/// What the machine reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Key(Key),
    /// A sale was started (here or on the control socket) and waits for a code.
    SaleStarted {
        amount: i64,
    },
    /// The sale is in progress: host contacted, customer confirming, ...
    Pending {
        text: String,
    },
    /// The sale ended.
    Outcome {
        approved: bool,
        text: String,
    },
    /// A menu operation (refund, reprint, batch close, status) finished.
    OperationDone {
        text: String,
    },
    /// Time passes (results clear themselves).
    Tick,
    /// A sale left in flight by the last run is being resolved: wait for it (issue 15).
    Recovered {
        short_ref: String,
    },
    /// The alerts in force now ("offline: 3 sales to sync", ...); the idle screen shows the
    /// first.
    Alerts {
        current: Vec<String>,
    },
}

/// Settings for the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct CashierConfig {
    pub currency: Currency,
    /// Largest amount that can be keyed (minor units).
    pub max_amount: i64,
    /// How long a result stays on screen.
    pub result_ms: u64,
    pub pin_min_len: usize,
    pub pin_max_len: usize,
    /// The words on the screens ([`crate::i18n`]).
    pub language: Language,
}

/// The amount being keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AmountEntry {
    int_part: i64,
    frac: i64,
    /// `None` before the decimal point; `Some(k)` with `k` decimals keyed after it.
    frac_digits: Option<u8>,
    /// Digits keyed before the point (leading zeros included, for display).
    int_digits: u8,
}

impl AmountEntry {
    /// Minor units, or `None` on overflow.
    pub fn minor(&self, exp: u8) -> Option<i64> {
        let scale = 10i64.checked_pow(u32::from(exp))?;
        let fd = self.frac_digits.unwrap_or(0);
        let frac_scale = 10i64.checked_pow(u32::from(exp.checked_sub(fd)?))?;
        self.int_part
            .checked_mul(scale)?
            .checked_add(self.frac.checked_mul(frac_scale)?)
    }

    /// As keyed: `12.5`, `0.`, `7`.
    pub fn text(&self) -> String {
        let mut s = self.int_part.to_string();
        if let Some(k) = self.frac_digits {
            s.push('.');
            if k > 0 {
                s.push_str(&format!("{:0width$}", self.frac, width = usize::from(k)));
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.int_digits == 0 && self.frac_digits.is_none()
    }
}

/// A menu operation (its name is said in the shop's language when shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Refund,
    Reprint,
    BatchClose,
    Status,
    Void,
    ZAgain,
}

impl Op {
    /// The operation's name on the screen.
    pub const fn msg(self) -> Msg {
        match self {
            Op::Refund => Msg::KeyRefund,
            Op::Reprint => Msg::KeyReprint,
            Op::BatchClose => Msg::KeyBatchClose,
            Op::Status => Msg::KeyStatus,
            Op::Void => Msg::KeyVoid,
            Op::ZAgain => Msg::KeyZAgain,
        }
    }
}

/// What is awaited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Awaiting {
    Sale {
        amount: i64,
        cancel_requested: bool,
    },
    Operation(Op),
    /// A sale from before a restart (crash, power cut), resolved by the engine: its outcome
    /// ends the wait; Cancel asks for its reversal.
    Recovered {
        short_ref: String,
        cancel_requested: bool,
    },
}

/// The machine's state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Idle,
    Amount(AmountEntry),
    Method {
        amount: i64,
        entry: AmountEntry,
    },
    Waiting(Awaiting),
    Result {
        until_ms: u64,
    },
    Menu,
    /// The manager PIN, for what [`Cashier::pin_for`] says.
    Pin(Pin),
    /// The refund's amount, after the PIN (empty: all that is left).
    RefundAmount {
        pin: Pin,
        entry: AmountEntry,
    },
}

/// What the manager PIN being keyed is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinFor {
    Refund,
    Void,
}

/// The cashier's keypad.
#[derive(Debug, Clone)]
pub struct Cashier {
    cfg: CashierConfig,
    state: State,
    /// The first alert in force, shown on the idle screen.
    alert: Option<String>,
    pin_for: PinFor,
}

impl Cashier {
    pub fn new(cfg: CashierConfig) -> Cashier {
        Cashier {
            cfg,
            state: State::Idle,
            alert: None,
            pin_for: PinFor::Refund,
        }
    }

    /// Switches the screens' language (a pushed configuration); the next screen uses it.
    pub fn set_language(&mut self, lang: Language) {
        self.cfg.language = lang;
    }

    fn t(&self, m: Msg) -> &'static str {
        text(self.cfg.language, m)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// What the PIN being keyed is for.
    pub fn pin_for(&self) -> PinFor {
        self.pin_for
    }

    /// The screen for the current state (after a restart of a display, say).
    pub fn screen(&self) -> Screen {
        let cur = self.cfg.currency;
        match &self.state {
            State::Idle => Screen::new(
                self.t(Msg::KeyReady),
                self.alert
                    .clone()
                    .unwrap_or_else(|| self.t(Msg::KeyEnterAmount).into()),
            ),
            State::Amount(e) => Screen::new(
                tr(self.cfg.language, Msg::KeyAmount, &[("currency", &cur)]),
                e.text(),
            ),
            State::Method { amount, .. } => Screen::new(
                format!("{} {cur}", cur.format(*amount)),
                self.t(Msg::KeyMethods),
            ),
            State::Waiting(Awaiting::Sale {
                amount,
                cancel_requested,
            }) => Screen::new(
                format!("{} {cur}", cur.format(*amount)),
                if *cancel_requested {
                    self.t(Msg::KeyCancelling)
                } else {
                    self.t(Msg::KeyScanCode)
                },
            ),
            State::Waiting(Awaiting::Operation(op)) => {
                Screen::new(self.t(op.msg()), self.t(Msg::KeyPleaseWait))
            }
            State::Waiting(Awaiting::Recovered {
                short_ref,
                cancel_requested,
            }) => {
                let (a, b) =
                    crate::display::notices::recovered_keypad(self.cfg.language, short_ref);
                Screen::new(
                    a,
                    if *cancel_requested {
                        self.t(Msg::KeyCancelling).into()
                    } else {
                        b
                    },
                )
            }
            State::Result { .. } => Screen::new("", ""),
            State::Menu => Screen::new(self.t(Msg::KeyMenu1), self.t(Msg::KeyMenu2)),
            State::Pin(p) => Screen::new(self.t(Msg::KeyManagerPin), "*".repeat(p.len())),
            State::RefundAmount { entry, .. } => Screen::new(
                tr(
                    self.cfg.language,
                    Msg::KeyRefundAmount,
                    &[("currency", &cur)],
                ),
                if entry.is_empty() {
                    self.t(Msg::KeyRefundAllHint).to_string()
                } else {
                    entry.text()
                },
            ),
        }
    }

    fn show(&self) -> Action {
        Action::Show(self.screen())
    }

    fn enter(&mut self, s: State) -> Action {
        self.state = s;
        self.show()
    }

    fn result(&mut self, now_ms: u64, line1: &str, text: String) -> Vec<Action> {
        self.state = State::Result {
            until_ms: now_ms.saturating_add(self.cfg.result_ms),
        };
        vec![Action::Show(Screen::new(line1, text))]
    }

    /// Feeds one input at `now_ms`; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Action> {
        match input {
            Input::Key(k) => self.key(k, now_ms),
            Input::SaleStarted { amount } => match &self.state {
                State::Waiting(_) => vec![],
                _ => {
                    let a = self.enter(State::Waiting(Awaiting::Sale {
                        amount,
                        cancel_requested: false,
                    }));
                    vec![a]
                }
            },
            Input::Pending { text } => match &self.state {
                State::Waiting(Awaiting::Sale { amount, .. }) => {
                    let cur = self.cfg.currency;
                    vec![Action::Show(Screen::new(
                        format!("{} {cur}", cur.format(*amount)),
                        text,
                    ))]
                }
                _ => vec![],
            },
            Input::Outcome { approved, text } => match &self.state {
                State::Waiting(_) => {
                    let head = if approved {
                        self.t(Msg::ResultApproved)
                    } else {
                        self.t(Msg::StatusNotPaid)
                    };
                    self.result(now_ms, head, text)
                }
                _ => vec![],
            },
            Input::OperationDone { text } => match &self.state {
                State::Waiting(Awaiting::Operation(op)) => {
                    let what = self.t(op.msg());
                    self.result(now_ms, what, text)
                }
                _ => vec![],
            },
            Input::Tick => match &self.state {
                State::Result { until_ms } if now_ms >= *until_ms => vec![self.enter(State::Idle)],
                _ => vec![],
            },
            Input::Recovered { short_ref } => match &self.state {
                // The keypad's own sale in progress is the engine's business already.
                State::Waiting(Awaiting::Sale { .. }) => vec![],
                _ => vec![self.enter(State::Waiting(Awaiting::Recovered {
                    short_ref,
                    cancel_requested: false,
                }))],
            },
            Input::Alerts { current } => {
                self.alert = current.into_iter().next();
                match self.state {
                    State::Idle => vec![self.show()],
                    _ => vec![],
                }
            }
        }
    }

    fn key(&mut self, k: Key, now_ms: u64) -> Vec<Action> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        match state {
            State::Idle => self.key_idle(k),
            State::Amount(e) => self.key_amount(e, k),
            State::Method { amount, entry } => self.key_method(amount, entry, k),
            State::Waiting(w) => self.key_waiting(w, k, now_ms),
            State::Result { until_ms } => {
                if matches!(k, Key::Digit(_) | Key::DoubleZero | Key::Point | Key::Menu) {
                    self.key_idle(k)
                } else if matches!(k, Key::Enter | Key::Cancel | Key::Clear) {
                    vec![self.enter(State::Idle)]
                } else {
                    self.state = State::Result { until_ms };
                    vec![]
                }
            }
            State::Menu => self.key_menu(k),
            State::Pin(p) => self.key_pin(p, k, now_ms),
            State::RefundAmount { pin, entry } => self.key_refund_amount(pin, entry, k),
        }
    }

    fn key_idle(&mut self, k: Key) -> Vec<Action> {
        match k {
            Key::Digit(_) | Key::DoubleZero | Key::Point => {
                self.key_amount(AmountEntry::default(), k)
            }
            Key::Menu => vec![self.enter(State::Menu)],
            _ => vec![self.enter(State::Idle)],
        }
    }

    fn refuse(&mut self, back: State, why: String) -> Vec<Action> {
        self.state = back;
        let mut s = self.screen();
        s.line2 = why;
        vec![Action::Show(s)]
    }

    fn key_amount(&mut self, e: AmountEntry, k: Key) -> Vec<Action> {
        let exp = self.cfg.currency.exponent();
        let cur = self.cfg.currency;
        match k {
            Key::Digit(d) if d <= 9 => match self.add_digit(e, d) {
                Ok(n) => vec![self.enter(State::Amount(n))],
                Err(why) => self.refuse(State::Amount(e), why),
            },
            Key::Digit(_) => {
                self.state = State::Amount(e);
                vec![]
            }
            Key::DoubleZero => match self.add_digit(e, 0).and_then(|n| self.add_digit(n, 0)) {
                Ok(n) => vec![self.enter(State::Amount(n))],
                Err(why) => self.refuse(State::Amount(e), why),
            },
            Key::Point => {
                if exp == 0 {
                    let why = tr(self.cfg.language, Msg::KeyNoDecimals, &[("currency", &cur)]);
                    return self.refuse(State::Amount(e), why);
                }
                let mut n = e;
                if n.frac_digits.is_none() {
                    n.frac_digits = Some(0);
                }
                vec![self.enter(State::Amount(n))]
            }
            Key::Backspace => {
                let mut n = e;
                match n.frac_digits {
                    Some(0) => n.frac_digits = None,
                    Some(k) => {
                        n.frac /= 10;
                        n.frac_digits = Some(k - 1);
                    }
                    None => {
                        n.int_part /= 10;
                        n.int_digits = n.int_digits.saturating_sub(1);
                    }
                }
                vec![self.enter(State::Amount(n))]
            }
            Key::Clear => vec![self.enter(State::Amount(AmountEntry::default()))],
            Key::Cancel => vec![self.enter(State::Idle)],
            Key::Enter | Key::MethodScan | Key::MethodQr | Key::MethodCard => match e.minor(exp) {
                Some(amount) if amount > 0 => {
                    let to_method = self.enter(State::Method { amount, entry: e });
                    match k {
                        Key::Enter => vec![to_method],
                        _ => self.key_method(amount, e, k),
                    }
                }
                _ => self.refuse(State::Amount(e), self.t(Msg::KeyAmountMissing).into()),
            },
            Key::Menu => {
                self.state = State::Amount(e);
                vec![]
            }
        }
    }

    /// The entry with one more digit, or why not (too many decimals, over the maximum).
    fn add_digit(&self, e: AmountEntry, d: u8) -> Result<AmountEntry, String> {
        let exp = self.cfg.currency.exponent();
        let lang = self.cfg.language;
        let max = || {
            let amount = self.cfg.currency.format(self.cfg.max_amount);
            tr(lang, Msg::KeyMax, &[("amount", &amount)])
        };
        let mut n = e;
        match n.frac_digits {
            Some(k) if k >= exp => return Err(tr(lang, Msg::KeyOnlyDecimals, &[("n", &exp)])),
            Some(k) => {
                n.frac = n.frac * 10 + i64::from(d);
                n.frac_digits = Some(k + 1);
            }
            None => {
                n.int_part = n
                    .int_part
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(i64::from(d)))
                    .ok_or_else(max)?;
                n.int_digits = n.int_digits.saturating_add(1);
            }
        }
        match n.minor(exp) {
            Some(m) if m <= self.cfg.max_amount => Ok(n),
            _ => Err(max()),
        }
    }

    fn key_method(&mut self, amount: i64, entry: AmountEntry, k: Key) -> Vec<Action> {
        let method = match k {
            Key::Enter | Key::MethodScan | Key::Digit(1) => PayMethod::Scan,
            Key::MethodQr | Key::Digit(2) => PayMethod::MerchantQr,
            Key::MethodCard | Key::Digit(3) => PayMethod::Card,
            Key::Backspace => return vec![self.enter(State::Amount(entry))],
            Key::Clear => return vec![self.enter(State::Amount(AmountEntry::default()))],
            Key::Cancel => return vec![self.enter(State::Idle)],
            _ => {
                self.state = State::Method { amount, entry };
                return vec![self.show()];
            }
        };
        let show = self.enter(State::Waiting(Awaiting::Sale {
            amount,
            cancel_requested: false,
        }));
        vec![Action::StartSale { amount, method }, show]
    }

    fn key_waiting(&mut self, w: Awaiting, k: Key, now_ms: u64) -> Vec<Action> {
        match (w, k) {
            (
                Awaiting::Sale {
                    amount,
                    cancel_requested: false,
                },
                Key::Cancel,
            ) => {
                let show = self.enter(State::Waiting(Awaiting::Sale {
                    amount,
                    cancel_requested: true,
                }));
                vec![Action::CancelSale, show]
            }
            (
                Awaiting::Recovered {
                    short_ref,
                    cancel_requested: false,
                },
                Key::Cancel,
            ) => {
                let show = self.enter(State::Waiting(Awaiting::Recovered {
                    short_ref,
                    cancel_requested: true,
                }));
                vec![Action::CancelSale, show]
            }
            // A reprint waits for a receipt's QR: Enter takes the newest receipt instead,
            // Cancel ends the wait.
            (Awaiting::Operation(Op::Reprint), Key::Enter) => {
                let show = self.enter(State::Waiting(Awaiting::Operation(Op::Reprint)));
                vec![Action::ReprintLast, show]
            }
            // A reprint or void waiting for its receipt ends here: nothing was asked yet.
            (Awaiting::Operation(op @ (Op::Reprint | Op::Void)), Key::Cancel) => {
                let mut out = vec![Action::CancelSale];
                let (what, cancelled) = (self.t(op.msg()), self.t(Msg::KeyCancelled));
                out.extend(self.result(now_ms, what, cancelled.into()));
                out
            }
            // A refund: the engine says what became of it (ended before its receipt, or — once
            // asked of the host — its own outcome: a refund is not called back).
            (Awaiting::Operation(Op::Refund), Key::Cancel) => {
                self.state = State::Waiting(Awaiting::Operation(Op::Refund));
                vec![Action::CancelSale]
            }
            (w, _) => {
                self.state = State::Waiting(w);
                vec![]
            }
        }
    }

    fn key_menu(&mut self, k: Key) -> Vec<Action> {
        let (action, op) = match k {
            Key::Digit(1) => {
                self.pin_for = PinFor::Refund;
                return vec![self.enter(State::Pin(Pin::default()))];
            }
            Key::Digit(5) => {
                self.pin_for = PinFor::Void;
                return vec![self.enter(State::Pin(Pin::default()))];
            }
            Key::Digit(2) => (Action::Reprint, Op::Reprint),
            Key::Digit(3) => (Action::BatchClose, Op::BatchClose),
            Key::Digit(4) => (Action::Status, Op::Status),
            Key::Digit(6) => (Action::ZAgain, Op::ZAgain),
            Key::Cancel | Key::Menu | Key::Clear => return vec![self.enter(State::Idle)],
            _ => return vec![self.enter(State::Menu)],
        };
        let show = self.enter(State::Waiting(Awaiting::Operation(op)));
        vec![action, show]
    }

    /// The refund's amount, keyed like a sale's; Enter alone refunds all that is left.
    fn key_refund_amount(&mut self, pin: Pin, e: AmountEntry, k: Key) -> Vec<Action> {
        let exp = self.cfg.currency.exponent();
        match k {
            Key::Digit(_) | Key::DoubleZero | Key::Point | Key::Backspace | Key::Clear => {
                // The sale's amount entry rules, then back to this state with the result.
                let actions = self.key_amount(e, k);
                let entry = match &self.state {
                    State::Amount(n) => *n,
                    _ => e,
                };
                let why = match actions.last() {
                    Some(Action::Show(s)) if entry == e && !matches!(k, Key::Clear) => {
                        Some(s.line2.clone())
                    }
                    _ => None,
                };
                self.state = State::RefundAmount { pin, entry };
                let mut screen = self.screen();
                if let Some(w) = why.filter(|w| *w != entry.text()) {
                    screen.line2 = w;
                }
                vec![Action::Show(screen)]
            }
            Key::Cancel | Key::Menu => vec![self.enter(State::Idle)],
            Key::Enter => {
                let amount = if e.is_empty() {
                    None
                } else {
                    match e.minor(exp) {
                        Some(a) if a > 0 => Some(a),
                        _ => {
                            self.state = State::RefundAmount { pin, entry: e };
                            let mut s = self.screen();
                            s.line2 = self.t(Msg::KeyAmountMissing).into();
                            return vec![Action::Show(s)];
                        }
                    }
                };
                let show = self.enter(State::Waiting(Awaiting::Operation(Op::Refund)));
                vec![Action::Refund { pin, amount }, show]
            }
            _ => {
                self.state = State::RefundAmount { pin, entry: e };
                vec![]
            }
        }
    }

    fn key_pin(&mut self, mut p: Pin, k: Key, _now_ms: u64) -> Vec<Action> {
        match k {
            Key::Digit(d) if d <= 9 => {
                if p.0.len() < self.cfg.pin_max_len {
                    p.0.push(b'0' + d);
                }
                vec![self.enter(State::Pin(p))]
            }
            Key::Backspace => {
                if let Some(last) = p.0.last_mut() {
                    *last = 0;
                }
                p.0.pop();
                vec![self.enter(State::Pin(p))]
            }
            Key::Clear => vec![self.enter(State::Pin(Pin::default()))],
            Key::Cancel | Key::Menu => vec![self.enter(State::Idle)],
            Key::Enter => {
                if p.len() < self.cfg.pin_min_len {
                    return self.refuse(State::Pin(p), self.t(Msg::KeyPinTooShort).into());
                }
                match self.pin_for {
                    PinFor::Refund => vec![self.enter(State::RefundAmount {
                        pin: p,
                        entry: AmountEntry::default(),
                    })],
                    PinFor::Void => {
                        let show = self.enter(State::Waiting(Awaiting::Operation(Op::Void)));
                        vec![Action::Void { pin: p }, show]
                    }
                }
            }
            _ => {
                self.state = State::Pin(p);
                vec![]
            }
        }
    }
}
