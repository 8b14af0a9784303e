//! Bad input of every kind gets a clear error and changes nothing else: malformed JSON on `ack`
//! and `resp`, an `ack` beyond the highest seq, a `resp` for an unknown request, garbage on the
//! control socket, configurations with wrong types or unknown keys.

mod common;
use common::*;
use posd_core::control as ctl;
use posd_core::protocol::signed::HostKind;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::process::Command;
use std::time::Duration;

async fn publisher(port: u16) -> AsyncClient {
    let opts = MqttOptions::new("bad-input-test", "127.0.0.1", port);
    let (client, mut el) = AsyncClient::new(opts, 64);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_broker_messages_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let broker = Mosquitto::start();
    let d = Daemon::start(
        &dir.path().join("t"),
        "T-BAD",
        &broker.url(),
        &platform.offline_toml(""),
    );
    wait_online(&d).await;
    // Two offline sales: two events wait for an ack (no host is running).
    let mut w = platform.wallet(1, 100_000);
    sale(&d, "1.00", &w.next_code()).await.unwrap();
    sale(&d, "2.00", &w.next_code()).await.unwrap();
    let mut c = d.client().await;
    let before_q = c.call_json(ctl::Queue {}).await.unwrap();
    let before_t = c
        .call_json(ctl::TxnList { limit: Some(100) })
        .await
        .unwrap();
    assert_eq!(before_q["pending"], 2);

    let p = publisher(broker.port).await;
    let root = "pos/v1/T-BAD";
    let garbage: [&[u8]; 6] = [
        b"not json",
        b"{\"upto_seq\":\"two\"}",
        b"{\"upto_seq\":-1}",
        b"\xff\xfe\x00",
        b"{}",
        b"[1,2,3]",
    ];
    for g in garbage {
        p.publish(format!("{root}/ack"), QoS::AtLeastOnce, false, g.to_vec())
            .await
            .unwrap();
        p.publish(format!("{root}/resp"), QoS::AtLeastOnce, false, g.to_vec())
            .await
            .unwrap();
        p.publish(
            format!("{root}/notify"),
            QoS::AtLeastOnce,
            false,
            g.to_vec(),
        )
        .await
        .unwrap();
    }
    // An ack beyond the highest seq, and a resp for a request nobody made.
    p.publish(
        format!("{root}/ack"),
        QoS::AtLeastOnce,
        false,
        br#"{"upto_seq":999999}"#.to_vec(),
    )
    .await
    .unwrap();
    p.publish(
        format!("{root}/resp"),
        QoS::AtLeastOnce,
        false,
        br#"{"req_id":"nobody","txn_id":"01a20000-0000-7000-8000-000000000000","status":"approved"}"#.to_vec(),
    )
    .await
    .unwrap();
    // A settlement notify for a transaction that does not exist.
    p.publish(
        format!("{root}/notify"),
        QoS::AtLeastOnce,
        false,
        br#"{"type":"settlement","txn_id":"nope","status":"settled"}"#.to_vec(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let mut c = d.client().await;
    let after_q = c.call_json(ctl::Queue {}).await.unwrap();
    let after_t = c
        .call_json(ctl::TxnList { limit: Some(100) })
        .await
        .unwrap();
    assert_eq!(after_q["pending"], 2, "nothing was dropped from the outbox");
    assert_eq!(after_q["last_seq"], before_q["last_seq"]);
    assert_eq!(after_q["acked_seq"], before_q["acked_seq"]);
    assert_eq!(after_t, before_t, "no transaction changed");
    let s = status(&mut c).await;
    assert_eq!(s["online"], true, "still running and connected");

    // A real (signed) ack still works afterwards.
    p.publish(
        format!("{root}/ack"),
        QoS::AtLeastOnce,
        false,
        host_signer().seal_json("T-BAD", HostKind::Ack, br#"{"upto_seq":2}"#),
    )
    .await
    .unwrap();
    wait_drained(&d, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket_garbage_gets_an_error_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("mqtt://127.0.0.1:{}", free_port());
    let d = Daemon::start(&dir.path().join("t"), "T-CTL", &nowhere, "");
    let mut c = d.client().await;
    for line in [
        &b"hello\n"[..],
        b"{\"cmd\":\"explode\"}\n",
        b"{\"cmd\":\"sale\"}\n",
        b"{\"cmd\":\"sale\",\"amount\":\"-5\"}\n",
        b"{\"cmd\":\"sale\",\"amount\":\"1.234\"}\n",
        // Strict amounts: no bare point, no missing integer part, no blanks.
        b"{\"cmd\":\"sale\",\"amount\":\"12.\",\"code\":\"134567890123456789\"}\n",
        b"{\"cmd\":\"sale\",\"amount\":\".5\",\"code\":\"134567890123456789\"}\n",
        b"{\"cmd\":\"sale\",\"amount\":\" 1\",\"code\":\"134567890123456789\"}\n",
        // Unknown fields are refused, not ignored.
        b"{\"cmd\":\"status\",\"extra\":1}\n",
        b"{\"cmd\":\"sale\",\"amount\":\"1\",\"currency\":\"XXX\"}\n",
        b"{\"cmd\":\"sale\",\"amount\":\"99999999\"}\n",
        b"{\"cmd\":\"sale\",\"amount\":\"1\",\"code\":\"000201010212\"}\n",
        b"{\"cmd\":\"txn_show\",\"id\":\"nope\"}\n",
        b"\xff\xff\n",
    ] {
        let r = c.call_raw(line).await;
        assert!(
            r.is_err(),
            "{:?} should be refused",
            String::from_utf8_lossy(line)
        );
    }
    // The same connection still answers.
    let s = status(&mut c).await;
    assert_eq!(s["terminal"], "T-CTL");
    let t = c.call_json(ctl::TxnList { limit: None }).await.unwrap();
    assert_eq!(t.as_array().map(Vec::len), Some(0), "nothing was recorded");
}

#[test]
fn bad_configs_are_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[terminal]\nid = 7\ncolour = \"red\"\n[broker]\nurl = \"http://x\"\nkeep_alive_s = \"soon\"\n[limits]\nmax_sale_amount = -1\n[offline]\nallowed_skew_s = \"x\"\n[[offline.issuer_keys]]\nid = 1\npublic_key = \"zz\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_posd"))
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "terminal.id",
        "terminal.colour",
        "broker.keep_alive_s",
        "limits.max_sale_amount",
        "offline.allowed_skew_s",
    ] {
        assert!(err.contains(path), "{path} missing from:\n{err}");
    }
    // The daemon refuses to start on it, with a clear message, and creates nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_posd"))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("will not start"), "{err}");
    // A missing file too.
    let out = Command::new(env!("CARGO_BIN_EXE_posd"))
        .args(["--config", "/nonexistent/posd.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/posd.toml"));
    // And the shipped example is fine.
    let ok = Command::new(env!("CARGO_BIN_EXE_posd"))
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/posd.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// `posd check-config FILE` and `posd --config FILE`: (success, stderr).
fn check_and_start(config: &std::path::Path) -> (bool, String, bool, String) {
    let check = Command::new(env!("CARGO_BIN_EXE_posd"))
        .arg("check-config")
        .arg(config)
        .output()
        .unwrap();
    let start = Command::new(env!("CARGO_BIN_EXE_posd"))
        .arg("--config")
        .arg(config)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    (
        check.status.success(),
        String::from_utf8_lossy(&check.stderr).into_owned(),
        start.status.success(),
        String::from_utf8_lossy(&start.stderr).into_owned(),
    )
}

