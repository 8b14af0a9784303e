//! The journal: one SQLite database, one writer thread, every money event durable first.
//!
//! Every state change of a transaction is written as (the transaction's row, a journal row, an
//! outbox event with the next `seq`) in one SQLite transaction, on a WAL database with
//! `synchronous=FULL`, before anything external happens. `seq` is per terminal, strictly
//! increasing and gap-free because it is taken from the `last_seq` counter (`counters`, migration #14)
//! inside that transaction.
//! Outbox rows leave only when the host acknowledges them (`ack {upto_seq}`).
//!
//! All access goes through [`Store::call`], which runs a closure on the journal thread
//! (`writer`): queued from other threads, so their async shells never block on SQLite, and
//! there and then for the tasks on a sale's path that run on that thread ([`Store::spawn`]).

use posd_core::money::Currency;
use posd_core::protocol::Event;
use posd_core::txn::{Method, Millis, Transaction, TxnKind, TxnState};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use uuid::Uuid;

mod print_jobs;
pub use print_jobs::{Expired, NextPrintJob, OwedLimits, MAX_UNCERTAIN_SENDS};
mod code_key;
pub use code_key::load_or_create as code_key;
mod retention;
mod slim_journal;
mod slim_outbox;
mod writer;
pub use retention::{free_space, DbSize, DiskLimits, PruneOutcome, PruneRules, PAGE_SIZE};
pub use writer::{Store, CHECKPOINTER_BACKSTOP_BYTES, SEQS_PER_CHECKPOINT};

/// `bytes` in pages of `page_size` bytes, at least one (a pragma that takes pages, given a
/// limit set in bytes: the journal's page size depends on the version that created it).
pub fn pages_of(bytes: u64, page_size: u32) -> u32 {
    u32::try_from(bytes / u64::from(page_size.max(1)))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// Why the journal refused a refund or a void, checked in the SQLite transaction that would
/// have written it (nothing was). Its `Display` is English (logs); [`JournalRefusal::text`]
/// says it in the shop's language for the cashier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalRefusal {
    NoSale {
        original: String,
    },
    NotRefundable {
        original: String,
        state: TxnState,
    },
    RefundOver {
        original: String,
        /// The amounts, in major units (`4.50`, `CNY 12.50`).
        amount: String,
        done: String,
        total: String,
    },
    NotVoidable {
        original: String,
        state: TxnState,
    },
}

impl JournalRefusal {
    /// The refusal in `lang` ([`posd_core::i18n`]).
    pub fn text(&self, lang: posd_core::i18n::Language) -> String {
        use posd_core::i18n::{text, tr, Msg};
        match self {
            JournalRefusal::NoSale { original } => {
                tr(lang, Msg::JournalNoSale, &[("original", original)])
            }
            JournalRefusal::NotRefundable { original, state } => {
                let hint = if *state == TxnState::ApprovedOffline {
                    text(lang, Msg::JournalVoidInstead)
                } else {
                    ""
                };
                tr(
                    lang,
                    Msg::JournalNotRefundable,
                    &[
                        ("original", original),
                        ("state", &state.as_str()),
                        ("hint", &hint),
                    ],
                )
            }
            JournalRefusal::RefundOver {
                original,
                amount,
                done,
                total,
            } => tr(
                lang,
                Msg::JournalRefundOver,
                &[
                    ("original", original),
                    ("amount", amount),
                    ("done", done),
                    ("total", total),
                ],
            ),
            JournalRefusal::NotVoidable { original, state } => tr(
                lang,
                Msg::JournalNotVoidable,
                &[("original", original), ("state", &state.as_str())],
            ),
        }
    }
}

impl std::fmt::Display for JournalRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text(posd_core::i18n::Language::En))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the disk is full: the operation was refused and nothing was changed")]
    DiskFull,
    #[error("I/O error on the journal: the operation was refused ({0})")]
    Io(String),
    #[error("the journal database is corrupt: {0}")]
    Corrupt(String),
    #[error("journal error: {0}")]
    Sqlite(String),
    #[error("cannot create the state directory {path}: {error}")]
    StateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "the journal has a newer schema ({found}) than this posd understands ({known}): a newer \
         posd wrote it; install that posd again (a journal is never taken back to an older \
         schema)"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("ack for seq {upto} beyond the highest seq {last}: ignored")]
    AckBeyondLast { upto: u64, last: u64 },
    #[error("P1 counter {counter} for user {user_id} is not above {last}: code already used")]
    CounterReplayed {
        user_id: u64,
        counter: u32,
        last: u32,
    },
    #[error("stored row is invalid: {0}")]
    BadRow(String),
    /// The code or card already pays this transaction, still in flight (issue 15).
    #[error("the code already pays transaction {0}, still in flight")]
    CodeInFlight(String),
    /// The journal's own refusal of a refund or void (nothing written).
    #[error("{0}")]
    Refused(JournalRefusal),
    #[error("the journal writer has stopped")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DiskFull) => StoreError::DiskFull,
            Some(C::SystemIoFailure) | Some(C::CannotOpen) | Some(C::ReadOnly) => {
                StoreError::Io(e.to_string())
            }
            Some(C::DatabaseCorrupt) | Some(C::NotADatabase) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}

/// The directory a journal file is in (its free space is what a copy at open checks).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Says in the log what a copy at open ([`Db::slim`]) of `what` did.
fn report_slim(what: &str, done: &str, later: &str, r: Result<slim_outbox::Slimmed, StoreError>) {
    match r {
        Ok(slim_outbox::Slimmed::Already) => {}
        Ok(slim_outbox::Slimmed::Now(0)) => log::debug!("journal: {what} (empty) was {done}"),
        Ok(slim_outbox::Slimmed::Now(n)) => {
            log::info!("journal: {what} ({n} events) was {done} (faster sales and sync)")
        }
        Ok(slim_outbox::Slimmed::Later(why)) => {
            log::info!("journal: {what} keeps its older layout for now ({why}); {later}")
        }
        Err(e) => log::warn!(
            "journal: {what} keeps its older layout ({e}); it is tried again at the next start"
        ),
    }
}

/// The per-user offline totals counted from the sales they count (`p1_totals`' rows: user,
/// quarter hour, total): one text for migration #16 and [`Db::recount_counters`], so the
/// recount a test compares with is the one a migration writes.
macro_rules! p1_totals_recount {
    () => {
        "SELECT json_extract(detail, '$.user_id'), created_at / 900000, SUM(amount) FROM txns
         WHERE method = 'offline_code' AND state IN ('approved_offline', 'settled')
           AND typeof(json_extract(detail, '$.user_id')) = 'integer'
         GROUP BY 1, 2 HAVING SUM(amount) != 0"
    };
}

/// Schema migrations, applied in order; `PRAGMA user_version` = number applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE txns (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    channel TEXT,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    code_masked TEXT,
    host_ref TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    detail TEXT
) STRICT;
CREATE INDEX txns_state ON txns(state);
CREATE INDEX txns_created ON txns(created_at);
CREATE TABLE journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    txn_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at INTEGER NOT NULL,
    seq INTEGER NOT NULL UNIQUE
) STRICT;
CREATE INDEX journal_txn ON journal(txn_id);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO meta(key, value) VALUES ('last_seq', '0'), ('acked_seq', '0');
"#,
    r#"
-- P1 offline codes: the highest counter seen per user (one-time use, DESIGN §1.2).
CREATE TABLE p1_counters (user_id INTEGER PRIMARY KEY, counter INTEGER NOT NULL) STRICT;
CREATE INDEX txns_p1_user ON txns(json_extract(detail, '$.user_id')) WHERE method = 'offline_code';
"#,
    r#"
-- The durable print queue: a receipt is owed in the same transaction as the state that earns it.
CREATE TABLE print_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    txn_id TEXT NOT NULL,
    data TEXT NOT NULL,
    state TEXT NOT NULL,          -- queued | printed | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    printed_at INTEGER
) STRICT;
CREATE INDEX print_jobs_queued ON print_jobs(state, id);
"#,
    r#"
-- Fleet (issue 8): messages on cfg/desired already handled (retained ones come back on every
-- subscribe), and commands already run (idempotent by cmd_id). The applied config version,
-- the last known good overlay and the last report live in meta (fleet.*).
CREATE TABLE fleet_seen (digest TEXT PRIMARY KEY, at INTEGER NOT NULL) STRICT;
CREATE TABLE fleet_cmds (cmd_id TEXT PRIMARY KEY, result TEXT NOT NULL, at INTEGER NOT NULL) STRICT;
"#,
    r#"
-- Issue 4: refunds and voids name their original sale; refunds carry an idempotent refund_id.
CREATE INDEX txns_original ON txns(json_extract(detail, '$.original')) WHERE kind = 'refund';
CREATE INDEX txns_refund_id ON txns(json_extract(detail, '$.refund_id')) WHERE kind = 'refund';
INSERT INTO meta(key, value) VALUES ('batch.no', '0'), ('batch.from_seq', '0'), ('batch.opened_at', '0');
"#,
    r#"
-- Issue 16: print jobs by kind (receipt, drawer, z_report, pay_slip); the parts the printer
-- confirmed; states queued | sending | printed | failed | unconfirmed. A sale owes at most one
-- drawer pulse.
ALTER TABLE print_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'receipt';
ALTER TABLE print_jobs ADD COLUMN parts_done INTEGER NOT NULL DEFAULT 0;
UPDATE print_jobs SET kind = 'z_report' WHERE data LIKE '{"z_report":%';
UPDATE print_jobs SET kind = 'pay_slip' WHERE data LIKE '{"pay_slip":%';
CREATE UNIQUE INDEX print_jobs_drawer_once ON print_jobs(txn_id) WHERE kind = 'drawer';
"#,
    r#"
-- Issue 17: fleet commands are fresh. A record keeps its command's issued_at and lives as long
-- as the command could still be accepted; fleet.cmd_floor is the oldest issued_at still
-- accepted (it only rises, as records are dropped).
ALTER TABLE fleet_cmds ADD COLUMN issued_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX fleet_cmds_issued ON fleet_cmds(issued_at);
INSERT INTO meta(key, value) VALUES ('fleet.cmd_floor', '0');
"#,
    r#"
-- #8, issue 14 (history-flat hot paths): every query of a sale, a reprint, `status`, `queue` and a
-- batch close reads an index range or a counter, whatever the journal's age.
-- Batch membership is "first event after the previous close": kept on the row, indexed.
ALTER TABLE txns ADD COLUMN first_seq INTEGER;
UPDATE txns SET first_seq = (SELECT MIN(j.seq) FROM journal j WHERE j.txn_id = txns.id);
CREATE INDEX txns_first_seq ON txns(first_seq);
-- The newest transaction with a receipt (reprint) without sorting the journal.
CREATE INDEX txns_receipt_newest ON txns(updated_at, id)
    WHERE state IN ('approved', 'approved_offline', 'declined', 'reversed', 'voided', 'settled', 'settlement_rejected')
      AND kind IN ('sale', 'refund', 'void');
-- The store-and-forward card queue and the batch closes, without scanning every sale.
CREATE INDEX txns_card_saf ON txns(created_at)
    WHERE method = 'card' AND kind = 'sale' AND state = 'approved_offline';
CREATE INDEX txns_batch_close ON txns(created_at) WHERE kind = 'batch_close';
-- Unsynced offline sales: their approved_offline journal rows, by seq.
CREATE INDEX journal_offline ON journal(seq) WHERE state = 'approved_offline';
-- Running counters, changed in the same SQLite transaction as the rows they count.
--   outbox_pending: rows in outbox; offline_unsynced_count/_amount: approved_offline journal
--   rows of P1 sales with seq > acked_seq (what the offline limits call unsynced).
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
INSERT INTO counters (name, value) SELECT 'outbox_pending', COUNT(*) FROM outbox;
INSERT INTO counters (name, value)
    SELECT 'offline_unsynced_count', COUNT(*) FROM txns t JOIN journal j ON j.txn_id = t.id
    WHERE j.state = 'approved_offline' AND t.method = 'offline_code'
      AND j.seq > (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'acked_seq');
INSERT INTO counters (name, value)
    SELECT 'offline_unsynced_amount', COALESCE(SUM(t.amount), 0) FROM txns t JOIN journal j ON j.txn_id = t.id
    WHERE j.state = 'approved_offline' AND t.method = 'offline_code'
      AND j.seq > (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'acked_seq');
-- A P1 user's offline money (approved_offline or settled sales) per quarter hour (UTC) of the
-- sale's creation: a day's total is the sum of at most 96 rows, for any UTC offset of the day.
CREATE TABLE p1_totals (
    user_id INTEGER NOT NULL,
    quarter INTEGER NOT NULL,   -- created_at / 900000
    total INTEGER NOT NULL,
    PRIMARY KEY (user_id, quarter)
) STRICT, WITHOUT ROWID;
INSERT INTO p1_totals (user_id, quarter, total)
    SELECT json_extract(detail, '$.user_id'), created_at / 900000, SUM(amount) FROM txns
    WHERE method = 'offline_code' AND state IN ('approved_offline', 'settled')
      AND typeof(json_extract(detail, '$.user_id')) = 'integer'
    GROUP BY 1, 2 HAVING SUM(amount) != 0;
"#,
    r#"
-- #9, issue 14 (retention, src/store/retention.rs): the prune walk finds batch closes by
-- their first event and removes a transaction's print jobs by its id; meta retention.cursor
-- is the highest seq the current sweep has examined. (auto_vacuum is set when a database is
-- created, before its first table; an older one is converted once by a VACUUM at run time.)
CREATE INDEX journal_closed ON journal(seq) WHERE state = 'closed';
CREATE INDEX print_jobs_txn ON print_jobs(txn_id);
INSERT INTO meta(key, value) VALUES ('retention.cursor', '0');
"#,
    r#"
-- #10, issue 14: events that can never be delivered (over the size limit), kept whole; the
-- outbox carries a small stub in their place so the host's cumulative ack can pass them.
CREATE TABLE set_aside (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    size INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
) STRICT;
"#,
    r#"
-- #11, issue 15: a batch close is local and immediate. A transaction still in flight at a close
-- (authorizing, pending, reversing, closing) is carried into the next batch: one row here per
-- carried transaction, read and dropped by the close of the batch it was carried into (or
-- carried again). As many rows as transactions in flight, never more.
CREATE TABLE carried (
    txn_id TEXT PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    into_batch INTEGER NOT NULL
) STRICT;
CREATE INDEX carried_into ON carried(into_batch, first_seq);
"#,
    r#"
-- #12, issue 15 item 3 (one code, one sale): the codes and cards of transactions in flight, by
-- keyed digest (posd_core::code_guard: HMAC-SHA256, never the code). A row is written with the
-- transaction's first state and deleted in the SQLite transaction that makes it final, so the
-- table holds only what is in flight, whatever the journal's age.
CREATE TABLE codes_in_flight (
    digest BLOB PRIMARY KEY,
    txn_id TEXT NOT NULL UNIQUE
) STRICT, WITHOUT ROWID;
"#,
    r#"
-- #13, issue 14 (history-flat hot paths): the print queue's owed jobs (queued or sending) have
-- indexes of their own, so the next job is an index's first entry, not a sort of every owed
-- job: a printer out of paper for a day at a bus door owes 20,000 tickets, and the queue used to
-- read them all for each one it printed. Their number is a running counter kept by triggers, in
-- the statement (so the SQLite transaction) that changes a job's state.
DROP INDEX print_jobs_queued;
CREATE INDEX print_jobs_owed ON print_jobs(id) WHERE state IN ('queued', 'sending');
CREATE INDEX print_jobs_drawer_owed ON print_jobs(id)
    WHERE kind = 'drawer' AND state IN ('queued', 'sending');
INSERT INTO counters (name, value)
    SELECT 'print_owed', COUNT(*) FROM print_jobs WHERE state IN ('queued', 'sending');
CREATE TRIGGER print_owed_insert AFTER INSERT ON print_jobs
    WHEN NEW.state IN ('queued', 'sending')
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'print_owed';
END;
CREATE TRIGGER print_owed_delete AFTER DELETE ON print_jobs
    WHEN OLD.state IN ('queued', 'sending')
BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'print_owed';
END;
CREATE TRIGGER print_owed_update AFTER UPDATE OF state ON print_jobs
    WHEN (OLD.state IN ('queued', 'sending')) != (NEW.state IN ('queued', 'sending'))
BEGIN
    UPDATE counters
    SET value = value + (NEW.state IN ('queued', 'sending')) - (OLD.state IN ('queued', 'sending'))
    WHERE name = 'print_owed';
END;
"#,
    r#"
