//! The device sections of `posd.toml` (`[devices.*]`): what each device is, how to find it and
//! the checks that need no device. The device shells (`devices`, `camera`, `printer`) read these.

use posd_core::cashier::Key;
use posd_core::hid::assembler::{AssemblerConfig, Terminator};
use posd_core::hid::keymap::Layout;
use posd_core::hid::Selector;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// A device section that cannot work as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeviceConfigError(pub String);

fn default_input_dir() -> PathBuf {
    PathBuf::from("/dev/input")
}

/// Parses `"05e0:1200"` (hex vendor:product).
pub fn parse_vid_pid(s: &str) -> Result<(u16, u16), DeviceConfigError> {
    let bad = || {
        DeviceConfigError(format!(
            "vid_pid {s:?}: expected hex VID:PID like 05e0:1200"
        ))
    };
    let (v, p) = s.trim().split_once(':').ok_or_else(bad)?;
    Ok((
        u16::from_str_radix(v, 16).map_err(|_| bad())?,
        u16::from_str_radix(p, 16).map_err(|_| bad())?,
    ))
}

/// `[devices.hid_scanner]`: a keyboard-wedge scanner read through evdev.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HidScannerConfig {
    /// `/dev/input/by-id/usb-...-event-kbd`.
    pub path: Option<PathBuf>,
    /// `"05e0:1200"`.
    pub vid_pid: Option<String>,
    /// Substring of the device name.
    pub name: Option<String>,
    /// Substring of the physical path.
    pub phys: Option<String>,
    /// Take the device for posd alone so keystrokes never reach a console.
    pub grab: bool,
    /// How often to look for the device while it is absent.
    pub rescan_ms: u64,
    /// Where event nodes are scanned for (tests point this elsewhere).
    pub input_dir: PathBuf,
    pub layout: Layout,
    pub terminators: Vec<Terminator>,
    pub burst_max_interkey_ms: u32,
    pub gap_timeout_ms: u32,
    pub accept_typed: bool,
    pub min_len: usize,
    pub max_len: usize,
    pub num_lock: bool,
    pub caps_lock: bool,
}

impl Default for HidScannerConfig {
    fn default() -> Self {
        let a = AssemblerConfig::default();
        HidScannerConfig {
            path: None,
            vid_pid: None,
            name: None,
            phys: None,
            grab: true,
            rescan_ms: 1000,
            input_dir: default_input_dir(),
            layout: a.layout,
            terminators: a.terminators,
            burst_max_interkey_ms: a.burst_max_interkey_ms,
            gap_timeout_ms: a.gap_timeout_ms,
            accept_typed: a.accept_typed,
            min_len: a.min_len,
            max_len: a.max_len,
            num_lock: a.num_lock,
            caps_lock: a.caps_lock,
        }
    }
}

impl HidScannerConfig {
    pub fn selector(&self) -> Result<Selector, DeviceConfigError> {
        selector(&self.path, &self.vid_pid, &self.name, &self.phys)
    }

    pub fn assembler(&self) -> AssemblerConfig {
        AssemblerConfig {
            layout: self.layout,
            terminators: self.terminators.clone(),
            burst_max_interkey_ms: self.burst_max_interkey_ms,
            gap_timeout_ms: self.gap_timeout_ms,
            accept_typed: self.accept_typed,
            min_len: self.min_len,
            max_len: self.max_len,
            num_lock: self.num_lock,
            caps_lock: self.caps_lock,
        }
    }

    /// Checks what can be checked without the device.
    pub fn validate(&self) -> Result<(), DeviceConfigError> {
        self.selector()?;
        if self.terminators.is_empty() {
            return Err(DeviceConfigError("hid_scanner.terminators is empty".into()));
        }
        if self.max_len == 0 || self.min_len > self.max_len {
            return Err(DeviceConfigError("hid_scanner: min_len > max_len".into()));
        }
        Ok(())
    }
}

fn selector(
    path: &Option<PathBuf>,
    vid_pid: &Option<String>,
    name: &Option<String>,
    phys: &Option<String>,
) -> Result<Selector, DeviceConfigError> {
    let s = Selector {
        path: path.clone(),
        vid_pid: vid_pid.as_deref().map(parse_vid_pid).transpose()?,
        name: name.clone(),
        phys: phys.clone(),
    };
    if s.is_empty() {
        return Err(DeviceConfigError(
            "set one of path, vid_pid, name or phys".into(),
        ));
    }
    Ok(s)
}

