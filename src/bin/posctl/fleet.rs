//! `posctl fleet`: the fleet manager's tools (docs/fleet.md) — signing keys, signed config
//! pushes and commands, and the fleet's status from the retained topics.

use crate::out::Failure;
use anyhow::Context;
use posd::cli::posctl::{FleetBroker, FleetCmd};
use serde_json::Value;
use std::process::ExitCode;

/// The broker options as the fleet tool takes them.
fn broker(b: &FleetBroker) -> posd::fleet::tool::Broker {
    posd::fleet::tool::Broker {
        url: b.broker.clone(),
        prefix: b.prefix.clone(),
        client_id: b
            .client_id
            .clone()
            .unwrap_or_else(|| format!("posctl-fleet-{}", std::process::id())),
        tls: match (&b.tls_ca, &b.tls_cert, &b.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(posd::config::TlsConfig {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
    }
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
            let b = broker(&mqtt);
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
                &broker(&mqtt),
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
                &broker(&mqtt),
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
                &broker(&mqtt),
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
