//! The evdev shell: finds the scanner or keypad, grabs it, reads its events, survives replugs.
//!
//! Everything that decides anything lives in the pure cores (`hid_assembler`, `keymap`,
//! `core::cashier`); this module only moves `input_event`s from a device — or from a recorded
//! stream, through exactly the same [`HidPipeline`] and read loop — into them. Hotplug is a
//! plain re-scan of `/dev/input` every `rescan_ms` (these boxes run without udev events): a
//! read error means the device is gone (status `absent`, the partial code is dropped), and the
//! next scan that finds it again resumes without a restart.

use super::{DeviceError, DeviceStatus};
use crate::config::devices::DeviceConfigError;
use evdev::{EventType, InputEvent};
use posd_core::hid::assembler::{Assembled, Assembler, AssemblerConfig, DropReason, KeyEvent};
use posd_core::hid::Selector;
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// `EV_KEY`, `EV_SYN` as raw numbers.
pub const EV_SYN: u16 = 0;
pub const EV_KEY: u16 = 1;
pub const EV_MSC: u16 = 4;

/// Microseconds since the Unix epoch (0 for a clock before it).
pub fn timestamp_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

/// The key event in an `input_event`, if it is one.
pub fn key_event(ev: &InputEvent) -> Option<KeyEvent> {
    (ev.event_type() == EventType::KEY).then(|| KeyEvent {
        code: ev.code(),
        value: ev.value(),
        time_us: timestamp_us(ev.timestamp()),
    })
}

/// Builds an `input_event` with an explicit timestamp (recorded streams, tests, benches).
pub fn input_event(time_us: u64, type_: u16, code: u16, value: i32) -> InputEvent {
    let raw = libc::input_event {
        time: libc::timeval {
            tv_sec: (time_us / 1_000_000) as libc::time_t,
            tv_usec: (time_us % 1_000_000) as libc::suseconds_t,
        },
        type_,
        code,
        value,
    };
    InputEvent::from(raw)
}

/// The scanner's path from `input_event` to code: used by the device loop and by recorded
/// streams alike.
#[derive(Debug, Clone)]
pub struct HidPipeline {
    asm: Assembler,
}

impl HidPipeline {
    pub fn new(cfg: AssemblerConfig) -> HidPipeline {
        HidPipeline {
            asm: Assembler::new(cfg),
        }
    }

    pub fn feed(&mut self, ev: &InputEvent) -> Option<Assembled> {
        self.asm.feed(key_event(ev)?)
    }

    pub fn expire(&mut self, now: SystemTime) -> Option<Assembled> {
        self.asm.expire(timestamp_us(now))
    }

    pub fn unplugged(&mut self) -> Option<Assembled> {
        self.asm.reset(DropReason::Unplugged)
    }

    pub fn pending(&self) -> usize {
        self.asm.pending()
    }

    pub fn gap(&self) -> Duration {
        Duration::from_millis(u64::from(self.asm.config().gap_timeout_ms))
    }
}

/// Parses a recorded stream: one event per line, `SECONDS.MICROS TYPE CODE VALUE` (the
/// numbers `evtest` prints), `#` comments; a line `unplug` ends a segment with the device
/// disappearing.
pub fn parse_recording(text: &str) -> Result<Vec<Vec<InputEvent>>, DeviceError> {
    let mut segments = vec![Vec::new()];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "unplug" {
            segments.push(Vec::new());
            continue;
        }
        let bad = || DeviceError::Recording(format!("line {}: {line:?}", i + 1));
        let f: Vec<&str> = line.split_whitespace().collect();
        let [ts, ty, code, value] = f.as_slice() else {
            return Err(bad());
        };
        let (s, us) = ts.split_once('.').ok_or_else(bad)?;
        let s: u64 = s.parse().map_err(|_| bad())?;
        let us: u64 = format!("{us:0<6}")
            .get(..6)
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        let t = s.checked_mul(1_000_000).ok_or_else(bad)? + us;
        segments.last_mut().ok_or_else(bad)?.push(input_event(
            t,
            ty.parse().map_err(|_| bad())?,
            code.parse().map_err(|_| bad())?,
            value.parse().map_err(|_| bad())?,
        ));
    }
    Ok(segments)
}

/// Writes events in the format [`parse_recording`] reads.
pub fn format_recording(events: &[InputEvent]) -> String {
    let mut s = String::new();
    for ev in events {
        let t = timestamp_us(ev.timestamp());
        s.push_str(&format!(
            "{}.{:06} {} {} {}\n",
            t / 1_000_000,
            t % 1_000_000,
            ev.event_type().0,
            ev.code(),
            ev.value()
        ));
    }
    s
}

/// How a recorded segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedEnd {
    /// The device disappears (reads fail with ENODEV, as evdev's do after an unplug).
    Unplug,
    /// The device stays, silent.
    Stay,
}

