//! End-to-end benchmarks of the release daemon against a local mosquitto (harness = false):
//!
//! 1. outbox drain: events/s acknowledged end to end (journal → MQTT → sandbox host → ack →
//!    dropped), against raw QoS 1 publishes to the same broker in the same run (goal ≥ 50 %);
//! 2. start-to-READY time (sd_notify socket) and idle RSS of the release `posd`;
//! 3. P1 scan → durable approval through the control socket, p50/p99, against a bare durable
//!    SQLite commit in the same run (goal ≤ 1.5×);
//! 4. online approval through the sandbox host, p50/p99, against a bare MQTT round trip
//!    (publish → responder → publish back) on the same broker: the difference is what posd
//!    (plus the host's own durable commit) adds.
//!
//! Run: `cargo bench --bench daemon` (needs `mosquitto` on PATH). POSD_BENCH_EVENTS sets the
//! number of outbox events (default 20000).

use posd::control::ControlClient;
use posd_core::control as ctl;
use posd_core::money::Currency;
use posd_core::txn::{Method, Transaction, TxnKind, TxnState};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn mosquitto(dir: &Path) -> (Kill, u16) {
    let port = free_port();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).ok();
    let conf = dir.join("m.conf");
    let mut f = std::fs::File::create(&conf).expect("conf");
    writeln!(f, "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages 0\nset_tcp_nodelay true").expect("w");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).ok();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    (Kill(child), port)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(((v.len() - 1) as f64) * p).round() as usize]
}

/// The sandbox host's signing key in this bench; every terminal lists its public half.
fn host_signer() -> posd_core::protocol::signed::HostSigner {
    posd_core::protocol::signed::HostSigner::from_seed(1, &[0x48; 32])
}

fn write_config(dir: &Path, id: &str, port: u16, extra: &str) -> PathBuf {
    let cfg = dir.join("posd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[terminal]\nid = \"{id}\"\nstate_dir = \"{}\"\n[broker]\nurl = \"mqtt://127.0.0.1:{port}\"\ninflight_window = 1000\n{}[control]\nsocket = \"{}\"\n[logging]\nlevel = \"warn\"\n{extra}\n",
            dir.join("state").display(),
            host_signer().toml_entry(),
            dir.join("c.sock").display()
        ),
    )
    .expect("config");
    cfg
}

fn spawn_posd(cfg: &Path, notify: Option<&Path>) -> Kill {
    let mut c = Command::new(env!("CARGO_BIN_EXE_posd"));
    c.arg("--config").arg(cfg).stdout(Stdio::null());
    match notify {
        Some(n) => c.env("NOTIFY_SOCKET", n),
        None => c.env_remove("NOTIFY_SOCKET"),
    };
    Kill(c.spawn().expect("posd"))
}

/// `posd-sandbox`, built beside this bench (`cargo build --release -p posd-sandbox` first).
fn sandbox_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps")
        .join("posd-sandbox");
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release -p posd-sandbox",
        bin.display()
    );
    bin
}

fn spawn_host(port: u16, db: &Path, extra: &[String]) -> Kill {
    let key = db.with_extension("host-key.json");
    std::fs::write(&key, posd_sandbox::host::signing_key_file(&host_signer())).expect("key");
    let child = Command::new(sandbox_bin())
        .arg("host")
        .arg("--host-key")
        .arg(&key)
        .args(["--broker", &format!("mqtt://127.0.0.1:{port}"), "--db"])
        .arg(db)
        .args(["--log-level", "error"])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("host");
    std::thread::sleep(Duration::from_millis(300));
    Kill(child)
}

