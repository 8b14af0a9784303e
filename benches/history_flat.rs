//! History-flat hot paths (issue 14): what a P1 sale, an online sale, a reprint of the last
//! receipt, `status`/`queue` and a batch close cost on the journal's writer thread with a young
//! journal (1k transactions, 100 unsent events) and an old one (1M transactions, 50k unsent
//! events), and the ratio. The goal: every ratio ≤ 1.2 (p50), i.e. the cost follows what is
//! asked, never the journal's age. Also a never-closed batch of 100k sales: close time, RSS
//! before/after, and the size of its `batch_close` event (must stay far below 256 KiB).
//!
//! How the journal is filled: bulk SQL in one SQLite transaction on the store's own schema
//! (every migration applied by `Db::open`), `synchronous=OFF` while filling, then
//! `Db::rebuild_counters` once. The filled history is 80 % approved online sales, 15 % settled
//! P1 sales (every 50th transaction is user 7's, the user the P1 samples pay with, so that user
//! has 20k sales at 1M), 5 % declined; one journal row each, `created_at` 30 s apart; batch
//! closes every 2,000 transactions; every event acknowledged but the last `unsent`, which stay
//! in the outbox. The measured operations then go through the real store API (`posd::store::Db`,
//! WAL, synchronous=FULL, receipts owed to a printer) exactly as the engine calls it.
//!
//! Run: `cargo bench --bench history_flat` (POSD_BENCH_BIG to change the big size, default
//! 1000000; POSD_BENCH_SAMPLES, default 200).

use posd::store::Db;
use posd_core::money::Currency;
use posd_core::receipt::{receipt_of, PrintDoc, ReceiptCtx};
use posd_core::txn::{uuid_v7, Method, Transaction, TxnKind, TxnState};
use posd_sandbox::world::load;
use rusqlite::params;
use std::path::Path;
use std::time::{Duration, Instant};

const DAY: u64 = 86_400_000;
const START: u64 = 1_700_000_000_000;
const P1_USER: u64 = 7;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rand10(i: u64) -> [u8; 10] {
    let b = i.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], 0x5a, 0xa5]
}

