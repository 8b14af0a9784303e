//! Bounded messages on the wire (issue 14), with a real mosquitto that sets no size limit of
//! its own (the worst case), the real posd and the sandbox host: a 1 MiB QoS 1 message on every
//! topic the terminal subscribes to — a retained one on the fleet-wide config topic too — costs
//! at most one reconnect and the next sale is approved; a message under the packet limit but
//! over its topic's limit is dropped without any reconnect; on MQTT 3.1.1 (the broker cannot be
//! told the limit) a refused packet costs one reconnect with a clean session; an event too big to
//! deliver is set aside behind a stub and the events after it are acknowledged; a backlog on a
//! slow uplink drains without starving the keep-alive (the in-flight byte bound).
//!
//! `WIRE_REPORT=1 cargo test -p posd --test wire_limits -- --nocapture` prints the numbers.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const FAST: &str = "[online]\nquery_interval_s = 1\nquery_total_s = 4\nreverse_backoff_initial_s = 1\nreverse_backoff_max_s = 2\n";

fn report(line: String) {
    if std::env::var_os("WIRE_REPORT").is_some() {
        println!("{line}");
    }
}

/// Publishes `size` bytes at QoS 1 with mosquitto_pub (its own client, MQTT 3.1.1).
fn publish(port: u16, topic: &str, size: usize, retain: bool, dir: &Path) {
    let file = dir.join("big.bin");
    std::fs::write(&file, vec![b'{'; size]).unwrap();
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
    ])
    .arg("-f")
    .arg(&file);
    if retain {
        cmd.arg("-r");
    }
    let st = cmd
        .status()
        .expect("mosquitto_pub (mosquitto-clients) runs");
    assert!(st.success(), "mosquitto_pub {topic}: {st}");
}

async fn wire(d: &Daemon) -> Value {
    let mut c = d.client().await;
    status(&mut c).await["wire"].clone()
}

/// An online sale the sandbox approves at once; returns when it is approved.
async fn approved_sale(d: &Daemon) {
    let v = sale(d, "1.00", "134567890123456780")
        .await
        .expect("sale answered");
    assert_eq!(v["result"], "approved", "{v}");
}

/// What one 1 MiB message cost.
struct Cost {
    reconnects: u64,
    /// Ms from the publish until the daemon was connected again (None: it never dropped).
    back_ms: Option<u128>,
    /// Ms the approved sale took after the observation window.
    sale_ms: u128,
}

