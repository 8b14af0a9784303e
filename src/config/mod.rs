//! The daemon's configuration: `/etc/posd/posd.toml`, parsed strictly.
//!
//! Unknown keys are errors and `posd check-config` must print *every* problem with its key path,
//! so each section is deserialized on its own (one type error per section at most), unknown keys
//! are collected with `serde_ignored`, and the semantic checks run on what did parse.
//! It owns the whole file's schema (the device sections are in [`devices`]) and imports
//! nothing of the product but the core.

pub mod devices;

use posd_core::money::Currency;
use posd_core::protocol::signed::HostKeys;
pub use posd_core::protocol::{parse_broker_url, BrokerAddr};
use posd_core::txn::OnlinePolicy;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a configuration file, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The I/O error is said in the message, not chained again as a source (said once).
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TerminalConfig {
    /// Terminal id: the MQTT client id and topic segment. Letters, digits, '-', '_' only.
    pub id: String,
    /// Default currency of sales.
    pub currency: Currency,
    /// Where the journal (SQLite) lives.
    pub state_dir: PathBuf,
    /// The shop's language: every word a cashier, a customer or a receipt reader sees
    /// (`en`, `zh-CN`, `es`; docs/languages.md). Pushable; applied without a restart.
    pub language: posd_core::i18n::Language,
    /// The shop's time zone, an IANA name (`Asia/Shanghai`, `Europe/Madrid`): the times on
    /// receipts and the Z report, the Z report's business day, "today" for the per-user
    /// offline limit, card expiry. Daylight saving follows the tz database. Default: UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Deprecated: the shop's fixed offset from UTC in seconds (28800 for China), no daylight
    /// saving. Used only when `time_zone` is not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utc_offset_s: Option<i32>,
}

fn default_currency() -> Currency {
    Currency::from_code("CNY").unwrap_or_else(|_| unreachable!("CNY is in the table"))
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/posd")
}

impl Default for TerminalConfig {
    fn default() -> Self {
        TerminalConfig {
            id: String::new(),
            currency: default_currency(),
            state_dir: default_state_dir(),
            language: posd_core::i18n::Language::En,
            time_zone: None,
            utc_offset_s: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsConfig {
    /// CA certificate (PEM) that signed the broker's certificate.
    pub ca: PathBuf,
    /// This terminal's client certificate (PEM, X.509 v3).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerConfig {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS, needs [broker.tls]).
    pub url: String,
    /// The MQTT version: `"5"` (default: the broker learns the Maximum Packet Size and drops
    /// what the terminal cannot take) or `"3.1.1"` (for a broker without MQTT 5, such as the
    /// demo's embedded one; then only the broker's own size limit keeps big messages away).
    pub protocol: MqttProtocol,
    pub prefix: String,
    pub keep_alive_s: u64,
    /// Events published but not yet acknowledged by the host, at most.
    pub inflight_window: u32,
    /// Payload bytes of events published but not yet acknowledged, at most (one event may pass
    /// it). It bounds the queue a backlog makes on a slow uplink ahead of the keep-alive and of
    /// a live sale's request: 128 KiB is 1 s of a 1 Mbit/s uplink (docs/broker.md "Slow links").
    pub inflight_bytes: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// How often the retained status is refreshed.
    pub status_interval_s: u64,
    /// Publish unacknowledged events again when the host has acknowledged nothing this long.
    pub ack_timeout_s: u64,
    /// Connected, but the host owes an answer (to a request or an event) and has said nothing
    /// at all for this long: the link is taken as down and online codes are refused at once
    /// (docs/payments.md, "The link's state"). 0: only a lost connection counts.
    pub host_silence_s: u64,
    /// Lab only: accept `resp`, `notify` and `ack` messages that are not signed envelopes.
    /// Off by default; `status` says when it is on. Never pushable.
    pub lab_accept_unsigned: bool,
    pub tls: Option<TlsConfig>,
    /// Trust anchors: the payment host's Ed25519 keys whose signatures on `resp`, `notify` and
    /// `ack` this terminal accepts (DESIGN §4 "Signed host messages"); at most two, for
    /// rotation. Never pushable.
    pub host_keys: Vec<posd_core::protocol::signed::HostKeyConfig>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: "mqtt://127.0.0.1:1883".into(),
            protocol: MqttProtocol::V5,
            prefix: "pos/v1".into(),
            keep_alive_s: 30,
            inflight_window: 512,
            inflight_bytes: 128 * 1024,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            status_interval_s: 60,
            ack_timeout_s: 10,
            host_silence_s: 15,
            lab_accept_unsigned: false,
            tls: None,
            host_keys: Vec::new(),
        }
    }
}

/// `broker.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttProtocol {
    #[default]
    #[serde(rename = "5")]
    V5,
    #[serde(rename = "3.1.1")]
    V311,
}

impl MqttProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            MqttProtocol::V5 => "5",
            MqttProtocol::V311 => "3.1.1",
        }
    }
}

