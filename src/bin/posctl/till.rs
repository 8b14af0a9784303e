//! The till's commands over posd's control socket (`posd_core::control`): status, the queue,
//! transactions, sales, refunds, voids, the batch close, receipts and the print queue — each
//! printed for people, or as the contract's JSON with `--json`.

use anyhow::Context;
use clap::Subcommand;
use posd::control::{ControlClient, ControlError};
use posd_core::control as ctl;
use posd_core::money::Currency;
use posd_core::txn::{SaleOutcome, Transaction};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum TillCmd {
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
        /// merchant_qr: the terminal shows a code for the customer to scan; code (default) or
        /// card: the customer presents a code or swipes a card.
        #[arg(long)]
        method: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Refund all or part of a sale (online only; needs the manager PIN).
    Refund {
        /// The sale's transaction id.
        #[arg(long, conflicts_with = "receipt")]
        original: Option<String>,
        /// The text of the sale receipt's QR (R1.<terminal>.<txn>).
        #[arg(long)]
        receipt: Option<String>,
        /// Amount in the currency's units; default: what is left to refund.
        #[arg(long)]
        amount: Option<String>,
        /// Idempotency key: repeating a refund with it never refunds twice.
        #[arg(long)]
        refund_id: Option<String>,
        /// The manager PIN (default: $POSD_MANAGER_PIN).
        #[arg(long, env = "POSD_MANAGER_PIN", hide_env_values = true)]
        pin: String,
        #[arg(long)]
        json: bool,
    },
    /// Void an offline sale not yet settled (needs the manager PIN).
    Void {
        original: String,
        #[arg(long, env = "POSD_MANAGER_PIN", hide_env_values = true)]
        pin: String,
        #[arg(long)]
        json: bool,
    },
    /// Close the batch: Z report printed and sent to the host for reconciliation.
    BatchClose {
        #[arg(long)]
        json: bool,
    },
    /// Batch closes and the host's reconciliation, newest first.
    Batches {
        #[arg(long)]
        json: bool,
    },
    /// The sale in progress and the merchant QR it shows.
    Current,
    /// Cancel the sale in progress (an online payment in progress is reversed).
    Cancel,
    /// Pass a code to the sale in progress, as if scanned.
    Scan { code: String },
    /// Print a receipt, pay slip or Z report again, marked REPRINT (default: the last
    /// transaction's receipt). Any final state: settled, voided, refunded, declined, ...
    Reprint {
        /// Transaction id (a batch close's id reprints its Z report).
        txn: Option<String>,
        /// The Z report of this batch number.
        #[arg(long, conflicts_with_all = ["txn", "pay_slip"])]
        batch: Option<u64>,
        /// The pay slip (the merchant QR offered) of the order TXN instead of its receipt.
        #[arg(long, requires = "txn")]
        pay_slip: bool,
    },
    /// Receipts: draw one as posd would print it, without a printer.
    Receipt {
        #[command(subcommand)]
        cmd: ReceiptCmd,
    },
    /// The print queue.
    PrintJobs {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ReceiptCmd {
    /// Interpret the ESC/POS bytes posd would send and draw them: --png FILE and/or --text.
    Render {
        /// Transaction id (default: --last); a batch close's id draws its Z report.
        txn: Option<String>,
        #[arg(long)]
        last: bool,
        /// The Z report of this batch number.
        #[arg(long, conflicts_with_all = ["txn", "last", "pay_slip"])]
        batch: Option<u64>,
        /// The pay slip of the order TXN instead of its receipt.
        #[arg(long, requires = "txn")]
        pay_slip: bool,
        #[arg(long)]
        png: Option<PathBuf>,
        #[arg(long)]
        text: bool,
    },
}

#[derive(Subcommand)]
pub enum TxnCmd {
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

/// Runs one control-socket command.
pub fn run(socket: PathBuf, cmd: TillCmd) -> anyhow::Result<ExitCode> {
    // These commands print to a terminal or a pipe: `posctl txn list | head` must end quietly,
    // not panic on EPIPE. Only here — the fleet tools keep SIGPIPE ignored, so a broker going
    // away is an error they report, not a silent death.
    // SAFETY: setting a signal disposition to the default before any thread is spawned.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut c = ControlClient::connect(&socket).await?;
        till(&mut c, cmd).await
    })
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// An amount in minor units as people read it (`12.50 CNY`).
fn money(minor: i64, currency: &str) -> String {
    match Currency::from_code(currency) {
        Ok(c) => format!("{} {c}", c.format(minor)),
        Err(_) => format!("{minor} (minor units) {currency}"),
    }
}

async fn till(c: &mut ControlClient, cmd: TillCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TillCmd::Status { json } => {
            let v = c.call(ctl::Status {}).await?;
            if json {
                print_json(&v)?;
            } else {
                print_status(&v);
            }
        }
        TillCmd::Queue { json } => {
            let v = c.call(ctl::Queue {}).await?;
            if json {
                print_json(&v)?;
            } else {
                println!(
                    "pending {}  oldest {} s  last seq {}  acked seq {}",
                    v.pending, v.oldest_age_s, v.last_seq, v.acked_seq
                );
            }
        }
        TillCmd::Txn {
            cmd: TxnCmd::List { limit, json },
        } => {
            let v = c.call(ctl::TxnList { limit: Some(limit) }).await?;
            if json {
                print_json(&v)?;
            } else {
                for t in &v {
                    println!("{}", txn_line(t));
                }
            }
        }
        TillCmd::Txn {
            cmd: TxnCmd::Show { id, json },
        } => {
            let v = c.call(ctl::TxnShow { id }).await?;
            if json {
                print_json(&v)?;
            } else {
                println!("{}", txn_line(&v.txn));
                if let serde_json::Value::Object(fields) = serde_json::to_value(&v.txn)? {
                    for (k, val) in fields.iter().filter(|(_, v)| !v.is_null()) {
                        println!("  {k:<12} {}", plain(val));
                    }
                }
                println!("  history:");
                for h in &v.history {
                    println!("    seq {:<6} {:<18} at {}", h.seq, h.state, h.at);
                }
            }
        }
        TillCmd::Sale {
            amount,
            currency,
            code,
            method,
            json,
        } => {
            let method = match method.as_deref().map(|m| m.replace('-', "_")) {
                None => None,
                Some(m) => Some(
                    serde_json::from_value::<ctl::SaleMethod>(serde_json::Value::String(m.clone()))
                        .map_err(|_| {
                            anyhow::anyhow!("unknown method {m:?}: merchant_qr, code or card")
                        })?,
                ),
            };
            let r = c
                .call(ctl::Sale {
                    amount,
                    currency,
                    code,
                    method,
                })
                .await;
            return print_reply(r, json);
        }
        TillCmd::Refund {
            original,
            receipt,
            amount,
            refund_id,
            pin,
            json,
        } => {
            let r = c
                .call(ctl::Refund {
                    original,
                    receipt,
                    amount,
                    refund_id,
                    pin,
                })
                .await;
            return print_reply(r, json);
        }
        TillCmd::Void {
            original,
            pin,
            json,
        } => {
            let r = c.call(ctl::Void { original, pin }).await;
            return print_reply(r, json);
        }
        TillCmd::BatchClose { json } => {
            let v = c.call(ctl::BatchClose {}).await?;
            if json {
                print_json(&v)?;
            } else {
                let z = &v.report;
                let m = |minor: i64| money(minor, &z.currency);
                println!(
                    "batch {} closed (txn {}, seq {}): {} sales {}, {} refunds {}, net {}",
                    z.batch_no,
                    v.txn_id,
                    v.seq,
                    z.sales_count,
                    m(z.sales_amount),
                    z.refunds_count,
                    m(z.refunds_amount),
                    m(z.net_total)
                );
                for row in &z.rows {
                    println!(
                        "  {:<7} {:<13} {:<10} {:<20} {:>5} {:>16}",
                        row.kind,
                        row.method,
                        row.channel,
                        row.state,
                        row.count,
                        m(row.amount)
                    );
                }
            }
        }
        TillCmd::Batches { json } => {
            let v = c.call(ctl::Batches { limit: Some(20) }).await?;
            if json {
                print_json(&v)?;
            } else {
                for b in &v {
                    let no = b
                        .detail
                        .as_ref()
                        .and_then(|d| d.get("batch_no"))
                        .map(plain)
                        .unwrap_or_default();
                    println!(
                        "batch {:<4} {:<11} net {:>16} {}  {}",
                        no,
                        b.state.as_str(),
                        money(b.amount, b.currency.code()),
                        b.id,
                        b.reason.as_deref().unwrap_or("")
                    );
                }
            }
        }
        TillCmd::Current => {
            let v = c.call(ctl::Current {}).await?;
            print_json(&v)?;
        }
        TillCmd::Cancel => println!("{}", c.call(ctl::Cancel {}).await?.message),
        TillCmd::Scan { code } => println!("{}", c.call(ctl::Scan { code }).await?.message),
        TillCmd::Reprint {
            txn,
            batch,
            pay_slip,
        } => {
            let v = c
                .call(ctl::Reprint {
                    txn_id: txn,
                    batch,
                    pay_slip,
                })
                .await?;
            let what = match v.kind.as_str() {
                "z_report" => "Z report",
                "pay_slip" => "pay slip",
                _ => "receipt",
            };
            println!(
                "reprint of the {what} of {} queued (job {})",
                v.txn_id, v.job
            );
        }
        TillCmd::PrintJobs { json } => {
            let v = c.call(ctl::PrintJobs { limit: Some(20) }).await?;
            if json {
                print_json(&v)?;
            } else {
                for j in &v {
                    println!(
                        "job {:<5} {:<8} attempts {:<3} {}  {}",
                        j.id,
                        j.state,
                        j.attempts,
                        j.txn_id,
                        j.last_error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        TillCmd::Receipt {
            cmd:
                ReceiptCmd::Render {
                    txn,
                    last,
                    batch,
                    pay_slip,
                    png,
                    text,
                },
        } => {
            if txn.is_some() && last {
                anyhow::bail!("give a transaction id or --last, not both");
            }
            let v = c
                .call(ctl::Receipt {
                    txn_id: txn,
                    batch,
                    pay_slip,
                })
                .await?;
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&v.escpos_b64)
                .context("bad receipt bytes from posd")?;
            let opts = posd_core::receipt::RenderOptions::for_width(v.width);
            if let Some(path) = &png {
                let img = posd_core::receipt::render_png(&bytes, &opts)?;
                std::fs::write(path, img).with_context(|| format!("write {}", path.display()))?;
                eprintln!("receipt of {} drawn to {}", v.txn_id, path.display());
            }
            if text || png.is_none() {
                print!("{}", posd_core::receipt::render_text(&bytes, &opts));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a sale-like reply (sale, refund, void): exit 0 when approved, 2 otherwise.
fn print_reply(r: Result<ctl::SaleReply, ControlError>, json: bool) -> anyhow::Result<ExitCode> {
    match r {
        Ok(v) => {
            if json {
                print_json(&v)?;
            } else {
                let (word, detail) = match &v.outcome {
                    SaleOutcome::Approved { host_ref } => ("APPROVED", host_ref.clone()),
                    SaleOutcome::Declined { reason } => ("DECLINED", Some(reason.clone())),
                    SaleOutcome::Cancelled { reason } => ("CANCELLED", Some(reason.clone())),
                    SaleOutcome::Pending { reason } => ("PENDING", Some(reason.clone())),
                };
                println!(
                    "{word} {} {} — txn {}",
                    money(v.amount, &v.currency),
                    detail.unwrap_or_default(),
                    v.txn_id
                );
            }
            Ok(if matches!(v.outcome, SaleOutcome::Approved { .. }) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
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
            Ok(ExitCode::from(2))
        }
    }
}

fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn txn_line(t: &Transaction) -> String {
    format!(
        "{}  {:<6} {:<12} {:>16}  {:<19} {}",
        t.id,
        t.kind.as_str(),
        t.method.as_str(),
        money(t.amount, t.currency.code()),
        t.state.as_str(),
        t.reason.as_deref().unwrap_or("")
    )
}

fn print_status(v: &ctl::StatusDoc) {
    println!("terminal   {}", v.terminal);
    println!("online     {}", v.online);
    println!(
        "version    {} ({})",
        v.version,
        v.commit.as_deref().unwrap_or("")
    );
    println!("session    {}", v.session);
    println!(
        "queue      {} pending, oldest {} s (last seq {}, acked {})",
        v.queue.pending, v.queue.oldest_age_s, v.queue.last_seq, v.queue.acked_seq
    );
    let last_push = match &v.config {
        Some(cfg) if cfg.is_object() => format!(
            "; last push: version {} {}{}",
            plain(&cfg["version"]),
            plain(&cfg["state"]),
            cfg["error"]
                .as_str()
                .map(|e| format!(" ({e}: {})", plain(&cfg["message"])))
                .unwrap_or_default()
        ),
        _ => String::new(),
    };
    println!(
        "config     {}{last_push}",
        match v.config_version {
            Some(n) => format!("version {n} (pushed)"),
            None => "local file".to_string(),
        }
    );
    let h = &v.host_messages;
    let keys = h
        .keys
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "host msgs  {}; refused since start: resp {}, notify {}, ack {}{}",
        match (h.unsigned_accepted, h.keys.is_empty()) {
            (true, _) => "UNSIGNED ACCEPTED (lab only: broker.lab_accept_unsigned)".to_string(),
            (false, true) => "no host key: every answer is refused ([[broker.host_keys]])".into(),
            (false, false) => format!("signed by host key {keys}"),
        },
        h.refused.resp,
        h.refused.notify,
        h.refused.ack,
        h.last_refusal
            .as_ref()
            .map(|r| format!(" (last: {} {}: {})", r.kind.as_str(), r.code, r.message))
            .unwrap_or_default()
    );
    for (k, d) in &v.devices {
        println!("device     {k}: {d}");
    }
    if let Some(p) = &v.printer {
        if let Some(name) = &p.reported_name {
            println!("printer    reports itself as {name}");
        }
        for w in &p.warnings {
            println!("warning    printer: {w}");
        }
    }
    if let Some(d) = &v.disk {
        let mb = |b: u64| format!("{:.1} MB", b as f64 / 1048576.0);
        println!(
            "disk       {}: {} free of {} (low below {}, sales refused below {}); journal {} + log {}, {}",
            d.level.as_str(),
            mb(d.free_bytes),
            mb(d.total_bytes),
            mb(d.warn_below_bytes),
            mb(d.refuse_below_bytes),
            mb(d.db_bytes),
            mb(d.wal_bytes),
            match d.auto_vacuum.as_str() {
                "incremental" => "gives space back".to_string(),
                other => format!("auto_vacuum {other}: pruned space is reused, not given back"),
            }
        );
        println!(
            "retention  {} days; {} transactions pruned since start{}",
            d.retention_days,
            d.pruned_txns,
            d.oldest_txn_at
                .map(|t| format!("; oldest kept created at {t} (unix ms)"))
                .unwrap_or_default()
        );
    }
}
