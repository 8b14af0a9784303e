//! Printer transports and the job protocol: ask the printer how it is (`DLE EOT 1/2/4`), send
//! the job only if it can print, and find out whether it printed — so the durable print queue
//! knows whether to wait, to send again, or to send again marked as a reprint.
//!
//! A job is sent in parts (each copy of a receipt). A printer whose model confirms jobs
//! (`GS ( H` process IDs, Epson TM) is sent an ID after each part and answers it once that part
//! has printed; when it stops in the middle (paper out, cover open) posd keeps the connection,
//! asks its status every `fault_poll_ms`, and waits while it resumes from its own buffer after
//! the fix — nothing is sent twice. A printer that does not confirm is asked its status after
//! the job; a fault or silence then means the job may be partly on paper ([`JobEnd::Uncertain`]).
//!
//! TCP (port 9100) is async on tokio. Serial and USB use the escpos crate's blocking drivers
//! (`SerialPortDriver`, `NativeUsbDriver`) inside `spawn_blocking`; files and device nodes such
//! as `/dev/usb/lp0` are written with escpos' `FileDriver` and give no status. Each job and each
//! health check opens its own connection, so a printer that was unplugged or rebooted is simply
//! found again.

use std::time::Duration;

use escpos::driver::Driver;
use escpos::utils::{RealTimeStatusRequest, RealTimeStatusResponse};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, timeout_at, Instant};

use crate::config::devices::{PrinterConfig, StatusMode, Transport};
use posd_core::receipt::escpos_enc::{process_id_bytes, status_query_bytes, PRINTER_NAME_QUERY};

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

/// Result of one job through [`Printer::print`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintOutcome {
    /// Sent, and the printer (when it answers status) reported no fault afterwards.
    /// `status` is `None` when the transport gives no status (file, silent printer).
    Printed { status: Option<PrinterStatus> },
    /// Not printed, or not completely: the job should be printed again once the fault clears.
    Fault(Fault),
}

/// One job for [`Printer::run`]: its parts, the first one still to print, and whether the
/// printer confirms each part (process IDs).
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub parts: &'a [Vec<u8>],
    /// Parts before this one are known printed (a resumed job).
    pub first: usize,
    /// The printer answers `GS ( H` process IDs.
    pub confirm: bool,
    /// Distinguishes this job's process IDs (the queue's job id).
    pub tag: u64,
}

/// How a job ended, for the queue's rule "never twice unmarked".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Every part printed: confirmed by the printer where it can, otherwise sent and the
    /// status clean afterwards (`None`: the printer gives no status; sent blind).
    Printed { status: Option<PrinterStatus> },
    /// Nothing of this attempt left the box: try again later, as it is.
    NotSent(Fault),
    /// Bytes left and the printer did not confirm them all: the first `done` parts are known
    /// printed, the others may be on paper in part, in full, or not at all.
    Uncertain { fault: Fault, done: usize },
}

/// What happens during a job, for the queue.
#[derive(Debug)]
pub enum JobEvent {
    /// The first byte is about to leave: record the attempt durably, then answer.
    Sending(oneshot::Sender<()>),
    /// The printer's status while the job is out (held through a fault).
    Status(PrinterStatus),
    /// This many parts are confirmed printed.
    PartsDone(usize),
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Status(PrinterStatus),
    /// The transport gives no status (a file) or asking is off.
    NoStatus,
    /// Reached, but no status answer.
    NotAnswering(String),
    Unreachable(String),
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

/// A status byte has the fixed bits `0xx1xx10`.
fn is_status_byte(b: u8) -> bool {
    b & 0b1001_0011 == 0b0001_0010
}

/// The four process ID bytes of part `part` of job `tag` (base 36, printable as required).
pub fn process_id(tag: u64, part: usize) -> [u8; 4] {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut v = (tag.wrapping_mul(16).wrapping_add(part as u64)) % 36u64.pow(4);
    let mut out = [b'0'; 4];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v % 36) as usize];
        v /= 36;
    }
    out
}