-- #14, issue 18: every page a sale's commit changes is a frame the log writes and syncs (a P1
-- sale changed 17). Two of them bought nothing. The highest seq moves from `meta` to the
-- `counters` row every sale changes anyway (`outbox_pending`'s page); its `meta` row goes, so
-- nothing can read a value no longer kept. `txns_p1_user` is read by no query since the P1
-- rules read `p1_counters` and `p1_totals` (migration #8).
INSERT INTO counters (name, value)
    SELECT 'last_seq', CAST(value AS INTEGER) FROM meta WHERE key = 'last_seq';
DELETE FROM meta WHERE key = 'last_seq';
DROP INDEX txns_p1_user;
"#,
    r#"
-- #15, issue 18: pages a sale changed that bought nothing a sale needs.
-- `txns_created` was read by the newest-first listing and the oldest transaction's age
-- (retention's report), which now read `txns_first_seq` (the order events were journaled
-- in, which a clock step cannot reorder).
DROP INDEX txns_created;
-- `txns_state` held every transaction and was read only for those in flight (start-up, the
-- journal's `in_flight`): a partial index holds just those. A sale leaving flight only deletes
-- its entry. The list is `TxnState::in_flight`'s (a test checks the listing's plan reads this
-- index).
-- The other reader of `txns_state`, the settlement round's unsettled offline sales, has a
-- partial index of its own (a P1 sale is born in it; without it that round would walk every
-- offline sale's event in the journal).
DROP INDEX txns_state;
CREATE INDEX txns_in_flight ON txns(created_at)
    WHERE state IN ('authorizing', 'pending', 'reversing', 'closing');
CREATE INDEX txns_unsettled ON txns(created_at) WHERE state = 'approved_offline';
-- The newest receipt (reprint) was the last entry of an index of every transaction with a
-- receipt, one page more on every final state. It is now the seq of the last event that put
-- a sale, refund or void into a state with a receipt, kept in the counters row every event
-- changes anyway, and found by the journal's seq.
INSERT INTO counters (name, value)
    SELECT 'last_receipt_seq', COALESCE((
        SELECT MAX(j.seq) FROM journal j WHERE j.txn_id = (
            SELECT id FROM txns INDEXED BY txns_receipt_newest
            WHERE state IN ('approved', 'approved_offline', 'declined', 'reversed', 'voided', 'settled', 'settlement_rejected')
              AND kind IN ('sale', 'refund', 'void')
            ORDER BY updated_at DESC, id DESC LIMIT 1)), 0);
DROP INDEX txns_receipt_newest;
"#,
    concat!(
        r#"
-- #16, issue 18 (bounded by configuration, not by history): retention removed a pruned P1
-- sale's row but not its share of `p1_totals`, which so kept a row per user and quarter hour
-- for ever. Retention now takes the share with the row (store/retention.rs); this drops what
-- earlier versions left by counting the totals again from the sales the journal holds, as
-- migration #8 first counted them (`txns` is itself bounded by retention).
DELETE FROM p1_totals;
INSERT INTO p1_totals (user_id, quarter, total)
"#,
        p1_totals_recount!(),
        ";"
    ),
];

/// Prepared statements kept on the writer's connection (a few KB each).
const STATEMENT_CACHE: usize = 64;

/// One outbox row for the drain: the payload only when it is within the size asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub seq: u64,
    /// None: larger than the limit asked for (never loaded into memory).
    pub payload: Option<String>,
    /// Bytes of the stored payload.
    pub size: u64,
}

/// An event set aside (`Db::set_aside`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub seq: u64,
    pub event_id: String,
    pub size: u64,
    /// The stub now in the outbox in its place.
    pub stub: String,
}

/// The drain's read: the outbox from a seq on, a payload over `?2` bytes as its size only.
/// It has no `LIMIT ?`: SQLite (3.54) marks a statement whose LIMIT is a bound parameter to be
/// prepared again at every run (the planner looks at the value), which cost the drain a parse
/// per read. The rows come in seq order straight from the table's b-tree, one step each, so
/// the caller takes as many as it wants and the rest are never read.
const OUTBOX_NEXT_SQL: &str = "SELECT seq,
        CASE WHEN octet_length(payload) > ?2 THEN NULL ELSE payload END, octet_length(payload)
     FROM outbox WHERE seq > ?1 ORDER BY seq";

/// The outbox from a seq on, whole (no `LIMIT ?`: see [`OUTBOX_NEXT_SQL`]).
const OUTBOX_AFTER_SQL: &str = "SELECT seq, payload FROM outbox WHERE seq > ?1 ORDER BY seq";

/// The newest transaction with a receipt (reprint): the one whose event `last_receipt_seq` is
/// (migration #15): the last event whose state earned a receipt when it was reached
/// (`posd_core::receipt::earns_receipt`; a later settlement of an older sale does not make it
/// the newest). Two primary-key lookups and the journal's seq index, whatever its age.
const LAST_RECEIPT_SQL: &str = "SELECT {TXN_COLS} FROM txns WHERE id = (
         SELECT txn_id FROM journal WHERE seq = (
             SELECT value FROM counters WHERE name = 'last_receipt_seq'))";

/// One step of a lookup by a receipt's short reference (`Db::txns_by_short_ref_step`): the
/// transactions first journaled in a range of seqs whose id ends so, newest first.
const SHORT_REF_STEP_SQL: &str = "SELECT {TXN_COLS} FROM txns INDEXED BY txns_first_seq
     WHERE first_seq > ?1 AND first_seq <= ?2 AND substr(id, -12) = ?3
     ORDER BY first_seq DESC";

/// Where the next step of a short-reference lookup starts: the newest transaction first
/// journaled at or under `?1` (one probe of `txns_first_seq`), so pruned history is passed at once.
const SHORT_REF_NEXT_SQL: &str = "SELECT MAX(first_seq) FROM txns WHERE first_seq <= ?1";

/// The settlement round's offline sales the host has acknowledged and not yet settled, oldest
/// first: the `txns_unsettled` index (migration #15), not every offline sale's event.
const UNSETTLED_OFFLINE_SQL: &str = "SELECT t.id FROM txns t INDEXED BY txns_unsettled
     JOIN journal j ON j.txn_id = t.id AND j.state = 'approved_offline'
     WHERE t.state = 'approved_offline' AND j.seq <= ?1 AND t.created_at <= ?2
     ORDER BY t.created_at LIMIT ?3";

/// The members an earlier close carried into batch `?1`, in first_seq order (migration #11).
const CARRIED_IN_SQL: &str =
    "SELECT c.first_seq, t.id, t.kind, t.method, t.channel, t.state, t.amount, t.created_at
     FROM carried c JOIN txns t ON t.id = c.txn_id
     WHERE c.into_batch = ?1 ORDER BY c.first_seq";

/// The batch close's two writes to `carried`: carried-in rows still in flight move on to batch
/// `?2`; the range's transactions in flight are carried into batch `?3`.
fn carry_sql() -> (String, String) {
    let in_flight = TxnState::ALL
        .iter()
        .filter(|s| s.in_flight())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    (
        format!(
            "UPDATE carried SET into_batch = ?2 WHERE into_batch = ?1
             AND EXISTS (SELECT 1 FROM txns t
                         WHERE t.id = carried.txn_id AND t.state IN ({in_flight}))"
        ),
        format!(
            "INSERT INTO carried (txn_id, first_seq, into_batch)
             SELECT id, first_seq, ?3 FROM txns
             WHERE first_seq > ?1 AND first_seq <= ?2 AND kind != 'batch_close'
               AND state IN ({in_flight})"
        ),
    )
}

/// (id, txn_id, state, attempts, last_error) of a print job.
pub type PrintJobRow = (i64, String, String, i64, Option<String>);

/// What an `ack` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckOutcome {
    pub acked_seq: u64,
    pub dropped: u64,
}

/// Outbox depth for `status` and `posctl queue` (the control contract's type).
pub use posd_core::control::QueueStats;

/// The database, owned by the writer thread.
pub struct Db {
    conn: Connection,
    last_seq: u64,
    acked_seq: u64,
    /// When set, final states owe a receipt (queued in the same transaction).
    receipts: Option<posd_core::receipt::ReceiptCtx>,
    /// (count, last seq) of the `set_aside` table, kept here so `status` never counts it.
    set_aside: (u64, u64),
    /// Free-space thresholds the journal acts on (retention).
    disk: DiskLimits,
    /// `wal_autocheckpoint` while the disk is not low: SQLite's 1000 pages, or the backstop
    /// [`CHECKPOINTER_BACKSTOP_BYTES`] when a checkpointer thread checkpoints (`Store`).
    autocheckpoint: u32,
    /// `PRAGMA page_size` of this journal: [`PAGE_SIZE`] for one this version created, what an
    /// earlier version chose (4 KiB) for one it created.
    page_size: u32,
    /// Calls waiting for the writer thread (`Store` counts them; always 0 for a `Db` of its
    /// own): a background step that sees one ends early so the call goes next
    /// (`retention::call_waiting`).
    waiting: Arc<AtomicUsize>,
    /// The queue's numbers as of the last job (`Store::queue_stats`).
    queue_view: Arc<std::sync::Mutex<QueueView>>,
}

/// The host's verdict on one offline sale (a `settlement` notify or a settlement query's
/// answer), for [`Db::record_settlements`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementVerdict {
    pub txn_id: String,
    pub settled: bool,
    pub reason: Option<String>,
}

/// What [`Db::record_settlements`] did with one verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Recorded under this seq.
    Recorded(u64),
    /// The sale is no longer `approved_offline` (settled already, or voided): left as it is.
    Ignored(TxnState),
    /// No such transaction here.
    Unknown,
}

/// The queue's numbers as the writer thread left them after its last job, so `status` and
/// `queue` are answered without waiting for the writer (a sale's commit, an ack or a retention
/// step ahead of them): read by [`Store::queue_stats`], refreshed by [`Db::refresh_queue_view`]
/// before a job's answer is sent, so a caller that got its answer sees what the job did.
#[derive(Debug, Clone, Default)]
struct QueueView {
    /// What the numbers were read at: the connection's row changes, `last_seq`, `acked_seq`,
    /// events set aside (None: not read yet). The same key, the same numbers.
    key: Option<(u64, u64, u64, u64)>,
    stats: QueueStats,
    /// `created_at` of the oldest event waiting (its age is taken when asked).
    oldest: Option<u64>,
    /// Print jobs queued or sending (the `print_owed` counter).
    print_owed: u64,
}

/// What the queue's view shows after every journal call ([`Db::queue_numbers`]): the pending
/// and unsynced-offline counters, the print jobs owed and the first waiting event's time.
const QUEUE_NUMBERS_SQL: &str = "SELECT
    (SELECT value FROM counters WHERE name = 'outbox_pending'),
    (SELECT value FROM counters WHERE name = 'offline_unsynced_count'),
    (SELECT value FROM counters WHERE name = 'print_owed'),
    (SELECT created_at FROM outbox ORDER BY seq LIMIT 1)";

/// What the offline rules read of the journal for one user ([`Db::offline_snapshot`]), in one
/// statement (issue 18: one step instead of five on a P1 sale's path): the user's highest
/// counter; their total since the quarter hour `?2` (at most 100 `p1_totals` rows, a 25-hour
/// day, however long their history); the unsynced offline count and amount; and the creation
/// time of the first unsynced P1 sale after the ack `?3` (by seq: the one waiting longest).
const OFFLINE_SNAPSHOT_SQL: &str = "SELECT
    (SELECT counter FROM p1_counters WHERE user_id = ?1),
    (SELECT COALESCE(SUM(total), 0) FROM p1_totals WHERE user_id = ?1 AND quarter >= ?2),
    (SELECT value FROM counters WHERE name = 'offline_unsynced_count'),
    (SELECT value FROM counters WHERE name = 'offline_unsynced_amount'),
    (SELECT t.created_at FROM journal j JOIN txns t ON t.id = j.txn_id
     WHERE j.state = 'approved_offline' AND j.seq > ?3 AND t.method = 'offline_code'
     ORDER BY j.seq LIMIT 1)";

fn meta_u64(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?;
    match v {
        None => Ok(0),
        Some(s) => s
            .parse()
            .map_err(|_| StoreError::BadRow(format!("meta {key} = {s:?}"))),
    }
}

/// How many events in the journal at `path` the payment host does not have: the outbox's rows
/// (`posctl queue`'s `pending`) plus events set aside whose stub was acknowledged (the host has
/// only the stub). Opens the journal read-only and changes nothing (no
/// migration), so it may run beside a live daemon or on a journal of an older posd; a file that
/// is missing or not a journal is an error. `posd pending-events`, for the package's prerm.
/// Counts the rows rather than trusting the counter: it runs once, on removal, not on a hot path.
pub fn pending_events(path: &Path) -> Result<u64, StoreError> {
    // SQLite's words ("unable to open database file", "file is not a database"), not the
    // refusals the From conversion gives a daemon's write.
    let sqlite = |e: rusqlite::Error| StoreError::Sqlite(e.to_string());
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite)?;
    let outbox: i64 = conn
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .map_err(sqlite)?;
    // Events set aside (migration #10): the host acknowledged only a stub; the full event is
    // here alone, so it counts as not synced (once, whether its stub is acknowledged or not).
    let has_set_aside: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'set_aside'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sqlite)?
        > 0;
    let aside: i64 = if has_set_aside {
        conn.query_row(
            "SELECT COUNT(*) FROM set_aside WHERE seq NOT IN (SELECT seq FROM outbox)",
            [],
            |r| r.get(0),
        )
        .map_err(sqlite)?
    } else {
        0
    };
    Ok((outbox.max(0) + aside.max(0)) as u64)
}

