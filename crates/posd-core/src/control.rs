//! The local control API's contract (DESIGN §4 "Local control API"): one request type and one
//! reply type per command, shared by the daemon's socket server, `posctl` and any till software.
//!
//! On the wire: one JSON object per line each way. A request is `{"cmd": "<name>", ...fields}`
//! (unknown fields are refused); every request gets exactly one answer line,
//! `{"ok":true,"data":<reply>}` or `{"ok":false,"code":"<machine code>","error":"<message>"}`.
//! [`Command`] ties each request to its reply type so a client reads a typed answer; the codes
//! of refusals are listed in [`codes`]. Pure: the transports are the product's (`posd::control`)
//! or the caller's own.

use crate::batch::ZTotals;
use crate::receipt::PaperWidth;
use crate::txn::{Method, SaleOutcome, Transaction, TxnState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest request line the daemon reads; a longer one is refused (`too_long`).
pub const MAX_LINE: usize = 64 * 1024;

/// A request type and the reply it earns.
pub trait Command: Serialize + Into<Request> {
    /// What `data` holds in an `ok` answer.
    type Reply: Serialize + DeserializeOwned;
}

macro_rules! commands {
    ($( $(#[$doc:meta])* $variant:ident($req:ident) -> $reply:ty; )*) => {
        /// Any request line, as the server parses it.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "cmd", rename_all = "snake_case")]
        pub enum Request {
            $( $(#[$doc])* $variant($req), )*
        }
        $(
            impl From<$req> for Request {
                fn from(r: $req) -> Request {
                    Request::$variant(r)
                }
            }
            impl Command for $req {
                type Reply = $reply;
            }
        )*
    };
}

commands! {
    /// The terminal's status document (the same as the retained MQTT `status`, plus the
    /// journal's seqs and the build's commit).
    Status(Status) -> StatusDoc;
    /// Events waiting for the host's ack.
    Queue(Queue) -> QueueStats;
    /// Transactions, newest first.
    TxnList(TxnList) -> Vec<Transaction>;
    /// One transaction and its state history.
    TxnShow(TxnShow) -> TxnDetail;
    /// A sale; answers when it is decided.
    Sale(Sale) -> SaleReply;
    /// A refund of (part of) a sale, behind the manager PIN.
    Refund(Refund) -> SaleReply;
    /// A void of an offline sale not yet settled, behind the manager PIN.
    Void(Void) -> SaleReply;
    /// Close the batch: the Z report printed and sent to the host for reconciliation.
    BatchClose(BatchClose) -> BatchReply;
    /// Batch closes, newest first, with the host's reconciliation.
    Batches(Batches) -> Vec<Transaction>;
    /// The sale in progress, or what the till waits for; `null` when idle.
    Current(Current) -> Option<CurrentReply>;
    /// Cancel the sale in progress.
    Cancel(Cancel) -> Message;
    /// A code as if scanned.
    Scan(Scan) -> Message;
    /// Print a receipt, pay slip or Z report again, marked REPRINT.
    Reprint(Reprint) -> ReprintReply;
    /// The ESC/POS bytes of a receipt, pay slip or Z report.
    Receipt(Receipt) -> ReceiptReply;
    /// The print queue, newest first.
    PrintJobs(PrintJobs) -> Vec<PrintJob>;
}

// ---- requests ----

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnShow {
    pub id: String,
}

/// How a sale started from the till is paid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleMethod {
    /// The customer presents something: a code from any scanner or a card swipe.
    #[default]
    #[serde(alias = "code", alias = "card", alias = "payment_code")]
    Presented,
    /// The terminal presents a merchant QR code.
    MerchantQr,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sale {
    /// A decimal in the currency's major unit ("12.50").
    pub amount: String,
    /// ISO 4217 code; absent: the terminal's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// A code or card swipe as if scanned; absent: the next scan pays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<SaleMethod>,
}

/// Refund (all or part of) a sale named by `original` (txn id) or `receipt` (the text of its
/// receipt's QR); neither: the next receipt scanned names it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    /// Decimal amount ("4.50"); absent: what is left to refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Idempotency key: repeating it never refunds twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    pub pin: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Void {
    pub original: String,
    pub pin: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchClose {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batches {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Current {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancel {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scan {
    pub code: String,
}

/// Which document: a transaction's receipt (any final state; default: the newest transaction
/// with a receipt), its pay slip (`pay_slip`, a merchant-presented order), or the Z report of
/// batch number `batch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reprint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pay_slip: bool,
}

/// Which document, as for [`Reprint`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pay_slip: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintJobs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

// ---- replies ----

/// The outbox as `status`, `queue` and the retained MQTT status show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    pub pending: u64,
    pub oldest_age_s: u64,
    pub last_seq: u64,
    pub acked_seq: u64,
    /// Events set aside because they can never be delivered (over the size limit): a stub went
    /// in their place, the full event stays in the journal (docs/payments.md "Message sizes").
    #[serde(default)]
    pub set_aside: u64,
    /// The seq of the last event set aside (0: none).
    #[serde(default)]
    pub set_aside_last_seq: u64,
    /// Offline (P1) sales the host has not acknowledged yet: the running counter
    /// `offline_unsynced_count` (issue 15, "offline: N sales to sync").
    #[serde(default)]
    pub offline_unsynced: u64,
}

/// The terminal's status: the retained MQTT `status` (DESIGN §4) and the `status` command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    pub terminal: String,
    pub online: bool,
    /// This run of the daemon (a new id at every start).
    pub session: String,
    pub version: String,
    /// The fleet push in force (None: the local file alone).
    pub config_version: Option<u64>,
    /// The last `cfg/reported` message.
    pub config: Option<serde_json::Value>,
    pub queue: QueueStats,
    /// Device name → its state (`ok: ...`, `absent: ...`, `error: ...`, `disabled`).
    pub devices: BTreeMap<String, String>,
    /// Verification of what the host sends (DESIGN §4 "Signed host messages"): the trusted
    /// key ids, whether the lab-only opt-out is on, refusals per kind since start.
    #[serde(default)]
    pub host_messages: crate::protocol::signed::HostTrustStatus,
    /// Unix ms the document was made.
    pub at: u64,
    /// The receipt printer, typed (`devices.printer` says the same for people); absent when
    /// no printer is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printer: Option<PrinterHealth>,
    /// The MQTT connection and what was dropped from it (issue 14, bounded messages).
    #[serde(default)]
    pub wire: WireStatus,
    /// The build's git commit (control socket only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The shop's offset from UTC in force now, in seconds (it changes with daylight saving):
    /// kept for tools that predate `time_zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_s: Option<i32>,
    /// The shop's time zone (`terminal.time_zone`: an IANA name such as `Europe/Madrid`, or
    /// `UTC+08:00` for the deprecated fixed `utc_offset_s`): how tools show the journal's
    /// unix-ms times in the shop's time, each with the offset in force at that instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Why it is (or was) offline: the broker, the last connection error and the next try
    /// (control socket only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerLinkStatus>,
    /// Free space on the journal's file system, the journal's size and what retention has
    /// done (issue 14, docs/retention.md); absent until first measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskStatus>,
    /// What the cashier must know now (issue 15): a receipt waiting for the printer, sales
    /// waiting to sync while offline, offline codes off for an untrusted clock. Control
    /// socket only; empty when all is well.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
    /// The last code or card refused at the till, and why (control socket only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refusal: Option<CodeRefusal>,
    /// The shop's language in force (`terminal.language`, pushable): the language of every
    /// text for people in this document and of posctl's lines for the cashier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<crate::i18n::Language>,
}

/// Something the cashier must know (`status.alerts`): a stable machine code and the sentence
/// shown on the console, the keypad and by `posctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// `receipt_waiting`, `offline`, `clock_untrusted`.
    pub code: String,
    pub text: String,
}

/// A code or card refused at the till (`status.last_refusal`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRefusal {
    /// The refusal's machine code (`code_in_flight`, `bad_code`, an offline rule's code, ...).
    pub code: String,
    /// Why, for people.
    pub reason: String,
    /// The transaction it names, when it names one (`code_in_flight`: the sale the code pays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    /// Unix ms.
    pub at: u64,
}

/// The MQTT link as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerLinkStatus {
    /// `broker.url`.
    pub url: String,
    /// Successful connections since start.
    #[serde(default)]
    pub connects: u64,
    /// The last failure to connect or the last loss of the connection, as the client said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Unix ms of `last_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<u64>,
    /// Failed attempts in a row (0 while connected).
    #[serde(default)]
    pub failures: u32,
    /// Unix ms of the next attempt, while not connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<u64>,
    /// The till's verdict on the link (issue 15, docs/payments.md "The link's state"):
    /// `usable`, `not_connected` or `host_silent` (online codes are refused unless `usable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Unix ms the host last answered something it owed (an `ack` that raised what the terminal
    /// knew it had, a `resp` to a request in flight; signatures verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heard_at: Option<u64>,
    /// While `host_silent`: unix ms of the first message the host still owes an answer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_since: Option<u64>,
}

/// The broker connection as `status` shows it: the protocol, connections since start, and the
/// messages dropped for their size or form (acknowledged, never redelivered).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStatus {
    /// `5` or `3.1.1` (`broker.protocol`).
    #[serde(default)]
    pub protocol: String,
    /// Successful connections since start (1 after the first; each reconnect adds one).
    #[serde(default)]
    pub connects: u64,
    /// Messages dropped because they were larger than their topic's limit.
    #[serde(default)]
    pub dropped_oversize: u64,
    /// Messages dropped because they did not parse.
    #[serde(default)]
    pub dropped_malformed: u64,
    /// Connections the MQTT client ended because a packet exceeded its limit (the broker did
    /// not honour the Maximum Packet Size); the next connection starts a clean session.
    #[serde(default)]
    pub refused_packets: u64,
    /// Publishes of ours the broker refused (MQTT 5: a PUBACK with a failure reason, or
    /// "packet too large"); a refused event is sent again, or set aside when it is too large.
    #[serde(default)]
    pub broker_refused: u64,
    /// Fleet messages (`cfg/desired`, `cmd`) dropped without being checked: more than
    /// `FLEET_REFUSALS_PER_SECOND` failed their envelope's checks in a second (a flood).
    #[serde(default)]
    pub fleet_not_checked: u64,
    /// The largest event the broker was seen to take after it refused a bigger one as too
    /// large (bytes of payload), when that is below the terminal's own event limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_event_limit: Option<u64>,
    /// The last drop, for people: topic kind, size and limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drop: Option<String>,
}

/// How much room the journal has (`status.disk`): a low disk is a warning long before a full
/// one refuses new money.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStatus {
    pub level: DiskLevel,
    /// Bytes an unprivileged process may still write on the state directory's file system.
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// `level` is `low` below this many free bytes (`[retention] warn_free_mb`).
    pub warn_below_bytes: u64,
    /// New sales and refunds are refused below this many (`[retention] refuse_free_mb`).
    pub refuse_below_bytes: u64,
    /// The database file and its write-ahead log, in bytes.
    pub db_bytes: u64,
    pub wal_bytes: u64,
    /// Pages SQLite holds free inside the database file (given back by incremental vacuum).
    pub free_pages: u64,
    /// `incremental` once the journal can give space back to the file system, `none` before.
    pub auto_vacuum: String,
    /// Transactions older than this many days, of batches the host reconciled, are pruned.
    pub retention_days: u32,
    /// Transactions pruned by this run of the daemon.
    pub pruned_txns: u64,
    /// Creation time (Unix ms) of the oldest transaction kept; None: none kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_txn_at: Option<u64>,
}

/// Room left on the journal's disk, for machines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskLevel {
    /// Not measured yet.
    #[default]
    Unknown,
    Ok,
    /// Below `warn_free_mb`: everything still works; free space soon.
    Low,
    /// Below `refuse_free_mb`: new sales and refunds are refused; acks, settlements and
    /// sales already in flight still finish.
    Full,
}

