//! The fleet manager's side, behind `posctl fleet`: key files, signing and publishing pushes
//! and commands, and the fleet status table from the retained `status` and `cfg/reported`, or
//! its summary for fleets of thousands.

use super::envelope::{self, ConfigDocument};
use crate::config::TlsConfig;
use crate::link::{install_crypto_provider, mqtt_options};
use ed25519_dalek::SigningKey;
use posd_core::protocol::{all_cfg_desired, split_topic, Topics};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Bad(String),
    #[error("MQTT: {0}")]
    Mqtt(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A fleet signing key file (JSON, mode 0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub id: String,
    /// The 32-byte Ed25519 seed, hex.
    pub private_key: String,
    /// The public key, hex: what goes into the terminals' `[fleet] keys`.
    pub public_key: String,
}

impl KeyFile {
    pub fn generate(id: &str) -> KeyFile {
        KeyFile::from_key(id, &envelope::generate_key())
    }

    pub fn from_key(id: &str, key: &SigningKey) -> KeyFile {
        KeyFile {
            id: id.to_string(),
            private_key: hex::encode(key.to_bytes()),
            public_key: hex::encode(key.verifying_key().to_bytes()),
        }
    }

    pub fn signing_key(&self) -> Result<SigningKey, ToolError> {
        let bytes: [u8; 32] = hex::decode(self.private_key.trim())
            .ok()
            .and_then(|b| b.as_slice().try_into().ok())
            .ok_or_else(|| ToolError::Bad("private_key is not 64 hex digits".into()))?;
        Ok(SigningKey::from_bytes(&bytes))
    }

    /// The `[fleet] keys` entry for terminals.
    pub fn toml_entry(&self) -> String {
        format!(
            "keys = [{{ id = \"{}\", public_key = \"{}\" }}]",
            self.id, self.public_key
        )
    }

    pub fn write(&self, path: &Path) -> Result<(), ToolError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let file_err = |e: std::io::Error| ToolError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(file_err)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| ToolError::Bad(e.to_string()))?;
        f.write_all(text.as_bytes()).map_err(file_err)?;
        f.write_all(b"\n").map_err(file_err)
    }

    pub fn read(path: &Path) -> Result<KeyFile, ToolError> {
        let text = std::fs::read_to_string(path).map_err(|e| ToolError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| ToolError::File {
            path: path.display().to_string(),
            message: format!("not a fleet key file: {e}"),
        })
    }
}

/// Reads an overlay: JSON (`.json`) or TOML (anything else), shaped like posd.toml.
pub fn read_overlay(path: &Path) -> Result<Map<String, Value>, ToolError> {
    let bad = |message: String| ToolError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let v: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?
    } else {
        let t: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        serde_json::to_value(t).map_err(|e| bad(e.to_string()))?
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(bad("the overlay must be an object".into())),
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a push is checked against before it is signed: a terminal's own `posd.toml` (`base`),
/// or a minimal one for `terminal` (the shipped defaults).
pub fn push_base(base: Option<&Path>, terminal: &str) -> Result<crate::config::Config, ToolError> {
    match base {
        // Parsed and validated, but its files (TLS, socket) are the terminal's, not here.
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| crate::config::Config::from_toml(&t).map_err(|e| e.to_string()))
            .map_err(|message| ToolError::File {
                path: path.display().to_string(),
                message,
            }),
        None => {
            let id = if terminal == "*" || terminal.is_empty() {
                "fleet-check"
            } else {
                terminal
            };
            crate::config::Config::from_toml(&format!("[terminal]\nid = {id:?}\n"))
                .map_err(|e| ToolError::Bad(e.to_string()))
        }
    }
}

/// The terminal's own checks of a push, run before signing: every key on the allow-list, the
/// merged result valid under the local file's schema. Returns whether a restart is needed.
pub fn check_push(
    base: &crate::config::Config,
    overlay: &Map<String, Value>,
) -> Result<bool, crate::fleet::pushable::PushError> {
    let restart = crate::fleet::pushable::check_keys(overlay)?;
    crate::fleet::pushable::merge(base, overlay)?;
    Ok(restart)
}

