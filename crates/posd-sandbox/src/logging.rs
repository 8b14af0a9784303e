//! A plain stderr logger for the sandbox's processes (the host, the demo).

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct Stderr(LevelFilter);

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        // Our own records at the chosen level; third-party ones (the embedded broker) at warn.
        let own = m.target().starts_with("posd");
        m.level()
            <= if own {
                self.0
            } else {
                self.0.min(LevelFilter::Warn)
            }
    }
    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) && !r.target().starts_with("rumqttd") {
            let _ = writeln!(std::io::stderr().lock(), "{:<5} {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

/// Installs the logger once (`error` ... `trace`; anything else means `info`).
pub fn init(level: &str) {
    let filter = level.parse().unwrap_or(LevelFilter::Info);
    if log::set_boxed_logger(Box::new(Stderr(filter))).is_ok() {
        log::set_max_level(filter);
    }
}
