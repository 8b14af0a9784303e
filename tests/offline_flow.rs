//! Offline `P1` sales through the real daemon: approved with no network, one-time counters kept
//! across restarts, rules refused with their own reason, and settlement by the sandbox host
//! (which verifies each code again) visible in `txn show`.

mod common;
use common::*;
use posd::control::ControlError;
use posd_core::control as ctl;
use std::time::Duration;

fn refusal(r: Result<serde_json::Value, ControlError>) -> String {
    match r {
        Err(ControlError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn state_of(d: &Daemon, id: &str) -> String {
    let mut c = d.client().await;
    let v = c
        .call_json(ctl::TxnShow { id: id.into() })
        .await
        .expect("show");
    v["txn"]["state"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_sales_without_network_then_settled_by_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let mut broker = Mosquitto::start();
    broker.kill(); // No network at all while selling.
    let limits = "per_txn_limit = 5000\nper_user_daily_limit = 8000\nmax_unsynced_count = 100\nmax_unsynced_amount = 1000000\nmax_unsynced_age_s = 3600";
    let mut d = Daemon::start(
        &dir.path().join("t"),
        "T-OFF",
        &broker.url(),
        &platform.offline_toml(limits),
    );
    let mut w = platform.wallet(4242, 6000);

    // A valid code: approved at once, offline.
    let first = w.next_code();
    let v = sale(&d, "12.00", &first).await.expect("approved offline");
    assert_eq!(v["state"], "approved_offline");
    assert_eq!(v["result"], "approved");
    let id1 = v["txn_id"].as_str().unwrap().to_string();

    // The same code again: replayed.
    assert_eq!(refusal(sale(&d, "12.00", &first).await), "counter_replayed");
    // An older counter: replayed.
    let old = w.code_at(unix_now(), 0);
    assert_eq!(refusal(sale(&d, "1.00", &old).await), "counter_replayed");
    // The per-transaction limit (50.00) is inclusive: 50.01 refused, 50.00 accepted.
    assert_eq!(
        refusal(sale(&d, "50.01", &w.next_code()).await),
        "over_txn_limit"
    );
    let v = sale(&d, "50.00", &w.next_code())
        .await
        .expect("at the edge");
    assert_eq!(v["state"], "approved_offline");
    // The daily limit (80.00): 62.00 so far; 18.00 reaches it exactly, 0.01 more does not fit.
    sale(&d, "18.00", &w.next_code())
        .await
        .expect("daily limit reached exactly");
    assert_eq!(
        refusal(sale(&d, "0.01", &w.next_code()).await),
        "over_daily_limit"
    );
    // A code five minutes old: too old.
    w.counter += 1;
    let stale = w.code_at(unix_now() - 300, w.counter);
    assert_eq!(refusal(sale(&d, "1.00", &stale).await), "code_too_old");
    // Garbage and a corrupted code.
    assert_eq!(
        refusal(sale(&d, "1.00", &first[..103]).await),
        "malformed_truncated"
    );
    assert_eq!(
        refusal(sale(&d, "1.00", "P1.AAAA").await),
        "unsupported_version"
    );
    let mut bad = w.next_code().into_bytes();
    let n = bad.len();
    bad[n - 5] = if bad[n - 5] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let code = refusal(sale(&d, "1.00", &bad).await);
    assert!(
        code.starts_with("bad_") || code.starts_with("malformed"),
        "{code}"
    );

    // The counter survives a power cut.
    d.kill9();
    d.restart();
    assert_eq!(refusal(sale(&d, "12.00", &first).await), "counter_replayed");
    // Another user is unaffected.
    let mut w2 = platform.wallet(7, 6000);
    let v = sale(&d, "3.00", &w2.next_code())
        .await
        .expect("second user");
    let id2 = v["txn_id"].as_str().unwrap().to_string();

    // The network returns: the host verifies each offline sale and settles it.
    broker.restart();
    let host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--issuer-key".into(), platform.host_key_arg()],
    );
    for id in [&id1, &id2] {
        eventually(Duration::from_secs(30), "settled", || async {
            (state_of(&d, id).await == "settled").then_some(())
        })
        .await;
    }
    wait_drained(&d, Duration::from_secs(30)).await;
    let a = host.audit();
    assert!(a.ok(), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denylist_and_untrusted_issuer_refused_and_host_rejects_a_forged_settlement() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let broker = Mosquitto::start();
    let toml = format!(
        "{}[offline.denylist]\nuser_ids = [666]\n",
        platform.offline_toml("")
    );
    let d = Daemon::start(&dir.path().join("t"), "T-DENY", &broker.url(), &toml);
    let mut bad_user = platform.wallet(666, 10_000);
    assert_eq!(
        refusal(sale(&d, "1.00", &bad_user.next_code()).await),
        "denylisted"
    );

    // A code from a platform the terminal does not know.
    let other = Platform {
        issuer: posd_core::codes::PrivateKey::generate().unwrap(),
        key_id: 9,
    };
    let mut stranger = other.wallet(1, 10_000);
    assert_eq!(
        refusal(sale(&d, "1.00", &stranger.next_code()).await),
        "unknown_issuer_key"
    );

    // The terminal accepts a good code; a host that trusts a *different* key for id 1
    // rejects it at settlement, and the terminal records that.
    let mut ok = platform.wallet(5, 10_000);
    let v = sale(&d, "2.00", &ok.next_code()).await.expect("approved");
    let id = v["txn_id"].as_str().unwrap().to_string();
    let wrong = Platform::new();
    let _host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--issuer-key".into(), wrong.host_key_arg()],
    );
    eventually(
        Duration::from_secs(30),
        "rejected at settlement",
        || async { (state_of(&d, &id).await == "settlement_rejected").then_some(()) },
    )
    .await;
    let mut c = d.client().await;
    let v = c.call_json(ctl::TxnShow { id: id.clone() }).await.unwrap();
    assert_eq!(v["txn"]["reason"], "bad_issuer_signature");
}