/// A signed `cfg/desired` envelope.
pub fn sign_config(
    key: &KeyFile,
    terminal: &str,
    version: u64,
    config: Map<String, Value>,
) -> Result<Vec<u8>, ToolError> {
    let doc = ConfigDocument {
        version,
        issued_at: unix_now(),
        terminal: terminal.to_string(),
        config,
    };
    let payload = serde_json::to_vec(&doc).map_err(|e| ToolError::Bad(e.to_string()))?;
    let env = envelope::seal(&payload, &key.id, &key.signing_key()?);
    serde_json::to_vec(&env).map_err(|e| ToolError::Bad(e.to_string()))
}

/// A signed `cmd` envelope, issued now.
pub fn sign_command(
    key: &KeyFile,
    terminal: &str,
    cmd_id: &str,
    op: super::command::Op,
    args: Value,
) -> Result<Vec<u8>, ToolError> {
    sign_command_at(key, terminal, cmd_id, op, args, unix_now())
}

/// A signed `cmd` envelope with the given `issued_at` (unix seconds).
pub fn sign_command_at(
    key: &KeyFile,
    terminal: &str,
    cmd_id: &str,
    op: super::command::Op,
    args: Value,
    issued_at: u64,
) -> Result<Vec<u8>, ToolError> {
    let cmd = super::command::Command {
        cmd_id: cmd_id.to_string(),
        op,
        args,
        terminal: terminal.to_string(),
        issued_at,
    };
    let payload = serde_json::to_vec(&cmd).map_err(|e| ToolError::Bad(e.to_string()))?;
    let env = envelope::seal(&payload, &key.id, &key.signing_key()?);
    serde_json::to_vec(&env).map_err(|e| ToolError::Bad(e.to_string()))
}

/// Where the fleet tool connects.
#[derive(Debug, Clone)]
pub struct Broker {
    pub url: String,
    pub prefix: String,
    pub client_id: String,
    pub tls: Option<TlsConfig>,
}

impl Broker {
    /// The topic of a push to `terminal` (`*` = every terminal: `{prefix}/all/cfg/desired`).
    pub fn cfg_topic(&self, terminal: &str) -> String {
        if terminal == "*" {
            all_cfg_desired(&self.prefix)
        } else {
            Topics::new(&self.prefix, terminal).cfg_desired()
        }
    }

    fn client(&self) -> Result<(AsyncClient, rumqttc::EventLoop), ToolError> {
        install_crypto_provider();
        let o = mqtt_options(&self.client_id, &self.url, self.tls.as_ref(), 30)
            .map_err(|e| ToolError::Mqtt(e.to_string()))?;
        Ok(AsyncClient::new(o, 64))
    }
}

/// Subscribes to `subs` (if any), publishes `publish` (if any) once subscribed, and hands every
/// incoming message to `on_msg` until it returns true (or `wait` passes: `Timeout`, unless
/// `until_timeout`, in which case the end of `wait` is the normal end).
async fn session(
    broker: &Broker,
    subs: &[String],
    publish: Option<(String, Vec<u8>, bool)>,
    wait: Duration,
    until_timeout: bool,
    mut on_msg: impl FnMut(&str, &[u8]) -> bool,
) -> Result<(), ToolError> {
    let (client, mut ev) = broker.client()?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut pending_subs = subs.len();
    let mut publish = publish;
    let mut published = false;
    loop {
        let e = tokio::select! {
            e = ev.poll() => e,
            _ = tokio::time::sleep_until(deadline) => {
                return if until_timeout { Ok(()) } else { Err(ToolError::Timeout(wait)) };
            }
        };
        match e.map_err(|e| ToolError::Mqtt(e.to_string()))? {
            Event::Incoming(Packet::ConnAck(_)) => {
                for s in subs {
                    client
                        .subscribe(s.clone(), QoS::AtLeastOnce)
                        .await
                        .map_err(|e| ToolError::Mqtt(e.to_string()))?;
                }
            }
            Event::Incoming(Packet::SubAck(_)) => pending_subs = pending_subs.saturating_sub(1),
            Event::Incoming(Packet::PubAck(_)) if published && subs.is_empty() => {
                let _ = client.disconnect().await;
                return Ok(());
            }
            Event::Incoming(Packet::Publish(p)) if on_msg(&p.topic, &p.payload) => {
                let _ = client.disconnect().await;
                return Ok(());
            }
            _ => {}
        }
        if pending_subs == 0 && !published {
            if let Some((topic, payload, retain)) = publish.take() {
                client
                    .publish(topic, QoS::AtLeastOnce, retain, payload)
                    .await
                    .map_err(|e| ToolError::Mqtt(e.to_string()))?;
                published = true;
            } else if subs.is_empty() {
                return Ok(());
            }
        }
    }
}