impl BrokerConfig {
    pub fn addr(&self) -> Result<BrokerAddr, String> {
        parse_broker_url(&self.url)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ControlConfig {
    /// The local control socket (JSON lines).
    pub socket: PathBuf,
    /// Connections served at once. A new client beyond it closes the longest-idle connection
    /// (or, when every connection is inside a request, is refused with `busy`): a till program
    /// that leaks connections cannot lock `posctl` out, and file descriptors stay bounded.
    pub max_connections: usize,
    /// A connection that sends no complete request for this long is closed.
    pub idle_timeout_s: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from("/run/posd/control.sock"),
            max_connections: 32,
            idle_timeout_s: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OnlineConfig {
    /// Query a pending or unanswered payment this often.
    pub query_interval_s: u64,
    /// Give up and reverse after this long without a final answer.
    pub query_total_s: u64,
    pub reverse_backoff_initial_s: u64,
    pub reverse_backoff_max_s: u64,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        OnlineConfig {
            query_interval_s: 5,
            query_total_s: 45,
            reverse_backoff_initial_s: 2,
            reverse_backoff_max_s: 300,
        }
    }
}

impl OnlineConfig {
    pub fn policy(&self) -> OnlinePolicy {
        OnlinePolicy {
            query_interval_ms: self.query_interval_s * 1000,
            query_total_ms: self.query_total_s * 1000,
            reverse_backoff: posd_core::backoff::Backoff {
                initial_ms: self.reverse_backoff_initial_s * 1000,
                max_ms: self.reverse_backoff_max_s * 1000,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// The largest sale the terminal accepts, in minor units of the terminal currency.
    pub max_sale_amount: i64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_sale_amount: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    /// error, warn, info, debug or trace.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DevicesConfig {
    /// Show prompts and results on the console (stdout) and read codes typed on stdin.
    pub console: bool,
    /// A camera used as the scanner (V4L2); absent = no camera.
    pub camera: Option<devices::CameraConfig>,
    /// The receipt printer (ESC/POS over tcp, file, serial or usb); absent = no printer.
    pub printer: Option<devices::PrinterConfig>,
    /// A USB HID (keyboard-wedge) scanner read through evdev.
    pub hid_scanner: Option<devices::HidScannerConfig>,
    /// A serial scanner.
    pub serial_scanner: Option<devices::SerialScannerConfig>,
    /// The cashier's numeric keypad (evdev).
    pub keypad: Option<devices::KeypadConfig>,
    /// A 2x20 serial customer display (VFD).
    pub customer_display: Option<devices::CustomerDisplayConfig>,
}

/// Whether the terminal's clock can be trusted for offline codes (DESIGN §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClockTrust {
    /// Trusted only while the kernel says the clock is synchronised (NTP/chrony/RTC discipline).
    #[default]
    Synchronized,
    /// Always trusted (a box with a trusted RTC, or tests). Never before posd's build date.
    Always,
}

/// Offline credentials the fleet refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DenylistConfig {
    pub user_ids: Vec<u64>,
    /// Credential fingerprints (hex, as `posctl code inspect` prints them).
    pub credentials: Vec<String>,
}

/// Offline `P1` codes (DESIGN §1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineConfig {
    /// Accept P1 codes at all.
    pub enabled: bool,
    pub clock: ClockTrust,
    /// Clock difference tolerated between phone and terminal, on top of the 60 s code lifetime.
    pub allowed_skew_s: u32,
    pub limits: posd_core::codes::OfflineLimits,
    /// The payment platforms' issuer keys: id → SEC1 public key (hex).
    pub issuer_keys: Vec<posd_core::codes::IssuerKeyConfig>,
    pub denylist: DenylistConfig,
    /// Ask the host (`query`) for the settlement of offline sales it has acknowledged but not
    /// yet settled, this often — in case its `notify` was lost.
    pub settle_query_interval_s: u64,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            enabled: true,
            clock: ClockTrust::default(),
            allowed_skew_s: 30,
            limits: posd_core::codes::OfflineLimits::default(),
            issuer_keys: Vec::new(),
            denylist: DenylistConfig::default(),
            settle_query_interval_s: 60,
        }
    }
}

/// Remote configuration and commands from the fleet (DESIGN §5, docs/fleet.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// A command runs only if its `issued_at` is within this many seconds of the terminal's
    /// (trusted) clock; its record is kept at least this long, so it can never run twice.
    pub cmd_max_age_s: u64,
    /// Command records kept at most: when this many are younger than `cmd_max_age_s`, new
    /// commands are refused (`too_many_commands`) until the oldest expire.
    pub cmd_records: u32,
    /// Trust anchors: the Ed25519 keys whose signatures on `cfg/desired` and `cmd` this
    /// terminal accepts. Empty = every push and command is refused. Never pushable.
    pub keys: Vec<posd_core::fleet::envelope::FleetKeyConfig>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            cmd_max_age_s: 300,
            cmd_records: 10_000,
            keys: Vec::new(),
        }
    }
}

/// What the journal keeps and how much disk it may use (issue 14, docs/retention.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Transactions (with their journal rows and print jobs) of batches the host reconciled
    /// are pruned once this many days have passed since their last change.
    pub days: u32,
    /// Sales younger than this many days are kept whatever `days` says: the till refunds
    /// only sales it still has.
    pub refund_window_days: u32,
    /// Rows examined per prune step (one short SQLite transaction on the writer thread).
    pub step_rows: u32,
    /// A prune step also ends once it has worked this long (at least one row): the longest a
    /// sale waits behind one, whatever the journal's size or the disk's speed.
    pub step_budget_ms: u64,
    /// Pause between two prune steps while there is a backlog, so sales come first.
    pub step_pause_ms: u64,
    /// How often to look for something to prune once caught up.
    pub interval_s: u64,
    /// The first sweep waits this long after start, so start-up (in-flight recovery, the
    /// first publishes) goes first.
    pub start_delay_s: u64,
    /// Free space on the state directory's file system below which `status.disk.level` is
    /// `low` and a warning is logged (at most once an hour).
    pub warn_free_mb: u64,
    /// Free space below which new sales and refunds are refused (`disk_full`); what is in
    /// flight, acks and settlements still finish in the space left.
    pub refuse_free_mb: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            days: 90,
            refund_window_days: 90,
            step_rows: 128,
            step_budget_ms: 2,
            step_pause_ms: 250,
            interval_s: 600,
            start_delay_s: 10,
            warn_free_mb: 256,
            refuse_free_mb: 32,
        }
    }
}

