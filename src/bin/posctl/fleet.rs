//! `posctl fleet`: the fleet manager's tools (docs/fleet.md) — signing keys, signed config
//! pushes and commands, and the fleet's status from the retained topics.

use crate::out::Failure;
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Clone)]
pub struct FleetBroker {
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
pub enum FleetCmd {
    /// A new Ed25519 fleet signing key: writes the key file (0600), prints the `[fleet]` line.
    Keygen {
        /// The key's name (the envelope's key_id).
        #[arg(long)]
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a config overlay (TOML or .json, shaped like posd.toml) and publish it retained.
    /// It is first checked as the terminal would (the pushable list, the merged result under
    /// the terminal's schema): a push the terminal would reject is refused here, unsigned.
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
        /// The terminal's posd.toml to check the push against (default: the shipped defaults
        /// with this terminal id).
        #[arg(long)]
        base: Option<PathBuf>,
        /// Wait for the terminal's verdict (cfg/reported): exit 0 applied, 4 rejected.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value_t = 30)]
        wait_s: u64,
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
    /// Every terminal's retained status and config report, as a table; with --summary, the
    /// fleet at a glance (online and offline, the oldest unsynced queue, config versions,
    /// device faults), fast with tens of thousands of terminals.
    Status {
        /// How long to collect retained messages (with --summary: at most; default 1000 for
        /// the table, 60000 for the summary).
        #[arg(long)]
        wait_ms: Option<u64>,
        /// Counts instead of a row per terminal.
        #[arg(long)]
        summary: bool,
        /// With --summary: the collection ends when the broker sent nothing this long.
        #[arg(long, default_value_t = 500)]
        quiet_ms: u64,
        #[command(flatten)]
        mqtt: FleetBroker,
    },
}

pub fn run(cmd: FleetCmd, json: bool) -> anyhow::Result<ExitCode> {
    use posd::fleet::tool::{self, KeyFile};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        FleetCmd::Keygen { id, out } => {
            let k = KeyFile::generate(&id);
            k.write(&out)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"key_id": k.id, "file": out.display().to_string(), "toml": format!("[fleet]\n{}", k.toml_entry())})
                );
            } else {
                println!(
                    "# wrote {}; add to every terminal's posd.toml:",
                    out.display()
                );
                println!("[fleet]\n{}", k.toml_entry());
            }
        }
        FleetCmd::Push {
            key,
            terminal,
            version,
            file,
            base,
            wait,
            wait_s,
            mqtt,
        } => {
            if wait && terminal == "*" {
                return Err(Failure::usage(
                    "--wait needs one terminal: a push to * has no single verdict (posctl fleet status)",
                )
                .into());
            }
            let overlay = tool::read_overlay(&file)?;
            // The terminal's own checks, before anything is signed or sent.
            let base_cfg = tool::push_base(base.as_deref(), &terminal)?;
            let restart = tool::check_push(&base_cfg, &overlay).map_err(|e| {
                Failure::refused(
                    e.code(),
                    format!("not pushed (the terminal would reject it): {e}"),
                )
            })?;
            let k = KeyFile::read(&key)?;
            let body = tool::sign_config(&k, &terminal, version, overlay)?;
            let b = mqtt.broker();
            let topic = b.cfg_topic(&terminal);
            if !wait {
                rt.block_on(tool::publish(&b, &topic, body, true))?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"ok": true, "version": version, "topic": topic, "key_id": k.id, "restart": restart})
                    );
                } else {
                    println!(
                        "pushed version {version} to {topic} (retained), signed by {}{}",
                        k.id,
                        if restart {
                            "; takes effect at the next start of posd"
                        } else {
                            ""
                        }
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let report = rt.block_on(tool::push_and_wait(
                &b,
                &terminal,
                body,
                version,
                std::time::Duration::from_secs(wait_s),
            ))?;
            let applied = report["state"] == "applied";
            if json {
                println!("{report}");
            } else if applied {
                println!("version {version} applied by {terminal}");
            } else {
                println!(
                    "version {version} {} by {terminal}: {} {}",
                    report["state"].as_str().unwrap_or("not applied"),
                    report["error"].as_str().unwrap_or(""),
                    report["message"].as_str().unwrap_or("")
                );
            }
            if !applied {
                return Ok(ExitCode::from(crate::out::exit::REFUSED));
            }
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
            let op: posd_core::fleet::command::Op =
                serde_json::from_value(Value::String(op.clone())).map_err(|_| {
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
                // The terminal's refusal: its result line above, exit 4.
                return Ok(ExitCode::from(crate::out::exit::REFUSED));
            }
        }
        FleetCmd::Status {
            wait_ms,
            summary: true,
            quiet_ms,
            mqtt,
        } => {
            let s = rt.block_on(tool::fleet_summary(
                &mqtt.broker(),
                std::time::Duration::from_millis(wait_ms.unwrap_or(60_000)),
                std::time::Duration::from_millis(quiet_ms),
            ))?;
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                print!("{}", tool::format_summary(&s));
            }
        }
        FleetCmd::Status {
            wait_ms,
            summary: false,
            mqtt,
            ..
        } => {
            let rows = rt.block_on(tool::fleet_status(
                &mqtt.broker(),
                std::time::Duration::from_millis(wait_ms.unwrap_or(1000)),
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