/// Publishes 1 MiB on `topic`, watches the daemon for 1.5 s (an endless reconnect loop shows
/// as many connects in that time), then sells.
async fn one_mebibyte(d: &Daemon, port: u16, topic: &str, retain: bool, dir: &Path) -> Cost {
    let before = wire(d).await["connects"].as_u64().unwrap();
    let t0 = Instant::now();
    publish(port, topic, 1024 * 1024, retain, dir);
    let mut back_ms = None;
    while t0.elapsed() < Duration::from_millis(1500) {
        let mut c = d.client().await;
        let s = status(&mut c).await;
        if back_ms.is_none()
            && s["wire"]["connects"].as_u64().unwrap() > before
            && s["online"] == true
        {
            back_ms = Some(t0.elapsed().as_millis());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_online(d).await;
    let t1 = Instant::now();
    approved_sale(d).await;
    let sale_ms = t1.elapsed().as_millis();
    let after = wire(d).await["connects"].as_u64().unwrap();
    Cost {
        reconnects: after - before,
        back_ms,
        sale_ms,
    }
}

fn cost_line(proto: &str, topic: &str, retain: bool, c: &Cost) -> String {
    format!(
        "{proto} 1 MiB on {topic}{}: {} reconnect(s), {}; then a sale approved in {} ms",
        if retain { " (retained)" } else { "" },
        c.reconnects,
        match c.back_ms {
            Some(ms) => format!("connected again {ms} ms after the publish"),
            None => "never disconnected".to_string(),
        },
        c.sale_ms
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mebibyte_on_every_topic_costs_at_most_one_reconnect_on_mqtt5() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let _host = Host::start(&broker.url(), &dir.path().join("host.sqlite"));
    let mut d = Daemon::start(&dir.path().join("t"), "T-WIRE5", &broker.url(), FAST);
    wait_online(&d).await;
    approved_sale(&d).await;
    let w = wire(&d).await;
    assert_eq!(w["protocol"], "5");
    assert_eq!(w["connects"], 1);

    let root = "pos/v1/T-WIRE5";
    let topics = [
        (format!("{root}/resp"), false),
        (format!("{root}/ack"), false),
        (format!("{root}/notify"), false),
        (format!("{root}/cmd"), false),
        (format!("{root}/cfg/desired"), false),
        ("pos/v1/all/cfg/desired".to_string(), true),
    ];
    for (topic, retain) in &topics {
        let c = one_mebibyte(&d, broker.port, topic, *retain, dir.path()).await;
        report(cost_line("mqtt5", topic, *retain, &c));
        assert!(c.reconnects <= 1, "{topic}: {} reconnects", c.reconnects);
    }
    // The retained one is still on the broker: a new connection (a restart) gets no loop.
    d.restart();
    wait_online(&d).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    approved_sale(&d).await;
    let w = wire(&d).await;
    report(format!(
        "mqtt5 restart with the retained 1 MiB on the broker: {w}"
    ));
    assert_eq!(w["connects"], 1, "{w}");

    // Under the packet limit, over the topic's limit (64 KiB for resp): dropped and counted.
    let before = wire(&d).await;
    publish(
        broker.port,
        &format!("{root}/resp"),
        100 * 1024,
        false,
        dir.path(),
    );
    let w = eventually(
        Duration::from_secs(10),
        "the 100 KiB resp dropped",
        || async {
            let w = wire(&d).await;
            (w["dropped_oversize"].as_u64() > before["dropped_oversize"].as_u64()).then_some(w)
        },
    )
    .await;
    assert_eq!(w["connects"], before["connects"], "{w}");
    assert!(
        w["last_drop"].as_str().unwrap().contains("102400-byte"),
        "{w}"
    );
    approved_sale(&d).await;
    // Once a minute at most: the drop is in the log once.
    let log = std::fs::read_to_string(d.log_path()).unwrap();
    assert_eq!(log.matches("dropped a 102400-byte message").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mqtt_3_a_refused_packet_costs_one_reconnect_with_a_clean_session() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let _host = Host::start(&broker.url(), &dir.path().join("host.sqlite"));
    let broker_extra = format!("protocol = \"3.1.1\"\n{}", host_signer().toml_entry());
    let d = Daemon::start_custom(
        &dir.path().join("t"),
        "T-WIRE3",
        &broker.url(),
        FAST,
        "warn",
        &broker_extra,
    );
    wait_online(&d).await;
    approved_sale(&d).await;
    assert_eq!(wire(&d).await["protocol"], "3.1.1");
    let root = "pos/v1/T-WIRE3";
    for leaf in ["resp", "ack", "notify", "cmd", "cfg/desired"] {
        let topic = format!("{root}/{leaf}");
        let c = one_mebibyte(&d, broker.port, &topic, false, dir.path()).await;
        report(cost_line("mqtt3.1.1", &topic, false, &c));
        assert_eq!(c.reconnects, 1, "{topic}");
    }
    let w = wire(&d).await;
    assert_eq!(w["refused_packets"], 5, "{w}");
}

/// Journals a batch close of `txns` members (each `{id: 100}`) as the next seq of the stopped
/// daemon's outbox, the way a Z report of a huge batch once was; returns (seq, payload).
fn journal_big_close(d: &Daemon, txns: usize, ids: (&str, &str), amount: i64) -> (u64, String) {
    let conn = rusqlite::Connection::open(d.db_path()).unwrap();
    let last: i64 = conn
        .query_row(
            "SELECT value FROM counters WHERE name = 'last_seq'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let seq = last as u64 + 1;
    let members: serde_json::Map<String, Value> = (0..txns)
        .map(|i| (format!("0190c0de-0000-7000-8000-{i:012}"), Value::from(100)))
        .collect();
    let (event_id, txn_id) = ids;
    let ev = serde_json::json!({
        "seq": seq, "event_id": event_id, "txn_id": txn_id, "type": "batch_close",
        "state": "closed", "method": "none", "amount": amount, "currency": "EUR",
        "at": 1, "detail": {"txns": members}
    })
    .to_string();
    conn.execute(
        "INSERT INTO outbox (seq, event_id, payload, created_at) VALUES (?1, ?2, ?3, 1)",
        rusqlite::params![seq as i64, event_id, ev],
    )
    .unwrap();
    conn.execute(
        "UPDATE counters SET value = ?1 WHERE name = 'last_seq'",
        [seq as i64],
    )
    .unwrap();
    // The outbox's running counter changes with its rows (migration #8), as the store does.
    conn.execute(
        "UPDATE counters SET value = value + 1 WHERE name = 'outbox_pending'",
        [],
    )
    .unwrap();
    (seq, ev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_big_to_deliver_is_set_aside_and_the_rest_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let host = Host::start(&broker.url(), &dir.path().join("host.sqlite"));
    let mut d = Daemon::start(&dir.path().join("t"), "T-ASIDE", &broker.url(), FAST);
    wait_online(&d).await;
    approved_sale(&d).await;
    wait_drained(&d, Duration::from_secs(20)).await;
    d.stop();

    // An event of 300 KiB (over the 64 KiB event limit and the 256 KiB packet limit) journalled
    // as the next seq, the way a Z report of a huge batch once was.
    let (big_seq, big) = journal_big_close(
        &d,
        7_000,
        (
            "0190c0de-ffff-7000-8000-000000000001",
            "0190c0de-ffff-7000-8000-000000000002",
        ),
        700_000,
    );
    assert!(big.len() > 256 * 1024);
    d.restart();
    wait_online(&d).await;
    // Sales behind it are approved and their events acknowledged.
    approved_sale(&d).await;
    approved_sale(&d).await;
    let q = wait_drained(&d, Duration::from_secs(30)).await;
    report(format!("set aside: queue {q}"));
    assert_eq!(q["set_aside"], 1, "{q}");
    assert_eq!(q["set_aside_last_seq"], big_seq, "{q}");
    assert!(q["acked_seq"].as_u64().unwrap() > big_seq, "{q}");

    // The host holds the stub in its place, gap-free, and the events after it.
    let conn = posd_sandbox::host::open_db(&host.db).unwrap();
    let (kind, payload): (String, String) = conn
        .query_row(
            "SELECT type, payload FROM events WHERE terminal = 'T-ASIDE' AND seq = ?1",
            [big_seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kind, "set_aside");
    let stub: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(stub["detail"]["size"], big.len());
    assert_eq!(stub["detail"]["original_type"], "batch_close");
    assert_eq!(stub["reason"], "too_large");
    let a = host.audit();
    assert_eq!(a.terminals["T-ASIDE"].gaps, 0, "{a:?}");
    assert_eq!(
        a.terminals["T-ASIDE"].contiguous_seq,
        q["last_seq"].as_u64().unwrap()
    );

    // The full event stays on the terminal; the log says so once.
    let conn = rusqlite::Connection::open(d.db_path()).unwrap();
    let kept: String = conn
        .query_row(
            "SELECT payload FROM set_aside WHERE seq = ?1",
            [big_seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, big);
    let log = std::fs::read_to_string(d.log_path()).unwrap();
    assert_eq!(
        log.matches("can never be delivered: set aside").count(),
        1,
        "{log}"
    );
}

/// A broker whose message size limit is below the terminal's event limit and which does not
/// announce it (mosquitto's `message_size_limit` answers a bigger QoS 1 PUBLISH with a PUBACK
/// "packet too large", 0x95): the terminal learns the limit from the refusal, sets that event
/// aside and delivers the ones behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_broker_refuses_as_too_large_is_set_aside_and_the_rest_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start_with_conf(|port, _| {
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 100000\nset_tcp_nodelay true\nmessage_size_limit 20000\n"
        )
    });
    let host = Host::start(&broker.url(), &dir.path().join("host.sqlite"));
    let mut d = Daemon::start(&dir.path().join("t"), "T-REFUSED", &broker.url(), FAST);
    wait_online(&d).await;
    approved_sale(&d).await;
    wait_drained(&d, Duration::from_secs(20)).await;
    d.stop();

    // A 40 KB event — under the terminal's own 64 KiB limit, over the broker's 20,000 bytes.
    let (big_seq, big) = journal_big_close(
        &d,
        800,
        (
            "0190c0de-ffff-7000-8000-000000000003",
            "0190c0de-ffff-7000-8000-000000000004",
        ),
        80_000,
    );
    assert!(big.len() > 20_000 && big.len() < 64 * 1024, "{}", big.len());
    d.restart();
    wait_online(&d).await;
    // The refusal ends the connection it came on (a sale in flight then would be queried).
    let q = wait_drained(&d, Duration::from_secs(30)).await;
    assert_eq!(q["set_aside"], 1, "{q}");
    approved_sale(&d).await;
    approved_sale(&d).await;
    let q = wait_drained(&d, Duration::from_secs(30)).await;
    report(format!("refused by the broker: queue {q}"));
    assert_eq!(q["set_aside"], 1, "{q}");
    assert_eq!(q["set_aside_last_seq"], big_seq, "{q}");
    assert!(q["acked_seq"].as_u64().unwrap() > big_seq, "{q}");
    let w = wire(&d).await;
    report(format!("refused by the broker: wire {w}"));
    assert!(w["broker_refused"].as_u64().unwrap() >= 1, "{w}");
    assert_eq!(w["broker_event_limit"], big.len() - 1, "{w}");
    // One refusal, one reconnect: the connection it ended and the one after.
    assert_eq!(w["connects"], 2, "{w}");

    let conn = posd_sandbox::host::open_db(&host.db).unwrap();
    let payload: String = conn
        .query_row(
            "SELECT payload FROM events WHERE terminal = 'T-REFUSED' AND seq = ?1",
            [big_seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    let stub: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(stub["type"], "set_aside");
    assert_eq!(stub["reason"], "broker_refused");
    assert_eq!(stub["detail"]["size"], big.len());
    let a = host.audit();
    assert_eq!(a.terminals["T-REFUSED"].gaps, 0, "{a:?}");
}

/// A backlog on a slow uplink (issue 14, docs/broker.md "Slow links"): 550 offline sales made
/// while the broker was out of reach, then a 384 kbit/s link (48 KB/s each way) and a 5 s
/// keep-alive. Without the byte bound the 512-event window (~380 KB, 8 s of this link) sat
/// ahead of the keep-alive's PINGREQ, the client dropped the connection at the next tick and
/// sent everything again (with `inflight_bytes = 16777216` this test sees 2 connections); with
/// `inflight_bytes` at its default (128 KiB, under 3 s of this link) the backlog and its
/// settlements drain on the first connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_on_a_slow_uplink_drains_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let broker = Mosquitto::start();
    let host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--issuer-key".into(), platform.host_key_arg()],
    );
    // The daemon's broker is a port nobody listens on yet: every event waits in the outbox.
    let link_port = free_port();
    let d = Daemon::start_custom(
        &dir.path().join("t"),
        "T-SLOW",
        &format!("mqtt://127.0.0.1:{link_port}"),
        &platform.offline_toml(""),
        "warn",
        &format!("keep_alive_s = 5\n{}", host_signer().toml_entry()),
    );
    const SALES: usize = 550;
    let mut wallets: Vec<Wallet> = (0..20)
        .map(|u| platform.wallet(2000 + u, 100_000))
        .collect();
    let mut c = d.client().await;
    for i in 0..SALES {
        let code = wallets[i % 20].next_code();
        let v = c
            .call_json(posd_core::control::Sale {
                method: None,
                amount: "1.00".into(),
                currency: None,
                code: Some(code),
            })
            .await
            .unwrap_or_else(|e| panic!("offline sale {i}: {e}"));
        assert_eq!(v["result"], "approved", "{v}");
    }
    let pending = c.call_json(posd_core::control::Queue {}).await.unwrap()["pending"]
        .as_u64()
        .unwrap();
    assert_eq!(pending, SALES as u64, "one approved_offline event a sale");

    // Now the link: 384 kbit/s each way, 20–40 ms of latency.
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{}", broker.port).parse().unwrap();
    let netem = posd_sandbox::netem::Netem::start(
        format!("127.0.0.1:{link_port}").parse().unwrap(),
        upstream,
        posd_sandbox::netem::NetemConfig {
            latency_ms: (20, 40),
            bandwidth_bps: Some(384_000),
            ..Default::default()
        },
    )
    .await
    .expect("netem");
    let t0 = Instant::now();
    wait_online(&d).await;
    // Every sale is settled by the host, and the settlement events come back through the link.
    eventually(Duration::from_secs(120), "every sale settled", || async {
        let conn = posd_sandbox::host::open_db(&host.db).ok()?;
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE terminal = 'T-SLOW' AND state = 'settled'",
                [],
                |r| r.get(0),
            )
            .ok()?;
        (n as usize == SALES).then_some(())
    })
    .await;
    let q = wait_drained(&d, Duration::from_secs(60)).await;
    let w = wire(&d).await;
    let stats = netem.stats();
    report(format!(
        "slow uplink: {} events drained in {:.1} s through 384 kbit/s, {} B up; daemon connects {}, link connections {}",
        q["last_seq"],
        t0.elapsed().as_secs_f64(),
        stats.bytes_up,
        w["connects"],
        stats.established
    ));
    assert_eq!(q["last_seq"].as_u64(), Some(2 * SALES as u64));
    assert_eq!(
        w["connects"].as_u64(),
        Some(1),
        "the backlog cost a reconnect (keep-alive starved): {w}"
    );
    assert_eq!(stats.established, 1, "{stats:?}");
    let a = host.audit();
    assert!(a.ok(), "{a:?}");
    assert_eq!(a.terminals["T-SLOW"].gaps, 0);
}