/// Publishes one message (QoS 1) and waits for the broker's PUBACK.
pub async fn publish(
    broker: &Broker,
    topic: &str,
    payload: Vec<u8>,
    retain: bool,
) -> Result<(), ToolError> {
    session(
        broker,
        &[],
        Some((topic.to_string(), payload, retain)),
        Duration::from_secs(15),
        false,
        |_, _| false,
    )
    .await
}

/// The retained message on `topic`, if the broker holds one (waits at most `wait`).
pub async fn retained(
    broker: &Broker,
    topic: &str,
    wait: Duration,
) -> Result<Option<Vec<u8>>, ToolError> {
    let mut got = None;
    session(
        broker,
        &[topic.to_string()],
        None,
        wait,
        true,
        |_, payload| {
            got = Some(payload.to_vec());
            true
        },
    )
    .await?;
    Ok(got)
}

/// Publishes a push (retained) to one terminal and waits for its `cfg/reported` about
/// `version` (applied, rejected, rolled back): the terminal's verdict.
pub async fn push_and_wait(
    broker: &Broker,
    terminal: &str,
    envelope: Vec<u8>,
    version: u64,
    wait: Duration,
) -> Result<Value, ToolError> {
    let topics = Topics::new(&broker.prefix, terminal);
    let mut answer = None;
    session(
        broker,
        &[topics.cfg_reported()],
        Some((topics.cfg_desired(), envelope, true)),
        wait,
        false,
        |_, payload| {
            let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
            if v["version"].as_u64() == Some(version) {
                answer = Some(v);
                true
            } else {
                false
            }
        },
    )
    .await?;
    answer.ok_or(ToolError::Timeout(wait))
}

/// The version inside a retained `cfg/desired` envelope (read, not verified: the terminal
/// verifies; this only shows what is waiting for it).
fn desired_version(payload: &[u8]) -> Option<u64> {
    use base64::Engine as _;
    let env: Value = serde_json::from_slice(payload).ok()?;
    let doc = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str()?.trim())
        .ok()?;
    serde_json::from_slice::<Value>(&doc).ok()?["version"].as_u64()
}

/// Sends a signed command to one terminal and waits for its `cmd/result`.
pub async fn command(
    broker: &Broker,
    terminal: &str,
    cmd_id: &str,
    envelope: Vec<u8>,
    wait: Duration,
) -> Result<Value, ToolError> {
    let topics = Topics::new(&broker.prefix, terminal);
    let mut answer = None;
    session(
        broker,
        &[topics.cmd_result()],
        Some((topics.cmd(), envelope, false)),
        wait,
        false,
        |_, payload| {
            let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
            if v["cmd_id"] == cmd_id {
                answer = Some(v);
                true
            } else {
                false
            }
        },
    )
    .await?;
    answer.ok_or(ToolError::Timeout(wait))
}

/// One terminal in `posctl fleet status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TerminalRow {
    pub terminal: String,
    pub online: Option<bool>,
    pub version: Option<String>,
    pub config_version: Option<u64>,
    /// The version of the push retained for it (its own, else the fleet-wide one).
    pub desired_version: Option<u64>,
    pub config_state: Option<String>,
    pub config_error: Option<String>,
    pub pending: Option<u64>,
    pub oldest_age_s: Option<u64>,
}