impl Db {
    /// Opens (creating) the journal, applies migrations, checks integrity flags.
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|error| StoreError::StateDir {
                    path: dir.to_path_buf(),
                    error,
                })?;
            }
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement of a sale's commit, its checks and the queue's numbers stays
        // prepared (rusqlite keeps 16 by default: the P1 path alone cycles through more, and a
        // statement evicted is parsed again on the writer thread at each sale).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        retention::prepare_new(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        retention::tune(&conn)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        // Kept since migration #14 in `counters`; a journal without it is refused (numbering
        // from 0 again would give two events one seq).
        let last_seq: i64 = conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'last_seq'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(last_seq_missing)?;
        // Never below a seq already given (the journal's and the outbox's newest, each one
        // step down an index): numbering again from there would give two events one seq.
        let given: i64 = conn.query_row(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM journal), 0),
                        COALESCE((SELECT MAX(seq) FROM outbox), 0))",
            [],
            |r| r.get(0),
        )?;
        if last_seq < given {
            return Err(StoreError::Corrupt(format!(
                "the highest seq kept (counters.last_seq = {last_seq}) is below one already given ({given})"
            )));
        }
        let last_seq = last_seq as u64;
        let acked_seq = meta_u64(&conn, "acked_seq")?;
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let page_size = u32::try_from(page_size).unwrap_or(4096);
        let set_aside: (i64, Option<i64>) =
            conn.query_row("SELECT COUNT(*), MAX(seq) FROM set_aside", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let mut db = Db {
            conn,
            last_seq,
            acked_seq,
            receipts: None,
            set_aside: (
                set_aside.0.max(0) as u64,
                set_aside.1.unwrap_or(0).max(0) as u64,
            ),
            disk: DiskLimits::default(),
            autocheckpoint: 1000,
            page_size,
            waiting: Arc::default(),
            queue_view: Arc::default(),
        };
        db.ensure_reserve();
        db.slim(path);
        Ok(db)
    }

    /// The copies at open that only make sales faster ([`slim_outbox`]: the outbox without
    /// migration #1's unread `event_id` index; [`slim_journal`]: the journal table keyed by
    /// `seq`), each when it is cheap: a journal that cannot be copied now works the same and
    /// is tried again at the next start.
    fn slim(&mut self, path: &Path) {
        let dir = dir_of(path);
        let outbox = slim_outbox::slim(&mut self.conn, dir);
        let journal = slim_journal::slim(&mut self.conn, dir);
        let copied = [&outbox, &journal]
            .iter()
            .any(|r| matches!(r, Ok(slim_outbox::Slimmed::Now(_))));
        report_slim(
            "the outbox",
            "copied without its unused event_id index",
            "it is copied at a start once the host has the backlog",
            outbox,
        );
        report_slim(
            "the events table",
            "copied into a table keyed by seq",
            "it is copied at a start once retention has made it small enough",
            journal,
        );
        // The old tables' pages back to the file system, once for both copies (a journal made
        // with auto_vacuum = INCREMENTAL; elsewhere a no-op): at most what was just copied,
        // which the copies' own limits bound. The copies are done whatever happens here, so a
        // failure is said as what it is; the pages stay free in the file for the next rows.
        if copied {
            if let Err(e) = self.incremental_vacuum(u32::MAX) {
                log::warn!("journal: after the copy at open, its old pages stay in the file ({e})");
            }
        }
    }

    /// Final transaction states owe a receipt from now on (a printer is configured).
    pub fn set_receipts(&mut self, ctx: Option<posd_core::receipt::ReceiptCtx>) {
        self.receipts = ctx;
    }

    /// Printed (error None) or given up for good (error Some).
    pub fn finish_print_job(
        &mut self,
        id: i64,
        error: Option<&str>,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE print_jobs SET state = ?2, last_error = ?3, printed_at = ?4
             WHERE id = ?1 AND state IN ('queued', 'sending')",
            params![
                id,
                if error.is_some() { "failed" } else { "printed" },
                error,
                now as i64
            ],
        )?;
        Ok(())
    }

    /// (id, txn_id, state, attempts, last_error) of the newest jobs.
    pub fn print_jobs(&self, limit: u32) -> Result<Vec<PrintJobRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, txn_id, state, attempts, last_error FROM print_jobs ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The newest transaction that has a receipt.
    pub fn last_receipt_txn(&self) -> Result<Option<Transaction>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&LAST_RECEIPT_SQL.replace("{TXN_COLS}", TXN_COLS))?;
        let row = st.query_row([], row_raw).optional()?;
        row.map(raw_to_txn).transpose()
    }

    /// Direct access, for tests and diagnostics.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
    pub fn acked_seq(&self) -> u64 {
        self.acked_seq
    }

    /// Journals a transaction's new state and its outbox event in one SQLite transaction.
    /// Returns the event's `seq`. On any error nothing is written.
    pub fn record(&mut self, txn: &Transaction) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        commit_one(tx, &mut self.last_seq, txn, self.receipts.as_ref())
    }

    /// A transaction's first state together with the digest of the code or card paying it
    /// (issue 15): refused with [`StoreError::CodeInFlight`], nothing written, when that
    /// digest already pays a transaction in flight. One primary-key lookup.
    pub fn record_with_code(
        &mut self,
        txn: &Transaction,
        digest: &[u8; 32],
    ) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(other) = code_owner(&tx, digest)? {
            return Err(StoreError::CodeInFlight(other));
        }
        tx.prepare_cached("INSERT INTO codes_in_flight (digest, txn_id) VALUES (?1, ?2)")?
            .execute(params![&digest[..], txn.id.to_string()])?;
        commit_one(tx, &mut self.last_seq, txn, self.receipts.as_ref())
    }

    /// The transaction in flight that the code or card with this digest pays, if any: a
    /// primary-key lookup in `codes_in_flight`, then one in `txns` (never a scan of history).
    pub fn txn_for_code(&self, digest: &[u8; 32]) -> Result<Option<Transaction>, StoreError> {
        match code_owner(&self.conn, digest)? {
            Some(id) => txn_by_id(&self.conn, &id),
            None => Ok(None),
        }
    }

    /// Rows in `codes_in_flight` (tests and diagnostics).
    pub fn codes_in_flight(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM codes_in_flight", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Several state changes in one SQLite transaction (one fsync), each with its own seq.
    pub fn record_batch(&mut self, txns: &[Transaction]) -> Result<Vec<u64>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        commit_states(tx, &mut self.last_seq, txns, self.receipts.as_ref())
    }

    /// The host's verdicts on offline sales, in one SQLite transaction (one fsync however
    /// many): each named sale still `approved_offline` becomes `settled` or
    /// `settlement_rejected` (with the host's reason) under a seq of its own; any other is left
    /// as it is. Each sale is read inside the write transaction, so nothing comes between its
    /// check and its change: a primary-key lookup each. The caller bounds how many go in one
    /// call (the daemon: `SETTLEMENTS_PER_COMMIT`). Returns, per verdict in order, what was done.
    pub fn record_settlements(
        &mut self,
        verdicts: &[SettlementVerdict],
        now: Millis,
    ) -> Result<Vec<Settled>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(verdicts.len());
        let mut changed = Vec::new();
        // The sales this call changes, by id, with their new state.
        let mut changing: HashMap<&str, TxnState> = HashMap::new();
        for v in verdicts {
            // A second verdict for a sale this call changes: it is no longer approved_offline.
            if let Some(&state) = changing.get(v.txn_id.as_str()) {
                outcomes.push(Settled::Ignored(state));
                continue;
            }
            match txn_by_id(&tx, &v.txn_id)? {
                None => outcomes.push(Settled::Unknown),
                Some(t) if t.state != TxnState::ApprovedOffline => {
                    outcomes.push(Settled::Ignored(t.state))
                }
                Some(mut t) => {
                    t.state = if v.settled {
                        TxnState::Settled
                    } else {
                        TxnState::SettlementRejected
                    };
                    t.reason = v.reason.clone();
                    t.updated_at = now;
                    outcomes.push(Settled::Recorded(0));
                    changing.insert(&v.txn_id, t.state);
                    changed.push(t);
                }
            }
        }
        if changed.is_empty() {
            return Ok(outcomes);
        }
        let seqs = commit_states(tx, &mut self.last_seq, &changed, self.receipts.as_ref())?;
        let mut seqs = seqs.into_iter();
        for o in outcomes.iter_mut() {
            if let Settled::Recorded(seq) = o {
                *seq = seqs.next().unwrap_or_default();
            }
        }
        Ok(outcomes)
    }

    /// An offline sale: its journal entry and the user's new P1 counter, in one transaction.
    /// Refused (nothing written) when the counter is not above the highest seen.
    pub fn record_offline_sale(
        &mut self,
        txn: &Transaction,
        user_id: u64,
        counter: u32,
    ) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        raise_p1_counter(&tx, user_id, counter)?;
        commit_one(tx, &mut self.last_seq, txn, self.receipts.as_ref())
    }

    /// An offline sale decided and recorded in one journal call and one SQLite transaction
    /// (issue 18): the journal's side of the rules (`offline_snapshot` for `user_id` and the
    /// day from `day_start`) is read inside the write transaction, `check` decides on it, and
    /// only an accepted sale is written — with the user's new counter, as
    /// [`Db::record_offline_sale`], and one commit. A refusal writes nothing and is returned
    /// as `Ok(Err(..))`. No other write can come between the check and the commit.
    pub fn record_offline_sale_checked<E>(
        &mut self,
        txn: &Transaction,
        user_id: u64,
        counter: u32,
        day_start: Millis,
        check: impl FnOnce(&OfflineSnapshot) -> Result<(), E>,
    ) -> Result<Result<u64, E>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let snap = offline_snapshot_in(&tx, user_id, day_start, self.acked_seq)?;
        if let Err(refusal) = check(&snap) {
            // Dropping the transaction rolls it back: nothing was written.
            return Ok(Err(refusal));
        }
        // The snapshot read the user's highest counter in this transaction: not read again.
        set_p1_counter(&tx, user_id, counter, snap.last_counter.map(i64::from))?;
        commit_one(tx, &mut self.last_seq, txn, self.receipts.as_ref()).map(Ok)
    }

    /// What the offline rules need to know from the journal for one user, at `now`:
    /// (highest counter, user's offline total since `day_start`, unsynced offline count,
    /// amount, oldest unsynced creation time in ms).
    pub fn offline_snapshot(
        &self,
        user_id: u64,
        day_start: Millis,
    ) -> Result<OfflineSnapshot, StoreError> {
        offline_snapshot_in(&self.conn, user_id, day_start, self.acked_seq)
    }

    /// Outbox events with `seq > after`, in order, at most `limit`.
    pub fn outbox_after(&self, after: u64, limit: u32) -> Result<Vec<(u64, String)>, StoreError> {
        let mut st = self.conn.prepare_cached(OUTBOX_AFTER_SQL)?;
        let rows = st.query_map(params![after as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })?;
        Ok(rows.take(limit as usize).collect::<Result<Vec<_>, _>>()?)
    }

    /// Like `outbox_after`, but a payload larger than `max_bytes` is not loaded (only its size):
    /// the drain sets such an event aside instead of holding it in memory.
    pub fn outbox_next(
        &self,
        after: u64,
        limit: u32,
        max_bytes: u64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut st = self.conn.prepare_cached(OUTBOX_NEXT_SQL)?;
        let rows = st.query_map(params![after as i64, max_bytes as i64], |r| {
            Ok(OutboxRow {
                seq: r.get::<_, i64>(0)? as u64,
                payload: r.get(1)?,
                size: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.take(limit as usize).collect::<Result<Vec<_>, _>>()?)
    }

    /// Sets aside the outbox event `seq`, which can never be delivered: the full event moves to
    /// the `set_aside` table (it stays in the journal), a stub with the same seq and event_id
    /// takes its place in the outbox, in one transaction. None: no such outbox row (acked).
    pub fn set_aside(
        &mut self,
        seq: u64,
        reason: posd_core::protocol::limits::SetAsideReason,
        limit: usize,
        now: Millis,
    ) -> Result<Option<SetAside>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(String, String)> = tx
            .query_row(
                "SELECT event_id, payload FROM outbox WHERE seq = ?1",
                [seq as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((event_id, payload)) = row else {
            return Ok(None);
        };
        let stub = posd_core::protocol::limits::set_aside_stub(
            &payload, seq, &event_id, reason, limit, now,
        );
        let size = payload.len() as u64;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO set_aside (seq, event_id, payload, size, reason, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                seq as i64,
                event_id,
                payload,
                size as i64,
                reason.as_str(),
                now as i64
            ],
        )?;
        tx.execute(
            "UPDATE outbox SET payload = ?2 WHERE seq = ?1",
            params![seq as i64, stub],
        )?;
        tx.commit()?;
        // A stub set aside again (a lower limit learned later) is still one event set aside.
        self.set_aside = (
            self.set_aside.0 + inserted as u64,
            self.set_aside.1.max(seq),
        );
        Ok(Some(SetAside {
            seq,
            event_id,
            size,
            stub,
        }))
    }

    /// The full payload of an event that was set aside.
    pub fn set_aside_payload(&self, seq: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT payload FROM set_aside WHERE seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The host has durably stored every event ≤ `upto`: drop them from the outbox.
    pub fn ack(&mut self, upto: u64) -> Result<AckOutcome, StoreError> {
        if upto > self.last_seq {
            return Err(StoreError::AckBeyondLast {
                upto,
                last: self.last_seq,
            });
        }
        if upto <= self.acked_seq {
            return Ok(AckOutcome {
                acked_seq: self.acked_seq,
                dropped: 0,
            });
        }
        // An ack need not be durable at once: losing it to a power cut only means the host gets
        // those events again, and it keys them by event_id. So this commit skips the WAL fsync
        // (synchronous=NORMAL); the next money commit (FULL) makes it durable too.
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let acked = self.acked_seq;
        let result = (|| -> Result<u64, StoreError> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let dropped = tx
                .prepare_cached("DELETE FROM outbox WHERE seq <= ?1")?
                .execute([upto as i64])? as u64;
            bump(&tx, "outbox_pending", -(dropped as i64))?;
            // The P1 sales this ack syncs: a range of the approved_offline index.
            let (n, amount): (i64, i64) = tx
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(t.amount), 0)
                     FROM journal j JOIN txns t ON t.id = j.txn_id
                     WHERE j.state = 'approved_offline' AND j.seq > ?1 AND j.seq <= ?2
                       AND t.method = 'offline_code'",
                )?
                .query_row(params![acked as i64, upto as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            bump(&tx, "offline_unsynced_count", -n)?;
            bump(&tx, "offline_unsynced_amount", -amount)?;
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'acked_seq'")?
                .execute([upto.to_string()])?;
            tx.commit()?;
            Ok(dropped)
        })();
        // Money commits are FULL again whatever happened above.
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let dropped = result?;
        self.acked_seq = upto;
        Ok(AckOutcome {
            acked_seq: upto,
            dropped,
        })
    }

    pub fn queue_stats(&self, now: Millis) -> Result<QueueStats, StoreError> {
        let (stats, _, oldest) = self.queue_numbers()?;
        Ok(with_age(stats, oldest, now))
    }

    /// The queue's numbers, the print jobs owed and the oldest waiting event's `created_at`:
    /// three counters and the first row, the same cost with 50k events waiting as with none,
    /// read by one statement ([`QUEUE_NUMBERS_SQL`]), so one read of the log and one pair of
    /// locks after every journal call, not four.
    fn queue_numbers(&self) -> Result<(QueueStats, u64, Option<u64>), StoreError> {
        let (pending, unsynced, owed, oldest) = self
            .conn
            .prepare_cached(QUEUE_NUMBERS_SQL)?
            .query_row([], |r| {
                Ok((
                    r.get::<_, Option<i64>>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })?;
        // A counter's row missing counts 0, as `counter` reads it.
        let stats = QueueStats {
            pending: pending.unwrap_or(0).max(0) as u64,
            oldest_age_s: 0,
            last_seq: self.last_seq,
            acked_seq: self.acked_seq,
            set_aside: self.set_aside.0,
            set_aside_last_seq: self.set_aside.1,
            offline_unsynced: unsynced.unwrap_or(0).max(0) as u64,
        };
        let owed = owed.unwrap_or(0).max(0) as u64;
        Ok((stats, owed, oldest.map(|o| o.max(0) as u64)))
    }

    /// Rows inserted, updated or deleted on this connection since it was opened (SQLite's
    /// count, read without I/O): what the checkpointer's wake-ups follow beside `seq`.
    fn total_changes(&self) -> u64 {
        self.conn.total_changes()
    }

    /// Runs a job's `f` and brings the queue's view up to date before its answer goes back.
    fn answer<R>(&mut self, f: impl FnOnce(&mut Db) -> R) -> R {
        let r = f(self);
        self.refresh_queue_view();
        r
    }

    /// Brings the view [`Store::queue_stats`] reads up to date, if anything changed since it
    /// was read (a job that wrote nothing costs a lock and a compare). A failed read leaves the
    /// view as it was; the next job tries again.
    fn refresh_queue_view(&self) {
        let key = (
            self.conn.total_changes(),
            self.last_seq,
            self.acked_seq,
            self.set_aside.0,
        );
        let lock = || {
            self.queue_view
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if lock().key == Some(key) {
            return;
        }
        match self.queue_numbers() {
            Ok((stats, print_owed, oldest)) => {
                *lock() = QueueView {
                    key: Some(key),
                    stats,
                    oldest,
                    print_owed,
                }
            }
            Err(e) => log::warn!("journal: the queue's numbers were not read ({e})"),
        }
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn txn(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        txn_by_id(&self.conn, id)
    }

    /// One bounded step of a lookup by a receipt's short reference (the last 12 hex digits of
    /// the UUID): the transactions whose id ends with `short` among those first journaled at a
    /// seq in `(below - span, below]`, at most two (two say the reference is ambiguous), and
    /// the `below` of the next step: the newest transaction's `first_seq` under this step's
    /// range (0: none is left). A range of `txns_first_seq`, so a step costs what `span` says
    /// whatever the journal's age: the whole table at once held the journal thread, and every
    /// sale behind it, for as long as history is long (0.15–0.25 s at a million transactions
    /// on the dev VM, warm). The next step starts at the next transaction kept, not at the next
    /// seq: the seqs retention pruned are passed in one probe of the index, so the lookup's
    /// steps follow the journal that is kept (`[retention] days`), not every seq ever issued.
    pub fn txns_by_short_ref_step(
        &self,
        short: &str,
        below: u64,
        span: u64,
    ) -> Result<(Vec<Transaction>, u64), StoreError> {
        let from = below.saturating_sub(span.max(1));
        let mut st = self
            .conn
            .prepare_cached(&SHORT_REF_STEP_SQL.replace("{TXN_COLS}", TXN_COLS))?;
        let rows = st.query_map(params![from as i64, below as i64, short], row_raw)?;
        let found = rows
            .take(2)
            .map(|r| raw_to_txn(r?))
            .collect::<Result<Vec<_>, _>>()?;
        let next: Option<i64> = self
            .conn
            .prepare_cached(SHORT_REF_NEXT_SQL)?
            .query_row([from as i64], |r| r.get(0))?;
        Ok((found, next.unwrap_or(0).max(0) as u64))
    }

    /// Newest first: in the order their first events were journaled (`txns_first_seq`
    /// backwards; a clock step cannot reorder it).
    pub fn txns(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {TXN_COLS} FROM txns ORDER BY first_seq DESC LIMIT ?1"
        ))?;
        let rows = st.query_map([limit], row_raw)?;
        rows.map(|r| raw_to_txn(r?)).collect()
    }

    /// Transactions with a host conversation still open (resolved on start-up).
    pub fn in_flight(&self) -> Result<Vec<Transaction>, StoreError> {
        // The list comes from the core's own definition, so a new in-flight state is never
        // forgotten here.
        let states: Vec<String> = TxnState::ALL
            .iter()
            .filter(|s| s.in_flight())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {TXN_COLS} FROM txns INDEXED BY txns_in_flight WHERE state IN ({}) ORDER BY created_at",
            states.join(", ")
        ))?;
        let rows = st.query_map([], row_raw)?;
        rows.map(|r| raw_to_txn(r?)).collect()
    }

    /// Offline sales the host has acknowledged but not yet settled, oldest first.
    pub fn unsettled_offline(
        &self,
        created_before: Millis,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut st = self.conn.prepare_cached(UNSETTLED_OFFLINE_SQL)?;
        let rows = st.query_map(
            params![self.acked_seq as i64, created_before as i64, limit],
            |r| r.get::<_, String>(0),
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The state history of one transaction: (seq, state, at).
    pub fn history(&self, id: &str) -> Result<Vec<(u64, String, u64)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, state, at FROM journal WHERE txn_id = ?1 ORDER BY seq")?;
        let rows = st.query_map([id], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?.max(0) as u64,
            ))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// `PRAGMA integrity_check`: "ok" when sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

/// `stats` with the age of the oldest waiting event (`oldest`, its `created_at`) at `now`.
fn with_age(stats: QueueStats, oldest: Option<u64>, now: Millis) -> QueueStats {
    QueueStats {
        oldest_age_s: oldest.map(|o| now.saturating_sub(o) / 1000).unwrap_or(0),
        ..stats
    }
}

/// One transaction by id, on the connection or inside an open SQLite transaction.
fn txn_by_id(conn: &Connection, id: &str) -> Result<Option<Transaction>, StoreError> {
    let mut st = conn.prepare_cached(&format!("SELECT {TXN_COLS} FROM txns WHERE id = ?1"))?;
    let row = st.query_row([id], row_raw).optional()?;
    row.map(raw_to_txn).transpose()
}

/// The transaction whose code has this digest, while it is in flight.
fn code_owner(conn: &Connection, digest: &[u8; 32]) -> Result<Option<String>, StoreError> {
    let mut st = conn.prepare_cached("SELECT txn_id FROM codes_in_flight WHERE digest = ?1")?;
    Ok(st.query_row([&digest[..]], |r| r.get(0)).optional()?)
}

/// What is already refunded, or being refunded, from a sale (approved and in-flight refunds).
fn committed_refunds(conn: &Connection, original: &str) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(amount), 0) FROM txns
         WHERE kind = 'refund' AND json_extract(detail, '$.original') = ?1
           AND state IN ('authorizing', 'pending', 'approved')",
        [original],
        |r| r.get(0),
    )?)
}

/// The sale a refund or void names, or the refusal when there is none.
fn original_sale(conn: &Connection, original: &str) -> Result<Transaction, StoreError> {
    txn_by_id(conn, original)?.ok_or_else(|| {
        StoreError::Refused(JournalRefusal::NoSale {
            original: original.to_string(),
        })
    })
}

/// What the journal knows about refunding one sale.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundContext {
    pub original: Option<Transaction>,
    /// Refunds of it approved or still in flight (their amounts are spoken for).
    pub committed: i64,
}

impl Db {
    /// The original sale and what is already refunded (or being refunded) from it.
    pub fn refund_context(&self, original: &str) -> Result<RefundContext, StoreError> {
        Ok(RefundContext {
            original: self.txn(original)?,
            committed: committed_refunds(&self.conn, original)?,
        })
    }

