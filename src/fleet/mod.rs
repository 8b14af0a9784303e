//! Remote configuration and commands from the fleet (issue 8, DESIGN §5; docs/fleet.md).
//!
//! The pure core is in [`envelope`] (signatures, documents, terminal and version checks),
//! [`pushable`] (the allow-list and merging an overlay into a validated `Config`) and
//! [`command`]. This module is the async shell the daemon runs: a [`FleetAgent`] task that
//! takes `cfg/desired` and `cmd` messages from the link, keeps the applied version, the last
//! known good overlay, handled messages and command results in SQLite (a command runs once, and
//! only while fresh: `posd_core::fleet::command::check_fresh`), hot-applies through an
//! [`ApplyConfig`] the daemon provides (rolling back when the health check fails), and
//! publishes `cfg/reported` (retained) and `cmd/result`.

pub mod pushable;
pub mod tool;

use crate::clock::now_ms;
use crate::config::Config;
use crate::link::Link;
use crate::store::Store;
use posd_core::fleet::command::{self, Command};
use posd_core::fleet::envelope::{self, EnvelopeError, FleetKeys};
use posd_core::protocol::limits::{
    InboundKind, RefusalBudget, FLEET_GENUINE_REFUSALS_PER_SECOND, FLEET_REFUSALS_PER_SECOND,
};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Hot-applies a new effective configuration; provided by the daemon.
pub trait ApplyConfig: Send + Sync + 'static {
    /// Puts `new` into force where that needs no restart (engine rules, log level).
    fn apply(&self, new: &Config) -> impl Future<Output = Result<(), String>> + Send;
    /// After `apply`: does the terminal still work with `new` (its devices open, ...)?
    /// A failure rolls back to the last known good configuration.
    fn health_check(&self, new: &Config) -> impl Future<Output = Result<(), String>> + Send;
}

/// Why a command failed: a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CmdFailure {
    pub code: &'static str,
    pub message: String,
}

/// Runs fleet commands; provided by the daemon.
pub trait RunCommand: Send + Sync + 'static {
    fn run(&self, cmd: &Command) -> impl Future<Output = Result<Value, CmdFailure>> + Send;
}

/// What `status` and `posctl status` show of the fleet configuration.
#[derive(Debug, Clone, Default)]
pub struct FleetSummary {
    /// The version of the push in force (None: the local file alone).
    pub config_version: Option<u64>,
    /// The last `cfg/reported` message.
    pub report: Option<Value>,
}

pub type FleetView = Arc<Mutex<FleetSummary>>;

fn view_get(view: &FleetView) -> FleetSummary {
    match view.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn view_set(view: &FleetView, s: FleetSummary) {
    match view.lock() {
        Ok(mut g) => *g = s,
        Err(p) => *p.into_inner() = s,
    }
}

/// The summary for the status document: `(config_version, config)`.
pub fn summary(view: &FleetView) -> FleetSummary {
    view_get(view)
}

/// The last known good push as stored: `{version, config}`.
fn parse_good(text: &str) -> Option<(u64, Map<String, Value>)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let version = v.get("version")?.as_u64()?;
    let config = v.get("config")?.as_object()?.clone();
    Some((version, config))
}

/// At start-up: the local file overlaid with the last applied push (if it still validates
/// against the local file), and the summary for `status`.
pub async fn startup(store: &Store, local: &Config) -> (Config, FleetView) {
    let rec = match store.call(|db| db.fleet_record()).await {
        Ok(r) => r,
        Err(e) => {
            log::error!("cannot read the fleet configuration record: {e}");
            Default::default()
        }
    };
    let mut cfg = local.clone();
    let mut summary = FleetSummary {
        config_version: None,
        report: rec
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
    };
    if let Some(text) = &rec.overlay {
        match parse_good(text) {
            Some((version, overlay)) => match pushable::merge(local, &overlay) {
                Ok(c) => {
                    cfg = c;
                    summary.config_version = Some(version);
                }
                Err(e) => log::error!(
                    "pushed config version {version} no longer validates against the local \
                     file ({e}): running on the local file alone"
                ),
            },
            None => log::error!("the stored pushed config is unreadable: ignored"),
        }
    }
    (cfg, Arc::new(Mutex::new(summary)))
}

/// A message for the agent.
#[derive(Debug)]
pub enum FleetMsg {
    Cfg(Vec<u8>),
    Cmd(Vec<u8>),
}

