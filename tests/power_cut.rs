//! Power cuts: SIGKILL the daemon at random moments while it writes, 25 times. After each
//! restart every sale that was confirmed to the caller is in the journal, the journal passes
//! `PRAGMA integrity_check`, and `seq` is gap-free.

mod common;
use common::*;
use posd::control::ControlClient;
use posd_core::control as ctl;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_nothing_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    // No broker at all: the terminal sells offline and the journal only grows.
    let nowhere = format!("mqtt://127.0.0.1:{}", free_port());
    let mut d = Daemon::start(
        &dir.path().join("t"),
        "T-POWER",
        &nowhere,
        &platform.offline_toml(""),
    );
    let mut wallets: Vec<Wallet> = (0..5).map(|u| platform.wallet(u, 100_000)).collect();
    let mut confirmed: Vec<String> = Vec::new();
    let mut rng = 0x9e3779b97f4a7c15u64;
    for round in 0..25 {
        // Prepare codes, then sell as fast as possible from a task until the power goes.
        let codes: Vec<String> = (0..400).map(|i| wallets[i % 5].next_code()).collect();
        let socket = d.socket.clone();
        let seller = tokio::spawn(async move {
            let mut ok = Vec::new();
            let Ok(mut c) = ControlClient::connect(&socket).await else {
                return ok;
            };
            for code in codes {
                match c
                    .call_json(ctl::Sale {
                        method: None,
                        amount: "0.50".into(),
                        currency: None,
                        code: Some(code),
                    })
                    .await
                {
                    Ok(v) => ok.push(v["txn_id"].as_str().unwrap_or("").to_string()),
                    Err(_) => break,
                }
            }
            ok
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = 20 + rng % 250;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        d.kill9();
        let got = seller.await.unwrap();
        confirmed.extend(got);
        d.restart();

        // Everything confirmed so far is there, and the database is sound.
        let db = posd::store::Db::open(&d.db_path()).expect("open journal read side");
        assert_eq!(db.integrity_check().unwrap(), "ok", "round {round}");
        for id in &confirmed {
            let t = db.txn(id).unwrap();
            assert!(t.is_some(), "round {round}: confirmed sale {id} lost");
        }
        let gaps: i64 = db
            .conn()
            .query_row(
                "SELECT MAX(seq) - COUNT(*) - MIN(seq) + 1 FROM journal",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gaps, 0, "round {round}: seq has gaps");
    }
    assert!(
        confirmed.len() > 100,
        "only {} sales confirmed",
        confirmed.len()
    );
    let mut c = d.client().await;
    let q = c.call_json(ctl::Queue {}).await.unwrap();
    assert!(q["last_seq"].as_u64().unwrap() >= confirmed.len() as u64);
}