/// Collects the retained `+/status` and `+/cfg/reported` for `wait` and builds the table.
pub async fn fleet_status(broker: &Broker, wait: Duration) -> Result<Vec<TerminalRow>, ToolError> {
    let prefix = broker.prefix.trim_end_matches('/').to_string();
    // `+`: every terminal, an MQTT wildcard in the terminal's place.
    let every = Topics::new(&prefix, "+");
    let mut rows: BTreeMap<String, TerminalRow> = BTreeMap::new();
    let all_desired_topic = all_cfg_desired(&prefix);
    let mut all_desired = None;
    session(
        broker,
        &[
            every.status(),
            every.cfg_reported(),
            every.cfg_desired(),
            all_desired_topic.clone(),
        ],
        None,
        wait,
        true,
        |topic, payload| {
            if topic == all_desired_topic {
                all_desired = desired_version(payload);
                return false;
            }
            let Some((terminal, leaf)) = split_topic(&prefix, topic) else {
                return false;
            };
            if leaf == "cfg/desired" {
                let row = rows.entry(terminal.to_string()).or_default();
                row.terminal = terminal.to_string();
                row.desired_version = desired_version(payload);
                return false;
            }
            let Ok(v) = serde_json::from_slice::<Value>(payload) else {
                return false;
            };
            let row = rows.entry(terminal.to_string()).or_default();
            row.terminal = terminal.to_string();
            if leaf == "status" {
                row.online = v["online"].as_bool();
                row.version = v["version"]
                    .as_str()
                    .map(str::to_string)
                    .or(row.version.take());
                row.config_version = v["config_version"].as_u64().or(row.config_version);
                row.pending = v["queue"]["pending"].as_u64();
                row.oldest_age_s = v["queue"]["oldest_age_s"].as_u64();
            } else if leaf == "cfg/reported" {
                row.config_state = v["state"].as_str().map(str::to_string);
                row.config_error = v["error"].as_str().map(str::to_string);
                if let Some(a) = v["applied_version"].as_u64() {
                    row.config_version = Some(a);
                }
            }
            false
        },
    )
    .await?;
    for r in rows.values_mut() {
        r.desired_version = r.desired_version.or(all_desired);
    }
    Ok(rows.into_values().collect())
}

/// The table as text: desired (the retained push) against applied (what the terminal runs).
pub fn format_table(rows: &[TerminalRow]) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut out = format!(
        "{:<20} {:<7} {:<10} {:<8} {:<8} {:<24} {:>7} {:>10}\n",
        "TERMINAL", "ONLINE", "SOFTWARE", "DESIRED", "APPLIED", "CONFIG STATE", "QUEUE", "OLDEST S"
    );
    for r in rows {
        let state = match (&r.config_state, &r.config_error) {
            (Some(s), Some(e)) => format!("{s} ({e})"),
            (Some(s), None) => s.clone(),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<20} {:<7} {:<10} {:<8} {:<8} {:<24} {:>7} {:>10}\n",
            r.terminal,
            opt(r.online.map(|o| if o { "yes" } else { "no" }.to_string())),
            opt(r.version.clone()),
            opt(r.desired_version.map(|v| v.to_string())),
            opt(r.config_version.map(|v| v.to_string())),
            state,
            opt(r.pending.map(|v| v.to_string())),
            opt(r.oldest_age_s.map(|v| v.to_string())),
        ));
    }
    out
}

/// The JSON form of the table.
pub fn table_json(rows: &[TerminalRow]) -> Value {
    json!(rows)
}

/// The fleet at a glance (`posctl fleet status --summary`), from the retained `+/status`
/// alone. Built for tens of thousands of terminals: each message is folded into a few numbers
/// per terminal as it arrives (the payloads are not kept), and collection ends once the broker
/// has been quiet for a moment after the subscription (docs/fleet-sizing.md has the timing).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetSummary {
    /// Terminals with a retained status.
    pub terminals: u64,
    pub online: u64,
    pub offline: u64,
    /// Events waiting in the terminals' outboxes, all together.
    pub pending_total: u64,
    /// Terminals with something unsynced.
    pub terminals_pending: u64,
    /// The terminal whose oldest unsynced event is the oldest.
    pub oldest_unsynced: Option<OldestQueue>,
    /// Fleet push in force → terminals ("none": the local file alone).
    pub config_versions: BTreeMap<String, u64>,
    /// Terminals with a device in `error` or configured but `absent`.
    pub terminals_with_faults: u64,
    /// "device: state" (error, absent) → terminals.
    pub faults: BTreeMap<String, u64>,
    /// The first terminals with a fault (at most [`FAULT_EXAMPLES`]), by id.
    pub fault_examples: Vec<String>,
    /// Messages that were not a status document.
    pub unreadable: u64,
    /// How long the collection took, ms.
    pub collect_ms: u64,
}

