//! The serial scanner: bytes on a serial port → codes, with reconnects.
//!
//! Serial scanners send a code followed by a suffix (CR, LF, CRLF) or nothing at all, in which
//! case a code ends when the line goes quiet. [`Framer`] is the pure part: it splits bytes
//! into codes, drops NUL and other control bytes (line noise, a scanner's power-on garbage),
//! refuses frames that are not UTF-8 or are too long, and strips a configured prefix. [`run`]
//! is the thread around it: open the port with the configured framing, read with the idle
//! timeout, and on any error (unplug, EIO) report `absent` and reopen every `reconnect_ms`.

use super::{DeviceError, DeviceStatus};
use crate::config::devices::{Parity, SerialScannerConfig, Suffix};
use crate::engine::EngineMsg;
use std::io::Read;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What the framer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Code(String),
    /// A frame thrown away, and why.
    Dropped {
        bytes: usize,
        reason: &'static str,
    },
}

/// Bytes → frames. Pure.
#[derive(Debug, Clone)]
pub struct Framer {
    suffix: Suffix,
    strip_prefix: Option<String>,
    max_len: usize,
    buf: Vec<u8>,
    overflow: usize,
    saw_cr: bool,
}

impl Framer {
    pub fn new(suffix: Suffix, strip_prefix: Option<String>, max_len: usize) -> Framer {
        Framer {
            suffix,
            strip_prefix: strip_prefix.filter(|p| !p.is_empty()),
            max_len,
            buf: Vec::new(),
            overflow: 0,
            saw_cr: false,
        }
    }

    pub fn pending(&self) -> usize {
        self.buf.len() + self.overflow
    }

    fn finish(&mut self) -> Option<Frame> {
        let bytes = std::mem::take(&mut self.buf);
        let overflow = std::mem::take(&mut self.overflow);
        if overflow > 0 {
            return Some(Frame::Dropped {
                bytes: bytes.len() + overflow,
                reason: "too long",
            });
        }
        if bytes.is_empty() {
            return None;
        }
        let n = bytes.len();
        let Ok(mut text) = String::from_utf8(bytes) else {
            return Some(Frame::Dropped {
                bytes: n,
                reason: "not UTF-8",
            });
        };
        if let Some(p) = &self.strip_prefix {
            if let Some(rest) = text.strip_prefix(p.as_str()) {
                text = rest.to_string();
            }
        }
        let text = text.trim().to_string();
        if text.is_empty() {
            return None;
        }
        Some(Frame::Code(text))
    }

    fn push(&mut self, b: u8) {
        if self.buf.len() < self.max_len {
            self.buf.push(b);
        } else {
            self.overflow += 1;
        }
    }

    /// Feeds bytes; returns the frames they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        for &b in bytes {
            let cr = self.saw_cr;
            self.saw_cr = b == b'\r';
            let end = match (self.suffix, b) {
                (Suffix::Cr, b'\r') | (Suffix::Lf, b'\n') => true,
                (Suffix::Crlf, b'\n') => cr,
                _ => false,
            };
            if end {
                out.extend(self.finish());
                continue;
            }
            // NUL, other control bytes and a suffix byte out of place are line noise.
            if b < 0x20 || b == 0x7f {
                continue;
            }
            self.push(b);
        }
        out
    }

    /// The line went quiet: ends the code (suffix `none`) or drops a partial frame.
    pub fn idle(&mut self) -> Option<Frame> {
        if self.pending() == 0 {
            return None;
        }
        if self.suffix == Suffix::None {
            return self.finish();
        }
        let bytes = self.pending();
        self.buf.clear();
        self.overflow = 0;
        Some(Frame::Dropped {
            bytes,
            reason: "no suffix before the line went quiet",
        })
    }

    /// The port went away: forget the partial frame.
    pub fn reset(&mut self) -> usize {
        let n = self.pending();
        self.buf.clear();
        self.overflow = 0;
        self.saw_cr = false;
        n
    }
}

fn open(cfg: &SerialScannerConfig, timeout: Duration) -> Result<serialport::TTYPort, DeviceError> {
    open_port(
        &cfg.port,
        cfg.baud,
        cfg.data_bits,
        cfg.parity,
        cfg.stop_bits,
        timeout,
    )
}