    /// The refund journaled with this idempotency key, if any.
    pub fn refund_by_id(&self, refund_id: &str) -> Result<Option<Transaction>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {TXN_COLS} FROM txns WHERE kind = 'refund'
               AND json_extract(detail, '$.refund_id') = ?1"
        ))?;
        let row = st.query_row([refund_id], row_raw).optional()?;
        row.map(raw_to_txn).transpose()
    }

    /// A refund's intent, checked against its original in the same SQLite transaction: the
    /// original must be a sold sale and the refunds approved or in flight plus this one must
    /// not exceed it. Nothing is written when refused.
    pub fn record_refund(
        &mut self,
        refund: &Transaction,
        original: &str,
    ) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let orig = original_sale(&tx, original)?;
        if orig.kind != TxnKind::Sale
            || !matches!(orig.state, TxnState::Approved | TxnState::Settled)
        {
            return Err(StoreError::Refused(JournalRefusal::NotRefundable {
                original: original.to_string(),
                state: orig.state,
            }));
        }
        let committed = committed_refunds(&tx, original)?;
        if refund.amount <= 0 || committed + refund.amount > orig.amount {
            return Err(StoreError::Refused(JournalRefusal::RefundOver {
                original: original.to_string(),
                amount: orig.currency.format(refund.amount),
                done: orig.currency.format(committed),
                total: posd_core::money::Money {
                    minor: orig.amount,
                    currency: orig.currency,
                }
                .to_string(),
            }));
        }
        commit_one(tx, &mut self.last_seq, refund, self.receipts.as_ref())
    }

    /// Voids an offline sale not yet settled: the sale becomes `voided` and the void is
    /// journaled, in one SQLite transaction. Refused (nothing written) otherwise.
    pub fn record_void(
        &mut self,
        void: &Transaction,
        original: &str,
        now: Millis,
    ) -> Result<Transaction, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut orig = original_sale(&tx, original)?;
        if orig.kind != TxnKind::Sale || orig.state != TxnState::ApprovedOffline {
            return Err(StoreError::Refused(JournalRefusal::NotVoidable {
                original: original.to_string(),
                state: orig.state,
            }));
        }
        orig.state = TxnState::Voided;
        orig.reason = Some("voided by the manager".into());
        orig.updated_at = now;
        let mut v = void.clone();
        v.method = orig.method;
        v.channel = orig.channel.clone();
        v.amount = orig.amount;
        v.currency = orig.currency;
        v.code_masked = orig.code_masked.clone();
        commit_states(
            tx,
            &mut self.last_seq,
            &[orig, v.clone()],
            self.receipts.as_ref(),
        )?;
        Ok(v)
    }

    /// Card sales approved offline (store and forward) and not yet settled: (count, oldest
    /// creation time in ms).
    pub fn card_saf_queue(&self) -> Result<(u32, Option<Millis>), StoreError> {
        let (n, oldest): (i64, Option<i64>) = self.conn.query_row(
            "SELECT COUNT(*), MIN(created_at) FROM txns
             WHERE method = 'card' AND kind = 'sale' AND state = 'approved_offline'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((
            n.clamp(0, i64::from(u32::MAX)) as u32,
            oldest.map(|o| o.max(0) as u64),
        ))
    }

    /// Closes the batch: sums every transaction whose first event came after the previous
    /// close, and those an earlier close carried into this batch, and journals the
    /// `batch_close` transaction carrying the Z report, in one SQLite transaction (so no event
    /// can slip between the sum and the close). What is still in flight is not counted but
    /// carried into the next batch (table `carried`, migration #11).
    pub fn batch_close(
        &mut self,
        mut close: Transaction,
    ) -> Result<(Transaction, u64), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let get = |k: &str| -> Result<u64, StoreError> {
            let v: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()?;
            Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        let no = get("batch.no")? + 1;
        let from_seq = get("batch.from_seq")?;
        let opened_at = get("batch.opened_at")?;
        let upto_seq = self.last_seq;
        // Streamed in first_seq order from an index range: memory and time follow the batch,
        // never the journal, and nothing of the batch is held but the totals.
        let mut zb = posd_core::batch::ZBuilder::new(
            no,
            from_seq,
            upto_seq,
            close.created_at,
            close.currency.code(),
        );
        // Carried in by earlier closes (their first events are older than the range, so they
        // come first in first_seq order), then the range; what is still in flight is carried
        // on into the next batch instead of being counted at its state of the moment.
        for carried_in in [true, false] {
            let mut st = if carried_in {
                tx.prepare_cached(CARRIED_IN_SQL)?
            } else {
                tx.prepare_cached(
                    "SELECT first_seq, id, kind, method, channel, state, amount, created_at
                     FROM txns WHERE first_seq > ?1 AND first_seq <= ?2 ORDER BY first_seq",
                )?
            };
            let mut rows = if carried_in {
                st.query(params![no as i64])?
            } else {
                st.query(params![from_seq as i64, upto_seq as i64])?
            };
            while let Some(r) = rows.next()? {
                let id: String = r.get(1)?;
                let bad =
                    |what: &str, v: &str| StoreError::BadRow(format!("txn {id}: {what} {v:?}"));
                let kind: String = r.get(2)?;
                let method: String = r.get(3)?;
                let channel: Option<String> = r.get(4)?;
                let state: String = r.get(5)?;
                let kind = TxnKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?;
                let state = TxnState::parse(&state).ok_or_else(|| bad("state", &state))?;
                if state.in_flight() && kind != TxnKind::BatchClose {
                    zb.carry(&id);
                    continue;
                }
                let m = posd_core::batch::ZMember {
                    first_seq: r.get::<_, i64>(0)?.max(0) as u64,
                    txn_id: &id,
                    kind,
                    method: &method,
                    channel: channel.as_deref(),
                    state,
                    amount: r.get(6)?,
                    created_at: r.get::<_, i64>(7)?.max(0) as u64,
                };
                if carried_in {
                    zb.add_carried_in(&m);
                } else {
                    zb.add(&m);
                }
            }
        }
        // The carried rows follow: what was carried in and is still in flight moves on, the
        // rest is done with; what came in this batch and is in flight is carried for the
        // first time.
        let (carry_on, carry_new) = carry_sql();
        tx.execute(&carry_on, params![no as i64, (no + 1) as i64])?;
        tx.execute(
            "DELETE FROM carried WHERE into_batch = ?1",
            params![no as i64],
        )?;
        tx.execute(
            &carry_new,
            params![from_seq as i64, upto_seq as i64, (no + 1) as i64],
        )?;
        // The first batch opens with its first transaction.
        let opened_at = if opened_at == 0 {
            zb.first_created().unwrap_or(close.created_at)
        } else {
            opened_at
        };
        let z = zb.finish(opened_at);
        close.amount = z.net_total;
        close.detail =
            Some(serde_json::to_value(&z).map_err(|e| StoreError::BadRow(e.to_string()))?);
        let seqs = write_states(
            &tx,
            self.last_seq,
            std::slice::from_ref(&close),
            self.receipts.as_ref(),
        )?;
        let seq = seqs
            .first()
            .copied()
            .ok_or_else(|| StoreError::BadRow("no seq written".into()))?;
        // The Z report is owed to the printer in the same transaction as the close.
        if let Some(ctx) = self.receipts.as_ref() {
            let doc = posd_core::receipt::PrintDoc::Z {
                z_report: posd_core::receipt::z_report_for(&z, ctx, close.currency),
            };
            print_jobs::insert(
                &tx,
                &close.id.to_string(),
                &doc,
                ctx.language,
                close.created_at,
            )?;
        }
        for (k, v) in [
            ("batch.no", no.to_string()),
            ("batch.from_seq", seq.to_string()),
            ("batch.opened_at", close.created_at.to_string()),
        ] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![k, v],
            )?;
        }
        tx.commit()?;
        self.last_seq = seq;
        Ok((close, seq))
    }

    /// Batch closes, newest first.
    pub fn batches(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {TXN_COLS} FROM txns WHERE kind = 'batch_close' ORDER BY created_at DESC LIMIT ?1"
        ))?;
        let rows = st.query_map([limit], row_raw)?;
        rows.map(|r| raw_to_txn(r?)).collect()
    }
}

/// What the journal keeps of fleet configuration (meta `fleet.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetRecord {
    /// The highest config version applied or rolled back (0 = none): anti-rollback.
    pub version: u64,
    /// The last known good push `{version, config}` (JSON), if any push was applied.
    pub overlay: Option<String>,
    /// The last `cfg/reported` message (JSON).
    pub report: Option<String>,
}

/// Handled `cfg/desired` digests kept, at most (oldest dropped). Command records are bounded by
/// `[fleet] cmd_records` and `cmd_max_age_s` instead ([`Db::fleet_cmd_purge`]).
const FLEET_SEEN_KEEP: i64 = 1000;

/// The command records after [`Db::fleet_cmd_purge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdRecords {
    /// Commands issued before this are refused (`fleet.cmd_floor`).
    pub floor: u64,
    /// Records left.
    pub live: u64,
}

impl Db {
    pub fn fleet_record(&self) -> Result<FleetRecord, StoreError> {
        let version = meta_u64(&self.conn, "fleet.version")?;
        Ok(FleetRecord {
            version,
            overlay: self.meta("fleet.overlay")?,
            report: self.meta("fleet.report")?,
        })
    }

    /// Whether a `cfg/desired` message with this digest was already handled.
    pub fn fleet_seen(&self, digest: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM fleet_seen WHERE digest = ?1",
                [digest],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records the outcome of one `cfg/desired` message in one transaction: it is handled,
    /// its report, the version it spent (applied or rolled back) and, when applied, the
    /// overlay now in force (the last known good).
    pub fn fleet_outcome(
        &mut self,
        digest: &str,
        at: u64,
        spent: Option<u64>,
        overlay: Option<&str>,
        report: &str,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let set = |k: &str, v: &str| {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![k, v],
            )
        };
        if let Some(version) = spent {
            set("fleet.version", &version.to_string())?;
        }
        if let Some(overlay) = overlay {
            set("fleet.overlay", overlay)?;
        }
        set("fleet.report", report)?;
        tx.execute(
            "INSERT OR REPLACE INTO fleet_seen (digest, at) VALUES (?1, ?2)",
            params![digest, at as i64],
        )?;
        tx.execute(
            "DELETE FROM fleet_seen WHERE digest NOT IN
             (SELECT digest FROM fleet_seen ORDER BY at DESC LIMIT ?1)",
            [FLEET_SEEN_KEEP],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The recorded result of a command already run.
    pub fn fleet_cmd(&self, cmd_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT result FROM fleet_cmds WHERE cmd_id = ?1",
                [cmd_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records the result of a command that ran.
    pub fn fleet_cmd_done(
        &mut self,
        cmd_id: &str,
        result: &str,
        at: u64,
        issued_at: u64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO fleet_cmds (cmd_id, result, at, issued_at) VALUES (?1, ?2, ?3, ?4)",
            params![cmd_id, result, at as i64, issued_at.min(i64::MAX as u64) as i64],
        )?;
        Ok(())
    }

    /// Drops the records of commands issued before `before` (they can never be accepted again:
    /// too old) and raises the floor to it, in one transaction; the floor never goes down.
    pub fn fleet_cmd_purge(&mut self, before: u64) -> Result<CmdRecords, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: u64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'fleet.cmd_floor'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let floor = old.max(before).min(i64::MAX as u64);
        if floor > old {
            tx.execute(
                "DELETE FROM fleet_cmds WHERE issued_at < ?1",
                [floor as i64],
            )?;
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('fleet.cmd_floor', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [floor.to_string()],
            )?;
        }
        let live: i64 = tx.query_row("SELECT COUNT(*) FROM fleet_cmds", [], |r| r.get(0))?;
        tx.commit()?;
        Ok(CmdRecords {
            floor,
            live: live.max(0) as u64,
        })
    }
}

/// Raises a P1 user's highest counter to `counter` (inside the caller's transaction);
/// [`StoreError::CounterReplayed`] when it is not above the highest seen.
fn raise_p1_counter(tx: &Connection, user_id: u64, counter: u32) -> Result<(), StoreError> {
    let last: Option<i64> = tx
        .prepare_cached("SELECT counter FROM p1_counters WHERE user_id = ?1")?
        .query_row([user_id as i64], |r| r.get(0))
        .optional()?;
    set_p1_counter(tx, user_id, counter, last)
}

/// [`raise_p1_counter`] with the user's highest counter `last` already read in this
/// transaction.
fn set_p1_counter(
    tx: &Connection,
    user_id: u64,
    counter: u32,
    last: Option<i64>,
) -> Result<(), StoreError> {
    if let Some(last) = last {
        if i64::from(counter) <= last {
            return Err(StoreError::CounterReplayed {
                user_id,
                counter,
                last: last.clamp(0, i64::from(u32::MAX)) as u32,
            });
        }
    }
    tx.prepare_cached(
        "INSERT INTO p1_counters (user_id, counter) VALUES (?1, ?2)
         ON CONFLICT(user_id) DO UPDATE SET counter = excluded.counter",
    )?
    .execute(params![user_id as i64, i64::from(counter)])?;
    Ok(())
}

/// [`Db::offline_snapshot`] on `conn` (the connection, or a transaction open on it).
fn offline_snapshot_in(
    conn: &Connection,
    user_id: u64,
    day_start: Millis,
    acked_seq: u64,
) -> Result<OfflineSnapshot, StoreError> {
    // Quarter hours from the one holding `day_start`, the start of the shop's local day
    // (`posd_core::zone`: on a quarter hour in every zone in use). A fixed offset off the
    // quarter hour counts up to 15 minutes of the day before: stricter, never looser.
    let (last_counter, user_total_today, count, amount, oldest): (
        Option<i64>,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    ) = conn.prepare_cached(OFFLINE_SNAPSHOT_SQL)?.query_row(
        params![
            user_id as i64,
            (day_start / 900_000) as i64,
            acked_seq as i64
        ],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let (count, amount) = (count.unwrap_or(0), amount.unwrap_or(0));
    Ok(OfflineSnapshot {
        last_counter: last_counter.map(|c| c.clamp(0, i64::from(u32::MAX)) as u32),
        user_total_today: user_total_today.max(0) as u64,
        unsynced_count: count.clamp(0, i64::from(u32::MAX)) as u32,
        unsynced_amount: amount.max(0) as u64,
        oldest_unsynced_at: oldest.map(|o| o.max(0) as u64),
    })
}

/// Writes state changes (see [`write_states`]), commits, and advances `last_seq`.
fn commit_states(
    tx: rusqlite::Transaction<'_>,
    last_seq: &mut u64,
    txns: &[Transaction],
    receipts: Option<&posd_core::receipt::ReceiptCtx>,
) -> Result<Vec<u64>, StoreError> {
    let seqs = write_states(&tx, *last_seq, txns, receipts)?;
    tx.commit()?;
    if let Some(&last) = seqs.last() {
        *last_seq = last;
    }
    Ok(seqs)
}

/// One state change, committed; its `seq`.
fn commit_one(
    tx: rusqlite::Transaction<'_>,
    last_seq: &mut u64,
    txn: &Transaction,
    receipts: Option<&posd_core::receipt::ReceiptCtx>,
) -> Result<u64, StoreError> {
    let seqs = commit_states(tx, last_seq, std::slice::from_ref(txn), receipts)?;
    seqs.first()
        .copied()
        .ok_or_else(|| StoreError::BadRow("no seq written".into()))
}

/// A journal whose highest seq is not kept: refused, never numbered from 0 again (two events
/// would share a seq).
fn last_seq_missing() -> StoreError {
    StoreError::Corrupt("the highest seq (counters.last_seq) is missing".into())
}

/// Writes state changes (txn row, journal row, outbox event) inside an open transaction,
/// numbering them from `last_seq + 1`; updates the `last_seq` counter.
fn write_states(
    tx: &rusqlite::Transaction<'_>,
    last_seq: u64,
    txns: &[Transaction],
    receipts: Option<&posd_core::receipt::ReceiptCtx>,
) -> Result<Vec<u64>, StoreError> {
    let mut seq = last_seq;
    let mut seqs = Vec::with_capacity(txns.len());
    for txn in txns {
        seq += 1;
        let detail = match &txn.detail {
            Some(d) => {
                Some(serde_json::to_string(d).map_err(|e| StoreError::BadRow(e.to_string()))?)
            }
            None => None,
        };
        let id = txn.id.to_string();
        // What the printer is owed and what the counters lose depend on the row this replaces.
        let before = counted_row(tx, &id)?;
        let prev: Option<TxnState> = before.as_ref().and_then(|b| TxnState::parse(&b.state));
        tx.prepare_cached(
            "INSERT INTO txns (id, kind, method, channel, amount, currency, state, reason,
                 code_masked, host_ref, created_at, updated_at, detail, first_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, reason = excluded.reason,
                 host_ref = excluded.host_ref, code_masked = excluded.code_masked,
                 channel = excluded.channel, updated_at = excluded.updated_at,
                 detail = excluded.detail",
        )?
        .execute(params![
            id,
            txn.kind.as_str(),
            txn.method.as_str(),
            txn.channel,
            txn.amount,
            txn.currency.code(),
            txn.state.as_str(),
            txn.reason,
            txn.code_masked,
            txn.host_ref,
            txn.created_at as i64,
            txn.updated_at as i64,
            detail,
            seq as i64,
        ])?;
        // What the row counts now follows from `txn` and the row before (not read back).
        let after = CountedRow::after_write(txn, before.as_ref());
        count_row_change(tx, before.as_ref(), Some(&after))?;
        // Final: its code no longer pays anything in flight (issue 15).
        if prev.is_some_and(|p| p.in_flight()) && !txn.state.in_flight() {
            tx.prepare_cached("DELETE FROM codes_in_flight WHERE txn_id = ?1")?
                .execute([&id])?;
        }
        tx.prepare_cached("INSERT INTO journal (txn_id, state, at, seq) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![
                id,
                txn.state.as_str(),
                txn.updated_at as i64,
                seq as i64
            ])?;
        let event = Event {
            seq,
            event_id: Uuid::now_v7().to_string(),
            txn_id: id.clone(),
            kind: txn.event_type().to_string(),
            state: txn.state.as_str().to_string(),
            method: txn.method.as_str().to_string(),
            channel: txn.channel.clone(),
            amount: txn.amount,
            currency: txn.currency.code().to_string(),
            at: txn.updated_at,
            reason: txn.reason.clone(),
            host_ref: txn.host_ref.clone(),
            code_masked: txn.code_masked.clone(),
            detail: txn.detail.clone(),
        };
        let payload =
            serde_json::to_string(&event).map_err(|e| StoreError::BadRow(e.to_string()))?;
        tx.prepare_cached(
            "INSERT INTO outbox (seq, event_id, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            seq as i64,
            event.event_id,
            payload,
            txn.updated_at as i64
        ])?;
        if let Some(ctx) = receipts {
            print_jobs::owe(tx, txn, prev, ctx)?;
        }
        // An approved_offline event of a P1 sale is unsynced until the host acks it.
        if txn.state == TxnState::ApprovedOffline && after.method == Method::OfflineCode.as_str() {
            bump(tx, "offline_unsynced_count", 1)?;
            bump(tx, "offline_unsynced_amount", after.amount)?;
        }
        if posd_core::receipt::earns_receipt(txn) {
            tx.prepare_cached("UPDATE counters SET value = ?1 WHERE name = 'last_receipt_seq'")?
                .execute([seq as i64])?;
        }
        seqs.push(seq);
    }
    bump(tx, "outbox_pending", seqs.len() as i64)?;
    let kept = tx
        .prepare_cached("UPDATE counters SET value = ?1 WHERE name = 'last_seq'")?
        .execute([seq as i64])?;
    if kept != 1 {
        return Err(last_seq_missing());
    }
    Ok(seqs)
}

/// What one transaction row contributes to the running counters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CountedRow {
    state: String,
    method: String,
    amount: i64,
    /// The quarter hour of the row's creation (`created_at / 900000`).
    quarter: i64,
    /// (user, quarter hour) when the row counts in `p1_totals`.
    p1: Option<(i64, i64)>,
}

