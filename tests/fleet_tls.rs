//! Production MQTT (issues 8 and 17): mosquitto configured from `config/mosquitto/` (TLS,
//! client certificates as identities, a terminal listener and a backend listener with their own
//! CA and ACL), certificates from `scripts/make-test-pki.sh`. posd connects with its client
//! certificate and takes a signed push from the fleet account; a terminal's certificate can
//! publish neither into another terminal's subtree nor onto `cfg/desired`, cannot take another
//! terminal's client id (nor its session and queued messages), cannot read its topics, and is
//! not accepted on the backend listener.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use posd::config::TlsConfig;
use posd::fleet::tool::{self, Broker, KeyFile};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{json, Map, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

fn tls(pki: &Path, name: &str) -> TlsConfig {
    TlsConfig {
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("{name}.pem")),
        key: pki.join(format!("{name}.key")),
    }
}

/// mosquitto from the shipped configuration, on two free loopback ports.
struct TlsBroker {
    m: Mosquitto,
    /// The terminals' PKI (`ca.pem`, `T1.pem`, ...), listener `m.port`.
    terminals: PathBuf,
    /// The backend's PKI (`posd-host`, `posd-fleet`), listener `backend_port`.
    backend: PathBuf,
    backend_port: u16,
}

fn make_pki(dir: &Path, names: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/make-test-pki.sh"))
        .arg(dir)
        .args(names)
        .output()
        .expect("openssl and bash are needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // mosquitto run as root drops to its own user: let it read the test keys.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

impl TlsBroker {
    fn start() -> TlsBroker {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = None;
        let m = Mosquitto::start_with_conf(|port, dir| {
            let etc = dir.join("posd");
            std::fs::create_dir(&etc).unwrap();
            std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
            make_pki(&etc.join("terminals"), &["T1", "T2"]);
            make_pki(&etc.join("backend"), &["posd-host", "posd-fleet"]);
            for acl in ["acl", "acl-backend"] {
                let to = etc.join(acl);
                std::fs::copy(root.join("config/mosquitto").join(acl), &to).unwrap();
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
            let backend_port = loop {
                let p = free_port();
                if p != port {
                    break p;
                }
            };
            paths = Some((etc.join("terminals"), etc.join("backend"), backend_port));
            let shipped =
                std::fs::read_to_string(root.join("config/mosquitto/mosquitto.conf")).unwrap();
            assert!(
                shipped.contains("listener 8883\n")
                    && shipped.contains("listener 8884\n")
                    && shipped.contains("use_username_as_clientid true")
                    && shipped.contains("/etc/mosquitto/posd/")
            );
            shipped
                .replace("listener 8883\n", &format!("listener {port} 127.0.0.1\n"))
                .replace(
                    "listener 8884\n",
                    &format!("listener {backend_port} 127.0.0.1\n"),
                )
                .replace("/etc/mosquitto/posd/", &format!("{}/", etc.display()))
                .replace("persistence true", "persistence false")
        });
        let (terminals, backend, backend_port) = paths.unwrap();
        assert!(
            wait_port(backend_port, Duration::from_secs(10)),
            "the backend listener"
        );
        TlsBroker {
            m,
            terminals,
            backend,
            backend_port,
        }
    }

    /// A terminal certificate on the terminal listener, asking for `client_id`.
    fn terminal(&self, name: &str, client_id: &str) -> Broker {
        Broker {
            url: format!("mqtts://localhost:{}", self.m.port),
            prefix: "pos/v1".into(),
            client_id: client_id.into(),
            tls: Some(tls(&self.terminals, name)),
        }
    }

    /// A backend certificate (`posd-host`, `posd-fleet`) on the backend listener.
    fn backend(&self, name: &str) -> Broker {
        Broker {
            url: format!("mqtts://localhost:{}", self.backend_port),
            prefix: "pos/v1".into(),
            client_id: format!("{name}-{}", fastrand::u32(..)),
            tls: Some(tls(&self.backend, name)),
        }
    }
}

fn as_user(b: &TlsBroker, name: &str) -> Broker {
    if name.starts_with("posd-") {
        b.backend(name)
    } else {
        b.terminal(name, &format!("{name}-{}", fastrand::u32(..)))
    }
}

fn overlay(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("object"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_and_acl_from_the_shipped_broker_config() {
    let b = TlsBroker::start();
    let m = &b.m;
    let pki = &b.terminals;

    let fleet_key = KeyFile::from_key("ops-1", &SigningKey::from_bytes(&[1; 32]));
    let dir = tempfile::tempdir().unwrap();
    let t1 = tls(pki, "T1");
    let extra = format!(
        "[broker.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\n[fleet]\n{}\n",
        t1.ca.display(),
        t1.cert.display(),
        t1.key.display(),
        fleet_key.toml_entry()
    );
    let d = Daemon::start(
        dir.path(),
        "T1",
        &format!("mqtts://localhost:{}", m.port),
        &extra,
    );
    wait_online(&d).await;

    // The fleet account pushes; T1 reads it and reports through the ACL.
    let fleet = as_user(&b, "posd-fleet");
    let good = tool::sign_config(
        &fleet_key,
        "T1",
        1,
        overlay(json!({"limits": {"max_sale_amount": 500}})),
    )
    .unwrap();
    tool::publish(&fleet, "pos/v1/T1/cfg/desired", good.clone(), true)
        .await
        .expect("the fleet may push");
    let rows = eventually(WAIT, "T1 reports version 1 over TLS", || async {
        let rows = tool::fleet_status(&as_user(&b, "posd-fleet"), Duration::from_millis(500))
            .await
            .ok()?;
        let row = rows.into_iter().find(|r| r.terminal == "T1")?;
        (row.config_state.as_deref() == Some("applied") && row.config_version == Some(1))
            .then_some(row)
    })
    .await;
    assert_eq!(rows.online, Some(true));

    // T2's certificate: another terminal's subtree and cfg/desired are closed to it. (MQTT
    // 3.1.1 brokers acknowledge a denied publish and drop it; the retained state shows it.)
    let t2 = as_user(&b, "T2");
    let forged = tool::sign_config(
        &fleet_key,
        "T1",
        9,
        overlay(json!({"limits": {"max_sale_amount": 900000}})),
    )
    .unwrap();
    tool::publish(&t2, "pos/v1/T1/cfg/desired", forged, true)
        .await
        .unwrap();
    tool::publish(&t2, "pos/v1/T2/cfg/desired", b"{}".to_vec(), true)
        .await
        .unwrap();
    tool::publish(
        &t2,
        "pos/v1/T1/status",
        br#"{"terminal":"T1","online":false,"version":"spoofed"}"#.to_vec(),
        true,
    )
    .await
    .unwrap();
    // What it may do lands (so the ACL is not simply refusing everything).
    tool::publish(
        &t2,
        "pos/v1/T2/status",
        br#"{"terminal":"T2","online":true,"version":"t2"}"#.to_vec(),
        true,
    )
    .await
    .unwrap();

    let reader = as_user(&b, "posd-fleet");
    let desired = tool::retained(&reader, "pos/v1/T1/cfg/desired", WAIT)
        .await
        .unwrap();
    assert_eq!(
        desired.as_deref(),
        Some(good.as_slice()),
        "T2 replaced T1's push"
    );
    let rows = tool::fleet_status(&reader, Duration::from_millis(500))
        .await
        .unwrap();
    let t1_row = rows.iter().find(|r| r.terminal == "T1").unwrap();
    assert_ne!(t1_row.version.as_deref(), Some("spoofed"), "{rows:?}");
    let t2_row = rows
        .iter()
        .find(|r| r.terminal == "T2")
        .expect("T2's own status");
    assert_eq!(t2_row.version.as_deref(), Some("t2"));
    // T2 could not put anything on its own cfg/desired either (T1's fleet account can read it).
    let own = tool::retained(&reader, "pos/v1/T2/cfg/desired", Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(own, None);
    // And T1 still runs on version 1.
    let mut c = d.client().await;
    let s = status(&mut c).await;
    assert_eq!(s["config_version"], 1, "{s}");
}

/// What one raw MQTT client sees: messages (topic, payload) and the end of its connection.
enum Seen {
    Msg(String, Vec<u8>),
    Down(String),
}

/// A raw client (rumqttc) with `b`'s certificate and client id; `clean` = a clean session.
async fn connect(
    b: &Broker,
    clean: bool,
    subscribe: &[&str],
) -> (AsyncClient, mpsc::Receiver<Seen>) {
    posd::link::install_crypto_provider();
    let tls = b.tls.as_ref().unwrap();
    let mut o = posd::link::mqtt_options(&b.client_id, &b.url, Some(tls), 30).unwrap();
    o.set_clean_session(clean);
    let (client, mut el) = AsyncClient::new(o, 64);
    let (tx, rx) = mpsc::channel(64);
    let (up_tx, mut up) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_)))
                | Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = up_tx.try_send(Ok(()));
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx
                        .send(Seen::Msg(p.topic.clone(), p.payload.to_vec()))
                        .await;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = up_tx.try_send(Err(e.to_string()));
                    let _ = tx.send(Seen::Down(e.to_string())).await;
                    return;
                }
            }
        }
    });
    tokio::time::timeout(WAIT, up.recv())
        .await
        .expect("connack")
        .expect("event loop")
        .expect("connected");
    for s in subscribe {
        client.subscribe(*s, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(WAIT, up.recv())
            .await
            .expect("suback")
            .expect("event loop")
            .expect("subscribed");
    }
    (client, rx)
}

