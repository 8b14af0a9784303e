//! `posd-sandbox fleet-sim`: a fleet of real daemons on one broker with host workers sharing the
//! load through an MQTT 5 shared subscription (`$share/<group>/...`, DESIGN §4) — so what a
//! fleet of hundreds does to a broker and a payment host is measured, not guessed (issue 20).
//!
//! It starts a mosquitto of its own on a free loopback port (never 1883), K `posd-sandbox host`
//! processes in one shared-subscription group on one database (a terminal's events reach any
//! worker, so one ledger is what makes the audit whole), and N `posd` daemons, each with its own
//! state directory and control socket. Then, one report line each: steady selling on every
//! terminal; a signed fleet-wide push; a push to one terminal and a command to a subset; a
//! broker restart (the reconnect storm); selling while one host worker is killed. At the end
//! every queue must drain and the host's ledger audit must be clean, with every terminal's
//! journal received gap-free up to its last seq. Everything it started is stopped by pid, on
//! an error too. Exit 3: the audit is not clean; 4: a phase did not complete (docs/fleet-sizing.md).

use crate::soak::{pct, Pct};
use crate::world::{
    cpu_s, issue_wallets, posd_binary, pss_kib, rss_kib, signal, FleetKey, Mosquitto, Till, Wallet,
};
use anyhow::{bail, Context};
use posd_core::codes::PrivateKey;
use posd_core::control as ctl;
use posd_core::protocol::Topics;
use posd_core::txn::SaleOutcome;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct FleetSimArgs {
    /// Real posd daemons to start.
    #[arg(long, default_value_t = 200)]
    pub terminals: usize,
    /// Sandbox host workers in one shared-subscription group.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Sales per terminal in each selling phase (online codes, P1 and cards in turn).
    #[arg(long, default_value_t = 6)]
    pub sales: u32,
    /// Tills selling at once (threads driving the control sockets).
    #[arg(long, default_value_t = 16)]
    pub tills: usize,
    /// How long a phase may take before it counts as not completed, s.
    #[arg(long, default_value_t = 180)]
    pub phase_timeout_s: u64,
    /// The daemons' reconnect backoff: first delay and cap, ms (jittered: half fixed, half random).
    #[arg(long, default_value_t = 500)]
    pub backoff_initial_ms: u64,
    #[arg(long, default_value_t = 5000)]
    pub backoff_max_ms: u64,
    /// How long the broker stays down in the restart phase, ms.
    #[arg(long, default_value_t = 3000)]
    pub outage_ms: u64,
    /// One JSON object a line (each phase, then the summary) instead of text.
    #[arg(long)]
    pub json: bool,
    /// The posd binary (default: the one beside this program, then `posd` on PATH).
    #[arg(long)]
    pub posd: Option<PathBuf>,
    #[arg(long, default_value = "warn")]
    pub posd_log_level: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep everything here (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const PREFIX: &str = "pos/v1";
const GROUP: &str = "fleet-sim";
const CARD: &str = "%B4111111111111111^FLEET/SIM^3512101000?;4111111111111111=3512101000?";

/// One terminal: its daemon, its control socket and its customer.
struct Term {
    id: String,
    socket: PathBuf,
    pid: u32,
    till: Option<Till>,
    wallet: Wallet,
    rng: fastrand::Rng,
}

impl Term {
    fn till(&mut self) -> anyhow::Result<&mut Till> {
        if self.till.is_none() {
            self.till = Some(Till::connect(&self.socket, None, Duration::from_secs(60))?);
        }
        self.till.as_mut().context("no control socket")
    }
}

/// Everything started, stopped by pid when dropped (also on an error).
struct Started {
    daemons: Vec<Child>,
    workers: Vec<Option<Child>>,
    mosquitto: Mosquitto,
}

impl Drop for Started {
    fn drop(&mut self) {
        // SIGTERM to all first: 200 daemons shut down side by side, not one after another.
        for d in &self.daemons {
            signal(d.id(), libc::SIGTERM);
        }
        for w in self.workers.iter().flatten() {
            signal(w.id(), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for c in self
            .daemons
            .iter_mut()
            .chain(self.workers.iter_mut().flatten())
        {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        self.mosquitto.kill();
    }
}

/// A phase's report line.
#[derive(Debug, Clone, serde::Serialize)]
struct Phase {
    phase: &'static str,
    ok: bool,
    /// The figures, by name.
    #[serde(flatten)]
    figures: serde_json::Map<String, serde_json::Value>,
    /// The line for people.
    #[serde(skip)]
    text: String,
}

fn fail_phase(phase: &'static str, why: String) -> Phase {
    Phase {
        phase,
        ok: false,
        figures: json!({ "error": why })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        text: format!("did not complete: {why}"),
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap_or_default()
}

pub fn run(args: FleetSimArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init("error");
    if args.terminals == 0 || args.workers == 0 {
        bail!("--terminals and --workers must be at least 1");
    }
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("posd-fleet-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let dir = dir.canonicalize()?;
    let broker_log = dir.join("mosquitto.log");
    let mosquitto = Mosquitto::start_with(
        &dir,
        "log_dest stderr\nlog_type notice\nlog_type error\nlog_type warning\n",
        Some(broker_log.clone()),
    )?;
    let mosquitto_idle_kib = mosquitto.pid().map(rss_kib).unwrap_or(0);
    let mut started = Started {
        daemons: Vec::new(),
        workers: Vec::new(),
        mosquitto,
    };
    let url = started.mosquitto.url();

    // The platform's keys: issuer (P1), card sealing, host signing, fleet signing.
    let issuer = PrivateKey::generate()?;
    let (card_secret, card_public) =
        posd_core::card::seal::keygen_random().map_err(|e| anyhow::anyhow!("card key: {e}"))?;
    let signer = posd_core::protocol::signed::HostSigner::generate(1);
    let host_key = dir.join("host.key");
    std::fs::write(&host_key, crate::host::signing_key_file(&signer))?;
    let card_key = dir.join("card.key");
    std::fs::write(&card_key, posd_core::card::seal::key_to_b64(&card_secret))?;
    let fleet = FleetKey {
        id: "fleet-sim".into(),
        key: posd_core::fleet::envelope::generate_key(),
    };

    // K host workers: one group, one database.
    let me = std::env::current_exe().context("where is posd-sandbox")?;
    let host_db = dir.join("host.sqlite");
    for k in 0..args.workers {
        let log = std::fs::File::create(dir.join(format!("host-{k}.log")))?;
        let child = Process::new(&me)
            .args([
                "host",
                "--broker",
                &url,
                "--group",
                GROUP,
                "--log-level",
                "warn",
            ])
            .arg("--db")
            .arg(&host_db)
            .args(["--client-id", &worker_id(k), "--pay-after-ms", "200"])
            .arg("--host-key")
            .arg(&host_key)
            .arg("--card-key")
            .arg(&card_key)
            .arg("--issuer-key")
            .arg(format!("1={}", issuer.public_key().to_hex()))
            .arg("--ready-file")
            .arg(worker_ready(&dir, k))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} host", me.display()))?;
        started.workers.push(Some(child));
    }
    // Every worker subscribed before the first terminal starts: a worker late to subscribe
    // gets no share of the events it missed (the phases count each worker's share).
    let waited = Instant::now();
    for k in 0..args.workers {
        while !worker_ready(&dir, k).exists() {
            if waited.elapsed() > Duration::from_secs(60) {
                bail!(
                    "host worker {k} did not subscribe within 60 s: see {}",
                    dir.join(format!("host-{k}.log")).display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // N daemons.
    let posd = posd_binary(&args.posd);
    let now_s = (crate::mqtt::now_ms() / 1000) as u32;
    let wallets = issue_wallets(
        &issuer,
        args.terminals,
        now_s.saturating_sub(86_400),
        now_s + 7 * 86_400,
    )?;
    let t_start = Instant::now();
    let mut terms = Vec::with_capacity(args.terminals);
    for (i, wallet) in wallets.into_iter().enumerate() {
        let id = format!("FS-{:05}", i + 1);
        let tdir = dir.join("t").join(&id);
        std::fs::create_dir_all(&tdir)?;
        let socket = tdir.join("control.sock");
        let config = tdir.join("posd.toml");
        std::fs::write(
            &config,
            terminal_config(
                &args,
                &id,
                &tdir,
                &url,
                &signer,
                &issuer,
                &card_public,
                &fleet,
            ),
        )?;
        let log = std::fs::File::create(tdir.join("posd.log"))?;
        let child = Process::new(&posd)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (build it: cargo build -p posd --bins)",
                    posd.display()
                )
            })?;
        terms.push(Term {
            id,
            socket,
            pid: child.id(),
            till: None,
            wallet,
            rng: fastrand::Rng::with_seed(args.seed.wrapping_mul(1_000_003) + i as u64),
        });
        started.daemons.push(child);
    }
    let timeout = Duration::from_secs(args.phase_timeout_s);
    let mut phases: Vec<Phase> = Vec::new();
    let emit = |p: &Phase, json: bool| {
        if json {
            println!("{}", serde_json::to_string(p).unwrap_or_default());
        } else {
            println!("{:<14} {}", p.phase, p.text);
        }
    };
    if !args.json {
        println!(
            "posd fleet-sim: {} terminals, {} host workers ($share/{GROUP}/...), {} sales each per selling phase; broker {url}; dir {}",
            args.terminals,
            args.workers,
            args.sales,
            dir.display()
        );
    }

    // Start: every daemon answers on its socket and is online.
    let p = match wait_all(&mut terms, args.tills, timeout, |st| st.online) {
        Ok(w) => Phase {
            phase: "start",
            ok: true,
            text: format!(
                "{} daemons online {:.1} s after the first was started",
                terms.len(),
                t_start.elapsed().as_secs_f64()
            ),
            figures: obj(
                json!({ "terminals": terms.len(), "online_s": t_start.elapsed().as_secs_f64(), "p50_ms": w.p50_ms }),
            ),
        },
        Err(e) => fail_phase("start", format!("{e:#}")),
    };
    emit(&p, args.json);
    let started_ok = p.ok;
    phases.push(p);
    if !started_ok {
        return finish(&args, &dir, phases, None);
    }
    let mosquitto_fleet_kib = started.mosquitto.pid().map(rss_kib).unwrap_or(0);

    // 1. Steady selling.
    let t0 = Instant::now();
    let wall0 = crate::mqtt::now_ms();
    let sold = sell(&mut terms, &args, None);
    let wall1 = crate::mqtt::now_ms();
    let p = selling_phase("selling", sold, t0, &host_db, wall0, wall1);
    emit(&p, args.json);
    phases.push(p);

    // 2. A signed fleet-wide push.
    let p = match fleet_push(&mut terms, &args, &url, &fleet, timeout) {
        Ok(p) => p,
        Err(e) => fail_phase("fleet-push", format!("{e:#}")),
    };
    emit(&p, args.json);
    phases.push(p);

    // 3. One terminal's push and a command to a subset.
    let p = match targeted(&mut terms, &args, &url, &fleet, timeout) {
        Ok(p) => p,
        Err(e) => fail_phase("targeted", format!("{e:#}")),
    };
    emit(&p, args.json);
    phases.push(p);

    // 4. The broker restarts: the reconnect storm.
    let p = match broker_restart(&mut terms, &args, &mut started, &broker_log, timeout) {
        Ok(p) => p,
        Err(e) => fail_phase("broker-restart", format!("{e:#}")),
    };
    emit(&p, args.json);
    phases.push(p);

    // 5. Selling while one host worker is killed.
    let p = if args.workers < 2 {
        fail_phase(
            "worker-killed",
            "one host worker only: nobody to take over (--workers 2 or more)".into(),
        )
    } else {
        let victim = started.workers[0].as_ref().map(Child::id);
        let t0 = Instant::now();
        let wall0 = crate::mqtt::now_ms();
        let sold = sell(&mut terms, &args, victim);
        let wall1 = crate::mqtt::now_ms();
        if let Some(mut c) = started.workers[0].take() {
            let _ = c.wait();
        }
        let mut p = selling_phase("worker-killed", sold, t0, &host_db, wall0, wall1);
        // The others took over: they stored events in this phase.
        let survivors: u64 = p.figures["events_by_worker"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(w, _)| **w != worker_id(0))
                    .filter_map(|(_, n)| n.as_u64())
                    .sum()
            })
            .unwrap_or(0);
        p.ok &= survivors > 0;
        p.text = format!("{} killed (SIGKILL) mid-phase; {}", worker_id(0), p.text);
        p
    };
    emit(&p, args.json);
    phases.push(p);

    let live_workers: Vec<(String, u32)> = started
        .workers
        .iter()
        .enumerate()
        .filter_map(|(k, w)| w.as_ref().map(|c| (worker_id(k), c.id())))
        .collect();
    let mosquitto_pid = started.mosquitto.pid();
    finish_with_audit(
        &args,
        &dir,
        phases,
        &mut terms,
        &live_workers,
        mosquitto_pid,
        mosquitto_idle_kib,
        mosquitto_fleet_kib,
        &host_db,
        timeout,
    )
}

fn worker_id(k: usize) -> String {
    format!("fleet-sim-host-{k}")
}

#[allow(clippy::too_many_arguments)]
fn terminal_config(
    args: &FleetSimArgs,
    id: &str,
    tdir: &Path,
    url: &str,
    signer: &posd_core::protocol::signed::HostSigner,
    issuer: &PrivateKey,
    card_public: &[u8; 32],
    fleet: &FleetKey,
) -> String {
    format!(
        r#"
[terminal]
id = "{id}"
currency = "CNY"
state_dir = "{state}"
[broker]
url = "{url}"
keep_alive_s = 10
backoff_initial_ms = {bi}
backoff_max_ms = {bm}
ack_timeout_s = 3
status_interval_s = 30
{host_keys}[control]
socket = "{socket}"
[online]
query_interval_s = 1
query_total_s = 10
[logging]
level = "{log_level}"
[devices.printer.transport]
type = "file"
path = "{receipts}"
[receipt]
shop_name = "posd fleet-sim shop"
copies = ["customer"]
[offline]
clock = "always"
settle_query_interval_s = 5
[offline.limits]
per_txn_limit = 10000
per_user_daily_limit = 1000000
[[offline.issuer_keys]]
id = 1
public_key = "{issuer_pub}"
[card]
host_public_key = "{card_public}"
[fleet]
keys = [{{ id = "{fleet_id}", public_key = "{fleet_pub}" }}]
"#,
        state = tdir.join("state").display(),
        bi = args.backoff_initial_ms,
        bm = args.backoff_max_ms,
        host_keys = signer.toml_entry(),
        socket = tdir.join("control.sock").display(),
        log_level = args.posd_log_level,
        receipts = tdir.join("receipts.escpos").display(),
        issuer_pub = issuer.public_key().to_hex(),
        card_public = posd_core::card::seal::key_to_b64(card_public),
        fleet_id = fleet.id,
        fleet_pub = fleet.public_hex(),
    )
}

/// Runs `f` on every terminal, `tills` threads side by side; the first error of any wins.
fn each<T: Send>(
    terms: &mut [Term],
    tills: usize,
    f: impl Fn(&mut Term) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let chunk = terms.len().div_ceil(tills.max(1)).max(1);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = terms
            .chunks_mut(chunk)
            .map(|c| s.spawn(move || c.iter_mut().map(f).collect::<anyhow::Result<Vec<T>>>()))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(r) => out.extend(r?),
                Err(_) => bail!("a till thread panicked"),
            }
        }
        Ok(out)
    })
}

/// Polls every terminal's status until `done` holds for it; returns when each first did.
fn wait_all(
    terms: &mut [Term],
    tills: usize,
    limit: Duration,
    done: impl Fn(&ctl::StatusDoc) -> bool + Sync,
) -> anyhow::Result<Waited> {
    let t0 = Instant::now();
    let deadline = t0 + limit;
    // Each thread sweeps its terminals round-robin, so a slow one does not hold up the others.
    let chunk = terms.len().div_ceil(tills.max(1)).max(1);
    let done = &done;
    let mut times: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = terms
            .chunks_mut(chunk)
            .map(|c| {
                s.spawn(move || -> anyhow::Result<Vec<f64>> {
                    let mut at: Vec<Option<f64>> = vec![None; c.len()];
                    loop {
                        for (k, t) in c.iter_mut().enumerate() {
                            if at[k].is_some() {
                                continue;
                            }
                            let st = t.till()?.must(ctl::Status {})?;
                            if done(&st) {
                                at[k] = Some(ms(t0));
                            }
                        }
                        if at.iter().all(Option::is_some) {
                            return Ok(at.into_iter().flatten().collect());
                        }
                        if Instant::now() > deadline {
                            let late: Vec<&str> = c
                                .iter()
                                .zip(&at)
                                .filter(|(_, a)| a.is_none())
                                .map(|(t, _)| t.id.as_str())
                                .collect();
                            bail!("not within {} s: {}", limit.as_secs(), late.join(", "));
                        }
                        std::thread::sleep(Duration::from_millis(25));
                    }
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(r) => out.extend(r?),
                Err(_) => bail!("a till thread panicked"),
            }
        }
        Ok(out)
    })?;
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(Waited {
        first_ms: times.first().copied().unwrap_or(0.0),
        p50_ms: times.get(times.len() / 2).copied().unwrap_or(0.0),
        last_ms: times.last().copied().unwrap_or(0.0),
    })
}

/// When the terminals first met a [`wait_all`] condition, ms after it began polling.
struct Waited {
    first_ms: f64,
    p50_ms: f64,
    /// The last terminal: "every terminal" is the figure, not a percentile.
    last_ms: f64,
}

/// What a selling phase did.
#[derive(Default)]
struct Sold {
    sales: u64,
    approved: u64,
    not_approved: u64,
    /// Approval times of approved sales, by kind.
    times: BTreeMap<&'static str, Vec<f64>>,
    error: Option<String>,
    /// The sale count at which the victim worker was killed.
    killed_at: Option<u64>,
    /// What the first sale not approved was answered.
    first_refusal: Option<String>,
}

/// Every terminal sells `args.sales` times (online, P1, card in turn). With `victim`, that
/// host worker is killed (SIGKILL) once a third of the phase's sales are made.
fn sell(terms: &mut [Term], args: &FleetSimArgs, victim: Option<u32>) -> Sold {
    let total = terms.len() as u64 * u64::from(args.sales);
    let made = AtomicU64::new(0);
    let killed_at = Mutex::new(None);
    let sales = args.sales;
    let r = each(terms, args.tills, |t| {
        let mut out: Vec<(&'static str, Option<String>, f64)> = Vec::new();
        for k in 0..sales {
            let n = made.fetch_add(1, Ordering::Relaxed);
            if let Some(pid) = victim {
                if n >= total / 3 {
                    if let Ok(mut g) = killed_at.lock() {
                        if g.is_none() {
                            signal(pid, libc::SIGKILL);
                            *g = Some(n);
                        }
                    }
                }
            }
            // Within the offline per-transaction limit (100.00) for P1; never ending in 11 or
            // 33 (amounts the sandbox host's orders give a meaning).
            let amount = format!("{}.{:02}", t.rng.u32(1..90), t.rng.u32(0..10) * 10);
            let (kind, code) = match k % 3 {
                0 => (
                    "online",
                    format!("13{:014}80", t.rng.u64(0..100_000_000_000_000)),
                ),
                1 => (
                    "p1",
                    t.wallet.next_code((crate::mqtt::now_ms() / 1000) as u32)?,
                ),
                _ => ("card", CARD.to_string()),
            };
            let t0 = Instant::now();
            let answer = t.till()?.call(ctl::Sale {
                amount,
                code: Some(code),
                ..ctl::Sale::default()
            })?;
            let refusal = match answer {
                Ok(r) if matches!(r.outcome, SaleOutcome::Approved { .. }) => None,
                Ok(r) => Some(format!("{kind}: {:?}", r.outcome)),
                Err(e) => Some(format!("{kind}: {e}")),
            };
            out.push((kind, refusal, ms(t0)));
        }
        Ok(out)
    });
    let mut s = Sold {
        killed_at: killed_at.into_inner().ok().flatten(),
        ..Sold::default()
    };
    match r {
        Ok(rows) => {
            for (kind, refusal, t) in rows.into_iter().flatten() {
                s.sales += 1;
                if let Some(why) = refusal {
                    s.not_approved += 1;
                    s.first_refusal.get_or_insert(why);
                } else {
                    s.approved += 1;
                    s.times.entry(kind).or_default().push(t);
                    s.times.entry("all").or_default().push(t);
                }
            }
        }
        Err(e) => s.error = Some(format!("{e:#}")),
    }
    s
}

/// Events each host worker stored between `from` and `to` (host clock, unix ms).
/// The file host worker `k` writes once its subscriptions are acknowledged.
fn worker_ready(dir: &Path, k: usize) -> std::path::PathBuf {
    dir.join(format!("host-{k}.ready"))
}

fn events_by_worker(db: &Path, from: u64, to: u64) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(conn) = crate::host::open_db(db) else {
        return out;
    };
    let q = conn.prepare(
        "SELECT COALESCE(stored_by, '?'), COUNT(*) FROM events
         WHERE received_at >= ?1 AND received_at <= ?2 GROUP BY stored_by",
    );
    if let Ok(mut st) = q {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        if let Ok(rows) = st.query_map([clamp(from), clamp(to)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        }) {
            for (w, n) in rows.flatten() {
                out.insert(w, n.max(0) as u64);
            }
        }
    }
    out
}

fn selling_phase(
    name: &'static str,
    mut sold: Sold,
    t0: Instant,
    host_db: &Path,
    wall0: u64,
    wall1: u64,
) -> Phase {
    let secs = t0.elapsed().as_secs_f64().max(0.001);
    let all = pct(sold
        .times
        .get_mut("all")
        .map(Vec::as_mut_slice)
        .unwrap_or(&mut []));
    let kinds: BTreeMap<&str, Pct> = sold
        .times
        .iter_mut()
        .filter(|(k, _)| **k != "all")
        .map(|(k, v)| (*k, pct(v)))
        .collect();
    // Events reach the host a moment after the sale: count a little past the end.
    std::thread::sleep(Duration::from_millis(500));
    let per_worker = events_by_worker(host_db, wall0, wall1 + 500);
    let per_worker_rate: BTreeMap<&String, f64> = per_worker
        .iter()
        .map(|(w, n)| (w, *n as f64 / secs))
        .collect();
    let ok = sold.error.is_none() && sold.approved > 0;
    let mut text = format!(
        "{} sales in {:.1} s = {:.1}/s, {} approved, {} not; approval p50 {:.0} ms, p99 {:.0} ms ({}); events/s per host worker: {}",
        sold.sales,
        secs,
        sold.sales as f64 / secs,
        sold.approved,
        sold.not_approved,
        all.p50_ms,
        all.p99_ms,
        kinds
            .iter()
            .map(|(k, p)| format!("{k} {:.0}/{:.0}", p.p50_ms, p.p99_ms))
            .collect::<Vec<_>>()
            .join(", "),
        per_worker_rate
            .iter()
            .map(|(w, r)| format!("{w} {r:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(r) = &sold.first_refusal {
        text.push_str(&format!("; first not approved: {r}"));
    }
    if let Some(e) = &sold.error {
        text.push_str(&format!("; did not complete: {e}"));
    }
    Phase {
        phase: name,
        ok,
        figures: obj(json!({
            "sales": sold.sales,
            "seconds": secs,
            "sales_per_s": sold.sales as f64 / secs,
            "approved": sold.approved,
            "not_approved": sold.not_approved,
            "approval": all,
            "by_kind": kinds,
            "events_by_worker": per_worker,
            "events_per_s_by_worker": per_worker_rate,
            "killed_at_sale": sold.killed_at,
            "first_refusal": sold.first_refusal,
            "error": sold.error,
        })),
        text,
    }
}

fn fleet_push(
    terms: &mut [Term],
    args: &FleetSimArgs,
    url: &str,
    fleet: &FleetKey,
    timeout: Duration,
) -> anyhow::Result<Phase> {
    const V: u64 = 10;
    let body = fleet.sign_config("*", V, json!({"limits": {"max_sale_amount": 900_000}}))?;
    let topic = posd_core::protocol::all_cfg_desired(PREFIX);
    let cpu0: f64 = terms.iter().map(|t| cpu_s(t.pid)).sum();
    crate::world::publish_all(url, "fleet-sim-push", true, vec![(topic, body)])?;
    let w = wait_all(terms, args.tills, timeout, |st| {
        st.config_version == Some(V)
    })?;
    // What taking the push cost the daemons (with the status polls meanwhile).
    let cpu_ms_each =
        (terms.iter().map(|t| cpu_s(t.pid)).sum::<f64>() - cpu0) * 1000.0 / terms.len() as f64;
    Ok(Phase {
        phase: "fleet-push",
        ok: true,
        text: format!(
            "version {V} on {PREFIX}/all/cfg/desired applied by all {} in {:.0} ms (p50 {:.0} ms); {cpu_ms_each:.0} CPU-ms per daemon meanwhile",
            terms.len(),
            w.last_ms,
            w.p50_ms
        ),
        figures: obj(json!({
            "version": V,
            "all_applied_ms": w.last_ms,
            "p50_ms": w.p50_ms,
            "cpu_ms_per_daemon": cpu_ms_each,
        })),
    })
}

fn targeted(
    terms: &mut [Term],
    args: &FleetSimArgs,
    url: &str,
    fleet: &FleetKey,
    timeout: Duration,
) -> anyhow::Result<Phase> {
    const V: u64 = 20;
    let target = terms[0].id.clone();
    let body = fleet.sign_config(&target, V, json!({"limits": {"max_sale_amount": 800_000}}))?;
    let t0 = Instant::now();
    crate::world::publish_all(
        url,
        "fleet-sim-push",
        true,
        vec![(Topics::new(PREFIX, &target).cfg_desired(), body)],
    )?;
    let w = wait_all(&mut terms[..1], 1, timeout, |st| {
        st.config_version == Some(V)
    })?;
    let push_ms = w.last_ms.min(ms(t0));
    // Nobody else took it.
    let others = each(&mut terms[1..], args.tills, |t| {
        Ok((t.id.clone(), t.till()?.must(ctl::Status {})?.config_version))
    })?;
    if let Some((id, v)) = others.iter().find(|(_, v)| *v != Some(10)) {
        bail!("{id} is at config version {v:?} after a push meant for {target} only");
    }
    // A command to every tenth terminal (at least one).
    let subset: Vec<String> = terms.iter().step_by(10).map(|t| t.id.clone()).collect();
    let (answered, cmd_ms) = command_subset(url, fleet, &subset, timeout)?;
    Ok(Phase {
        phase: "targeted",
        ok: answered == subset.len(),
        text: format!(
            "version {V} to {target} alone applied in {push_ms:.0} ms (the other {} stayed at 10); ping to {} terminals: {} answered ok in {cmd_ms:.0} ms",
            terms.len() - 1,
            subset.len(),
            answered
        ),
        figures: obj(json!({
            "push_terminal": target,
            "push_applied_ms": push_ms,
            "cmd_terminals": subset.len(),
            "cmd_ok": answered,
            "cmd_all_answered_ms": cmd_ms,
        })),
    })
}

/// Sends a signed `ping` to each of `subset` and waits for every `cmd/result`.
fn command_subset(
    url: &str,
    fleet: &FleetKey,
    subset: &[String],
    timeout: Duration,
) -> anyhow::Result<(usize, f64)> {
    let opts = crate::mqtt::options("fleet-sim-cmd", url, 10).map_err(anyhow::Error::msg)?;
    let (client, mut conn) = rumqttc::Client::new(opts, subset.len() + 10);
    let results = format!("{PREFIX}/+/cmd/result");
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut ok = 0usize;
    let mut t0 = None;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && (t0.is_none() || !pending.is_empty()) {
        let ev = match conn.recv_timeout(Duration::from_millis(200)) {
            Ok(ev) => ev,
            Err(_) => continue,
        };
        match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) if t0.is_none() => {
                client.subscribe(results.clone(), rumqttc::QoS::AtLeastOnce)?;
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) if t0.is_none() => {
                t0 = Some(Instant::now());
                for id in subset {
                    let cmd_id = format!("fleet-sim-ping-{id}-{}", crate::mqtt::now_ms());
                    let body =
                        fleet.sign_command(id, &cmd_id, posd_core::fleet::command::Op::Ping)?;
                    client.publish(
                        Topics::new(PREFIX, id).cmd(),
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        body,
                    )?;
                    pending.insert(cmd_id, id.clone());
                }
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null);
                if let Some(id) = v["cmd_id"].as_str() {
                    if pending.remove(id).is_some() && v["ok"] == serde_json::Value::Bool(true) {
                        ok += 1;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => bail!("command: {e}"),
        }
    }
    let _ = client.disconnect();
    if !pending.is_empty() {
        bail!(
            "no cmd/result within {} s from {}",
            timeout.as_secs(),
            pending.values().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok((ok, t0.map(ms).unwrap_or(0.0)))
}

fn broker_restart(
    terms: &mut [Term],
    args: &FleetSimArgs,
    started: &mut Started,
    broker_log: &Path,
    timeout: Duration,
) -> anyhow::Result<Phase> {
    started.mosquitto.kill();
    // Everybody notices (the TCP connection closes) and backs off while it is down.
    std::thread::sleep(Duration::from_millis(args.outage_ms));
    let log_before = std::fs::metadata(broker_log).map(|m| m.len()).unwrap_or(0);
    let up_unix_s = crate::mqtt::wall_ms() / 1000;
    started.mosquitto.restart()?;
    let w = wait_all(terms, args.tills, timeout, |st| st.online)?;
    // Connects per second from the broker's own log ("<unix s>: New client connected ...").
    let text = std::fs::read(broker_log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(log_before as usize..).unwrap_or(&[]));
    let mut per_s: BTreeMap<u64, u64> = BTreeMap::new();
    for line in text.lines() {
        if !line.contains("New client connected") || !line.contains(" as FS-") {
            continue;
        }
        if let Some(s) = line
            .split(':')
            .next()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            *per_s.entry(s).or_default() += 1;
        }
    }
    let connects: u64 = per_s.values().sum();
    let peak = per_s.values().copied().max().unwrap_or(0);
    let span_s = match (per_s.keys().next(), per_s.keys().last()) {
        (Some(a), Some(b)) => b - a + 1,
        _ => 0,
    };
    let first_s = per_s.keys().next().map(|s| s.saturating_sub(up_unix_s));
    Ok(Phase {
        phase: "broker-restart",
        ok: true,
        text: format!(
            "down {} ms; all {} online {:.0} ms after it was back (first {:.0} ms, p50 {:.0} ms: the jitter spreads them over {:.0} ms); {connects} connects, peak {peak}/s over {span_s} s",
            args.outage_ms,
            terms.len(),
            w.last_ms,
            w.first_ms,
            w.p50_ms,
            w.last_ms - w.first_ms,
        ),
        figures: obj(json!({
            "outage_ms": args.outage_ms,
            "all_online_ms": w.last_ms,
            "p50_online_ms": w.p50_ms,
            "first_online_ms": w.first_ms,
            "connects": connects,
            "peak_connects_per_s": peak,
            "connect_span_s": span_s,
            "first_connect_after_s": first_s,
            "connects_per_s": per_s.values().collect::<Vec<_>>(),
        })),
    })
}

#[allow(clippy::too_many_arguments)]
fn finish_with_audit(
    args: &FleetSimArgs,
    dir: &Path,
    mut phases: Vec<Phase>,
    terms: &mut [Term],
    workers: &[(String, u32)],
    mosquitto_pid: Option<u32>,
    mosquitto_idle_kib: u64,
    mosquitto_fleet_kib: u64,
    host_db: &Path,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    // Every queue drains, then the ledger and the journals are compared.
    let t0 = Instant::now();
    let drained = wait_all(terms, args.tills, timeout, |st| st.queue.pending == 0);
    let last_seqs: anyhow::Result<Vec<(String, u64)>> = each(terms, args.tills, |t| {
        Ok((t.id.clone(), t.till()?.must(ctl::Queue {})?.last_seq))
    });
    let rss: Vec<u64> = terms.iter().map(|t| rss_kib(t.pid)).collect();
    let total_kib: u64 = rss.iter().sum();
    let max_kib = rss.iter().copied().max().unwrap_or(0);
    let per_kib = total_kib / rss.len().max(1) as u64;
    let pss_total_kib: u64 = terms.iter().map(|t| pss_kib(t.pid)).sum();
    let audit = crate::host::open_db(host_db)
        .map_err(anyhow::Error::from)
        .and_then(|db| crate::host::audit(&db).map_err(anyhow::Error::from));
    let mut problems: Vec<String> = Vec::new();
    let drain_ms = match &drained {
        Ok(_) => Some(ms(t0)),
        Err(e) => {
            problems.push(format!("queues did not drain: {e:#}"));
            None
        }
    };
    let mut audit_ok = false;
    let mut gap_free = false;
    let mut audit_fig = json!(null);
    match (&audit, &last_seqs) {
        (Ok(a), Ok(seqs)) => {
            gap_free = a.terminals.values().all(|t| t.gaps == 0);
            for (id, last) in seqs {
                match a.terminals.get(id) {
                    Some(ta)
                        if ta.max_seq == *last && ta.contiguous_seq == *last && ta.gaps == 0 => {}
                    Some(ta) => {
                        gap_free = false;
                        problems.push(format!(
                            "{id}: journal ends at seq {last}, host holds {} events up to {} (contiguous {})",
                            ta.events, ta.max_seq, ta.contiguous_seq
                        ));
                    }
                    None if *last == 0 => {}
                    None => {
                        gap_free = false;
                        problems.push(format!("{id}: journal ends at seq {last}, host has none"));
                    }
                }
            }
            audit_ok = a.ok() && gap_free;
            if !a.charged_without_sale.is_empty() || !a.sale_without_charge.is_empty() {
                problems.push(format!(
                    "charged without a sale: {:?}; sale without a charge: {:?}",
                    a.charged_without_sale, a.sale_without_charge
                ));
            }
            audit_fig = json!({
                "events": a.events,
                "charges": a.charges,
                "terminals": a.terminals.len(),
                "charged_without_sale": a.charged_without_sale,
                "sale_without_charge": a.sale_without_charge,
                "unresolved": a.unresolved.len(),
            });
        }
        (Err(e), _) | (_, Err(e)) => problems.push(format!("audit: {e:#}")),
    }
    problems.truncate(20);
    let a = audit.as_ref().ok();
    let p = Phase {
        phase: "audit",
        ok: audit_ok && drain_ms.is_some(),
        text: format!(
            "queues drained in {}; {} events, {} charges from {} terminals; every seq gap-free up to the journal's last: {}; charged without a sale {}, sale without a charge {} → {}{}",
            drain_ms.map(|d| format!("{d:.0} ms")).unwrap_or_else(|| "NO".into()),
            a.map(|a| a.events).unwrap_or(0),
            a.map(|a| a.charges).unwrap_or(0),
            a.map(|a| a.terminals.len()).unwrap_or(0),
            if gap_free { "yes" } else { "NO" },
            a.map(|a| a.charged_without_sale.len()).unwrap_or(0),
            a.map(|a| a.sale_without_charge.len()).unwrap_or(0),
            if audit_ok { "OK" } else { "MISMATCH" },
            if problems.is_empty() { String::new() } else { format!(" ({})", problems.join("; ")) },
        ),
        figures: obj(json!({ "drain_ms": drain_ms, "audit": audit_fig, "gap_free": gap_free, "problems": problems })),
    };
    if args.json {
        println!("{}", serde_json::to_string(&p)?);
    } else {
        println!("{:<14} {}", p.phase, p.text);
    }
    phases.push(p);
    let mem = Phase {
        phase: "memory",
        ok: true,
        text: format!(
            "posd {:.1} MB RSS per daemon (max {:.1}), {:.0} MB RSS / {:.0} MB PSS (shared pages counted once) for {}; mosquitto {:.1} MB idle, {:.1} MB with the fleet connected = {:.1} KB per terminal",
            per_kib as f64 / 1024.0,
            max_kib as f64 / 1024.0,
            total_kib as f64 / 1024.0,
            pss_total_kib as f64 / 1024.0,
            rss.len(),
            mosquitto_idle_kib as f64 / 1024.0,
            mosquitto_fleet_kib as f64 / 1024.0,
            mosquitto_fleet_kib.saturating_sub(mosquitto_idle_kib) as f64 / rss.len().max(1) as f64,
        ),
        figures: obj(json!({
            "posd_rss_kib_mean": per_kib,
            "posd_rss_kib_max": max_kib,
            "posd_rss_kib_total": total_kib,
            "posd_pss_kib_total": pss_total_kib,
            "mosquitto_rss_kib_idle": mosquitto_idle_kib,
            "mosquitto_rss_kib_fleet": mosquitto_fleet_kib,
        })),
    };
    if args.json {
        println!("{}", serde_json::to_string(&mem)?);
    } else {
        println!("{:<14} {}", mem.phase, mem.text);
    }
    phases.push(mem);
    // What the host workers and the broker spent, for sizing (docs/fleet-sizing.md).
    let stored = events_by_worker(host_db, 0, u64::MAX);
    let mut worker_cpu = serde_json::Map::new();
    let mut cpu_text = Vec::new();
    for (w, pid) in workers {
        let cpu = cpu_s(*pid);
        let n = stored.get(w).copied().unwrap_or(0);
        cpu_text.push(format!(
            "{w} {n} events in {cpu:.1} CPU-s ({:.0}/CPU-s)",
            n as f64 / cpu.max(0.01)
        ));
        worker_cpu.insert(w.clone(), json!({"events": n, "cpu_s": cpu}));
    }
    let broker_cpu = mosquitto_pid.map(cpu_s).unwrap_or(0.0);
    let daemons_cpu: f64 = terms.iter().map(|t| cpu_s(t.pid)).sum();
    let cpu = Phase {
        phase: "cpu",
        ok: true,
        text: format!(
            "host workers: {}; mosquitto {broker_cpu:.1} CPU-s since its restart; the daemons {daemons_cpu:.0} CPU-s in all",
            cpu_text.join(", ")
        ),
        figures: obj(json!({
            "workers": worker_cpu,
            "mosquitto_cpu_s_since_restart": broker_cpu,
            "posd_cpu_s_total": daemons_cpu,
        })),
    };
    if args.json {
        println!("{}", serde_json::to_string(&cpu)?);
    } else {
        println!("{:<14} {}", cpu.phase, cpu.text);
    }
    phases.push(cpu);
    finish(args, dir, phases, Some(audit_ok))
}

fn finish(
    args: &FleetSimArgs,
    dir: &Path,
    phases: Vec<Phase>,
    audit_ok: Option<bool>,
) -> anyhow::Result<ExitCode> {
    let failed: Vec<&str> = phases.iter().filter(|p| !p.ok).map(|p| p.phase).collect();
    let exit = if audit_ok == Some(false) {
        3
    } else if !failed.is_empty() || audit_ok.is_none() {
        4
    } else {
        0
    };
    if args.json {
        println!(
            "{}",
            json!({"summary": true, "ok": exit == 0, "failed": failed, "exit": exit})
        );
    } else if exit == 0 {
        println!("fleet-sim: every phase completed, audit clean");
    }
    if exit == 3 {
        eprintln!(
            "posd-sandbox fleet-sim: a money effect was lost or doubled, or a journal has a gap (the audit line above; keep the run with --dir and run `posd-sandbox audit --db DIR/host.sqlite`)"
        );
    } else if exit == 4 {
        eprintln!(
            "posd-sandbox fleet-sim: phase(s) {failed:?} did not complete; the daemons' logs are t/<id>/posd.log and the hosts' host-<k>.log in {} (keep them with --dir)",
            dir.display()
        );
    }
    Ok(ExitCode::from(exit))
}
