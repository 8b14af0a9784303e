//! Measures what retention bounds (issue 14, docs/retention.md): bytes per sale in the journal,
//! the database file before and after pruning a long history, the time of a prune step and of
//! the one-time VACUUM that converts an older journal. A measurement, not a pass/fail test:
//! `DAYS=60 PER_DAY=2000 KEEP=30 cargo bench --bench retention_size` (prints the machine's load).
//!
//! `STEPS=1` instead compares the shipped prune step (`step_rows = 128` with
//! `step_budget_ms = 2`) against rows alone (128, the step before the budget) on two copies of
//! the same filled journal in the same directory, one step of each in turn: how long the writer
//! thread is held per step (what a sale arriving meanwhile waits), and the whole catch-up.

use posd::store::{Db, PruneRules};
use posd_core::money::Currency;
use posd_core::txn::{Method, Transaction, TxnKind, TxnState};
use posd_sandbox::world::load;
use std::path::Path;
use std::time::{Duration, Instant};

const DAY: u64 = 86_400_000;

fn fill(db: &mut Db, days: u64, per_day: u64) -> u64 {
    db.set_receipts(Some(posd_core::receipt::ReceiptCtx {
        terminal: "T-SHOP-0001".into(),
        zone: posd_core::zone::ShopZone::fixed(28_800).expect("UTC+8"),
        ..Default::default()
    }));
    // Size, not durability, is measured here: no fsync while filling.
    db.conn().pragma_update(None, "synchronous", "OFF").unwrap();
    let cny = Currency::from_code("CNY").unwrap();
    let mut n: u32 = 0;
    for d in 0..days {
        let day0 = (d + 1) * DAY;
        for k in 0..per_day {
            n += 1;
            let mut r = [0u8; 10];
            r[..4].copy_from_slice(&n.to_be_bytes());
            let at = day0 + k * 30_000;
            let mut t = Transaction::new(
                TxnKind::Sale,
                Method::PaymentCode,
                1250 + i64::from(n % 900),
                cny,
                TxnState::Authorizing,
                at,
                r,
            );
            t.channel = Some(
                if n.is_multiple_of(2) {
                    "wechat"
                } else {
                    "alipay"
                }
                .into(),
            );
            t.code_masked = Some("1345**********4567".into());
            db.record(&t).unwrap();
            t.state = TxnState::Approved;
            t.updated_at = at + 1_500;
            t.host_ref = Some(format!("H{:020}", n));
            db.record(&t).unwrap();
        }
        let mut r = [0xffu8; 10];
        r[..4].copy_from_slice(&n.to_be_bytes());
        let close = Transaction::new(
            TxnKind::BatchClose,
            Method::None,
            0,
            cny,
            TxnState::Closed,
            day0 + 80_000_000,
            r,
        );
        let (mut c, _) = db.batch_close(close).unwrap();
        c.state = TxnState::Reconciled;
        c.updated_at += 60_000;
        db.record(&c).unwrap();
        let last = db.last_seq();
        db.ack(last).unwrap();
        db.conn().pragma_update(None, "synchronous", "OFF").unwrap();
    }
    db.conn()
        .execute("UPDATE print_jobs SET state = 'printed'", [])
        .unwrap();
    u64::from(n)
}

fn mb(b: u64) -> f64 {
    b as f64 / 1_048_576.0
}

fn prune_all(db: &mut Db, now: u64, days: u32) -> (u64, u64, u128, u128) {
    let rules = PruneRules::at(now, days, days, 256);
    let (mut steps, mut txns) = (0u64, 0u64);
    let mut times = Vec::new();
    loop {
        let t = Instant::now();
        let o = db.prune_step(rules).unwrap();
        times.push(t.elapsed().as_micros());
        steps += 1;
        txns += o.txns;
        if !o.more {
            break;
        }
    }
    times.sort_unstable();
    (
        steps,
        txns,
        times[times.len() / 2],
        *times.last().unwrap_or(&0),
    )
}

fn report(path: &Path, label: &str, days: u64, per_day: u64, keep: u32) {
    let mut db = Db::open(path).unwrap();
    let t = Instant::now();
    let n = fill(&mut db, days, per_day);
    let fill_s = t.elapsed().as_secs_f64();
    let full = db.reclaim().unwrap();
    println!(
        "{label}: {n} sales over {days} days: {:.1} MB ({:.0} bytes a sale; filled in {fill_s:.0} s)",
        mb(full.db_bytes),
        full.db_bytes as f64 / n as f64
    );
    let now = (days + 1) * DAY;
    let t = Instant::now();
    let (steps, txns, p50, max) = prune_all(&mut db, now, keep);
    let prune_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (mut vsteps, mut vmax) = (0u32, 0u128);
    loop {
        let s = Instant::now();
        let left = db.reclaim_step().unwrap();
        vmax = vmax.max(s.elapsed().as_micros());
        vsteps += 1;
        if left == 0 {
            break;
        }
    }
    let s = Instant::now();
    db.checkpoint_truncate().unwrap();
    let ck = s.elapsed().as_millis();
    let after = db.db_size().unwrap();
    println!(
        "{label}: pruned {txns} transactions older than {keep} days in {steps} steps ({prune_s:.1} s; a step p50 {p50} us, max {max} us); space back in {vsteps} vacuum steps (max {vmax} us) + checkpoint {ck} ms, {} ms in all",
        t.elapsed().as_millis()
    );
    println!(
        "{label}: after: {:.1} MB file + {:.1} MB log, {} free pages, auto_vacuum {}",
        mb(after.db_bytes),
        mb(after.wal_bytes),
        after.free_pages,
        after.auto_vacuum
    );
    if after.auto_vacuum != 2 {
        let (free, _) = posd::store::free_space(path.parent().unwrap()).unwrap();
        let t = Instant::now();
        let done = db.convert_auto_vacuum(free).unwrap();
        let s = db.db_size().unwrap();
        println!(
            "{label}: one-time VACUUM conversion ({done}) of {:.1} MB in {} ms: now {:.1} MB",
            mb(after.db_bytes),
            t.elapsed().as_millis(),
            mb(s.db_bytes)
        );
    }
}