impl DiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskLevel::Unknown => "unknown",
            DiskLevel::Ok => "ok",
            DiskLevel::Low => "low",
            DiskLevel::Full => "full",
        }
    }
}

/// How the receipt printer is, as last checked (the print queue asks it every few seconds,
/// every 1–2 s while it is faulted, without printing anything).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterHealth {
    pub state: PrinterState,
    /// The paper roll is nearly used up (the printer still prints).
    #[serde(default)]
    pub paper_near_end: bool,
    /// What the transport said when the printer could not be reached, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Jobs waiting to print (receipts, drawer pulses, Z reports, pay slips).
    #[serde(default)]
    pub waiting: u64,
    /// Jobs given up since the journal was made: not printed within `job_max_age_h` (a drawer
    /// pulse: `drawer_max_age_s`) because the printer could not take them.
    #[serde(default)]
    pub expired: u64,
    /// Hours a waiting receipt, report or slip is kept before it is given up
    /// (`[devices.printer] job_max_age_h`; drawer pulses: `drawer_max_age_s`); 0: not said.
    #[serde(default)]
    pub job_max_age_h: u64,
    /// The name the printer reports (`GS I 67`), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_name: Option<String>,
    /// Configuration the printer cannot print as asked (a paper width that does not match, a
    /// character set it lacks), each with its fix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Unix ms of the last answer (or failure) this is built from; 0: not checked yet.
    #[serde(default)]
    pub checked_at: u64,
}

