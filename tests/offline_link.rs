//! Issue 15, items 1 and 2, end to end with a real mosquitto, the real daemon and the sandbox
//! host as its own process: with the broker unreachable (or the host silent) an online code is
//! refused at once with `link_down` and nothing is journaled for it, while P1 codes and card
//! store-and-forward still sell and the batch closes; a request that did leave before the
//! connection dropped keeps the query/reverse rules; a batch closed while a sale talks to the
//! host carries it into the next batch, and the host reconciles both batches.

mod common;
use common::*;
use posd::control::ControlError;
use posd_core::control as ctl;
use serde_json::Value;
use std::time::{Duration, Instant};

const FAST: &str = "[online]\nquery_interval_s = 1\nquery_total_s = 4\nreverse_backoff_initial_s = 1\nreverse_backoff_max_s = 2\n";

/// What the issue allows for refusing an online code while offline.
const AT_ONCE: Duration = Duration::from_secs(1);

fn code(tail: &str) -> String {
    format!("1345678901234567{tail}")
}

/// Track 1 + track 2 of a sandbox test card, expiry Dec 2035.
fn swipe(pan: &str) -> String {
    format!("%B{pan}^SANDBOX/TEST^3512101000000000?;{pan}=3512101000000000?")
}

async fn call_sale(
    d: &Daemon,
    amount: &str,
    code: Option<String>,
    method: Option<ctl::SaleMethod>,
) -> Result<Value, ControlError> {
    let mut c = d.client().await;
    c.call_json(ctl::Sale {
        amount: amount.into(),
        currency: None,
        code,
        method,
    })
    .await
}

async fn txn_state(d: &Daemon, id: &str) -> String {
    let mut c = d.client().await;
    let v = c
        .call_json(ctl::TxnShow { id: id.into() })
        .await
        .expect("txn show");
    v["txn"]["state"].as_str().unwrap_or("").to_string()
}

async fn wait_state(d: &Daemon, id: &str, want: &str) {
    eventually(Duration::from_secs(30), &format!("{id} {want}"), || async {
        (txn_state(d, id).await == want).then_some(())
    })
    .await
}

async fn wait_offline(d: &Daemon) {
    eventually(Duration::from_secs(10), "posd offline", || async {
        let mut c = d.client().await;
        (status(&mut c).await["online"] == Value::Bool(false)).then_some(())
    })
    .await
}

