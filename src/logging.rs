//! Logging: journald with structured fields (TXN_ID, SEQ, ...) when journald is there, plain
//! stderr otherwise (tests, the demo, a shell).
//!
//! systemd-journal-logger turns `log` key-values into journal fields; the stderr logger prints
//! them as `key=value` after the message so nothing is lost off systemd.

use log::{kv, Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct StderrLog {
    level: LevelFilter,
}

struct KvLine(String);

impl<'kvs> kv::VisitSource<'kvs> for KvLine {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        self.0.push_str(&format!(" {key}={value}"));
        Ok(())
    }
}

impl Log for StderrLog {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // Keep third-party chatter at warn unless asked for more; the embedded demo broker
        // (rumqttd) reports every span as an error through tracing's log bridge: drop it.
        let ours = r.target().starts_with("posd");
        if !ours
            && self.level < LevelFilter::Trace
            && (r.level() > Level::Warn
                || r.target().starts_with("rumqttd")
                || r.target().starts_with("tracing"))
        {
            return;
        }
        let mut kvs = KvLine(String::new());
        let _ = r.key_values().visit(&mut kvs);
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e, "{:<5} {}{}", r.level(), r.args(), kvs.0);
    }
    fn flush(&self) {}
}

/// Parses a level name; unknown names mean `info`.
pub fn level_filter(level: &str) -> LevelFilter {
    level.parse().unwrap_or(LevelFilter::Info)
}

/// Installs the logger once; later calls only change the level.
pub fn init(level: &str) {
    let filter = level_filter(level);
    if systemd_journal_logger::connected_to_journal() {
        if let Ok(j) = systemd_journal_logger::JournalLog::new() {
            if j.install().is_ok() {
                log::set_max_level(filter);
                return;
            }
        }
    }
    if log::set_boxed_logger(Box::new(StderrLog { level: filter })).is_ok() {
        log::set_max_level(filter);
    }
}