#[test]
fn a_control_socket_on_the_journal_or_another_file_is_refused_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("mqtt://127.0.0.1:{}", free_port());
    // A terminal that ran once: its journal exists.
    let mut d = Daemon::start(&dir.path().join("t"), "T-SOCK", &nowhere, "");
    d.stop();
    let journal = d.db_path();
    let journal_bytes = std::fs::read(&journal).unwrap();
    assert!(!journal_bytes.is_empty());
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "the shop's notes").unwrap();
    let state = journal.parent().unwrap().to_path_buf();
    for (socket, why) in [
        (journal.clone(), "the journal's own file or directory"),
        (state.clone(), "the journal's own file or directory"),
        // Not there (WAL mode), but SQLite's own companion file: refused by name.
        (
            state.join(".").join("posd.sqlite-journal"),
            "the journal's own file or directory",
        ),
        (notes.clone(), "exists and is a regular file"),
        (dir.path().to_path_buf(), "exists and is a directory"),
    ] {
        let config = dir.path().join("collide.toml");
        let text = std::fs::read_to_string(&d.config).unwrap().replace(
            &format!("socket = \"{}\"", d.socket.display()),
            &format!("socket = \"{}\"", socket.display()),
        );
        assert!(text.contains(&socket.display().to_string()));
        std::fs::write(&config, text).unwrap();
        let (checked, check_err, started, start_err) = check_and_start(&config);
        assert!(!checked, "check-config accepted {}", socket.display());
        assert!(
            check_err.contains("control.socket") && check_err.contains(why),
            "{}: {check_err}",
            socket.display()
        );
        assert!(!started, "posd started on {}", socket.display());
        assert!(
            start_err.contains("control.socket") && start_err.contains("will not start"),
            "{start_err}"
        );
    }
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        journal_bytes,
        "the journal is intact"
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "the shop's notes");
    // And the terminal still starts on its own socket path.
    d.restart();
    d.stop();
}
