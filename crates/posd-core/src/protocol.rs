//! The MQTT protocol v1 of DESIGN §4: topic names and the JSON messages on them.
//!
//! Shared by the daemon, the sandbox host and `posctl` so both ends of every topic agree on one
//! definition. Parsing is strict where a malformed payload could move money (`resp`, `ack`) and
//! returns a typed error instead of guessing. What the host sends (`resp`, `notify`, `ack`)
//! arrives signed: [`signed`] verifies it before any of these parsers sees the payload.

pub mod limits;
pub mod signed;

use serde::{Deserialize, Serialize};

/// Topic layout under `{prefix}/{terminal_id}`.
#[derive(Debug, Clone)]
pub struct Topics {
    root: String,
    terminal: String,
}

impl Topics {
    pub fn new(prefix: &str, terminal: &str) -> Topics {
        Topics {
            root: format!("{}/{}", prefix.trim_end_matches('/'), terminal),
            terminal: terminal.to_string(),
        }
    }
    pub fn root(&self) -> &str {
        &self.root
    }
    /// The terminal segment (what host signatures cover).
    pub fn terminal(&self) -> &str {
        &self.terminal
    }
    pub fn status(&self) -> String {
        format!("{}/status", self.root)
    }
    pub fn events(&self) -> String {
        format!("{}/events", self.root)
    }
    pub fn ack(&self) -> String {
        format!("{}/ack", self.root)
    }
    pub fn req(&self) -> String {
        format!("{}/req", self.root)
    }
    pub fn resp(&self) -> String {
        format!("{}/resp", self.root)
    }
    pub fn notify(&self) -> String {
        format!("{}/notify", self.root)
    }
    pub fn cfg_desired(&self) -> String {
        format!("{}/cfg/desired", self.root)
    }
    pub fn cfg_reported(&self) -> String {
        format!("{}/cfg/reported", self.root)
    }
    pub fn cmd(&self) -> String {
        format!("{}/cmd", self.root)
    }
    pub fn cmd_result(&self) -> String {
        format!("{}/cmd/result", self.root)
    }
}

/// `{prefix}/all/cfg/desired`: config pushed to every terminal (document `terminal: "*"`).
/// "all" is therefore not a valid terminal id.
pub fn all_cfg_desired(prefix: &str) -> String {
    format!(
        "{}/{ALL_TERMINALS}/cfg/desired",
        prefix.trim_end_matches('/')
    )
}

/// Splits `{prefix}/{terminal}/{leaf...}` into (terminal, leaf); None when the topic is not under prefix.
pub fn split_topic<'a>(prefix: &str, topic: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = topic.strip_prefix(prefix.trim_end_matches('/'))?;
    let rest = rest.strip_prefix('/')?;
    let (terminal, leaf) = rest.split_once('/')?;
    if terminal.is_empty() || leaf.is_empty() {
        return None;
    }
    Some((terminal, leaf))
}

/// The topic segment of pushes to every terminal (`{prefix}/all/cfg/desired`); not a valid
/// terminal id.
pub const ALL_TERMINALS: &str = "all";

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Parses `mqtt://host:port` / `mqtts://host:port` / `tcp://host:port`.
pub fn parse_broker_url(url: &str) -> Result<BrokerAddr, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL (mqtt://host:port)"))?;
    let tls = match scheme {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => return Err(format!("unsupported scheme {other:?} (mqtt or mqtts)")),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("bad port {p:?} in {url:?}"))?,
        ),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    Ok(BrokerAddr {
        host: host.to_string(),
        port,
        tls,
    })
}

/// Operations a terminal asks of the host on `req`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Authorize,
    Query,
    Reverse,
    Refund,
    Order,
    Close,
}

impl Op {
    pub fn as_str(&self) -> &'static str {
        match self {
            Op::Authorize => "authorize",
            Op::Query => "query",
            Op::Reverse => "reverse",
            Op::Refund => "refund",
            Op::Order => "order",
            Op::Close => "close",
        }
    }
}