/// Opens a serial port with the framing from config (shared with the customer display).
pub(crate) fn open_port(
    port: &str,
    baud: u32,
    data_bits: u8,
    parity: Parity,
    stop_bits: u8,
    timeout: Duration,
) -> Result<serialport::TTYPort, DeviceError> {
    let data_bits = match data_bits {
        5 => serialport::DataBits::Five,
        6 => serialport::DataBits::Six,
        7 => serialport::DataBits::Seven,
        _ => serialport::DataBits::Eight,
    };
    let parity = match parity {
        Parity::None => serialport::Parity::None,
        Parity::Odd => serialport::Parity::Odd,
        Parity::Even => serialport::Parity::Even,
    };
    let stop_bits = if stop_bits == 2 {
        serialport::StopBits::Two
    } else {
        serialport::StopBits::One
    };
    serialport::new(port, baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(serialport::FlowControl::None)
        .timeout(timeout)
        .open_native()
        .map_err(|e| DeviceError::Serial(port.to_string(), e.to_string()))
}

fn absent(e: &DeviceError, port: &str) -> DeviceStatus {
    if std::path::Path::new(port).exists() {
        DeviceStatus::Error(e.to_string())
    } else {
        DeviceStatus::Absent(format!("{port} not present"))
    }
}

/// The scanner thread: returns on shutdown or when the engine is gone.
pub fn run(
    cfg: SerialScannerConfig,
    source: &'static str,
    engine: mpsc::Sender<EngineMsg>,
    status: watch::Sender<DeviceStatus>,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = cfg.validate() {
        log::error!("{source}: {e}");
        status.send_replace(DeviceStatus::Error(e.to_string()));
        return;
    }
    let idle = Duration::from_millis(cfg.idle_timeout_ms);
    // Reads wake at least this often to notice shutdown.
    let poll = idle.min(Duration::from_millis(100));
    let reconnect = Duration::from_millis(cfg.reconnect_ms.max(10));
    let mut framer = Framer::new(cfg.suffix, cfg.strip_prefix.clone(), cfg.max_len);
    let mut buf = [0u8; 512];
    'outer: loop {
        if *shutdown.borrow() {
            return;
        }
        let mut port = match open(&cfg, poll) {
            Ok(p) => p,
            Err(e) => {
                let st = absent(&e, &cfg.port);
                if *status.borrow() != st {
                    log::warn!("{source}: {st}");
                    status.send_replace(st);
                }
                // Sleep in short steps so shutdown stays prompt.
                let until = std::time::Instant::now() + reconnect;
                while std::time::Instant::now() < until {
                    if *shutdown.borrow() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20).min(reconnect));
                }
                continue;
            }
        };
        log::info!("{source}: using {}", cfg.port);
        status.send_replace(DeviceStatus::Ok(cfg.port.clone()));
        let mut last_byte = std::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let frames = match port.read(&mut buf) {
                Ok(0) => {
                    // EOF: the other end is gone (a pty whose master closed).
                    lost(&mut framer, source, &status, &cfg.port, "end of file");
                    continue 'outer;
                }
                Ok(n) => {
                    last_byte = std::time::Instant::now();
                    framer.feed(buf.get(..n).unwrap_or(&[]))
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if last_byte.elapsed() >= idle {
                        framer.idle().into_iter().collect()
                    } else {
                        vec![]
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => vec![],
                Err(e) => {
                    lost(&mut framer, source, &status, &cfg.port, &e.to_string());
                    continue 'outer;
                }
            };
            for f in frames {
                match f {
                    Frame::Code(text) => {
                        log::info!("{source}: code of {} characters", text.chars().count());
                        let msg = EngineMsg::Code {
                            text,
                            source: source.to_string(),
                        };
                        if engine.blocking_send(msg).is_err() {
                            return;
                        }
                    }
                    Frame::Dropped { bytes, reason } => {
                        log::info!("{source}: {bytes} bytes dropped: {reason}");
                    }
                }
            }
        }
    }
}

fn lost(
    framer: &mut Framer,
    source: &str,
    status: &watch::Sender<DeviceStatus>,
    port: &str,
    why: &str,
) {
    let n = framer.reset();
    if n > 0 {
        log::warn!("{source}: {n} bytes of a code lost");
    }
    let st = DeviceStatus::Absent(format!("{port}: {why}"));
    log::warn!("{source}: {st}");
    status.send_replace(st);
    // Give a replugged device a moment before reopening.
    std::thread::sleep(Duration::from_millis(50));
}
