//! Memory and file descriptors bounded by configuration, whatever a local client does (issue
//! 14): the manager-PIN check keeps one argon2 buffer however many checks run; the control
//! socket keeps at most `MAX_LINE` of a line without a newline, refuses it and closes; idle
//! connections are closed after `[control] idle_timeout_s`; past `max_connections` the longest
//! idle one makes room, so the next client is always served. The real daemon and mosquitto.

mod common;
use common::*;
use posd::control::ControlError;
use posd_core::control as ctl;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

async fn idle_rss(d: &Daemon) -> u64 {
    // A few requests so lazily built state exists, then the resident set.
    for _ in 0..3 {
        let mut c = d.client().await;
        status(&mut c).await;
    }
    d.rss_kib()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_pin_checks_hold_one_argon2_buffer() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), "T-PIN", &m.url(), &manager_toml());
    wait_online(&d).await;
    let idle = idle_rss(&d).await;
    for i in 0..100 {
        let mut c = d.client().await;
        // The right PIN, then an original that does not exist: every request runs the argon2
        // check (19 MiB) and changes nothing.
        let r = c
            .call_json(ctl::Refund {
                original: Some(format!("00000000-0000-4000-8000-{i:012}")),
                receipt: None,
                amount: None,
                refund_id: None,
                pin: PIN.into(),
            })
            .await;
        match r {
            Err(ControlError::Refused { code, .. }) => assert_eq!(code, "not_found", "check {i}"),
            other => panic!("check {i}: {other:?}"),
        }
    }
    let after = d.rss_kib();
    println!("RSS idle {idle} KiB, after 100 PIN checks {after} KiB");
    // The argon2 buffer (19 MiB) once, not once per check or per thread.
    assert!(
        after <= idle + 20 * 1024,
        "RSS grew from {idle} KiB to {after} KiB over 100 PIN checks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_is_bounded_by_its_configuration() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), "T-CTL", &m.url(), "");
    let conf = std::fs::read_to_string(&d.config).unwrap().replace(
        "[control]\n",
        "[control]\nmax_connections = 16\nidle_timeout_s = 2\n",
    );
    std::fs::write(&d.config, conf).unwrap();
    d.restart();
    wait_online(&d).await;
    let idle = idle_rss(&d).await;

    // 100 MiB without a newline: refused with `too_long` after MAX_LINE, and closed.
    let s = UnixStream::connect(&d.socket).await.unwrap();
    let (r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'x'; 1024 * 1024];
        let mut sent = 0usize;
        for _ in 0..100 {
            if w.write_all(&chunk).await.is_err() {
                break; // the daemon closed the connection
            }
            sent += chunk.len();
        }
        sent
    });
    let mut answer = String::new();
    BufReader::new(r).read_line(&mut answer).await.unwrap();
    let sent = writer.await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&answer).expect("one JSON answer line");
    assert_eq!(v["code"], "too_long", "{answer}");
    assert!(
        sent < 100 * 1024 * 1024,
        "the daemon read all 100 MiB ({sent} bytes) instead of closing"
    );
    let after_line = d.rss_kib();

    // An idle connection is closed after idle_timeout_s.
    let mut lazy = UnixStream::connect(&d.socket).await.unwrap();
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), lazy.read(&mut b))
        .await
        .expect("closed by the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "an idle connection got bytes instead of being closed");

    // 2,000 idle connections, held open: the daemon keeps at most 16 (the longest idle make
    // room), and the next client is served at once.
    let mut held = Vec::new();
    for _ in 0..2000 {
        held.push(UnixStream::connect(&d.socket).await.expect("connect"));
    }
    let mut c = d.client().await;
    let s = tokio::time::timeout(Duration::from_secs(5), c.call_json(ctl::Status {}))
        .await
        .expect("the next client is served")
        .expect("status");
    assert!(s["terminal_id"].is_string() || s.is_object());
    let fds = std::fs::read_dir(format!("/proc/{}/fd", d.pid().unwrap()))
        .unwrap()
        .count();
    let after_conns = d.rss_kib();
    println!(
        "RSS idle {idle} KiB; after a 100 MiB line {after_line} KiB; with 2,000 clients {after_conns} KiB, {fds} fds"
    );
    assert!(fds < 200, "{fds} file descriptors open in the daemon");
    assert!(after_line <= idle + 10 * 1024, "{idle} -> {after_line} KiB");
    assert!(
        after_conns <= idle + 10 * 1024,
        "{idle} -> {after_conns} KiB"
    );
    drop(held);
}
