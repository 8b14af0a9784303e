//! The outbox under fire: 10,000+ events while the broker is killed and restarted three times
//! and the daemon twice. The host must store each event exactly once and see `seq` gap-free.

mod common;
use common::*;
use posd_core::control as ctl;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_through_broker_and_daemon_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let mut broker = Mosquitto::start();
    let host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--issuer-key".into(), platform.host_key_arg()],
    );
    let mut d = Daemon::start(
        &dir.path().join("t"),
        "T-OUTBOX",
        &broker.url(),
        &platform.offline_toml(""),
    );
    wait_online(&d).await;

    // Each offline sale makes two events: approved_offline now, settled when the host verified it.
    const SALES: usize = 5_000;
    let mut wallets: Vec<Wallet> = (0..50)
        .map(|u| platform.wallet(1000 + u, 100_000))
        .collect();
    let mut confirmed: Vec<String> = Vec::with_capacity(SALES);
    let mut c = d.client().await;
    enum Disrupt {
        KillBroker,
        RestartBroker,
        RestartDaemon,
    }
    use Disrupt::*;
    // The broker killed and restarted three times, the daemon power-cut twice (once while
    // the broker is down).
    let schedule = [
        (1_000, KillBroker),
        (1_300, RestartBroker),
        (1_800, RestartDaemon),
        (2_500, KillBroker),
        (2_700, RestartDaemon),
        (2_900, RestartBroker),
        (4_000, KillBroker),
        (4_300, RestartBroker),
    ];
    let mut next = 0;
    while confirmed.len() < SALES {
        while next < schedule.len() && schedule[next].0 == confirmed.len() {
            match schedule[next].1 {
                KillBroker => broker.kill(),
                RestartBroker => broker.restart(),
                RestartDaemon => {
                    d.kill9();
                    d.restart();
                    c = d.client().await;
                }
            }
            next += 1;
        }
        let w = &mut wallets[confirmed.len() % 50];
        let code = w.next_code();
        match c
            .call_json(ctl::Sale {
                method: None,
                amount: "1.00".into(),
                currency: None,
                code: Some(code),
            })
            .await
        {
            Ok(v) => confirmed.push(v["txn_id"].as_str().unwrap().to_string()),
            Err(e) => panic!("sale {} refused: {e}", confirmed.len()),
        }
    }
    assert_eq!(next, schedule.len(), "every disruption happened");

    // Everything settles and is acknowledged.
    wait_drained(&d, Duration::from_secs(180)).await;
    // Settlement events come back through the journal too: wait for all of them.
    eventually(Duration::from_secs(180), "every sale settled", || async {
        let conn = posd_sandbox::host::open_db(&host.db).ok()?;
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE terminal = 'T-OUTBOX' AND state = 'settled'",
                [],
                |r| r.get(0),
            )
            .ok()?;
        (n as usize == SALES).then_some(())
    })
    .await;
    let q = wait_drained(&d, Duration::from_secs(60)).await;
    let last_seq = q["last_seq"].as_u64().unwrap();
    assert!(last_seq >= 10_000, "only {last_seq} events");

    let conn = posd_sandbox::host::open_db(&host.db).unwrap();
    let (n, distinct, min, max): (i64, i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT event_id), MIN(seq), MAX(seq) FROM events WHERE terminal = 'T-OUTBOX'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(n as u64, last_seq, "each event stored exactly once");
    assert_eq!(distinct, n);
    assert_eq!((min, max as u64), (1, last_seq), "seq gap-free from 1");
    let a = host.audit();
    assert_eq!(a.terminals["T-OUTBOX"].gaps, 0);
    assert_eq!(a.terminals["T-OUTBOX"].contiguous_seq, last_seq);
    assert!(a.ok(), "{a:?}");
    // Every sale confirmed to the caller reached the host.
    let mut st = conn
        .prepare("SELECT DISTINCT txn_id FROM events WHERE terminal = 'T-OUTBOX'")
        .unwrap();
    let at_host: HashSet<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for id in &confirmed {
        assert!(
            at_host.contains(id),
            "confirmed sale {id} never reached the host"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sandbox_hosts_share_the_load_through_a_shared_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let broker = Mosquitto::start();
    let db = dir.path().join("host.sqlite");
    let key = ["--issuer-key".to_string(), platform.host_key_arg()];
    let mut h1 = Host::start_with_args(&broker.url(), &db, &key);
    h1.instance = "host-a".into();
    h1.restart();
    let mut h2 = Host::start_with_args(&broker.url(), &db, &key);
    h2.instance = "host-b".into();
    h2.restart();
    let d = Daemon::start(
        &dir.path().join("t"),
        "T-SHARED",
        &broker.url(),
        &platform.offline_toml(""),
    );
    wait_online(&d).await;
    let mut w = platform.wallet(77, 100_000);
    let mut c = d.client().await;
    for _ in 0..300 {
        c.call_json(ctl::Sale {
            method: None,
            amount: "1.00".into(),
            currency: None,
            code: Some(w.next_code()),
        })
        .await
        .expect("sale");
    }
    // Both instances store into one database; the terminal sees one host.
    eventually(Duration::from_secs(60), "all settled", || async {
        let conn = posd_sandbox::host::open_db(&db).ok()?;
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE state = 'settled'",
                [],
                |r| r.get(0),
            )
            .ok()?;
        (n == 300).then_some(())
    })
    .await;
    let q = wait_drained(&d, Duration::from_secs(60)).await;
    let a = h1.audit();
    assert!(a.ok(), "{a:?}");
    let t = &a.terminals["T-SHARED"];
    assert_eq!(
        (t.events, t.gaps, t.contiguous_seq),
        (q["last_seq"].as_u64().unwrap(), 0, t.max_seq)
    );
    // Both instances took part.
    let conn = posd_sandbox::host::open_db(&db).unwrap();
    let mut st = conn
        .prepare("SELECT DISTINCT stored_by FROM events ORDER BY 1")
        .unwrap();
    let by: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(by, ["host-a", "host-b"], "both hosts stored events");
    drop(h2);
}
