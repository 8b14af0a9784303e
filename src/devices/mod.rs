//! Input and output devices around the sale: HID and serial scanners, the cashier's keypad,
//! the customer display and the console.
//!
//! The decisions live in pure cores — [`keymap`] (layouts), [`hid_assembler`] (key events →
//! codes with burst/typing/gap rules), [`vfd`] (display frames → bytes),
//! [`crate::core::cashier`] (the keypad state machine) — and thin shells move bytes and events
//! ([`evdev_reader`], [`serial_scanner`], [`keypad`], [`display`]). Every device is optional:
//! each runs in its own task with its own [`DeviceStatus`] (`ok`, `absent`, `error` plus a
//! detail) that `posctl status` shows; a missing or failing device never stops the others.
//! Configuration: `[devices.hid_scanner]`, `[devices.serial_scanner]`, `[devices.keypad]`,
//! `[devices.customer_display]` (see the `*Config` structs).

pub mod display;
pub mod evdev_reader;
pub mod hid_assembler;
pub mod keymap;
pub mod keypad;
pub mod serial_scanner;
pub mod vfd;

use crate::core::money::Currency;
use crate::engine::{EngineMsg, UiEvent};
use hid_assembler::{AssemblerConfig, Terminator};
use keymap::Layout;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

pub use keypad::KeyBindings;
pub use serial_scanner::{Parity, SerialScannerConfig, Suffix};

/// A device's state as `posctl status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    Starting,
    /// In use; the detail names the device.
    Ok(String),
    /// Configured but not there (unplugged, not found yet).
    Absent(String),
    /// There but unusable (permissions, grab refused, bad configuration).
    Error(String),
}

impl DeviceStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, DeviceStatus::Ok(_))
    }

    /// `ok`, `absent`, `error`, `starting`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceStatus::Starting => "starting",
            DeviceStatus::Ok(_) => "ok",
            DeviceStatus::Absent(_) => "absent",
            DeviceStatus::Error(_) => "error",
        }
    }

    /// `{"state": "ok", "detail": "..."}` for the status document.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            DeviceStatus::Starting => serde_json::json!({"state": "starting"}),
            DeviceStatus::Ok(d) | DeviceStatus::Absent(d) | DeviceStatus::Error(d) => {
                serde_json::json!({"state": self.kind(), "detail": d})
            }
        }
    }
}

impl std::fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceStatus::Starting => write!(f, "starting"),
            DeviceStatus::Ok(d) | DeviceStatus::Absent(d) | DeviceStatus::Error(d) => {
                write!(f, "{}: {d}", self.kind())
            }
        }
    }
}

