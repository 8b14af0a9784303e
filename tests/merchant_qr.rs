//! Merchant-presented QR end to end (DESIGN §1.3, docs/payments.md): the real daemon, a real
//! mosquitto, the sandbox host as its own process and its wallet (`posctl wallet pay-qr`).
//! Paid before the timeout; never paid → closed; paid while closing; the notify lost but a
//! query finds it; the daemon SIGKILLed while waiting; a payment after the cashier was told
//! "not paid" refunded automatically — and the ledger audit agrees every time.

mod common;
use common::*;
use posd_core::control as ctl;
use serde_json::Value;
use std::time::Duration;

const ORDER: &str = r#"
[online]
reverse_backoff_initial_s = 1
reverse_backoff_max_s = 2

[merchant_qr]
timeout_s = 4
query_interval_s = 1
close_wait_s = 2

[merchant_qr.merchant]
merchant_category_code = "5812"
country_code = "CN"
merchant_name = "BEST CANTEEN"
merchant_city = "BEIJING"

[[merchant_qr.merchant.accounts]]
tag = 26
guid = "com.sandbox.posd"
fields = { "01" = "M0001" }
"#;

/// Starts a merchant-QR sale in the background; returns the code shown and the pending answer.
async fn start_order(d: &Daemon, amount: &str) -> (String, String, tokio::task::JoinHandle<Value>) {
    let mut c = d.client().await;
    let amount = amount.to_string();
    let task = tokio::spawn(async move {
        match c
            .call_json(ctl::Sale {
                amount,
                currency: None,
                code: None,
                method: Some(ctl::SaleMethod::MerchantQr),
            })
            .await
        {
            Ok(v) => v,
            Err(e) => serde_json::json!({"result": "refused", "error": e.to_string()}),
        }
    });
    let (id, qr) = eventually(Duration::from_secs(10), "the code on show", || async {
        let mut c = d.client().await;
        let v = c.call_json(ctl::Current {}).await.ok()?;
        Some((
            v["txn_id"].as_str()?.to_string(),
            v["qr"].as_str()?.to_string(),
        ))
    })
    .await;
    (id, qr, task)
}

async fn txn(d: &Daemon, id: &str) -> Value {
    let mut c = d.client().await;
    c.call_json(ctl::TxnShow { id: id.into() })
        .await
        .expect("txn show")["txn"]
        .clone()
}

async fn wait_state(d: &Daemon, id: &str, want: &str) -> Value {
    eventually(Duration::from_secs(20), &format!("{id} {want}"), || async {
        let t = txn(d, id).await;
        (t["state"] == want).then_some(t)
    })
    .await
}

/// Waits until the host has registered the order (the `order` request left before a kill).
async fn order_at_host(host: &Host, id: &str) {
    let db = host.db.clone();
    eventually(Duration::from_secs(10), "the order at the host", || {
        let (db, key) = (db.clone(), id.to_string());
        async move {
            let conn = posd_sandbox::host::open_db(&db).ok()?;
            conn.query_row("SELECT 1 FROM orders WHERE txn_id = ?1", [&key], |_| Ok(()))
                .ok()
        }
    })
    .await;
}

fn wallet_pay(broker: &str, qr: &str) -> bool {
    std::process::Command::new(common::sandbox_bin())
        .args(["wallet", "pay-qr", "--broker", broker, qr])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("posctl wallet pay-qr")
        .success()
}

