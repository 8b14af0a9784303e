//! Durable journal append (txn row + journal row + outbox event, one SQLite transaction,
//! WAL + synchronous=FULL) against a bare single-row synchronous=FULL insert, in the same run
//! on the same filesystem. Prints median and p99 of each and their ratio.
//!
//! Run: `cargo bench --bench journal` (POSD_BENCH_N to change the sample count).

use posd::store::Db;
use posd_core::money::Currency;
use posd_core::txn::{Method, Transaction, TxnKind, TxnState};
use std::time::{Duration, Instant};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let (m, p99) = (pct(&d, 0.5), pct(&d, 0.99));
    println!(
        "{name:<40} n={:<6} median {:>9.3} ms   p99 {:>9.3} ms",
        d.len(),
        m.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    (m, p99)
}

fn main() {
    let n: usize = std::env::var("POSD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let cny = Currency::from_code("CNY").expect("CNY");

    // Baseline: the cheapest durable commit SQLite offers here.
    let bare = rusqlite::Connection::open(dir.path().join("bare.sqlite")).expect("open");
    bare.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    bare.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    bare.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        [],
    )
    .expect("create");
    let mut bare_d = Vec::with_capacity(n);
    let mut db = Db::open(&dir.path().join("journal.sqlite")).expect("journal");
    let mut journal_d = Vec::with_capacity(n);
    // Interleave the two so both see the same disk conditions.
    for i in 0..n {
        let t0 = Instant::now();
        bare.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")])
            .expect("insert");
        bare_d.push(t0.elapsed());

        let mut t = Transaction::new(
            TxnKind::Sale,
            Method::PaymentCode,
            1250,
            cny,
            TxnState::Authorizing,
            1_700_000_000_000 + i as u64,
            [i as u8; 10],
        );
        t.channel = Some("wechat".into());
        t.code_masked = Some("1345**********6789".into());
        let t0 = Instant::now();
        db.record(&t).expect("record");
        journal_d.push(t0.elapsed());
    }
    let (bm, bp) = report("bare insert (synchronous=FULL)", bare_d);
    let (jm, jp) = report("journal append (txn+journal+outbox)", journal_d);
    println!(
        "ratio journal/bare: median {:.2}x, p99 {:.2}x",
        jm.as_secs_f64() / bm.as_secs_f64(),
        jp.as_secs_f64() / bp.as_secs_f64()
    );
}