async fn client(sock: &Path) -> ControlClient {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(c) = ControlClient::connect(sock).await {
            return c;
        }
        assert!(Instant::now() < deadline, "no control socket");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn raw_qos1(port: u16, n: usize, payload_len: usize) -> f64 {
    let mut o = MqttOptions::new("bench-raw", "127.0.0.1", port);
    o.set_inflight(1000);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (c, mut el) = AsyncClient::new(o, 2000);
    posd::link::disable_nagle(&mut el);
    let payload = vec![b'x'; payload_len];
    // Connect first.
    loop {
        if let Ok(Event::Incoming(Packet::ConnAck(_))) = el.poll().await {
            break;
        }
    }
    let t0 = Instant::now();
    let pubs = tokio::spawn(async move {
        for _ in 0..n {
            c.publish("bench/raw", QoS::AtLeastOnce, false, payload.clone())
                .await
                .expect("publish");
        }
        c
    });
    let mut acked = 0;
    while acked < n {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = el.poll().await {
            acked += 1;
        }
    }
    let el_time = t0.elapsed().as_secs_f64();
    drop(pubs.await);
    n as f64 / el_time
}

async fn mqtt_rtt(port: u16, n: usize) -> Vec<f64> {
    // A responder that echoes bench/ping to bench/pong.
    let (resp, mut rel) = AsyncClient::new(MqttOptions::new("bench-echo", "127.0.0.1", port), 100);
    posd::link::disable_nagle(&mut rel);
    resp.subscribe("bench/ping", QoS::AtLeastOnce)
        .await
        .expect("sub");
    tokio::spawn(async move {
        while let Ok(ev) = rel.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = resp.try_publish("bench/pong", QoS::AtLeastOnce, false, p.payload.to_vec());
            }
        }
    });
    let (c, mut el) = AsyncClient::new(MqttOptions::new("bench-ping", "127.0.0.1", port), 100);
    posd::link::disable_nagle(&mut el);
    c.subscribe("bench/pong", QoS::AtLeastOnce)
        .await
        .expect("sub");
    // Let subscriptions settle.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(300) {
        let _ = tokio::time::timeout(Duration::from_millis(50), el.poll()).await;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        c.publish("bench/ping", QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .expect("pub");
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p)))
                    if p.payload == format!("{i}").as_bytes() =>
                {
                    break
                }
                Ok(Event::Outgoing(Outgoing::Publish(_))) | Ok(_) => {}
                Err(e) => panic!("rtt: {e}"),
            }
        }
        out.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    out
}