/// Everything `rx` receives within `wait`.
async fn drain(rx: &mut mpsc::Receiver<Seen>, wait: Duration) -> Vec<Seen> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(s)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        got.push(s);
    }
    got
}

fn messages(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Msg(t, p) => Some((t.clone(), String::from_utf8_lossy(p).into_owned())),
            Seen::Down(_) => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_certificate_one_client_id_and_its_own_topics() {
    let b = TlsBroker::start();
    let host = b.backend("posd-host");
    let t1 = b.terminal("T1", "T1");
    // T2's certificate asking for T1's client id.
    let t2_as_t1 = b.terminal("T2", "T1");

    // T1 has a persistent session with a subscription, then goes offline; the host sends it three
    // answers, which the broker queues for it.
    let (c, _rx) = connect(&t1, false, &["pos/v1/T1/resp"]).await;
    c.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 1..=3 {
        tool::publish(
            &host,
            "pos/v1/T1/resp",
            format!("queued-{i}").into_bytes(),
            false,
        )
        .await
        .unwrap();
    }

    // T2 connects five times as "T1" with a clean session (which, were the client id its own
    // choice, would destroy T1's session and its queue), tries to read T1's topics and to write
    // T1's events.
    for _ in 0..5 {
        let (c, mut rx) = connect(&t2_as_t1, true, &["pos/v1/T1/#", "pos/v1/+/resp"]).await;
        c.publish(
            "pos/v1/T1/events",
            QoS::AtLeastOnce,
            false,
            b"{\"seq\":1}".to_vec(),
        )
        .await
        .unwrap();
        let seen = drain(&mut rx, Duration::from_millis(300)).await;
        assert!(
            messages(&seen).is_empty(),
            "T2 read T1's topics: {:?}",
            messages(&seen)
        );
        c.disconnect().await.unwrap();
    }

    // T1 comes back: its session and its three queued answers are intact.
    let (c1, mut rx1) = connect(&t1, false, &[]).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        match tokio::time::timeout(WAIT, rx1.recv()).await {
            Ok(Some(Seen::Msg(t, p))) => got.push((t, String::from_utf8_lossy(&p).into_owned())),
            other => panic!(
                "T1's queued messages are gone (got {got:?}, then {})",
                match other {
                    Ok(Some(Seen::Down(e))) => e,
                    _ => "nothing".into(),
                }
            ),
        }
    }
    assert_eq!(
        got,
        (1..=3)
            .map(|i| ("pos/v1/T1/resp".to_string(), format!("queued-{i}")))
            .collect::<Vec<_>>()
    );

    // While T1 is connected, T2 asking for its client id does not disconnect it; a host that
    // listens to T1's events never got T2's attempts either.
    let (hc, mut host_rx) = connect(&host, true, &["pos/v1/+/events"]).await;
    for _ in 0..5 {
        let (c, _rx) = connect(&t2_as_t1, true, &[]).await;
        c.publish(
            "pos/v1/T1/events",
            QoS::AtLeastOnce,
            false,
            b"{\"seq\":2}".to_vec(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.disconnect().await.unwrap();
    }
    c1.publish(
        "pos/v1/T1/events",
        QoS::AtLeastOnce,
        false,
        b"{\"seq\":9}".to_vec(),
    )
    .await
    .unwrap();
    let host_seen = messages(&drain(&mut host_rx, Duration::from_millis(500)).await);
    assert_eq!(
        host_seen,
        [("pos/v1/T1/events".to_string(), "{\"seq\":9}".to_string())],
        "only T1 writes T1's events"
    );
    tool::publish(&host, "pos/v1/T1/resp", b"after".to_vec(), false)
        .await
        .unwrap();
    let seen = drain(&mut rx1, Duration::from_millis(500)).await;
    assert!(
        !seen.iter().any(|s| matches!(s, Seen::Down(_))),
        "T1 was disconnected by T2 using its client id"
    );
    assert_eq!(
        messages(&seen),
        [("pos/v1/T1/resp".to_string(), "after".to_string())]
    );
    let _ = hc.disconnect().await;

    // A terminal certificate is not accepted on the backend listener at all.
    let mut on_backend = b.terminal("T2", "posd-host-x");
    on_backend.url = format!("mqtts://localhost:{}", b.backend_port);
    on_backend.tls = Some(TlsConfig {
        ca: b.backend.join("ca.pem"),
        ..tls(&b.terminals, "T2")
    });
    assert!(
        tool::publish(&on_backend, "pos/v1/T1/resp", b"x".to_vec(), false)
            .await
            .is_err(),
        "a terminal certificate connected to the backend listener"
    );
}
