//! Printer transports and the job protocol: ask the printer how it is (`DLE EOT 1/2/4`), send
//! the job only if it can print, ask again afterwards, and answer [`PrintOutcome::Printed`] or
//! [`PrintOutcome::Fault`] — so the durable print queue knows whether to wait and retry.
//!
//! TCP (port 9100) is async on tokio. Serial and USB use the escpos crate's blocking drivers
//! (`SerialPortDriver`, `NativeUsbDriver`) inside `spawn_blocking`; files and device nodes such
//! as `/dev/usb/lp0` are written with escpos' `FileDriver` and give no status. Each job opens its
//! own connection, so a printer that was unplugged or rebooted is simply found again.

use std::time::Duration;

use escpos::driver::Driver;
use escpos::utils::{RealTimeStatusRequest, RealTimeStatusResponse};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use crate::config::devices::{PrinterConfig, StatusMode, Transport};
use posd_core::receipt::escpos_enc::status_query_bytes;

/// What the printer said about itself (real-time status 1, 2 and 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterStatus {
    pub online: bool,
    pub cover_open: bool,
    pub paper_out: bool,
    pub paper_near_end: bool,
    /// Cutter jam, head overheat, or another error the printer reports.
    pub error: bool,
}

impl PrinterStatus {
    /// The fault that stops printing, most specific first.
    pub fn fault(&self) -> Option<Fault> {
        if self.cover_open {
            Some(Fault::CoverOpen)
        } else if self.paper_out {
            Some(Fault::PaperOut)
        } else if self.error {
            Some(Fault::PrinterError)
        } else if !self.online {
            Some(Fault::Offline)
        } else {
            None
        }
    }
}

/// Why a job did not print (or may not have). All of them mean "keep the job, retry later".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("paper out")]
    PaperOut,
    #[error("cover open")]
    CoverOpen,
    #[error("printer offline or not answering")]
    Offline,
    #[error("printer error (cutter, head temperature or mechanism)")]
    PrinterError,
    #[error("printer unreachable: {0}")]
    Unreachable(String),
    #[error("connection lost: {0}")]
    Disconnected(String),
    #[error("printer stopped taking data")]
    Stalled,
    #[error("not supported by this build: {0}")]
    Unsupported(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// Result of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintOutcome {
    /// Sent, and the printer (when it answers status) reported no fault afterwards.
    /// `status` is `None` when the transport gives no status (file, silent printer).
    Printed { status: Option<PrinterStatus> },
    /// Not printed, or not completely: the job should be printed again once the fault clears.
    Fault(Fault),
}

/// Parses the replies to `DLE EOT 1`, `2` and `4`; `None` if any byte is not a status byte.
pub fn parse_status(replies: [u8; 3]) -> Option<PrinterStatus> {
    use RealTimeStatusResponse as R;
    let p = R::parse(RealTimeStatusRequest::Printer, replies[0]).ok()?;
    let o = R::parse(RealTimeStatusRequest::OfflineCause, replies[1]).ok()?;
    let r = R::parse(RealTimeStatusRequest::RollPaperSensor, replies[2]).ok()?;
    let get = |m: &std::collections::HashMap<R, bool>, k: R| m.get(&k).copied();
    Some(PrinterStatus {
        online: get(&p, R::Online)?,
        cover_open: !get(&o, R::CoverClosed)?,
        paper_out: get(&o, R::PrintingStopsDueToPaperEnd)?
            || !get(&r, R::RollPaperEndSensorPaperPresent)?,
        paper_near_end: !get(&r, R::RollPaperNearEndSensorPaperAdequate)?,
        error: get(&o, R::ErrorOccurred)?,
    })
}

/// A receipt printer reached through one [`Transport`].
#[derive(Debug, Clone)]
pub struct Printer {
    cfg: PrinterConfig,
}

impl Printer {
    pub fn new(cfg: PrinterConfig) -> Self {
        Printer { cfg }
    }

    pub fn config(&self) -> &PrinterConfig {
        &self.cfg
    }

    /// Prints one job (bytes from `escpos_enc::encode`).
    pub async fn print(&self, job: &[u8]) -> PrintOutcome {
        match &self.cfg.transport {
            Transport::Tcp { host, port } => tcp_job(&self.cfg, host, *port, job).await,
            _ => {
                let cfg = self.cfg.clone();
                let job = job.to_vec();
                match tokio::task::spawn_blocking(move || blocking_job(&cfg, &job)).await {
                    Ok(outcome) => outcome,
                    Err(e) => PrintOutcome::Fault(Fault::Internal(e.to_string())),
                }
            }
        }
    }

