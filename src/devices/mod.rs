//! Input and output devices around the sale: HID and serial scanners, the cashier's keypad,
//! the customer display and the console.
//!
//! The decisions live in the pure core — `posd_core::hid` (layouts; key events → codes with
//! burst/typing/gap rules), `posd_core::display` (what each display shows),
//! `posd_core::cashier` (the keypad state machine) — and these thin shells move bytes and
//! events ([`evdev_reader`], [`serial_scanner`], [`keypad`], [`display`]). Every device is optional:
//! each runs in its own task with its own [`DeviceStatus`] (`ok`, `absent`, `error` plus a
//! detail) that `posctl status` shows; a missing or failing device never stops the others.
//! Configuration: `[devices.hid_scanner]`, `[devices.serial_scanner]`, `[devices.keypad]`,
//! `[devices.customer_display]` (the `*Config` structs of `config::devices`).

pub mod display;
pub mod evdev_reader;
pub mod keypad;
pub mod serial_scanner;

use crate::config::devices::{
    CustomerDisplayConfig, DeviceConfigError, HidScannerConfig, KeypadConfig, SerialScannerConfig,
};
use crate::engine::EngineMsg;
use posd_core::display::UiEvent;
use posd_core::money::Currency;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

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
    Config(DeviceConfigError),
    #[error("cannot open {0}: {1}")]
    Open(String, std::io::Error),
    #[error("cannot grab {0} (another program holds it?): {1}")]
    Grab(String, std::io::Error),
    #[error("bad recording: {0}")]
    Recording(String),
    #[error("serial port {0}: {1}")]
    Serial(String, String),
}

posd_core::wraps_error!(DeviceError { Config(DeviceConfigError) });

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
        let selector = match cfg
            .validate()
            .and_then(|()| cfg.selector())
            .map_err(DeviceError::from)
        {
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
        let selector = match cfg
            .validate()
            .and_then(|()| cfg.selector())
            .map_err(DeviceError::from)
        {
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