fn host_args() -> Vec<String> {
    vec!["--pay-after-ms".into(), "500".into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_ends_right_and_the_ledger_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let host = Host::start_with_args(&broker.url(), &dir.path().join("host.sqlite"), &host_args());
    let d = Daemon::start(&dir.path().join("t"), "T-MPM", &broker.url(), ORDER);
    wait_online(&d).await;

    // Paid by the sandbox customer before the timeout; the payload is a valid dynamic EMVCo
    // code carrying the amount, the reference and the terminal.
    let (id, qr, task) = start_order(&d, "12.11").await;
    let p = posd_core::codes::emv_mpm::parse(&qr).expect("the shown code re-parses");
    assert!(p.is_dynamic());
    assert_eq!(p.amount_minor().unwrap().0, 1211);
    assert_eq!(p.sub(62, 7), Some("T-MPM"));
    let reference = p.sub(62, 5).unwrap().to_string();
    assert_eq!(reference.len(), 25);
    assert!(id.replace('-', "").starts_with(&reference));
    let v = task.await.unwrap();
    assert_eq!(v["result"], "approved", "{v}");
    wait_state(&d, &id, "approved").await;

    // Never paid: closed at the timeout, nobody charged.
    let (id, _, task) = start_order(&d, "12.22").await;
    let v = task.await.unwrap();
    assert_eq!(v["result"], "cancelled", "{v}");
    wait_state(&d, &id, "closed").await;
    // A closed order can no longer be paid.
    let t = txn(&d, &id).await;
    assert!(!wallet_pay(
        &broker.url(),
        t["detail"]["qr"].as_str().unwrap()
    ));

    // The cashier cancels and the customer pays at that instant: the close reports the payment
    // while the cashier still waits, so it is the sale.
    let (id, _, task) = start_order(&d, "12.44").await;
    let mut c = d.client().await;
    c.call_json(ctl::Cancel {}).await.expect("cancel");
    let v = task.await.unwrap();
    assert_eq!(v["result"], "approved", "{v}");
    wait_state(&d, &id, "approved").await;

    // Paid, the notify lost: the polling query finds it.
    let (id, _, task) = start_order(&d, "12.33").await;
    let v = task.await.unwrap();
    assert_eq!(v["result"], "approved", "{v}");
    wait_state(&d, &id, "approved").await;

    // A customer's wallet scans the code and pays.
    let (id, qr, task) = start_order(&d, "12.50").await;
    assert!(wallet_pay(&broker.url(), &qr));
    let v = task.await.unwrap();
    assert_eq!(v["result"], "approved", "{v}");
    wait_state(&d, &id, "approved").await;

    wait_drained(&d, Duration::from_secs(20)).await;
    let a = host.audit();
    assert!(a.ok(), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_waiting_the_order_is_resolved_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let host = Host::start_with_args(&broker.url(), &dir.path().join("host.sqlite"), &host_args());
    let mut d = Daemon::start(
        &dir.path().join("t"),
        "T-MPMK",
        &broker.url(),
        &format!("{ORDER}\n{}", manager_toml()),
    );
    wait_online(&d).await;

    // Paid while posd is dead: the restart's query finds the payment — a sale.
    let (paid, qr, task) = start_order(&d, "20.50").await;
    order_at_host(&host, &paid).await;
    d.kill9();
    let _ = task.await;
    assert!(wallet_pay(&broker.url(), &qr));
    d.restart();
    wait_state(&d, &paid, "approved").await;

    // Not paid while posd is dead: closed after the restart, nobody charged.
    let (open, _, task) = start_order(&d, "20.22").await;
    d.kill9();
    let _ = task.await;
    d.restart();
    wait_state(&d, &open, "closed").await;

    // Killed while closing (the host away, so the close is journaled but unanswered), and the
    // customer pays at the instant the close finally arrives (..44): after the restart the
    // retried close reports the payment — nobody waits any more, so it is refunded.
    let (closing, _, task) = start_order(&d, "21.44").await;
    order_at_host(&host, &closing).await;
    let mut host = host;
    host.kill();
    d.client()
        .await
        .call_json(ctl::Cancel {})
        .await
        .expect("cancel");
    wait_state(&d, &closing, "closing").await;
    d.kill9();
    let _ = task.await;
    host.restart();
    d.restart();
    let t = wait_state(&d, &closing, "approved").await;
    assert!(
        t["reason"]
            .as_str()
            .unwrap_or("")
            .contains("refunded automatically"),
        "{t}"
    );
    eventually(Duration::from_secs(20), "the automatic refund", || async {
        let mut c = d.client().await;
        let list = c.call_json(ctl::TxnList { limit: Some(20) }).await.ok()?;
        list.as_array()?
            .iter()
            .find(|x| {
                x["kind"] == "refund"
                    && x["state"] == "approved"
                    && x["detail"]["original"] == closing.as_str()
            })
            .cloned()
    })
    .await;

    wait_drained(&d, Duration::from_secs(20)).await;
    let a = host.audit();
    assert!(a.ok(), "{a:?}");
    assert!(a.unresolved.is_empty(), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_after_the_cashier_heard_not_paid_is_refunded() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let mut host =
        Host::start_with_args(&broker.url(), &dir.path().join("host.sqlite"), &host_args());
    let d = Daemon::start(
        &dir.path().join("t"),
        "T-MPMR",
        &broker.url(),
        &format!("{ORDER}\n{}", manager_toml()),
    );
    wait_online(&d).await;

    // Amount ..44: the customer pays at the instant the close arrives. The host is down when
    // the cashier cancels, so the close goes unanswered and the cashier hears "not paid".
    let (id, _, task) = start_order(&d, "30.44").await;
    // The platform must know the order before it goes away (local mode shows the code at once).
    order_at_host(&host, &id).await;
    host.kill();
    let mut c = d.client().await;
    c.call_json(ctl::Cancel {}).await.expect("cancel");
    let v = task.await.unwrap();
    assert_eq!(v["result"], "cancelled", "{v}");
    host.restart();
    // The retried close reports the payment: a paid sale plus its automatic refund.
    let t = wait_state(&d, &id, "approved").await;
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .contains("refunded automatically"),
        "{t}"
    );
    let refund = eventually(Duration::from_secs(20), "the automatic refund", || async {
        let mut c = d.client().await;
        let list = c.call_json(ctl::TxnList { limit: Some(20) }).await.ok()?;
        list.as_array()?
            .iter()
            .find(|x| x["kind"] == "refund" && x["state"] == "approved")
            .cloned()
    })
    .await;
    assert_eq!(refund["amount"], 3044);
    assert_eq!(refund["detail"]["original"], id.as_str());
    assert_eq!(refund["detail"]["refund_id"], format!("auto-{id}"));

    wait_drained(&d, Duration::from_secs(20)).await;
    let a = host.audit();
    assert!(a.ok(), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_mode_shows_the_platforms_code() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let host = Host::start_with_args(&broker.url(), &dir.path().join("host.sqlite"), &host_args());
    let d = Daemon::start(
        &dir.path().join("t"),
        "T-MPMP",
        &broker.url(),
        "[merchant_qr]\nmode = \"platform\"\ntimeout_s = 4\nquery_interval_s = 1\n",
    );
    wait_online(&d).await;
    let (id, qr, task) = start_order(&d, "7.11").await;
    assert!(qr.starts_with("https://"), "{qr}");
    let v = task.await.unwrap();
    assert_eq!(v["result"], "approved", "{v}");
    wait_state(&d, &id, "approved").await;
    wait_drained(&d, Duration::from_secs(20)).await;
    assert!(host.audit().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_is_printed_on_a_pay_slip_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let _host = Host::start_with_args(&broker.url(), &dir.path().join("host.sqlite"), &host_args());
    let paper = dir.path().join("paper.escpos");
    let extra = format!(
        "{}\n[devices.printer.transport]\ntype = \"file\"\npath = \"{}\"\n",
        ORDER.replace("close_wait_s = 2", "close_wait_s = 2\nprint = true"),
        paper.display()
    );
    let d = Daemon::start(&dir.path().join("t"), "T-MPMS", &broker.url(), &extra);
    wait_online(&d).await;
    let (_id, qr, task) = start_order(&d, "9.11").await;
    let slip = eventually(Duration::from_secs(10), "the pay slip", || async {
        let bytes = std::fs::read(&paper).ok()?;
        let opts =
            posd_core::receipt::RenderOptions::for_width(posd_core::receipt::PaperWidth::Mm58);
        let text = posd_core::receipt::render_text(&bytes, &opts);
        text.contains("SCAN TO PAY").then_some(text)
    })
    .await;
    assert!(
        slip.contains(&qr),
        "the slip's QR carries the payload: {slip}"
    );
    assert!(slip.contains("CNY 9.11"), "{slip}");
    let v = task.await.unwrap();
    assert_eq!(v["result"], "approved", "{v}");
}