/// `[devices.keypad]`: the cashier's numeric keypad (evdev) and its key bindings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeypadConfig {
    pub path: Option<PathBuf>,
    pub vid_pid: Option<String>,
    pub name: Option<String>,
    pub phys: Option<String>,
    pub grab: bool,
    pub rescan_ms: u64,
    pub input_dir: PathBuf,
    /// How long a result stays on screen.
    pub result_ms: u64,
    pub pin_min_len: usize,
    pub pin_max_len: usize,
    /// Largest amount keyable (minor units); also capped by `[limits] max_sale_amount`.
    pub max_amount: Option<i64>,
    pub bindings: KeyBindings,
}

impl Default for KeypadConfig {
    fn default() -> Self {
        KeypadConfig {
            path: None,
            vid_pid: None,
            name: None,
            phys: None,
            grab: true,
            rescan_ms: 1000,
            input_dir: default_input_dir(),
            result_ms: 5000,
            pin_min_len: 4,
            pin_max_len: 8,
            max_amount: None,
            bindings: KeyBindings::default(),
        }
    }
}

impl KeypadConfig {
    pub fn selector(&self) -> Result<Selector, DeviceConfigError> {
        selector(&self.path, &self.vid_pid, &self.name, &self.phys)
    }

    pub fn validate(&self) -> Result<(), DeviceConfigError> {
        self.selector()?;
        self.bindings.resolve()?;
        if self.pin_min_len == 0 || self.pin_min_len > self.pin_max_len {
            return Err(DeviceConfigError(
                "keypad: pin_min_len > pin_max_len".into(),
            ));
        }
        Ok(())
    }
}

/// `[devices.customer_display]`: a 2×20 serial VFD facing the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomerDisplayConfig {
    pub port: String,
    pub baud: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    pub reconnect_ms: u64,
    /// Shown when nothing is happening.
    pub idle_line1: String,
    pub idle_line2: String,
}

impl Default for CustomerDisplayConfig {
    fn default() -> Self {
        CustomerDisplayConfig {
            port: String::new(),
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            reconnect_ms: 1000,
            idle_line1: "Welcome".into(),
            idle_line2: String::new(),
        }
    }
}

/// How a code ends on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suffix {
    Cr,
    Lf,
    Crlf,
    /// No suffix: a code ends after `idle_timeout_ms` without bytes.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Odd,
    Even,
}

/// `[devices.serial_scanner]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SerialScannerConfig {
    /// `/dev/ttyACM0`, or better a stable `/dev/serial/by-id/...` link.
    pub port: String,
    pub baud: u32,
    /// 5, 6, 7 or 8.
    pub data_bits: u8,
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
    pub suffix: Suffix,
    /// Quiet time that ends a code (suffix `none`) or discards a partial one (other suffixes).
    pub idle_timeout_ms: u64,
    /// Removed from the start of every code when present (an AIM identifier such as `]Q1`).
    pub strip_prefix: Option<String>,
    pub max_len: usize,
    pub reconnect_ms: u64,
}

impl Default for SerialScannerConfig {
    fn default() -> Self {
        SerialScannerConfig {
            port: String::new(),
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            suffix: Suffix::Cr,
            idle_timeout_ms: 100,
            strip_prefix: None,
            max_len: 4096,
            reconnect_ms: 1000,
        }
    }
}

impl SerialScannerConfig {
    pub fn validate(&self) -> Result<(), DeviceConfigError> {
        let bad = |m: &str| Err(DeviceConfigError(format!("serial_scanner: {m}")));
        if self.port.is_empty() {
            return bad("port is required");
        }
        if !(5..=8).contains(&self.data_bits) {
            return bad("data_bits must be 5-8");
        }
        if !(1..=2).contains(&self.stop_bits) {
            return bad("stop_bits must be 1 or 2");
        }
        if self.baud == 0 || self.max_len == 0 || self.idle_timeout_ms == 0 {
            return bad("baud, max_len and idle_timeout_ms must be positive");
        }
        Ok(())
    }
}

/// Which physical keys (evdev names such as `KEY_KP7`) mean what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyBindings {
    /// Ten lists: the keys for 0, 1, ..., 9.
    pub digits: Vec<Vec<String>>,
    pub double_zero: Vec<String>,
    pub point: Vec<String>,
    pub backspace: Vec<String>,
    pub clear: Vec<String>,
    pub enter: Vec<String>,
    pub cancel: Vec<String>,
    pub menu: Vec<String>,
    pub method_scan: Vec<String>,
    pub method_qr: Vec<String>,
    pub method_card: Vec<String>,
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Default for KeyBindings {
    fn default() -> Self {
        KeyBindings {
            digits: (0..10)
                .map(|d| vec![format!("KEY_KP{d}"), format!("KEY_{d}")])
                .collect(),
            double_zero: vec![],
            point: names(&["KEY_KPDOT", "KEY_DOT", "KEY_KPCOMMA"]),
            backspace: names(&["KEY_BACKSPACE", "KEY_KPSLASH"]),
            clear: names(&["KEY_KPASTERISK", "KEY_DELETE"]),
            enter: names(&["KEY_KPENTER", "KEY_ENTER"]),
            cancel: names(&["KEY_ESC", "KEY_KPMINUS"]),
            menu: names(&["KEY_KPPLUS", "KEY_F1"]),
            method_scan: names(&["KEY_F2"]),
            method_qr: names(&["KEY_F3"]),
            method_card: names(&["KEY_F4"]),
        }
    }
}

