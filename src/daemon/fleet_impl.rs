//! The daemon's side of the fleet agent's traits: hot-applying a pushed configuration to the
//! engine and running signed commands with the daemon's own handles. They live with the daemon
//! because they reach into the engine, the printer and the link; the agent only knows the traits.

use crate::clock::now_ms;
use crate::config::Config;
use crate::engine::{EngineMsg, OfflineRuntime};
use crate::fleet::{ApplyConfig, CmdFailure, FleetView, RunCommand};
use crate::link::Link;
use crate::store::Store;
use posd_core::fleet::command::{Command, Op};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// The daemon's [`ApplyConfig`]: engine rules through `EngineMsg::Reconfigure`, the log level,
/// and a health check that the configured devices open.
pub struct EngineApplier {
    pub engine: mpsc::Sender<EngineMsg>,
    /// The journal, which stamps print jobs with the shop's language when they are owed.
    pub store: Store,
    /// The clock's trust mode while offline codes are enabled (None: disabled), as the
    /// cashier's "clock not trusted" alert reads it: the `[offline]` in force.
    pub offline_clock: tokio::sync::watch::Sender<Option<crate::config::ClockTrust>>,
}

impl ApplyConfig for EngineApplier {
    async fn apply(&self, new: &Config) -> Result<(), String> {
        let patterns =
            posd_core::codes::Patterns::new(new.codes.clone()).map_err(|e| e.to_string())?;
        let offline = OfflineRuntime::from_config(&new.offline, new.terminal.currency)
            .map_err(|e| e.to_string())?;
        let (reply, done) = oneshot::channel();
        self.engine
            .send(EngineMsg::Reconfigure {
                rules: Box::new(crate::engine::EngineRules {
                    policy: new.online.policy(),
                    max_amount: new.limits.max_sale_amount,
                    patterns,
                    offline,
                    merchant_qr: crate::engine::MerchantQrRuntime {
                        platform: new.merchant_qr.mode == crate::config::MerchantQrMode::Platform,
                        merchant: new.merchant_qr.merchant.clone(),
                        print: new.merchant_qr.print,
                        policy: new.merchant_qr.policy(&new.online),
                    },
                    saf: new.card.store_and_forward,
                }),
                reply,
            })
            .await
            .map_err(|_| "the engine is stopping".to_string())?;
        done.await
            .map_err(|_| "the engine is stopping".to_string())?;
        crate::logging::init(&new.logging.level);
        crate::lang::set(new.terminal.language);
        let language = new.terminal.language;
        let _ = self
            .store
            .call(move |db| {
                db.set_receipt_language(language);
                Ok(())
            })
            .await;
        self.offline_clock
            .send_replace(new.offline.enabled.then_some(new.offline.clock));
        Ok(())
    }

    async fn health_check(&self, new: &Config) -> Result<(), String> {
        if let Some(cam) = &new.devices.camera {
            probe_camera(&cam.device)?;
        }
        Ok(())
    }
}

/// The camera device must exist and open (an index `N` means `/dev/videoN`).
pub fn probe_camera(device: &str) -> Result<(), String> {
    let path = if !device.is_empty() && device.bytes().all(|b| b.is_ascii_digit()) {
        format!("/dev/video{device}")
    } else {
        device.to_string()
    };
    std::fs::File::open(&path)
        .map(|_| ())
        .map_err(|e| format!("camera {path} does not open: {e}"))
}

/// The daemon's [`RunCommand`].
pub struct DaemonCommands {
    pub link: Link,
    pub store: Store,
    pub view: FleetView,
    /// Reprints, when a printer is configured.
    pub printer: Option<crate::printq::PrintHandle>,
    /// Batch close runs in the engine, like one from the till.
    pub engine: tokio::sync::mpsc::Sender<crate::engine::EngineMsg>,
}

impl RunCommand for DaemonCommands {
    async fn run(&self, cmd: &Command) -> Result<Value, CmdFailure> {
        match cmd.op {
            Op::Ping => Ok(json!({
                "pong": true,
                "version": crate::clock::VERSION,
                "config_version": crate::fleet::summary(&self.view).config_version,
                "online": self.link.is_connected(),
            })),
            Op::SyncNow => {
                self.link.kick();
                self.link.status_changed();
                let q = self.store.queue_stats(now_ms());
                Ok(json!({"pending": q.pending, "oldest_age_s": q.oldest_age_s}))
            }
            Op::Reprint => {
                let txn_id = cmd.args.get("txn_id").and_then(Value::as_str);
                let batch = cmd.args.get("batch").and_then(Value::as_u64);
                let target = match (txn_id, batch) {
                    (Some(t), None) => crate::printq::Target::Txn(Some(t.to_string())),
                    (None, Some(b)) => crate::printq::Target::Batch(b),
                    _ => {
                        return Err(CmdFailure {
                            code: "bad_args",
                            message: "reprint needs args.txn_id or args.batch".into(),
                        })
                    }
                };
                let Some(printer) = &self.printer else {
                    return Err(CmdFailure {
                        code: "no_printer",
                        message: "no printer is configured ([devices.printer])".into(),
                    });
                };
                match printer.reprint_target(target).await {
                    Ok(q) => Ok(json!({
                        "job": q.job,
                        "txn_id": q.txn_id,
                        "kind": q.kind,
                        "already_queued": q.already_queued,
                    })),
                    Err(e) => Err(CmdFailure {
                        code: match e {
                            crate::printq::ReprintError::NotFound => "unknown_txn",
                            ref other => other.code(),
                        },
                        message: e.to_string(),
                    }),
                }
            }
            Op::BatchClose => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                let stopping = || CmdFailure {
                    code: "stopping",
                    message: "the daemon is stopping".into(),
                };
                self.engine
                    .send(crate::engine::EngineMsg::BatchClose { reply })
                    .await
                    .map_err(|_| stopping())?;
                match rx.await.map_err(|_| stopping())? {
                    Ok(b) => Ok(json!({
                        "txn_id": b.txn_id,
                        "seq": b.seq,
                        "batch_no": b.report.batch_no,
                        "net_total": b.report.net_total,
                        "currency": b.report.currency,
                    })),
                    Err(e) => Err(CmdFailure {
                        code: e.code(),
                        message: e.to_string(),
                    }),
                }
            }
        }
    }
}
