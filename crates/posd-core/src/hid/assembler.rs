//! Key events → scanned codes, with the timing rules that tell a scanner from a person.
//!
//! A keyboard-wedge scanner types a whole code in a burst (1–20 ms per key) and ends it with a
//! terminator key; a person on the same device types ten times slower. This assembler is the
//! pure core of the HID reader: it takes key events *with their kernel timestamps* (never the
//! wall clock at the time we happen to read them, so a busy box cannot turn a burst into
//! "typing"), tracks Shift/AltGr/CapsLock/NumLock and dead keys, and returns a code when a
//! configured terminator ends a burst — or says why it dropped what it had: a gap in the
//! middle (a code cut off), a human pace, a code that is too long or too short, an unplug.

use super::keymap::{self, code, Layout, Modifiers, Output};
use serde::{Deserialize, Serialize};

/// One evdev key event: `value` 1 = press, 0 = release, 2 = autorepeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEvent {
    pub code: u16,
    pub value: i32,
    /// The event's timestamp in microseconds (any epoch; only differences matter).
    pub time_us: u64,
}

/// Keys that can end a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Terminator {
    Enter,
    KpEnter,
    Tab,
}

impl Terminator {
    fn matches(self, key: u16) -> bool {
        key == match self {
            Terminator::Enter => code::ENTER,
            Terminator::KpEnter => code::KPENTER,
            Terminator::Tab => code::TAB,
        }
    }
}

/// The assembler's settings (part of `[devices.hid_scanner]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssemblerConfig {
    /// The layout the scanner is programmed for.
    pub layout: Layout,
    /// Keys that end a code.
    pub terminators: Vec<Terminator>,
    /// Keys further apart than this are "slow"; a code with more than 10% slow keys was typed.
    pub burst_max_interkey_ms: u32,
    /// A pause this long in the middle of a code drops what was read so far.
    pub gap_timeout_ms: u32,
    /// Accept codes typed by a person (off for scanners: a person typing on the scanner's
    /// device must not start paying; the gap rule is then off too).
    pub accept_typed: bool,
    /// Shorter codes are dropped.
    pub min_len: usize,
    /// Longer codes are dropped whole, never truncated.
    pub max_len: usize,
    /// NumLock and CapsLock state when the device appears (a scanner's keypad digits assume
    /// NumLock on; the reader overrides these with the device's LEDs when it can read them).
    pub num_lock: bool,
    pub caps_lock: bool,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        AssemblerConfig {
            layout: Layout::Us,
            terminators: vec![Terminator::Enter, Terminator::KpEnter],
            burst_max_interkey_ms: 40,
            gap_timeout_ms: 200,
            accept_typed: false,
            min_len: 1,
            max_len: 4096,
            num_lock: true,
            caps_lock: false,
        }
    }
}

/// Why characters were thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// A pause longer than the gap timeout cut the code.
    Gap,
    /// The code was terminated at a human pace.
    Typed,
    TooLong,
    TooShort,
    /// The device went away mid-code.
    Unplugged,
}

/// What the assembler produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    Code {
        text: String,
        /// Characters in the code.
        chars: usize,
        /// Time from the first key to the terminator, from the event timestamps.
        duration_us: u64,
    },
    Dropped {
        chars: usize,
        reason: DropReason,
    },
}

/// The state of one scanner's key stream.
#[derive(Debug, Clone)]
pub struct Assembler {
    cfg: AssemblerConfig,
    buf: String,
    chars: usize,
    first_us: u64,
    last_us: u64,
    intervals: u32,
    slow: u32,
    overflow: bool,
    dead: Option<char>,
    shift_l: bool,
    shift_r: bool,
    altgr: bool,
    ctrl: bool,
    alt: bool,
    meta: bool,
    caps: bool,
    num: bool,
}

impl Assembler {
    pub fn new(cfg: AssemblerConfig) -> Assembler {
        let (caps, num) = (cfg.caps_lock, cfg.num_lock);
        Assembler {
            cfg,
            buf: String::new(),
            chars: 0,
            first_us: 0,
            last_us: 0,
            intervals: 0,
            slow: 0,
            overflow: false,
            dead: None,
            shift_l: false,
            shift_r: false,
            altgr: false,
            ctrl: false,
            alt: false,
            meta: false,
            caps,
            num,
        }
    }

    pub fn config(&self) -> &AssemblerConfig {
        &self.cfg
    }

    /// Sets the lock states (from the device's LEDs when it is opened).
    pub fn set_locks(&mut self, caps_lock: bool, num_lock: bool) {
        self.caps = caps_lock;
        self.num = num_lock;
    }

    /// Characters read towards the current code.
    pub fn pending(&self) -> usize {
        self.chars + usize::from(self.dead.is_some())
    }

    fn modifiers(&self) -> Modifiers {
        Modifiers {
            shift: self.shift_l || self.shift_r,
            caps_lock: self.caps,
            num_lock: self.num,
            altgr: self.altgr,
        }
    }

