//! posctl: cashier diagnostics over the control socket, the sandbox host, and (later) fleet and
//! wallet tools.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use posd::control::{ControlClient, ControlRequest};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "posctl",
    about = "Talk to posd; play the payment platform",
    version
)]
struct Cli {
    /// posd's control socket.
    #[arg(long, global = true, default_value = "/run/posd/control.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The terminal's status.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Events waiting for the host's acknowledgement.
    Queue {
        #[arg(long)]
        json: bool,
    },
    /// Transactions in the journal.
    Txn {
        #[command(subcommand)]
        cmd: TxnCmd,
    },
    /// Start a sale and wait for its end. Without --code, any scanner completes it.
    Sale {
        /// Amount in the currency's units, e.g. 12.50.
        #[arg(long)]
        amount: String,
        #[arg(long)]
        currency: Option<String>,
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Cancel the sale in progress (an online payment in progress is reversed).
    Cancel,
    /// Pass a code to the sale in progress, as if scanned.
    Scan { code: String },
    /// Play the payment platform and backend over MQTT (see docs/sandbox-host.md).
    SandboxHost(HostArgs),
    /// Payment codes: decode images, inspect scanned text.
    Code {
        #[command(subcommand)]
        cmd: CodeCmd,
    },
}

#[derive(Subcommand)]
enum CodeCmd {
    /// Run the camera's decode pipeline on image files (PNG, JPEG, WebP): one line per file.
    ScanImage {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TxnCmd {
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct HostArgs {
    #[command(subcommand)]
    cmd: Option<HostCmd>,
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
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(Subcommand)]
enum HostCmd {
    /// Is anybody charged without a sale, or a sale recorded without a charge?
    Audit {
        #[arg(long, default_value = "posd-host.sqlite")]
        db: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cmd = match cli.cmd {
        Cmd::SandboxHost(h) => return sandbox_host(h),
        Cmd::Code { cmd } => return code_cmd(cmd),
        other => other,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut c = ControlClient::connect(&cli.socket).await?;
        match cmd {
            Cmd::Status { json } => {
                let v = c.call(&ControlRequest::Status).await?;
                if json {
                    println!("{v}");
                } else {
                    print_status(&v);
                }
            }
            Cmd::Queue { json } => {
                let v = c.call(&ControlRequest::Queue).await?;
                if json {
                    println!("{v}");
                } else {
                    println!(
                        "pending {}  oldest {} s  last seq {}  acked seq {}",
                        v["pending"], v["oldest_age_s"], v["last_seq"], v["acked_seq"]
                    );
                }
            }
            Cmd::Txn {
                cmd: TxnCmd::List { limit, json },
            } => {
                let v = c
                    .call(&ControlRequest::TxnList { limit: Some(limit) })
                    .await?;
                if json {
                    println!("{v}");
                } else {
                    for t in v.as_array().into_iter().flatten() {
                        println!("{}", txn_line(t));
                    }
                }
            }
            Cmd::Txn {
                cmd: TxnCmd::Show { id, json },
            } => {
                let v = c.call(&ControlRequest::TxnShow { id }).await?;
                if json {
                    println!("{v}");
                } else {
                    println!("{}", txn_line(&v["txn"]));
                    for (k, val) in v["txn"].as_object().into_iter().flatten() {
                        if !val.is_null() {
                            println!("  {k:<12} {}", plain(val));
                        }
                    }
                    println!("  history:");
                    for h in v["history"].as_array().into_iter().flatten() {
                        println!(
                            "    seq {:<6} {:<18} at {}",
                            h["seq"],
                            plain(&h["state"]),
                            h["at"]
                        );
                    }
                }
            }
            Cmd::Sale {
                amount,
                currency,
                code,
                json,
            } => {
                let r = c
                    .call(&ControlRequest::Sale {
                        amount,
                        currency,
                        code,
                    })
                    .await;
                match r {
                    Ok(v) => {
                        if json {
                            println!("{v}");
                        } else {
                            println!(
                                "{} {} {} {} — txn {}",
                                plain(&v["result"]).to_uppercase(),
                                v["amount"],
                                plain(&v["currency"]),
                                v["reason"]
                                    .as_str()
                                    .or(v["host_ref"].as_str())
                                    .unwrap_or(""),
                                plain(&v["txn_id"])
                            );
                        }
                        if v["result"] != "approved" {
                            return Ok(ExitCode::from(2));
                        }
                    }
                    Err(e) => {
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"result": "refused", "error": e.to_string()})
                            );
                        } else {
                            eprintln!("refused: {e}");
                        }
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            Cmd::Cancel => {
                let v = c.call(&ControlRequest::Cancel).await?;
                println!("{}", plain(&v["message"]));
            }
            Cmd::Scan { code } => {
                let v = c.call(&ControlRequest::Scan { code }).await?;
                println!("{}", plain(&v["message"]));
            }
            Cmd::SandboxHost(_) | Cmd::Code { .. } => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn code_cmd(cmd: CodeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CodeCmd::ScanImage { files, json } => {
            let reports = posd::camera::scan_image_files(&files);
            let mut failed = false;
            for r in &reports {
                failed |= r.error.is_some();
                if json {
                    println!("{}", serde_json::to_string(r)?);
                } else {
                    let v = serde_json::to_value(r)?;
                    let payloads: Vec<String> = v["payloads"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| match p["text"].as_str() {
                            Some(t) => format!("{t:?}"),
                            None => format!("hex:{}", plain(&p["hex"])),
                        })
                        .collect();
                    match &r.error {
                        Some(e) => println!("{}: error: {e}", r.file),
                        None if payloads.is_empty() => {
                            println!("{}: no code ({:.2} ms)", r.file, r.ms)
                        }
                        None => println!("{}: {} ({:.2} ms)", r.file, payloads.join(", "), r.ms),
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn sandbox_host(h: HostArgs) -> anyhow::Result<ExitCode> {
    if let Some(HostCmd::Audit { db, json }) = h.cmd {
        let conn = posd::host::open_db(&db).with_context(|| format!("open {}", db.display()))?;
        let a = posd::host::audit(&conn)?;
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
            println!("{}", if a.ok() { "OK" } else { "MISMATCH" });
        }
        return Ok(if a.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    posd::logging::init(&h.log_level);
    let mut cfg = posd::host::HostConfig::new(&h.broker, &h.db);
    cfg.prefix = h.prefix;
    cfg.group = (h.group != "none").then_some(h.group);
    if let Some(id) = h.client_id {
        cfg.client_id = id;
    }
    cfg.late_ms = h.late_ms;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    use tokio::signal::unix::{signal, SignalKind};
                    if let (Ok(mut t), Ok(mut i)) = (
                        signal(SignalKind::terminate()),
                        signal(SignalKind::interrupt()),
                    ) {
                        tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
                    }
                });
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    posd::host::run(cfg, stop)?;
    Ok(ExitCode::SUCCESS)
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn txn_line(t: &Value) -> String {
    format!(
        "{}  {:<6} {:<12} {:>10} {}  {:<19} {}",
        plain(&t["id"]),
        plain(&t["kind"]),
        plain(&t["method"]),
        t["amount"],
        plain(&t["currency"]),
        plain(&t["state"]),
        t["reason"].as_str().unwrap_or("")
    )
}

fn print_status(v: &Value) {
    println!("terminal   {}", plain(&v["terminal"]));
    println!("online     {}", v["online"]);
    println!(
        "version    {} ({})",
        plain(&v["version"]),
        plain(&v["commit"])
    );
    println!("session    {}", plain(&v["session"]));
    println!(
        "queue      {} pending, oldest {} s (last seq {}, acked {})",
        v["queue"]["pending"],
        v["queue"]["oldest_age_s"],
        v["queue"]["last_seq"],
        v["queue"]["acked_seq"]
    );
    for (k, d) in v["devices"].as_object().into_iter().flatten() {
        println!("device     {k}: {}", plain(d));
    }
}