impl RetentionConfig {
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        // Two days at least: today's per-user offline totals must never lose a row.
        within(&mut p, "retention.days", self.days.into(), 2, 3660);
        within(
            &mut p,
            "retention.refund_window_days",
            self.refund_window_days.into(),
            0,
            3660,
        );
        within(
            &mut p,
            "retention.step_rows",
            self.step_rows.into(),
            1,
            10_000,
        );
        within(
            &mut p,
            "retention.step_budget_ms",
            self.step_budget_ms,
            0,
            10_000,
        );
        within(
            &mut p,
            "retention.step_pause_ms",
            self.step_pause_ms,
            0,
            60_000,
        );
        within(&mut p, "retention.interval_s", self.interval_s, 1, 86_400);
        within(
            &mut p,
            "retention.start_delay_s",
            self.start_delay_s,
            0,
            86_400,
        );
        within(
            &mut p,
            "retention.refuse_free_mb",
            self.refuse_free_mb,
            1,
            1 << 20,
        );
        if self.warn_free_mb <= self.refuse_free_mb {
            p.push(Problem {
                path: "retention.warn_free_mb".into(),
                message: format!(
                    "{} must be above refuse_free_mb ({}): the warning comes before the refusal",
                    self.warn_free_mb, self.refuse_free_mb
                ),
            });
        }
        p
    }
}

/// Who may refund and void (DESIGN §1.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ManagerConfig {
    /// The manager PIN as an argon2 PHC string (`posctl manager hash-pin`). Empty: refunds and
    /// voids are refused.
    pub pin_hash: String,
}

/// How merchant-presented codes are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MerchantQrMode {
    /// posd generates a dynamic EMVCo payload from `[merchant_qr.merchant]`.
    #[default]
    Local,
    /// posd asks the host (`order`) for the platform's code.
    Platform,
}

/// Merchant-presented QR (DESIGN §1.3, docs/payments.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MerchantQrConfig {
    pub mode: MerchantQrMode,
    /// How long the code is offered before the order is closed.
    pub timeout_s: u64,
    /// Poll the host this often in case its `notify` is lost.
    pub query_interval_s: u64,
    /// How long the cashier waits for the answer to `close` before hearing "not paid".
    pub close_wait_s: u64,
    /// Print the code on a pay slip too (boxes without a screen the customer can see).
    pub print: bool,
    /// The merchant data every generated payload carries (required in `local` mode).
    pub merchant: Option<posd_core::codes::MpmMerchant>,
}

impl Default for MerchantQrConfig {
    fn default() -> Self {
        MerchantQrConfig {
            mode: MerchantQrMode::Local,
            timeout_s: 120,
            query_interval_s: 3,
            close_wait_s: 10,
            print: false,
            merchant: None,
        }
    }
}

impl MerchantQrConfig {
    pub fn policy(&self, online: &OnlineConfig) -> posd_core::order::OrderPolicy {
        posd_core::order::OrderPolicy {
            query_interval_ms: self.query_interval_s * 1000,
            timeout_ms: self.timeout_s * 1000,
            close_wait_ms: self.close_wait_s * 1000,
            close_backoff: posd_core::backoff::Backoff {
                initial_ms: online.reverse_backoff_initial_s * 1000,
                max_ms: online.reverse_backoff_max_s * 1000,
            },
        }
    }
}

/// Magnetic-stripe cards (DESIGN §1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CardConfig {
    /// The host's X25519 public key (base64) card data is sealed to. Empty: cards are refused.
    pub host_public_key: String,
    /// A chip reader is attached: chip cards (service code 2xx/6xx) are told to use it.
    pub chip_reader: bool,
    /// Approve card sales offline under a floor limit while the host is unreachable (off by
    /// default).
    pub store_and_forward: posd_core::card::saf::SafLimits,
}