/// What the printer sent back, sorted: status bytes, process ID responses (`37 22 d1..d4 00`),
/// its name (`_ name 00`); anything else is skipped.
#[derive(Debug, Default)]
struct Inbox {
    bytes: Vec<u8>,
    ids: Vec<[u8; 4]>,
    name: Option<String>,
}

impl Inbox {
    /// Moves complete replies out of `bytes`; status bytes go to `statuses`.
    fn sort(&mut self, statuses: &mut Vec<u8>) {
        let mut i = 0;
        let b = &self.bytes;
        while i < b.len() {
            match b[i] {
                0x37 => {
                    // Header 37h, an identifier, data, NUL.
                    let Some(end) = b[i..].iter().position(|&c| c == 0) else {
                        // Not complete yet: keep it, unless it can no longer be a reply.
                        if b.len() - i > 64 {
                            i += 1;
                            continue;
                        }
                        break;
                    };
                    let reply = &b[i..i + end];
                    if reply.len() == 6 && reply[1] == 0x22 {
                        let mut id = [0u8; 4];
                        id.copy_from_slice(&reply[2..6]);
                        self.ids.push(id);
                    }
                    i += end + 1;
                }
                b'_' => {
                    let Some(end) = b[i..].iter().position(|&c| c == 0) else {
                        if b.len() - i > 128 {
                            i += 1;
                            continue;
                        }
                        break;
                    };
                    let name = String::from_utf8_lossy(&b[i + 1..i + end])
                        .trim()
                        .to_string();
                    if !name.is_empty() {
                        self.name = Some(name);
                    }
                    i += end + 1;
                }
                s if is_status_byte(s) => {
                    statuses.push(s);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        self.bytes.drain(..i);
    }
}

/// The most a printer's unasked bytes are read at once (`Tcp::absorb`): replies are a few
/// bytes; more is a peer that is not a printer, or a printer gone wrong.
const ABSORB_MAX: usize = 16 * 1024;

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

    /// Whether the transport can carry the printer's answers while a job is out (TCP), so a
    /// confirming printer can be held through a fault.
    pub fn can_confirm(&self) -> bool {
        matches!(self.cfg.transport, Transport::Tcp { .. }) && self.cfg.status != StatusMode::Off
    }

    /// Prints one job (bytes from `escpos_enc::encode`) without confirmation: status before,
    /// the job, status after.
    pub async fn print(&self, job: &[u8]) -> PrintOutcome {
        let parts = [job.to_vec()];
        let (tx, mut rx) = mpsc::unbounded_channel();
        let spec = Job {
            parts: &parts,
            first: 0,
            confirm: false,
            tag: 0,
        };
        let run = self.run(&spec, &tx);
        tokio::pin!(run);
        let end = loop {
            tokio::select! {
                end = &mut run => break end,
                Some(ev) = rx.recv() => {
                    if let JobEvent::Sending(ack) = ev {
                        let _ = ack.send(());
                    }
                }
            }
        };
        match end {
            JobEnd::Printed { status } => PrintOutcome::Printed { status },
            JobEnd::NotSent(f) | JobEnd::Uncertain { fault: f, .. } => PrintOutcome::Fault(f),
        }
    }

    /// Runs one job; `events` hears of the attempt before the first byte leaves (and must
    /// answer), of the status while a confirming printer is held through a fault, and of each
    /// confirmed part.
    pub async fn run(&self, job: &Job<'_>, events: &mpsc::UnboundedSender<JobEvent>) -> JobEnd {
        match &self.cfg.transport {
            Transport::Tcp { host, port } => tcp_run(&self.cfg, host, *port, job, events).await,
            _ => {
                if !announce(events).await {
                    return JobEnd::NotSent(Fault::Internal(
                        "the print queue did not record the attempt".into(),
                    ));
                }
                let cfg = self.cfg.clone();
                let bytes = job.parts.get(job.first..).unwrap_or_default().concat();
                let first = job.first;
                match tokio::task::spawn_blocking(move || blocking_run(&cfg, &bytes)).await {
                    Ok(JobEnd::Uncertain { fault, .. }) => JobEnd::Uncertain { fault, done: first },
                    Ok(end) => end,
                    Err(e) => JobEnd::Uncertain {
                        fault: Fault::Internal(e.to_string()),
                        done: first,
                    },
                }
            }
        }
    }

    /// Asks the printer how it is. `Ok(None)`: the transport or printer gives no status.
    pub async fn status(&self) -> Result<Option<PrinterStatus>, Fault> {
        match &self.cfg.transport {
            Transport::Tcp { host, port } => {
                let mut t = Tcp::connect(&self.cfg, host, *port).await?;
                t.status(ms(self.cfg.status_timeout_ms)).await
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

    /// A health check that prints nothing: can the printer be reached, and what does it say.
    pub async fn check(&self) -> Check {
        if self.cfg.status == StatusMode::Off {
            return match &self.cfg.transport {
                Transport::Tcp { host, port } => match Tcp::connect(&self.cfg, host, *port).await {
                    Ok(_) => Check::NoStatus,
                    Err(f) => Check::Unreachable(reason(&f)),
                },
                _ => Check::NoStatus,
            };
        }
        match &self.cfg.transport {
            Transport::File { path } => {
                // Opening for append writes nothing; a missing directory shows here.
                let p = path.clone();
                match tokio::task::spawn_blocking(move || {
                    std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&p)
                })
                .await
                {
                    Ok(Ok(_)) => Check::NoStatus,
                    Ok(Err(e)) => Check::Unreachable(format!("{}: {e}", path.display())),
                    Err(e) => Check::Unreachable(e.to_string()),
                }
            }
            _ => match self.status().await {
                Ok(Some(st)) => Check::Status(st),
                Ok(None) => Check::NotAnswering("no answer to DLE EOT".into()),
                Err(Fault::Unreachable(d)) | Err(Fault::Unsupported(d)) => Check::Unreachable(d),
                Err(f) => Check::NotAnswering(f.to_string()),
            },
        }
    }

    /// The name the printer reports (`GS I 67`), if it does (TCP only).
    pub async fn identify(&self) -> Option<String> {
        let Transport::Tcp { host, port } = &self.cfg.transport else {
            return None;
        };
        if self.cfg.status == StatusMode::Off {
            return None;
        }
        let mut t = Tcp::connect(&self.cfg, host, *port).await.ok()?;
        t.write(&PRINTER_NAME_QUERY, ms(self.cfg.write_timeout_ms))
            .await
            .ok()?;
        let deadline = Instant::now() + ms(self.cfg.status_timeout_ms);
        while t.inbox.name.is_none() {
            if t.read_until(deadline).await.ok()? == 0 {
                break;
            }
        }
        let _ = t.s.shutdown().await;
        t.inbox.name.take()
    }
}

/// The part of a fault worth showing after "unreachable".
fn reason(f: &Fault) -> String {
    match f {
        Fault::Unreachable(d) | Fault::Unsupported(d) => d.clone(),
        other => other.to_string(),
    }
}

/// Tells the queue bytes are about to leave and waits for it to have recorded that.
async fn announce(events: &mpsc::UnboundedSender<JobEvent>) -> bool {
    let (tx, rx) = oneshot::channel();
    events.send(JobEvent::Sending(tx)).is_ok() && rx.await.is_ok()
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

// ------------------------------------------------------------------------------------------------
// TCP (async)
// ------------------------------------------------------------------------------------------------

struct Tcp {
    s: TcpStream,
    inbox: Inbox,
}

impl Tcp {
    async fn connect(cfg: &PrinterConfig, host: &str, port: u16) -> Result<Tcp, Fault> {
        match timeout(ms(cfg.connect_timeout_ms), TcpStream::connect((host, port))).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(Tcp {
                    s,
                    inbox: Inbox::default(),
                })
            }
            Ok(Err(e)) => Err(Fault::Unreachable(format!("{host}:{port}: {e}"))),
            Err(_) => Err(Fault::Unreachable(format!(
                "{host}:{port}: connect timed out"
            ))),
        }
    }

    /// Takes in what the printer already sent, without waiting: replies sorted as they come
    /// (status bytes waiting here answer earlier queries and are dropped), at most
    /// [`ABSORB_MAX`] bytes a call, so a peer that streams without pause neither grows the
    /// inbox nor keeps this loop from returning.
    fn absorb(&mut self) -> Result<(), Fault> {
        let mut buf = [0u8; 256];
        let mut stale = Vec::new();
        let mut taken = 0usize;
        while taken < ABSORB_MAX {
            match self.s.try_read(&mut buf) {
                Ok(0) => return Err(Fault::Disconnected("closed by the printer".into())),
                Ok(n) => {
                    taken += n;
                    self.inbox.bytes.extend_from_slice(&buf[..n]);
                    self.inbox.sort(&mut stale);
                    stale.clear();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(Fault::Disconnected(e.to_string())),
            }
        }
        Ok(())
    }

    /// Reads until something arrives or `deadline`; the number of bytes (0 at the deadline).
    async fn read_until(&mut self, deadline: Instant) -> Result<usize, Fault> {
        let mut buf = [0u8; 256];
        match timeout_at(deadline, self.s.read(&mut buf)).await {
            Err(_) => Ok(0),
            Ok(Ok(0)) => Err(Fault::Disconnected("closed by the printer".into())),
            Ok(Ok(n)) => {
                self.inbox.bytes.extend_from_slice(&buf[..n]);
                let mut stale = Vec::new();
                self.inbox.sort(&mut stale);
                Ok(n)
            }
            Ok(Err(e)) => Err(Fault::Disconnected(e.to_string())),
        }
    }

    /// Status over an open connection: `Ok(None)` when the printer does not answer in time or
    /// answers something that is not a status byte.
    async fn status(&mut self, wait: Duration) -> Result<Option<PrinterStatus>, Fault> {
        // Status bytes already waiting answer an earlier query: drop them so replies line up
        // (process IDs and names among them are kept).
        self.absorb()?;
        let mut stale = Vec::new();
        self.inbox.sort(&mut stale);
        self.s
            .write_all(&status_query_bytes())
            .await
            .map_err(|e| Fault::Disconnected(e.to_string()))?;
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        loop {
            self.inbox.sort(&mut got);
            if got.len() >= 3 {
                return Ok(parse_status([got[0], got[1], got[2]]));
            }
            let mut buf = [0u8; 256];
            match timeout_at(deadline, self.s.read(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err(Fault::Disconnected("closed by the printer".into())),
                Ok(Ok(n)) => self.inbox.bytes.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => return Err(Fault::Disconnected(e.to_string())),
            }
        }
    }

    /// Writes in 4 KiB pieces, each within `per_piece`.
    async fn write(&mut self, bytes: &[u8], per_piece: Duration) -> Result<(), Fault> {
        for chunk in bytes.chunks(4096) {
            match timeout(per_piece, self.s.write_all(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Fault::Disconnected(e.to_string())),
                Err(_) => return Err(Fault::Stalled),
            }
        }
        self.s
            .flush()
            .await
            .map_err(|e| Fault::Disconnected(e.to_string()))
    }

    /// Parts confirmed so far, counting from `done`, given the IDs received.
    fn confirmed(&mut self, tag: u64, mut done: usize, total: usize) -> usize {
        for id in self.inbox.ids.drain(..) {
            if done < total && id == process_id(tag, done) {
                done += 1;
            }
        }
        done
    }
}

async fn tcp_run(
    cfg: &PrinterConfig,
    host: &str,
    port: u16,
    job: &Job<'_>,
    events: &mpsc::UnboundedSender<JobEvent>,
) -> JobEnd {
    let mut t = match Tcp::connect(cfg, host, port).await {
        Ok(t) => t,
        Err(f) => return JobEnd::NotSent(f),
    };
    let wait = ms(cfg.status_timeout_ms);
    let total = job.parts.len();
    let mut answers = false;
    let mut last = None;
    if cfg.status != StatusMode::Off {
        match t.status(wait).await {
            Ok(Some(st)) => {
                if let Some(f) = st.fault() {
                    return JobEnd::NotSent(f);
                }
                answers = true;
                last = Some(st);
            }
            Ok(None) if cfg.status == StatusMode::Required => {
                return JobEnd::NotSent(Fault::Offline)
            }
            Ok(None) => {}
            Err(f) => return JobEnd::NotSent(f),
        }
    }
    let confirm = job.confirm && answers;
    if !announce(events).await {
        return JobEnd::NotSent(Fault::Internal(
            "the print queue did not record the attempt".into(),
        ));
    }
    let mut done = job.first;
    for (k, part) in job.parts.iter().enumerate().skip(job.first) {
        let mut bytes = part.clone();
        if confirm {
            bytes.extend_from_slice(&process_id_bytes(process_id(job.tag, k)));
        }
        if let Err(f) = t.write(&bytes, ms(cfg.write_timeout_ms)).await {
            let _ = t.absorb();
            let mut stale = Vec::new();
            t.inbox.sort(&mut stale);
            done = t.confirmed(job.tag, done, total);
            return JobEnd::Uncertain { fault: f, done };
        }
    }
    if !answers {
        let _ = t.s.shutdown().await;
        return JobEnd::Printed { status: None };
    }
    if !confirm {
        let end = match t.status(wait).await {
            Ok(Some(st)) => match st.fault() {
                Some(f) => JobEnd::Uncertain { fault: f, done },
                None => JobEnd::Printed { status: Some(st) },
            },
            // It answered before the job and not after: do not claim the receipt printed.
            Ok(None) => JobEnd::Uncertain {
                fault: Fault::Offline,
                done,
            },
            Err(f) => JobEnd::Uncertain { fault: f, done },
        };
        let _ = t.s.shutdown().await;
        return end;
    }
    // A confirming printer: wait for each part's ID, asking its status every fault_poll_ms.
    // Through paper out or an open cover the connection is kept: the printer prints the rest
    // from its own buffer once fixed, and confirms it.
    let poll = ms(cfg.fault_poll_ms);
    let mut faulted = false;
    let mut ok_since = Instant::now();
    loop {
        let before = done;
        done = t.confirmed(job.tag, done, total);
        if done > before {
            ok_since = Instant::now();
            let _ = events.send(JobEvent::PartsDone(done));
        }
        if done == total {
            let _ = t.s.shutdown().await;
            return JobEnd::Printed { status: last };
        }
        let next_poll = Instant::now() + poll;
        loop {
            match t.read_until(next_poll).await {
                Ok(0) => break,
                Ok(_) => {
                    if !t.inbox.ids.is_empty() {
                        break;
                    }
                }
                Err(f) => {
                    let done = t.confirmed(job.tag, done, total);
                    return JobEnd::Uncertain { fault: f, done };
                }
            }
        }
        if !t.inbox.ids.is_empty() {
            continue;
        }
        match t.status(wait).await {
            Ok(Some(st)) => {
                let _ = events.send(JobEvent::Status(st));
                last = Some(st);
                if st.fault().is_some() {
                    faulted = true;
                    ok_since = Instant::now();
                } else if ok_since.elapsed() >= ms(cfg.confirm_timeout_ms) {
                    // Well, but silent about the IDs: a printer that does not confirm after all.
                    let done = t.confirmed(job.tag, done, total);
                    log::warn!(
                        "printer: no process ID answer within {} ms although its model confirms jobs; check [receipt] printer_model",
                        cfg.confirm_timeout_ms
                    );
                    let _ = t.s.shutdown().await;
                    return if faulted {
                        JobEnd::Uncertain {
                            fault: Fault::Offline,
                            done,
                        }
                    } else {
                        JobEnd::Printed { status: Some(st) }
                    };
                }
            }
            Ok(None) => {
                let done = t.confirmed(job.tag, done, total);
                return JobEnd::Uncertain {
                    fault: Fault::Offline,
                    done,
                };
            }
            Err(f) => {
                let done = t.confirmed(job.tag, done, total);
                return JobEnd::Uncertain { fault: f, done };
            }
        }
    }
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
pub fn driver_run(d: &dyn Driver, job: &[u8], mode: StatusMode) -> JobEnd {
    let mut answers = false;
    if mode != StatusMode::Off {
        match driver_status(d) {
            Some(st) => {
                if let Some(f) = st.fault() {
                    return JobEnd::NotSent(f);
                }
                answers = true;
            }
            None if mode == StatusMode::Required => return JobEnd::NotSent(Fault::Offline),
            None => {}
        }
    }
    let uncertain = |fault| JobEnd::Uncertain { fault, done: 0 };
    for chunk in job.chunks(4096) {
        if let Err(e) = d.write(chunk) {
            return uncertain(Fault::Disconnected(e.to_string()));
        }
    }
    if let Err(e) = d.flush() {
        return uncertain(Fault::Disconnected(e.to_string()));
    }
    if !answers {
        return JobEnd::Printed { status: None };
    }
    match driver_status(d) {
        Some(st) => match st.fault() {
            Some(f) => uncertain(f),
            None => JobEnd::Printed { status: Some(st) },
        },
        None => uncertain(Fault::Offline),
    }
}

/// [`driver_run`] as a [`PrintOutcome`].
pub fn driver_job(d: &dyn Driver, job: &[u8], mode: StatusMode) -> PrintOutcome {
    match driver_run(d, job, mode) {
        JobEnd::Printed { status } => PrintOutcome::Printed { status },
        JobEnd::NotSent(f) | JobEnd::Uncertain { fault: f, .. } => PrintOutcome::Fault(f),
    }
}

fn blocking_run(cfg: &PrinterConfig, job: &[u8]) -> JobEnd {
    let d = match open_driver(cfg) {
        Ok(d) => d,
        Err(f) => return JobEnd::NotSent(f),
    };
    // A file or /dev/usb/lp* may block forever on read: never ask it for status.
    let mode = match cfg.transport {
        Transport::File { .. } => StatusMode::Off,
        _ => cfg.status,
    };
    driver_run(d.as_ref(), job, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// A peer on the printer's port that streams without pause: what is taken in unasked is
    /// bounded a call, and the inbox keeps no more than an unfinished reply.
    #[tokio::test]
    async fn unasked_bytes_are_taken_in_bounded_steps() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Status bytes and noise, far more than one call takes.
            let chunk = [0x12u8, 0x55, 0x00, 0x14].repeat(4096);
            for _ in 0..64 {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let mut t = Tcp {
            s: TcpStream::connect(addr).await.unwrap(),
            inbox: Inbox::default(),
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..4 {
            t.absorb().unwrap();
            assert!(t.inbox.bytes.len() <= 256, "{}", t.inbox.bytes.len());
        }
        drop(t);
        peer.abort();
    }

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
    fn replies_are_sorted_as_they_arrive() {
        let mut inbox = Inbox::default();
        // A status byte, a process ID answer split across reads, a name, noise.
        inbox
            .bytes
            .extend_from_slice(&[0x12, 0x37, 0x22, b'0', b'0']);
        let mut st = Vec::new();
        inbox.sort(&mut st);
        assert_eq!(st, vec![0x12]);
        assert!(inbox.ids.is_empty(), "incomplete answer kept");
        inbox
            .bytes
            .extend_from_slice(&[b'1', b'A', 0, 0xFF, b'_', b'T', b'M', 0, 0x1A]);
        inbox.sort(&mut st);
        assert_eq!(inbox.ids, vec![*b"001A"]);
        assert_eq!(inbox.name.as_deref(), Some("TM"));
        assert_eq!(st, vec![0x12, 0x1A]);
        assert!(inbox.bytes.is_empty());
    }

    #[test]
    fn process_ids_are_printable_and_distinct_per_part() {
        let a = process_id(41, 0);
        let b = process_id(41, 1);
        let c = process_id(42, 0);
        assert!(a
            .iter()
            .chain(&b)
            .chain(&c)
            .all(|x| (0x20..=0x7E).contains(x)));
        assert!(a != b && a != c && b != c);
        // Never a status byte's pattern, so an answer is never mistaken for one.
        assert!(!is_status_byte(0x37) && !is_status_byte(b'_'));
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
