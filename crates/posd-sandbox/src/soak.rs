//! `posd-sandbox soak`: the real daemon through simulated days of a busy till, one row per day —
//! so the growth a terminal shows after months unattended is seen in minutes (issue 14).
//!
//! It runs a real `mosquitto` of its own on a free loopback port (never 1883), the sandbox host
//! in a thread (straight on the broker), the printer emulator, and the `posd` binary behind a
//! [`crate::netem`] link (150–600 ms, a bandwidth cap, silent drops, resets). Each simulated day
//! the daemon starts with `POSD_CLOCK_OFFSET_MS` set so its clock reads that day (the host and the
//! wallets here share the offset), sells the profile's mix through the control socket, suffers
//! the day's faults (paper out, cover open, a broker outage, a silent drop, a reset, a signed
//! fleet push), closes the batch, and must drain its queue; then it is stopped like systemd
//! would. At the end the host's ledger is audited against what the terminal sent. Exit 3: a money
//! effect lost or doubled; exit 4: a day that did not drain (docs/soak.md).

use crate::host::{self, HostConfig};
use crate::netem::{Netem, NetemConfig};
use crate::printer_emulator::{EmulatorScript, PrinterEmulator};
use crate::world::{
    cpu_s, issue_wallets, posd_binary, rss_kib, stop, stop_on_signals, FleetKey, Mosquitto, Till,
    Wallet,
};
use anyhow::{bail, Context};
use posd_core::codes::PrivateKey;
use posd_core::control::{self as ctl, AnswerError};
use posd_core::txn::SaleOutcome;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which till.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// A shop: online codes, offline P1, merchant QR, cards, refunds; 2,000 sales a day.
    Shop,
    /// A bus validator: offline P1 rides only; 20,000 a day.
    Bus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Simulated days.
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    #[arg(long, value_enum, default_value_t = Profile::Shop)]
    pub profile: Profile,
    /// Sales a day (default: 2,000 for shop, 20,000 for bus).
    #[arg(long)]
    pub sales_per_day: Option<u32>,
    /// Seed of the sale mix, the amounts and the link's latencies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Printer faults, broker outages, silent drops, resets, fleet pushes and a 4G-like link.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub faults: OnOff,
    /// One JSON object a line (each day, then the summary) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The link's one-way latency with faults on, ms.
    #[arg(long, default_value = "150..600")]
    pub latency: String,
    /// The link's bandwidth cap with faults on, each way.
    #[arg(long, default_value = "1mbit")]
    pub bandwidth: String,
    /// A day whose queue is not empty this long after its close fails the soak.
    #[arg(long, default_value_t = 120)]
    pub drain_timeout_s: u64,
    /// The posd binary (default: the one beside this program, then `posd` on PATH).
    #[arg(long)]
    pub posd: Option<PathBuf>,
    /// The daemon's log level (its log is posd.log in the soak directory).
    #[arg(long, default_value = "warn")]
    pub posd_log_level: String,
    /// How long the sandbox customer takes to pay a merchant-presented QR, ms (a long run may
    /// lower it: a year at the default spends most of its wall time waiting for customers).
    #[arg(long, default_value_t = 200)]
    pub pay_after_ms: u64,
    /// Only the first and the last N days are full days (the profile's whole mix, its faults,
    /// every timing); the days between are quick days: the same number of sales, all paid at
    /// once (online codes, offline P1 codes and cards; no merchant QR, whose wall time is the
    /// customer's, no refunds, whose is the manager PIN's), no faults and a clean link (no
    /// delay, no cap). A year of full days takes hours; with `--full-days 7` it takes the time
    /// of 14 full days plus 351 quick ones.
    #[arg(long)]
    pub full_days: Option<u32>,
    /// `[retention] days` of the daemon (the product's default is 90).
    #[arg(long, default_value_t = 90)]
    pub retention_days: u32,
    /// `[retention] step_budget_ms` of the daemon (default: the product's own default).
    #[arg(long)]
    pub retention_step_budget_ms: Option<u64>,
    /// Keep everything here (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

const TERMINAL: &str = "SOAK-1";
const PIN: &str = "4711";
const DAY_MS: u64 = 86_400_000;
/// Simulated days open at 08:00 UTC.
const OPENING_MS: u64 = 8 * 3_600_000;

/// What a sale, reprint or status call is, for the timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Online,
    P1,
    Qr,
    Card,
    Refund,
    Reprint,
    Status,
}

const KINDS: [Kind; 7] = [
    Kind::Online,
    Kind::P1,
    Kind::Qr,
    Kind::Card,
    Kind::Refund,
    Kind::Reprint,
    Kind::Status,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Online => "online",
            Kind::P1 => "p1",
            Kind::Qr => "qr",
            Kind::Card => "card",
            Kind::Refund => "refund",
            Kind::Reprint => "reprint",
            Kind::Status => "status",
        }
    }
}

/// p50/p99 of one kind in a day, ms.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Pct {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub(crate) fn pct(v: &mut [f64]) -> Pct {
    if v.is_empty() {
        return Pct::default();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    Pct {
        n: v.len(),
        p50_ms: at(50),
        p99_ms: at(99),
    }
}