impl CardConfig {
    pub fn host_key(&self) -> Result<Option<[u8; 32]>, String> {
        if self.host_public_key.is_empty() {
            return Ok(None);
        }
        posd_core::card::seal::parse_key_b64(&self.host_public_key)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Config {
    pub terminal: TerminalConfig,
    pub broker: BrokerConfig,
    pub control: ControlConfig,
    pub online: OnlineConfig,
    pub limits: LimitsConfig,
    pub logging: LoggingConfig,
    pub devices: DevicesConfig,
    /// Payment-code patterns (regular expressions) and the longest scan accepted.
    pub codes: posd_core::codes::PatternsConfig,
    pub offline: OfflineConfig,
    pub fleet: FleetConfig,
    /// Receipt layout: width, character set, shop header and footer, copies.
    pub receipt: posd_core::receipt::ReceiptConfig,
    pub manager: ManagerConfig,
    pub merchant_qr: MerchantQrConfig,
    pub card: CardConfig,
    pub retention: RetentionConfig,
}

const SECTIONS: &[&str] = &[
    "terminal",
    "broker",
    "control",
    "online",
    "limits",
    "logging",
    "devices",
    "codes",
    "offline",
    "fleet",
    "receipt",
    "manager",
    "merchant_qr",
    "card",
    "retention",
];

/// One section, parsed strictly; a section that does not parse takes its defaults and is
/// named in `failed`, so that checks of its values are not reported against those defaults.
fn section<T: DeserializeOwned + Default>(
    table: &toml::Table,
    name: &'static str,
    problems: &mut Vec<Problem>,
    failed: &mut Vec<&'static str>,
) -> T {
    // A missing section is read as an empty one through the same deserializer as a present
    // one (one copy of every section's parser in the binary, issue 18); its defaults are taken
    // even when a required key is missing: that is reported on validate.
    let empty = toml::Value::Table(toml::Table::new());
    let (value, present) = match table.get(name) {
        Some(value) => (value, true),
        None => (&empty, false),
    };
    let mut unknown = Vec::new();
    let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let track = serde_ignored::Deserializer::new(value.clone(), &mut on_unknown);
    let result = serde_path_to_error::deserialize::<_, T>(track);
    for u in unknown {
        problems.push(Problem {
            path: format!("{name}.{u}"),
            message: "unknown key".into(),
        });
    }
    match result {
        Ok(v) => v,
        Err(_) if !present => T::default(),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() {
                name.to_string()
            } else {
                format!("{name}.{inner}")
            };
            let msg = e.into_inner().message().to_string();
            problems.push(Problem { path, message: msg });
            failed.push(name);
            T::default()
        }
    }
}

/// The TLS client configuration posd's link would build from these files (the CA usable as a
/// root, the key matching the certificate), or the problem that would stop it.
fn tls_client_config(tls: &TlsConfig) -> Result<(), Problem> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &str, message: String| Problem {
        path: path.into(),
        message,
    };
    let read = |f: &Path| std::fs::read(f).unwrap_or_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read(&tls.ca)).flatten() {
        roots.add(c).map_err(|e| {
            bad(
                "broker.tls.ca",
                format!("{} is not a usable CA certificate: {e}", tls.ca.display()),
            )
        })?;
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&read(&tls.cert))
        .flatten()
        .collect();
    let key = PrivateKeyDer::from_pem_slice(&read(&tls.key))
        .map_err(|e| bad("broker.tls.key", format!("{e:?}")))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("broker.tls", e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| {
            bad(
                "broker.tls.key",
                format!(
                    "{} and {} do not make a usable client identity: {e}",
                    tls.cert.display(),
                    tls.key.display()
                ),
            )
        })?;
    Ok(())
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The service user's uid and gid, when this runs as root and the user exists: only then is
/// "readable by the service" a question this process can answer.
fn service_user(user: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(user).ok()?;
    // SAFETY: geteuid has no preconditions; getpwnam is given a NUL-terminated name and its
    // result is read at once, before any other call that could reuse its static buffer.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// Whether the permission bits let `uid`/`gid` read the file (supplementary groups not
/// counted: the unit's own group is what the package sets up).
fn readable_by(m: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = m.mode();
    if m.uid() == uid {
        mode & 0o400 != 0
    } else if m.gid() == gid {
        mode & 0o040 != 0
    } else {
        mode & 0o004 != 0
    }
}

/// A path with `.` and `..` resolved by name (no file system access).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The longest any "age" limit may be: 30 days.
const MAX_AGE_S: u64 = 30 * 86_400;

/// A problem at `path` unless `lo <= v <= hi`.
fn within(p: &mut Vec<Problem>, path: &str, v: u64, lo: u64, hi: u64) {
    if !(lo..=hi).contains(&v) {
        p.push(Problem {
            path: path.into(),
            message: format!("{v} is out of range: must be {lo}..={hi}"),
        });
    }
}

impl Config {
    /// Parses and validates TOML text; every problem is returned at once.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                let e: toml::de::Error = e;
                let at = e
                    .span()
                    .map(|span| {
                        let (line, column) = line_column(text, span.start);
                        format!("line {line}, column {column}: ")
                    })
                    .unwrap_or_default();
                return Err(ConfigError::Invalid(vec![Problem {
                    path: String::new(),
                    message: format!("not valid TOML: {at}{}", e.message().trim_end()),
                }]));
            }
        };
        let mut problems = Vec::new();
        let mut failed = Vec::new();
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problems.push(Problem {
                    path: key.clone(),
                    message: "unknown key".into(),
                });
            }
        }
        let mut cfg = Config {
            terminal: section(&table, "terminal", &mut problems, &mut failed),
            broker: section(&table, "broker", &mut problems, &mut failed),
            control: section(&table, "control", &mut problems, &mut failed),
            online: section(&table, "online", &mut problems, &mut failed),
            limits: section(&table, "limits", &mut problems, &mut failed),
            logging: section(&table, "logging", &mut problems, &mut failed),
            devices: section(&table, "devices", &mut problems, &mut failed),
            codes: section(&table, "codes", &mut problems, &mut failed),
            offline: section(&table, "offline", &mut problems, &mut failed),
            fleet: section(&table, "fleet", &mut problems, &mut failed),
            receipt: section(&table, "receipt", &mut problems, &mut failed),
            manager: section(&table, "manager", &mut problems, &mut failed),
            merchant_qr: section(&table, "merchant_qr", &mut problems, &mut failed),
            card: section(&table, "card", &mut problems, &mut failed),
            retention: section(&table, "retention", &mut problems, &mut failed),
        };
        // The words on paper follow the shop's language (`[terminal] language`).
        cfg.receipt.language = cfg.terminal.language;
        // Each problem once: a section that did not parse was reported; its defaults are not
        // checked again (no "terminal.id: missing" after a bad terminal.currency).
        problems.extend(cfg.validate().into_iter().filter(|p| {
            !failed.iter().any(|f| {
                p.path == *f
                    || p.path
                        .strip_prefix(f)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        }));
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Reads, parses and validates the file, then checks what the paths in it name on this
    /// machine ([`Config::check_files`]): what `check-config` and start-up both do.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let cfg = Config::from_toml(&text)?;
        let problems = cfg.check_files();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The journal's files: the database and SQLite's companions beside it.
    pub fn journal_files(&self) -> [PathBuf; 5] {
        let db = self.db_path();
        let with = |suffix: &str| {
            let mut s = db.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        // `-reserve`: the space retention gives up on a full disk (docs/retention.md).
        [
            with("-wal"),
            with("-shm"),
            with("-journal"),
            with("-reserve"),
            db,
        ]
    }

    /// Checks against the file system: the control socket must not name an existing file that
    /// is not a socket (posd replaces a stale socket at start and removes it at stop), nor lie
    /// on the journal's files or directory through a symbolic link.
    pub fn check_files(&self) -> Vec<Problem> {
        use std::os::unix::fs::FileTypeExt;
        let mut p = self.check_tls_files();
        let socket = &self.control.socket;
        if let Ok(m) = std::fs::symlink_metadata(socket) {
            let ft = m.file_type();
            if !ft.is_socket() {
                let what = if ft.is_dir() {
                    "a directory"
                } else if ft.is_symlink() {
                    "a symbolic link"
                } else if ft.is_file() {
                    "a regular file"
                } else {
                    "not a socket"
                };
                p.push(Problem {
                    path: "control.socket".into(),
                    message: format!(
                        "{} exists and is {what}: posd would replace it with its socket; choose \
                         a path of its own (default /run/posd/control.sock)",
                        socket.display()
                    ),
                });
                return p;
            }
        }
        // Through symbolic links: compare real directories.
        let real = |path: &Path| -> Option<PathBuf> {
            let dir = std::fs::canonicalize(path.parent()?).ok()?;
            Some(dir.join(path.file_name()?))
        };
        let state = std::fs::canonicalize(&self.terminal.state_dir).ok();
        if let Some(sock) = real(socket) {
            let on_journal = self
                .journal_files()
                .iter()
                .any(|f| real(f).as_ref() == Some(&sock))
                || state.as_ref() == Some(&sock);
            if on_journal {
                p.push(Problem {
                    path: "control.socket".into(),
                    message: format!(
                        "{} is the journal's own file or directory ({}): choose a path of its \
                         own (default /run/posd/control.sock)",
                        socket.display(),
                        self.db_path().display()
                    ),
                });
            }
        }
        p
    }

    /// The broker's TLS files: present, readable and parseable as what they should be, the key
    /// matching the certificate — what would otherwise make the daemon exit at every start
    /// until systemd gives up on the unit.
    pub fn check_tls_files(&self) -> Vec<Problem> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut p = Vec::new();
        let Some(tls) = &self.broker.tls else {
            return p;
        };
        let files: [(&str, &Path, &str); 3] = [
            ("broker.tls.ca", &tls.ca, "certificate"),
            ("broker.tls.cert", &tls.cert, "certificate"),
            ("broker.tls.key", &tls.key, "key"),
        ];
        for (path, file, what) in files {
            let shown = file.display();
            let bytes = match std::fs::read(file) {
                Ok(b) => b,
                Err(e) => {
                    let why = match e.kind() {
                        std::io::ErrorKind::NotFound => "does not exist".to_string(),
                        std::io::ErrorKind::PermissionDenied => {
                            "is not readable (permission denied)".to_string()
                        }
                        _ => format!("cannot be read: {e}"),
                    };
                    p.push(Problem {
                        path: path.into(),
                        message: format!("{shown} {why}"),
                    });
                    continue;
                }
            };
            let parsed = if what == "key" {
                PrivateKeyDer::from_pem_slice(&bytes)
                    .map(|_| ())
                    .map_err(|e| format!("no PEM private key in {shown} ({e:?})"))
            } else {
                let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
                match certs {
                    Ok(c) if !c.is_empty() => Ok(()),
                    Ok(_) => Err(format!("no PEM certificate in {shown}")),
                    Err(e) => Err(format!("{shown} is not a PEM certificate ({e:?})")),
                }
            };
            if let Err(message) = parsed {
                p.push(Problem {
                    path: path.into(),
                    message,
                });
            }
        }
        if p.is_empty() {
            if let Err(e) = tls_client_config(tls) {
                p.push(e);
            }
        }
        p
    }

    /// Files the service user (`User=` of posd.service, `posd`) must be able to read: the TLS
    /// files. Answered only when run as root and the user exists (otherwise empty); by the
    /// permission bits, supplementary groups not counted.
    pub fn check_service_access(&self, user: &str) -> Vec<Problem> {
        let mut p = Vec::new();
        let (Some((uid, gid)), Some(tls)) = (service_user(user), &self.broker.tls) else {
            return p;
        };
        for (path, file) in [
            ("broker.tls.ca", &tls.ca),
            ("broker.tls.cert", &tls.cert),
            ("broker.tls.key", &tls.key),
        ] {
            if let Ok(m) = std::fs::metadata(file) {
                if !readable_by(&m, uid, gid) {
                    let shown = file.display();
                    p.push(Problem {
                        path: path.into(),
                        message: format!(
                            "{shown} is not readable by the service user {user}: \
                             chgrp {user} {shown} && chmod g+r {shown}"
                        ),
                    });
                }
            }
        }
        p
    }

    /// The shop's time zone: `terminal.time_zone`, else the deprecated fixed
    /// `terminal.utc_offset_s`, else UTC; and where its rules came from.
    pub fn shop_zone(
        &self,
    ) -> Result<(posd_core::zone::ShopZone, crate::clock::ZoneSource), Problem> {
        use crate::clock::ZoneSource;
        let problem = |path: &str, message: String| Problem {
            path: path.into(),
            message,
        };
        match (&self.terminal.time_zone, self.terminal.utc_offset_s) {
            (Some(name), _) => {
                crate::clock::named_zone(name).map_err(|m| problem("terminal.time_zone", m))
            }
            (None, Some(off)) => posd_core::zone::ShopZone::fixed(off)
                .map(|z| (z, ZoneSource::Fixed))
                .map_err(|e| problem("terminal.utc_offset_s", e.to_string())),
            (None, None) => Ok((posd_core::zone::ShopZone::utc(), ZoneSource::Fixed)),
        }
    }

    /// What is accepted but should change (`check-config` prints each once; the daemon logs
    /// them at start): the deprecated `terminal.utc_offset_s`.
    pub fn warnings(&self) -> Vec<Problem> {
        let mut w = Vec::new();
        match (&self.terminal.time_zone, self.terminal.utc_offset_s) {
            (Some(name), Some(off)) => w.push(Problem {
                path: "terminal.utc_offset_s".into(),
                message: format!(
                    "{off} is ignored: terminal.time_zone ({name:?}) is used; remove \
                     utc_offset_s (deprecated)"
                ),
            }),
            (None, Some(off)) => w.push(Problem {
                path: "terminal.utc_offset_s".into(),
                message: format!(
                    "deprecated: {off} s is a fixed offset with no daylight saving; set \
                     terminal.time_zone to the shop's IANA zone (e.g. \"Asia/Shanghai\", \
                     \"Europe/Madrid\") and remove utc_offset_s"
                ),
            }),
            _ => {}
        }
        w
    }

    /// Semantic checks on values that parsed.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut bad = |path: &str, message: String| {
            p.push(Problem {
                path: path.into(),
                message,
            })
        };
        let id = &self.terminal.id;
        if id.is_empty() {
            bad("terminal.id", "missing: every terminal needs an id".into());
        } else if id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bad(
                "terminal.id",
                format!("{id:?}: use 1-64 letters, digits, '-' or '_'"),
            );
        }
        if id == posd_core::protocol::ALL_TERMINALS {
            bad(
                "terminal.id",
                format!("{id:?} is reserved for pushes to every terminal"),
            );
        }
        match self.broker.addr() {
            Err(e) => bad("broker.url", e),
            Ok(a) if a.tls && self.broker.tls.is_none() => bad(
                "broker.tls",
                "mqtts:// needs [broker.tls] with ca, cert and key".into(),
            ),
            Ok(_) => {}
        }
        let prefix = &self.broker.prefix;
        if prefix.is_empty() || prefix.contains(['+', '#']) || prefix.starts_with('/') {
            bad(
                "broker.prefix",
                format!("{prefix:?}: a topic prefix without wildcards"),
            );
        }
        if self.broker.keep_alive_s < 5 || self.broker.keep_alive_s > 3600 {
            bad("broker.keep_alive_s", "must be 5..=3600".into());
        }
        if self.broker.inflight_window == 0 || self.broker.inflight_window > 10_000 {
            bad("broker.inflight_window", "must be 1..=10000".into());
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.broker.inflight_bytes) {
            bad(
                "broker.inflight_bytes",
                "must be 1024..=16777216 (bytes; 131072 is 1 s of a 1 Mbit/s uplink)".into(),
            );
        }
        if self.broker.backoff_initial_ms == 0
            || self.broker.backoff_max_ms < self.broker.backoff_initial_ms
        {
            bad(
                "broker.backoff_max_ms",
                "need 0 < backoff_initial_ms <= backoff_max_ms".into(),
            );
        }
        within(
            &mut p,
            "broker.backoff_max_ms",
            self.broker.backoff_max_ms,
            1,
            3_600_000,
        );
        within(
            &mut p,
            "broker.ack_timeout_s",
            self.broker.ack_timeout_s,
            1,
            3600,
        );
        within(
            &mut p,
            "broker.host_silence_s",
            self.broker.host_silence_s,
            0,
            3600,
        );
        within(
            &mut p,
            "broker.status_interval_s",
            self.broker.status_interval_s,
            1,
            86_400,
        );
        if let Err(e) = HostKeys::from_config(&self.broker.host_keys) {
            p.push(Problem {
                path: "broker.host_keys".into(),
                message: e.to_string(),
            });
        }
        let o = &self.online;
        within(
            &mut p,
            "online.query_interval_s",
            o.query_interval_s,
            1,
            300,
        );
        within(&mut p, "online.query_total_s", o.query_total_s, 1, 3600);
        if o.query_total_s < o.query_interval_s {
            p.push(Problem {
                path: "online.query_total_s".into(),
                message: "must be at least query_interval_s".into(),
            });
        }
        within(
            &mut p,
            "online.reverse_backoff_max_s",
            o.reverse_backoff_max_s,
            1,
            86_400,
        );
        if o.reverse_backoff_initial_s == 0 || o.reverse_backoff_max_s < o.reverse_backoff_initial_s
        {
            p.push(Problem {
                path: "online.reverse_backoff_max_s".into(),
                message: "need 0 < reverse_backoff_initial_s <= reverse_backoff_max_s".into(),
            });
        }
        let mut bad = |path: &str, message: String| {
            p.push(Problem {
                path: path.into(),
                message,
            })
        };
        if self.limits.max_sale_amount <= 0
            || self.limits.max_sale_amount > posd_core::money::MAX_MINOR
        {
            bad(
                "limits.max_sale_amount",
                "must be a positive amount in minor units".into(),
            );
        }
        match posd_core::codes::Patterns::new(self.codes.clone()) {
            Err(e @ posd_core::codes::PatternError::MaxLen(_)) => {
                bad("codes.max_len", e.to_string())
            }
            Err(e @ posd_core::codes::PatternError::Regex { name, .. }) => {
                bad(&format!("codes.{name}"), e.to_string())
            }
            Ok(_) => {}
        }
        if let Err(e) = posd_core::codes::IssuerKeys::from_config(&self.offline.issuer_keys) {
            bad("offline.issuer_keys", e.to_string());
        }
        p.extend(self.offline_problems());
        let mut bad = |path: &str, message: String| {
            p.push(Problem {
                path: path.into(),
                message,
            })
        };
        for f in &self.offline.denylist.credentials {
            if f.len() != 32 || !f.bytes().all(|b| b.is_ascii_hexdigit()) {
                bad(
                    "offline.denylist.credentials",
                    format!("{f:?}: a credential fingerprint is 32 hex digits"),
                );
            }
        }
        if let Err(e) = posd_core::fleet::envelope::FleetKeys::from_config(&self.fleet.keys) {
            bad("fleet.keys", e.to_string());
        }
        if let Err(e) = self.receipt.validate() {
            bad("receipt", e.to_string());
        }
        if !(1..=1024).contains(&self.control.max_connections) {
            bad(
                "control.max_connections",
                format!("{} is outside 1..=1024", self.control.max_connections),
            );
        }
        if !(1..=86_400).contains(&self.control.idle_timeout_s) {
            bad(
                "control.idle_timeout_s",
                format!("{} is outside 1..=86400", self.control.idle_timeout_s),
            );
        }
        let h = &self.manager.pin_hash;
        if !h.is_empty() {
            if let Err(e) = posd_core::pin::pin_hash_params(h) {
                bad("manager.pin_hash", e.to_string());
            }
        }
        let m = &self.merchant_qr;
        if m.timeout_s == 0 || m.query_interval_s == 0 || m.close_wait_s == 0 {
            bad(
                "merchant_qr",
                "timeout_s, query_interval_s and close_wait_s must be at least 1".into(),
            );
        }
        if m.timeout_s > 3600 {
            bad("merchant_qr.timeout_s", "must be 1..=3600".into());
        }
        if m.query_interval_s > m.timeout_s.clamp(1, 300) {
            bad(
                "merchant_qr.query_interval_s",
                "must be 1..=300 and at most timeout_s".into(),
            );
        }
        if m.close_wait_s > 600 {
            bad("merchant_qr.close_wait_s", "must be 1..=600".into());
        }
        let saf = &self.card.store_and_forward;
        if !(0..=posd_core::money::MAX_MINOR).contains(&saf.floor_limit) {
            bad(
                "card.store_and_forward.floor_limit",
                "must be 0..=1000000000000 minor units".into(),
            );
        }
        if saf.max_count > 100_000 {
            bad(
                "card.store_and_forward.max_count",
                "must be 0..=100000".into(),
            );
        }
        if saf.max_age_s > MAX_AGE_S {
            bad(
                "card.store_and_forward.max_age_s",
                format!("must be 0..={MAX_AGE_S} (30 days)"),
            );
        }
        if self.fleet.cmd_max_age_s == 0 || self.fleet.cmd_max_age_s > 86_400 {
            bad(
                "fleet.cmd_max_age_s",
                format!(
                    "{} is out of range: must be 1..=86400",
                    self.fleet.cmd_max_age_s
                ),
            );
        }
        if self.fleet.cmd_records == 0 || self.fleet.cmd_records > 1_000_000 {
            bad(
                "fleet.cmd_records",
                format!(
                    "{} is out of range: must be 1..=1000000",
                    self.fleet.cmd_records
                ),
            );
        }
        match (&m.mode, &m.merchant) {
            (MerchantQrMode::Local, Some(mer)) => {
                if let Err(e) = mer.validate() {
                    bad("merchant_qr.merchant", e.to_string());
                }
            }
            (MerchantQrMode::Local, None) | (MerchantQrMode::Platform, _) => {}
        }
        if let Err(e) = self.card.host_key() {
            bad("card.host_public_key", e);
        }
        for p in self.retention.validate() {
            bad(&p.path, p.message);
        }
        let socket = lexical(&self.control.socket);
        if socket == lexical(&self.terminal.state_dir)
            || self.journal_files().iter().any(|f| lexical(f) == socket)
        {
            bad(
                "control.socket",
                format!(
                    "{} is the journal's own file or directory: choose a path of its own \
                     (default /run/posd/control.sock)",
                    self.control.socket.display()
                ),
            );
        }
        if let Some(off) = self.terminal.utc_offset_s {
            if let Err(e) = posd_core::zone::ShopZone::fixed(off) {
                bad(
                    "terminal.utc_offset_s",
                    format!("{e}; better, set terminal.time_zone (an IANA name)"),
                );
            }
        }
        if let Some(name) = &self.terminal.time_zone {
            if let Err(e) = crate::clock::named_zone(name) {
                bad("terminal.time_zone", e);
            }
        }
        if let Some(h) = &self.devices.hid_scanner {
            if let Err(e) = h.validate() {
                bad("devices.hid_scanner", e.to_string());
            }
        }
        if let Some(sc) = &self.devices.serial_scanner {
            if let Err(e) = sc.validate() {
                bad("devices.serial_scanner", e.to_string());
            }
        }
        if let Some(k) = &self.devices.keypad {
            if let Err(e) = k.validate() {
                bad("devices.keypad", e.to_string());
            }
        }
        if let Some(p) = &self.devices.printer {
            if let Err(e) = p.validate() {
                bad("devices.printer", e.to_string());
            }
        }
        if let Some(cam) = &self.devices.camera {
            if let Err(e) = cam.validate() {
                bad("devices.camera", e.to_string());
            }
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.logging.level.as_str()) {
            bad(
                "logging.level",
                format!(
                    "{:?}: one of error, warn, info, debug, trace",
                    self.logging.level
                ),
            );
        }
        p
    }

    /// Ranges and cross-field rules of `[offline]` (a pushed `offline.*` is held to them too).
    fn offline_problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let o = &self.offline;
        let max = posd_core::money::MAX_MINOR as u64;
        within(
            &mut p,
            "offline.allowed_skew_s",
            o.allowed_skew_s.into(),
            0,
            600,
        );
        within(
            &mut p,
            "offline.settle_query_interval_s",
            o.settle_query_interval_s,
            1,
            86_400,
        );
        let l = &o.limits;
        within(
            &mut p,
            "offline.limits.per_txn_limit",
            l.per_txn_limit,
            0,
            max,
        );
        within(
            &mut p,
            "offline.limits.per_user_daily_limit",
            l.per_user_daily_limit,
            0,
            max,
        );
        within(
            &mut p,
            "offline.limits.max_unsynced_count",
            l.max_unsynced_count.into(),
            0,
            1_000_000,
        );
        within(
            &mut p,
            "offline.limits.max_unsynced_amount",
            l.max_unsynced_amount,
            0,
            max,
        );
        within(
            &mut p,
            "offline.limits.max_unsynced_age_s",
            l.max_unsynced_age_s,
            0,
            MAX_AGE_S,
        );
        if l.per_txn_limit > l.per_user_daily_limit {
            p.push(Problem {
                path: "offline.limits.per_txn_limit".into(),
                message: "must not exceed per_user_daily_limit".into(),
            });
        }
        if l.per_txn_limit > l.max_unsynced_amount {
            p.push(Problem {
                path: "offline.limits.per_txn_limit".into(),
                message: "must not exceed max_unsynced_amount".into(),
            });
        }
        p
    }

    /// Path of the journal database.
    pub fn db_path(&self) -> PathBuf {
        self.terminal.state_dir.join("posd.sqlite")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_takes_defaults() {
        let c = Config::from_toml("[terminal]\nid = \"T-1\"\n").unwrap();
        assert_eq!(c.terminal.id, "T-1");
        assert_eq!(c.terminal.currency.code(), "CNY");
        assert_eq!(c.online.query_total_s, 45);
        assert_eq!(c.broker.addr().unwrap().port, 1883);
    }

    #[test]
    fn the_shop_zone_is_time_zone_else_the_fixed_offset_else_utc() {
        let zone = |extra: &str| {
            let c = Config::from_toml(&format!("[terminal]\nid = \"T\"\n{extra}")).unwrap();
            (
                c.shop_zone().unwrap().0.name().to_string(),
                c.warnings().len(),
            )
        };
        assert_eq!(zone(""), ("UTC".into(), 0));
        assert_eq!(zone("utc_offset_s = 28800\n"), ("UTC+08:00".into(), 1));
        assert_eq!(
            zone("time_zone = \"europe/madrid\"\n"),
            ("Europe/Madrid".into(), 0)
        );
        assert_eq!(
            zone("time_zone = \"Asia/Shanghai\"\nutc_offset_s = -3600\n"),
            ("Asia/Shanghai".into(), 1)
        );
        let e = Config::from_toml("[terminal]\nid = \"T\"\ntime_zone = \"\"\n").unwrap_err();
        assert!(e.to_string().contains("terminal.time_zone: empty"), "{e}");
    }

    #[test]
    fn every_problem_reported_with_its_path() {
        let text = r#"
            colour = "blue"
            [terminal]
            id = "bad id/"
            currency = "XXX"
            [broker]
            url = "http://x"
            keep_alive_s = "thirty"
            extra = 1
            [online]
            query_interval_s = 10
            query_total_s = 5
            bogus = true
            [logging]
            level = "loud"
        "#;
        let Err(ConfigError::Invalid(p)) = Config::from_toml(text) else {
            panic!("should fail")
        };
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "colour",
            "terminal.currency",
            "broker.extra",
            "broker.keep_alive_s",
            "online.bogus",
            "online.query_total_s",
            "logging.level",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
    }

    #[test]
    fn bad_toml_and_missing_id() {
        assert!(matches!(
            Config::from_toml("[terminal"),
            Err(ConfigError::Invalid(_))
        ));
        let Err(ConfigError::Invalid(p)) = Config::from_toml("") else {
            panic!()
        };
        assert_eq!(p[0].path, "terminal.id");
    }

    #[test]
    fn retention_is_checked_with_its_path() {
        let c = Config::from_toml("[terminal]\nid = \"T\"\n").unwrap();
        assert_eq!((c.retention.days, c.retention.refuse_free_mb), (90, 32));
        let bad =
            "[terminal]\nid = \"T\"\n[retention]\ndays = 1\nwarn_free_mb = 8\nrefuse_free_mb = 8\n";
        let Err(ConfigError::Invalid(p)) = Config::from_toml(bad) else {
            panic!("accepted");
        };
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["retention.days", "retention.warn_free_mb"], "{p:?}");
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtts://b.example:8884").unwrap(),
            BrokerAddr {
                host: "b.example".into(),
                port: 8884,
                tls: true
            }
        );
        assert_eq!(parse_broker_url("mqtt://127.0.0.1").unwrap().port, 1883);
        assert!(parse_broker_url("127.0.0.1:1883").is_err());
        assert!(parse_broker_url("mqtt://h:99999").is_err());
    }

    #[test]
    fn host_keys_are_checked_with_their_path() {
        let key = |seed: u8| {
            posd_core::protocol::signed::HostSigner::from_seed(seed.into(), &[seed; 32])
                .toml_entry()
        };
        let ok = format!("[terminal]\nid = \"T\"\n{}{}", key(1), key(2));
        let c = Config::from_toml(&ok).unwrap();
        assert_eq!(c.broker.host_keys.len(), 2);
        assert!(!c.broker.lab_accept_unsigned);
        for (text, want) in [
            (format!("{}{}{}", key(1), key(2), key(3)), "at most 2"),
            (format!("{}{}", key(1), key(1)), "listed twice"),
            (
                "[[broker.host_keys]]\nid = 1\npublic_key = \"abc\"\n".to_string(),
                "64 hex digits",
            ),
            (
                "[[broker.host_keys]]\nid = -1\npublic_key = \"abc\"\n".to_string(),
                "",
            ),
        ] {
            let Err(ConfigError::Invalid(p)) =
                Config::from_toml(&format!("[terminal]\nid = \"T\"\n{text}"))
            else {
                panic!("{text} accepted")
            };
            assert!(
                p.iter()
                    .any(|p| p.path.starts_with("broker.host_keys") && p.message.contains(want)),
                "{text}: {p:?}"
            );
        }
    }

    #[test]
    fn the_control_socket_never_lies_on_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::symlink(&state, dir.path().join("alias")).unwrap();
        let cfg = |socket: &Path| {
            Config::from_toml(&format!(
                "[terminal]\nid = \"T\"\nstate_dir = \"{}\"\n[control]\nsocket = \"{}\"\n",
                state.display(),
                socket.display()
            ))
        };
        // By name, before anything exists.
        for s in [
            state.join("posd.sqlite"),
            state.join("sub/../posd.sqlite-wal"),
            state.clone(),
        ] {
            let Err(ConfigError::Invalid(p)) = cfg(&s) else {
                panic!("{} accepted", s.display())
            };
            assert_eq!(p[0].path, "control.socket");
        }
        // Through a symbolic link: only the file system can tell.
        let through = dir.path().join("alias/posd.sqlite-shm");
        let c = cfg(&through).unwrap();
        let p = c.check_files();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("journal"), "{p:?}");
        // An existing file that is not a socket.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let p = cfg(&file).unwrap().check_files();
        assert!(p[0].message.contains("regular file"), "{p:?}");
        // A path of its own is fine.
        assert!(cfg(&dir.path().join("control.sock"))
            .unwrap()
            .check_files()
            .is_empty());
    }

    #[test]
    fn shipped_example_is_valid() {
        let text = include_str!("../../config/posd.toml");
        if let Err(e) = Config::from_toml(text) {
            panic!("config/posd.toml: {e}");
        }
    }
}
