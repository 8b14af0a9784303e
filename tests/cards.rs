//! Magnetic-stripe cards end to end (DESIGN §1.4, docs/payments.md): the sandbox host's test
//! numbers, bad Luhn, expired, garbled and truncated swipes, chip cards sent to the chip reader,
//! store-and-forward at the edges of its floor limit and count — and afterwards no full PAN or
//! track data anywhere in the SQLite file, its WAL or the daemon's log.

mod common;
use common::*;
use posd::control::ControlError;
use posd_core::control as ctl;
use serde_json::Value;
use std::time::Duration;

const FAST: &str = "[online]\nquery_interval_s = 1\nquery_total_s = 4\nreverse_backoff_initial_s = 1\nreverse_backoff_max_s = 2\n";

/// Track 1 + track 2 as a keyboard-wedge reader types them; expiry Dec 2035.
fn swipe(pan: &str, svc: &str) -> String {
    format!("%B{pan}^SANDBOX/TEST^3512{svc}0000000000?;{pan}=3512{svc}0000000000?")
}

async fn card_sale(d: &Daemon, amount: &str, swipe: &str) -> Result<Value, ControlError> {
    let mut c = d.client().await;
    c.call_json(ctl::Sale {
        amount: amount.into(),
        currency: None,
        code: Some(swipe.into()),
        method: Some(ctl::SaleMethod::Presented),
    })
    .await
}

fn refusal(r: Result<Value, ControlError>) -> String {
    match r {
        Err(ControlError::Refused { message, .. }) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every file under `dir` (the journal, its WAL, the log) searched for `needle`.
fn found_in(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry) {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                hits.push(entry.display().to_string());
            }
        }
    }
    hits
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_numbers_refusals_and_no_pan_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let (secret, public) = card_keys(dir.path());
    let host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--card-key".into(), secret.display().to_string()],
    );
    let tdir = dir.path().join("t");
    let d = Daemon::start_at_level(
        &tdir,
        "T-CARD",
        &broker.url(),
        &format!("{FAST}\n[card]\nhost_public_key = \"{public}\"\nchip_reader = true\n"),
        "debug",
    );
    wait_online(&d).await;

    let cases = [
        ("4111111111111111", "approved", "visa"),
        ("6200000000000005", "approved", "unionpay"),
        ("5555555555554444", "approved", "mastercard"),
        ("4000000000000002", "declined", "visa"),
    ];
    for (pan, result, brand) in cases {
        let v = card_sale(&d, "25.00", &swipe(pan, "101")).await.unwrap();
        assert_eq!(v["result"], result, "{pan}: {v}");
        assert_eq!(v["channel"], brand);
        let masked = v["code_masked"].as_str().unwrap();
        assert_eq!(masked.len(), pan.len());
        assert!(masked.starts_with(&pan[..6]) && masked.ends_with(&pan[pan.len() - 4..]));
        assert!(
            masked[6..pan.len() - 4].chars().all(|c| c == '*'),
            "{masked}"
        );
    }
    // Refusals that never reach the host.
    let bad_luhn = refusal(card_sale(&d, "1.00", &swipe("4111111111111112", "101")).await);
    assert!(
        bad_luhn.to_lowercase().contains("luhn") || bad_luhn.contains("check digit"),
        "{bad_luhn}"
    );
    let expired = refusal(card_sale(&d, "1.00", ";4111111111111111=2001101000000000?").await);
    assert!(expired.to_lowercase().contains("expired"), "{expired}");
    let chip = refusal(card_sale(&d, "1.00", &swipe("4111111111111111", "201")).await);
    assert!(chip.to_lowercase().contains("chip"), "{chip}");
    for garbled in [
        ";4111111111111111=3512101000",  // truncated: no end sentinel
        "%B4111111111111111^TEST",       // truncated track 1
        ";41111111x1111111=3512101000?", // garbled digits
        "%B4111111111111111^A^3512101?;5555555555554444=3512101?", // tracks disagree
    ] {
        let r = card_sale(&d, "1.00", garbled).await;
        assert!(r.is_err(), "{garbled}: {r:?}");
    }

    wait_drained(&d, Duration::from_secs(20)).await;
    let a = host.audit();
    assert!(a.ok(), "{a:?}");

    // No full PAN and no track data at rest: journal, WAL, log (daemon at debug level).
    d.client().await.call_json(ctl::Status {}).await.unwrap();
    for pan in [
        "4111111111111111",
        "6200000000000005",
        "5555555555554444",
        "4000000000000002",
        "4111111111111112",
    ] {
        let hits = found_in(&tdir, pan);
        assert!(hits.is_empty(), "PAN {pan} found in {hits:?}");
    }
    let hits = found_in(&tdir, "=3512101");
    assert!(hits.is_empty(), "track data found in {hits:?}");
    let hits = found_in(&tdir, "SANDBOX/TEST");
    assert!(hits.is_empty(), "cardholder name found in {hits:?}");
    assert!(
        !found_in(&tdir, "411111******1111").is_empty(),
        "the masked PAN is what is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_forward_at_the_edges_of_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start();
    let (secret, public) = card_keys(dir.path());
    let host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--card-key".into(), secret.display().to_string()],
    );
    let d = Daemon::start(
        &dir.path().join("t"),
        "T-SAF",
        &broker.url(),
        &format!(
            "{FAST}\n[card]\nhost_public_key = \"{public}\"\n\n[card.store_and_forward]\nenabled = true\nfloor_limit = 5000\nmax_count = 2\nmax_age_s = 3600\n"
        ),
    );
    wait_online(&d).await;
    broker.kill();
    eventually(Duration::from_secs(10), "posd offline", || async {
        let mut c = d.client().await;
        (status(&mut c).await["online"] == Value::Bool(false)).then_some(())
    })
    .await;

    // At the floor limit: stored. One cent above: refused.
    let at = card_sale(&d, "50.00", &swipe("4111111111111111", "101"))
        .await
        .unwrap();
    assert_eq!(at["state"], "approved_offline", "{at}");
    assert!(card_sale(&d, "50.01", &swipe("4111111111111111", "101"))
        .await
        .is_err());
    // Up to the count: the second is stored, the third refused.
    let second = card_sale(&d, "10.00", &swipe("5555555555554444", "101"))
        .await
        .unwrap();
    assert_eq!(second["state"], "approved_offline");
    assert!(card_sale(&d, "1.00", &swipe("6200000000000005", "101"))
        .await
        .is_err());

    // Back online: the host authorizes the stored sales and settles them.
    broker.restart();
    wait_online(&d).await;
    for v in [&at, &second] {
        let id = v["txn_id"].as_str().unwrap().to_string();
        eventually(Duration::from_secs(20), "settled", || async {
            let mut c = d.client().await;
            let t = c.call_json(ctl::TxnShow { id: id.clone() }).await.ok()?;
            (t["txn"]["state"] == "settled").then_some(())
        })
        .await;
    }
    wait_drained(&d, Duration::from_secs(20)).await;
    assert!(host.audit().ok());
}