/// One simulated day.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DayRow {
    pub day: u32,
    /// The simulated date (UTC) the daemon's clock read.
    pub date: String,
    pub sales: u32,
    pub approved: u32,
    /// Declined, cancelled (reversed) or refused (e.g. offline limits while the broker was down).
    pub not_approved: u32,
    /// Online codes and merchant QR refused at once with `link_down` (issue 15) and paid
    /// instead with an offline code, as the refusal tells the cashier (counted once in `sales`).
    pub link_down: u32,
    /// The journal's files (SQLite + WAL) at the end of the day, bytes.
    pub db_bytes: u64,
    /// The daemon's resident memory after the close and drain (VmRSS), KiB.
    pub rss_kib: u64,
    /// CPU time (user + system) the daemon used this day, start-up to drained, ms: its own
    /// work, which a busy machine does not inflate the way it inflates the p99.
    pub posd_cpu_ms: f64,
    pub timings: std::collections::BTreeMap<&'static str, Pct>,
    pub close_ms: f64,
    /// From the close's answer until `queue` shows nothing pending and the printer nothing
    /// waiting (None: not within `--drain-timeout-s`).
    pub drain_ms: Option<f64>,
    /// From the close's answer until the printer had nothing waiting (`status.printer.waiting`):
    /// a quick day's sales come faster than a printer prints, and a real day gives it the
    /// hours between them, so a day ends with its receipts printed.
    pub print_drain_ms: Option<f64>,
    /// Print jobs still waiting when the day ended.
    pub print_waiting: u64,
    /// TCP connections the daemon opened through the link to a running broker this day, less
    /// the first: each one a CONNECT (attempts while the broker was down are not counted).
    pub reconnects: u64,
    /// Faults fired this day.
    pub faults: Vec<String>,
    /// The fleet push of the day was applied (`status.config_version`), ms after publishing.
    pub push_applied_ms: Option<f64>,
    /// Real seconds the day took.
    pub wall_s: f64,
    /// A quick day (`--full-days`): no faults, a clean link, no merchant QR, no refunds.
    pub quick: bool,
    /// The machine's 1-minute load average at the end of the day (`/proc/loadavg`): the p99 of
    /// a shared machine are the machine's as much as the daemon's, so every row says which.
    pub load1: f64,
}