/// Fills a fresh journal with `n` transactions of history, the last `unsent` events not
/// acknowledged. Returns the time of the last transaction.
fn fill(path: &Path, n: u64, unsent: u64) -> u64 {
    drop(Db::open(path).expect("create the journal"));
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "synchronous", "OFF").expect("off");
    conn.execute_batch("BEGIN").expect("begin");
    let mut at = START;
    {
        let mut txn = conn
            .prepare(
                "INSERT INTO txns (id, kind, method, channel, amount, currency, state, reason,
                     code_masked, host_ref, created_at, updated_at, detail, first_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'CNY', ?6, NULL, ?7, ?8, ?9, ?9, ?10, ?11)",
            )
            .expect("prepare");
        let mut journal = conn
            .prepare("INSERT INTO journal (txn_id, state, at, seq) VALUES (?1, ?2, ?3, ?4)")
            .expect("prepare");
        let mut outbox = conn
            .prepare(
                "INSERT INTO outbox (seq, event_id, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .expect("prepare");
        let mut seq = 0u64;
        let mut batch_no = 0u64;
        for i in 0..n {
            seq += 1;
            at = START + i * 30_000;
            let id = uuid_v7(at, rand10(i)).to_string();
            let (kind, method, channel, state, amount, masked, detail) = if i % 50 == 7 {
                (
                    "sale",
                    "offline_code",
                    "p1",
                    "settled",
                    100i64,
                    Some(format!("P1 user {P1_USER} #{i}")),
                    Some(format!(r#"{{"user_id":{P1_USER},"counter":{i}}}"#)),
                )
            } else if i % 20 < 3 {
                let user = 1000 + i % 997;
                (
                    "sale",
                    "offline_code",
                    "p1",
                    "settled",
                    250,
                    Some(format!("P1 user {user} #{i}")),
                    Some(format!(r#"{{"user_id":{user},"counter":{i}}}"#)),
                )
            } else if i % 20 == 3 {
                (
                    "sale",
                    "payment_code",
                    "wechat",
                    "declined",
                    1250,
                    Some("1345**********6789".to_string()),
                    None,
                )
            } else {
                (
                    "sale",
                    "payment_code",
                    "alipay",
                    "approved",
                    1250,
                    Some("2845**********6789".to_string()),
                    None,
                )
            };
            txn.execute(params![
                id,
                kind,
                method,
                channel,
                amount,
                state,
                masked,
                Some(format!("H{i}")),
                at as i64,
                detail,
                seq as i64
            ])
            .expect("txn");
            journal
                .execute(params![id, state, at as i64, seq as i64])
                .expect("journal");
            if i + unsent >= n {
                let payload = format!(
                    r#"{{"seq":{seq},"event_id":"e{seq}","txn_id":"{id}","type":"{kind}","state":"{state}","method":"{method}","channel":"{channel}","amount":{amount},"currency":"CNY","at":{at},"code_masked":"xxxx"}}"#
                );
                outbox
                    .execute(params![seq as i64, format!("e{seq}"), payload, at as i64])
                    .expect("outbox");
            }
            // A batch close every 2,000 transactions of history.
            if i % 2000 == 1999 && i + unsent < n {
                seq += 1;
                batch_no += 1;
                let cid = uuid_v7(at + 1, rand10(u64::MAX - i)).to_string();
                txn.execute(params![
                    cid,
                    "batch_close",
                    "none",
                    None::<String>,
                    0,
                    "reconciled",
                    None::<String>,
                    None::<String>,
                    (at + 1) as i64,
                    Some(format!(r#"{{"batch_no":{batch_no}}}"#)),
                    seq as i64
                ])
                .expect("close");
                journal
                    .execute(params![cid, "reconciled", (at + 1) as i64, seq as i64])
                    .expect("journal");
            }
        }
        let acked = seq - unsent.min(n);
        // The highest seq is a counter since migration #14.
        let kept = conn
            .execute(
                "UPDATE counters SET value = ?1 WHERE name = 'last_seq'",
                [seq as i64],
            )
            .expect("last_seq");
        assert_eq!(kept, 1, "counters.last_seq");
        for (k, v) in [
            ("acked_seq", acked),
            ("batch.no", batch_no),
            // The current batch starts where the history ends: a timed close holds the 1,000
            // sales written before it (the first one also what the other paths wrote).
            ("batch.from_seq", seq),
            ("batch.opened_at", at),
        ] {
            let kept = conn
                .execute(
                    "UPDATE meta SET value = ?2 WHERE key = ?1",
                    params![k, v.to_string()],
                )
                .expect("meta");
            assert_eq!(kept, 1, "meta {k}");
        }
    }
    conn.execute_batch("COMMIT").expect("commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    drop(conn);
    let mut db = Db::open(path).expect("reopen");
    db.rebuild_counters().expect("counters");
    drop(db);
    // The fill went to the page cache unsynced: write it out now, so the first timed fsyncs do
    // not wait for it.
    for f in [path.to_path_buf(), path.with_extension("sqlite-wal")] {
        if let Ok(f) = std::fs::File::open(&f) {
            let _ = f.sync_all();
        }
    }
    at
}

/// One journal under test and where its clock and P1 counter are.
struct Journal {
    name: &'static str,
    db: Db,
    now: u64,
    counter: u32,
    seed: u64,
}

fn open_filled(dir: &Path, name: &'static str, n: u64, unsent: u64, ctx: &ReceiptCtx) -> Journal {
    let path = dir.join(format!("{name}.sqlite"));
    let t0 = Instant::now();
    let last_at = fill(&path, n, unsent);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "# {name}: {n} transactions, {unsent} unsent events, filled in {:.1} s, {:.1} MB; load {}",
        t0.elapsed().as_secs_f64(),
        size as f64 / 1e6,
        load()
    );
    let mut db = Db::open(&path).expect("open");
    db.set_receipts(Some(ctx.clone()));
    Journal {
        name,
        db,
        // A minute after the history ends, so the P1 user has sales today already.
        now: last_at + 60_000,
        counter: u32::MAX / 2,
        seed: 0,
    }
}

/// The hot paths, each one call as the engine makes it; returns its duration.
#[derive(Clone, Copy)]
enum Op {
    P1Read,
    P1Sale,
    Online,
    Reprint,
    Queue,
    Close,
}

impl Op {
    const ALL: [Op; 6] = [
        Op::P1Read,
        Op::P1Sale,
        Op::Online,
        Op::Reprint,
        Op::Queue,
        Op::Close,
    ];

    fn label(self) -> &'static str {
        match self {
            Op::P1Read => "P1 snapshot (rules' read)",
            Op::P1Sale => "P1 sale (snapshot+approve)",
            Op::Online => "online sale (2 commits)",
            Op::Reprint => "reprint last receipt",
            Op::Queue => "status/queue (queue_stats)",
            Op::Close => "batch close (1k-sale batch)",
        }
    }

    fn samples(self, n: usize) -> usize {
        match self {
            Op::Queue | Op::P1Read => n * 5,
            Op::Close => 7,
            _ => n,
        }
    }

    fn run(self, j: &mut Journal, ctx: &ReceiptCtx) -> Duration {
        let cny = Currency::from_code("CNY").expect("CNY");
        j.seed += 1;
        let seed = j.seed;
        match self {
            Op::P1Read => {
                let now = j.now;
                let t0 = Instant::now();
                let snap =
                    j.db.offline_snapshot(P1_USER, now - now % DAY)
                        .expect("snapshot");
                let took = t0.elapsed();
                assert!(snap.user_total_today > 0, "the user has sales today");
                took
            }
            Op::P1Sale => {
                j.now += 1_000;
                j.counter += 1;
                let mut t = Transaction::new(
                    TxnKind::Sale,
                    Method::OfflineCode,
                    100,
                    cny,
                    TxnState::ApprovedOffline,
                    j.now,
                    rand10(0x1000_0000 + seed),
                );
                t.channel = Some("p1".into());
                t.detail = Some(serde_json::json!({"user_id": P1_USER, "counter": j.counter}));
                let now = j.now;
                let t0 = Instant::now();
                let snap =
                    j.db.offline_snapshot(P1_USER, now - now % DAY)
                        .expect("snapshot");
                std::hint::black_box(snap);
                j.db.record_offline_sale(&t, P1_USER, j.counter)
                    .expect("P1");
                t0.elapsed()
            }
            Op::Online => {
                j.now += 1_000;
                let mut t = Transaction::new(
                    TxnKind::Sale,
                    Method::PaymentCode,
                    1250,
                    cny,
                    TxnState::Authorizing,
                    j.now,
                    rand10(0x2000_0000 + seed),
                );
                t.channel = Some("wechat".into());
                let t0 = Instant::now();
                j.db.record(&t).expect("authorizing");
                t.state = TxnState::Approved;
                t.updated_at = j.now + 200;
                j.db.record(&t).expect("approved");
                t0.elapsed()
            }
            Op::Reprint => {
                let t0 = Instant::now();
                let t =
                    j.db.last_receipt_txn()
                        .expect("last")
                        .expect("a receipt exists");
                let mut doc = PrintDoc::Receipt(receipt_of(&t, ctx).expect("receipt"));
                doc.mark_reprint();
                j.db.enqueue_doc(&t.id.to_string(), &doc, j.now)
                    .expect("enqueue");
                t0.elapsed()
            }
            Op::Queue => {
                let t0 = Instant::now();
                std::hint::black_box(j.db.queue_stats(j.now).expect("queue"));
                t0.elapsed()
            }
            Op::Close => {
                // 1,000 sales written untimed, 500 per commit, then the close.
                for chunk in 0..2u64 {
                    let txns: Vec<Transaction> = (0..500u64)
                        .map(|k| {
                            j.now += 10;
                            let mut t = Transaction::new(
                                TxnKind::Sale,
                                Method::PaymentCode,
                                1250,
                                cny,
                                TxnState::Approved,
                                j.now,
                                rand10(0x3000_0000 + seed * 10_000 + chunk * 1000 + k),
                            );
                            t.channel = Some("alipay".into());
                            t
                        })
                        .collect();
                    j.db.record_batch(&txns).expect("batch of sales");
                }
                j.now += 1_000;
                let close = Transaction::new(
                    TxnKind::BatchClose,
                    Method::None,
                    0,
                    cny,
                    TxnState::Closed,
                    j.now,
                    rand10(0x4000_0000 + seed),
                );
                let t0 = Instant::now();
                let (c, _) = j.db.batch_close(close).expect("close");
                let took = t0.elapsed();
                let z: posd_core::batch::ZTotals =
                    serde_json::from_value(c.detail.expect("report")).expect("z");
                // The first close also holds the sales the other paths wrote (the same on both journals).
                assert!(z.txn_count >= 1000, "the batch holds the 1,000 sales");
                took
            }
        }
    }
}

/// A never-closed batch of `n` sales: close time, RSS, event size.
fn big_close(dir: &Path, n: u64) {
    let path = dir.join("close.sqlite");
    let mut db = Db::open(&path).expect("open");
    db.set_receipts(Some(ReceiptCtx {
        terminal: "T1".into(),
        ..Default::default()
    }));
    let cny = Currency::from_code("CNY").expect("CNY");
    let mut now = START;
    let mut i = 0u64;
    while i < n {
        let txns: Vec<Transaction> = (0..5000u64.min(n - i))
            .map(|k| {
                now += 10;
                let mut t = Transaction::new(
                    TxnKind::Sale,
                    Method::PaymentCode,
                    1250,
                    cny,
                    TxnState::Approved,
                    now,
                    rand10(0x5000_0000 + i + k),
                );
                t.channel = Some("alipay".into());
                t
            })
            .collect();
        i += txns.len() as u64;
        db.record_batch(&txns).expect("sales");
    }
    let rss0 = rss_kb("VmRSS:");
    let close = Transaction::new(
        TxnKind::BatchClose,
        Method::None,
        0,
        cny,
        TxnState::Closed,
        now + 1,
        rand10(0x6000_0000),
    );
    let t0 = Instant::now();
    let (_, seq) = db.batch_close(close).expect("close");
    let took = t0.elapsed();
    let rss1 = rss_kb("VmRSS:");
    let event = db.outbox_after(seq - 1, 1).expect("event");
    let bytes = event.first().map(|e| e.1.len()).unwrap_or(0);
    println!(
        "close of a never-closed {n}-sale batch: {:.1} ms, RSS {} -> {} kB (peak {} kB), batch_close event {} bytes; load {}",
        ms(took),
        rss0,
        rss1,
        rss_kb("VmHWM:"),
        bytes,
        load()
    );
}

fn main() {
    let big: u64 = std::env::var("POSD_BENCH_BIG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let samples: usize = std::env::var("POSD_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir_in(std::env::var("POSD_BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("tempdir");
    println!("load at start: {}", load());
    if std::env::var("POSD_BENCH_ONLY_FILL").is_ok() {
        let p = std::path::PathBuf::from(std::env::var("POSD_BENCH_ONLY_FILL").unwrap_or_default());
        fill(&p, big, 50_000);
        return;
    }
    big_close(dir.path(), 100_000);
    let ctx = ReceiptCtx {
        terminal: "T1".into(),
        ..Default::default()
    };
    let mut small = open_filled(dir.path(), "1k", 1_000, 100, &ctx);
    let mut large = open_filled(dir.path(), "big", big, 50_000, &ctx);
    println!(
        "\n{:<28} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "hot path (ms)", "p50 1k", "p50 big", "p99 1k", "p99 big", "p50 x", "p99 x"
    );
    for op in Op::ALL {
        // Interleaved, one call on each journal in turn, so both see the same disk and load.
        let n = op.samples(samples);
        let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            a.push(op.run(&mut small, &ctx));
            b.push(op.run(&mut large, &ctx));
        }
        a.sort();
        b.sort();
        let (a50, a99, b50, b99) = (pct(&a, 0.5), pct(&a, 0.99), pct(&b, 0.5), pct(&b, 0.99));
        let r50 = b50.as_secs_f64() / a50.as_secs_f64();
        let r99 = b99.as_secs_f64() / a99.as_secs_f64();
        println!(
            "{:<28} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>7.2}x {:>7.2}x{}",
            op.label(),
            ms(a50),
            ms(b50),
            ms(a99),
            ms(b99),
            r50,
            r99,
            if r50 <= 1.2 {
                ""
            } else {
                "  (goal: p50 ratio <= 1.2)"
            }
        );
    }
    println!(
        "({} = {big} transactions + 50000 unsent events, {} = 1000 + 100; n = {samples} per \
         path, x5 for reads, 7 closes; load at end: {})",
        large.name,
        small.name,
        load()
    );
}
