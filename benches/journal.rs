//! Durable journal append (txn row + journal row + outbox event, one SQLite transaction,
//! WAL + synchronous=FULL) against a bare single-row synchronous=FULL insert, in the same run
//! on the same filesystem, both logs checkpointed as posd checkpoints its own
//! (`posd_sandbox::baseline`). Prints median and p99 of each and their ratio.
//!
//! Run: `cargo bench --bench journal` (POSD_BENCH_N to change the sample count).
//!
//! `-- --drain`: the journal's share of the outbox drain — per event, its read (`outbox_next`,
//! at most 256 a call, as the drain reads within its window) and its ack (`ack`, every 16 events,
//! about the host's cadence at the shipped window) — on a journal whose outbox is as migration #1
//! made it (a second b-tree on `event_id`) and on one as posd keeps it since stop 31 (no such
//! index), 20,000 events each, same directory, interleaved in slices of 1,000 events. Prints
//! CPU µs per event (the thread's own clock) and their ratio, with the machine's load.
//! `-- --drain-callgrind indexed|slim [fill-only]` fills one of them and drains it (or not), for
//! `scripts/callgrind-journal-drain.sh`: instructions per drained event (valgrind's count, the
//! same run to run on a loaded machine), the fill subtracted; the statements are the product's
//! own in both.

use posd::store::{pages_of, Db, CHECKPOINTER_BACKSTOP_BYTES, PAGE_SIZE, SEQS_PER_CHECKPOINT};
use posd_core::money::Currency;
use posd_core::txn::{Method, Transaction, TxnKind, TxnState};
use posd_sandbox::baseline::Checkpointer;
use posd_sandbox::world::{load, thread_cpu_s};
use std::path::Path;
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

/// Sale `i` being authorized, as both benches journal it (a distinct id for every `i`).
fn sale(i: u64, cny: Currency) -> Transaction {
    let mut t = Transaction::new(
        TxnKind::Sale,
        Method::PaymentCode,
        1250,
        cny,
        TxnState::Authorizing,
        1_700_000_000_000 + i,
        (i as u128).to_le_bytes()[..10]
            .try_into()
            .expect("10 bytes"),
    );
    t.channel = Some("wechat".into());
    t.code_masked = Some("1345**********6789".into());
    t
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--drain-callgrind") {
        let indexed = match args.get(i + 1).map(String::as_str) {
            Some("indexed") => true,
            Some("slim") => false,
            other => panic!("--drain-callgrind indexed|slim [fill-only], not {other:?}"),
        };
        let dir = tempfile::tempdir_in(".").expect("tempdir");
        let mut db = filled(&dir.path().join("j.sqlite"), DRAIN_EVENTS, indexed);
        if args.iter().any(|a| a == "fill-only") {
            println!("filled {DRAIN_EVENTS} events, drained none");
            return;
        }
        let t0 = Instant::now();
        drain_events(&mut db, DRAIN_EVENTS);
        println!(
            "drained {DRAIN_EVENTS} events ({}) in {:.2} s",
            if indexed { "indexed" } else { "slim" },
            t0.elapsed().as_secs_f64()
        );
        return;
    }
    if args.iter().any(|a| a == "--drain") {
        drain_compare();
        return;
    }
    let n: usize = std::env::var("POSD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let cny = Currency::from_code("CNY").expect("CNY");

    // Baseline: the cheapest durable commit SQLite offers here, its statement prepared once
    // and its log checkpointed as the journal's is (both as posd runs them).
    let bare_path = dir.path().join("bare.sqlite");
    let bare = rusqlite::Connection::open(&bare_path).expect("open");
    // The journal's page size: a commit's frames are as large as the journal's.
    bare.pragma_update(None, "page_size", PAGE_SIZE)
        .expect("page_size");
    bare.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    bare.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    bare.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        [],
    )
    .expect("create");
    let bare_ck = Checkpointer::start(
        &bare,
        &bare_path,
        pages_of(CHECKPOINTER_BACKSTOP_BYTES, PAGE_SIZE),
        SEQS_PER_CHECKPOINT,
    )
    .expect("checkpointer");
    let mut bare_d = Vec::with_capacity(n);
    let journal_path = dir.path().join("journal.sqlite");
    let mut db = Db::open(&journal_path).expect("journal");
    let journal_ck = Checkpointer::start(
        db.conn(),
        &journal_path,
        db.pages(CHECKPOINTER_BACKSTOP_BYTES),
        SEQS_PER_CHECKPOINT,
    )
    .expect("checkpointer");
    let mut journal_d = Vec::with_capacity(n);
    // Interleave the two so both see the same disk conditions.
    for i in 0..n {
        let t0 = Instant::now();
        bare.prepare_cached("INSERT INTO t (v) VALUES (?1)")
            .expect("prepare")
            .execute([format!("row {i}")])
            .expect("insert");
        bare_d.push(t0.elapsed());
        bare_ck.committed(1);

        let t = sale(i as u64, cny);
        let t0 = Instant::now();
        db.record(&t).expect("record");
        journal_d.push(t0.elapsed());
        journal_ck.committed(1);
    }
    let (bm, bp) = report("bare insert (synchronous=FULL)", bare_d);
    let (jm, jp) = report("journal append (txn+journal+outbox)", journal_d);
    println!(
        "ratio journal/bare: median {:.2}x, p99 {:.2}x",
        jm.as_secs_f64() / bm.as_secs_f64(),
        jp.as_secs_f64() / bp.as_secs_f64()
    );
}

