//! posctl: cashier diagnostics over the control socket, the sandbox host, fleet tools
//! (`posctl fleet`, docs/fleet.md) and wallet tools.

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
    /// Manager PIN: make the hash for `[manager] pin_hash`.
    Manager {
        #[command(subcommand)]
        cmd: ManagerCmd,
    },
    /// Cancel the sale in progress (an online payment in progress is reversed).
    Cancel,
    /// Pass a code to the sale in progress, as if scanned.
    Scan { code: String },
    /// Print a receipt again (default: the last transaction), marked REPRINT.
    Reprint { txn: Option<String> },
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
    /// Play the payment platform and backend over MQTT (see docs/sandbox-host.md).
    SandboxHost(HostArgs),
    /// Payment codes: decode images, inspect scanned text.
    Code {
        #[command(subcommand)]
        cmd: CodeCmd,
    },
    /// A test wallet for P1 offline codes (the reference for platform teams).
    Wallet {
        #[command(subcommand)]
        cmd: WalletCmd,
    },
    /// Card tools for the sandbox host: the key pair card data is sealed to.
    Card {
        #[command(subcommand)]
        cmd: CardCmd,
    },
    /// Fleet management: signing keys, signed config pushes and commands, fleet status.
    Fleet {
        #[command(subcommand)]
        cmd: FleetCmd,
    },
}

#[derive(Subcommand)]
enum ManagerCmd {
    /// Prints the argon2id hash of a PIN read from stdin (one line), for `[manager] pin_hash`.
    HashPin,
}

