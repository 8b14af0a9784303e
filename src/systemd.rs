//! systemd integration: READY/STOPPING notifications and a watchdog that only pets systemd
//! while the main loop, the journal writer and the MQTT task have all checked in recently.
//!
//! Off systemd (no NOTIFY_SOCKET) every call is a no-op.

use sd_notify::NotifyState;
use std::time::Duration;

pub fn ready() {
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
}

pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

pub fn status(text: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Status(text)]);
}

pub fn watchdog() {
    let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
}

/// The watchdog period systemd asked for, if any. As libsystemd's `sd_watchdog_enabled`:
/// `WATCHDOG_USEC` set, and `WATCHDOG_PID` either unset or this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Whether every heartbeat (unix ms) is within `max_age` of `now`.
pub fn all_fresh(now_ms: u64, beats: &[(&str, u64)], max_age: Duration) -> Result<(), String> {
    let max = max_age.as_millis() as u64;
    for (name, at) in beats {
        if now_ms.saturating_sub(*at) > max {
            return Err(format!(
                "{name} last checked in {} ms ago",
                now_ms.saturating_sub(*at)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_heartbeat_withholds_the_watchdog() {
        let d = Duration::from_secs(10);
        assert!(all_fresh(20_000, &[("a", 15_000), ("b", 19_000)], d).is_ok());
        let e = all_fresh(30_000, &[("a", 25_000), ("engine", 10_000)], d).unwrap_err();
        assert!(e.contains("engine"));
    }
}