/// Transactions the daemon's journal holds, and how many are in flight.
fn journal_counts(d: &Daemon) -> (i64, i64) {
    let db = rusqlite::Connection::open(d.db_path()).expect("journal");
    db.query_row(
        "SELECT COUNT(*), COALESCE(SUM(state IN ('authorizing', 'pending', 'reversing', 'closing')), 0)
         FROM txns",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("count")
}

/// Refused with `link_down`, naming the way out, within [`AT_ONCE`].
async fn refused_at_once(
    what: &str,
    f: impl std::future::Future<Output = Result<Value, ControlError>>,
) {
    let t0 = Instant::now();
    let r = f.await;
    let took = t0.elapsed();
    eprintln!("{what}: answered in {took:?}");
    match r {
        Err(ControlError::Refused { code, message }) => {
            assert_eq!(code, "link_down", "{what}: {message}");
            assert!(
                message.contains("Offline — ask for the offline code, or pay another way"),
                "{what}: {message}"
            );
        }
        other => panic!("{what}: expected a link_down refusal, got {other:?}"),
    }
    assert!(took < AT_ONCE, "{what}: refused after {took:?}");
}

async fn batch_close(d: &Daemon) -> Value {
    let mut c = d.client().await;
    c.call_json(ctl::BatchClose {}).await.expect("batch close")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_unreachable_online_codes_refused_at_once_offline_ways_sell_the_day_closes() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let mut broker = Mosquitto::start();
    let (secret, public) = card_keys(dir.path());
    let host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &[
            "--issuer-key".into(),
            platform.host_key_arg(),
            "--card-key".into(),
            secret.display().to_string(),
        ],
    );
    let d = Daemon::start(
        &dir.path().join("t"),
        "T-LINK",
        &broker.url(),
        &format!(
            "{FAST}\n[merchant_qr]\nmode = \"platform\"\n\n[card]\nhost_public_key = \"{public}\"\n\n[card.store_and_forward]\nenabled = true\nfloor_limit = 5000\nmax_count = 5\nmax_age_s = 3600\n\n{}",
            platform.offline_toml("")
        ),
    );
    wait_online(&d).await;
    let online = sale(&d, "1.00", &code("80")).await.expect("online sale");
    assert_eq!(online["result"], "approved", "{online}");

    broker.kill();
    wait_offline(&d).await;
    let mut c = d.client().await;
    assert_eq!(status(&mut c).await["broker"]["state"], "not_connected");
    let before = journal_counts(&d);

    // An online code and a merchant-presented QR: refused at once, nothing journaled.
    refused_at_once("online code", sale(&d, "2.00", &code("80"))).await;
    refused_at_once(
        "merchant QR",
        call_sale(&d, "3.00", None, Some(ctl::SaleMethod::MerchantQr)),
    )
    .await;
    assert_eq!(
        journal_counts(&d),
        before,
        "nothing journaled for a request that never left"
    );
    let mut c = d.client().await;
    let cur: Value = c.call_json(ctl::Current {}).await.expect("current");
    assert_eq!(cur, Value::Null, "nothing in flight");

    // The offline ways still sell.
    let mut w = platform.wallet(77, 100_000);
    let p1 = sale(&d, "4.00", &w.next_code()).await.expect("P1 sale");
    assert_eq!(p1["state"], "approved_offline", "{p1}");
    let card = call_sale(
        &d,
        "5.00",
        Some(swipe("4111111111111111")),
        Some(ctl::SaleMethod::Presented),
    )
    .await
    .expect("card stored");
    assert_eq!(card["state"], "approved_offline", "{card}");

    // The day closes, offline, at once.
    let t0 = Instant::now();
    let z = batch_close(&d).await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(z["report"]["carried_count"], 0, "{z}");
    assert_eq!(z["report"]["sales_count"], 3, "{z}");
    assert_eq!(journal_counts(&d).1, 0);
    let log = std::fs::read_to_string(d.log_path()).unwrap_or_default();
    assert!(
        !log.contains("authorize not sent"),
        "no authorize was attempted offline: {log}"
    );

    // Back online: everything reaches the host, which settles the offline sales and
    // reconciles the batch.
    broker.restart();
    wait_online(&d).await;
    for v in [&p1, &card] {
        wait_state(&d, v["txn_id"].as_str().unwrap(), "settled").await;
    }
    wait_state(&d, z["txn_id"].as_str().unwrap(), "reconciled").await;
    wait_drained(&d, Duration::from_secs(20)).await;
    let a = host.audit();
    assert!(a.ok(), "audit: {a:?}");
    // And online codes sell again.
    let again = sale(&d, "6.00", &code("80")).await.expect("online again");
    assert_eq!(again["result"], "approved", "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_host_is_offline_too() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let broker = Mosquitto::start();
    let mut host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--issuer-key".into(), platform.host_key_arg()],
    );
    let d = Daemon::start_custom(
        &dir.path().join("t"),
        "T-SILENT",
        &broker.url(),
        &format!("{FAST}\n{}", platform.offline_toml("")),
        "warn",
        &format!("host_silence_s = 2\n{}", host_signer().toml_entry()),
    );
    wait_online(&d).await;
    host.kill();
    // The broker is up; a P1 sale's event is published and the host owes its ack.
    let mut w = platform.wallet(78, 100_000);
    let p1 = sale(&d, "4.00", &w.next_code()).await.expect("P1 sale");
    assert_eq!(p1["state"], "approved_offline");
    // Still connected, still usable until the silence lasts host_silence_s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut c = d.client().await;
    let st = status(&mut c).await;
    assert_eq!(st["online"], Value::Bool(true));
    // How the terminal knows: connected, the host silent since the P1 sale's event.
    assert_eq!(st["broker"]["state"], "host_silent", "{st}");
    assert!(st["broker"]["silent_since"].is_u64(), "{st}");
    let before = journal_counts(&d);
    refused_at_once("online code, host silent", sale(&d, "2.00", &code("80"))).await;
    assert_eq!(journal_counts(&d), before);
    // The host answers again: usable again.
    host.restart();
    wait_drained(&d, Duration::from_secs(20)).await;
    let mut c = d.client().await;
    assert_eq!(status(&mut c).await["broker"]["state"], "usable");
    let v = sale(&d, "2.00", &code("80")).await.expect("online again");
    assert_eq!(v["result"], "approved", "{v}");
    wait_state(&d, p1["txn_id"].as_str().unwrap(), "settled").await;
    wait_drained(&d, Duration::from_secs(20)).await;
    let a = host.audit();
    assert!(a.ok(), "audit: {a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_dropped_right_after_the_authorize_keeps_the_query_reverse_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start();
    let host_db = dir.path().join("host.sqlite");
    let host = Host::start(&broker.url(), &host_db);
    let d = Daemon::start(&dir.path().join("t"), "T-DROP", &broker.url(), FAST);
    wait_online(&d).await;
    // "55": the host charges and never answers; the authorize leaves, then the broker goes.
    let socket = d.socket.clone();
    let task = tokio::spawn(async move {
        let mut c = posd::control::ControlClient::connect(&socket)
            .await
            .unwrap();
        c.call_json(ctl::Sale {
            method: None,
            amount: "7.77".into(),
            currency: None,
            code: Some(code("55")),
        })
        .await
    });
    let id: String = eventually(
        Duration::from_secs(10),
        "the host has the authorize",
        || {
            let host_db = host_db.clone();
            async move {
                let db = rusqlite::Connection::open(&host_db).ok()?;
                db.query_row("SELECT txn_id FROM ledger LIMIT 1", [], |r| r.get(0))
                    .ok()
            }
        },
    )
    .await;
    broker.kill();
    let v: Value = task.await.unwrap().expect("the sale is answered");
    // Not the link_down refusal: the request left, so the usual rules decided (no final
    // answer in time → NOT PAID, reversal durable).
    assert_eq!(v["txn_id"], id.as_str(), "{v}");
    assert_eq!(v["result"], "cancelled", "{v}");
    assert_eq!(txn_state(&d, &id).await, "reversing");
    broker.restart();
    wait_state(&d, &id, "reversed").await;
    wait_drained(&d, Duration::from_secs(20)).await;
    let a = host.audit();
    assert!(a.ok(), "audit: {a:?}");
    assert!(a.unresolved.is_empty(), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_closed_with_a_sale_in_flight_carries_it_and_the_host_reconciles_both() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let host = Host::start(&broker.url(), &dir.path().join("host.sqlite"));
    let d = Daemon::start(
        &dir.path().join("t"),
        "T-CARRY",
        &broker.url(),
        "[online]\nquery_interval_s = 2\nquery_total_s = 30\n",
    );
    wait_online(&d).await;
    let first = sale(&d, "1.00", &code("80")).await.expect("sale");
    assert_eq!(first["result"], "approved");
    // "22": pending while the customer confirms; the second query approves (~4 s).
    let socket = d.socket.clone();
    let task = tokio::spawn(async move {
        let mut c = posd::control::ControlClient::connect(&socket)
            .await
            .unwrap();
        c.call_json(ctl::Sale {
            method: None,
            amount: "12.34".into(),
            currency: None,
            code: Some(code("22")),
        })
        .await
    });
    let id: String = eventually(Duration::from_secs(10), "a sale pending", || async {
        let mut c = d.client().await;
        let cur: Value = c.call_json(ctl::Current {}).await.ok()?;
        (cur["state"] == "pending").then(|| cur["txn_id"].as_str().unwrap_or("").to_string())
    })
    .await;
    // The day closes now, with the sale still talking to the host.
    let z1 = batch_close(&d).await;
    let r1 = &z1["report"];
    assert_eq!(r1["carried_count"], 1, "{z1}");
    assert_eq!(r1["carried_txns"][0], id.as_str(), "{z1}");
    assert_eq!(
        (r1["sales_count"].as_u64(), r1["net_total"].as_i64()),
        (Some(1), Some(100))
    );
    let v: Value = task.await.unwrap().expect("the sale is answered");
    assert_eq!(v["result"], "approved", "{v}");
    // The next batch counts it.
    let z2 = batch_close(&d).await;
    let r2 = &z2["report"];
    assert_eq!(r2["carried_in_count"], 1, "{z2}");
    assert_eq!(r2["carried_count"], 0, "{z2}");
    assert_eq!(
        (r2["sales_count"].as_u64(), r2["net_total"].as_i64()),
        (Some(1), Some(1234))
    );
    // The host agrees with both.
    for z in [&z1, &z2] {
        wait_state(&d, z["txn_id"].as_str().unwrap(), "reconciled").await;
    }
    wait_drained(&d, Duration::from_secs(20)).await;
    let a = host.audit();
    assert!(a.ok(), "audit: {a:?}");
    assert!(
        a.batches.iter().all(|b| b.status == "reconciled") && a.batches.len() == 2,
        "{:?}",
        a.batches
    );
}