    fn clear(&mut self) -> usize {
        let n = self.pending();
        self.buf.clear();
        self.chars = 0;
        self.intervals = 0;
        self.slow = 0;
        self.overflow = false;
        self.dead = None;
        n
    }

    /// Forgets the partial code and the held modifiers (the device went away).
    pub fn reset(&mut self, reason: DropReason) -> Option<Assembled> {
        self.shift_l = false;
        self.shift_r = false;
        self.altgr = false;
        self.ctrl = false;
        self.alt = false;
        self.meta = false;
        let n = self.clear();
        (n > 0).then_some(Assembled::Dropped { chars: n, reason })
    }

    /// Drops a partial code once no key came for the gap timeout; `now_us` on the clock of the
    /// event timestamps. Called by the shell when the stream is quiet.
    pub fn expire(&mut self, now_us: u64) -> Option<Assembled> {
        if self.cfg.accept_typed || self.pending() == 0 {
            return None;
        }
        if now_us.saturating_sub(self.last_us) > u64::from(self.cfg.gap_timeout_ms) * 1000 {
            let n = self.clear();
            return Some(Assembled::Dropped {
                chars: n,
                reason: DropReason::Gap,
            });
        }
        None
    }

    /// Feeds one key event.
    pub fn feed(&mut self, ev: KeyEvent) -> Option<Assembled> {
        let down = ev.value != 0;
        match ev.code {
            code::LEFTSHIFT => self.shift_l = down,
            code::RIGHTSHIFT => self.shift_r = down,
            code::RIGHTALT => self.altgr = down,
            code::LEFTCTRL | code::RIGHTCTRL => self.ctrl = down,
            code::LEFTALT => self.alt = down,
            code::LEFTMETA | code::RIGHTMETA => self.meta = down,
            code::CAPSLOCK if ev.value == 1 => self.caps = !self.caps,
            code::NUMLOCK if ev.value == 1 => self.num = !self.num,
            _ if ev.value == 1 => return self.press(ev.code, ev.time_us),
            _ => {}
        }
        None
    }

    fn press(&mut self, key: u16, t: u64) -> Option<Assembled> {
        let terminator = self.cfg.terminators.iter().any(|x| x.matches(key));
        let out = if terminator {
            None
        } else if key == code::BACKSPACE {
            if self.dead.take().is_none() && self.buf.pop().is_some() {
                self.chars = self.chars.saturating_sub(1);
            }
            return None;
        } else if self.ctrl || self.alt || self.meta {
            // A shortcut, not text.
            return None;
        } else {
            match keymap::translate(self.cfg.layout, key, self.modifiers()) {
                Some(o) => Some(o),
                None => return None,
            }
        };
        let mut result = None;
        if self.pending() > 0 {
            let dt = t.saturating_sub(self.last_us);
            if !self.cfg.accept_typed && dt > u64::from(self.cfg.gap_timeout_ms) * 1000 {
                let n = self.clear();
                result = Some(Assembled::Dropped {
                    chars: n,
                    reason: DropReason::Gap,
                });
                if terminator {
                    return result;
                }
            } else {
                self.intervals += 1;
                if dt > u64::from(self.cfg.burst_max_interkey_ms) * 1000 {
                    self.slow += 1;
                }
            }
        }
        if terminator {
            return self.terminate(t);
        }
        if self.pending() == 0 {
            self.first_us = t;
        }
        self.last_us = t;
        match out {
            Some(Output::Dead(d)) => {
                if let Some(prev) = self.dead.replace(d) {
                    self.push(prev);
                }
            }
            Some(Output::Char(c)) => match self.dead.take() {
                None => self.push(c),
                Some(d) if c == ' ' => self.push(d),
                Some(d) => match keymap::compose(d, c) {
                    Some(x) => self.push(x),
                    None => {
                        self.push(d);
                        self.push(c);
                    }
                },
            },
            None => {}
        }
        result
    }

    fn push(&mut self, c: char) {
        self.chars += 1;
        if self.chars > self.cfg.max_len {
            self.overflow = true;
        } else {
            self.buf.push(c);
        }
    }

    fn terminate(&mut self, t: u64) -> Option<Assembled> {
        if self.pending() == 0 {
            return None;
        }
        if let Some(d) = self.dead.take() {
            self.push(d);
        }
        let chars = self.chars;
        let reason = if self.overflow {
            Some(DropReason::TooLong)
        } else if chars < self.cfg.min_len {
            Some(DropReason::TooShort)
        } else if !self.cfg.accept_typed && self.slow.saturating_mul(10) > self.intervals {
            Some(DropReason::Typed)
        } else {
            None
        };
        let duration_us = t.saturating_sub(self.first_us);
        let text = std::mem::take(&mut self.buf);
        self.clear();
        Some(match reason {
            Some(reason) => Assembled::Dropped { chars, reason },
            None => Assembled::Code {
                text,
                chars,
                duration_us,
            },
        })
    }
}
