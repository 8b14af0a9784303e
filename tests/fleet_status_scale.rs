//! `posctl fleet status --summary` on a fleet of 10,000 (issue 20): synthetic retained
//! `status` documents, shaped like the daemon's (`posd_core::control::StatusDoc`), published to
//! a test mosquitto; the summary must count every terminal right — online and offline, the
//! oldest unsynced queue, config versions, device faults — and say how long it took. The time
//! is printed (docs/fleet-sizing.md quotes it), not asserted: this machine's load varies.

mod common;

use common::*;
use posd::fleet::tool::{self, Broker, OldestQueue};
use posd_core::control::{QueueStats, StatusDoc};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const N: usize = 10_000;

fn id(i: usize) -> String {
    format!("T-{i:05}")
}

/// Terminal `i`'s retained status: every tenth offline (its Will), the rest with a mix of
/// config versions, queues and device faults.
fn status(i: usize) -> Vec<u8> {
    if i.is_multiple_of(10) {
        return serde_json::to_vec(
            &serde_json::json!({"terminal": id(i), "online": false, "session": "s"}),
        )
        .unwrap();
    }
    let mut devices = BTreeMap::new();
    devices.insert(
        "printer".to_string(),
        if i % 250 == 1 {
            "error: paper out".to_string()
        } else {
            "ok: tcp 127.0.0.1:9100".to_string()
        },
    );
    devices.insert(
        "scanner".to_string(),
        if i % 500 == 3 {
            "absent: /dev/input/by-id/usb-scanner".to_string()
        } else {
            "ok: /dev/input/event3".to_string()
        },
    );
    devices.insert("camera".to_string(), "disabled".to_string());
    let pending = (i % 7) as u64;
    let doc = StatusDoc {
        terminal: id(i),
        online: true,
        session: format!("session-{i}"),
        version: "0.1.0".into(),
        config_version: match i % 3 {
            0 => None,
            1 => Some(10),
            _ => Some(9),
        },
        queue: QueueStats {
            pending,
            // One terminal waits far longer than the rest.
            oldest_age_s: if i == 4243 {
                86_400
            } else if pending > 0 {
                (i % 1000) as u64
            } else {
                0
            },
            last_seq: 1000 + i as u64,
            acked_seq: 1000 + i as u64 - pending,
            ..QueueStats::default()
        },
        devices,
        at: 1_764_633_600_000,
        ..StatusDoc::default()
    };
    serde_json::to_vec(&doc).unwrap()
}

async fn publish_fleet(m: &Mosquitto) -> usize {
    let mut o = rumqttc::MqttOptions::new("fleet-scale-publisher", "127.0.0.1", m.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(500);
    let (client, mut ev) = AsyncClient::new(o, 1000);
    let mut bytes = 0;
    let payloads: Vec<Vec<u8>> = (0..N).map(status).collect();
    bytes += payloads.iter().map(Vec::len).sum::<usize>();
    let publisher = tokio::spawn(async move {
        for (i, p) in payloads.into_iter().enumerate() {
            client
                .publish(
                    format!("pos/v1/{}/status", id(i)),
                    QoS::AtLeastOnce,
                    true,
                    p,
                )
                .await
                .unwrap();
        }
        client
    });
    let mut acks = 0;
    while acks < N {
        match tokio::time::timeout(Duration::from_secs(30), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acks += 1,
            Ok(Ok(_)) => {}
            other => panic!("publishing the synthetic fleet: {other:?} after {acks} PUBACKs"),
        }
    }
    let client = publisher.await.unwrap();
    let _ = client.disconnect().await;
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_of_ten_thousand_terminals_counts_every_one() {
    let m = Mosquitto::start();
    let t0 = Instant::now();
    let bytes = publish_fleet(&m).await;
    eprintln!(
        "published {N} retained statuses ({} KB) in {} ms",
        bytes / 1024,
        t0.elapsed().as_millis()
    );
    let broker = Broker {
        url: m.url(),
        prefix: "pos/v1".into(),
        client_id: "fleet-scale-reader".into(),
        tls: None,
    };
    let t0 = Instant::now();
    let s = tool::fleet_summary(&broker, Duration::from_secs(60), Duration::from_millis(500))
        .await
        .expect("summary");
    eprintln!(
        "summary of {} terminals in {} ms (collection {} ms, of which 500 ms is the quiet end)",
        s.terminals,
        t0.elapsed().as_millis(),
        s.collect_ms
    );
    // What the synthetic fleet holds, counted here the plain way.
    let offline = (0..N).filter(|i| i.is_multiple_of(10)).count() as u64;
    let online: Vec<usize> = (0..N).filter(|i| !i.is_multiple_of(10)).collect();
    assert_eq!(s.terminals, N as u64);
    assert_eq!((s.online, s.offline), (N as u64 - offline, offline));
    assert_eq!(s.unreadable, 0);
    let pending: u64 = online.iter().map(|i| (i % 7) as u64).sum();
    assert_eq!(s.pending_total, pending);
    assert_eq!(
        s.terminals_pending,
        online.iter().filter(|i| !i.is_multiple_of(7)).count() as u64
    );
    assert_eq!(
        s.oldest_unsynced,
        Some(OldestQueue {
            terminal: id(4243),
            oldest_age_s: 86_400,
            pending: (4243 % 7) as u64,
        })
    );
    let v = |k: usize| online.iter().filter(|i| *i % 3 == k).count() as u64;
    let mut versions = BTreeMap::new();
    versions.insert("none".to_string(), v(0) + offline);
    versions.insert("10".to_string(), v(1));
    versions.insert("9".to_string(), v(2));
    assert_eq!(s.config_versions, versions);
    let printer = online.iter().filter(|i| *i % 250 == 1).count() as u64;
    let scanner = online.iter().filter(|i| *i % 500 == 3).count() as u64;
    assert_eq!(s.faults.get("printer: error"), Some(&printer));
    assert_eq!(s.faults.get("scanner: absent"), Some(&scanner));
    assert_eq!(s.faults.len(), 2, "{:?}", s.faults);
    assert_eq!(s.terminals_with_faults, printer + scanner);
    assert_eq!(s.fault_examples.len(), tool::FAULT_EXAMPLES);
    assert_eq!(s.fault_examples[0], id(1));

    // The same through posctl, for people and as JSON.
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_posctl"))
        .args(["fleet", "status", "--summary", "--broker", &m.url()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The largest resident set of any child waited for so far: posctl (mosquitto still runs).
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid rusage.
    let peak_kib = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init().ru_maxrss
    };
    eprintln!(
        "posctl fleet status --summary: {} ms, peak RSS {:.1} MB\n{text}",
        t0.elapsed().as_millis(),
        peak_kib as f64 / 1024.0
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "terminals: {N} ({} online, {offline} offline)",
            N as u64 - offline
        )),
        "{text}"
    );
    assert!(
        text.contains("the oldest waits 86400 s on T-04243"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_posctl"))
        .args([
            "--json",
            "fleet",
            "status",
            "--summary",
            "--broker",
            &m.url(),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["terminals"], N as u64);
    assert_eq!(v["oldest_unsynced"]["terminal"], id(4243));
}
