//! CI's short soak (issue 14): three simulated days of the shop profile, a hundred sales each,
//! every fault on (paper out, cover open, a broker outage, a silent drop, a reset, a signed fleet
//! push, a lossy link), through `posd-sandbox soak` with the real posd, mosquitto and sandbox
//! host. It fails on a lost or doubled money effect (the host's audit: exit 3) and on a day whose
//! queue does not empty after its close (exit 4). About two minutes on two cores. The link's
//! latency is 20–80 ms here instead of the field's 150–600 ms so the run fits CI; docs/soak.md
//! has the full-latency command.

mod common;

use serde_json::Value;
use std::process::Command;

#[test]
fn three_simulated_days_with_faults_lose_no_money_and_drain_every_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(common::sandbox_bin())
        .args([
            "soak",
            "--days",
            "3",
            "--sales-per-day",
            "100",
            "--profile",
            "shop",
            "--faults",
            "on",
            "--latency",
            "20..80",
            "--seed",
            "14",
            "--json",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run posd-sandbox soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.path().join("posd.log")).unwrap_or_default();
    let tail: String = log
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "soak failed ({}):\n{stdout}\n{stderr}\nposd.log (end):\n{tail}",
        out.status
    );
    let rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let days: Vec<&Value> = rows.iter().filter(|r| r.get("day").is_some()).collect();
    assert_eq!(days.len(), 3, "{stdout}");
    for d in &days {
        assert_eq!(d["sales"], 100, "{d}");
        // Most sales are approved: offline P1 codes (40 % of them) carry the simulated time, so
        // this also shows the daemon's clock really moved to the simulated day.
        assert!(d["approved"].as_u64().unwrap_or(0) >= 80, "{d}");
        assert!(d["drain_ms"].is_number(), "day did not drain: {d}");
        // The faults really fired, and the daemon came back from the reset and the outage.
        let faults = d["faults"].as_array().expect("faults").len();
        assert_eq!(faults, 9, "{d}");
        assert!(d["reconnects"].as_u64().unwrap_or(0) >= 2, "{d}");
        assert!(
            d["push_applied_ms"].is_number(),
            "fleet push not applied: {d}"
        );
        assert!(d["rss_kib"].as_u64().unwrap_or(0) > 0, "{d}");
    }
    let summary = rows.last().expect("summary");
    assert_eq!(summary["summary"], true);
    assert_eq!(summary["ok"], true, "{summary}");
    assert!(
        summary["link"]["resets"].as_u64().unwrap_or(0) >= 3,
        "{summary}"
    );
    assert!(
        summary["link"]["drops"].as_u64().unwrap_or(0) >= 3,
        "{summary}"
    );
    // Three daily closes, each reconciled by the host.
    assert!(summary["charges"].as_u64().unwrap_or(0) > 100, "{summary}");
}

/// Processes whose command line mentions `needle` (the soak's directory: its `posd --config
/// DIR/posd.toml` and `mosquitto -c DIR/mosquitto.conf`).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && !cmd.contains("soak") {
            found.push(cmd);
        }
    }
    found
}

#[test]
fn a_soak_stopped_by_sigterm_stops_the_daemon_and_the_broker_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let needle = dir.path().display().to_string();
    let soak = Command::new(common::sandbox_bin())
        .args([
            "soak", "--days", "3", "--faults", "off", "--seed", "3", "--json", "--dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start posd-sandbox soak");
    // Wait until the day's daemon runs beside its broker.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while processes_mentioning(&needle).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no posd and mosquitto after 60 s: {:?}",
            processes_mentioning(&needle)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(soak.id() as i32, libc::SIGTERM) }, 0);
    let out = soak.wait_with_output().expect("soak exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("stopped by a signal"), "{stderr}");
    let left = processes_mentioning(&needle);
    assert!(left.is_empty(), "left running: {left:?}");
}