impl CountedRow {
    /// What the row counts once `write_states` has written `txn` over `before` (the row as it
    /// was, None for a new one): [`counted_row`]'s rule applied without reading the row back.
    /// The insert's `ON CONFLICT` keeps a row's method, amount and creation time and takes the
    /// state and `detail` from `txn`. `user_id` counts when SQLite's `json_extract` would call
    /// it an integer: a JSON integer within i64, or `true` / `false` (1 / 0); not a larger
    /// integer (a real to SQLite), a float or a string.
    fn after_write(txn: &Transaction, before: Option<&CountedRow>) -> CountedRow {
        let (method, amount, quarter) = match before {
            Some(b) => (b.method.clone(), b.amount, b.quarter),
            None => (
                txn.method.as_str().to_string(),
                txn.amount,
                (txn.created_at as i64) / 900_000,
            ),
        };
        let counts = method == Method::OfflineCode.as_str()
            && matches!(txn.state, TxnState::ApprovedOffline | TxnState::Settled);
        let user = match txn.detail.as_ref().and_then(|d| d.get("user_id")) {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::Bool(b)) => Some(i64::from(*b)),
            _ => None,
        };
        CountedRow {
            state: txn.state.as_str().to_string(),
            method,
            amount,
            quarter,
            p1: user.filter(|_| counts).map(|u| (u, quarter)),
        }
    }
}

fn counted_row(conn: &Connection, id: &str) -> Result<Option<CountedRow>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT state, method, amount, created_at / 900000,
                CASE WHEN method = 'offline_code' AND state IN ('approved_offline', 'settled')
                      AND typeof(json_extract(detail, '$.user_id')) = 'integer'
                     THEN json_extract(detail, '$.user_id') END
         FROM txns WHERE id = ?1",
    )?;
    Ok(st
        .query_row([id], |r| {
            let user: Option<i64> = r.get(4)?;
            let quarter: i64 = r.get(3)?;
            Ok(CountedRow {
                state: r.get(0)?,
                method: r.get(1)?,
                amount: r.get(2)?,
                quarter,
                p1: user.map(|u| (u, quarter)),
            })
        })
        .optional()?)
}

/// Moves a row's P1 money from what it counted before to what it counts now.
fn count_row_change(
    tx: &Connection,
    before: Option<&CountedRow>,
    after: Option<&CountedRow>,
) -> Result<(), StoreError> {
    let share = |r: Option<&CountedRow>| r.and_then(|r| r.p1.map(|k| (k, r.amount)));
    let (was, now) = (share(before), share(after));
    if was == now {
        return Ok(());
    }
    for ((user, quarter), delta) in was.map(|(k, a)| (k, -a)).into_iter().chain(now) {
        let mut up = tx.prepare_cached(
            "INSERT INTO p1_totals (user_id, quarter, total) VALUES (?1, ?2, ?3)
             ON CONFLICT(user_id, quarter) DO UPDATE SET total = total + excluded.total",
        )?;
        up.execute(params![user, quarter, delta])?;
        let mut zero = tx.prepare_cached(
            "DELETE FROM p1_totals WHERE user_id = ?1 AND quarter = ?2 AND total = 0",
        )?;
        zero.execute(params![user, quarter])?;
    }
    Ok(())
}

/// Adds `delta` to a running counter (inside the caller's SQLite transaction).
fn bump(tx: &Connection, name: &str, delta: i64) -> Result<(), StoreError> {
    if delta != 0 {
        let mut st = tx.prepare_cached("UPDATE counters SET value = value + ?2 WHERE name = ?1")?;
        st.execute(params![name, delta])?;
    }
    Ok(())
}

fn counter(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    let mut st = conn.prepare_cached("SELECT value FROM counters WHERE name = ?1")?;
    Ok(st
        .query_row([name], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0))
}

/// The running counters, as stored or as recounted from the rows they count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub outbox_pending: i64,
    /// Print jobs queued or sending.
    pub print_owed: i64,
    pub offline_unsynced_count: i64,
    pub offline_unsynced_amount: i64,
    /// (user, quarter hour, total), ordered.
    pub p1_totals: Vec<(i64, i64, i64)>,
}

impl Db {
    /// The counters as stored.
    pub fn counters(&self) -> Result<Counters, StoreError> {
        Ok(Counters {
            outbox_pending: counter(&self.conn, "outbox_pending")?,
            print_owed: counter(&self.conn, "print_owed")?,
            offline_unsynced_count: counter(&self.conn, "offline_unsynced_count")?,
            offline_unsynced_amount: counter(&self.conn, "offline_unsynced_amount")?,
            p1_totals: self.p1_totals_rows(
                "SELECT user_id, quarter, total FROM p1_totals ORDER BY user_id, quarter",
            )?,
        })
    }

    /// The counters recounted from the journal (a full scan: tests and diagnostics only).
    pub fn recount_counters(&self) -> Result<Counters, StoreError> {
        let outbox: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
        let print_owed: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM print_jobs WHERE state IN ('queued', 'sending')",
            [],
            |r| r.get(0),
        )?;
        let (count, amount): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(t.amount), 0)
             FROM txns t JOIN journal j ON j.txn_id = t.id
             WHERE j.state = 'approved_offline' AND t.method = 'offline_code' AND j.seq > ?1",
            [self.acked_seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Counters {
            outbox_pending: outbox,
            print_owed,
            offline_unsynced_count: count,
            offline_unsynced_amount: amount,
            p1_totals: self.p1_totals_rows(concat!(p1_totals_recount!(), " ORDER BY 1, 2"))?,
        })
    }

    /// Sets every counter to its recount, in one transaction (a full scan: for a journal
    /// filled outside the store API — benches, repairs — never on a sale path).
    pub fn rebuild_counters(&mut self) -> Result<Counters, StoreError> {
        let c = self.recount_counters()?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (name, v) in [
            ("outbox_pending", c.outbox_pending),
            ("print_owed", c.print_owed),
            ("offline_unsynced_count", c.offline_unsynced_count),
            ("offline_unsynced_amount", c.offline_unsynced_amount),
        ] {
            tx.execute(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name, v],
            )?;
        }
        tx.execute("DELETE FROM p1_totals", [])?;
        for (user, quarter, total) in &c.p1_totals {
            tx.execute(
                "INSERT INTO p1_totals (user_id, quarter, total) VALUES (?1, ?2, ?3)",
                params![user, quarter, total],
            )?;
        }
        tx.commit()?;
        Ok(c)
    }

    fn p1_totals_rows(&self, sql: &str) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// The journal's view of one offline user and the terminal's unsynced offline sales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OfflineSnapshot {
    pub last_counter: Option<u32>,
    pub user_total_today: u64,
    pub unsynced_count: u32,
    pub unsynced_amount: u64,
    pub oldest_unsynced_at: Option<u64>,
}

const TXN_COLS: &str = "id, kind, method, channel, amount, currency, state, reason, code_masked, \
                        host_ref, created_at, updated_at, detail";

type RawTxn = (
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<String>,
);

fn row_raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawTxn> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
    ))
}

