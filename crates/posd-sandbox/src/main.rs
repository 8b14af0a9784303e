//! `posd-sandbox`: the payment platform, a wallet, the host's card keys and the demo — the test
//! world around a terminal. Never shipped in the `.deb`.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use posd_sandbox::wallet::WalletCmd;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "posd-sandbox",
    about = "posd's test world: sandbox payment host, wallet, demo",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Play the payment platform on a broker (docs/sandbox-host.md).
    Host(HostArgs),
    /// Is anybody charged without a sale, or a sale recorded without a charge? Exit 3 if so.
    Audit {
        #[arg(long, default_value = "posd-host.sqlite")]
        db: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// A customer's wallet: P1 credentials and codes, paying a merchant-presented QR.
    Wallet {
        #[command(subcommand)]
        cmd: WalletCmd,
    },
    /// The host's card-sealing key pair.
    Card {
        #[command(subcommand)]
        cmd: CardCmd,
    },
    /// The host's signing key for resp/notify/ack (DESIGN §4 "Signed host messages").
    HostKey {
        #[command(subcommand)]
        cmd: HostKeyCmd,
    },
    /// The real posd daemon on embedded defaults: an in-process broker and sandbox host, a few
    /// sales of every kind, a refund and a batch close.
    Demo(posd_sandbox::demo::DemoArgs),
    /// A 4G-like TCP link: latency with jitter, a bandwidth cap, silent drops and resets.
    Netem(NetemArgs),
    /// The real daemon through simulated days with faults; a row per day (docs/soak.md).
    /// Exit 3: a money effect lost or doubled; 4: a day that did not drain.
    Soak(posd_sandbox::soak::SoakArgs),
    /// Hundreds of real daemons on one mosquitto, host workers sharing the load through
    /// `$share`, a fleet push, a broker restart and a worker killed; a line per phase
    /// (docs/fleet-sizing.md). Exit 3: the audit is not clean; 4: a phase did not complete.
    FleetSim(posd_sandbox::fleet_sim::FleetSimArgs),
}

