//! Issue 15 items 3–4 through the real daemon, a real mosquitto, the sandbox host and the
//! printer emulator: a code in flight is refused naming its sale; after a kill -9 in the middle
//! of a pending sale the recovered sale is `posctl current`'s (and the console's), the same code
//! again is refused naming it, and its digest leaves the index when it ends; with the printer
//! out of paper the cashier reads "receipt waiting: paper out", then that it printed.

mod common;
use common::*;
use posd_core::control as ctl;
use posd_sandbox::printer_emulator::{EmulatorScript, PrinterEmulator};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// ..33: the sandbox host answers `pending` to the authorize and to every query.
const PENDING_CODE: &str = "134567890123456733";

fn posctl(socket: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_posctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run posctl");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn refused_sale(d: &Daemon, code: &str) -> (String, String) {
    match sale(d, "9.99", code).await {
        Ok(v) => panic!("the same code sold again: {v}"),
        Err(posd::control::ControlError::Refused { code, message }) => (code, message),
        Err(e) => panic!("{e}"),
    }
}

fn codes_in_flight(d: &Daemon) -> u64 {
    posd::store::Db::open(&d.db_path())
        .expect("journal")
        .codes_in_flight()
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_in_flight_is_refused_naming_its_sale_even_after_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let _host = Host::start(&broker.url(), &dir.path().join("host.sqlite"));
    // A long deadline: the sale stays pending across the kill and the checks after it.
    let slow = "[devices]\nconsole = true\n[online]\nquery_interval_s = 2\nquery_total_s = 120\nreverse_backoff_initial_s = 1\nreverse_backoff_max_s = 2\n";
    let mut d = Daemon::start(&dir.path().join("t"), "T-ONECODE", &broker.url(), slow);
    wait_online(&d).await;

    let socket = d.socket.clone();
    let first = tokio::spawn(async move {
        let mut c = posd::control::ControlClient::connect(&socket)
            .await
            .unwrap();
        c.call_json(ctl::Sale {
            method: None,
            amount: "12.34".into(),
            currency: None,
            code: Some(PENDING_CODE.into()),
        })
        .await
    });
    let id = eventually(Duration::from_secs(10), "the sale pending", || async {
        let mut c = d.client().await;
        let cur = c.call_json(ctl::Current {}).await.ok()?;
        (cur["state"] == "pending").then(|| cur["txn_id"].as_str().unwrap().to_string())
    })
    .await;
    let short = &id[id.len() - 12..];

    // While it is in flight the same code is refused, naming it (not "busy").
    let (code, msg) = refused_sale(&d, PENDING_CODE).await;
    assert_eq!(code, "code_in_flight", "{msg}");
    assert!(msg.contains(&id) && msg.contains(short), "{msg}");
    assert!(msg.contains("12.34 CNY"), "{msg}");
    assert_eq!(codes_in_flight(&d), 1);

    // Power cut while the customer confirms.
    d.kill9();
    assert!(first.await.unwrap().is_err(), "no outcome was told");
    d.restart();

    // The recovered sale is the till's: `current` names it, marked recovered.
    let mut c = d.client().await;
    let cur: Value = c.call_json(ctl::Current {}).await.unwrap();
    assert_eq!(cur["txn_id"], id.as_str(), "{cur}");
    assert_eq!(cur["recovered"], true, "{cur}");
    assert_eq!(cur["short_ref"], short, "{cur}");
    assert_eq!(cur["amount"], 1234, "{cur}");
    let (rc, out) = posctl(&d.socket, &["current"]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains(&id), "{out}");
    assert!(out.contains("interrupted by a restart"), "{out}");
    let (rc, out) = posctl(&d.socket, &["current", "--json"]);
    assert_eq!(rc, 0, "{out}");
    let j: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(j["recovered"], true, "{out}");
    // The console said so at start.
    let console = eventually(Duration::from_secs(5), "console line", || async {
        let s = std::fs::read_to_string(d.stdout_path()).unwrap_or_default();
        s.contains("interrupted by a restart").then_some(s)
    })
    .await;
    assert!(console.contains(short), "{console}");

    // The same code again after the restart: refused, naming the recovered sale.
    let (code, msg) = refused_sale(&d, PENDING_CODE).await;
    assert_eq!(code, "code_in_flight", "{msg}");
    assert!(msg.contains(&id), "{msg}");
    // Status keeps the refusal, for machines and for people.
    let mut c = d.client().await;
    let s = status(&mut c).await;
    assert_eq!(s["last_refusal"]["code"], "code_in_flight", "{s}");
    assert_eq!(s["last_refusal"]["txn_id"], id.as_str(), "{s}");
    let (_, out) = posctl(&d.socket, &["status"]);
    assert!(out.contains("this code already pays sale"), "{out}");
    // A different code is still refused while the recovered sale holds the till: busy.
    let (code, _) = refused_sale(&d, "134567890123456780").await;
    assert_eq!(code, "busy");

    // The cashier cancels: the reversal runs; once final the code leaves the index and the
    // till is free.
    let mut c = d.client().await;
    c.call_json(ctl::Cancel {}).await.expect("cancel");
    eventually(Duration::from_secs(20), "reversed", || async {
        let mut c = d.client().await;
        let v = c.call_json(ctl::TxnShow { id: id.clone() }).await.ok()?;
        (v["txn"]["state"] == "reversed").then_some(())
    })
    .await;
    assert_eq!(codes_in_flight(&d), 0);
    // The receipt's short reference finds the sale too (walked from the newest in steps);
    // one that names nothing is "not found".
    let mut c = d.client().await;
    let v: Value = c
        .call_json(ctl::TxnShow {
            id: short.to_string(),
        })
        .await
        .expect("txn show by short reference");
    assert_eq!(v["txn"]["id"], id.as_str(), "{v}");
    assert_eq!(v["txn"]["state"], "reversed", "{v}");
    let (rc, out) = posctl(&d.socket, &["txn", "show", "000000000000"]);
    assert_ne!(rc, 0, "{out}");
    assert!(out.contains("no transaction 000000000000"), "{out}");
    let cur: Value = c.call_json(ctl::Current {}).await.unwrap();
    assert!(cur.is_null(), "{cur}");
    // Nothing of the code is in the journal in clear.
    let raw = std::fs::read(d.db_path()).unwrap();
    let wal = std::fs::read(d.db_path().with_extension("sqlite-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(
            !bytes
                .windows(PENDING_CODE.len())
                .any(|w| w == PENDING_CODE.as_bytes()),
            "the code is stored in clear"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_paper_the_cashier_reads_receipt_waiting_then_that_it_printed() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let emu = PrinterEmulator::start(EmulatorScript {
        paper_out: true,
        ..EmulatorScript::default()
    })
    .await
    .unwrap();
    // No broker: the sales are offline (P1) and wait to sync.
    let nowhere = format!("mqtt://127.0.0.1:{}", free_port());
    let extra = format!(
        "{}[devices]\nconsole = true\n[devices.printer]\nstatus = \"required\"\nstatus_timeout_ms = 500\nfault_poll_ms = 1000\nhealth_interval_ms = 1000\n[devices.printer.transport]\ntype = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n\n[receipt]\nshop_name = \"Noodle Bar\"\nwidth = 32\n",
        platform.offline_toml(""),
        emu.port()
    );
    let d = Daemon::start(&dir.path().join("t"), "T-PAPER", &nowhere, &extra);
    eventually(Duration::from_secs(10), "paper out in status", || async {
        let mut c = d.client().await;
        let s = status(&mut c).await;
        (s["printer"]["state"] == "paper_out").then_some(())
    })
    .await;
    let mut w = platform.wallet(3, 100_000);
    let v = sale(&d, "8.80", &w.next_code())
        .await
        .expect("offline sale");
    let id = v["txn_id"].as_str().unwrap().to_string();

    // The result line itself says the receipt waits, and why.
    let console = || std::fs::read_to_string(d.stdout_path()).unwrap_or_default();
    let line = format!("[till] {id}: APPROVED OFFLINE — receipt waiting: paper out");
    eventually(
        Duration::from_secs(5),
        "the result with the note",
        || async { console().contains(&line).then_some(()) },
    )
    .await;
    // Status (typed and for people) and the console's alerts.
    let s = eventually(Duration::from_secs(5), "alerts", || async {
        let mut c = d.client().await;
        let s = status(&mut c).await;
        (s["alerts"].as_array()?.len() == 2).then_some(s)
    })
    .await;
    assert_eq!(s["alerts"][0]["code"], "receipt_waiting", "{s}");
    assert_eq!(s["alerts"][0]["text"], "receipt waiting: paper out", "{s}");
    assert_eq!(s["alerts"][1]["text"], "offline: 1 sale to sync", "{s}");
    assert_eq!(s["queue"]["offline_unsynced"], 1, "{s}");
    let (_, out) = posctl(&d.socket, &["status"]);
    assert!(
        out.contains("ALERT      receipt waiting: paper out"),
        "{out}"
    );
    assert!(out.contains("ALERT      offline: 1 sale to sync"), "{out}");
    let (_, out) = posctl(&d.socket, &["current"]);
    assert!(out.contains("receipt waiting: paper out"), "{out}");
    eventually(Duration::from_secs(5), "console alerts", || async {
        let c = console();
        (c.contains("[till] receipt waiting: paper out")
            && c.contains("[till] offline: 1 sale to sync"))
        .then_some(())
    })
    .await;

    // Paper in: the receipt prints and the cashier is told.
    emu.set_paper_out(false);
    eventually(Duration::from_secs(20), "receipt printed", || async {
        console()
            .contains("[till] receipt printed: the waiting receipts are out")
            .then_some(())
    })
    .await;
    let mut c = d.client().await;
    let s = status(&mut c).await;
    let codes: Vec<&str> = s["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["code"].as_str())
        .collect();
    assert_eq!(codes, ["offline"], "{s}");
}