/// A recorded device: its events, then an end.
#[derive(Debug)]
pub struct RecordedStream {
    events: VecDeque<InputEvent>,
    end: RecordedEnd,
}

impl RecordedStream {
    pub fn new(events: Vec<InputEvent>, end: RecordedEnd) -> RecordedStream {
        RecordedStream {
            events: events.into(),
            end,
        }
    }
}

/// Where events come from: an evdev device or a recording.
pub enum HidSource {
    Device(Box<evdev::EventStream>),
    Recorded(RecordedStream),
}

impl HidSource {
    pub async fn next_event(&mut self) -> io::Result<InputEvent> {
        match self {
            HidSource::Device(s) => s.next_event().await,
            HidSource::Recorded(r) => {
                // Let other tasks run as a real device's reads would. The yield comes before
                // the event is taken, so a `select!` that drops this future loses nothing
                // (cancellation-safe, like evdev's own stream).
                tokio::task::yield_now().await;
                match r.events.pop_front() {
                    Some(ev) => Ok(ev),
                    None => match r.end {
                        RecordedEnd::Unplug => Err(io::Error::from_raw_os_error(libc::ENODEV)),
                        RecordedEnd::Stay => std::future::pending().await,
                    },
                }
            }
        }
    }
}

/// Finds (and opens) the configured device; `Ok(None)` when it is not there.
pub trait Opener: Send + 'static {
    fn open(&mut self) -> Result<Option<(HidSource, String)>, DeviceError>;
}

/// Plays recorded segments as successive plug-ins of one device; absent after the last.
pub struct RecordedOpener {
    segments: VecDeque<Vec<InputEvent>>,
    last_end: RecordedEnd,
}

impl RecordedOpener {
    /// Every segment but the last ends in an unplug; the last ends with `last_end`.
    pub fn new(segments: Vec<Vec<InputEvent>>, last_end: RecordedEnd) -> RecordedOpener {
        RecordedOpener {
            segments: segments.into(),
            last_end,
        }
    }
}

impl Opener for RecordedOpener {
    fn open(&mut self) -> Result<Option<(HidSource, String)>, DeviceError> {
        let Some(events) = self.segments.pop_front() else {
            return Ok(None);
        };
        let end = if self.segments.is_empty() {
            self.last_end
        } else {
            RecordedEnd::Unplug
        };
        Ok(Some((
            HidSource::Recorded(RecordedStream::new(events, end)),
            "recorded stream".into(),
        )))
    }
}

/// Opens real evdev devices by re-scanning `input_dir` (normally `/dev/input`).
pub struct DeviceOpener {
    pub selector: Selector,
    pub input_dir: PathBuf,
    pub grab: bool,
}

impl DeviceOpener {
    fn find(&self) -> Result<Option<(PathBuf, evdev::Device)>, DeviceError> {
        if let Some(path) = &self.selector.path {
            return match evdev::Device::open(path) {
                Ok(d) => Ok(self.matches(&d).then(|| (path.clone(), d))),
                Err(e) if is_absent(&e) => Ok(None),
                Err(e) => Err(DeviceError::Open(path.display().to_string(), e)),
            };
        }
        let entries = match std::fs::read_dir(&self.input_dir) {
            Ok(e) => e,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(DeviceError::Open(self.input_dir.display().to_string(), e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("event"))
            })
            .collect();
        paths.sort();
        for p in paths {
            // Devices we may not open (permissions) or that vanish mid-scan are skipped.
            if let Ok(d) = evdev::Device::open(&p) {
                if self.matches(&d) {
                    return Ok(Some((p, d)));
                }
            }
        }
        Ok(None)
    }

    fn matches(&self, d: &evdev::Device) -> bool {
        let id = d.input_id();
        self.selector
            .matches(id.vendor(), id.product(), d.name(), d.physical_path())
    }
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO)
    )
}

impl Opener for DeviceOpener {
    fn open(&mut self) -> Result<Option<(HidSource, String)>, DeviceError> {
        if self.selector.is_empty() {
            return Err(DeviceError::Config(DeviceConfigError(
                "no device selector (path, vid_pid, name or phys)".into(),
            )));
        }
        let Some((path, mut dev)) = self.find()? else {
            return Ok(None);
        };
        let desc = format!(
            "{} ({})",
            path.display(),
            dev.name().unwrap_or("unnamed device")
        );
        if self.grab {
            dev.grab().map_err(|e| DeviceError::Grab(desc.clone(), e))?;
        }
        let stream = dev
            .into_event_stream()
            .map_err(|e| DeviceError::Open(desc.clone(), e))?;
        Ok(Some((HidSource::Device(Box::new(stream)), desc)))
    }
}