/// The oldest unsynced queue of the fleet.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OldestQueue {
    pub terminal: String,
    pub oldest_age_s: u64,
    pub pending: u64,
}

/// How many terminals with a fault the summary names.
pub const FAULT_EXAMPLES: usize = 10;

/// What the summary keeps of one terminal's latest status: a few numbers, not the payload.
#[derive(Debug, Clone, Default)]
struct Folded {
    online: bool,
    config_version: Option<u64>,
    pending: u64,
    oldest_age_s: u64,
    /// Indexes into the fault names seen.
    faults: Vec<u16>,
}

/// Only the fields the summary reads; the rest of a status document is skipped unparsed.
#[derive(Deserialize)]
struct StatusFields {
    #[serde(default)]
    online: bool,
    #[serde(default)]
    config_version: Option<u64>,
    #[serde(default)]
    queue: Option<QueueFields>,
    #[serde(default)]
    devices: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct QueueFields {
    #[serde(default)]
    pending: u64,
    #[serde(default)]
    oldest_age_s: u64,
}

/// A device state that is a fault: `error: ...` or `absent: ...` (`ok`, `disabled` are not).
fn fault_kind(state: &str) -> Option<&'static str> {
    let head = state.split(':').next().unwrap_or("").trim();
    match head {
        "error" => Some("error"),
        "absent" => Some("absent"),
        _ => None,
    }
}

/// Folds a stream of retained `status` messages into the summary.
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    terminals: std::collections::HashMap<String, Folded>,
    fault_names: Vec<String>,
    unreadable: u64,
}

impl SummaryBuilder {
    /// One `status` message of `terminal`; a later one replaces an earlier one.
    pub fn add(&mut self, terminal: &str, payload: &[u8]) {
        let Ok(s) = serde_json::from_slice::<StatusFields>(payload) else {
            self.unreadable += 1;
            return;
        };
        let mut faults = Vec::new();
        for (device, state) in &s.devices {
            if let Some(kind) = fault_kind(state) {
                let name = format!("{device}: {kind}");
                let i = match self.fault_names.iter().position(|n| *n == name) {
                    Some(i) => i,
                    None => {
                        self.fault_names.push(name);
                        self.fault_names.len() - 1
                    }
                };
                faults.push(u16::try_from(i).unwrap_or(u16::MAX));
            }
        }
        let q = s.queue.unwrap_or(QueueFields {
            pending: 0,
            oldest_age_s: 0,
        });
        let folded = Folded {
            online: s.online,
            config_version: s.config_version,
            pending: q.pending,
            oldest_age_s: q.oldest_age_s,
            faults,
        };
        match self.terminals.get_mut(terminal) {
            Some(f) => *f = folded,
            None => {
                self.terminals.insert(terminal.to_string(), folded);
            }
        }
    }