/// The printer's state, for machines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    /// Not asked yet.
    #[default]
    Unknown,
    /// Answers and can print.
    Ok,
    /// Can print, but the roll is nearly used up: have a new one ready.
    PaperNearEnd,
    /// A job is going out.
    Printing,
    PaperOut,
    CoverOpen,
    /// Says it is offline for another reason (paper being fed, waiting for recovery).
    Offline,
    /// Reports an error (cutter jam, head temperature, mechanism).
    Error,
    /// Connected, but does not answer its status: not known to be able to print.
    NotAnswering,
    /// Cannot be reached (refused, no route, device missing).
    Unreachable,
    /// Gives no status by design (a file, `status = "off"`): printed to blind.
    Unchecked,
}

impl PrinterState {
    /// Whether the printer is known to be able to print now.
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            PrinterState::Ok | PrinterState::PaperNearEnd | PrinterState::Printing
        )
    }

    /// Whether printing waits for someone to fix the printer.
    pub fn is_fault(self) -> bool {
        matches!(
            self,
            PrinterState::PaperOut
                | PrinterState::CoverOpen
                | PrinterState::Offline
                | PrinterState::Error
                | PrinterState::NotAnswering
                | PrinterState::Unreachable
        )
    }
}

/// One state a transaction passed through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    pub state: String,
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnDetail {
    pub txn: Transaction,
    pub history: Vec<HistoryEntry>,
}