/// Why a device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid device configuration: {0}")]
    Config(String),
    #[error("cannot open {0}: {1}")]
    Open(String, #[source] std::io::Error),
    #[error("cannot grab {0} (another program holds it?): {1}")]
    Grab(String, #[source] std::io::Error),
    #[error("bad recording: {0}")]
    Recording(String),
    #[error("serial port {0}: {1}")]
    Serial(String, String),
    #[error("QR code: {0}")]
    Qr(String),
}

fn default_input_dir() -> PathBuf {
    PathBuf::from("/dev/input")
}

/// Parses `"05e0:1200"` (hex vendor:product).
pub fn parse_vid_pid(s: &str) -> Result<(u16, u16), DeviceError> {
    let bad = || {
        DeviceError::Config(format!(
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
    pub fn selector(&self) -> Result<evdev_reader::Selector, DeviceError> {
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
    pub fn validate(&self) -> Result<(), DeviceError> {
        self.selector()?;
        if self.terminators.is_empty() {
            return Err(DeviceError::Config(
                "hid_scanner.terminators is empty".into(),
            ));
        }
        if self.max_len == 0 || self.min_len > self.max_len {
            return Err(DeviceError::Config("hid_scanner: min_len > max_len".into()));
        }
        Ok(())
    }
}

fn selector(
    path: &Option<PathBuf>,
    vid_pid: &Option<String>,
    name: &Option<String>,
    phys: &Option<String>,
) -> Result<evdev_reader::Selector, DeviceError> {
    let s = evdev_reader::Selector {
        path: path.clone(),
        vid_pid: vid_pid.as_deref().map(parse_vid_pid).transpose()?,
        name: name.clone(),
        phys: phys.clone(),
    };
    if s.is_empty() {
        return Err(DeviceError::Config(
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
    pub fn selector(&self) -> Result<evdev_reader::Selector, DeviceError> {
        selector(&self.path, &self.vid_pid, &self.name, &self.phys)
    }

    pub fn validate(&self) -> Result<(), DeviceError> {
        self.selector()?;
        self.bindings.resolve()?;
        if self.pin_min_len == 0 || self.pin_min_len > self.pin_max_len {
            return Err(DeviceError::Config(
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

/// The four device sections, as the lead adds them to `DevicesConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DevicesSection {
    pub hid_scanner: Option<HidScannerConfig>,
    pub serial_scanner: Option<SerialScannerConfig>,
    pub keypad: Option<KeypadConfig>,
    pub customer_display: Option<CustomerDisplayConfig>,
}

/// A status channel for one device, starting at `starting`.
pub fn status_channel() -> (watch::Sender<DeviceStatus>, watch::Receiver<DeviceStatus>) {
    watch::channel(DeviceStatus::Starting)
}

/// The HID scanner: codes go to the sale in progress as `EngineMsg::Code`.
pub fn spawn_hid_scanner(
    cfg: HidScannerConfig,
    engine: mpsc::Sender<EngineMsg>,
    status: watch::Sender<DeviceStatus>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let selector = match cfg.validate().and_then(|()| cfg.selector()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("hid_scanner: {e}");
                status.send_replace(DeviceStatus::Error(e.to_string()));
                return;
            }
        };
        let opener = evdev_reader::DeviceOpener {
            selector,
            input_dir: cfg.input_dir.clone(),
            grab: cfg.grab,
        };
        evdev_reader::run_hid_scanner(
            opener,
            cfg.assembler(),
            Duration::from_millis(cfg.rescan_ms.max(10)),
            "hid_scanner",
            engine,
            status,
            shutdown,
        )
        .await
    })
}

/// The serial scanner, on its own thread (blocking serial reads with an idle timeout).
pub fn spawn_serial_scanner(
    cfg: SerialScannerConfig,
    engine: mpsc::Sender<EngineMsg>,
    status: watch::Sender<DeviceStatus>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        serial_scanner::run(cfg, "serial_scanner", engine, status, shutdown)
    })
}

/// The keypad and the cashier state machine. Prompts and results are published on `ui` as
/// `UiEvent::Notice { text: "line1\nline2" }` for the console and the customer display.
// Wiring: each argument is one thing the daemon hands the keypad task.
#[allow(clippy::too_many_arguments)]
pub fn spawn_keypad(
    cfg: KeypadConfig,
    currency: Currency,
    max_sale_amount: i64,
    engine: mpsc::Sender<EngineMsg>,
    ui: broadcast::Sender<UiEvent>,
    printer: Option<crate::printq::PrintHandle>,
    status: watch::Sender<DeviceStatus>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let selector = match cfg.validate().and_then(|()| cfg.selector()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("keypad: {e}");
                status.send_replace(DeviceStatus::Error(e.to_string()));
                return;
            }
        };
        let opener = evdev_reader::DeviceOpener {
            selector,
            input_dir: cfg.input_dir.clone(),
            grab: cfg.grab,
        };
        keypad::run(
            opener,
            cfg,
            currency,
            max_sale_amount,
            engine,
            ui,
            printer,
            status,
            shutdown,
        )
        .await
    })
}

/// The customer display: follows the UI events.
pub fn spawn_customer_display(
    cfg: CustomerDisplayConfig,
    ui: broadcast::Receiver<UiEvent>,
    status: watch::Sender<DeviceStatus>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || display::run_vfd(cfg, ui, status, shutdown))
}