/// A request on `req`. Fields beyond the common three depend on `op` (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub req_id: String,
    pub op: Op,
    pub txn_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
}

impl Request {
    pub fn new(req_id: String, op: Op, txn_id: String) -> Request {
        Request {
            req_id,
            op,
            txn_id,
            method: None,
            channel: None,
            code: None,
            card: None,
            amount: None,
            currency: None,
            refund_id: None,
        }
    }
}

/// The host's verdict in a `resp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RespStatus {
    Approved,
    Declined,
    Pending,
    Unknown,
    Error,
}

/// A response on `resp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub req_id: String,
    pub txn_id: String,
    pub status: RespStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
}

/// `{upto_seq}` on `ack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub upto_seq: u64,
}

/// The host's asynchronous messages on `notify` (docs/payments.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notify {
    /// A merchant-presented order was paid.
    Payment(PaymentNotify),
    /// The host's verdict on an offline (P1 or store-and-forward card) sale.
    Settlement(SettlementNotify),
    /// The host's reconciliation of a batch close.
    BatchClose(BatchCloseNotify),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentNotify {
    pub txn_id: String,
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ref: Option<String>,
    /// What the platform says was paid (minor units), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Paid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementNotify {
    pub txn_id: String,
    pub status: SettlementStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementStatus {
    Settled,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCloseNotify {
    pub txn_id: String,
    pub status: BatchStatus,
    /// Totals that differ: `{key, terminal, host}` per `"{method}/{channel}"`.
    #[serde(default)]
    pub mismatches: Vec<BatchMismatch>,
    /// Transactions whose money differs: at most a host-chosen cap (the sandbox host: 32),
    /// so the notify stays small whatever the batch's size.
    #[serde(default)]
    pub txns: Vec<String>,
    /// The report's `txn_count`/`txn_digest` differ from the host's own (the batch's
    /// membership or one of its transactions' money is not what the host holds).
    #[serde(default, skip_serializing_if = "is_false")]
    pub digest_mismatch: bool,
    /// Events of the batch the host does not hold.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing_events: u64,
    /// How many totals differ (`mismatches` lists at most [`limits::MAX_NOTIFY_LIST`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mismatches_count: u64,
    /// How many transactions differ in all (`txns` names at most the host's cap, and at most
    /// [`limits::MAX_NOTIFY_LIST`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub txns_count: u64,
    /// A list names fewer than its count: cut to [`limits::MAX_NOTIFY_LIST`] entries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl BatchCloseNotify {
    /// Keeps the lists within [`limits::MAX_NOTIFY_LIST`] entries, with their full counts and
    /// `truncated` when one was cut (so the notify stays within
    /// [`limits::MAX_HOST_MESSAGE_BYTES`] whatever the batch).
    pub fn bounded(mut self) -> BatchCloseNotify {
        let max = limits::MAX_NOTIFY_LIST;
        self.mismatches_count = self.mismatches_count.max(self.mismatches.len() as u64);
        self.txns_count = self.txns_count.max(self.txns.len() as u64);
        self.truncated = self.truncated
            || self.mismatches.len() > max
            || self.txns.len() > max
            || self.txns_count > self.txns.len() as u64;
        self.mismatches.truncate(max);
        self.txns.truncate(max);
        self
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Reconciled,
    Mismatch,
}

/// One total the terminal and the host disagree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMismatch {
    pub key: String,
    pub terminal: i64,
    pub host: i64,
}

pub fn parse_notify(payload: &[u8]) -> Result<Notify, ProtocolError> {
    serde_json::from_slice(payload).map_err(|error| ProtocolError {
        what: "notify",
        error,
    })
}

/// A malformed message from the broker. The parser's reason is part of the message, not a
/// source as well (a chain printed whole would say it twice).
#[derive(Debug, thiserror::Error)]
#[error("malformed {what} payload: {error}")]
pub struct ProtocolError {
    pub what: &'static str,
    pub error: serde_json::Error,
}

pub fn parse_ack(payload: &[u8]) -> Result<Ack, ProtocolError> {
    serde_json::from_slice(payload).map_err(|error| ProtocolError { what: "ack", error })
}

pub fn parse_response(payload: &[u8]) -> Result<Response, ProtocolError> {
    serde_json::from_slice(payload).map_err(|error| ProtocolError {
        what: "resp",
        error,
    })
}

pub fn parse_request(payload: &[u8]) -> Result<Request, ProtocolError> {
    serde_json::from_slice(payload).map_err(|error| ProtocolError { what: "req", error })
}

/// One journal event on `events`. `seq` is per terminal, strictly increasing and gap-free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub event_id: String,
    pub txn_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub amount: i64,
    pub currency: String,
    /// Unix milliseconds of the state change.
    pub at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_masked: Option<String>,
    /// Method-specific data the host needs to settle (e.g. the `P1` code itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

pub fn parse_event(payload: &[u8]) -> Result<Event, ProtocolError> {
    serde_json::from_slice(payload).map_err(|error| ProtocolError {
        what: "events",
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_close_notify_keeps_its_lists_bounded() {
        let n = BatchCloseNotify {
            txn_id: "z".into(),
            status: BatchStatus::Mismatch,
            mismatches: vec![],
            txns: (0..20_000)
                .map(|i| format!("0190c0de-0000-7000-8000-{i:012}"))
                .collect(),
            missing_events: 0,
            mismatches_count: 0,
            txns_count: 0,
            truncated: false,
            digest_mismatch: false,
        }
        .bounded();
        assert_eq!(
            (n.txns.len(), n.txns_count),
            (limits::MAX_NOTIFY_LIST, 20_000)
        );
        assert!(n.truncated);
        let text = serde_json::to_string(&Notify::BatchClose(n)).unwrap();
        assert!(
            text.len() < limits::MAX_HOST_MESSAGE_BYTES / 8,
            "{}",
            text.len()
        );
        let small = BatchCloseNotify {
            txn_id: "z".into(),
            status: BatchStatus::Reconciled,
            mismatches: vec![],
            txns: vec![],
            missing_events: 0,
            mismatches_count: 0,
            txns_count: 0,
            truncated: false,
            digest_mismatch: false,
        }
        .bounded();
        // Nothing new on the wire when nothing was cut.
        let text = serde_json::to_string(&small).unwrap();
        assert!(
            !text.contains("truncated") && !text.contains("_count"),
            "{text}"
        );
    }

    #[test]
    fn topics_and_split() {
        let t = Topics::new("pos/v1/", "T1");
        assert_eq!(t.events(), "pos/v1/T1/events");
        assert_eq!(t.cfg_desired(), "pos/v1/T1/cfg/desired");
        assert_eq!(
            split_topic("pos/v1", "pos/v1/T1/events"),
            Some(("T1", "events"))
        );
        assert_eq!(
            split_topic("pos/v1", "pos/v1/T1/cmd/result"),
            Some(("T1", "cmd/result"))
        );
        assert_eq!(split_topic("pos/v1", "pos/v2/T1/events"), None);
        assert_eq!(split_topic("pos/v1", "pos/v1/T1"), None);
        assert_eq!(split_topic("pos/v1", "pos/v1//events"), None);
    }

    #[test]
    fn strict_parsing() {
        assert_eq!(parse_ack(br#"{"upto_seq":5}"#).unwrap().upto_seq, 5);
        assert!(parse_ack(br#"{"upto_seq":-1}"#).is_err());
        assert!(parse_ack(br#"{"upto":5}"#).is_err());
        assert!(parse_ack(b"\xff\xfe").is_err());
        assert!(parse_response(br#"{"req_id":"a","txn_id":"b","status":"maybe"}"#).is_err());
        let r =
            parse_response(br#"{"req_id":"a","txn_id":"b","status":"approved","host_ref":"H"}"#)
                .unwrap();
        assert_eq!(r.status, RespStatus::Approved);
        assert_eq!(r.host_ref.as_deref(), Some("H"));
    }
}