/// Events in each journal of the drain comparison.
const DRAIN_EVENTS: u64 = 20_000;
/// The drain's largest read, and the host's ack cadence it is measured at.
const READ_MAX: u64 = 256;
const ACK_EVERY: u64 = 16;
/// The shipped window for events of ~300 B (128 KiB in flight).
const WINDOW: u64 = 446;

/// A journal holding `n` unsent events (sales being authorized, as a drain after an outage
/// sees them); `indexed`: its outbox as migration #1 made it, with the `event_id` index. Both
/// kinds get their outbox the same way, a copy into a fresh table (with the UNIQUE or
/// without), so their pages are laid out alike.
fn filled(path: &Path, n: u64, indexed: bool) -> Db {
    let mut db = Db::open(path).expect("journal");
    let cny = Currency::from_code("CNY").expect("CNY");
    let mut seq = 0u64;
    while seq < n {
        let txns: Vec<Transaction> = (seq..(seq + 500).min(n)).map(|i| sale(i, cny)).collect();
        seq += db.record_batch(&txns).expect("record").len() as u64;
    }
    db.conn()
        .execute_batch(&format!(
            "BEGIN;
             CREATE TABLE outbox_copy (
                 seq INTEGER PRIMARY KEY,
                 event_id TEXT NOT NULL {},
                 payload TEXT NOT NULL,
                 created_at INTEGER NOT NULL
             ) STRICT;
             INSERT INTO outbox_copy SELECT seq, event_id, payload, created_at FROM outbox;
             DROP TABLE outbox;
             ALTER TABLE outbox_copy RENAME TO outbox;
             COMMIT;
             PRAGMA incremental_vacuum;
             PRAGMA wal_checkpoint(TRUNCATE);",
            if indexed { "UNIQUE" } else { "" }
        ))
        .expect("copy the outbox");
    db
}

/// Drains the next `n` events the way posd's drain uses the journal: read what the window has
/// room for (at most `READ_MAX`), then the host's ack of the next `ACK_EVERY`. Returns the
/// payload bytes read.
#[inline(never)]
fn drain_events(db: &mut Db, n: u64) -> u64 {
    let stop = (db.acked_seq() + n).min(db.last_seq());
    let (mut sent, mut acked, mut bytes) = (db.acked_seq(), db.acked_seq(), 0u64);
    while acked < stop {
        let room = (acked + WINDOW)
            .min(stop)
            .saturating_sub(sent)
            .min(READ_MAX);
        if room > 0 {
            let rows = db.outbox_next(sent, room as u32, 64 << 10).expect("read");
            bytes += rows.iter().map(|r| r.size).sum::<u64>();
            sent += rows.len() as u64;
        }
        acked = (acked + ACK_EVERY).min(sent);
        db.ack(acked).expect("ack");
    }
    bytes
}

fn drain_compare() {
    let dir = tempfile::tempdir_in(".").expect("tempdir");
    println!("load {}", load());
    let mut dbs = [
        (
            "outbox with the event_id index (before stop 31)",
            filled(&dir.path().join("indexed.sqlite"), DRAIN_EVENTS, true),
        ),
        (
            "outbox without it (posd now)",
            filled(&dir.path().join("slim.sqlite"), DRAIN_EVENTS, false),
        ),
    ];
    let mut cpu = [0.0f64; 2];
    let mut wall = [Duration::ZERO; 2];
    const SLICE: u64 = 1_000;
    for slice in 0..DRAIN_EVENTS / SLICE {
        // Alternate which goes first, so neither always follows the other's writes.
        let order = if slice % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (c0, t0) = (thread_cpu_s(), Instant::now());
            drain_events(&mut dbs[i].1, SLICE);
            cpu[i] += thread_cpu_s() - c0;
            wall[i] += t0.elapsed();
        }
    }
    for (i, (name, db)) in dbs.iter().enumerate() {
        assert_eq!(db.acked_seq(), DRAIN_EVENTS, "{name}: drained");
        println!(
            "{name:<50} CPU {:>6.2} µs/event, wall {:>6.2} µs/event",
            cpu[i] / DRAIN_EVENTS as f64 * 1e6,
            wall[i].as_secs_f64() / DRAIN_EVENTS as f64 * 1e6
        );
    }
    println!(
        "journal's drain work now / before: CPU {:.2}x, wall {:.2}x (reads of <= {READ_MAX}, an ack every {ACK_EVERY} events, window {WINDOW}; load {})",
        cpu[1] / cpu[0],
        wall[1].as_secs_f64() / wall[0].as_secs_f64(),
        load()
    );
}