    pub fn finish(self, collect_ms: u64) -> FleetSummary {
        let mut s = FleetSummary {
            terminals: self.terminals.len() as u64,
            unreadable: self.unreadable,
            collect_ms,
            ..FleetSummary::default()
        };
        let mut examples: Vec<&String> = Vec::new();
        for (id, f) in &self.terminals {
            if f.online {
                s.online += 1;
            } else {
                s.offline += 1;
            }
            s.pending_total += f.pending;
            if f.pending > 0 {
                s.terminals_pending += 1;
                // The oldest wins; a tie goes to the smaller id (the same answer every run).
                let older = match &s.oldest_unsynced {
                    None => true,
                    Some(o) => {
                        f.oldest_age_s > o.oldest_age_s
                            || (f.oldest_age_s == o.oldest_age_s && id < &o.terminal)
                    }
                };
                if older {
                    s.oldest_unsynced = Some(OldestQueue {
                        terminal: id.clone(),
                        oldest_age_s: f.oldest_age_s,
                        pending: f.pending,
                    });
                }
            }
            let v = f
                .config_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "none".into());
            *s.config_versions.entry(v).or_default() += 1;
            if !f.faults.is_empty() {
                s.terminals_with_faults += 1;
                examples.push(id);
                for i in &f.faults {
                    if let Some(n) = self.fault_names.get(usize::from(*i)) {
                        *s.faults.entry(n.clone()).or_default() += 1;
                    }
                }
            }
        }
        examples.sort();
        s.fault_examples = examples.into_iter().take(FAULT_EXAMPLES).cloned().collect();
        s
    }
}

/// Collects every retained `+/status` and summarises it. Collection ends when nothing arrived
/// for `quiet` after the subscription was granted, or at `wait`, whichever comes first.
pub async fn fleet_summary(
    broker: &Broker,
    wait: Duration,
    quiet: Duration,
) -> Result<FleetSummary, ToolError> {
    let prefix = broker.prefix.trim_end_matches('/').to_string();
    let started = tokio::time::Instant::now();
    let deadline = started + wait;
    let (client, mut ev) = broker.client()?;
    let mut b = SummaryBuilder::default();
    let mut subscribed = false;
    let mut last = started;
    loop {
        let until = if subscribed {
            (last + quiet).min(deadline)
        } else {
            deadline
        };
        let e = tokio::select! {
            e = ev.poll() => e,
            _ = tokio::time::sleep_until(until) => break,
        };
        match e.map_err(|e| ToolError::Mqtt(e.to_string()))? {
            Event::Incoming(Packet::ConnAck(_)) => {
                // `+`: every terminal, an MQTT wildcard in the terminal's place.
                client
                    .subscribe(Topics::new(&prefix, "+").status(), QoS::AtLeastOnce)
                    .await
                    .map_err(|e| ToolError::Mqtt(e.to_string()))?;
            }
            Event::Incoming(Packet::SubAck(_)) => {
                subscribed = true;
                last = tokio::time::Instant::now();
            }
            Event::Incoming(Packet::Publish(p)) => {
                last = tokio::time::Instant::now();
                if let Some((terminal, "status")) = split_topic(&prefix, &p.topic) {
                    b.add(terminal, &p.payload);
                }
            }
            _ => {}
        }
    }
    let _ = client.disconnect().await;
    Ok(b.finish(started.elapsed().as_millis() as u64))
}

/// The summary for people.
pub fn format_summary(s: &FleetSummary) -> String {
    let mut out = format!(
        "terminals: {} ({} online, {} offline)\n",
        s.terminals, s.online, s.offline
    );
    match &s.oldest_unsynced {
        Some(o) => out.push_str(&format!(
            "unsynced: {} events on {} terminals; the oldest waits {} s on {} ({} pending)\n",
            s.pending_total, s.terminals_pending, o.oldest_age_s, o.terminal, o.pending
        )),
        None => out.push_str("unsynced: none\n"),
    }
    let versions: Vec<String> = s
        .config_versions
        .iter()
        .map(|(v, n)| format!("{v}: {n}"))
        .collect();
    out.push_str(&format!("config versions: {}\n", versions.join(", ")));
    if s.terminals_with_faults == 0 {
        out.push_str("device faults: none\n");
    } else {
        let kinds: Vec<String> = s.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out.push_str(&format!(
            "device faults on {} terminals ({}), e.g. {}\n",
            s.terminals_with_faults,
            kinds.join(", "),
            s.fault_examples.join(", ")
        ));
    }
    if s.unreadable > 0 {
        out.push_str(&format!(
            "{} status messages were not readable\n",
            s.unreadable
        ));
    }
    out.push_str(&format!("collected in {} ms\n", s.collect_ms));
    out
}