impl KeyBindings {
    /// Key code → meaning; refuses unknown names and a key bound twice.
    pub fn resolve(&self) -> Result<HashMap<u16, Key>, DeviceConfigError> {
        if self.digits.len() != 10 {
            return Err(DeviceConfigError(
                "keypad.bindings.digits needs ten lists (0-9)".into(),
            ));
        }
        let mut map = HashMap::new();
        let mut bind = |list: &[String], key: Key| -> Result<(), DeviceConfigError> {
            for name in list {
                let code = posd_core::hid::keynames::key_code(name).ok_or_else(|| {
                    DeviceConfigError(format!("keypad.bindings: unknown key {name:?}"))
                })?;
                if let Some(prev) = map.insert(code, key) {
                    if prev != key {
                        return Err(DeviceConfigError(format!(
                            "keypad.bindings: {name} is bound twice"
                        )));
                    }
                }
            }
            Ok(())
        };
        for (d, list) in (0u8..).zip(&self.digits) {
            bind(list, Key::Digit(d))?;
        }
        bind(&self.double_zero, Key::DoubleZero)?;
        bind(&self.point, Key::Point)?;
        bind(&self.backspace, Key::Backspace)?;
        bind(&self.clear, Key::Clear)?;
        bind(&self.enter, Key::Enter)?;
        bind(&self.cancel, Key::Cancel)?;
        bind(&self.menu, Key::Menu)?;
        bind(&self.method_scan, Key::MethodScan)?;
        bind(&self.method_qr, Key::MethodQr)?;
        bind(&self.method_card, Key::MethodCard)?;
        Ok(map)
    }
}

/// `[camera]` in `posd.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// V4L2 device: an index (`"0"`), `/dev/videoN`, or a stable symlink such as
    /// `/dev/v4l/by-id/usb-...-video-index0`.
    pub device: String,
    /// Requested capture size; the camera's closest mode is used.
    pub width: u32,
    pub height: u32,
    /// Requested frame rate.
    pub fps: u32,
    /// A code not seen for this long has left the view; showing it again is a new scan.
    pub hold_off_ms: u64,
    /// Decode time budget per frame: no further pipeline stage starts once it is spent.
    pub frame_budget_ms: u64,
    /// Wait between attempts to (re)open a missing, busy or failed camera.
    pub retry_ms: u64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            device: "0".into(),
            width: 640,
            height: 480,
            fps: 30,
            hold_off_ms: 1500,
            frame_budget_ms: 25,
            retry_ms: 2000,
        }
    }
}

impl CameraConfig {
    pub fn validate(&self) -> Result<(), DeviceConfigError> {
        if self.device.trim().is_empty() {
            return Err(DeviceConfigError("device is empty".into()));
        }
        if !(16..=8192).contains(&self.width) || !(16..=8192).contains(&self.height) {
            return Err(DeviceConfigError(format!(
                "resolution {}x{} out of range 16..=8192",
                self.width, self.height
            )));
        }
        if !(1..=240).contains(&self.fps) {
            return Err(DeviceConfigError(format!(
                "fps {} out of range 1..=240",
                self.fps
            )));
        }
        if self.frame_budget_ms == 0 || self.retry_ms == 0 {
            return Err(DeviceConfigError(
                "frame_budget_ms and retry_ms must be positive".into(),
            ));
        }
        Ok(())
    }

    pub fn hold_off(&self) -> Duration {
        Duration::from_millis(self.hold_off_ms)
    }

    pub fn frame_budget(&self) -> Duration {
        Duration::from_millis(self.frame_budget_ms)
    }

    pub fn retry(&self) -> Duration {
        Duration::from_millis(self.retry_ms)
    }
}

/// Where the printer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transport {
    /// Raw TCP, usually port 9100.
    Tcp {
        host: String,
        #[serde(default = "default_port")]
        port: u16,
    },
    /// A file or device node (`/dev/usb/lp0`): write only, no status.
    File { path: PathBuf },
    /// A serial port (`/dev/ttyS0`, `/dev/ttyUSB0`).
    Serial {
        path: String,
        #[serde(default = "default_baud")]
        baud: u32,
    },
    /// A USB printer class device, claimed through usbfs.
    Usb { vendor_id: u16, product_id: u16 },
}

fn default_port() -> u16 {
    9100
}

fn default_baud() -> u32 {
    115_200
}