/// The p-th percentile of sorted microseconds.
fn pct(sorted: &[u128], p: f64) -> u128 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

/// Rows alone against rows and the time budget, interleaved on copies of one journal.
fn compare_steps(dir: &Path, days: u64, per_day: u64, keep: u32) {
    let a_path = dir.join("rows.sqlite");
    let b_path = dir.join("budget.sqlite");
    {
        let mut db = Db::open(&a_path).unwrap();
        let n = fill(&mut db, days, per_day);
        let size = db.reclaim().unwrap();
        println!(
            "steps: {n} sales over {days} days, {:.1} MB; pruning what is older than {keep} days",
            mb(size.db_bytes)
        );
    }
    std::fs::copy(&a_path, &b_path).unwrap();
    let now = (days + 1) * DAY;
    let rows = PruneRules::at(now, keep, keep, 128);
    let budget = rows.with_budget(Duration::from_millis(2));
    let mut dbs = [Db::open(&a_path).unwrap(), Db::open(&b_path).unwrap()];
    // As in the daemon, where a checkpointer thread of its own checkpoints the log and the
    // writer's automatic checkpoint is only the backstop: the steps' own work is compared.
    for db in &mut dbs {
        let pages = db.pages(posd::store::CHECKPOINTER_BACKSTOP_BYTES);
        db.set_autocheckpoint(pages).unwrap();
    }
    let mut times: [Vec<u128>; 2] = [Vec::new(), Vec::new()];
    let mut txns = [0u64; 2];
    let mut total = [Duration::ZERO; 2];
    let mut done = [false; 2];
    while !(done[0] && done[1]) {
        for (i, rules) in [rows, budget].into_iter().enumerate() {
            if done[i] {
                continue;
            }
            let t = Instant::now();
            let o = dbs[i].prune_step(rules).unwrap();
            let e = t.elapsed();
            total[i] += e;
            times[i].push(e.as_micros());
            txns[i] += o.txns;
            done[i] = !o.more;
        }
    }
    for (i, label) in ["rows alone (128)", "128 rows or 2 ms"].iter().enumerate() {
        let t = &mut times[i];
        t.sort_unstable();
        println!(
            "steps: {label}: {} transactions in {} steps, {:.2} s of steps; a step p50 {} us, p99 {} us, max {} us",
            txns[i],
            t.len(),
            total[i].as_secs_f64(),
            pct(t, 0.5),
            pct(t, 0.99),
            t.last().copied().unwrap_or(0)
        );
    }
    let ratio = |p: f64| pct(&times[1], p) as f64 / pct(&times[0], p).max(1) as f64;
    println!(
        "steps: budget / rows alone: p99 {:.2}x, max {:.2}x, steps {:.2}x, time in steps {:.2}x",
        ratio(0.99),
        ratio(1.0),
        times[1].len() as f64 / times[0].len().max(1) as f64,
        total[1].as_secs_f64() / total[0].as_secs_f64().max(1e-9)
    );
    assert_eq!(txns[0], txns[1], "both prune the same transactions");
}

fn main() {
    println!("load {}", load());
    let days: u64 = std::env::var("DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let per_day: u64 = std::env::var("PER_DAY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let keep: u32 = std::env::var("KEEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir =
        tempfile::tempdir_in(std::env::var("MEASURE_DIR").unwrap_or("/var/tmp".into())).unwrap();
    if std::env::var("STEPS").is_ok_and(|v| v == "1") {
        compare_steps(dir.path(), days, per_day, keep);
        println!("load {}", load());
        return;
    }
    report(
        &dir.path().join("new.sqlite"),
        "new journal",
        days,
        per_day,
        keep,
    );
    let legacy = dir.path().join("legacy.sqlite");
    {
        // A journal made before migration #9: auto_vacuum NONE.
        let c = rusqlite::Connection::open(&legacy).unwrap();
        c.execute_batch("CREATE TABLE legacy (x INTEGER)").unwrap();
    }
    report(&legacy, "older journal", days, per_day, keep);
}
