//! Displays: the serial customer display (VFD) writer and the console's rendering.
//!
//! The VFD thread follows the UI events and writes [`vfd::encode`] frames, reopening the port
//! after errors and redrawing what should be shown. The console side is line-oriented text for
//! a tty (the demo's till) and a merchant-presented QR drawn with half-block characters, two
//! QR rows per text line, so a phone can scan it off the screen.

use super::{DeviceError, DeviceStatus};
use crate::config::devices::CustomerDisplayConfig;
use posd_core::display::vfd::{self, VfdFrame};
use posd_core::display::UiEvent;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

fn open(cfg: &CustomerDisplayConfig) -> Result<serialport::TTYPort, DeviceError> {
    super::serial_scanner::open_port(
        &cfg.port,
        cfg.baud,
        cfg.data_bits,
        cfg.parity,
        cfg.stop_bits,
        Duration::from_millis(500),
    )
}

/// How long a result stays on the customer display before the idle frame returns.
pub const RESULT_HOLD: Duration = Duration::from_secs(10);

/// The customer display thread: returns on shutdown or when the UI channel closes.
pub fn run_vfd(
    cfg: CustomerDisplayConfig,
    mut ui: broadcast::Receiver<UiEvent>,
    status: watch::Sender<DeviceStatus>,
    shutdown: watch::Receiver<bool>,
) {
    if cfg.port.is_empty() {
        status.send_replace(DeviceStatus::Error(
            "customer_display.port is required".into(),
        ));
        return;
    }
    let idle = VfdFrame::new(cfg.idle_line1.clone(), cfg.idle_line2.clone());
    let mut want = idle.clone();
    let mut shown: Option<VfdFrame> = None;
    let mut port: Option<serialport::TTYPort> = None;
    let mut next_open = Instant::now();
    let mut back_to_idle: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        loop {
            match ui.try_recv() {
                // Printer trouble is for the cashier, not the customer.
                Ok(ev) if !ev.for_customer() => {}
                Ok(ev) => {
                    want = vfd::frame_for_in(&ev, crate::lang::current());
                    back_to_idle =
                        matches!(ev, UiEvent::Result { .. }).then(|| Instant::now() + RESULT_HOLD);
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Closed) => return,
            }
        }
        if back_to_idle.is_some_and(|t| Instant::now() >= t) {
            back_to_idle = None;
            want = idle.clone();
        }
        if port.is_none() && Instant::now() >= next_open {
            next_open = Instant::now() + Duration::from_millis(cfg.reconnect_ms.max(10));
            match open(&cfg) {
                Ok(p) => {
                    let _ = status.send_replace(DeviceStatus::Ok(cfg.port.clone()));
                    port = Some(p);
                    shown = None;
                }
                Err(e) => {
                    let st = if std::path::Path::new(&cfg.port).exists() {
                        DeviceStatus::Error(e.to_string())
                    } else {
                        DeviceStatus::Absent(format!("{} not present", cfg.port))
                    };
                    if *status.borrow() != st {
                        log::warn!("customer_display: {st}");
                        status.send_replace(st);
                    }
                }
            }
        }
        if let Some(p) = port.as_mut() {
            if shown.as_ref() != Some(&want) {
                let mut bytes = if shown.is_none() {
                    vfd::INIT.to_vec()
                } else {
                    Vec::new()
                };
                bytes.extend(vfd::encode(&want));
                match p.write_all(&bytes).and_then(|()| p.flush()) {
                    Ok(()) => shown = Some(want.clone()),
                    Err(e) => {
                        let st = DeviceStatus::Absent(format!("{}: {e}", cfg.port));
                        log::warn!("customer_display: {st}");
                        status.send_replace(st);
                        port = None;
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