/// The 1-minute load average (0 where `/proc/loadavg` cannot be read).
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// "YYYY-MM-DD" of unix ms (UTC), civil-from-days.
fn date_of(ms: u64) -> String {
    let days = (ms / DAY_MS) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Everything that lives for the whole soak.
struct World {
    args: SoakArgs,
    dir: PathBuf,
    /// The link and the printer run on it.
    _rt: tokio::runtime::Runtime,
    mosquitto: Mosquitto,
    netem: Netem,
    printer: PrinterEmulator,
    wallets: Vec<Wallet>,
    fleet_key: FleetKey,
    config: PathBuf,
    socket: PathBuf,
    posd: PathBuf,
    rng: fastrand::Rng,
    push_version: u64,
    /// The last push as published, to publish the same bytes again after a broker outage.
    last_push: Vec<u8>,
    /// Set by SIGTERM or SIGINT (`stop_on_signals`).
    stopping: Arc<AtomicBool>,
}

pub fn run(args: SoakArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init("error");
    // Registered before anything starts: see `World::check_stop`.
    let stopping = stop_on_signals()?;
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("posd-soak-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mosquitto = Mosquitto::start(&dir)?;
    let broker = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let faults = args.faults == OnOff::On;
    let link = if faults {
        NetemConfig {
            latency_ms: crate::netem::parse_latency(&args.latency)?,
            bandwidth_bps: Some(crate::netem::parse_bandwidth(&args.bandwidth)?),
            drop_every: None,
            reset_every: None,
            seed: args.seed,
        }
    } else {
        NetemConfig {
            seed: args.seed,
            ..NetemConfig::default()
        }
    };
    let upstream: std::net::SocketAddr = ([127, 0, 0, 1], mosquitto.port).into();
    let netem = rt.block_on(Netem::start(([127, 0, 0, 1], 0).into(), upstream, link))?;
    let printer = rt.block_on(PrinterEmulator::start(EmulatorScript::default()))?;

    let mut rng = fastrand::Rng::with_seed(args.seed);
    let issuer = PrivateKey::generate()?;
    let (card_secret, card_public) =
        posd_core::card::seal::keygen_random().map_err(|e| anyhow::anyhow!("card key: {e}"))?;
    let pin_hash = posd_core::pin::hash_pin(PIN).map_err(|e| anyhow::anyhow!(e))?;
    let signer = posd_core::protocol::signed::HostSigner::generate(1);
    let host_keys = signer.toml_entry();
    let mut seed32 = [0u8; 32];
    seed32.iter_mut().for_each(|b| *b = rng.u8(..));
    let fleet_key = FleetKey {
        id: "soak".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&seed32),
    };
    let fleet_pub = fleet_key.public_hex();

    // The first simulated day: tomorrow (UTC) at opening time.
    let first_day = (crate::mqtt::wall_ms() / DAY_MS + 1) * DAY_MS;
    let users = match args.profile {
        Profile::Shop => 50,
        Profile::Bus => 400,
    };
    let valid_from = (first_day / 1000).saturating_sub(86_400) as u32;
    let valid_until = (first_day / 1000 + u64::from(args.days + 2) * 86_400) as u32;
    let wallets = issue_wallets(&issuer, users, valid_from, valid_until)?;

    let stop_host = Arc::new(AtomicBool::new(false));
    let mut hc = HostConfig::new(&broker, &dir.join("host.sqlite"));
    hc.client_id = "posd-soak-host".into();
    hc.issuer_keys.insert(1, issuer.public_key(), false);
    hc.card_secret = Some(card_secret);
    hc.signer = Some(signer);
    hc.pay_after_ms = args.pay_after_ms;
    let host_db = hc.db.clone();
    let host_thread = {
        let stop = stop_host.clone();
        std::thread::spawn(move || {
            // A host that lost its broker (an outage) starts again on the same database.
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = host::run(hc.clone(), stop.clone()) {
                    log::warn!("soak: host stopped ({e}); starting again");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        })
    };

    let socket = dir.join("control.sock");
    let (p1_per_txn, p1_daily) = (10_000_u64, 1_000_000_u64);
    let text = format!(
        r#"
[terminal]
id = "{TERMINAL}"
currency = "CNY"
state_dir = "{state}"
[broker]
url = "mqtt://{proxy}"
keep_alive_s = 5
backoff_initial_ms = 100
backoff_max_ms = 2000
ack_timeout_s = 3
{host_keys}[control]
socket = "{socket}"
[online]
query_interval_s = 1
query_total_s = 10
[logging]
level = "{log_level}"
[devices.printer.transport]
type = "tcp"
host = "127.0.0.1"
port = {printer_port}
[receipt]
shop_name = "posd soak shop"
copies = ["customer"]
[offline]
clock = "always"
settle_query_interval_s = 5
[offline.limits]
per_txn_limit = {p1_per_txn}
per_user_daily_limit = {p1_daily}
max_unsynced_count = 50000
max_unsynced_amount = 100000000
max_unsynced_age_s = 86400
[[offline.issuer_keys]]
id = 1
public_key = "{issuer_pub}"
[manager]
pin_hash = "{pin_hash}"
[card]
host_public_key = "{card_public}"
[merchant_qr]
timeout_s = 15
query_interval_s = 1
[merchant_qr.merchant]
merchant_category_code = "5812"
country_code = "CN"
merchant_name = "POSD SOAK SHOP"
merchant_city = "BEIJING"
[[merchant_qr.merchant.accounts]]
tag = 26
guid = "com.sandbox.posd"
fields = {{ "01" = "M0001" }}
[retention]
days = {retention_days}
refund_window_days = {retention_days}
{step_budget}# A simulated day lasts seconds, not hours: the steps between sales come faster to match.
step_pause_ms = 20
interval_s = 5
start_delay_s = 1
[fleet]
[[fleet.keys]]
id = "soak"
public_key = "{fleet_pub}"
"#,
        state = dir.join("state").display(),
        retention_days = args.retention_days,
        step_budget = args
            .retention_step_budget_ms
            .map(|ms| format!("step_budget_ms = {ms}\n"))
            .unwrap_or_default(),
        log_level = args.posd_log_level,
        proxy = netem.addr(),
        socket = socket.display(),
        printer_port = printer.port(),
        issuer_pub = issuer.public_key().to_hex(),
        card_public = posd_core::card::seal::key_to_b64(&card_public),
    );
    let config = dir.join("posd.toml");
    std::fs::write(&config, text).with_context(|| format!("write {}", config.display()))?;

    let mut world = World {
        posd: posd_binary(&args.posd),
        args,
        dir: dir.clone(),
        _rt: rt,
        mosquitto,
        netem,
        printer,
        wallets,
        fleet_key,
        config,
        socket,
        rng,
        push_version: 0,
        last_push: Vec::new(),
        stopping,
    };
    if !world.args.json {
        println!(
            "posd soak: profile {:?}, {} days, {} sales/day, seed {}, faults {}; posd {}; dir {}",
            world.args.profile,
            world.args.days,
            world.sales_per_day(),
            world.args.seed,
            if faults { "on" } else { "off" },
            world.posd.display(),
            dir.display()
        );
        println!("{}", header());
    }
    let mut undrained = Vec::new();
    let mut result = Ok(());
    let mut rows: Vec<DayRow> = Vec::new();
    for day in 0..world.args.days {
        let quick = world
            .args
            .full_days
            .is_some_and(|n| day >= n && day + n < world.args.days);
        match world.day(day, first_day + u64::from(day) * DAY_MS + OPENING_MS, quick) {
            Ok(row) => {
                if row.drain_ms.is_none() {
                    undrained.push(day + 1);
                }
                let keep = DayRow {
                    faults: Vec::new(),
                    ..row.clone()
                };
                rows.push(keep);
                if world.args.json {
                    println!("{}", serde_json::to_string(&row)?);
                } else {
                    println!("{}", line(&row));
                }
            }
            Err(e) => {
                result = Err(e.context(format!("day {}", day + 1)));
                break;
            }
        }
    }
    stop_host.store(true, Ordering::Relaxed);
    let _ = host_thread.join();
    world.mosquitto.kill();
    result?;
    let db = host::open_db(&host_db)?;
    let audit = host::audit(&db)?;
    let v = verdict(&audit, &undrained);
    let age = Ageing::of(&rows);
    let mismatched = &v.batches_mismatched;
    let money_ok = v.money_ok;
    if world.args.json {
        println!(
            "{}",
            serde_json::json!({
                "summary": true,
                "events": audit.events,
                "charges": audit.charges,
                "refunds": audit.refunds,
                "charged_without_sale": audit.charged_without_sale,
                "sale_without_charge": audit.sale_without_charge,
                "batches_mismatched": mismatched,
                "undrained_days": undrained,
                "ageing": age,
                "link": world.netem.stats(),
                "ok": v.exit == 0,
            })
        );
    } else {
        let link = world.netem.stats();
        println!(
            "audit: {} events, {} charges, {} refunds; charged without a sale: {:?}; sale without a charge: {:?}; batches in mismatch: {:?} → {}",
            audit.events,
            audit.charges,
            audit.refunds,
            audit.charged_without_sale,
            audit.sale_without_charge,
            mismatched,
            if money_ok { "OK" } else { "MISMATCH" }
        );
        println!("{}", age.text());
        println!(
            "link: {} connections ({} reached the broker), {} silent drops, {} resets, {} B up, {} B down",
            link.connections, link.established, link.drops, link.resets, link.bytes_up, link.bytes_down
        );
    }
    if !money_ok {
        eprintln!(
            "posd-sandbox soak: a money effect was lost or doubled (the audit above; keep the host's database with --dir and run `posd-sandbox audit --db DIR/host.sqlite`)"
        );
    }
    if !undrained.is_empty() {
        eprintln!(
            "posd-sandbox soak: day(s) {undrained:?} did not drain within {} s of the close; the daemon's log is posd.log in the soak directory (keep it with --dir)",
            world.args.drain_timeout_s
        );
    }
    Ok(ExitCode::from(v.exit))
}

/// What age did to the terminal: the first week of full days against the last (issue 14: "P1,
/// online, reprint and status p99 in the last week within 1.2× of the first week; RSS flat"),
/// and the largest journal on any day.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Ageing {
    /// Full days in each of the two weeks compared (up to 7; 0: the run was too short).
    pub days_compared: usize,
    /// Per kind: (median of the first week's daily p99, median of the last week's, ratio).
    pub p99_ms: std::collections::BTreeMap<&'static str, (f64, f64, f64)>,
    /// RSS after the close: median of the first week, of the last week, KiB.
    pub rss_kib: (u64, u64),
    /// The largest journal (SQLite + WAL) at the end of any day, bytes, and on which day.
    pub db_max_bytes: u64,
    pub db_max_day: u32,
    /// The machine's load at the end of the day: median of the first week, of the last week.
    pub load1: (f64, f64),
    /// The daemon's CPU time per sale, µs: median of the first week's days, of the last
    /// week's, and their ratio — what age costs the daemon itself, whatever the machine's load.
    pub cpu_us_per_sale: (f64, f64, f64),
}

impl Ageing {
    pub fn of(rows: &[DayRow]) -> Ageing {
        let full: Vec<&DayRow> = rows.iter().filter(|r| !r.quick).collect();
        let week = (full.len() / 2).min(7);
        let (first, last) = (&full[..week], &full[full.len() - week..]);
        let med = |v: &mut Vec<f64>| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let mut p99_ms = std::collections::BTreeMap::new();
        for k in KINDS {
            let daily = |days: &[&DayRow]| -> Vec<f64> {
                days.iter()
                    .filter_map(|r| r.timings.get(k.name()))
                    .filter(|p| p.n > 0)
                    .map(|p| p.p99_ms)
                    .collect()
            };
            let (a, b) = (med(&mut daily(first)), med(&mut daily(last)));
            if week > 0 && a > 0.0 {
                p99_ms.insert(k.name(), (a, b, b / a));
            }
        }
        let rss = |days: &[&DayRow]| -> u64 {
            med(&mut days.iter().map(|r| r.rss_kib as f64).collect()) as u64
        };
        let biggest = rows.iter().max_by_key(|r| r.db_bytes);
        let load = |days: &[&DayRow]| -> f64 { med(&mut days.iter().map(|r| r.load1).collect()) };
        let cpu = |days: &[&DayRow]| -> f64 {
            med(&mut days
                .iter()
                // 0: the daemon was gone before it could be read.
                .filter(|r| r.sales > 0 && r.posd_cpu_ms > 0.0)
                .map(|r| r.posd_cpu_ms * 1000.0 / f64::from(r.sales))
                .collect())
        };
        let (cpu_a, cpu_b) = (cpu(first), cpu(last));
        Ageing {
            cpu_us_per_sale: (cpu_a, cpu_b, if cpu_a > 0.0 { cpu_b / cpu_a } else { 0.0 }),
            load1: (load(first), load(last)),
            days_compared: week,
            p99_ms,
            rss_kib: (rss(first), rss(last)),
            db_max_bytes: biggest.map_or(0, |r| r.db_bytes),
            db_max_day: biggest.map_or(0, |r| r.day),
        }
    }

    pub fn text(&self) -> String {
        if self.days_compared == 0 {
            return "ageing: too few full days to compare a first and a last week".into();
        }
        let kinds: Vec<String> = self
            .p99_ms
            .iter()
            .map(|(k, (a, b, r))| format!("{k} {a:.1}→{b:.1} ms ({r:.2}×)"))
            .collect();
        format!(
            "ageing (median daily p99, first {n} full days → last {n}): {}; daemon CPU {:.0}→{:.0} µs a sale ({:.2}×); RSS {:.1}→{:.1} MB; largest journal {:.1} MB (day {}); machine load {:.1}→{:.1}",
            kinds.join(", "),
            self.cpu_us_per_sale.0,
            self.cpu_us_per_sale.1,
            self.cpu_us_per_sale.2,
            self.rss_kib.0 as f64 / 1024.0,
            self.rss_kib.1 as f64 / 1024.0,
            self.db_max_bytes as f64 / 1_048_576.0,
            self.db_max_day,
            self.load1.0,
            self.load1.1,
            n = self.days_compared,
        )
    }
}

/// The soak's judgement of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// No charge without a sale, no sale without a charge, no gap, no batch in mismatch.
    pub money_ok: bool,
    pub batches_mismatched: Vec<String>,
    /// 0: all well; 3: a money effect lost or doubled; 4: a day that did not drain.
    pub exit: u8,
}