    /// Asks the printer how it is. `Ok(None)`: the transport or printer gives no status.
    pub async fn status(&self) -> Result<Option<PrinterStatus>, Fault> {
        match &self.cfg.transport {
            Transport::Tcp { host, port } => {
                let mut s = tcp_connect(&self.cfg, host, *port).await?;
                tcp_status(&mut s, ms(self.cfg.status_timeout_ms)).await
            }
            Transport::File { .. } => Ok(None),
            _ => {
                let cfg = self.cfg.clone();
                tokio::task::spawn_blocking(move || {
                    let d = open_driver(&cfg)?;
                    Ok(driver_status(d.as_ref()))
                })
                .await
                .map_err(|e| Fault::Internal(e.to_string()))?
            }
        }
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

// ------------------------------------------------------------------------------------------------
// TCP (async)
// ------------------------------------------------------------------------------------------------

async fn tcp_connect(cfg: &PrinterConfig, host: &str, port: u16) -> Result<TcpStream, Fault> {
    match timeout(ms(cfg.connect_timeout_ms), TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(Fault::Unreachable(format!("{host}:{port}: {e}"))),
        Err(_) => Err(Fault::Unreachable(format!(
            "{host}:{port}: connect timed out"
        ))),
    }
}

/// Status over an open connection: `Ok(None)` when the printer does not answer in time or
/// answers something that is not a status byte.
async fn tcp_status(s: &mut TcpStream, wait: Duration) -> Result<Option<PrinterStatus>, Fault> {
    // Drop stale bytes (a late answer to an earlier query) so replies line up.
    let mut junk = [0u8; 64];
    loop {
        match s.try_read(&mut junk) {
            Ok(0) => return Err(Fault::Disconnected("closed by the printer".into())),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(Fault::Disconnected(e.to_string())),
        }
    }
    s.write_all(&status_query_bytes())
        .await
        .map_err(|e| Fault::Disconnected(e.to_string()))?;
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 3];
    let mut got = 0;
    while got < 3 {
        match timeout_at(deadline, s.read(&mut buf[got..])).await {
            Err(_) => return Ok(None),
            Ok(Ok(0)) => return Err(Fault::Disconnected("closed by the printer".into())),
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => return Err(Fault::Disconnected(e.to_string())),
        }
    }
    Ok(parse_status(buf))
}

async fn tcp_job(cfg: &PrinterConfig, host: &str, port: u16, job: &[u8]) -> PrintOutcome {
    let mut s = match tcp_connect(cfg, host, port).await {
        Ok(s) => s,
        Err(f) => return PrintOutcome::Fault(f),
    };
    let wait = ms(cfg.status_timeout_ms);
    let mut answers = false;
    if cfg.status != StatusMode::Off {
        match tcp_status(&mut s, wait).await {
            Ok(Some(st)) => {
                if let Some(f) = st.fault() {
                    return PrintOutcome::Fault(f);
                }
                answers = true;
            }
            Ok(None) if cfg.status == StatusMode::Required => {
                return PrintOutcome::Fault(Fault::Offline)
            }
            Ok(None) => {}
            Err(f) => return PrintOutcome::Fault(f),
        }
    }
    for chunk in job.chunks(4096) {
        match timeout(ms(cfg.write_timeout_ms), s.write_all(chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return PrintOutcome::Fault(Fault::Disconnected(e.to_string())),
            Err(_) => return PrintOutcome::Fault(Fault::Stalled),
        }
    }
    if let Err(e) = s.flush().await {
        return PrintOutcome::Fault(Fault::Disconnected(e.to_string()));
    }
    let outcome = if answers {
        match tcp_status(&mut s, wait).await {
            Ok(Some(st)) => match st.fault() {
                Some(f) => PrintOutcome::Fault(f),
                None => PrintOutcome::Printed { status: Some(st) },
            },
            // It answered before the job and not after: do not claim the receipt printed.
            Ok(None) => PrintOutcome::Fault(Fault::Offline),
            Err(f) => PrintOutcome::Fault(f),
        }
    } else {
        PrintOutcome::Printed { status: None }
    };
    let _ = s.shutdown().await;
    outcome
}

// ------------------------------------------------------------------------------------------------
// escpos drivers (blocking)
// ------------------------------------------------------------------------------------------------

fn open_driver(cfg: &PrinterConfig) -> Result<Box<dyn Driver + Send>, Fault> {
    match &cfg.transport {
        Transport::File { path } => {
            let mut opts = std::fs::OpenOptions::new();
            opts.append(true).create(true);
            escpos::driver::FileDriver::open_with_options(path, &opts)
                .map(|d| Box::new(d) as Box<dyn Driver + Send>)
                .map_err(|e| Fault::Unreachable(format!("{}: {e}", path.display())))
        }
        #[cfg(feature = "printer-serial")]
        Transport::Serial { path, baud } => {
            escpos::driver::SerialPortDriver::open(path, *baud, Some(ms(cfg.status_timeout_ms)))
                .map(|d| Box::new(d) as Box<dyn Driver + Send>)
                .map_err(|e| Fault::Unreachable(format!("{path}: {e}")))
        }
        #[cfg(not(feature = "printer-serial"))]
        Transport::Serial { .. } => Err(Fault::Unsupported(
            "serial printers (feature printer-serial)".into(),
        )),
        #[cfg(feature = "printer-usb")]
        Transport::Usb {
            vendor_id,
            product_id,
        } => escpos::driver::NativeUsbDriver::open(*vendor_id, *product_id)
            .map(|d| Box::new(d) as Box<dyn Driver + Send>)
            .map_err(|e| Fault::Unreachable(format!("USB {vendor_id:04x}:{product_id:04x}: {e}"))),
        #[cfg(not(feature = "printer-usb"))]
        Transport::Usb { .. } => Err(Fault::Unsupported(
            "USB printers (feature printer-usb)".into(),
        )),
        Transport::Tcp { .. } => Err(Fault::Internal("TCP is not a blocking driver".into())),
    }
}

/// Status through an escpos driver: `None` when it does not answer (read error or timeout).
pub fn driver_status(d: &dyn Driver) -> Option<PrinterStatus> {
    d.write(&status_query_bytes()).ok()?;
    d.flush().ok()?;
    let mut buf = [0u8; 3];
    let mut got = 0;
    while got < 3 {
        match d.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    parse_status(buf)
}

/// The job protocol over any escpos [`Driver`]: status, job, status.
pub fn driver_job(d: &dyn Driver, job: &[u8], mode: StatusMode) -> PrintOutcome {
    let mut answers = false;
    if mode != StatusMode::Off {
        match driver_status(d) {
            Some(st) => {
                if let Some(f) = st.fault() {
                    return PrintOutcome::Fault(f);
                }
                answers = true;
            }
            None if mode == StatusMode::Required => return PrintOutcome::Fault(Fault::Offline),
            None => {}
        }
    }
    for chunk in job.chunks(4096) {
        if let Err(e) = d.write(chunk) {
            return PrintOutcome::Fault(Fault::Disconnected(e.to_string()));
        }
    }
    if let Err(e) = d.flush() {
        return PrintOutcome::Fault(Fault::Disconnected(e.to_string()));
    }
    if !answers {
        return PrintOutcome::Printed { status: None };
    }
    match driver_status(d) {
        Some(st) => match st.fault() {
            Some(f) => PrintOutcome::Fault(f),
            None => PrintOutcome::Printed { status: Some(st) },
        },
        None => PrintOutcome::Fault(Fault::Offline),
    }
}

fn blocking_job(cfg: &PrinterConfig, job: &[u8]) -> PrintOutcome {
    let d = match open_driver(cfg) {
        Ok(d) => d,
        Err(f) => return PrintOutcome::Fault(f),
    };
    // A file or /dev/usb/lp* may block forever on read: never ask it for status.
    let mode = match cfg.transport {
        Transport::File { .. } => StatusMode::Off,
        _ => cfg.status,
    };
    driver_job(d.as_ref(), job, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    #[test]
    fn status_bytes_parse() {
        let ok = parse_status([0x12, 0x12, 0x12]).unwrap();
        assert_eq!(
            ok,
            PrinterStatus {
                online: true,
                cover_open: false,
                paper_out: false,
                paper_near_end: false,
                error: false
            }
        );
        assert_eq!(ok.fault(), None);
        let cover = parse_status([0x1A, 0x16, 0x12]).unwrap();
        assert_eq!(cover.fault(), Some(Fault::CoverOpen));
        let paper = parse_status([0x1A, 0x32, 0x7E]).unwrap();
        assert_eq!(paper.fault(), Some(Fault::PaperOut));
        assert!(paper.paper_near_end);
        let near = parse_status([0x12, 0x12, 0x1E]).unwrap();
        assert_eq!(near.fault(), None);
        assert!(near.paper_near_end);
        assert_eq!(parse_status([0xFF, 0x12, 0x12]), None);
        assert_eq!(parse_status([0x00, 0x12, 0x12]), None);
    }

    /// A driver that replays canned status replies and records writes.
    struct Scripted {
        replies: RefCell<VecDeque<u8>>,
        written: RefCell<Vec<u8>>,
    }

    impl Driver for Scripted {
        fn name(&self) -> String {
            "scripted".into()
        }
        fn write(&self, data: &[u8]) -> escpos::errors::Result<()> {
            self.written.borrow_mut().extend_from_slice(data);
            Ok(())
        }
        fn read(&self, buf: &mut [u8]) -> escpos::errors::Result<usize> {
            match (self.replies.borrow_mut().pop_front(), buf.first_mut()) {
                (Some(b), Some(slot)) => {
                    *slot = b;
                    Ok(1)
                }
                _ => Err(escpos::errors::PrinterError::Io("timed out".into())),
            }
        }
        fn flush(&self) -> escpos::errors::Result<()> {
            Ok(())
        }
    }

    fn scripted(replies: &[u8]) -> Scripted {
        Scripted {
            replies: RefCell::new(replies.iter().copied().collect()),
            written: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn driver_job_checks_before_and_after() {
        let d = scripted(&[0x12, 0x12, 0x12, 0x12, 0x12, 0x12]);
        assert!(matches!(
            driver_job(&d, b"JOB", StatusMode::Auto),
            PrintOutcome::Printed { status: Some(_) }
        ));
        let q = status_query_bytes();
        assert_eq!(*d.written.borrow(), [&q[..], b"JOB", &q[..]].concat());

        let d = scripted(&[0x1A, 0x16, 0x12]);
        assert_eq!(
            driver_job(&d, b"JOB", StatusMode::Auto),
            PrintOutcome::Fault(Fault::CoverOpen)
        );
        assert!(!d.written.borrow().windows(3).any(|w| w == b"JOB"));

        let d = scripted(&[0x12, 0x12, 0x12, 0x1A, 0x32, 0x7E]);
        assert_eq!(
            driver_job(&d, b"JOB", StatusMode::Auto),
            PrintOutcome::Fault(Fault::PaperOut)
        );

        let silent = scripted(&[]);
        assert_eq!(
            driver_job(&silent, b"JOB", StatusMode::Auto),
            PrintOutcome::Printed { status: None }
        );
        let silent = scripted(&[]);
        assert_eq!(
            driver_job(&silent, b"JOB", StatusMode::Required),
            PrintOutcome::Fault(Fault::Offline)
        );
        let off = scripted(&[0x1A, 0x16, 0x12]);
        assert_eq!(
            driver_job(&off, b"JOB", StatusMode::Off),
            PrintOutcome::Printed { status: None }
        );
        assert_eq!(*off.written.borrow(), b"JOB".to_vec());
    }

    #[test]
    fn printer_config_from_toml() {
        let c: PrinterConfig = toml::from_str(
            "status = \"required\"\n[transport]\ntype = \"tcp\"\nhost = \"127.0.0.1\"\n",
        )
        .unwrap();
        assert_eq!(
            c.transport,
            Transport::Tcp {
                host: "127.0.0.1".into(),
                port: 9100
            }
        );
        assert_eq!(c.status, StatusMode::Required);
        assert!(toml::from_str::<PrinterConfig>(
            "[transport]\ntype = \"tcp\"\nhost = \"h\"\nspeed = 1\n"
        )
        .is_err());
        let usb: PrinterConfig = toml::from_str(
            "[transport]\ntype = \"usb\"\nvendor_id = 0x0416\nproduct_id = 0x5011\n",
        )
        .unwrap();
        assert!(matches!(
            usb.transport,
            Transport::Usb {
                vendor_id: 0x0416,
                ..
            }
        ));
    }
}
