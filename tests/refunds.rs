//! Refunds, voids and the batch close end to end (DESIGN §1.5, docs/payments.md): partial
//! refunds adding up to the sale and one more refused, a repeated refund_id refunding once, a
//! refund found by its receipt's QR (only this terminal's), the manager PIN, refunds refused offline, voids of offline
//! sales only, and a Z report whose totals the host reconciles with its own ledger.

mod common;
use common::*;
use posd::control::ControlError;
use posd_core::control as ctl;
use serde_json::Value;
use std::time::Duration;

const FAST: &str = "[online]\nquery_interval_s = 1\nquery_total_s = 4\nreverse_backoff_initial_s = 1\nreverse_backoff_max_s = 2\n";

async fn refund(
    d: &Daemon,
    original: &str,
    amount: Option<&str>,
    refund_id: Option<&str>,
    pin: &str,
) -> Result<Value, ControlError> {
    let mut c = d.client().await;
    c.call_json(ctl::Refund {
        original: Some(original.into()),
        receipt: None,
        amount: amount.map(str::to_string),
        refund_id: refund_id.map(str::to_string),
        pin: pin.into(),
    })
    .await
}

fn refused_code(r: Result<Value, ControlError>) -> String {
    match r {
        Err(ControlError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn host_refunds(host: &Host) -> i64 {
    let conn = posd_sandbox::host::open_db(&host.db).expect("host db");
    conn.query_row(
        "SELECT COUNT(*) FROM refunds WHERE state = 'approved'",
        [],
        |r| r.get(0),
    )
    .expect("count refunds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_voids_and_a_reconciled_batch_close() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let platform = Platform::new();
    let mut host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--issuer-key".into(), platform.host_key_arg()],
    );
    let extra = format!("{FAST}\n{}\n{}", manager_toml(), platform.offline_toml(""));
    let d = Daemon::start(&dir.path().join("t"), "T-REF", &broker.url(), &extra);
    wait_online(&d).await;

    // A sale of 10.00, refunded 4.00 + 6.00; one cent more is refused.
    let s = sale(&d, "10.00", "134567890123456780").await.unwrap();
    assert_eq!(s["result"], "approved");
    let sale_id = s["txn_id"].as_str().unwrap().to_string();
    let r1 = refund(&d, &sale_id, Some("4.00"), Some("r-1"), PIN)
        .await
        .unwrap();
    assert_eq!(r1["result"], "approved", "{r1}");
    assert_eq!(r1["amount"], 400);
    // The same refund_id again: the same refund, nothing refunded twice.
    let again = refund(&d, &sale_id, Some("4.00"), Some("r-1"), PIN)
        .await
        .unwrap();
    assert_eq!(again["txn_id"], r1["txn_id"]);
    assert_eq!(host_refunds(&host), 1);
    // The same refund_id for another amount is another refund: refused, not answered with the
    // first one's verdict.
    assert_eq!(
        refused_code(refund(&d, &sale_id, Some("1.00"), Some("r-1"), PIN).await),
        "refused"
    );
    let r2 = refund(&d, &sale_id, Some("6.00"), None, PIN).await.unwrap();
    assert_eq!(r2["result"], "approved", "{r2}");
    assert_eq!(
        refused_code(refund(&d, &sale_id, Some("0.01"), None, PIN).await),
        "refused"
    );
    assert_eq!(host_refunds(&host), 2);

    // Wrong PIN: refused, nothing journaled; five in a row lock refunds for a while.
    let s2 = sale(&d, "5.00", "134567890123456781").await.unwrap();
    let s2_id = s2["txn_id"].as_str().unwrap().to_string();
    assert_eq!(
        refused_code(refund(&d, &s2_id, None, None, "0000").await),
        "wrong_pin"
    );
    // A receipt reference naming another terminal is refused, though the transaction is ours
    // and the PIN right: a refund is booked where the sale was.
    let mut c = d.client().await;
    let other = c
        .call_json(ctl::Refund {
            original: None,
            receipt: Some(format!("R1.T-OTHER.{s2_id}")),
            amount: None,
            refund_id: None,
            pin: PIN.into(),
        })
        .await;
    match other {
        Err(ControlError::Refused { code, message }) => {
            assert_eq!(code, "other_terminal");
            assert!(message.contains("T-OTHER"), "{message}");
        }
        other => panic!("another terminal's receipt refunded here: {other:?}"),
    }
    assert_eq!(host_refunds(&host), 2, "nothing refunded");
    // Found by scanning its receipt's QR, the full amount left.
    let by_receipt = c
        .call_json(ctl::Refund {
            original: None,
            receipt: Some(format!("R1.T-REF.{s2_id}")),
            amount: None,
            refund_id: None,
            pin: PIN.into(),
        })
        .await
        .unwrap();
    assert_eq!(by_receipt["result"], "approved", "{by_receipt}");
    assert_eq!(by_receipt["amount"], 500);

    // An offline sale not yet settled (the host is down) can be voided; an online one cannot.
    host.kill();
    let mut wallet = platform.wallet(42, 10_000);
    let off = sale(&d, "3.00", &wallet.next_code()).await.unwrap();
    assert_eq!(off["state"], "approved_offline", "{off}");
    let off_id = off["txn_id"].as_str().unwrap().to_string();
    let v = c
        .call_json(ctl::Void {
            original: off_id.clone(),
            pin: PIN.into(),
        })
        .await
        .unwrap();
    assert_eq!(v["state"], "voided", "{v}");
    assert_eq!(
        refused_code(
            c.call_json(ctl::Void {
                original: sale_id.clone(),
                pin: PIN.into(),
            })
            .await
        ),
        "refused"
    );
    host.restart();
    wait_drained(&d, Duration::from_secs(20)).await;

    // Refunds need the host: with the broker gone they are refused at once.
    let s3 = sale(&d, "2.00", "134567890123456782").await.unwrap();
    let s3_id = s3["txn_id"].as_str().unwrap().to_string();
    let mut broker = broker;
    broker.kill();
    eventually(Duration::from_secs(10), "posd offline", || async {
        let mut c = d.client().await;
        (status(&mut c).await["online"] == Value::Bool(false)).then_some(())
    })
    .await;
    assert_eq!(
        refused_code(refund(&d, &s3_id, None, None, PIN).await),
        "host_unreachable"
    );
    broker.restart();
    wait_online(&d).await;

    // The batch close: sales 10.00 + 5.00 + 2.00, refunds 4.00 + 6.00 + 5.00, the void 0.
    let mut c = d.client().await;
    let b = c.call_json(ctl::BatchClose {}).await.unwrap();
    let z = &b["report"];
    assert_eq!(z["net_total"], 200, "{z}");
    assert_eq!(z["net"]["payment_code/wechat"], 200, "{z}");
    assert_eq!(z["net"]["offline_code/p1"], 0, "{z}");
    assert_eq!(z["refunds_amount"], 1500);
    let batch_id = b["txn_id"].as_str().unwrap().to_string();
    let t = eventually(
        Duration::from_secs(20),
        "the host's reconciliation",
        || async {
            let mut c = d.client().await;
            let v = c
                .call_json(ctl::TxnShow {
                    id: batch_id.clone(),
                })
                .await
                .ok()?;
            (v["txn"]["state"] != "closed").then(|| v["txn"].clone())
        },
    )
    .await;
    assert_eq!(t["state"], "reconciled", "{t}");

    // The next batch starts empty.
    let b2 = c.call_json(ctl::BatchClose {}).await.unwrap();
    assert_eq!(b2["report"]["batch_no"], 2);
    assert_eq!(b2["report"]["net_total"], 0);
    assert_eq!(b2["report"]["rows"].as_array().unwrap().len(), 0);

    // A void in a later batch than its sale: the sale's batch counts it, the void's batch takes
    // it back — and the host agrees with both.
    host.kill();
    let off2 = sale(&d, "3.00", &wallet.next_code()).await.unwrap();
    assert_eq!(off2["state"], "approved_offline", "{off2}");
    let b3 = c.call_json(ctl::BatchClose {}).await.unwrap();
    assert_eq!(b3["report"]["net_total"], 300, "{b3}");
    c.call_json(ctl::Void {
        original: off2["txn_id"].as_str().unwrap().into(),
        pin: PIN.into(),
    })
    .await
    .unwrap();
    let b4 = c.call_json(ctl::BatchClose {}).await.unwrap();
    assert_eq!(b4["report"]["net_total"], -300, "{b4}");
    assert_eq!(b4["report"]["voids_amount"], 300, "{b4}");
    host.restart();
    for b in [&b3, &b4] {
        let id = b["txn_id"].as_str().unwrap().to_string();
        let t = eventually(Duration::from_secs(20), "reconciliation", || async {
            let mut c = d.client().await;
            let v = c.call_json(ctl::TxnShow { id: id.clone() }).await.ok()?;
            (v["txn"]["state"] != "closed").then(|| v["txn"].clone())
        })
        .await;
        assert_eq!(t["state"], "reconciled", "{t}");
    }

    wait_drained(&d, Duration::from_secs(20)).await;
    let a = host.audit();
    assert!(a.ok(), "{a:?}");
}