fn bare_commits(dir: &Path, n: usize) -> Vec<f64> {
    let c = rusqlite::Connection::open(dir.join("bare.sqlite")).expect("open");
    c.pragma_update(None, "journal_mode", "WAL").expect("wal");
    c.pragma_update(None, "synchronous", "FULL").expect("full");
    c.execute(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)",
        [],
    )
    .expect("t");
    (0..n)
        .map(|i| {
            let t0 = Instant::now();
            c.execute("INSERT INTO t (v) VALUES (?1)", [format!("{i}")])
                .expect("ins");
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n_events: usize = std::env::var("POSD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let (_broker, port) = mosquitto(tmp.path());
    println!("== posd end-to-end benchmarks (release binaries, local mosquitto on :{port})");

    // 1. Outbox drain vs raw QoS 1.
    let dir = tmp.path().join("drain");
    std::fs::create_dir_all(dir.join("state")).expect("dir");
    {
        let mut db = posd::store::Db::open(&dir.join("state/posd.sqlite")).expect("db");
        let cny = Currency::from_code("CNY").expect("cny");
        let mut batch = Vec::new();
        for i in 0..n_events {
            let mut t = Transaction::new(
                TxnKind::Sale,
                Method::PaymentCode,
                100,
                cny,
                TxnState::Approved,
                1_700_000_000_000 + i as u64,
                [(i % 251) as u8; 10],
            );
            t.channel = Some("wechat".into());
            t.code_masked = Some("1345**********6789".into());
            t.host_ref = Some("H0123456789ab".into());
            batch.push(t);
            if batch.len() == 1000 {
                db.record_batch(&batch).expect("prefill");
                batch.clear();
            }
        }
        if !batch.is_empty() {
            db.record_batch(&batch).expect("prefill");
        }
    }
    let payload_len = {
        let db = posd::store::Db::open(&dir.join("state/posd.sqlite")).expect("db");
        db.outbox_after(0, 1).expect("ob")[0].1.len()
    };
    let raw = raw_qos1(port, n_events, payload_len).await;
    let _host = spawn_host(port, &tmp.path().join("host.sqlite"), &[]);
    let cfg = write_config(&dir, "BENCH-DRAIN", port, "");
    let t0 = Instant::now();
    let _posd = spawn_posd(&cfg, None);
    let mut c = client(&dir.join("c.sock")).await;
    loop {
        let q = c.call_json(ctl::Queue {}).await.expect("queue");
        if q["pending"].as_u64() == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain_s = t0.elapsed().as_secs_f64();
    let drained = n_events as f64 / drain_s;
    println!(
        "outbox drain: {n_events} events ({payload_len} B) acked end to end in {drain_s:.2} s = {drained:.0} events/s; raw QoS 1 publishes {raw:.0} msg/s; ratio {:.0} %",
        100.0 * drained / raw
    );
    drop(_posd);

    // 2. Start-to-READY and idle RSS.
    let dir2 = tmp.path().join("ready");
    std::fs::create_dir_all(&dir2).expect("dir");
    let cfg2 = write_config(&dir2, "BENCH-READY", port, "");
    let notify = dir2.join("notify.sock");
    let mut readies = Vec::new();
    let mut rss_kb = 0u64;
    for round in 0..10 {
        let _ = std::fs::remove_file(&notify);
        let sock = UnixDatagram::bind(&notify).expect("notify");
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let t0 = Instant::now();
        let p = spawn_posd(&cfg2, Some(&notify));
        let mut buf = [0u8; 512];
        loop {
            let n = sock.recv(&mut buf).expect("READY");
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                break;
            }
        }
        readies.push(t0.elapsed().as_secs_f64() * 1e3);
        if round == 9 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", p.0.id())).unwrap_or_default();
            rss_kb = status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &p.0.id().to_string()])
            .status();
        drop(p);
    }
    let r50 = pct(&mut readies, 0.5);
    let rmax = pct(&mut readies, 1.0);
    println!("start to READY=1: median {r50:.1} ms, max {rmax:.1} ms (10 starts); idle RSS after 3 s: {} KiB", rss_kb);

    // 3. P1 scan → durable approval vs a bare durable commit.
    let dir3 = tmp.path().join("p1");
    std::fs::create_dir_all(&dir3).expect("dir");
    let issuer = posd_core::codes::PrivateKey::generate().expect("key");
    let extra = format!(
        "[offline]\nclock = \"always\"\n[[offline.issuer_keys]]\nid = 1\npublic_key = \"{}\"\n[offline.limits]\nper_txn_limit = 100000\nper_user_daily_limit = 1000000000\nmax_unsynced_count = 1000000\nmax_unsynced_amount = 100000000000\n",
        issuer.public_key().to_hex()
    );
    let cfg3 = write_config(&dir3, "BENCH-P1", free_port(), &extra);
    let _p1 = spawn_posd(&cfg3, None);
    let mut c = client(&dir3.join("c.sock")).await;
    let user = posd_core::codes::PrivateKey::generate().expect("user");
    let now = posd::clock::now_ms() / 1000;
    let cred = posd_core::codes::issue_credential(
        &issuer,
        1,
        &posd_core::codes::CredentialRequest {
            user_id: 9,
            user_key: user.public_key(),
            valid_from: now as u32 - 60,
            valid_until: now as u32 + 86_400,
            max_amount: 100_000,
            currency: 156,
        },
    )
    .expect("cred");
    let n_p1 = 1000;
    let mut p1 = Vec::with_capacity(n_p1);
    let mut bare = Vec::with_capacity(n_p1);
    for i in 0..n_p1 {
        let code = posd_core::codes::make_code(
            &user,
            &cred,
            (posd::clock::now_ms() / 1000) as u32,
            i as u32 + 1,
        )
        .expect("code")
        .to_text();
        let t0 = Instant::now();
        let v = c
            .call_json(ctl::Sale {
                method: None,
                amount: "1.00".into(),
                currency: None,
                code: Some(code),
            })
            .await
            .expect("p1 sale");
        p1.push(t0.elapsed().as_secs_f64() * 1e3);
        assert_eq!(v["state"], "approved_offline");
        bare.extend(bare_commits(&dir3, 1));
    }
    let (p50, p99) = (pct(&mut p1, 0.5), pct(&mut p1, 0.99));
    let (b50, b99) = (pct(&mut bare, 0.5), pct(&mut bare, 0.99));
    println!(
        "P1 scan → durable approval (control socket, {n_p1}): p50 {p50:.3} ms, p99 {p99:.3} ms; bare durable commit p50 {b50:.3} ms, p99 {b99:.3} ms; ratio p50 {:.2}x, p99 {:.2}x",
        p50 / b50,
        p99 / b99
    );

    // 4. Online approval vs a bare MQTT round trip.
    let dir4 = tmp.path().join("online");
    std::fs::create_dir_all(&dir4).expect("dir");
    let cfg4 = write_config(&dir4, "BENCH-ONLINE", port, "");
    let _on = spawn_posd(&cfg4, None);
    let mut c = client(&dir4.join("c.sock")).await;
    loop {
        let s = c.call_json(ctl::Status {}).await.expect("status");
        if s["online"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n_on = 500;
    let mut online = Vec::with_capacity(n_on);
    for _ in 0..n_on {
        let t0 = Instant::now();
        let v = c
            .call_json(ctl::Sale {
                method: None,
                amount: "1.00".into(),
                currency: None,
                code: Some("134567890123456780".into()),
            })
            .await
            .expect("online sale");
        online.push(t0.elapsed().as_secs_f64() * 1e3);
        assert_eq!(v["result"], "approved");
    }
    let mut rtt = mqtt_rtt(port, n_on).await;
    let (o50, o99) = (pct(&mut online, 0.5), pct(&mut online, 0.99));
    let (r50, r99) = (pct(&mut rtt, 0.5), pct(&mut rtt, 0.99));
    println!(
        "online approval (control socket → host → approved, {n_on}): p50 {o50:.3} ms, p99 {o99:.3} ms; bare MQTT round trip p50 {r50:.3} ms, p99 {r99:.3} ms; added p50 {:.3} ms, p99 {:.3} ms (includes the host's own durable commit, ≈ bare commit p50 {b50:.3} ms)",
        o50 - r50,
        o99 - r99
    );
}