#[derive(Args)]
struct NetemArgs {
    /// Where clients connect, e.g. 127.0.0.1:18830.
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// Where the link leads, e.g. 127.0.0.1:18831.
    #[arg(long)]
    upstream: std::net::SocketAddr,
    /// One-way latency per chunk, uniform in LO..HI ms.
    #[arg(long, default_value = "0")]
    latency: String,
    /// Each way, e.g. 32kbit.
    #[arg(long)]
    bandwidth: Option<String>,
    /// A connection goes silently dead after 0.5-1.5x this (e.g. 60s).
    #[arg(long)]
    drop_every: Option<String>,
    /// A connection is reset after 0.5-1.5x this (e.g. 120s).
    #[arg(long)]
    reset_every: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct HostArgs {
    /// Broker URL, e.g. mqtt://127.0.0.1:1883.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// The host's SQLite database (events, ledger).
    #[arg(long, default_value = "posd-host.sqlite")]
    db: PathBuf,
    #[arg(long, default_value = "pos/v1")]
    prefix: String,
    /// Shared-subscription group: instances in one group split the load. "none" for a plain one.
    #[arg(long, default_value = "posd-host")]
    group: String,
    #[arg(long)]
    client_id: Option<String>,
    /// Delay of the late answer for codes ending in 66, in ms.
    #[arg(long, default_value_t = 60_000)]
    late_ms: u64,
    /// Events are gathered this long (ms) before one durable commit and one ack...
    #[arg(long, default_value_t = 5)]
    batch_ms: u64,
    /// ... or until this many are gathered, whichever comes first.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    batch_max: u64,
    #[arg(long, default_value = "info")]
    log_level: String,
    /// A platform issuer key for verifying P1 offline sales at settlement: ID=HEX (repeatable).
    #[arg(long = "issuer-key")]
    issuer_keys: Vec<String>,
    /// Delay before the sandbox customer pays an order (amounts ending in 11 or 33), in ms.
    #[arg(long, default_value_t = 1000)]
    pay_after_ms: u64,
    /// File holding the host's X25519 secret (base64) that card data is sealed to
    /// (`posd-sandbox card keygen`). Without it every card is "card data unreadable".
    #[arg(long)]
    card_key: Option<PathBuf>,
    /// The host's signing key file (`posd-sandbox host-key keygen`): every resp, notify and ack
    /// is signed with it, as terminals require.
    #[arg(long, conflicts_with = "unsigned")]
    host_key: Option<PathBuf>,
    /// Publish resp, notify and ack unsigned: only terminals with the lab-only
    /// `broker.lab_accept_unsigned = true` take them.
    #[arg(long)]
    unsigned: bool,
    /// Create this (empty) file once the broker acknowledged every subscription.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum HostKeyCmd {
    /// A new Ed25519 key pair: writes the key file (0600) for `posd-sandbox host --host-key`,
    /// prints the `[[broker.host_keys]]` entry for the terminals' posd.toml.
    Keygen {
        /// The key id terminals know it by (the envelope's `key_id`).
        #[arg(long, default_value_t = 1)]
        id: u32,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum CardCmd {
    /// A new X25519 key pair: writes the secret (base64) to --out-secret for
    /// `posd-sandbox host --card-key`, prints the public key (base64) for `[card] host_public_key`.
    Keygen {
        #[arg(long)]
        out_secret: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Host(h) => host(h),
        Cmd::Audit { db, json } => audit(db, json),
        Cmd::Wallet { cmd } => posd_sandbox::wallet::run(cmd),
        Cmd::Card { cmd } => card_cmd(cmd),
        Cmd::HostKey { cmd } => host_key_cmd(cmd),
        Cmd::Demo(args) => posd_sandbox::demo::run(args).map(|()| ExitCode::SUCCESS),
        Cmd::Netem(args) => netem(args),
        Cmd::Soak(args) => posd_sandbox::soak::run(args),
        Cmd::FleetSim(args) => posd_sandbox::fleet_sim::run(args),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posd-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn netem(a: NetemArgs) -> anyhow::Result<ExitCode> {
    use posd_sandbox::netem;
    posd_sandbox::logging::init("info");
    let cfg = netem::NetemConfig {
        latency_ms: netem::parse_latency(&a.latency)?,
        bandwidth_bps: a
            .bandwidth
            .as_deref()
            .map(netem::parse_bandwidth)
            .transpose()?,
        drop_every: a
            .drop_every
            .as_deref()
            .map(netem::parse_duration)
            .transpose()?,
        reset_every: a
            .reset_every
            .as_deref()
            .map(netem::parse_duration)
            .transpose()?,
        seed: a.seed,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let link = netem::Netem::start(a.listen, a.upstream, cfg.clone())
            .await
            .with_context(|| format!("listen on {}", a.listen))?;
        eprintln!(
            "netem: {} -> {} ({cfg:?}); Ctrl-C stops it",
            link.addr(),
            a.upstream
        );
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("netem: {:?}", link.stats());
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn audit(db: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let conn =
        posd_sandbox::host::open_db(&db).with_context(|| format!("open {}", db.display()))?;
    let a = posd_sandbox::host::audit(&conn)?;
    if json {
        println!("{}", serde_json::to_string(&a)?);
    } else {
        println!("events stored: {}; charges: {}", a.events, a.charges);
        for (t, ta) in &a.terminals {
            println!(
                "  terminal {t}: {} events, max seq {}, contiguous {}, gaps {}",
                ta.events, ta.max_seq, ta.contiguous_seq, ta.gaps
            );
        }
        println!("charged without a sale: {:?}", a.charged_without_sale);
        println!("sale without a charge:  {:?}", a.sale_without_charge);
        println!("still in flight:        {:?}", a.unresolved);
        println!("refunds approved: {}", a.refunds);
        for b in &a.batches {
            println!(
                "  batch {} of {} (seq {}..={}, no. {}): {}{}{}",
                b.txn_id,
                b.terminal,
                b.from_seq.saturating_add(1),
                b.upto_seq,
                b.batch_no
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                b.status,
                if b.status == "reconciled" {
                    String::new()
                } else {
                    format!(" {} txns {}", b.mismatches, b.txns)
                },
                if b.missing_events > 0 {
                    format!(", {} events missing", b.missing_events)
                } else {
                    String::new()
                }
            );
        }
        println!("{}", if a.ok() { "OK" } else { "MISMATCH" });
    }
    Ok(if a.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn host(h: HostArgs) -> anyhow::Result<ExitCode> {
    posd_sandbox::logging::init(&h.log_level);
    let mut cfg = posd_sandbox::host::HostConfig::new(&h.broker, &h.db);
    cfg.prefix = h.prefix;
    cfg.group = (h.group != "none").then_some(h.group);
    if let Some(id) = h.client_id {
        cfg.client_id = id;
    }
    cfg.late_ms = h.late_ms;
    cfg.batch_ms = h.batch_ms;
    cfg.batch_max = usize::try_from(h.batch_max).unwrap_or(usize::MAX);
    cfg.pay_after_ms = h.pay_after_ms;
    cfg.ready_file = h.ready_file;
    if let Some(path) = &h.card_key {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        cfg.card_secret = Some(
            posd_sandbox::host::parse_card_secret(text.trim())
                .with_context(|| format!("{}: not a base64 X25519 key", path.display()))?,
        );
    }
    let mut keys = Vec::new();
    for k in &h.issuer_keys {
        let (id, hex_key) = k.split_once('=').context("--issuer-key takes ID=HEX")?;
        keys.push(posd_core::codes::IssuerKeyConfig {
            id: id.parse().context("issuer key id must be 0-255")?,
            public_key: hex_key.to_string(),
            retired: false,
        });
    }
    cfg.issuer_keys = posd_core::codes::IssuerKeys::from_config(&keys)?;
    cfg.signer = match (&h.host_key, h.unsigned) {
        (Some(path), _) => {
            Some(posd_sandbox::host::read_signing_key(path).map_err(anyhow::Error::msg)?)
        }
        (None, true) => {
            log::warn!("host: resp, notify and ack go out unsigned (--unsigned, lab only)");
            None
        }
        (None, false) => anyhow::bail!(
            "the host signs what it sends terminals: pass --host-key FILE (make one with \
             `posd-sandbox host-key keygen --out FILE`), or --unsigned for terminals with \
             broker.lab_accept_unsigned = true"
        ),
    };
    let stop = posd_sandbox::world::stop_on_signals()?;
    posd_sandbox::host::run(cfg, stop)?;
    Ok(ExitCode::SUCCESS)
}

fn host_key_cmd(cmd: HostKeyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        HostKeyCmd::Keygen { id, out } => {
            let signer = posd_core::protocol::signed::HostSigner::generate(id);
            write_secret(
                &out,
                posd_sandbox::host::signing_key_file(&signer).trim_end(),
            )?;
            print!("{}", signer.toml_entry());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn card_cmd(cmd: CardCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CardCmd::Keygen { out_secret } => {
            let (secret, public) = posd_sandbox::host::card_keygen()?;
            write_secret(&out_secret, &secret)?;
            println!("{public}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a secret file readable by its owner only.
fn write_secret(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    writeln!(f, "{text}").with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