/// The final answer to a sale, refund or void.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleReply {
    pub txn_id: String,
    pub state: TxnState,
    #[serde(flatten)]
    pub outcome: SaleOutcome,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    pub method: Method,
    pub channel: Option<String>,
    pub code_masked: Option<String>,
}

impl SaleReply {
    /// The reply for a transaction that ended with `outcome`.
    pub fn of(t: &Transaction, outcome: SaleOutcome) -> SaleReply {
        SaleReply {
            txn_id: t.id.to_string(),
            state: t.state,
            outcome,
            amount: t.amount,
            currency: t.currency.code().to_string(),
            method: t.method,
            channel: t.channel.clone(),
            code_masked: t.code_masked.clone(),
        }
    }
}

/// A batch close: its transaction, the seq of its event and the Z report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchReply {
    pub txn_id: String,
    pub seq: u64,
    /// The business day of the batch: the local date of the close in the shop's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_day: Option<String>,
    pub report: ZTotals,
}

/// What the till is busy with (`current`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CurrentReply {
    /// A transaction in progress.
    Txn(CurrentTxn),
    /// Waiting for the customer's code or the receipt of a refund.
    Awaiting(AwaitingInput),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentTxn {
    pub txn_id: String,
    pub kind: crate::txn::TxnKind,
    pub method: Method,
    pub state: TxnState,
    pub amount: i64,
    pub currency: String,
    /// The merchant-presented code it shows.
    pub qr: Option<String>,
    /// The short reference printed on its receipt (the last 12 hex digits of `txn_id`).
    #[serde(default)]
    pub short_ref: String,
    /// Left in flight by the last run of the daemon (a crash or power cut) and resumed: the
    /// cashier waits for its outcome instead of selling again.
    #[serde(default)]
    pub recovered: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwaitingInput {
    /// `code` or `receipt`.
    pub awaiting: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// A short answer in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReprintReply {
    pub job: i64,
    pub txn_id: String,
    /// `receipt`, `pay_slip` or `z_report`.
    #[serde(default)]
    pub kind: String,
    /// true: the same document was still waiting to print; `job` is that one and no other
    /// copy was queued.
    #[serde(default)]
    pub already_queued: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptReply {
    /// The transaction (for a Z report, the batch close).
    pub txn_id: String,
    /// `receipt`, `pay_slip` or `z_report`.
    #[serde(default)]
    pub kind: String,
    pub width: PaperWidth,
    /// The receipt's QR text; empty for a Z report.
    pub receipt_ref: String,
    /// The ESC/POS bytes, base64 (standard alphabet, padded).
    pub escpos_b64: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintJob {
    pub id: i64,
    pub txn_id: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

// ---- answers ----

/// Machine codes of refusals (`{"ok":false,"code":...}`). Offline-code refusals add their own
/// (`offline_disabled`, `counter_replayed`, `expired`, ... as `codes::OfflineReject::code`).
pub mod codes {
    pub const BAD_REQUEST: &str = "bad_request";
    pub const TOO_LONG: &str = "too_long";
    /// Every connection slot is busy with a request in progress: try again.
    pub const BUSY: &str = "busy";
    pub const AMOUNT: &str = "amount";
    pub const CURRENCY: &str = "currency";
    pub const BAD_CODE: &str = "bad_code";
    pub const NOT_FOUND: &str = "not_found";
    pub const JOURNAL: &str = "journal";
    pub const STOPPING: &str = "stopping";
    pub const NO_RECEIPT: &str = "no_receipt";
    pub const NO_PRINTER: &str = "no_printer";
    pub const NO_BATCH: &str = "no_batch";
    pub const ENCODE: &str = "encode";
    /// A receipt reference printed by another terminal.
    pub const OTHER_TERMINAL: &str = "other_terminal";
    /// A code was passed (`scan`) while the till waits for none (a payment in flight).
    pub const NOT_WAITING: &str = "not_waiting";
    /// A short reference (`txn show`) matches more than one transaction.
    pub const AMBIGUOUS: &str = "ambiguous";
    /// The journal's disk is below `[retention] refuse_free_mb`: no new sale or refund.
    pub const DISK_FULL: &str = "disk_full";
    /// The code or card already pays a transaction in flight at this terminal (issue 15); the
    /// message names it (txn id and short reference).
    pub const CODE_IN_FLIGHT: &str = "code_in_flight";
}

/// A refusal: its machine code and the message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}")]
pub struct Refusal {
    pub code: String,
    pub error: String,
}

impl Refusal {
    pub fn new(code: &str, error: impl Into<String>) -> Refusal {
        Refusal {
            code: code.to_string(),
            error: error.into(),
        }
    }
}

#[derive(Serialize)]
struct OkLine<'a, T: Serialize> {
    ok: bool,
    data: &'a T,
}

#[derive(Serialize)]
struct ErrLine<'a> {
    ok: bool,
    code: &'a str,
    error: &'a str,
}

/// The answer line (with its newline) for a reply or a refusal.
pub fn answer_line<T: Serialize>(r: &Result<T, Refusal>) -> Vec<u8> {
    let mut out = match r {
        Ok(data) => serde_json::to_vec(&OkLine { ok: true, data }),
        Err(e) => serde_json::to_vec(&ErrLine {
            ok: false,
            code: &e.code,
            error: &e.error,
        }),
    }
    .unwrap_or_else(|e| {
        format!(r#"{{"ok":false,"code":"internal","error":"unencodable answer: {e}"}}"#)
            .into_bytes()
    });
    out.push(b'\n');
    out
}

/// Parses one request line (without or with its newline); a refusal says why.
pub fn parse_request(line: &[u8]) -> Result<Request, Refusal> {
    if line.len() > MAX_LINE {
        return Err(Refusal::new(codes::TOO_LONG, "request line too long"));
    }
    serde_json::from_slice(line)
        .map_err(|e| Refusal::new(codes::BAD_REQUEST, format!("bad request: {e}")))
}

/// What a client makes of an answer line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// posd refused the request.
    #[error("{0}")]
    Refused(Refusal),
    /// The line is not an answer of this contract.
    #[error("bad answer from posd: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct AnyAnswer {
    ok: bool,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Parses an answer line into the reply type `T`, or the refusal.
pub fn parse_answer<T: DeserializeOwned>(line: &[u8]) -> Result<T, AnswerError> {
    let a: AnyAnswer =
        serde_json::from_slice(line).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    if a.ok {
        serde_json::from_value(a.data.unwrap_or(serde_json::Value::Null))
            .map_err(|e| AnswerError::Malformed(e.to_string()))
    } else {
        Err(AnswerError::Refused(Refusal {
            code: a.code.unwrap_or_else(|| "error".into()),
            error: a.error.unwrap_or_else(|| "refused".into()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_their_tag() {
        let r: Request = Sale {
            amount: "12.50".into(),
            method: Some(SaleMethod::MerchantQr),
            ..Sale::default()
        }
        .into();
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"cmd":"sale","amount":"12.50","method":"merchant_qr"}"#
        );
        assert_eq!(parse_request(line.as_bytes()).unwrap(), r);
        assert_eq!(
            parse_request(br#"{"cmd":"status"}"#).unwrap(),
            Request::Status(Status {})
        );
        assert_eq!(
            serde_json::to_string(&Request::from(BatchClose {})).unwrap(),
            r#"{"cmd":"batch_close"}"#
        );
    }

    #[test]
    fn unknown_fields_and_commands_are_refused() {
        for bad in [
            &br#"{"cmd":"status","extra":1}"#[..],
            br#"{"cmd":"sale","amount":"1","colour":"red"}"#,
            br#"{"cmd":"launch"}"#,
            br#"{"amount":"1"}"#,
            b"not json",
        ] {
            let e = parse_request(bad).unwrap_err();
            assert_eq!(
                e.code,
                codes::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b' '; MAX_LINE + 1];
        assert_eq!(parse_request(&long).unwrap_err().code, codes::TOO_LONG);
    }

    #[test]
    fn old_method_names_still_mean_presented() {
        for m in ["code", "card", "payment_code", "presented"] {
            let line = format!(r#"{{"cmd":"sale","amount":"1","method":"{m}"}}"#);
            match parse_request(line.as_bytes()).unwrap() {
                Request::Sale(s) => assert_eq!(s.method, Some(SaleMethod::Presented)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn answers_round_trip() {
        let ok: Result<Message, Refusal> = Ok(Message {
            message: "done".into(),
        });
        let line = answer_line(&ok);
        assert_eq!(line, b"{\"ok\":true,\"data\":{\"message\":\"done\"}}\n");
        assert_eq!(parse_answer::<Message>(&line).unwrap().message, "done");
        let refused: Result<Message, Refusal> = Err(Refusal::new("busy", "a sale is running"));
        let line = answer_line(&refused);
        assert_eq!(
            parse_answer::<Message>(&line).unwrap_err(),
            AnswerError::Refused(Refusal::new("busy", "a sale is running"))
        );
        assert!(matches!(
            parse_answer::<Message>(b"{\"ok\":true,\"data\":3}"),
            Err(AnswerError::Malformed(_))
        ));
    }
}