/// Money first: a lost or doubled money effect is exit 3 even if a day also failed to drain.
pub fn verdict(audit: &host::Audit, undrained: &[u32]) -> Verdict {
    let batches_mismatched: Vec<String> = audit
        .batches
        .iter()
        .filter(|b| b.status == "mismatch")
        .map(|b| b.txn_id.clone())
        .collect();
    let money_ok = audit.ok() && batches_mismatched.is_empty();
    let exit = if !money_ok {
        3
    } else if !undrained.is_empty() {
        4
    } else {
        0
    };
    Verdict {
        money_ok,
        batches_mismatched,
        exit,
    }
}

fn header() -> String {
    let mut h = format!(
        "{:>3} {:>10} {:>6} {:>6} {:>7} {:>6}",
        "day", "date", "sales", "ok", "db_MB", "rss_MB"
    );
    for k in KINDS {
        h.push_str(&format!(" {:>13}", format!("{}50/99", k.name())));
    }
    h.push_str(&format!(
        " {:>8} {:>8} {:>6} {:>6} {:>5}  faults",
        "close_ms", "drain_ms", "reconn", "wall_s", "load"
    ));
    h
}

fn line(r: &DayRow) -> String {
    let mut s = format!(
        "{:>3} {:>10} {:>6} {:>6} {:>7.2} {:>6.1}",
        r.day,
        r.date,
        r.sales,
        r.approved,
        r.db_bytes as f64 / 1_048_576.0,
        r.rss_kib as f64 / 1024.0
    );
    for k in KINDS {
        let cell = match r.timings.get(k.name()) {
            Some(p) if p.n > 0 => format!("{:.0}/{:.0}", p.p50_ms, p.p99_ms),
            _ => "-".into(),
        };
        s.push_str(&format!(" {cell:>13}"));
    }
    s.push_str(&format!(
        " {:>8.0} {:>8} {:>6} {:>6.0} {:>5.1}  {}",
        r.close_ms,
        r.drain_ms
            .map(|d| format!("{d:.0}"))
            .unwrap_or_else(|| "NO".into()),
        r.reconnects,
        r.wall_s,
        r.load1,
        if r.quick {
            "(quick day)".to_string()
        } else {
            r.faults.join(",")
        }
    ));
    s
}