#[derive(Args, Clone)]
struct FleetBroker {
    /// Broker URL: mqtt://host:port, or mqtts://host:port with --tls-*.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    #[arg(long, default_value = "pos/v1")]
    prefix: String,
    /// MQTT client id (default: posctl-fleet-<pid>).
    #[arg(long)]
    client_id: Option<String>,
    /// CA certificate (PEM) for mqtts://.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM, X.509 v3).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

impl FleetBroker {
    fn broker(&self) -> posd::fleet::tool::Broker {
        posd::fleet::tool::Broker {
            url: self.broker.clone(),
            prefix: self.prefix.clone(),
            client_id: self
                .client_id
                .clone()
                .unwrap_or_else(|| format!("posctl-fleet-{}", std::process::id())),
            tls: match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
                (Some(ca), Some(cert), Some(key)) => Some(posd::config::TlsConfig {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
        }
    }
}

#[derive(Subcommand)]
enum FleetCmd {
    /// A new Ed25519 fleet signing key: writes the key file (0600), prints the `[fleet]` line.
    Keygen {
        /// The key's name (the envelope's key_id).
        #[arg(long)]
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a config overlay (TOML or .json, shaped like posd.toml) and publish it retained.
    Push {
        #[arg(long)]
        key: PathBuf,
        /// A terminal id, or * for every terminal.
        #[arg(long)]
        terminal: String,
        /// Higher than any version pushed to these terminals before.
        #[arg(long)]
        version: u64,
        file: PathBuf,
        #[command(flatten)]
        mqtt: FleetBroker,
    },
    /// Send a signed command to one terminal and print its result.
    Cmd {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        terminal: String,
        /// sync_now, reprint, batch_close or ping.
        op: String,
        /// Arguments as a JSON object, e.g. '{"txn_id":"..."}'.
        #[arg(long)]
        args: Option<String>,
        /// Default: a new UUID. Repeating one returns the recorded result.
        #[arg(long)]
        cmd_id: Option<String>,
        #[arg(long, default_value_t = 15)]
        wait_s: u64,
        #[command(flatten)]
        mqtt: FleetBroker,
    },
    /// Every terminal's retained status and config report, as a table.
    Status {
        #[arg(long)]
        json: bool,
        /// How long to collect retained messages.
        #[arg(long, default_value_t = 1000)]
        wait_ms: u64,
        #[command(flatten)]
        mqtt: FleetBroker,
    },
}

#[derive(Subcommand)]
enum WalletCmd {
    /// A new P-256 key pair (issuer or user): prints {"private_key", "public_key"} as hex.
    Keygen,
    /// Issue a credential: signs it with the issuer key and writes a wallet file (credential +
    /// the user's private key) that `posctl wallet code` makes codes from.
    Issue {
        /// Issuer private key (hex).
        #[arg(long)]
        issuer_key: String,
        #[arg(long)]
        key_id: u8,
        #[arg(long)]
        user_id: u64,
        /// Unix seconds (default: now).
        #[arg(long)]
        valid_from: Option<u32>,
        /// Unix seconds (default: valid_from + 30 days).
        #[arg(long)]
        valid_until: Option<u32>,
        /// Per-transaction maximum in minor units.
        #[arg(long, default_value_t = 10_000)]
        max_amount: u32,
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// The user's private key (hex); a new one when absent.
        #[arg(long)]
        user_key: Option<String>,
        /// Wallet file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a P1 code from a wallet file for a given time and counter.
    Code {
        #[arg(long)]
        wallet: PathBuf,
        #[arg(long)]
        counter: u32,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<u32>,
    },
    /// Pay a merchant-presented code at the sandbox host, as a customer's wallet would: the
    /// scanned text (EMVCo payload or platform URL). Exit 0 paid, 3 refused or no answer in 5 s.
    PayQr {
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        #[arg(long, default_value = "pos/v1")]
        prefix: String,
        qr: String,
    },
}

#[derive(Subcommand)]
enum CardCmd {
    /// A new X25519 key pair: writes the secret (base64) to --out-secret for
    /// `posctl sandbox-host --card-key`, prints the public key (base64) for `[card] host_public_key`.
    Keygen {
        #[arg(long)]
        out_secret: PathBuf,
    },
}

#[derive(Subcommand)]
enum CodeCmd {
    /// Classify scanned text and print every parsed field; non-zero with the reason if invalid.
    Inspect {
        text: String,
        #[arg(long)]
        json: bool,
    },
    /// Run the camera's decode pipeline on image files (PNG, JPEG, WebP): one line per file.
    ScanImage {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ReceiptCmd {
    /// Interpret the ESC/POS bytes posd would send and draw them: --png FILE and/or --text.
    Render {
        /// Transaction id (default: --last).
        txn: Option<String>,
        #[arg(long)]
        last: bool,
        #[arg(long)]
        png: Option<PathBuf>,
        #[arg(long)]
        text: bool,
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
    /// A platform issuer key for verifying P1 offline sales at settlement: ID=HEX (repeatable).
    #[arg(long = "issuer-key")]
    issuer_keys: Vec<String>,
    /// Delay before the sandbox customer pays an order (amounts ending in 11 or 33), in ms.
    #[arg(long, default_value_t = 1000)]
    pay_after_ms: u64,
    /// File holding the host's X25519 secret (base64) that card data is sealed to
    /// (`posctl card keygen`). Without it every card is "card data unreadable".
    #[arg(long)]
    card_key: Option<PathBuf>,
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
        Cmd::Wallet { cmd } => return wallet_cmd(cmd),
        Cmd::Manager { cmd } => return manager_cmd(cmd),
        Cmd::Card { cmd } => return card_cmd(cmd),
        Cmd::Fleet { cmd } => return fleet_cmd(cmd),
        other => other,
    };
    // Control-socket commands print to a terminal or a pipe: `posctl txn list | head` must end
    // quietly, not panic on EPIPE. Only here — the sandbox host and the fleet tools keep SIGPIPE
    // ignored, so a broker going away is an error they report, not a silent death.
    // SAFETY: setting a signal disposition to the default before any thread is spawned.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
            Cmd::Refund {
                original,
                receipt,
                amount,
                refund_id,
                pin,
                json,
            } => {
                let r = c
                    .call(&ControlRequest::Refund {
                        original,
                        receipt,
                        amount,
                        refund_id,
                        pin,
                    })
                    .await;
                return Ok(print_reply(r, json));
            }
            Cmd::Void {
                original,
                pin,
                json,
            } => {
                let r = c.call(&ControlRequest::Void { original, pin }).await;
                return Ok(print_reply(r, json));
            }
            Cmd::BatchClose { json } => {
                let v = c.call(&ControlRequest::BatchClose).await?;
                if json {
                    println!("{v}");
                } else {
                    let z = &v["report"];
                    println!(
                        "batch {} closed (txn {}, seq {}): {} sales {}, {} refunds {}, net {} {}",
                        z["batch_no"],
                        plain(&v["txn_id"]),
                        v["seq"],
                        z["sales_count"],
                        z["sales_amount"],
                        z["refunds_count"],
                        z["refunds_amount"],
                        z["net_total"],
                        plain(&z["currency"])
                    );
                    for row in z["rows"].as_array().into_iter().flatten() {
                        println!(
                            "  {:<7} {:<13} {:<10} {:<20} {:>5} {:>12}",
                            plain(&row["kind"]),
                            plain(&row["method"]),
                            plain(&row["channel"]),
                            plain(&row["state"]),
                            row["count"],
                            row["amount"]
                        );
                    }
                }
            }
            Cmd::Batches { json } => {
                let v = c.call(&ControlRequest::Batches { limit: Some(20) }).await?;
                if json {
                    println!("{v}");
                } else {
                    for b in v.as_array().into_iter().flatten() {
                        println!(
                            "batch {:<4} {:<11} net {:>12} {}  {}",
                            b["detail"]["batch_no"],
                            plain(&b["state"]),
                            b["amount"],
                            plain(&b["id"]),
                            b["reason"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            Cmd::Current => {
                let v = c.call(&ControlRequest::Current).await?;
                println!("{v}");
            }
            Cmd::Sale {
                amount,
                currency,
                code,
                method,
                json,
            } => {
                let r = c
                    .call(&ControlRequest::Sale {
                        amount,
                        currency,
                        code,
                        method: method.map(|m| m.replace('-', "_")),
                    })
                    .await;
                return Ok(print_reply(r, json));
            }
            Cmd::Cancel => {
                let v = c.call(&ControlRequest::Cancel).await?;
                println!("{}", plain(&v["message"]));
            }
            Cmd::Scan { code } => {
                let v = c.call(&ControlRequest::Scan { code }).await?;
                println!("{}", plain(&v["message"]));
            }
            Cmd::Reprint { txn } => {
                let v = c.call(&ControlRequest::Reprint { txn_id: txn }).await?;
                println!(
                    "reprint of {} queued (job {})",
                    plain(&v["txn_id"]),
                    v["job"]
                );
            }
            Cmd::PrintJobs { json } => {
                let v = c
                    .call(&ControlRequest::PrintJobs { limit: Some(20) })
                    .await?;
                if json {
                    println!("{v}");
                } else {
                    for j in v.as_array().into_iter().flatten() {
                        println!(
                            "job {:<5} {:<8} attempts {:<3} {}  {}",
                            j["id"],
                            plain(&j["state"]),
                            j["attempts"],
                            plain(&j["txn_id"]),
                            j["last_error"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            Cmd::Receipt {
                cmd:
                    ReceiptCmd::Render {
                        txn,
                        last,
                        png,
                        text,
                    },
            } => {
                if txn.is_some() && last {
                    anyhow::bail!("give a transaction id or --last, not both");
                }
                let v = c.call(&ControlRequest::Receipt { txn_id: txn }).await?;
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v["escpos_b64"].as_str().unwrap_or(""))
                    .context("bad receipt bytes from posd")?;
                let width: posd::receipt::PaperWidth = serde_json::from_value(v["width"].clone())
                    .context("bad paper width from posd")?;
                let opts = posd::receipt::RenderOptions::for_width(width);
                if let Some(path) = &png {
                    let img = posd::receipt::render_png(&bytes, &opts)?;
                    std::fs::write(path, img)
                        .with_context(|| format!("write {}", path.display()))?;
                    eprintln!(
                        "receipt of {} drawn to {}",
                        plain(&v["txn_id"]),
                        path.display()
                    );
                }
                if text || png.is_none() {
                    print!("{}", posd::receipt::render_text(&bytes, &opts));
                }
            }
            Cmd::SandboxHost(_)
            | Cmd::Code { .. }
            | Cmd::Wallet { .. }
            | Cmd::Card { .. }
            | Cmd::Fleet { .. }
            | Cmd::Manager { .. } => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints a sale-like reply (sale, refund, void): exit 0 when approved, 2 otherwise.
fn print_reply(r: Result<serde_json::Value, posd::control::ControlError>, json: bool) -> ExitCode {
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
            if v["result"] == "approved" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
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
            ExitCode::from(2)
        }
    }
}

fn manager_cmd(cmd: ManagerCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ManagerCmd::HashPin => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let pin = line.trim_end_matches(['\r', '\n']);
            if pin.len() < 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
                anyhow::bail!("a manager PIN is 4 or more digits");
            }
            let h = posd::engine::hash_pin(pin).map_err(|e| anyhow::anyhow!(e))?;
            println!("{h}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn fleet_cmd(cmd: FleetCmd) -> anyhow::Result<ExitCode> {
    use posd::fleet::tool::{self, KeyFile};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        FleetCmd::Keygen { id, out } => {
            let k = KeyFile::generate(&id);
            k.write(&out)?;
            println!(
                "# wrote {}; add to every terminal's posd.toml:",
                out.display()
            );
            println!("[fleet]\n{}", k.toml_entry());
        }
        FleetCmd::Push {
            key,
            terminal,
            version,
            file,
            mqtt,
        } => {
            let k = KeyFile::read(&key)?;
            let overlay = tool::read_overlay(&file)?;
            let body = tool::sign_config(&k, &terminal, version, overlay)?;
            let b = mqtt.broker();
            let topic = b.cfg_topic(&terminal);
            rt.block_on(tool::publish(&b, &topic, body, true))?;
            println!(
                "pushed version {version} to {topic} (retained), signed by {}",
                k.id
            );
        }
        FleetCmd::Cmd {
            key,
            terminal,
            op,
            args,
            cmd_id,
            wait_s,
            mqtt,
        } => {
            let k = KeyFile::read(&key)?;
            let op: posd::fleet::command::Op = serde_json::from_value(Value::String(op.clone()))
                .map_err(|_| {
                    anyhow::anyhow!("unknown op {op:?}: sync_now, reprint, batch_close or ping")
                })?;
            let args: Value = match args {
                Some(a) => serde_json::from_str(&a).context("--args is not JSON")?,
                None => Value::Null,
            };
            let cmd_id = cmd_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let body = tool::sign_command(&k, &terminal, &cmd_id, op, args)?;
            let v = rt.block_on(tool::command(
                &mqtt.broker(),
                &terminal,
                &cmd_id,
                body,
                std::time::Duration::from_secs(wait_s),
            ))?;
            println!("{v}");
            if v["ok"] != Value::Bool(true) {
                return Ok(ExitCode::from(2));
            }
        }
        FleetCmd::Status {
            json,
            wait_ms,
            mqtt,
        } => {
            let rows = rt.block_on(tool::fleet_status(
                &mqtt.broker(),
                std::time::Duration::from_millis(wait_ms),
            ))?;
            if json {
                println!("{}", tool::table_json(&rows));
            } else {
                print!("{}", tool::format_table(&rows));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
        .unwrap_or(0)
}

fn wallet_cmd(cmd: WalletCmd) -> anyhow::Result<ExitCode> {
    use posd::codes::{issue_credential, make_code, Credential, CredentialRequest, PrivateKey};
    match cmd {
        WalletCmd::Keygen => {
            let k = PrivateKey::generate()?;
            println!(
                "{}",
                serde_json::json!({"private_key": k.to_hex(), "public_key": k.public_key().to_hex()})
            );
        }
        WalletCmd::Issue {
            issuer_key,
            key_id,
            user_id,
            valid_from,
            valid_until,
            max_amount,
            currency,
            user_key,
            out,
        } => {
            let issuer = PrivateKey::from_hex(&issuer_key)?;
            let user = match user_key {
                Some(h) => PrivateKey::from_hex(&h)?,
                None => PrivateKey::generate()?,
            };
            let cur = posd::core::money::Currency::from_code(&currency)?;
            let from = valid_from.unwrap_or_else(unix_now);
            let req = CredentialRequest {
                user_id,
                user_key: user.public_key(),
                valid_from: from,
                valid_until: valid_until.unwrap_or(from.saturating_add(30 * 86_400)),
                max_amount,
                currency: cur.numeric(),
            };
            let cred = issue_credential(&issuer, key_id, &req)?;
            let wallet = serde_json::json!({
                "credential": hex::encode(cred.to_bytes()),
                "user_private_key": user.to_hex(),
                "user_id": user_id,
                "fingerprint": cred.fingerprint(),
            });
            std::fs::write(&out, serde_json::to_vec_pretty(&wallet)?)
                .with_context(|| format!("write {}", out.display()))?;
            println!("{wallet}");
        }
        WalletCmd::Code {
            wallet,
            counter,
            timestamp,
        } => {
            let w: Value = serde_json::from_slice(
                &std::fs::read(&wallet).with_context(|| format!("read {}", wallet.display()))?,
            )?;
            let cred_hex = w["credential"]
                .as_str()
                .context("wallet has no credential")?;
            let key_hex = w["user_private_key"]
                .as_str()
                .context("wallet has no user_private_key")?;
            let cred = Credential::from_bytes(&hex::decode(cred_hex)?)?;
            let user = PrivateKey::from_hex(key_hex)?;
            let code = make_code(&user, &cred, timestamp.unwrap_or_else(unix_now), counter)?;
            println!("{}", code.to_text());
        }
        WalletCmd::PayQr { broker, prefix, qr } => return wallet_pay_qr(&broker, &prefix, &qr),
    }
    Ok(ExitCode::SUCCESS)
}

/// Publishes `{"qr": ...}` on `{prefix}/sandbox/pay` and waits up to 5 s for the host's result.
fn wallet_pay_qr(broker: &str, prefix: &str, qr: &str) -> anyhow::Result<ExitCode> {
    use rumqttc::{Client, Event, Packet, QoS};
    use std::time::{Duration, Instant};
    let opts = posd::link::mqtt_options(
        &format!("posctl-wallet-{}", std::process::id()),
        broker,
        None,
        30,
    )?;
    let (client, mut conn) = Client::new(opts, 16);
    let result_topic = posd::host::wallet_result_topic(prefix);
    let body = serde_json::json!({ "qr": qr }).to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = false;
    let mut last_err = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let ev = match conn.recv_timeout(left) {
            Ok(ev) => ev,
            Err(_) => break,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                client.try_subscribe(result_topic.clone(), QoS::AtLeastOnce)?;
            }
            Ok(Event::Incoming(Packet::SubAck(_))) if !sent => {
                client.try_publish(
                    posd::host::wallet_pay_topic(prefix),
                    QoS::AtLeastOnce,
                    false,
                    body.clone(),
                )?;
                sent = true;
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == result_topic => {
                let v: Value = match serde_json::from_slice(&p.payload) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if v["qr"].as_str() != Some(qr) {
                    continue; // another wallet's result
                }
                println!("{v}");
                let _ = client.disconnect();
                return Ok(if v["status"] == "paid" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                });
            }
            Ok(_) => {}
            Err(e) => {
                let e = e.to_string();
                if e != last_err {
                    eprintln!("posctl: broker: {e}");
                    last_err = e;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    eprintln!("posctl: no answer from the sandbox host within 5 s");
    Ok(ExitCode::from(3))
}

fn card_cmd(cmd: CardCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CardCmd::Keygen { out_secret } => {
            let (secret, public) = posd::host::card_keygen()?;
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

fn code_cmd(cmd: CodeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CodeCmd::Inspect { text, json } => {
            let patterns = posd::codes::Patterns::new(posd::codes::PatternsConfig::default())?;
            match posd::codes::inspect(&text, &patterns, Some(u64::from(unix_now()))) {
                Ok(i) => {
                    if json {
                        println!("{}", serde_json::to_string(&i)?);
                    } else {
                        println!("{i}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    if json {
                        println!("{}", serde_json::json!({"error": e.to_string()}));
                    }
                    eprintln!("invalid: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
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
    cfg.pay_after_ms = h.pay_after_ms;
    if let Some(path) = &h.card_key {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        cfg.card_secret = Some(
            posd::host::parse_card_secret(text.trim())
                .with_context(|| format!("{}: not a base64 X25519 key", path.display()))?,
        );
    }
    let mut keys = Vec::new();
    for k in &h.issuer_keys {
        let (id, hex_key) = k.split_once('=').context("--issuer-key takes ID=HEX")?;
        keys.push(posd::codes::IssuerKeyConfig {
            id: id.parse().context("issuer key id must be 0-255")?,
            public_key: hex_key.to_string(),
            retired: false,
        });
    }
    cfg.issuer_keys = posd::codes::IssuerKeys::from_config(&keys)?;
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
    let cfg = &v["config"];
    println!(
        "config     {}{}",
        match v["config_version"].as_u64() {
            Some(n) => format!("version {n} (pushed)"),
            None => "local file".to_string(),
        },
        if cfg.is_object() {
            format!(
                "; last push: version {} {}{}",
                plain(&cfg["version"]),
                plain(&cfg["state"]),
                cfg["error"]
                    .as_str()
                    .map(|e| format!(" ({e}: {})", plain(&cfg["message"])))
                    .unwrap_or_default()
            )
        } else {
            String::new()
        }
    );
    for (k, d) in v["devices"].as_object().into_iter().flatten() {
        println!("device     {k}: {}", plain(d));
    }
}
