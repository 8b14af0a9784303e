//! Production MQTT (issue 8): mosquitto configured from `config/mosquitto/` (TLS, client
//! certificates as identities, the ACL), certificates from `scripts/make-test-pki.sh`. posd
//! connects with its client certificate and takes a signed push from the fleet account; a
//! terminal's certificate can publish neither into another terminal's subtree nor onto
//! `cfg/desired`.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use posd::config::TlsConfig;
use posd::fleet::tool::{self, Broker, KeyFile};
use serde_json::{json, Map, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn tls(pki: &Path, name: &str) -> TlsConfig {
    TlsConfig {
        ca: pki.join("ca.pem"),
        cert: pki.join(format!("{name}.pem")),
        key: pki.join(format!("{name}.key")),
    }
}

fn as_user(m: &Mosquitto, pki: &Path, name: &str) -> Broker {
    Broker {
        url: format!("mqtts://localhost:{}", m.port),
        prefix: "pos/v1".into(),
        client_id: format!("{name}-{}", fastrand::u32(..)),
        tls: Some(tls(pki, name)),
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pki_path = None;
    let m = Mosquitto::start_with_conf(|port, dir| {
        let pki = dir.join("pki");
        let out = Command::new(root.join("scripts/make-test-pki.sh"))
            .arg(&pki)
            .args(["T1", "T2", "posd-fleet"])
            .output()
            .expect("openssl and bash are needed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // mosquitto run as root drops to its own user: let it read the test keys.
        std::fs::set_permissions(&pki, std::fs::Permissions::from_mode(0o755)).unwrap();
        for e in std::fs::read_dir(&pki).unwrap() {
            let p = e.unwrap().path();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let acl = dir.join("acl");
        std::fs::copy(root.join("config/mosquitto/acl"), &acl).unwrap();
        pki_path = Some(pki.clone());
        let shipped =
            std::fs::read_to_string(root.join("config/mosquitto/mosquitto.conf")).unwrap();
        assert!(shipped.contains("listener 8883\n") && shipped.contains("/etc/mosquitto/posd/"));
        shipped
            .replace("listener 8883\n", &format!("listener {port} 127.0.0.1\n"))
            .replace("/etc/mosquitto/posd/acl", &acl.display().to_string())
            .replace("/etc/mosquitto/posd/", &format!("{}/", pki.display()))
            .replace("persistence true", "persistence false")
    });
    let pki = pki_path.unwrap();

    let fleet_key = KeyFile::from_key("ops-1", &SigningKey::from_bytes(&[1; 32]));
    let dir = tempfile::tempdir().unwrap();
    let t1 = tls(&pki, "T1");
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
    let fleet = as_user(&m, &pki, "posd-fleet");
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
        let rows = tool::fleet_status(&as_user(&m, &pki, "posd-fleet"), Duration::from_millis(500))
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
    let t2 = as_user(&m, &pki, "T2");
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

    let reader = as_user(&m, &pki, "posd-fleet");
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