/// The shell around the fleet core.
pub struct FleetAgent<A, C> {
    pub store: Store,
    pub link: Link,
    pub terminal: String,
    /// The local file as loaded (what every overlay is merged onto).
    pub local: Config,
    /// The configuration in force.
    pub current: Config,
    pub keys: FleetKeys,
    pub applier: A,
    pub commands: C,
    pub view: FleetView,
}

/// How one `cfg/desired` message ended.
enum Outcome {
    Rejected {
        version: Option<u64>,
        key_id: Option<String>,
        code: &'static str,
        message: String,
    },
    Applied {
        version: u64,
        key_id: String,
        overlay: Map<String, Value>,
        new: Box<Config>,
        restart_required: bool,
    },
    RolledBack {
        version: u64,
        key_id: String,
        message: String,
    },
}

impl<A: ApplyConfig, C: RunCommand> FleetAgent<A, C> {
    /// Runs the agent until shutdown; messages go to the returned sender.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> mpsc::Sender<FleetMsg> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(self.run(rx, shutdown));
        tx
    }

    async fn run(mut self, mut rx: mpsc::Receiver<FleetMsg>, mut shutdown: watch::Receiver<bool>) {
        let mut seen_connects = 0u64;
        // The report the MQTT client last took, and the one whose failure was last logged.
        let mut published: Option<Value> = None;
        let mut warned: Option<Value> = None;
        // Messages refused cost a check, a record, a report or a warning each: after
        // `FLEET_REFUSALS_PER_SECOND` forgeries, or `FLEET_GENUINE_REFUSALS_PER_SECOND` signed
        // ones not applied or run, in a second, the rest are dropped unchecked.
        let mut forged = RefusalBudget::new(FLEET_REFUSALS_PER_SECOND);
        let mut genuine = RefusalBudget::new(FLEET_GENUINE_REFUSALS_PER_SECOND);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                msg = rx.recv() => {
                    let now = now_ms();
                    let spent = match msg {
                        None => return,
                        Some(m) if !(forged.allows(now) & genuine.allows(now)) => {
                            self.link.shared.fleet_unchecked(m.kind().as_str());
                            Spent::Nothing
                        }
                        Some(FleetMsg::Cfg(b)) => self.on_cfg(b).await,
                        Some(FleetMsg::Cmd(b)) => self.on_cmd(b).await,
                    };
                    match spent {
                        Spent::Forged => forged.spend(),
                        Spent::Genuine => genuine.spend(),
                        Spent::Nothing => {}
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            if !self.link.is_connected() {
                continue;
            }
            // After every (re)connect, publish the last report again: a broker without
            // persistence forgets retained messages.
            let connects = self.link.shared.connects.load(Ordering::Relaxed);
            if connects != seen_connects {
                seen_connects = connects;
                published = None;
            }
            // `cfg/reported` is coalesced: only the newest report matters (it is retained),
            // and it is published again every turn until the MQTT client takes it — a full
            // client queue after a long outage delays it, never loses it.
            let Some(r) = view_get(&self.view).report else {
                continue;
            };
            if published.as_ref() == Some(&r) {
                continue;
            }
            match self.link.publish_json("cfg/reported", true, &r) {
                Ok(()) => {
                    published = Some(r);
                    warned = None;
                }
                Err(e) if warned.as_ref() != Some(&r) => {
                    log::warn!("cfg/reported not published yet ({e}): retrying");
                    warned = Some(r);
                }
                Err(e) => log::debug!("cfg/reported not published yet: {e}"),
            }
        }
    }

    fn publish(&self, leaf: &str, retain: bool, v: &Value) {
        if let Err(e) = self.link.publish_json(leaf, retain, v) {
            log::warn!("{leaf} not published: {e}");
        }
    }

    /// Checks and applies one `cfg/desired` message (see the module docs); what its refusal
    /// spends, so neither forgeries nor replays of genuine old envelopes can make the terminal
    /// check, record and report at wire speed.
    pub async fn on_cfg(&mut self, bytes: Vec<u8>) -> Spent {
        let digest = envelope::digest(&bytes);
        let (d, raw) = (digest.clone(), envelope::raw_digest(&bytes));
        match self
            .store
            .call(move |db| Ok(db.fleet_seen(&d)? || db.fleet_seen(&raw)?))
            .await
        {
            Ok(true) => {
                log::debug!("cfg/desired {digest:.12} already handled");
                return Spent::Nothing;
            }
            Ok(false) => {}
            Err(e) => {
                log::error!("cfg/desired not handled, journal error: {e}");
                return Spent::Nothing;
            }
        }
        let last = match self.store.call(|db| db.fleet_record()).await {
            Ok(r) => r.version,
            Err(e) => {
                log::error!("cfg/desired not handled, journal error: {e}");
                return Spent::Nothing;
            }
        };
        let outcome = self.decide(&bytes, last).await;
        let spent = match &outcome {
            Outcome::Rejected { key_id: None, .. } => Spent::Forged,
            Outcome::Rejected { .. } => Spent::Genuine,
            _ => Spent::Nothing,
        };
        self.record(&digest, outcome).await;
        spent
    }

    async fn decide(&mut self, bytes: &[u8], last: u64) -> Outcome {
        let reject = |version, key_id, e: &dyn ErrorCode| Outcome::Rejected {
            version,
            key_id,
            code: e.code(),
            message: e.to_string(),
        };
        let verified = match envelope::open(bytes, &self.keys) {
            Ok(v) => v,
            Err(e) => return reject(None, None, &e),
        };
        let key = Some(verified.key_id.clone());
        let doc = match envelope::parse_document(&verified.payload) {
            Ok(d) => d,
            Err(e) => return reject(None, key, &e),
        };
        let version = Some(doc.version);
        if let Err(e) = envelope::check_terminal(&doc.terminal, &self.terminal)
            .and_then(|_| envelope::check_version(doc.version, last))
        {
            return reject(version, key, &e);
        }
        let new = match pushable::merge(&self.local, &doc.config) {
            Ok(c) => c,
            Err(e) => return reject(version, key, &e),
        };
        let restart_required = pushable::check_keys(&doc.config).unwrap_or(false)
            && (new.devices != self.current.devices);
        let result = match self.applier.apply(&new).await {
            Ok(()) => self.applier.health_check(&new).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Outcome::Applied {
                version: doc.version,
                key_id: verified.key_id,
                overlay: doc.config,
                new: Box::new(new),
                restart_required,
            },
            Err(message) => {
                if let Err(e) = self.applier.apply(&self.current).await {
                    log::error!("rolling back config version {}: {e}", doc.version);
                }
                Outcome::RolledBack {
                    version: doc.version,
                    key_id: verified.key_id,
                    message,
                }
            }
        }
    }

    async fn record(&mut self, digest: &str, outcome: Outcome) {
        let mut summary = view_get(&self.view);
        // Report times strictly increase, so every report is told apart from the one before.
        let prev = summary
            .report
            .as_ref()
            .and_then(|r| r.get("at"))
            .and_then(|a| a.as_u64())
            .unwrap_or(0);
        let now = now_ms().max(prev + 1);
        let (spent, good, report) = match outcome {
            Outcome::Rejected {
                version,
                key_id,
                code,
                message,
            } => {
                log::warn!("config push refused: {code}: {message}");
                let r = json!({
                    "terminal": self.terminal, "version": version, "state": "rejected",
                    "error": code, "message": message, "key_id": key_id,
                    "applied_version": summary.config_version, "at": now,
                });
                (None, None, r)
            }
            Outcome::Applied {
                version,
                key_id,
                overlay,
                new,
                restart_required,
            } => {
                log::info!("config version {version} applied (key {key_id})");
                self.current = *new;
                summary.config_version = Some(version);
                let good = json!({"version": version, "config": overlay}).to_string();
                let r = json!({
                    "terminal": self.terminal, "version": version, "state": "applied",
                    "key_id": key_id, "applied_version": version,
                    "restart_required": restart_required, "at": now,
                });
                (Some(version), Some(good), r)
            }
            Outcome::RolledBack {
                version,
                key_id,
                message,
            } => {
                log::error!("config version {version} failed its health check and was rolled back: {message}");
                let r = json!({
                    "terminal": self.terminal, "version": version, "state": "rolled_back",
                    "error": "health_check_failed", "message": message, "key_id": key_id,
                    "applied_version": summary.config_version, "at": now,
                });
                (Some(version), None, r)
            }
        };
        let text = report.to_string();
        let d = digest.to_string();
        if let Err(e) = self
            .store
            .call(move |db| db.fleet_outcome(&d, now, spent, good.as_deref(), &text))
            .await
        {
            log::error!("config outcome not recorded: {e}");
        }
        summary.report = Some(report);
        view_set(&self.view, summary);
        // Published by the agent's loop right after this message (and until the client
        // takes it).
        self.link.status_changed();
    }

    /// Verifies, de-duplicates, runs and answers one `cmd` message; what its refusal spends (a
    /// forgery, or a signed command no longer fresh; a repeat of one already run is answered
    /// from its record and spends nothing).
    pub async fn on_cmd(&mut self, bytes: Vec<u8>) -> Spent {
        let (key_id, cmd) = match command::verify_command(&bytes, &self.keys, &self.terminal) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("fleet command refused: {}: {e}", e.code());
                let r = json!({
                    "cmd_id": command::unverified_cmd_id(&bytes), "ok": false,
                    "error": e.code(), "message": e.to_string(), "at": now_ms(),
                });
                self.publish("cmd/result", false, &r);
                return Spent::Forged;
            }
        };
        let id = cmd.cmd_id.clone();
        match self.store.call(move |db| db.fleet_cmd(&id)).await {
            Ok(Some(stored)) => {
                let mut r: Value = serde_json::from_str(&stored).unwrap_or(Value::Null);
                if let Some(o) = r.as_object_mut() {
                    o.insert("duplicate".into(), Value::Bool(true));
                }
                log::info!(
                    "fleet command {} repeated: answered from the record",
                    cmd.cmd_id
                );
                self.publish("cmd/result", false, &r);
                return Spent::Nothing;
            }
            Ok(None) => {}
            Err(e) => {
                log::error!("fleet command {} not run, journal error: {e}", cmd.cmd_id);
                return Spent::Nothing;
            }
        }
        // Not seen before: does it run now? (fresh by the trusted clock, not before the oldest
        // record kept, within the records kept.)
        let now = now_ms();
        let f = &self.local.fleet;
        let (max_age_s, max_records) = (f.cmd_max_age_s, u64::from(f.cmd_records));
        let clock_trusted = crate::clock::trusted(
            self.local.offline.clock == crate::config::ClockTrust::Always,
            now,
        );
        let before = command::purge_before(now / 1000, max_age_s);
        let records = if clock_trusted {
            self.store.call(move |db| db.fleet_cmd_purge(before)).await
        } else {
            // Nothing is dropped on an untrusted clock's word; the command is refused below.
            Ok(crate::store::CmdRecords { floor: 0, live: 0 })
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                log::error!("fleet command {} not run, journal error: {e}", cmd.cmd_id);
                return Spent::Nothing;
            }
        };
        let fresh = command::Freshness {
            now: now / 1000,
            clock_trusted,
            max_age_s,
            floor: records.floor,
            live: records.live,
            max_records,
        };
        if let Err(e) = command::check_fresh(cmd.issued_at, &fresh) {
            log::warn!("fleet command {} refused: {}: {e}", cmd.cmd_id, e.code());
            let r = json!({
                "cmd_id": cmd.cmd_id, "op": cmd.op.as_str(), "ok": false, "error": e.code(),
                "message": e.to_string(), "key_id": key_id, "at": now,
            });
            self.publish("cmd/result", false, &r);
            return Spent::Genuine;
        }
        let r = match self.commands.run(&cmd).await {
            Ok(result) => json!({
                "cmd_id": cmd.cmd_id, "op": cmd.op.as_str(), "ok": true, "result": result,
                "key_id": key_id, "at": now,
            }),
            Err(f) => json!({
                "cmd_id": cmd.cmd_id, "op": cmd.op.as_str(), "ok": false, "error": f.code,
                "message": f.message, "key_id": key_id, "at": now,
            }),
        };
        let text = r.to_string();
        let id = cmd.cmd_id.clone();
        let issued_at = cmd.issued_at;
        if let Err(e) = self
            .store
            .call(move |db| db.fleet_cmd_done(&id, &text, now, issued_at))
            .await
        {
            log::error!("fleet command {} result not recorded: {e}", cmd.cmd_id);
        }
        self.publish("cmd/result", false, &r);
        Spent::Nothing
    }
}

/// What handling one fleet message spent of the refusal budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// Applied, run, already handled, or not handled for a journal error.
    Nothing,
    /// Its envelope or signature failed: an outsider's.
    Forged,
    /// Signed by a fleet key, and still not applied or run (stale, foreign, expired).
    Genuine,
}

impl FleetMsg {
    /// The kind of topic it came on.
    fn kind(&self) -> InboundKind {
        match self {
            FleetMsg::Cfg(_) => InboundKind::CfgDesired,
            FleetMsg::Cmd(_) => InboundKind::Cmd,
        }
    }
}

/// Errors with a stable code, for reports.
trait ErrorCode: std::fmt::Display {
    fn code(&self) -> &'static str;
}
impl ErrorCode for EnvelopeError {
    fn code(&self) -> &'static str {
        EnvelopeError::code(self)
    }
}
impl ErrorCode for pushable::PushError {
    fn code(&self) -> &'static str {
        pushable::PushError::code(self)
    }
}
