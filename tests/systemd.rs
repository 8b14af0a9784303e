//! systemd integration through a real notify socket: READY=1 once the journal is open and the
//! tasks run, WATCHDOG=1 while everything checks in, STOPPING=1 and a clean exit on SIGTERM,
//! with the retained status turning `online:false`.

mod common;
use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn recv_until(sock: &UnixDatagram, want: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let hit = msg.lines().any(|l| l == want);
            seen.push(msg);
            if hit {
                return seen;
            }
        }
    }
    panic!("no {want} within {timeout:?}; saw {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_watchdog_and_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Write the config through the shared helper, then run the binary ourselves with systemd's
    // environment.
    // At info: the stop's own lines are read below.
    let mut d = Daemon::start_at_level(&dir.path().join("t"), "T-SYSD", &broker.url(), "", "info");
    d.stop();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let log_path = dir.path().join("posd.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_posd"))
            .arg("--config")
            .arg(&d.config)
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", "2000000")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    recv_until(&sock, "READY=1", Duration::from_secs(20));
    // The control socket answers once READY was sent.
    assert!(std::os::unix::net::UnixStream::connect(&d.socket).is_ok());
    recv_until(&sock, "WATCHDOG=1", Duration::from_secs(5));
    recv_until(&sock, "WATCHDOG=1", Duration::from_secs(5));

    // Watch the retained status from outside.
    let (client, mut el) =
        AsyncClient::new(MqttOptions::new("sysd-watch", "127.0.0.1", broker.port), 16);
    client
        .subscribe("pos/v1/T-SYSD/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                let _ = tx.send(v);
            }
        }
    });
    let online = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let v = rx.recv().await.unwrap();
            if v["online"] == true {
                return v;
            }
        }
    })
    .await
    .expect("retained online status");
    assert_eq!(online["terminal"], "T-SYSD");

    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    recv_until(&sock, "STOPPING=1", Duration::from_secs(10));
    let status = child.0.wait().unwrap();
    assert!(status.success(), "exit {status:?}");
    let offline = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let v = rx.recv().await.unwrap();
            if v["online"] == false {
                return v;
            }
        }
    })
    .await
    .expect("status offline after stop");
    assert_eq!(offline["session"], online["session"]);
    // What the fleet finds retained after the stop: posd's own last word (published, then a
    // clean DISCONNECT, and no connection after it), not the broker's Will (`{terminal,
    // online:false, session}`, sent when a connection just drops). It says what was left unsent.
    let (late, mut late_el) =
        AsyncClient::new(MqttOptions::new("sysd-late", "127.0.0.1", broker.port), 16);
    late.subscribe("pos/v1/T-SYSD/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    let retained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = late_el.poll().await {
                return serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap();
            }
        }
    })
    .await
    .expect("a retained status");
    assert_eq!(retained["online"], false, "{retained}");
    assert_eq!(retained["session"], online["session"]);
    assert!(
        retained["queue"]["pending"].is_u64(),
        "the stop's retained status carries the queue: {retained}"
    );
    // The stop waited for its DISCONNECT to be written, not for a fixed time, nor for its
    // bound (`Link::goodbye`).
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("stopping"), "posd's log is read: {log}");
    assert!(
        !log.contains("were not written within"),
        "the goodbye's DISCONNECT was seen written: {log}"
    );
    assert!(
        !d.socket.exists(),
        "the control socket is removed on a clean stop"
    );
}