/// When in a day's sales a fault fires (fractions of the day's sales).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    PaperOut,
    PaperBack,
    FleetPush,
    BrokerDown,
    BrokerUp,
    SilentDrop,
    Reset,
    CoverOpen,
    CoverClosed,
}

impl World {
    fn sales_per_day(&self) -> u32 {
        self.args.sales_per_day.unwrap_or(match self.args.profile {
            Profile::Shop => 2000,
            Profile::Bus => 20_000,
        })
    }

    fn schedule(&self, n: u32) -> Vec<(u32, Event)> {
        if self.args.faults == OnOff::Off {
            return Vec::new();
        }
        let at = |f: f64| ((f64::from(n) * f) as u32).min(n.saturating_sub(1));
        // The broker stays down for 3 % of the day's sales (at least 5): offline sales only.
        let outage = (n * 3 / 100).max(5);
        let mut s = vec![
            (at(0.15), Event::PaperOut),
            (at(0.22), Event::PaperBack),
            (at(0.35), Event::FleetPush),
            (at(0.50), Event::BrokerDown),
            (at(0.50) + outage, Event::BrokerUp),
            (at(0.65), Event::SilentDrop),
            (at(0.80), Event::Reset),
            (at(0.88), Event::CoverOpen),
            (at(0.92), Event::CoverClosed),
        ];
        s.sort_by_key(|e| e.0);
        s
    }

