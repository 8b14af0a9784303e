//! Retention and disk (issue 14): the periodic job that prunes the journal in small steps
//! through the writer thread, gives the space back, and watches the free space of the state
//! directory's file system — a status and a warning long before it is a refusal.
//!
//! What may be pruned and how is the journal's business ([`crate::store`], `store/retention.rs`);
//! this module decides *when*: a step (at most `[retention] step_rows` journal rows and
//! `step_budget_ms` of work, one short SQLite transaction) every `step_pause_ms` while there is
//! a backlog, so a sale never waits behind more than one step; when a sweep is over, free pages
//! go back to the file system and the log is checkpointed (`TRUNCATE`); then nothing until
//! `interval_s` has passed. Docs: `docs/retention.md`.

use crate::clock::now_ms;
use crate::config::RetentionConfig;
use crate::store::{free_space, DiskLimits, PruneRules, Store};
use posd_core::control::{DiskLevel, DiskStatus};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the free space is measured for `status` and the warning.
const DISK_CHECK: Duration = Duration::from_secs(30);
/// A low disk is logged when it becomes low and then at most this often.
const WARN_EVERY: Duration = Duration::from_secs(3600);
/// A journal older than migration #9 is converted to incremental vacuum automatically only up
/// to this size: the one-time `VACUUM` holds the writer thread for its whole run.
const CONVERT_MAX_BYTES: u64 = 64 << 20;

/// The free space of the journal's file system, shared by the job, `status` and the engine.
#[derive(Clone)]
pub struct DiskWatch {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    warn: u64,
    refuse: u64,
    status: Mutex<DiskStatus>,
}

fn mb(bytes: u64) -> String {
    let m = bytes as f64 / (1024.0 * 1024.0);
    if m < 10.0 {
        format!("{m:.1} MB")
    } else {
        format!("{m:.0} MB")
    }
}

impl DiskWatch {
    /// Watches the file system holding `dir` with the thresholds of `cfg`.
    pub fn new(dir: PathBuf, cfg: &RetentionConfig) -> DiskWatch {
        let warn = cfg.warn_free_mb.saturating_mul(1 << 20);
        let refuse = cfg.refuse_free_mb.saturating_mul(1 << 20);
        DiskWatch {
            inner: Arc::new(Inner {
                dir,
                warn,
                refuse,
                status: Mutex::new(DiskStatus {
                    warn_below_bytes: warn,
                    refuse_below_bytes: refuse,
                    retention_days: cfg.days,
                    ..Default::default()
                }),
            }),
        }
    }

    /// What the journal itself acts on (acks checkpoint the log on a low disk).
    pub fn limits(&self) -> DiskLimits {
        DiskLimits {
            low_bytes: self.inner.warn,
        }
    }

    fn level(&self, free: u64) -> DiskLevel {
        if free < self.inner.refuse {
            DiskLevel::Full
        } else if free < self.inner.warn {
            DiskLevel::Low
        } else {
            DiskLevel::Ok
        }
    }

    /// Measures now: (free, total, level); None when the file system cannot be asked.
    pub fn measure(&self) -> Option<(u64, u64, DiskLevel)> {
        let (free, total) = free_space(&self.inner.dir).ok()?;
        Some((free, total, self.level(free)))
    }

    /// Why a new sale or refund must be refused now, if it must: measured at the call (one
    /// `statvfs`), so it holds from the first byte too few, not from the next check.
    pub fn refusal(&self) -> Option<String> {
        let (free, _, level) = self.measure()?;
        (level == DiskLevel::Full).then(|| {
            format!(
                "the disk holding the journal is full: {} free on {}, and new sales are refused \
                 below {} so that sales in flight, acks and settlements can still be recorded; \
                 free space on that file system (or lower [retention] refuse_free_mb)",
                mb(free),
                self.inner.dir.display(),
                mb(self.inner.refuse)
            )
        })
    }

    /// For `status`: the free space measured now, the journal's sizes as last measured.
    pub fn status(&self) -> DiskStatus {
        if let Some((free, total, level)) = self.measure() {
            self.update(|s| {
                s.free_bytes = free;
                s.total_bytes = total;
                s.level = level;
            });
        }
        self.inner
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut DiskStatus)) {
        if let Ok(mut s) = self.inner.status.lock() {
            f(&mut s);
        }
    }
}