/// Waits until the opener yields a device, publishing `absent`/`error` meanwhile. `None` when
/// shutting down.
pub async fn next_source<O: Opener>(
    opener: &mut O,
    what: &str,
    rescan: Duration,
    status: &watch::Sender<DeviceStatus>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(HidSource, String)> {
    loop {
        if *shutdown.borrow() {
            return None;
        }
        let st = match opener.open() {
            Ok(Some(found)) => {
                log::info!("{what}: using {}", found.1);
                status.send_replace(DeviceStatus::Ok(found.1.clone()));
                return Some(found);
            }
            Ok(None) => DeviceStatus::Absent(format!("{what} not found")),
            Err(e) => DeviceStatus::Error(e.to_string()),
        };
        if *status.borrow() != st {
            log::warn!("{what}: {st}");
            status.send_replace(st);
        }
        tokio::select! {
            _ = shutdown.changed() => return None,
            _ = tokio::time::sleep(rescan) => {}
        }
    }
}

/// The input directory for device scans, `/dev/input`.
pub fn default_input_dir() -> &'static Path {
    Path::new("/dev/input")
}

/// The HID scanner's read loop: find the device, read events through the [`HidPipeline`],
/// send codes to the engine as `EngineMsg::Code { source }`, drop partial codes after a gap or
/// an unplug, and look for the device again when it goes away. Returns on shutdown, or when
/// the engine is gone.
pub async fn run_hid_scanner<O: Opener>(
    mut opener: O,
    cfg: AssemblerConfig,
    rescan: Duration,
    source: &'static str,
    engine: tokio::sync::mpsc::Sender<crate::engine::EngineMsg>,
    status: watch::Sender<DeviceStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pipe = HidPipeline::new(cfg);
    loop {
        let Some((mut src, desc)) =
            next_source(&mut opener, source, rescan, &status, &mut shutdown).await
        else {
            return;
        };
        loop {
            let gap = pipe.gap();
            let waiting = pipe.pending() > 0;
            let out = tokio::select! {
                _ = shutdown.changed() => return,
                ev = src.next_event() => match ev {
                    Ok(ev) => pipe.feed(&ev),
                    Err(e) => {
                        if let Some(Assembled::Dropped { chars, .. }) = pipe.unplugged() {
                            log::warn!("{source}: {chars} characters of a code lost: device gone");
                        }
                        let st = DeviceStatus::Absent(format!("{desc}: {e}"));
                        log::warn!("{source}: {st}");
                        status.send_replace(st);
                        break;
                    }
                },
                _ = tokio::time::sleep(gap), if waiting => pipe.expire(SystemTime::now()),
            };
            match out {
                Some(Assembled::Code {
                    text,
                    chars,
                    duration_us,
                }) => {
                    log::info!("{source}: code of {chars} characters in {duration_us} µs");
                    let msg = crate::engine::EngineMsg::Code {
                        text,
                        source: source.to_string(),
                    };
                    if engine.send(msg).await.is_err() {
                        return;
                    }
                }
                Some(Assembled::Dropped { chars, reason }) => {
                    log::info!("{source}: {chars} characters dropped ({reason:?})");
                }
                None => {}
            }
        }
    }
}

/// The events a keyboard-wedge scanner programmed for `layout` sends for `text` followed by
/// the `terminator` key: MSC_SCAN + EV_KEY + SYN_REPORT per press and release, Shift/AltGr
/// around the keys that need them, key `i` pressed at `start_us + sum(interval_us(0..i))`.
/// `None` if `text` has a character the layout cannot type. For tests and benchmarks.
pub fn synthesize(
    layout: posd_core::hid::keymap::Layout,
    text: &str,
    start_us: u64,
    mut interval_us: impl FnMut(usize) -> u64,
    terminator: u16,
) -> Option<Vec<InputEvent>> {
    use posd_core::hid::keymap::code;
    let mut strokes = Vec::new();
    for c in text.chars() {
        strokes.extend(posd_core::hid::keymap::keys_for(layout, c)?);
    }
    strokes.push((
        terminator,
        posd_core::hid::keymap::Modifiers {
            num_lock: true,
            ..Default::default()
        },
    ));
    let mut out = Vec::with_capacity(strokes.len() * 8);
    let mut t = start_us;
    let key = |out: &mut Vec<InputEvent>, t: u64, k: u16, v: i32| {
        out.push(input_event(t, EV_MSC, 4, 0x70000 + i32::from(k)));
        out.push(input_event(t, EV_KEY, k, v));
        out.push(input_event(t, EV_SYN, 0, 0));
    };
    for (i, (k, mods)) in strokes.into_iter().enumerate() {
        if i > 0 {
            t += interval_us(i);
        }
        let m = if mods.shift {
            Some(code::LEFTSHIFT)
        } else if mods.altgr {
            Some(code::RIGHTALT)
        } else {
            None
        };
        // The modifier goes down shortly before the key and up shortly after it.
        let press = t + 100;
        if let Some(m) = m {
            key(&mut out, t, m, 1);
        }
        key(&mut out, press, k, 1);
        key(&mut out, press + 200, k, 0);
        if let Some(m) = m {
            key(&mut out, press + 300, m, 0);
        }
    }
    Some(out)
}