/// Whether to ask the printer for its status around each job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusMode {
    /// Ask; a printer that never answers is printed to without checks.
    #[default]
    Auto,
    /// Ask; a printer that does not answer is [`Fault::Offline`].
    Required,
    /// Never ask (printers that print status queries as garbage).
    Off,
}

/// `[printer]` in posd.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    pub transport: Transport,
    #[serde(default)]
    pub status: StatusMode,
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// How long to wait for the three status bytes.
    #[serde(default = "default_status_ms")]
    pub status_timeout_ms: u64,
    /// How long one 4 KiB write may stall before the job is abandoned.
    #[serde(default = "default_write_ms")]
    pub write_timeout_ms: u64,
    /// How often the printer's status is asked while it is faulted (paper out, cover open,
    /// offline, not answering): 200..=2000 ms, so printing resumes within 2 s of the fix.
    #[serde(default = "default_fault_poll_ms")]
    pub fault_poll_ms: u64,
    /// How often the printer's status is asked while all is well and nothing prints, so that
    /// a printer that stops answering is not shown as "ok" (500..=60000 ms).
    #[serde(default = "default_health_ms")]
    pub health_interval_ms: u64,
    /// A printer that confirms jobs (`GS ( H`, see `[receipt] printer_model`) and says it is
    /// well is given this long to confirm one before posd stops waiting.
    #[serde(default = "default_confirm_ms")]
    pub confirm_timeout_ms: u64,
    /// A receipt, reprint, Z report or pay slip the printer could not take within this many
    /// hours is given up (1..=720): its customer has long gone, and a printer dead for weeks
    /// must neither hold the journal back from retention nor print weeks of stale receipts when
    /// it comes back. `posctl reprint <txn>` still prints it while the sale is kept.
    #[serde(default = "default_job_max_age_h")]
    pub job_max_age_h: u64,
    /// A drawer pulse not sent within this many seconds of its sale is given up (10..=86400): a
    /// drawer that springs open long after its sale, with nobody at the till, is a risk.
    #[serde(default = "default_drawer_max_age_s")]
    pub drawer_max_age_s: u64,
}

fn default_connect_ms() -> u64 {
    3_000
}
fn default_status_ms() -> u64 {
    2_000
}
fn default_write_ms() -> u64 {
    10_000
}
fn default_fault_poll_ms() -> u64 {
    1_000
}
fn default_health_ms() -> u64 {
    1_000
}
fn default_confirm_ms() -> u64 {
    15_000
}
fn default_job_max_age_h() -> u64 {
    24
}
fn default_drawer_max_age_s() -> u64 {
    300
}

impl PrinterConfig {
    pub fn new(transport: Transport) -> Self {
        PrinterConfig {
            transport,
            status: StatusMode::Auto,
            connect_timeout_ms: default_connect_ms(),
            status_timeout_ms: default_status_ms(),
            write_timeout_ms: default_write_ms(),
            fault_poll_ms: default_fault_poll_ms(),
            health_interval_ms: default_health_ms(),
            confirm_timeout_ms: default_confirm_ms(),
            job_max_age_h: default_job_max_age_h(),
            drawer_max_age_s: default_drawer_max_age_s(),
        }
    }

    /// Checks what can be checked without the printer.
    pub fn validate(&self) -> Result<(), DeviceConfigError> {
        for (name, v, lo, hi, why) in [
            (
                "fault_poll_ms",
                self.fault_poll_ms,
                200,
                2_000,
                " (the status is asked every 1-2 s while the printer is faulted)",
            ),
            (
                "health_interval_ms",
                self.health_interval_ms,
                500,
                60_000,
                "",
            ),
            (
                "job_max_age_h",
                self.job_max_age_h,
                1,
                720,
                " (hours a receipt may wait for the printer before it is given up)",
            ),
            (
                "drawer_max_age_s",
                self.drawer_max_age_s,
                10,
                86_400,
                " (seconds a drawer pulse may wait for the printer before it is given up)",
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(DeviceConfigError(format!(
                    "{name} = {v}: must be {lo}..={hi}{why}"
                )));
            }
        }
        for (name, v) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("status_timeout_ms", self.status_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("confirm_timeout_ms", self.confirm_timeout_ms),
        ] {
            if v == 0 {
                return Err(DeviceConfigError(format!("{name} must be positive")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_defaults_and_unknown_fields() {
        let c: CameraConfig = serde_json::from_str(r#"{"device": "/dev/video2"}"#).unwrap();
        assert_eq!(c.device, "/dev/video2");
        assert_eq!(c.width, 640);
        c.validate().unwrap();
        assert!(serde_json::from_str::<CameraConfig>(r#"{"devcie": "0"}"#).is_err());
        let bad = CameraConfig {
            fps: 0,
            ..CameraConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