/// Runs the retention job and the disk watch until shutdown.
pub async fn run(
    store: Store,
    disk: DiskWatch,
    cfg: RetentionConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = disk.limits();
    if let Err(e) = store
        .call(move |db| {
            db.set_disk_limits(limits);
            Ok(())
        })
        .await
    {
        log::error!("retention: the journal is not reachable: {e}");
        return;
    }
    let mut next_disk = Instant::now();
    // Let start-up (in-flight recovery, the first publish) go first.
    let mut next_prune = Instant::now() + Duration::from_secs(cfg.start_delay_s);
    let mut last_level = DiskLevel::Unknown;
    let mut last_warn: Option<Instant> = None;
    let mut pruned_this_sweep = 0u64;
    let mut pruned_total = 0u64;
    let mut convert_noted = false;
    loop {
        let wake = next_disk.min(next_prune);
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        if now >= next_disk {
            next_disk = now + DISK_CHECK;
            let level = check_disk(&store, &disk).await;
            let was_low = matches!(last_level, DiskLevel::Low | DiskLevel::Full);
            let is_low = matches!(level, DiskLevel::Low | DiskLevel::Full);
            if was_low != is_low || last_level == DiskLevel::Unknown {
                if let Err(e) = store.call(move |db| db.set_disk_low(is_low)).await {
                    log::warn!("retention: checkpoint interval not changed: {e}");
                }
            }
            if level != last_level
                || (level != DiskLevel::Ok && last_warn.is_none_or(|w| w.elapsed() >= WARN_EVERY))
            {
                let s = disk.status();
                match level {
                    DiskLevel::Full => log::error!(
                        "disk full: {} free on {} (journal {}), new sales and refunds are refused below {}: free space on that file system",
                        mb(s.free_bytes), disk.inner.dir.display(), mb(s.db_bytes + s.wal_bytes), mb(s.refuse_below_bytes)
                    ),
                    DiskLevel::Low => log::warn!(
                        "disk low: {} free on {} (journal {}); sales will be refused below {}: free space on that file system or lower [retention] days",
                        mb(s.free_bytes), disk.inner.dir.display(), mb(s.db_bytes + s.wal_bytes), mb(s.refuse_below_bytes)
                    ),
                    DiskLevel::Ok if last_level == DiskLevel::Low || last_level == DiskLevel::Full => {
                        log::info!("disk space is back: {} free on {}", mb(s.free_bytes), disk.inner.dir.display())
                    }
                    _ => {}
                }
                if level != DiskLevel::Ok {
                    last_warn = Some(now);
                }
                last_level = level;
            }
        }
        if now < next_prune {
            continue;
        }
        let rules = PruneRules::at(now_ms(), cfg.days, cfg.refund_window_days, cfg.step_rows)
            .with_budget(Duration::from_millis(cfg.step_budget_ms));
        match store.call_background(move |db| db.prune_step(rules)).await {
            Ok(out) => {
                pruned_this_sweep += out.txns;
                pruned_total += out.txns;
                if out.more {
                    next_prune = Instant::now() + Duration::from_millis(cfg.step_pause_ms);
                    continue;
                }
            }
            Err(e) => log::warn!("retention: prune step failed (tried again later): {e}"),
        }
        // The sweep is over: a quiet moment to give the space back.
        next_prune = Instant::now() + Duration::from_secs(cfg.interval_s);
        disk.update(|s| s.pruned_txns = pruned_total);
        if pruned_this_sweep > 0 {
            log::info!("retention: pruned {pruned_this_sweep} transactions older than {} days of reconciled batches", cfg.days);
            pruned_this_sweep = 0;
            // The space back in bounded calls, sales between them.
            let mut reclaimed = true;
            loop {
                match store.call_background(|db| db.reclaim_step()).await {
                    Ok(0) => break,
                    Ok(_) => {
                        tokio::select! {
                            _ = shutdown.changed() => return,
                            _ = tokio::time::sleep(Duration::from_millis(cfg.step_pause_ms)) => {}
                        }
                    }
                    Err(e) => {
                        log::warn!("retention: space not given back yet: {e}");
                        reclaimed = false;
                        break;
                    }
                }
            }
            let size = store
                .call(|db| {
                    db.checkpoint_truncate()?;
                    db.db_size()
                })
                .await;
            match size {
                Ok(size) if reclaimed => log::info!(
                    "retention: journal now {} ({} free pages inside)",
                    mb(size.db_bytes + size.wal_bytes),
                    size.free_pages
                ),
                Ok(_) => {}
                Err(e) => log::warn!("retention: log not checkpointed: {e}"),
            }
        }
        let free = disk.measure().map(|m| m.0).unwrap_or(0);
        let converted = store
            .call(move |db| {
                let size = db.db_size()?;
                if size.auto_vacuum == 2 {
                    return Ok(None);
                }
                if size.db_bytes > CONVERT_MAX_BYTES || !db.in_flight()?.is_empty() {
                    return Ok(Some((false, size.db_bytes)));
                }
                let t = Instant::now();
                let done = db.convert_auto_vacuum(free)?;
                if done {
                    log::info!(
                        "retention: journal converted to incremental vacuum in {} ms ({} before)",
                        t.elapsed().as_millis(),
                        mb(size.db_bytes)
                    );
                }
                Ok(Some((done, size.db_bytes)))
            })
            .await;
        match converted {
            Ok(Some((false, bytes))) if !convert_noted => {
                convert_noted = true;
                log::warn!(
                    "retention: this journal ({}) predates incremental vacuum, so pruned space is \
                     reused but not given back to the file system; it is converted automatically \
                     once it is at most {} with three times its size free, or by hand with posd \
                     stopped: sqlite3 {} 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;'",
                    mb(bytes),
                    mb(CONVERT_MAX_BYTES),
                    disk.inner.dir.join("posd.sqlite").display()
                );
            }
            Ok(_) => {}
            Err(e) => log::warn!("retention: conversion to incremental vacuum failed: {e}"),
        }
    }
}

/// Measures the disk and the journal into the shared status; the level.
async fn check_disk(store: &Store, disk: &DiskWatch) -> DiskLevel {
    let Some((free, total, level)) = disk.measure() else {
        return DiskLevel::Unknown;
    };
    let size = store
        .call(|db| {
            db.ensure_reserve();
            db.db_size()
        })
        .await
        .ok();
    disk.update(|s| {
        s.level = level;
        s.free_bytes = free;
        s.total_bytes = total;
        if let Some(z) = size {
            s.db_bytes = z.db_bytes;
            s.wal_bytes = z.wal_bytes;
            s.free_pages = z.free_pages;
            s.auto_vacuum = match z.auto_vacuum {
                2 => "incremental",
                1 => "full",
                _ => "none",
            }
            .into();
            s.oldest_txn_at = z.oldest_txn_at;
        }
    });
    level
}