fn raw_to_txn(r: RawTxn) -> Result<Transaction, StoreError> {
    let bad = |what: &str, v: &str| StoreError::BadRow(format!("txn {}: {what} {v:?}", r.0));
    Ok(Transaction {
        id: Uuid::parse_str(&r.0).map_err(|_| bad("id", &r.0))?,
        kind: TxnKind::parse(&r.1).ok_or_else(|| bad("kind", &r.1))?,
        method: Method::parse(&r.2).ok_or_else(|| bad("method", &r.2))?,
        channel: r.3.clone(),
        amount: r.4,
        currency: Currency::from_code(&r.5).map_err(|_| bad("currency", &r.5))?,
        state: TxnState::parse(&r.6).ok_or_else(|| bad("state", &r.6))?,
        reason: r.7.clone(),
        code_masked: r.8.clone(),
        host_ref: r.9.clone(),
        created_at: r.10.max(0) as u64,
        updated_at: r.11.max(0) as u64,
        detail: match &r.12 {
            Some(s) => Some(serde_json::from_str(s).map_err(|_| bad("detail", s))?),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use posd_core::txn::{Transaction, TxnKind};

    pub(super) fn txn(now: Millis, state: TxnState) -> Transaction {
        let mut t = Transaction::new(
            TxnKind::Sale,
            Method::PaymentCode,
            1250,
            Currency::from_code("CNY").unwrap(),
            state,
            now,
            [now as u8; 10],
        );
        t.channel = Some("wechat".into());
        t
    }

    #[test]
    fn settlements_are_recorded_in_one_commit_and_only_for_sales_still_approved_offline() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let a = txn(1000, TxnState::ApprovedOffline);
        let b = txn(1001, TxnState::ApprovedOffline);
        let voided = txn(1002, TxnState::Voided);
        for t in [&a, &b, &voided] {
            db.record(t).unwrap();
        }
        let before = db.last_seq;
        let changes = db.total_changes();
        let v = |t: &Transaction, settled: bool, reason: Option<&str>| SettlementVerdict {
            txn_id: t.id.to_string(),
            settled,
            reason: reason.map(str::to_string),
        };
        let verdicts = [
            v(&a, true, None),
            v(&voided, true, None),
            v(&b, false, Some("signature")),
            SettlementVerdict {
                txn_id: "no-such-sale".into(),
                settled: true,
                reason: None,
            },
            // The same sale twice in one call: changed once.
            v(&a, false, Some("late")),
        ];
        let out = db.record_settlements(&verdicts, 5_000).unwrap();
        assert_eq!(
            out,
            vec![
                Settled::Recorded(before + 1),
                Settled::Ignored(TxnState::Voided),
                Settled::Recorded(before + 2),
                Settled::Unknown,
                Settled::Ignored(TxnState::Settled),
            ]
        );
        let a2 = db.txn(&a.id.to_string()).unwrap().unwrap();
        assert_eq!((a2.state, a2.updated_at), (TxnState::Settled, 5_000));
        let b2 = db.txn(&b.id.to_string()).unwrap().unwrap();
        assert_eq!(b2.state, TxnState::SettlementRejected);
        assert_eq!(b2.reason.as_deref(), Some("signature"));
        assert_eq!(
            db.txn(&voided.id.to_string()).unwrap().unwrap().state,
            TxnState::Voided
        );
        // Two events, waiting for the host like any other.
        assert_eq!(db.last_seq, before + 2);
        assert_eq!(db.outbox_after(before, 10).unwrap().len(), 2);
        assert!(db.total_changes() > changes);
        // Nothing left to settle: nothing written.
        let again = db.record_settlements(&verdicts[..1], 6_000).unwrap();
        assert_eq!(again, vec![Settled::Ignored(TxnState::Settled)]);
        assert_eq!(db.last_seq, before + 2);
    }

    #[test]
    fn an_event_set_aside_keeps_its_seq_and_stays_whole_in_the_journal() {
        use posd_core::protocol::limits::SetAsideReason;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let mut db = Db::open(&path).unwrap();
        for i in 0..3 {
            db.record(&txn(1000 + i, TxnState::Authorizing)).unwrap();
        }
        let original = db.outbox_after(1, 1).unwrap()[0].1.clone();
        // A limit below the event's size: its payload is not loaded, only its size.
        let limit = original.len() as u64 - 1;
        let rows = db.outbox_next(0, 10, limit).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.payload.is_none()));
        assert_eq!(rows[1].size, original.len() as u64);
        let rows = db.outbox_next(0, 10, 1 << 20).unwrap();
        assert_eq!(rows[1].payload.as_deref(), Some(original.as_str()));

        let a = db
            .set_aside(2, SetAsideReason::TooLarge, 100, 5_000)
            .unwrap()
            .unwrap();
        assert_eq!((a.seq, a.size), (2, original.len() as u64));
        let ev: Event = serde_json::from_str(&a.stub).unwrap();
        assert_eq!((ev.seq, ev.kind.as_str()), (2, "set_aside"));
        assert_eq!(ev.event_id, a.event_id);
        // The stub is what the outbox now holds; the original is kept whole.
        assert_eq!(db.outbox_after(1, 1).unwrap()[0].1, a.stub);
        assert_eq!(
            db.set_aside_payload(2).unwrap().as_deref(),
            Some(original.as_str())
        );
        let q = db.queue_stats(5_000).unwrap();
        assert_eq!((q.set_aside, q.set_aside_last_seq, q.pending), (1, 2, 3));
        // Acked events cannot be set aside; the counts survive a reopen.
        db.ack(3).unwrap();
        assert_eq!(
            db.set_aside(1, SetAsideReason::TooLarge, 100, 6_000)
                .unwrap(),
            None
        );
        drop(db);
        let db = Db::open(&path).unwrap();
        let q = db.queue_stats(6_000).unwrap();
        assert_eq!((q.set_aside, q.set_aside_last_seq, q.pending), (1, 2, 0));
        assert_eq!(
            db.set_aside_payload(2).unwrap().as_deref(),
            Some(original.as_str())
        );
    }

    /// The drain reads the outbox many times a second: its statement is parsed once, not at
    /// every read (a bound LIMIT made SQLite prepare it again each run), and it takes no more
    /// rows than asked.
    #[test]
    fn the_drains_read_is_prepared_once_and_takes_what_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        for i in 0..20 {
            db.record(&txn(1000 + i, TxnState::Authorizing)).unwrap();
        }
        for (after, limit) in [(0, 5), (5, 3), (8, 50), (20, 5)] {
            let rows = db.outbox_next(after, limit, 1 << 20).unwrap();
            let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
            let want: Vec<u64> = (after + 1..=20).take(limit as usize).collect();
            assert_eq!(seqs, want);
            let after_rows = db.outbox_after(after, limit).unwrap();
            assert_eq!(after_rows.iter().map(|r| r.0).collect::<Vec<_>>(), want);
            db.ack(after.min(2)).unwrap();
        }
        // (runs, re-prepares) of the cached statement: the runs say it is the one the reads used.
        let status = |sql: &str| {
            let st = db.conn().prepare_cached(sql).unwrap();
            (
                st.get_status(rusqlite::StatementStatus::Run),
                st.get_status(rusqlite::StatementStatus::RePrepare),
            )
        };
        assert_eq!(status(OUTBOX_NEXT_SQL), (4, 0));
        assert_eq!(status(OUTBOX_AFTER_SQL), (4, 0));
    }

    #[test]
    fn seq_is_gap_free_and_outbox_drains_on_ack() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let mut t = txn(1000, TxnState::Authorizing);
        assert_eq!(db.record(&t).unwrap(), 1);
        t.state = TxnState::Approved;
        t.updated_at = 2000;
        assert_eq!(db.record(&t).unwrap(), 2);
        let seqs = db
            .record_batch(&[
                txn(3000, TxnState::Authorizing),
                txn(3001, TxnState::Authorizing),
            ])
            .unwrap();
        assert_eq!(seqs, [3, 4]);
        let out = db.outbox_after(0, 10).unwrap();
        assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
        let ev: Event = serde_json::from_str(&out[1].1).unwrap();
        assert_eq!(ev.state, "approved");
        assert_eq!(ev.seq, 2);
        assert_eq!(db.history(&t.id.to_string()).unwrap().len(), 2);
        assert_eq!(
            db.txn(&t.id.to_string()).unwrap().unwrap().state,
            TxnState::Approved
        );

        assert!(matches!(db.ack(5), Err(StoreError::AckBeyondLast { .. })));
        assert_eq!(db.outbox_after(0, 10).unwrap().len(), 4);
        assert_eq!(db.ack(2).unwrap().dropped, 2);
        assert_eq!(db.ack(1).unwrap().dropped, 0);
        assert_eq!(db.outbox_after(0, 10).unwrap()[0].0, 3);
        let q = db.queue_stats(5000).unwrap();
        assert_eq!(
            (q.pending, q.oldest_age_s, q.last_seq, q.acked_seq),
            (2, 2, 4, 2)
        );
        drop(db);
        // Reopen: counters survive.
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        assert_eq!((db.last_seq(), db.acked_seq()), (4, 2));
        assert_eq!(db.record(&txn(6000, TxnState::Authorizing)).unwrap(), 5);
        assert_eq!(db.integrity_check().unwrap(), "ok");
        assert_eq!(db.in_flight().unwrap().len(), 3);
    }

    #[test]
    fn disk_full_refuses_and_keeps_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let first = txn(1, TxnState::Authorizing);
        db.record(&first).unwrap();
        let pages: i64 = db
            .conn()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        db.conn()
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        // Big enough that it cannot fit in the pages left.
        let mut big = txn(2, TxnState::Authorizing);
        big.detail = Some(serde_json::json!({ "pad": "x".repeat(64 * 1024) }));
        let err = db.record(&big).unwrap_err();
        assert!(matches!(err, StoreError::DiskFull), "{err:?}");
        assert_eq!(db.last_seq(), 1);
        assert!(db.txn(&big.id.to_string()).unwrap().is_none());
        assert!(db.txn(&first.id.to_string()).unwrap().is_some());
        db.conn()
            .pragma_update(None, "max_page_count", 1_000_000)
            .unwrap();
        assert_eq!(db.record(&big).unwrap(), 2);
    }

    #[test]
    fn refunds_voids_and_batch_close_in_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        db.set_receipts(Some(posd_core::receipt::ReceiptCtx {
            terminal: "T1".into(),
            zone: Default::default(),
            ..Default::default()
        }));
        let sale = txn(10, TxnState::Approved);
        db.record(&sale).unwrap();
        let refund = |amount: i64, n: u8| {
            let mut r = Transaction::new(
                TxnKind::Refund,
                Method::PaymentCode,
                amount,
                Currency::from_code("CNY").unwrap(),
                TxnState::Authorizing,
                20 + u64::from(n),
                [n; 10],
            );
            r.channel = Some("wechat".into());
            r.detail = Some(
                serde_json::json!({"original": sale.id.to_string(), "refund_id": format!("r{n}")}),
            );
            r
        };
        let orig = sale.id.to_string();
        let mut r1 = refund(1000, 1);
        db.record_refund(&r1, &orig).unwrap();
        // 1000 in flight + 251 > 1250: refused, nothing written; said in the shop's language.
        match db.record_refund(&refund(251, 2), &orig) {
            Err(StoreError::Refused(r)) => {
                let en = r.to_string();
                assert!(
                    en.contains("exceeds what is left") && en.contains("2.51"),
                    "{en}"
                );
                let es = r.text(posd_core::i18n::Language::Es);
                assert!(
                    es.contains("supera lo que queda") && es.contains("2.51"),
                    "{es}"
                );
                let zh = r.text(posd_core::i18n::Language::ZhCn);
                assert!(zh.contains("超过交易") && zh.contains(&orig), "{zh}");
            }
            other => panic!("refund over what is left: {other:?}"),
        }
        assert_eq!(db.refund_context(&orig).unwrap().committed, 1000);
        r1.state = TxnState::Approved;
        db.record(&r1).unwrap();
        assert_eq!(db.refund_by_id("r1").unwrap().unwrap().id, r1.id);
        let mut r3 = refund(250, 3);
        db.record_refund(&r3, &orig).unwrap();
        // An online sale cannot be voided; an unsettled offline one can.
        let void = |n: u8| {
            Transaction::new(
                TxnKind::Void,
                Method::OfflineCode,
                0,
                Currency::from_code("CNY").unwrap(),
                TxnState::Voided,
                40,
                [n; 10],
            )
        };
        assert!(matches!(
            db.record_void(&void(4), &orig, 40),
            Err(StoreError::Refused(_))
        ));
        let mut off = txn(30, TxnState::ApprovedOffline);
        off.method = Method::OfflineCode;
        off.channel = Some("p1".into());
        db.record(&off).unwrap();
        let v = db.record_void(&void(5), &off.id.to_string(), 41).unwrap();
        assert_eq!(v.amount, off.amount);
        assert_eq!(
            db.txn(&off.id.to_string()).unwrap().unwrap().state,
            TxnState::Voided
        );

        let close = Transaction::new(
            TxnKind::BatchClose,
            Method::None,
            0,
            Currency::from_code("CNY").unwrap(),
            TxnState::Closed,
            50,
            [9; 10],
        );
        let (b, seq) = db.batch_close(close.clone()).unwrap();
        let z: posd_core::batch::ZTotals =
            serde_json::from_value(b.detail.clone().unwrap()).unwrap();
        // 1250 sold, 1000 refunded, the voided sale 0; the 250 refund still in flight is
        // carried into the next batch, not counted here.
        assert_eq!(z.net_total, 250);
        assert_eq!(z.carried_count, 1);
        assert_eq!(z.carried_txns, [r3.id.to_string()]);
        assert!(!z.rows.iter().any(|r| r.state == "authorizing"), "{z:?}");
        assert_eq!(z.net["payment_code/wechat"], 250);
        assert_eq!(z.net["offline_code/p1"], 0);
        assert_eq!((z.batch_no, z.from_seq, z.upto_seq), (1, 0, seq - 1));
        assert_eq!(z.opened_at, 10);
        // The Z report is owed to the printer.
        let jobs = db.print_jobs(20).unwrap();
        assert!(jobs.iter().any(|j| j.1 == b.id.to_string()));
        // The next batch holds only what came after the close.
        let mut c2 = close.clone();
        c2.id = posd_core::txn::uuid_v7(60, [8; 10]);
        let (b2, seq2) = db.batch_close(c2.clone()).unwrap();
        let z2: posd_core::batch::ZTotals = serde_json::from_value(b2.detail.unwrap()).unwrap();
        assert_eq!((z2.batch_no, z2.from_seq, z2.rows.len()), (2, seq, 0));
        // Still in flight: carried on.
        assert_eq!((z2.carried_count, z2.carried_in_count), (1, 0));
        // It ends: the third batch counts it, with its own first seq, and carries nothing.
        r3.state = TxnState::Approved;
        db.record(&r3).unwrap();
        let mut c3 = c2.clone();
        c3.id = posd_core::txn::uuid_v7(70, [7; 10]);
        let (b3, _) = db.batch_close(c3).unwrap();
        let z3: posd_core::batch::ZTotals = serde_json::from_value(b3.detail.unwrap()).unwrap();
        assert_eq!((z3.batch_no, z3.from_seq), (3, seq2));
        assert_eq!((z3.carried_count, z3.carried_in_count), (0, 1));
        assert_eq!((z3.txn_count, z3.net_total), (1, -250));
        let first: i64 = db
            .conn
            .query_row(
                "SELECT first_seq FROM txns WHERE id = ?1",
                [r3.id.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        let mut d = posd_core::batch::MembershipDigest::new();
        d.add(first as u64, &r3.id.to_string(), -250);
        assert_eq!(d.finish().1, z3.txn_digest);
        let left: i64 = db
            .conn
            .query_row("SELECT COUNT(*) FROM carried", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "nothing carried stays behind");
    }

    fn p1_sale(now: Millis, user: u64, amount: i64, n: u8) -> Transaction {
        let mut t = Transaction::new(
            TxnKind::Sale,
            Method::OfflineCode,
            amount,
            Currency::from_code("CNY").unwrap(),
            TxnState::ApprovedOffline,
            now,
            [n; 10],
        );
        t.channel = Some("p1".into());
        t.detail = Some(serde_json::json!({"user_id": user, "counter": n}));
        t
    }

    /// `write_states` does not read back a row it has just written: what the row counts is
    /// taken from the transaction and the row before ([`CountedRow::after_write`]). That must
    /// be exactly what [`counted_row`] reads from the stored row, whatever `detail` holds, for
    /// a new row and for one written over (whose method, amount and creation time stay).
    #[test]
    fn a_written_rows_counted_values_are_what_the_stored_row_gives() {
        use serde_json::json;
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let details = [
            Some(json!({"user_id": 7, "counter": 1})),
            Some(json!({"user_id": -3})),
            Some(json!({"user_id": i64::MAX})),
            Some(json!({"user_id": u64::MAX})),
            Some(json!({"user_id": 7.0})),
            Some(json!({"user_id": 7.5})),
            Some(json!({"user_id": "7"})),
            Some(json!({"user_id": true})),
            Some(json!({"user_id": false})),
            Some(json!({"user_id": null})),
            Some(json!({"user_id": [7]})),
            Some(json!({"user_id": {"id": 7}})),
            Some(json!({"user": 7})),
            Some(json!([{"user_id": 7}])),
            Some(json!("user_id")),
            None,
        ];
        let methods = [Method::OfflineCode, Method::PaymentCode, Method::Card];
        let states = [
            TxnState::ApprovedOffline,
            TxnState::Settled,
            TxnState::Approved,
            TxnState::Authorizing,
        ];
        // Creation times on both sides of zero (as stored) and of a quarter hour's edge.
        let times = [1_700_000_000_000u64, 899_999, 900_000, u64::MAX - 5];
        let check = |db: &Db, t: &Transaction, before: Option<&CountedRow>| {
            let stored = counted_row(&db.conn, &t.id.to_string()).unwrap();
            assert_eq!(
                Some(CountedRow::after_write(t, before)),
                stored,
                "{:?} {:?} created {} detail {:?} over {before:?}",
                t.method,
                t.state,
                t.created_at,
                t.detail
            );
            stored
        };
        let mut n = 0usize;
        for detail in &details {
            for method in methods {
                for state in states {
                    n += 1;
                    let mut t = Transaction::new(
                        TxnKind::Sale,
                        method,
                        100 + n as i64,
                        Currency::from_code("CNY").unwrap(),
                        state,
                        times[n % 4],
                        [n as u8; 10],
                    );
                    t.detail = detail.clone();
                    db.record(&t).unwrap();
                    let before = check(&db, &t, None);
                    // The same transaction again, with another state and detail; its method,
                    // amount and creation time as the caller holds them are not the row's.
                    t.state = states[(n + 1) % 4];
                    t.detail = details[(n * 7) % details.len()].clone();
                    t.method = methods[(n + 1) % 3];
                    t.amount += 1;
                    t.created_at = times[(n + 2) % 4];
                    db.record(&t).unwrap();
                    check(&db, &t, before.as_ref());
                }
            }
        }
        assert_eq!(db.counters().unwrap(), db.recount_counters().unwrap());
    }

    /// The fewest frames the log grows by over one `write`, in `sales` rounds of `prepare`
    /// (not counted) then `write`, counted from the log's growth (a b-tree that splits costs
    /// one round more).
    fn log_frames<T>(
        sales: u8,
        mut prepare: impl FnMut(&mut Db, u8) -> T,
        mut write: impl FnMut(&mut Db, T),
    ) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let mut db = Db::open(&path).unwrap();
        // No checkpoint in between: the log only grows.
        db.set_autocheckpoint(1_000_000).unwrap();
        let page: u64 = db
            .conn
            .pragma_query_value(None, "page_size", |r| r.get::<_, i64>(0))
            .unwrap() as u64;
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let wal_len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let mut fewest = u64::MAX;
        for n in 1..=sales {
            let t = prepare(&mut db, n);
            let before = wal_len();
            write(&mut db, t);
            // The first write of a log has its 32-byte header.
            let grown = wal_len() - before - if before == 0 { 32 } else { 0 };
            assert_eq!(grown % (page + 24), 0, "whole frames");
            fewest = fewest.min(grown / (page + 24));
        }
        fewest
    }

    /// A P1 sale's commit changes 11 pages, so the log writes and syncs 11 frames (17 before
    /// migration #14, 15 before #15, 13 with the journal keyed by `id`): each page more is a
    /// frame more on every sale.
    #[test]
    fn a_p1_sale_writes_eleven_pages_to_the_log() {
        let pages = log_frames(
            8,
            |_, n| n,
            |db, n| {
                let now = 1_700_000_000_000 + u64::from(n) * 1000;
                let t = p1_sale(now, 9, 100, n);
                db.record_offline_sale_checked(&t, 9, u32::from(n), now - 3_600_000, |_| {
                    Ok::<(), ()>(())
                })
                .unwrap()
                .unwrap();
            },
        );
        assert_eq!(pages, 11, "pages a P1 sale's commit changes");
    }

    /// A journal this version creates has [`PAGE_SIZE`] pages; one an earlier version created
    /// keeps its 4 KiB (SQLite cannot change it in WAL mode), and the limits set in bytes come
    /// out in pages of each one's own size.
    #[test]
    fn a_new_journal_has_small_pages_and_an_older_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let autocheckpoint = |db: &Db| -> i64 {
            db.conn
                .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
                .unwrap()
        };
        let mut new = Db::open(&dir.path().join("new.sqlite")).unwrap();
        let page: i64 = new
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        assert_eq!(page, i64::from(PAGE_SIZE));
        assert_eq!(new.pages(CHECKPOINTER_BACKSTOP_BYTES), 32 * 1024);
        new.set_disk_low(true).unwrap();
        assert_eq!(autocheckpoint(&new), 64, "64 KiB of 1 KiB pages");

        let old_path = dir.path().join("old.sqlite");
        {
            // As posd created its journal before this version: SQLite's default pages, WAL.
            let c = rusqlite::Connection::open(&old_path).unwrap();
            c.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;")
                .unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let mut old = Db::open(&old_path).unwrap();
        let page: i64 = old
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        assert_eq!(page, 4096);
        assert_eq!(old.pages(CHECKPOINTER_BACKSTOP_BYTES), 8000 + 192);
        old.set_disk_low(true).unwrap();
        assert_eq!(autocheckpoint(&old), 16, "64 KiB of 4 KiB pages");
        old.record(&txn(1, TxnState::Approved)).unwrap();
        assert_eq!(old.integrity_check().unwrap(), "ok");
    }

    /// The journal refuses a P1 counter at or below the user's highest, through the one-call
    /// path too (its counter read comes from the rules' snapshot): `CounterReplayed`, and
    /// nothing written, whatever the rules said.
    #[test]
    fn a_replayed_p1_counter_is_refused_by_the_checked_call_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let now = 1_700_000_000_000;
        let day = now - 3_600_000;
        let accept = |_: &OfflineSnapshot| Ok::<(), ()>(());
        db.record_offline_sale_checked(&p1_sale(now, 9, 250, 5), 9, 5, day, accept)
            .unwrap()
            .unwrap();
        let (seq, counters) = (db.last_seq(), db.counters().unwrap());
        for (n, counter) in [(6u8, 5u32), (7, 4), (8, 0)] {
            let t = p1_sale(now + u64::from(n), 9, 100, n);
            match db.record_offline_sale_checked(&t, 9, counter, day, accept) {
                Err(StoreError::CounterReplayed {
                    user_id: 9,
                    counter: c,
                    last: 5,
                }) => assert_eq!(c, counter),
                other => panic!("counter {counter} after 5: {other:?}"),
            }
            assert!(db.txn(&t.id.to_string()).unwrap().is_none());
        }
        assert_eq!(db.last_seq(), seq, "no event numbered");
        assert_eq!(db.counters().unwrap(), counters);
        assert_eq!(db.offline_snapshot(9, day).unwrap().last_counter, Some(5));
        // Another user's counters are their own.
        db.record_offline_sale_checked(&p1_sale(now + 9, 10, 100, 9), 10, 1, day, accept)
            .unwrap()
            .unwrap();
    }

    /// An online sale's two commits, `authorizing` with its code and then `approved`, change
    /// 10 and 8 pages (13 and 11 before migration #15, 12 and 10 with the journal keyed by
    /// `id`).
    #[test]
    fn an_online_sales_two_commits_write_ten_and_eight_pages() {
        let sale = |n: u8| {
            txn(
                1_700_000_000_000 + u64::from(n) * 1000,
                TxnState::Authorizing,
            )
        };
        let first = log_frames(
            8,
            |_, n| n,
            |db, n| {
                db.record_with_code(&sale(n), &[n; 32]).unwrap();
            },
        );
        let second = log_frames(
            8,
            |db, n| {
                db.record_with_code(&sale(n), &[n; 32]).unwrap();
                let mut done = sale(n);
                done.state = TxnState::Approved;
                done.updated_at += 800;
                done
            },
            |db, done| {
                db.record(&done).unwrap();
            },
        );
        assert_eq!(
            (first, second),
            (10, 8),
            "pages of an online sale's two commits"
        );
    }

    /// Every running counter equals a full recount of the rows it counts.
    fn assert_counters_exact(db: &Db, step: &str) {
        let stored = db.counters().unwrap();
        let recount = db.recount_counters().unwrap();
        assert_eq!(stored, recount, "after {step}");
    }

    #[test]
    fn running_counters_equal_a_full_recount_after_every_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let mut db = Db::open(&path).unwrap();
        db.set_receipts(Some(posd_core::receipt::ReceiptCtx {
            terminal: "T1".into(),
            ..Default::default()
        }));
        assert_counters_exact(&db, "open");
        // Online sales: authorizing then approved, one declined.
        let mut online = txn(1_000, TxnState::Authorizing);
        db.record(&online).unwrap();
        online.state = TxnState::Approved;
        online.updated_at = 1_100;
        db.record(&online).unwrap();
        let mut declined = txn(1_200, TxnState::Authorizing);
        declined.id = posd_core::txn::uuid_v7(1_200, [42; 10]);
        db.record(&declined).unwrap();
        declined.state = TxnState::Declined;
        db.record(&declined).unwrap();
        assert_counters_exact(&db, "online sales");
        // P1 sales of two users, across two days and two quarter hours.
        let day = 86_400_000u64;
        let a1 = p1_sale(day + 1_000, 7, 300, 1);
        let a2 = p1_sale(day + 1_000_000, 7, 200, 2);
        let b1 = p1_sale(day + 2_000, 8, 150, 3);
        let a0 = p1_sale(1_500, 7, 999, 4); // the day before
        for (t, c) in [(&a1, 1), (&a2, 2), (&b1, 3), (&a0, 4)] {
            db.record_offline_sale(
                t,
                t.detail.as_ref().unwrap()["user_id"].as_u64().unwrap(),
                c,
            )
            .unwrap();
        }
        assert_counters_exact(&db, "P1 sales");
        let snap = db.offline_snapshot(7, day).unwrap();
        assert_eq!(snap.user_total_today, 500);
        assert_eq!((snap.unsynced_count, snap.unsynced_amount), (4, 1649));
        assert_eq!(snap.oldest_unsynced_at, Some(day + 1_000));
        // A replayed counter writes nothing, counters included.
        assert!(db
            .record_offline_sale(&p1_sale(day + 3_000, 7, 50, 9), 7, 2)
            .is_err());
        assert_counters_exact(&db, "replayed counter");
        // A card stored for forwarding is approved_offline too, but not a P1 sale.
        let mut card = txn(day + 5_000, TxnState::ApprovedOffline);
        card.method = Method::Card;
        card.id = posd_core::txn::uuid_v7(day + 5_000, [43; 10]);
        db.record(&card).unwrap();
        assert_counters_exact(&db, "card SAF");
        // An ack in the middle of the P1 sales.
        let a1_seq = db.history(&a1.id.to_string()).unwrap()[0].0;
        db.ack(a1_seq).unwrap();
        assert_counters_exact(&db, "ack");
        assert_eq!(db.offline_snapshot(7, day).unwrap().unsynced_count, 3);
        // Settled, rejected, voided.
        let mut settled = a1.clone();
        settled.state = TxnState::Settled;
        db.record(&settled).unwrap();
        let mut rejected = b1.clone();
        rejected.state = TxnState::SettlementRejected;
        db.record(&rejected).unwrap();
        assert_counters_exact(&db, "settlement");
        assert_eq!(db.offline_snapshot(8, day).unwrap().user_total_today, 0);
        let void = Transaction::new(
            TxnKind::Void,
            Method::OfflineCode,
            0,
            Currency::from_code("CNY").unwrap(),
            TxnState::Voided,
            day + 6_000,
            [44; 10],
        );
        db.record_void(&void, &a2.id.to_string(), day + 6_000)
            .unwrap();
        assert_counters_exact(&db, "void");
        assert_eq!(db.offline_snapshot(7, day).unwrap().user_total_today, 300);
        // A refund of the online sale, approved.
        let mut refund = Transaction::new(
            TxnKind::Refund,
            Method::PaymentCode,
            500,
            Currency::from_code("CNY").unwrap(),
            TxnState::Authorizing,
            day + 7_000,
            [45; 10],
        );
        refund.detail =
            Some(serde_json::json!({"original": online.id.to_string(), "refund_id": "r1"}));
        db.record_refund(&refund, &online.id.to_string()).unwrap();
        refund.state = TxnState::Approved;
        db.record(&refund).unwrap();
        assert_counters_exact(&db, "refund");
        // The print queue's jobs through every end: printed, unsent and sent again, requeued as
        // a reprint, failed, unconfirmed.
        assert!(db.counters().unwrap().print_owed >= 4, "receipts are owed");
        let job = db.next_print_job().unwrap().unwrap();
        db.start_print_job(job.id).unwrap();
        assert_counters_exact(&db, "print job sending");
        db.unsend_print_job(job.id, "paper out").unwrap();
        db.start_print_job(job.id).unwrap();
        db.requeue_uncertain_print_job(
            job.id,
            &job.doc,
            job.language.unwrap_or_default(),
            0,
            "silent",
        )
        .unwrap();
        assert_counters_exact(&db, "print job requeued");
        db.start_print_job(job.id).unwrap();
        db.finish_print_job(job.id, None, day + 7_100).unwrap();
        assert_counters_exact(&db, "print job printed");
        let job = db.next_print_job().unwrap().unwrap();
        db.finish_print_job(job.id, Some("cutter jam"), day + 7_200)
            .unwrap();
        let job = db.next_print_job().unwrap().unwrap();
        db.start_print_job(job.id).unwrap();
        db.unconfirmed_print_job(job.id, "silent", day + 7_300)
            .unwrap();
        assert_counters_exact(&db, "print jobs failed and unconfirmed");
        // A batch close, a partial ack, a restart, a full ack.
        let close = Transaction::new(
            TxnKind::BatchClose,
            Method::None,
            0,
            Currency::from_code("CNY").unwrap(),
            TxnState::Closed,
            day + 8_000,
            [46; 10],
        );
        let (_, close_seq) = db.batch_close(close).unwrap();
        assert_counters_exact(&db, "batch close");
        db.ack(close_seq - 3).unwrap();
        assert_counters_exact(&db, "second ack");
        drop(db);
        let mut db = Db::open(&path).unwrap();
        assert_counters_exact(&db, "restart");
        db.ack(close_seq).unwrap();
        assert_counters_exact(&db, "full ack");
        let c = db.counters().unwrap();
        assert_eq!(
            (
                c.outbox_pending,
                c.offline_unsynced_count,
                c.offline_unsynced_amount
            ),
            (0, 0, 0)
        );
        assert_eq!(db.queue_stats(day + 9_000).unwrap().pending, 0);
        // A write refused by the disk leaves the counters as they were (same transaction).
        let pages: i64 = db
            .conn()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        db.conn()
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let mut big = p1_sale(day + 10_000, 7, 10, 5);
        big.detail.as_mut().unwrap()["pad"] = serde_json::json!("x".repeat(64 * 1024));
        assert!(matches!(
            db.record_offline_sale(&big, 7, 5),
            Err(StoreError::DiskFull)
        ));
        assert_counters_exact(&db, "disk full");
        assert_eq!(db.counters().unwrap().outbox_pending, 0);
    }

    /// A journal at `path` with the migrations before number `n` applied, as a posd of then
    /// left it (no rows).
    fn journal_before_migration(path: &Path, n: usize) -> Connection {
        let conn = Connection::open(path).unwrap();
        for sql in &MIGRATIONS[..n - 1] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", (n - 1) as i64)
            .unwrap();
        conn
    }

    #[test]
    fn migration_16_drops_the_totals_of_sales_retention_removed_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let now = 1_700_000_000_000u64;
        let quarter = (now / 900_000) as i64;
        {
            let mut db = Db::open(&path).unwrap();
            let t = p1_sale(now, 9, 250, 1);
            db.record_offline_sale_checked(&t, 9, 1, now - 3_600_000, |_| Ok::<(), ()>(()))
                .unwrap()
                .unwrap();
            // As an older posd's retention left it: the share of a sale pruned long ago.
            db.conn()
                .execute_batch(
                    "INSERT INTO p1_totals (user_id, quarter, total) VALUES (9, 1000, 700);
                     PRAGMA user_version = 15;",
                )
                .unwrap();
        }
        let db = Db::open(&path).unwrap();
        let counters = db.counters().unwrap();
        assert_eq!(counters.p1_totals, vec![(9, quarter, 250)]);
        assert_eq!(counters, db.recount_counters().unwrap());
        assert_eq!(
            db.offline_snapshot(9, now - 3_600_000)
                .unwrap()
                .user_total_today,
            250
        );
    }

    #[test]
    fn migration_14_carries_the_highest_seq_over_and_numbering_goes_on_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        {
            // A journal as posd left it before migration #14, 41 events numbered.
            let conn = journal_before_migration(&path, 14);
            conn.execute_batch("UPDATE meta SET value = '41' WHERE key = 'last_seq'")
                .unwrap();
        }
        let mut db = Db::open(&path).unwrap();
        assert_eq!(db.last_seq(), 41);
        assert_eq!(db.meta("last_seq").unwrap(), None, "one place keeps it");
        let t = txn(1_000, TxnState::Approved);
        assert_eq!(db.record(&t).unwrap(), 42);
        drop(db);
        let conn = Connection::open(&path).unwrap();
        let index: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'txns_p1_user'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 0);
        // Below a seq already given, or missing, the journal is refused rather than numbered
        // again from there.
        conn.execute("UPDATE counters SET value = 41 WHERE name = 'last_seq'", [])
            .unwrap();
        assert!(matches!(Db::open(&path), Err(StoreError::Corrupt(_))));
        conn.execute("DELETE FROM counters WHERE name = 'last_seq'", [])
            .unwrap();
        drop(conn);
        assert!(matches!(Db::open(&path), Err(StoreError::Corrupt(_))));
    }

    /// A short reference is looked up in bounded steps of history, newest first; two
    /// transactions that share it are both found, one step at a time.
    #[test]
    fn a_short_reference_is_found_in_bounded_steps_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        // `txn` makes its id from the time and `[now as u8; 10]`: A and B share their last
        // 12 hex digits, C does not.
        let (a, b, c) = (
            txn(1_000, TxnState::Approved),
            txn(1_256, TxnState::Approved),
            txn(1_001, TxnState::Approved),
        );
        let short = posd_core::txn::short_ref(&a.id);
        assert_eq!(short, posd_core::txn::short_ref(&b.id));
        assert_ne!(short, posd_core::txn::short_ref(&c.id));
        for t in [&a, &b, &c] {
            db.record(t).unwrap();
        }
        let ids = |v: Vec<Transaction>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        let (found, next) = db.txns_by_short_ref_step(&short, 3, 100).unwrap();
        assert_eq!((ids(found), next), (vec![b.id, a.id], 0));
        let c_short = posd_core::txn::short_ref(&c.id);
        let (found, _) = db.txns_by_short_ref_step(&c_short, 3, 100).unwrap();
        assert_eq!(ids(found), vec![c.id]);
        // One seq at a time: C's (3) holds none of them, then B (2), then A (1).
        let mut below = 3;
        let mut steps = Vec::new();
        while below > 0 {
            let (found, next) = db.txns_by_short_ref_step(&short, below, 1).unwrap();
            steps.push(ids(found));
            below = next;
        }
        assert_eq!(steps, vec![vec![], vec![b.id], vec![a.id]]);
    }

    /// Pruned history is passed in one step: the next step starts at the newest transaction
    /// kept under the last one, so a lookup's steps follow the journal that is kept, not every
    /// seq the terminal ever issued.
    #[test]
    fn a_short_reference_lookup_passes_pruned_history_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let txns: Vec<Transaction> = (0..60)
            .map(|i| txn(10_000 + i * 300, TxnState::Approved))
            .collect();
        for t in &txns {
            db.record(t).unwrap();
        }
        // What retention leaves after pruning: the oldest and the three newest.
        db.conn
            .execute(
                "DELETE FROM txns WHERE first_seq > 1 AND first_seq < 58",
                [],
            )
            .unwrap();
        let short = posd_core::txn::short_ref(&txns[0].id);
        let mut below = db.last_seq();
        let mut steps = 0;
        let mut found = Vec::new();
        while below > 0 {
            let (step, next) = db.txns_by_short_ref_step(&short, below, 2).unwrap();
            assert!(next < below, "the lookup moves down: {next} after {below}");
            found.extend(step.into_iter().map(|t| t.id));
            below = next;
            steps += 1;
        }
        // (58, 60], then (56, 58], then (0, 1]: under 56 the newest kept is seq 1.
        assert_eq!(steps, 3, "not one step per two pruned seqs");
        assert_eq!(found, vec![txns[0].id]);
    }

    /// The newest receipt is the last one a state earned when it was reached (the core's
    /// `earns_receipt`): an older sale settled later is not the receipt a cashier reprints.
    #[test]
    fn the_newest_receipt_is_the_last_one_earned() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let older = p1_sale(1_000, 7, 500, 1);
        db.record(&older).unwrap();
        let newer = txn(2_000, TxnState::Approved);
        db.record(&newer).unwrap();
        let mut settled = older.clone();
        settled.state = TxnState::Settled;
        settled.updated_at = 3_000;
        db.record(&settled).unwrap();
        assert_eq!(db.last_receipt_txn().unwrap().map(|t| t.id), Some(newer.id));
    }

    #[test]
    fn migration_15_keeps_the_newest_receipt_in_flight_and_listing_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let (a, b, c) = (
            txn(5_000, TxnState::Approved),
            txn(3_000, TxnState::ApprovedOffline),
            txn(9_000, TxnState::Authorizing),
        );
        {
            // A journal as posd left it before migration #15: A approved (seqs 1, 2), B
            // approved offline with an earlier clock (seq 3), C in flight (seq 4).
            let conn = journal_before_migration(&path, 15);
            for (t, first, seqs) in [(&a, 1, &[1, 2][..]), (&b, 3, &[3]), (&c, 4, &[4])] {
                conn.execute(
                    "INSERT INTO txns (id, kind, method, channel, amount, currency, state,
                         created_at, updated_at, first_seq)
                     VALUES (?1, 'sale', 'payment_code', 'wechat', 1250, 'CNY', ?2, ?3, ?3, ?4)",
                    params![
                        t.id.to_string(),
                        t.state.as_str(),
                        t.updated_at as i64,
                        first
                    ],
                )
                .unwrap();
                for seq in seqs {
                    conn.execute(
                        "INSERT INTO journal (txn_id, state, at, seq) VALUES (?1, 'x', 0, ?2)",
                        params![t.id.to_string(), seq],
                    )
                    .unwrap();
                }
            }
            conn.execute("UPDATE counters SET value = 4 WHERE name = 'last_seq'", [])
                .unwrap();
        }
        let mut db = Db::open(&path).unwrap();
        // The index said A (the newest `updated_at` with a receipt): its last event is seq 2.
        assert_eq!(db.last_receipt_txn().unwrap().map(|t| t.id), Some(a.id));
        assert_eq!(counter(&db.conn, "last_receipt_seq").unwrap(), 2);
        let flying: Vec<_> = db.in_flight().unwrap().iter().map(|t| t.id).collect();
        assert_eq!(flying, vec![c.id]);
        let listed: Vec<_> = db.txns(10).unwrap().iter().map(|t| t.id).collect();
        assert_eq!(
            listed,
            vec![c.id, b.id, a.id],
            "newest first, by first event"
        );
        // From now on the last event that earns a receipt decides, whatever the clock says.
        let d = txn(1_000, TxnState::Approved);
        db.record(&d).unwrap();
        assert_eq!(db.last_receipt_txn().unwrap().map(|t| t.id), Some(d.id));
        let mut c2 = c.clone();
        c2.state = TxnState::Declined;
        db.record(&c2).unwrap();
        assert_eq!(db.last_receipt_txn().unwrap().map(|t| t.id), Some(c.id));
        assert!(db.in_flight().unwrap().is_empty(), "C left flight");
        // A state with no receipt (a batch close, a sale in flight) leaves it as it was.
        db.record(&txn(2_000, TxnState::Authorizing)).unwrap();
        assert_eq!(db.last_receipt_txn().unwrap().map(|t| t.id), Some(c.id));
        drop(db);
        let conn = Connection::open(&path).unwrap();
        let gone: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master
                 WHERE name IN ('txns_created', 'txns_state', 'txns_receipt_newest')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
    }

    #[test]
    fn migration_8_backfills_counters_and_membership_from_an_older_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        {
            // A journal as posd left it before migration #8.
            let conn = journal_before_migration(&path, 8);
            let ins = |id: &str, method: &str, state: &str, amount: i64, at: i64, detail: &str| {
                conn.execute(
                    "INSERT INTO txns (id, kind, method, channel, amount, currency, state,
                         created_at, updated_at, detail)
                     VALUES (?1, 'sale', ?2, 'x', ?3, 'CNY', ?4, ?5, ?5, ?6)",
                    params![id, method, amount, state, at, detail],
                )
                .unwrap();
            };
            ins("a", "offline_code", "settled", 100, 10, r#"{"user_id":7}"#);
            ins(
                "b",
                "offline_code",
                "approved_offline",
                250,
                20,
                r#"{"user_id":7}"#,
            );
            ins("c", "payment_code", "approved", 999, 30, "{}");
            let mut seq = 0;
            for (id, state) in [
                ("a", "approved_offline"),
                ("b", "approved_offline"),
                ("a", "settled"),
                ("c", "authorizing"),
                ("c", "approved"),
            ] {
                seq += 1;
                conn.execute(
                    "INSERT INTO journal (txn_id, state, at, seq) VALUES (?1, ?2, 0, ?3)",
                    params![id, state, seq],
                )
                .unwrap();
                if seq > 1 {
                    conn.execute(
                        "INSERT INTO outbox (seq, event_id, payload, created_at)
                         VALUES (?1, ?2, '{}', 0)",
                        params![seq, format!("e{seq}")],
                    )
                    .unwrap();
                }
            }
            conn.execute_batch(
                "UPDATE meta SET value = '5' WHERE key = 'last_seq';
                 UPDATE meta SET value = '1' WHERE key = 'acked_seq';",
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_counters_exact(&db, "migration #8");
        let c = db.counters().unwrap();
        assert_eq!(
            (
                c.outbox_pending,
                c.offline_unsynced_count,
                c.offline_unsynced_amount
            ),
            (4, 1, 250)
        );
        assert_eq!(c.p1_totals, vec![(7, 0, 350)]);
        let firsts: Vec<(String, i64)> = db
            .conn()
            .prepare("SELECT id, first_seq FROM txns ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            firsts,
            [
                ("a".to_string(), 1),
                ("b".to_string(), 2),
                ("c".to_string(), 4)
            ]
        );
    }

    /// The outbox as migration #1 made it (`event_id` UNIQUE, so a second b-tree), with the
    /// rows it holds: a journal as posd left it before stop 31.
    fn index_outbox_again(path: &Path) {
        Connection::open(path)
            .unwrap()
            .execute_batch(&format!(
                "BEGIN; {} COMMIT;",
                slim_outbox::copy_sql("UNIQUE")
            ))
            .unwrap();
    }

    fn outbox_indexed(db: &Db) -> bool {
        db.conn()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            > 0
    }

    type OutboxRowAll = (i64, String, String, i64);

    fn outbox_all(conn: &Connection) -> Vec<OutboxRowAll> {
        conn.prepare("SELECT seq, event_id, payload, created_at FROM outbox ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A directory for a journal the outbox copy can run in, and the journal's path: on a
    /// machine with less free than the copy wants, the tests that expect it say why they stop
    /// (None).
    fn roomy_journal() -> Option<(tempfile::TempDir, PathBuf)> {
        let dir = tempfile::tempdir().unwrap();
        let want = slim_outbox::needed_free();
        let free = free_space(dir.path()).map(|(f, _)| f).unwrap_or(0);
        if free < want {
            eprintln!(
                "skipped: {} MB free in {}, the outbox copy wants {} MB",
                free >> 20,
                dir.path().display(),
                want >> 20
            );
            return None;
        }
        let path = dir.path().join("j.sqlite");
        Some((dir, path))
    }

    /// The journal table as migration #1 made it (`id` AUTOINCREMENT, `seq` UNIQUE), with its
    /// rows and indexes: a journal as posd left it before stop 38.
    fn key_journal_by_id_again(path: &Path) {
        let conn = Connection::open(path).unwrap();
        let indexes: Vec<String> = conn
            .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'journal' AND sql IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        conn.execute_batch(&format!(
            "BEGIN;
             CREATE TABLE journal_old (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 txn_id TEXT NOT NULL,
                 state TEXT NOT NULL,
                 at INTEGER NOT NULL,
                 seq INTEGER NOT NULL UNIQUE
             ) STRICT;
             INSERT INTO journal_old (txn_id, state, at, seq)
                 SELECT txn_id, state, at, seq FROM journal ORDER BY seq;
             DROP TABLE journal;
             ALTER TABLE journal_old RENAME TO journal;
             {};
             COMMIT;",
            indexes.join(";\n")
        ))
        .unwrap();
    }

    type JournalRow = (i64, String, String, i64);

    fn journal_all(conn: &Connection) -> Vec<JournalRow> {
        conn.prepare("SELECT seq, txn_id, state, at FROM journal ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// (first column of the journal table, its indexes' names and SQL, sorted).
    fn journal_layout(conn: &Connection) -> (String, Vec<(String, Option<String>)>) {
        let first: String = conn
            .query_row(
                "SELECT name FROM pragma_table_info('journal') ORDER BY cid LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let indexes = conn
            .prepare(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'journal'
                 ORDER BY name",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        (first, indexes)
    }

    #[test]
    fn an_older_journal_is_keyed_by_seq_at_open_and_keeps_every_event_and_index() {
        let Some((_dir, path)) = roomy_journal() else {
            return;
        };
        let mut db = Db::open(&path).unwrap();
        let (first, slim_indexes) = journal_layout(db.conn());
        assert_eq!(first, "seq", "a new journal is keyed by seq at once");
        assert_eq!(
            slim_indexes
                .iter()
                .map(|i| i.0.as_str())
                .collect::<Vec<_>>(),
            ["journal_closed", "journal_offline", "journal_txn"]
        );
        for i in 0..5 {
            db.record(&txn(1000 + i, TxnState::Authorizing)).unwrap();
        }
        let now = 1_700_000_000_000;
        db.record_offline_sale_checked(&p1_sale(now, 9, 250, 1), 9, 1, now - 3_600_000, |_| {
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
        db.ack(2).unwrap();
        drop(db);
        key_journal_by_id_again(&path);
        let conn = Connection::open(&path).unwrap();
        let (first, old_indexes) = journal_layout(&conn);
        assert_eq!(first, "id");
        assert_eq!(old_indexes.len(), 4, "the seq constraint's index too");
        let before = journal_all(&conn);
        assert_eq!(before.len(), 6);
        drop(conn);
        let mut db = Db::open(&path).unwrap();
        assert_eq!(journal_layout(db.conn()), ("seq".to_string(), slim_indexes));
        assert_eq!(
            journal_all(db.conn()),
            before,
            "every event, field for field"
        );
        let sequences: i64 = db
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'journal'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sequences, 0, "no AUTOINCREMENT row left behind");
        let free: i64 = db
            .conn()
            .pragma_query_value(None, "freelist_count", |r| r.get(0))
            .unwrap();
        assert_eq!(
            free, 0,
            "the old table's pages given back to the file system"
        );
        assert_counters_exact(&db, "journal keyed by seq");
        // And it goes on as before: numbered on, a transaction's events found, acks.
        assert_eq!(db.record(&txn(2000, TxnState::Authorizing)).unwrap(), 7);
        assert_eq!(db.ack(7).unwrap().dropped, 5);
        assert_counters_exact(&db, "after the ack");
    }

    #[test]
    fn a_journal_too_long_to_copy_keeps_its_layout_and_works_the_same() {
        let Some((_dir, path)) = roomy_journal() else {
            return;
        };
        let mut db = Db::open(&path).unwrap();
        db.record(&txn(1000, TxnState::Authorizing)).unwrap();
        drop(db);
        key_journal_by_id_again(&path);
        // Ids far apart: more rows than a start copies, by the bound the copy reads.
        Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "UPDATE journal SET id = {} WHERE seq = 1;",
                slim_journal::MAX_ROWS + 10
            ))
            .unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "INSERT INTO journal (id, txn_id, state, at, seq) VALUES (1, 'old', 'x', 0, 0);",
            )
            .unwrap();
        let mut db = Db::open(&path).unwrap();
        assert_eq!(journal_layout(db.conn()).0, "id", "left for a later start");
        let sale = txn(3000, TxnState::Authorizing);
        assert_eq!(db.record(&sale).unwrap(), 2);
        let mut done = sale.clone();
        done.state = TxnState::Approved;
        assert_eq!(db.record(&done).unwrap(), 3);
        let events: Vec<i64> = db
            .conn()
            .prepare("SELECT seq FROM journal WHERE txn_id = ?1 ORDER BY seq")
            .unwrap()
            .query_map([sale.id.to_string()], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events, [2, 3]);
        assert_counters_exact(&db, "a journal keyed by id");
    }

    #[test]
    fn an_older_journal_loses_the_outbox_index_at_open_and_keeps_every_event() {
        let Some((_dir, path)) = roomy_journal() else {
            return;
        };
        let mut db = Db::open(&path).unwrap();
        assert!(!outbox_indexed(&db), "a new journal is slimmed at once");
        for i in 0..5 {
            db.record(&txn(1000 + i, TxnState::Authorizing)).unwrap();
        }
        db.ack(2).unwrap();
        drop(db);
        index_outbox_again(&path);
        let before = outbox_all(&Connection::open(&path).unwrap());
        assert_eq!(before.len(), 3);
        let mut db = Db::open(&path).unwrap();
        assert!(!outbox_indexed(&db));
        assert_eq!(outbox_all(db.conn()), before, "every event, byte for byte");
        assert_counters_exact(&db, "slimmed outbox");
        // And it goes on as before: numbered on, drained by acks.
        assert_eq!(db.record(&txn(2000, TxnState::Authorizing)).unwrap(), 6);
        assert_eq!(db.ack(6).unwrap().dropped, 4);
        assert!(outbox_all(db.conn()).is_empty());
        assert_counters_exact(&db, "after the ack");
    }

    #[test]
    fn a_large_backlog_keeps_the_outbox_index_until_a_later_open() {
        let Some((_dir, path)) = roomy_journal() else {
            return;
        };
        drop(Db::open(&path).unwrap());
        index_outbox_again(&path);
        let n = slim_outbox::MAX_ROWS + 1;
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            {
                let mut ins = tx
                    .prepare(
                        "INSERT INTO outbox (seq, event_id, payload, created_at)
                         VALUES (?1, 'e' || ?1, '{}', ?1)",
                    )
                    .unwrap();
                for seq in 1..=n {
                    ins.execute([seq]).unwrap();
                }
            }
            tx.execute_batch(&format!(
                "UPDATE counters SET value = {n} WHERE name IN ('last_seq', 'outbox_pending');"
            ))
            .unwrap();
            tx.commit().unwrap();
        }
        let mut db = Db::open(&path).unwrap();
        assert!(
            outbox_indexed(&db),
            "more than MAX_ROWS waiting: left for later"
        );
        assert_eq!(db.outbox_after(0, 1).unwrap(), vec![(1, "{}".to_string())]);
        db.ack(2).unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        assert!(!outbox_indexed(&db), "MAX_ROWS - 1 waiting: slimmed");
        let rows = outbox_all(db.conn());
        assert_eq!(rows.len() as i64, n - 2);
        assert_eq!(rows[0], (3, "e3".to_string(), "{}".to_string(), 3));
        assert_counters_exact(&db, "slimmed after the ack");
    }

    #[test]
    fn an_outbox_too_big_to_copy_or_of_unknown_columns_keeps_its_index() {
        let Some((_dir, path)) = roomy_journal() else {
            return;
        };
        let mut db = Db::open(&path).unwrap();
        db.record(&txn(1000, TxnState::Authorizing)).unwrap();
        drop(db);
        index_outbox_again(&path);
        // One event bigger than the copy's byte bound (an event set aside would be a stub).
        Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE outbox SET payload = printf('%.*c', ?1, 'x') WHERE seq = 1",
                [slim_outbox::MAX_BYTES + 1],
            )
            .unwrap();
        let db = Db::open(&path).unwrap();
        assert!(outbox_indexed(&db), "over MAX_BYTES: left for later");
        assert_eq!(
            outbox_all(db.conn())[0].2.len() as i64,
            slim_outbox::MAX_BYTES + 1
        );
        drop(db);
        // A column this copy does not know (a later migration's): never copied away.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "UPDATE outbox SET payload = '{}';
                 ALTER TABLE outbox ADD COLUMN later TEXT;",
            )
            .unwrap();
        let db = Db::open(&path).unwrap();
        assert!(outbox_indexed(&db), "unknown columns: left alone");
        let later: Option<String> = db
            .conn()
            .query_row("SELECT later FROM outbox WHERE seq = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(later, None);
    }

    /// SQLite's plan for `sql` (every parameter 1), its steps joined by " | ".
    pub(super) fn query_plan(db: &Db, sql: &str) -> String {
        let mut st = db
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let n = st.parameter_count();
        let args: Vec<i64> = vec![1; n];
        let rows = st
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap().join(" | ")
    }

    /// The plan of each hot-path query reads an index range or a row by key, never a whole
    /// table: the cost follows what is asked, not the journal's age.
    #[test]
    fn hot_path_queries_read_indexes_not_tables() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let plan = |sql: &str| query_plan(&db, sql);
        let hot = [
            LAST_RECEIPT_SQL.replace("{TXN_COLS}", TXN_COLS),
            // A P1 sale's reads for the rules, in one statement.
            OFFLINE_SNAPSHOT_SQL.into(),
            "SELECT COUNT(*), COALESCE(SUM(t.amount), 0)
             FROM journal j JOIN txns t ON t.id = j.txn_id
             WHERE j.state = 'approved_offline' AND j.seq > ?1 AND j.seq <= ?2
               AND t.method = 'offline_code'"
                .into(),
            "SELECT first_seq, id, kind, method, channel, state, amount, created_at
             FROM txns WHERE first_seq > ?1 AND first_seq <= ?2 ORDER BY first_seq"
                .into(),
            "SELECT COUNT(*), MIN(created_at) FROM txns
             WHERE method = 'card' AND kind = 'sale' AND state = 'approved_offline'"
                .into(),
            format!(
                "SELECT {TXN_COLS} FROM txns WHERE kind = 'batch_close' ORDER BY created_at DESC LIMIT ?1"
            ),
            // Issue 15: what a close carries, by index only.
            CARRIED_IN_SQL.into(),
            carry_sql().0,
            carry_sql().1,
            // Issue 15: is this code in flight? (and its row leaving with the final state)
            "SELECT txn_id FROM codes_in_flight WHERE digest = ?1".into(),
            "DELETE FROM codes_in_flight WHERE txn_id = ?1".into(),
            // Stop 31: read without `LIMIT ?`, so stepped in order from a b-tree, never sorted.
            OUTBOX_NEXT_SQL.into(),
            OUTBOX_AFTER_SQL.into(),
            retention::WALK_SQL.into(),
            // Migration #15: the in-flight rows and the newest-first listing, from indexes.
            format!(
                "SELECT {TXN_COLS} FROM txns INDEXED BY txns_in_flight
                 WHERE state IN ('authorizing', 'pending', 'reversing', 'closing') ORDER BY created_at"
            ),
            format!("SELECT {TXN_COLS} FROM txns ORDER BY first_seq DESC LIMIT ?1"),
            retention::OLDEST_TXN_SQL.into(),
            // A step of a lookup by a receipt's short reference: a range, never the table.
            SHORT_REF_STEP_SQL.replace("{TXN_COLS}", TXN_COLS),
            SHORT_REF_NEXT_SQL.into(),
            // The settlement round: the unsettled offline sales, not every offline sale's event.
            UNSETTLED_OFFLINE_SQL.into(),
        ];
        for sql in hot {
            let p = plan(&sql);
            for table in ["txns", "journal", "outbox", "p1_totals", "codes_in_flight"] {
                for bad in [
                    format!("SCAN {table}"),
                    "SCAN t".to_string(),
                    "SCAN j".to_string(),
                ] {
                    let full = p.split(" | ").any(|step| {
                        step == bad || (step.starts_with(&bad) && !step.contains("USING"))
                    });
                    assert!(!full, "{sql}\n  plan: {p}");
                }
            }
            assert!(!p.contains("TEMP B-TREE"), "{sql}\n  sorts: {p}");
        }
        // The queue's numbers: three counters by their key, and the first pending event, the
        // outbox in rowid (seq) order stopped after one row.
        let counter_searches = |plan: &str| plan.matches("SEARCH counters USING INDEX").count();
        let queue = plan(QUEUE_NUMBERS_SQL);
        assert_eq!(counter_searches(&queue), 3, "{queue}");
        assert!(
            queue.ends_with("SCALAR SUBQUERY 4 | SCAN outbox"),
            "{queue}"
        );
        assert!(!queue.contains("TEMP B-TREE"), "{queue}");
        // A P1 sale's five reads: the user's counter and totals by key, the two counters by
        // key, the first unsynced offline sale stepped from the partial index by seq.
        let snapshot = plan(OFFLINE_SNAPSHOT_SQL);
        assert_eq!(counter_searches(&snapshot), 2, "{snapshot}");
        for step in [
            "SEARCH p1_counters USING INTEGER PRIMARY KEY",
            "SEARCH p1_totals USING PRIMARY KEY",
            "journal_offline",
        ] {
            assert!(snapshot.contains(step), "{step}: {snapshot}");
        }
    }

    #[test]
    fn a_code_pays_one_transaction_in_flight_and_leaves_the_index_when_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let digest = [0xab; 32];
        let mut first = txn(1_000, TxnState::Authorizing);
        db.record_with_code(&first, &digest).unwrap();
        assert_eq!(db.codes_in_flight().unwrap(), 1);
        let found = db.txn_for_code(&digest).unwrap().expect("in flight");
        assert_eq!(found.id, first.id);
        // The same code for another sale: refused, naming the first; nothing written.
        let second = txn(2_000, TxnState::Authorizing);
        let seq = db.last_seq();
        match db.record_with_code(&second, &digest) {
            Err(StoreError::CodeInFlight(id)) => assert_eq!(id, first.id.to_string()),
            other => panic!("{other:?}"),
        }
        assert_eq!(db.last_seq(), seq);
        assert!(db.txn(&second.id.to_string()).unwrap().is_none());
        // Pending is still in flight; reversing too.
        for state in [TxnState::Pending, TxnState::Reversing] {
            first.state = state;
            db.record(&first).unwrap();
            assert_eq!(db.codes_in_flight().unwrap(), 1, "{state:?}");
        }
        // Final: the digest is gone with it, and the code may pay again.
        first.state = TxnState::Reversed;
        db.record(&first).unwrap();
        assert_eq!(db.codes_in_flight().unwrap(), 0);
        assert!(db.txn_for_code(&digest).unwrap().is_none());
        db.record_with_code(&second, &digest).unwrap();
        // Nothing of the code itself is stored: only the digest and the masked code.
        let blob: Vec<u8> = db
            .conn()
            .query_row("SELECT digest FROM codes_in_flight", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blob, digest);
    }

    #[test]
    fn a_batch_close_event_has_the_same_size_for_ten_sales_as_for_ten_thousand() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let mut sizes = Vec::new();
        for (round, n) in [(1u64, 10u64), (2, 10_000)] {
            let sales: Vec<Transaction> = (0..n)
                .map(|i| {
                    let mut t = txn(round * 1_000_000 + i, TxnState::Approved);
                    t.id = posd_core::txn::uuid_v7(round * 1_000_000 + i, [(i % 251) as u8; 10]);
                    t.id = Uuid::from_u128(t.id.as_u128() ^ u128::from(i));
                    t
                })
                .collect();
            db.record_batch(&sales).unwrap();
            let close = Transaction::new(
                TxnKind::BatchClose,
                Method::None,
                0,
                Currency::from_code("CNY").unwrap(),
                TxnState::Closed,
                round * 1_000_000 + n,
                [round as u8; 10],
            );
            let (c, seq) = db.batch_close(close).unwrap();
            let z: posd_core::batch::ZTotals =
                serde_json::from_value(c.detail.clone().unwrap()).unwrap();
            assert_eq!(z.txn_count, n);
            assert_eq!(z.net_total, 1250 * n as i64);
            let event = db.outbox_after(seq - 1, 1).unwrap().remove(0).1;
            sizes.push(event.len());
        }
        // Only the digits of the counts and amounts differ.
        assert!(sizes[1] < 2048, "{sizes:?}");
        assert!(sizes[1] - sizes[0] < 64, "{sizes:?}");
    }

    #[test]
    fn in_flight_holds_every_state_the_core_calls_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        let all = TxnState::ALL;
        for (n, st) in all.iter().enumerate() {
            db.record(&txn(100 + n as u64, *st)).unwrap();
        }
        let mut got: Vec<&str> = db
            .in_flight()
            .unwrap()
            .iter()
            .map(|t| t.state.as_str())
            .collect();
        got.sort_unstable();
        let mut want: Vec<&str> = all
            .iter()
            .filter(|s| s.in_flight())
            .map(|s| s.as_str())
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn fleet_command_records_expire_and_the_floor_only_rises() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let mut db = Db::open(&path).unwrap();
        db.fleet_cmd_done("old", "{}", 1, 100).unwrap();
        db.fleet_cmd_done("new", "{}", 2, 200).unwrap();
        assert_eq!(
            db.fleet_cmd_purge(150).unwrap(),
            CmdRecords {
                floor: 150,
                live: 1
            }
        );
        assert_eq!(db.fleet_cmd("old").unwrap(), None);
        assert!(db.fleet_cmd("new").unwrap().is_some());
        // A clock gone back does not lower the floor nor bring anything back; it survives a
        // restart.
        drop(db);
        let mut db = Db::open(&path).unwrap();
        assert_eq!(db.fleet_cmd_purge(10).unwrap().floor, 150);
        assert_eq!(db.fleet_cmd_purge(201).unwrap().live, 0);
    }
}