    fn day(&mut self, day: u32, sim_ms: u64, quick: bool) -> anyhow::Result<DayRow> {
        let started = Instant::now();
        let offset = sim_ms as i64 - crate::mqtt::wall_ms() as i64;
        crate::mqtt::set_clock_offset_ms(offset);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("posd.log"))?;
        let conns_before = self.netem.stats().established;
        // A quick day has no faults, the 4G-like link's delay and cap included: the day's
        // daemon opens its connections on a clean link.
        self.netem.set_clean(quick);
        let mut daemon = Process::new(&self.posd)
            .arg("--config")
            .arg(&self.config)
            .env("POSD_CLOCK_OFFSET_MS", offset.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (build it: cargo build -p posd --bins)",
                    self.posd.display()
                )
            })?;
        let r = self.sell_day(day, sim_ms, quick, &mut daemon, started, conns_before);
        stop(&mut daemon);
        r
    }

    fn sell_day(
        &mut self,
        day: u32,
        sim_ms: u64,
        quick: bool,
        daemon: &mut Child,
        started: Instant,
        conns_before: u64,
    ) -> anyhow::Result<DayRow> {
        let mut c = Till::connect(&self.socket, Some(daemon), Duration::from_secs(30))?;
        self.wait_online(&mut c, daemon, Duration::from_secs(30))?;
        let n = self.sales_per_day();
        let schedule = if quick { Vec::new() } else { self.schedule(n) };
        let mut row = DayRow {
            day: day + 1,
            date: date_of(sim_ms),
            quick,
            ..DayRow::default()
        };
        let mut times: std::collections::BTreeMap<Kind, Vec<f64>> = Default::default();
        let mut approved_online: Vec<String> = Vec::new();
        let mut broker_down = false;
        let mut push: Option<(u64, Instant)> = None;
        let mut next_event = 0;
        for i in 0..n {
            self.check_stop()?;
            while let Some(&(at, ev)) = schedule.get(next_event) {
                if at > i {
                    break;
                }
                next_event += 1;
                row.faults.push(format!("{ev:?}@{at}"));
                match ev {
                    Event::PaperOut => self.printer.set_paper_out(true),
                    Event::PaperBack => self.printer.set_paper_out(false),
                    Event::CoverOpen => self.printer.set_cover_open(true),
                    Event::CoverClosed => self.printer.set_cover_open(false),
                    Event::BrokerDown => {
                        self.mosquitto.kill();
                        broker_down = true;
                    }
                    Event::BrokerUp => {
                        self.mosquitto.restart()?;
                        broker_down = false;
                        if push.is_some() {
                            // The broker kept nothing (no persistence): the same bytes again,
                            // which a terminal that already applied them ignores silently.
                            self.republish_push()?;
                        }
                    }
                    // A link fault needs a connection to hit: after the outage the daemon may
                    // still be reconnecting (sales refused at once as offline go fast).
                    Event::SilentDrop => {
                        self.wait_online(&mut c, daemon, Duration::from_secs(30))?;
                        self.netem.drop_now()
                    }
                    Event::Reset => {
                        self.wait_online(&mut c, daemon, Duration::from_secs(30))?;
                        self.netem.reset_now()
                    }
                    Event::FleetPush => {
                        self.push_version = u64::from(day) * 10 + 10;
                        self.publish_push(self.push_version)?;
                        push = Some((self.push_version, Instant::now()));
                    }
                }
            }
            if let Some((v, at)) = push {
                if row.push_applied_ms.is_none() && i % 10 == 0 {
                    let st = c.must(ctl::Status {})?;
                    if st.config_version == Some(v) {
                        row.push_applied_ms = Some(ms(at));
                    }
                }
            }
            let kind = self.pick_kind(broker_down, approved_online.is_empty() || quick);
            let kind = match kind {
                Kind::Qr if quick => Kind::Card,
                k => k,
            };
            let t0 = Instant::now();
            let answer = match kind {
                Kind::Online => {
                    let decline = self.rng.u32(0..100) < 5;
                    let code = format!(
                        "13{:014}{}",
                        self.rng.u64(0..100_000_000_000_000),
                        if decline { "11" } else { "80" }
                    );
                    c.call(ctl::Sale {
                        amount: self.amount(),
                        code: Some(code),
                        ..ctl::Sale::default()
                    })?
                }
                Kind::P1 => self.p1_sale(&mut c)?,
                Kind::Qr => c.call(ctl::Sale {
                    amount: format!("{}.11", self.rng.u32(1..60)),
                    method: Some(ctl::SaleMethod::MerchantQr),
                    ..ctl::Sale::default()
                })?,
                Kind::Card => c.call(ctl::Sale {
                    amount: self.amount(),
                    code: Some(
                        "%B4111111111111111^SOAK/CARD^3512101000?;4111111111111111=3512101000?"
                            .into(),
                    ),
                    ..ctl::Sale::default()
                })?,
                Kind::Refund => {
                    let k = self.rng.usize(0..approved_online.len());
                    let original = approved_online.swap_remove(k);
                    c.call(ctl::Refund {
                        original: Some(original),
                        amount: Some("1.00".into()),
                        pin: PIN.into(),
                        ..ctl::Refund::default()
                    })?
                }
                Kind::Reprint | Kind::Status => unreachable!("not a sale"),
            };
            // The till says the link is down (issue 15): the cashier does what it says and asks
            // for the offline code.
            let answer = match answer {
                Err(AnswerError::Refused(r)) if r.code == posd_core::till::LINK_DOWN => {
                    row.link_down += 1;
                    self.p1_sale(&mut c)?
                }
                other => other,
            };
            times.entry(kind).or_default().push(ms(t0));
            row.sales += 1;
            match &answer {
                Ok(r) if matches!(r.outcome, SaleOutcome::Approved { .. }) => {
                    row.approved += 1;
                    if kind == Kind::Online {
                        approved_online.push(r.txn_id.clone());
                    }
                }
                _ => row.not_approved += 1,
            }
            if i % 25 == 24 {
                let t0 = Instant::now();
                c.must(ctl::Status {})?;
                times.entry(Kind::Status).or_default().push(ms(t0));
            }
            if i % 50 == 49 {
                let t0 = Instant::now();
                // A printer fault may refuse it; the time is what the till waited either way.
                let _ = c.call(ctl::Reprint::default())?;
                times.entry(Kind::Reprint).or_default().push(ms(t0));
            }
        }
        // Faults that did not fire (tiny days) must not outlive the day.
        if broker_down {
            self.mosquitto.restart()?;
        }
        self.printer.set_paper_out(false);
        self.printer.set_cover_open(false);
        if let Some((v, at)) = push {
            let deadline = Instant::now() + Duration::from_secs(30);
            while row.push_applied_ms.is_none() && Instant::now() < deadline {
                self.check_stop()?;
                if c.must(ctl::Status {})?.config_version == Some(v) {
                    row.push_applied_ms = Some(ms(at));
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        // The daily close, and the queue must empty after it.
        self.wait_online(&mut c, daemon, Duration::from_secs(60))?;
        let t0 = Instant::now();
        let closed = c.call(ctl::BatchClose {})?;
        row.close_ms = ms(t0);
        if let Err(e) = closed {
            bail!("the daily close was refused: {e}");
        }
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(self.args.drain_timeout_s);
        let mut sent_ms = None;
        while Instant::now() < deadline {
            self.check_stop()?;
            if sent_ms.is_none() && c.must(ctl::Queue {})?.pending == 0 {
                sent_ms = Some(ms(t0));
            }
            row.print_waiting = c.must(ctl::Status {})?.printer.map_or(0, |p| p.waiting);
            if row.print_waiting == 0 && row.print_drain_ms.is_none() {
                row.print_drain_ms = Some(ms(t0));
            }
            if let (Some(sent), Some(printed)) = (sent_ms, row.print_drain_ms) {
                row.drain_ms = Some(sent.max(printed));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        row.timings = times.iter_mut().map(|(k, v)| (k.name(), pct(v))).collect();
        row.rss_kib = rss_kib(daemon.id());
        row.posd_cpu_ms = cpu_s(daemon.id()) * 1000.0;
        row.db_bytes = dir_bytes(&self.dir.join("state"));
        row.reconnects = (self.netem.stats().established - conns_before).saturating_sub(1);
        row.wall_s = started.elapsed().as_secs_f64();
        row.load1 = load1();
        // What was printed is not kept from day to day: a year's receipts would be gigabytes.
        self.printer.forget_output();
        Ok(row)
    }

    /// After SIGTERM or SIGINT: an error, so the day ends here, its daemon is stopped and the
    /// soak stops its broker and says which day it stopped on (killed outright, it left `posd`
    /// and `mosquitto` running).
    fn check_stop(&self) -> anyhow::Result<()> {
        if self.stopping.load(Ordering::Relaxed) {
            bail!("stopped by a signal (SIGTERM or SIGINT)");
        }
        Ok(())
    }

    fn wait_online(
        &mut self,
        c: &mut Till,
        daemon: &mut Child,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while !c.must(ctl::Status {})?.online {
            self.check_stop()?;
            if Instant::now() > deadline {
                bail!("posd did not come online within {} s", limit.as_secs());
            }
            if let Ok(Some(st)) = daemon.try_wait() {
                bail!("posd exited: {st}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The profile's mix; while the broker is down, customers pay offline.
    /// A sale paid with a fresh P1 offline code of one of the wallets.
    fn p1_sale(
        &mut self,
        c: &mut Till,
    ) -> anyhow::Result<Result<posd_core::control::SaleReply, AnswerError>> {
        let w = self.rng.usize(0..self.wallets.len());
        let now_s = (crate::mqtt::now_ms() / 1000) as u32;
        let code = self.wallets[w].next_code(now_s)?;
        let amount = match self.args.profile {
            Profile::Bus => "2.00".to_string(),
            Profile::Shop => format!("{}.{:02}", self.rng.u32(1..20), self.rng.u32(0..100)),
        };
        c.call(ctl::Sale {
            amount,
            code: Some(code),
            ..ctl::Sale::default()
        })
    }

    fn pick_kind(&mut self, broker_down: bool, no_refundable: bool) -> Kind {
        if broker_down || self.args.profile == Profile::Bus {
            return Kind::P1;
        }
        match self.rng.u32(0..100) {
            0..=34 => Kind::Online,
            35..=74 => Kind::P1,
            75..=84 => Kind::Qr,
            85..=94 => Kind::Card,
            _ if no_refundable => Kind::Online,
            _ => Kind::Refund,
        }
    }

    fn amount(&mut self) -> String {
        // Never ending in 11 or 33: those amounts mean something to the sandbox host's orders.
        format!("{}.{:02}", self.rng.u32(1..200), self.rng.u32(0..10) * 10)
    }

    /// A signed config push on the terminal's `cfg/desired` (retained), straight to the broker
    /// as the fleet manager's tool would.
    fn publish_push(&mut self, version: u64) -> anyhow::Result<()> {
        let body = self.sign_push(version)?;
        self.last_push = body.clone();
        self.send_retained(body)
    }

    fn republish_push(&mut self) -> anyhow::Result<()> {
        self.send_retained(self.last_push.clone())
    }

    fn sign_push(&self, version: u64) -> anyhow::Result<Vec<u8>> {
        self.fleet_key.sign_config(
            TERMINAL,
            version,
            serde_json::json!({"limits": {"max_sale_amount": 500_000 + version}}),
        )
    }

    fn send_retained(&self, body: Vec<u8>) -> anyhow::Result<()> {
        let topic = posd_core::protocol::Topics::new("pos/v1", TERMINAL).cfg_desired();
        crate::world::publish_all(
            &self.mosquitto.url(),
            "posd-soak-fleet",
            true,
            vec![(topic, body)],
        )
        .context("fleet push")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_percentiles() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(1_764_633_600_000), "2025-12-02");
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = pct(&mut v);
        assert_eq!((p.n, p.p50_ms, p.p99_ms), (100, 51.0, 100.0));
        assert_eq!(pct(&mut []).n, 0);
    }

    #[test]
    fn a_lost_or_doubled_money_effect_or_an_undrained_day_fails_the_soak() {
        let clean = host::Audit::default();
        assert_eq!(verdict(&clean, &[]).exit, 0);
        assert_eq!(verdict(&clean, &[2]).exit, 4);
        let mut charged = host::Audit::default();
        charged.charged_without_sale.push("t1".into());
        assert_eq!(verdict(&charged, &[]).exit, 3);
        assert_eq!(verdict(&charged, &[2]).exit, 3);
        let mut lost = host::Audit::default();
        lost.sale_without_charge.push("t2".into());
        assert_eq!(verdict(&lost, &[]).exit, 3);
    }

    #[test]
    fn ageing_compares_the_first_and_last_full_weeks_and_skips_quick_days() {
        let day = |d: u32, p99: f64, quick: bool, db: u64| DayRow {
            day: d,
            quick,
            db_bytes: db,
            rss_kib: 1000 + u64::from(d),
            load1: f64::from(d),
            sales: 100,
            posd_cpu_ms: if d > 17 { 300.0 } else { 200.0 },
            timings: [(
                "p1",
                Pct {
                    n: 10,
                    p50_ms: 1.0,
                    p99_ms: p99,
                },
            )]
            .into_iter()
            .collect(),
            ..DayRow::default()
        };
        // 7 full days at 2 ms, 10 quick days at 50 ms (ignored), 7 full days at 3 ms.
        let mut rows: Vec<DayRow> = (1..=7).map(|d| day(d, 2.0, false, 10)).collect();
        rows.extend((8..=17).map(|d| day(d, 50.0, true, if d == 12 { 99 } else { 20 })));
        rows.extend((18..=24).map(|d| day(d, 3.0, false, 30)));
        let a = Ageing::of(&rows);
        assert_eq!(a.days_compared, 7);
        assert_eq!(a.p99_ms["p1"], (2.0, 3.0, 1.5));
        assert_eq!(a.rss_kib, (1004, 1021));
        assert_eq!((a.db_max_bytes, a.db_max_day), (99, 12));
        assert_eq!(a.load1, (4.0, 21.0));
        // 2 ms of the daemon's CPU a sale in the first week, 3 in the last.
        assert_eq!(a.cpu_us_per_sale, (2000.0, 3000.0, 1.5));
        assert!(
            a.text().contains("daemon CPU 2000→3000 µs a sale (1.50×)"),
            "{}",
            a.text()
        );
        assert!(a.text().contains("p1 2.0→3.0 ms (1.50×)"), "{}", a.text());
        // Three full days: one compared on each side.
        assert_eq!(Ageing::of(&rows[..3]).days_compared, 1);
        assert!(Ageing::of(&[]).text().contains("too few"));
    }
}
