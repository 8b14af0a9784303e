//! The print queue's rows: what the printer owes (receipts, drawer pulses, Z reports, pay
//! slips), each job's attempt recorded before its first byte leaves, the parts the printer
//! confirmed, and the end of each job (printed, failed, or — for a drawer pulse that may have
//! gone out — unconfirmed and never sent again), or its expiry: a job the printer could not
//! take within its age limit is given up (`expired`), so a printer dead for weeks neither holds
//! the journal back from retention nor prints weeks of stale receipts when it comes back.
//!
//! Jobs a state change earns are inserted by [`owe`] inside the journal's own SQLite
//! transaction (`write_states`), so a sale is never final without them; a drawer pulse is
//! unique per sale (`print_jobs_drawer_once`), so it cannot be owed twice.

use super::{Db, StoreError};
use posd_core::i18n::Language;
use posd_core::receipt::{owed_on_change, PrintDoc, ReceiptCtx};
use posd_core::txn::{Millis, Transaction, TxnState};
use rusqlite::{params, Connection, OptionalExtension};

/// One job the printer task takes next.
#[derive(Debug, Clone)]
pub struct NextPrintJob {
    pub id: i64,
    pub txn_id: String,
    pub doc: PrintDoc,
    /// `sending` when an attempt was under way as posd stopped: its delivery is uncertain.
    pub sending: bool,
    /// Parts the printer confirmed printed.
    pub parts_done: usize,
    /// The shop's language when the job was queued (None: a job queued before jobs kept it).
    pub language: Option<Language>,
}

/// A job as stored in `print_jobs.data`: the document and the language it is printed in.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredJob {
    language: Language,
    doc: PrintDoc,
}

fn job_json(doc: &PrintDoc, language: Language) -> Result<String, StoreError> {
    let job = StoredJob {
        language,
        doc: doc.clone(),
    };
    serde_json::to_string(&job).map_err(|e| StoreError::BadRow(e.to_string()))
}

/// A stored job: the document and its language, or a bare document (before jobs kept it).
fn read_job(data: &str) -> Result<(PrintDoc, Option<Language>), serde_json::Error> {
    match serde_json::from_str::<StoredJob>(data) {
        Ok(j) => Ok((j.doc, Some(j.language))),
        Err(_) => serde_json::from_str::<PrintDoc>(data).map(|d| (d, None)),
    }
}

/// Inserts the jobs a state change earns (see `receipt::owed_on_change`), in the caller's
/// SQLite transaction.
pub(super) fn owe(
    conn: &Connection,
    txn: &Transaction,
    prev: Option<TxnState>,
    ctx: &ReceiptCtx,
) -> Result<(), StoreError> {
    for doc in owed_on_change(prev, txn, ctx) {
        insert(
            conn,
            &txn.id.to_string(),
            &doc,
            ctx.language,
            txn.updated_at,
        )?;
    }
    Ok(())
}

/// Queues a document; a second drawer pulse for the same sale is ignored. The job id.
pub(super) fn insert(
    conn: &Connection,
    txn_id: &str,
    doc: &PrintDoc,
    language: Language,
    now: Millis,
) -> Result<i64, StoreError> {
    let text = job_json(doc, language)?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO print_jobs (txn_id, kind, data, state, created_at)
         VALUES (?1, ?2, ?3, 'queued', ?4)",
    )?
    .execute(params![txn_id, doc.kind(), text, now as i64])?;
    Ok(conn.last_insert_rowid())
}

/// How many times a job may go out to the printer with its delivery left uncertain before it
/// is given up (`unconfirmed`): the first print and two marked `REPRINT — printer fault`.
pub const MAX_UNCERTAIN_SENDS: i64 = 3;

/// How long an owed copy stands for a reprint of the same document (`Db::enqueue_reprint`):
/// a quarter of the shortest `job_max_age_h` (1 h), so the copy a reprint is folded into still
/// has most of its life to print in.
pub const REPRINT_ONCE_WITHIN_MS: u64 = 15 * 60 * 1000;

/// The newest owed job printing this kind of document for this transaction, queued since `?3`
/// and not before the transaction last changed.
pub(super) const OWED_DOC_SQL: &str = "SELECT j.id FROM print_jobs j INDEXED BY print_jobs_txn
     WHERE j.txn_id = ?1 AND j.kind = ?2 AND j.state IN ('queued', 'sending')
       AND j.created_at >= ?3
       AND j.created_at >= COALESCE((SELECT t.updated_at FROM txns t WHERE t.id = ?1), 0)
     ORDER BY j.id DESC LIMIT 1";

/// The owed drawer pulse that goes first, and else the oldest owed job: each the first entry of
/// a partial index (migration #13), so the same cost with 100,000 jobs owed as with one.
const NEXT_DRAWER_SQL: &str = "SELECT id, txn_id, data, state, parts_done
     FROM print_jobs INDEXED BY print_jobs_drawer_owed
     WHERE kind = 'drawer' AND state IN ('queued', 'sending') ORDER BY id LIMIT 1";
const NEXT_OLDEST_SQL: &str = "SELECT id, txn_id, data, state, parts_done
     FROM print_jobs INDEXED BY print_jobs_owed
     WHERE state IN ('queued', 'sending') ORDER BY id LIMIT 1";

/// The oldest owed drawer pulse, and the oldest owed job, but the job `?1` (the one the
/// printer holds, or NULL): (id, created_at, state).
const OLDEST_DRAWER_SQL: &str = "SELECT id, created_at, state
     FROM print_jobs INDEXED BY print_jobs_drawer_owed
     WHERE kind = 'drawer' AND state IN ('queued', 'sending') AND id IS NOT ?1
     ORDER BY id LIMIT 1";
const OLDEST_OWED_SQL: &str = "SELECT id, created_at, state
     FROM print_jobs INDEXED BY print_jobs_owed
     WHERE state IN ('queued', 'sending') AND id IS NOT ?1 ORDER BY id LIMIT 1";

/// How long an owed job may wait for the printer before it is given up (`[devices.printer]
/// job_max_age_h`, `drawer_max_age_s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwedLimits {
    /// Receipts, reprints, Z reports, pay slips.
    pub job_max_age_ms: u64,
    /// Drawer pulses: a drawer that springs open long after its sale is a risk, not a service.
    pub drawer_max_age_ms: u64,
}

/// What one expiry step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Jobs given up by this step.
    pub now: u64,
    /// Jobs given up since the journal was made (the `print_expired` counter).
    pub total: u64,
}

/// (id, txn_id, data, state, parts_done) of an owed job.
type OwedRow = (i64, String, String, String, i64);

impl Db {
    /// The next job: an owed drawer pulse first (it opens at approval, independent of the
    /// receipts before it), then the oldest job still owed.
    pub fn next_print_job(&self) -> Result<Option<NextPrintJob>, StoreError> {
        let first = |sql: &str| -> Result<Option<OwedRow>, StoreError> {
            Ok(self
                .conn
                .prepare_cached(sql)?
                .query_row([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?)
        };
        loop {
            let row = match first(NEXT_DRAWER_SQL)? {
                Some(r) => Some(r),
                None => first(NEXT_OLDEST_SQL)?,
            };
            let Some((id, txn_id, data, state, parts_done)) = row else {
                return Ok(None);
            };
            match read_job(&data) {
                Ok((doc, language)) => {
                    return Ok(Some(NextPrintJob {
                        id,
                        txn_id,
                        doc,
                        sending: state == "sending",
                        parts_done: parts_done.max(0) as usize,
                        language,
                    }))
                }
                Err(e) => {
                    self.conn.execute(
                        "UPDATE print_jobs SET state = 'failed', last_error = ?2 WHERE id = ?1",
                        params![id, format!("unreadable job: {e}")],
                    )?;
                }
            }
        }
    }

    /// Gives up at most `max` owed jobs older than their limit, oldest first, in one SQLite
    /// transaction, leaving alone the job `holding` (the one the printer holds through a fault:
    /// it is in the printer's buffer). Each walk reads its index's first entry and stops at the
    /// first job young enough, so a step costs the same whatever is owed. Ids follow
    /// `created_at`, so the walk from the oldest id finds every job too old (a clock set back
    /// may leave one behind a younger job until that one prints or expires). Drawer pulses have
    /// the shorter limit and are walked first, so the second walk only meets them once they are
    /// too old anyway. When `now` of the result is `max`, more may be due: step again before
    /// taking a job.
    pub fn expire_owed_print_jobs(
        &mut self,
        now: Millis,
        limits: OwedLimits,
        max: usize,
        holding: Option<i64>,
    ) -> Result<Expired, StoreError> {
        let tx = self.conn.transaction()?;
        let mut n = 0u64;
        for (sql, max_age, limit) in [
            (
                OLDEST_DRAWER_SQL,
                limits.drawer_max_age_ms,
                "not sent within drawer_max_age_s",
            ),
            (
                OLDEST_OWED_SQL,
                limits.job_max_age_ms,
                "not printed within job_max_age_h",
            ),
        ] {
            let cutoff = i64::try_from(now.saturating_sub(max_age)).unwrap_or(i64::MAX);
            while (n as usize) < max {
                let oldest: Option<(i64, i64, String)> = tx
                    .prepare_cached(sql)?
                    .query_row([holding], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()?;
                let Some((id, created_at, state)) = oldest else {
                    break;
                };
                if created_at >= cutoff {
                    break;
                }
                // A job left `sending` by a stop may have come out in part (a drawer pulse:
                // the drawer may have opened): the record says so.
                let why = if state == "sending" {
                    format!("given up: {limit}; it was going out when posd stopped and may have printed (in part)")
                } else {
                    format!("given up: {limit}")
                };
                tx.prepare_cached(
                    "UPDATE print_jobs SET state = 'expired', last_error = ?2 WHERE id = ?1",
                )?
                .execute(params![id, why])?;
                n += 1;
            }
        }
        if n > 0 {
            tx.execute(
                "INSERT INTO counters (name, value) VALUES ('print_expired', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                [n as i64],
            )?;
        }
        let total = super::counter(&tx, "print_expired")?.max(0) as u64;
        tx.commit()?;
        Ok(Expired { now: n, total })
    }

    /// An attempt starts: recorded before the first byte leaves, so a power cut in the middle
    /// leaves the job `sending` (uncertain), never `queued` as if nothing had gone out.
    pub fn start_print_job(&mut self, id: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE print_jobs SET state = 'sending', attempts = attempts + 1
             WHERE id = ?1 AND state IN ('queued', 'sending')",
            [id],
        )?;
        Ok(())
    }

    /// The printer confirmed the first `parts_done` parts.
    pub fn print_job_progress(&mut self, id: i64, parts_done: usize) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE print_jobs SET parts_done = MAX(parts_done, ?2)
             WHERE id = ?1 AND state IN ('queued', 'sending')",
            params![id, parts_done as i64],
        )?;
        Ok(())
    }

    /// Nothing of the attempt left the box: the job waits as it was, and the attempt is not
    /// counted (`attempts` counts the times the job may have gone out to the printer).
    pub fn unsend_print_job(&mut self, id: i64, error: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE print_jobs SET state = 'queued', last_error = ?2,
                 attempts = CASE WHEN state = 'sending' THEN MAX(attempts - 1, 0) ELSE attempts END
             WHERE id = ?1 AND state IN ('queued', 'sending')",
            params![id, error],
        )?;
        Ok(())
    }

    /// The attempt may have printed in part: the job waits again as `doc` (marked as a
    /// reprint by the caller) from part `parts_done` on — unless it has now gone out
    /// [`MAX_UNCERTAIN_SENDS`] times without the printer confirming it: then it is given up
    /// as `unconfirmed` (true). A printer that prints but answers its status late (a 9600-baud
    /// serial line, a query queued behind a long job) would otherwise get the same receipt
    /// again every `fault_poll_ms` until its age ran out, every later receipt waiting behind it.
    pub fn requeue_uncertain_print_job(
        &mut self,
        id: i64,
        doc: &PrintDoc,
        language: Language,
        parts_done: usize,
        error: &str,
    ) -> Result<bool, StoreError> {
        let text = job_json(doc, language)?;
        let state: Option<String> = self
            .conn
            .query_row(
                "UPDATE print_jobs SET
                     state = CASE WHEN attempts >= ?5 THEN 'unconfirmed' ELSE 'queued' END,
                     data = ?2, parts_done = ?3, last_error = ?4
                 WHERE id = ?1 AND state IN ('queued', 'sending')
                 RETURNING state",
                params![id, text, parts_done as i64, error, MAX_UNCERTAIN_SENDS],
                |r| r.get(0),
            )
            .optional()?;
        Ok(state.as_deref() == Some("unconfirmed"))
    }

    /// A drawer pulse that may have gone out: never sent again (the drawer must not open twice
    /// for one sale).
    pub fn unconfirmed_print_job(
        &mut self,
        id: i64,
        error: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE print_jobs SET state = 'unconfirmed', last_error = ?2, printed_at = ?3
             WHERE id = ?1 AND state IN ('queued', 'sending')",
            params![id, error, now as i64],
        )?;
        Ok(())
    }

    /// Jobs waiting for the printer.
    pub fn print_jobs_waiting(&self) -> Result<u64, StoreError> {
        // A running counter (migration #13's triggers), not a count of the owed jobs.
        Ok(super::counter(&self.conn, "print_owed")?.max(0) as u64)
    }

    /// Queues any document (a reprint, a pay slip), in the shop's language now. Returns the
    /// job id.
    pub fn enqueue_doc(
        &mut self,
        txn_id: &str,
        doc: &PrintDoc,
        now: Millis,
    ) -> Result<i64, StoreError> {
        let language = self
            .receipts
            .as_ref()
            .map(|c| c.language)
            .unwrap_or_default();
        insert(&self.conn, txn_id, doc, language, now)
    }

    /// Queues a reprint of `txn_id`'s document unless the same kind of document of the same
    /// transaction is still owed (queued, or being sent), was queued within the last
    /// [`REPRINT_ONCE_WITHIN_MS`] and after the transaction last changed: then that job's id and
    /// `false`. A cashier who presses reprint ten times while the printer is out of paper gets
    /// one copy when the paper is back, not ten; a loop of reprint requests adds one document
    /// per document and window, not one per request. An owed copy older than the window (it
    /// could be given up by `job_max_age_h`, at least an hour, before it prints) or older than
    /// the transaction's last change (it would print a state since left, say APPROVED OFFLINE
    /// for a sale since voided) does not stand for the reprint: a new copy is queued. Once the
    /// owed one has printed (or was given up), a reprint queues a new copy. One lookup by
    /// `print_jobs_txn`.
    pub fn enqueue_reprint(
        &mut self,
        txn_id: &str,
        doc: &PrintDoc,
        now: Millis,
    ) -> Result<(i64, bool), StoreError> {
        let since = now.saturating_sub(REPRINT_ONCE_WITHIN_MS) as i64;
        let owed: Option<i64> = self
            .conn
            .prepare_cached(OWED_DOC_SQL)?
            .query_row(params![txn_id, doc.kind(), since], |r| r.get(0))
            .optional()?;
        match owed {
            Some(job) => Ok((job, false)),
            None => Ok((self.enqueue_doc(txn_id, doc, now)?, true)),
        }
    }

    /// The shop's language changed (a fleet push): documents owed from now on keep it.
    pub fn set_receipt_language(&mut self, language: Language) {
        if let Some(c) = self.receipts.as_mut() {
            c.language = language;
        }
    }

    /// The batch close with this number.
    pub fn batch_by_no(&self, no: u64) -> Result<Option<Transaction>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {} FROM txns WHERE kind = 'batch_close'
             AND json_extract(detail, '$.batch_no') = ?1 ORDER BY created_at DESC LIMIT 1",
            super::TXN_COLS
        ))?;
        let row = st
            .query_row([i64::try_from(no).unwrap_or(i64::MAX)], super::row_raw)
            .optional()?;
        row.map(super::raw_to_txn).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posd_core::money::Currency;
    use posd_core::receipt::{DrawerOn, DrawerPin, DrawerPolicy};
    use posd_core::txn::{Method, TxnKind};

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("j.sqlite")).unwrap();
        db.set_receipts(Some(ReceiptCtx {
            terminal: "T1".into(),
            zone: Default::default(),
            drawer: DrawerPolicy {
                enabled: true,
                on: DrawerOn::All,
                cash_like: vec![],
                pin: DrawerPin::Pin2,
            },
            language: Default::default(),
        }));
        (dir, db)
    }

    fn sale(state: TxnState) -> Transaction {
        Transaction::new(
            TxnKind::Sale,
            Method::OfflineCode,
            300,
            Currency::from_code("CNY").unwrap(),
            state,
            1_000,
            [5; 10],
        )
    }

    fn jobs(db: &Db) -> Vec<(String, String, i64)> {
        let mut st = db
            .conn()
            .prepare("SELECT kind, state, parts_done FROM print_jobs ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A real receipt to owe many times over: a sale's own, once its jobs are done.
    fn printed_sale_receipt(db: &mut Db) -> PrintDoc {
        db.record(&sale(TxnState::ApprovedOffline)).unwrap();
        let mut receipt = None;
        while let Some(job) = db.next_print_job().unwrap() {
            if !job.doc.is_drawer() {
                receipt = Some(job.doc.clone());
            }
            db.finish_print_job(job.id, None, 1).unwrap();
        }
        receipt.expect("the sale owed a receipt")
    }

    #[test]
    fn an_approval_owes_one_drawer_pulse_and_one_receipt_in_its_own_transaction() {
        let (_d, mut db) = db();
        let t = sale(TxnState::ApprovedOffline);
        db.record(&t).unwrap();
        // Written again, then settled: nothing more is owed.
        db.record(&t).unwrap();
        db.record(&Transaction {
            state: TxnState::Settled,
            ..t.clone()
        })
        .unwrap();
        let kinds: Vec<String> = jobs(&db).into_iter().map(|j| j.0).collect();
        assert_eq!(kinds, ["drawer", "receipt"]);
        // Even asked for directly, a second pulse for the same sale is not queued.
        insert(
            db.conn(),
            &t.id.to_string(),
            &PrintDoc::Drawer {
                drawer: DrawerPin::Pin2,
            },
            Language::En,
            2_000,
        )
        .unwrap();
        assert_eq!(jobs(&db).len(), 2);
        // The drawer comes first.
        let next = db.next_print_job().unwrap().unwrap();
        assert!(next.doc.is_drawer());
    }

    /// A job keeps the shop's language of the moment it was owed (a receipt is a record): a
    /// language push afterwards changes the jobs owed after it only. A job stored before jobs
    /// kept their language is read as it was, with none.
    #[test]
    fn a_job_keeps_the_language_it_was_owed_in() {
        let (_d, mut db) = db();
        db.set_receipt_language(Language::ZhCn);
        db.record(&sale(TxnState::ApprovedOffline)).unwrap();
        db.set_receipt_language(Language::Es);
        let drawer = db.next_print_job().unwrap().unwrap();
        assert_eq!(drawer.language, Some(Language::ZhCn));
        db.unconfirmed_print_job(drawer.id, "test", 2).unwrap();
        let receipt = db.next_print_job().unwrap().unwrap();
        assert_eq!(
            receipt.language,
            Some(Language::ZhCn),
            "owed before the push"
        );
        // Printed again after a fault: still the language it was owed in.
        db.requeue_uncertain_print_job(receipt.id, &receipt.doc, Language::ZhCn, 0, "x")
            .unwrap();
        assert_eq!(
            db.next_print_job().unwrap().unwrap().language,
            Some(Language::ZhCn)
        );
        db.finish_print_job(receipt.id, None, 3).unwrap();
        // A reprint asked for now is in the language in force now.
        let id = db.enqueue_doc("t", &receipt.doc, 4).unwrap();
        let next = db.next_print_job().unwrap().unwrap();
        assert_eq!((next.id, next.language), (id, Some(Language::Es)));
        db.finish_print_job(id, None, 5).unwrap();
        // A bare document (stored before jobs kept their language).
        let bare = serde_json::to_string(&receipt.doc).unwrap();
        db.conn()
            .execute(
                "INSERT INTO print_jobs (txn_id, kind, data, state, created_at)
                 VALUES ('old', 'receipt', ?1, 'queued', 6)",
                [bare],
            )
            .unwrap();
        let old = db.next_print_job().unwrap().unwrap();
        assert_eq!((old.doc, old.language), (receipt.doc, None));
    }

    /// Reprints asked for while the same document still waits (the printer out of paper, a
    /// cashier pressing again) queue one copy, not one a press; once it has printed, the next
    /// reprint is a new copy. Another transaction's document is its own job.
    #[test]
    fn a_reprint_is_queued_once_while_the_same_document_waits() {
        let (_d, mut db) = db();
        let receipt = printed_sale_receipt(&mut db);
        let t = sale(TxnState::ApprovedOffline);
        let txn = t.id.to_string();
        let at = 10_000;
        let (first, fresh) = db.enqueue_reprint(&txn, &receipt, at).unwrap();
        assert!(fresh);
        for n in 1..10 {
            assert_eq!(
                db.enqueue_reprint(&txn, &receipt, at + n).unwrap(),
                (first, false)
            );
        }
        assert_eq!(db.print_jobs_waiting().unwrap(), 1);
        // Being sent is still owed: a press while it prints adds nothing either.
        db.start_print_job(first).unwrap();
        assert_eq!(
            db.enqueue_reprint(&txn, &receipt, at + 11).unwrap(),
            (first, false)
        );
        // Another transaction's document is its own job.
        let (other, fresh) = db.enqueue_reprint("other", &receipt, at + 12).unwrap();
        assert!(fresh && other != first);
        db.finish_print_job(first, None, at + 13).unwrap();
        db.finish_print_job(other, None, at + 14).unwrap();
        // Printed: a new reprint is a new copy.
        let (again, fresh) = db.enqueue_reprint(&txn, &receipt, at + 15).unwrap();
        assert!(fresh && again != first);
        // Owed longer than the window: it might be given up before it prints; a new copy.
        let late = at + 15 + REPRINT_ONCE_WITHIN_MS + 1;
        let (newer, fresh) = db.enqueue_reprint(&txn, &receipt, late).unwrap();
        assert!(fresh && newer != again);
        // The sale changed since the owed copy was queued: that copy says an old state.
        assert_eq!(
            db.enqueue_reprint(&txn, &receipt, late + 1).unwrap(),
            (newer, false)
        );
        db.record(&Transaction {
            state: TxnState::Settled,
            updated_at: late + 2,
            ..t
        })
        .unwrap();
        let (current, fresh) = db.enqueue_reprint(&txn, &receipt, late + 3).unwrap();
        assert!(fresh && current != newer);
        let plan = super::super::tests::query_plan(&db, OWED_DOC_SQL);
        assert!(plan.contains("print_jobs_txn"), "{plan}");
    }

    /// A job whose delivery stays uncertain is sent again marked as a reprint, but not for
    /// ever: after MAX_UNCERTAIN_SENDS sends it is given up (`unconfirmed`, owed no more).
    /// Attempts where nothing left the box do not count towards it.
    #[test]
    fn a_job_sent_uncertainly_three_times_is_given_up() {
        let (_d, mut db) = db();
        let receipt = printed_sale_receipt(&mut db);
        let (id, _) = db.enqueue_reprint("t", &receipt, 1).unwrap();
        let state = |db: &Db| -> (String, i64) {
            db.conn()
                .query_row(
                    "SELECT state, attempts FROM print_jobs WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
        };
        // The printer was unreachable ten times: nothing went out, nothing counted.
        for _ in 0..10 {
            db.start_print_job(id).unwrap();
            db.unsend_print_job(id, "connection refused").unwrap();
        }
        assert_eq!(state(&db), ("queued".into(), 0));
        // Refused before any attempt was recorded (a fault in the status asked first): nothing
        // to take back either — an uncertain send counted before is not cancelled by it.
        db.start_print_job(id).unwrap();
        assert!(!db
            .requeue_uncertain_print_job(id, &receipt, Language::En, 0, "no status")
            .unwrap());
        for _ in 0..5 {
            db.unsend_print_job(id, "status late before the send")
                .unwrap();
        }
        assert_eq!(state(&db), ("queued".into(), 1));
        db.conn()
            .execute("UPDATE print_jobs SET attempts = 0 WHERE id = ?1", [id])
            .unwrap();
        for n in 1..MAX_UNCERTAIN_SENDS {
            db.start_print_job(id).unwrap();
            let given_up = db
                .requeue_uncertain_print_job(id, &receipt, Language::En, 0, "no status")
                .unwrap();
            assert!(!given_up, "send {n}");
            assert_eq!(state(&db), ("queued".into(), n));
        }
        db.start_print_job(id).unwrap();
        assert!(db
            .requeue_uncertain_print_job(id, &receipt, Language::En, 0, "no status")
            .unwrap());
        assert_eq!(state(&db), ("unconfirmed".into(), MAX_UNCERTAIN_SENDS));
        assert!(db.next_print_job().unwrap().is_none());
        assert_eq!(db.print_jobs_waiting().unwrap(), 0);
        // Given up: a reprint asked for now is a new copy.
        assert!(db.enqueue_reprint("t", &receipt, 2).unwrap().1);
    }

    /// A printer out of paper for a day at a bus door owes tens of thousands of tickets: the
    /// next job, and how many wait, cost the same as with one owed.
    #[test]
    fn the_next_job_and_the_count_cost_the_same_however_many_are_owed() {
        let (_d, mut db) = db();
        let receipt = printed_sale_receipt(&mut db);
        let drawer = PrintDoc::Drawer {
            drawer: DrawerPin::Pin2,
        };
        let tx = db.conn.transaction().unwrap();
        for n in 0..5_000u64 {
            let doc = if n == 4_000 { &drawer } else { &receipt };
            insert(&tx, &format!("t{n}"), doc, Language::En, n).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(db.print_jobs_waiting().unwrap(), 5_000);
        // The plan reads one index entry and its row, not the 5,000.
        for sql in [NEXT_DRAWER_SQL, NEXT_OLDEST_SQL] {
            let mut st = db.conn().prepare(sql).unwrap();
            let id: i64 = st.query_row([], |r| r.get(0)).unwrap();
            let steps = st.get_status(rusqlite::StatementStatus::VmStep);
            let sorts = st.get_status(rusqlite::StatementStatus::Sort);
            assert!(
                steps < 100 && sorts == 0,
                "{sql}: {steps} steps, {sorts} sorts"
            );
            assert!(id > 0);
        }
        let first = db.next_print_job().unwrap().unwrap();
        assert!(first.doc.is_drawer(), "the owed pulse goes first");
        assert_eq!(first.txn_id, "t4000");
        db.unconfirmed_print_job(first.id, "x", 1).unwrap();
        let next = db.next_print_job().unwrap().unwrap();
        assert_eq!(next.txn_id, "t0", "then the oldest");
        db.finish_print_job(next.id, None, 2).unwrap();
        assert_eq!(db.next_print_job().unwrap().unwrap().txn_id, "t1");
        assert_eq!(db.print_jobs_waiting().unwrap(), 4_998);
        assert_eq!(db.counters().unwrap(), db.recount_counters().unwrap());
    }

    #[test]
    fn owed_jobs_past_their_age_are_given_up_oldest_first_at_a_flat_cost() {
        let (_d, mut db) = db();
        let receipt = printed_sale_receipt(&mut db);
        let drawer = PrintDoc::Drawer {
            drawer: DrawerPin::Pin2,
        };
        let hour = 3_600_000u64;
        let limits = OwedLimits {
            job_max_age_ms: 24 * hour,
            drawer_max_age_ms: 300_000,
        };
        // Owed at hours 0, 1 and 2: a receipt each, a drawer pulse at hour 1 (with its sale).
        let tx = db.conn.transaction().unwrap();
        for (n, (doc, at)) in [
            (&receipt, 0),
            (&drawer, hour),
            (&receipt, hour),
            (&receipt, 2 * hour),
        ]
        .into_iter()
        .enumerate()
        {
            insert(&tx, &format!("t{n}"), doc, Language::En, at).unwrap();
        }
        tx.commit().unwrap();
        let states = |db: &Db| -> Vec<String> {
            let mut st = db
                .conn()
                .prepare("SELECT state FROM print_jobs WHERE txn_id LIKE 't%' ORDER BY id")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };

        // Four minutes after the pulse: nothing is too old.
        let e = db
            .expire_owed_print_jobs(hour + 240_000, limits, 64, None)
            .unwrap();
        assert_eq!(e, Expired { now: 0, total: 0 });
        // Six minutes after: the pulse goes, the receipts wait.
        let e = db
            .expire_owed_print_jobs(hour + 360_000, limits, 64, None)
            .unwrap();
        assert_eq!(e, Expired { now: 1, total: 1 });
        assert_eq!(states(&db), ["queued", "expired", "queued", "queued"]);
        assert_eq!(db.next_print_job().unwrap().unwrap().txn_id, "t0");
        // A day and an hour and a half after the first: the first two receipts go, at most one
        // a step.
        let at = 25 * hour + hour / 2;
        assert_eq!(
            db.expire_owed_print_jobs(at, limits, 1, None).unwrap().now,
            1
        );
        assert_eq!(
            db.expire_owed_print_jobs(at, limits, 1, None).unwrap(),
            Expired { now: 1, total: 3 }
        );
        assert_eq!(
            db.expire_owed_print_jobs(at, limits, 1, None).unwrap().now,
            0
        );
        assert_eq!(states(&db), ["expired", "expired", "expired", "queued"]);
        assert_eq!(db.next_print_job().unwrap().unwrap().txn_id, "t3");
        assert_eq!(db.print_jobs_waiting().unwrap(), 1);
        assert_eq!(db.counters().unwrap(), db.recount_counters().unwrap());
        // The job the printer holds through a fault is left alone (it is in its buffer) ...
        let last = db.next_print_job().unwrap().unwrap();
        db.start_print_job(last.id).unwrap();
        assert_eq!(
            db.expire_owed_print_jobs(27 * hour, limits, 64, Some(last.id))
                .unwrap()
                .now,
            0
        );
        // ... but one left `sending` by a stop is given up once too old, and says it may have
        // printed.
        assert_eq!(
            db.expire_owed_print_jobs(27 * hour, limits, 64, None)
                .unwrap(),
            Expired { now: 1, total: 4 }
        );
        let why: String = db
            .conn()
            .query_row(
                "SELECT last_error FROM print_jobs WHERE id = ?1",
                [last.id],
                |r| r.get(0),
            )
            .unwrap();
        assert!(why.contains("may have printed"), "{why}");
        assert!(db.next_print_job().unwrap().is_none());
        assert_eq!(db.print_jobs_waiting().unwrap(), 0);
        // A job given up never comes back: an attempt's late end changes nothing.
        db.unsend_print_job(last.id, "late").unwrap();
        db.requeue_uncertain_print_job(last.id, &receipt, Language::En, 0, "late")
            .unwrap();
        db.finish_print_job(last.id, None, 27 * hour).unwrap();
        assert!(db.next_print_job().unwrap().is_none());
        assert_eq!(states(&db)[3], "expired");
        assert_eq!(db.counters().unwrap(), db.recount_counters().unwrap());

        // With 5,000 young jobs owed, a step reads one index entry a walk, not the 5,000.
        let tx = db.conn.transaction().unwrap();
        for n in 0..5_000u64 {
            let doc = if n == 10 { &drawer } else { &receipt };
            insert(&tx, &format!("y{n}"), doc, Language::En, 30 * hour + n).unwrap();
        }
        tx.commit().unwrap();
        for sql in [OLDEST_DRAWER_SQL, OLDEST_OWED_SQL] {
            let mut st = db.conn().prepare(sql).unwrap();
            let _: (i64, i64) = st
                .query_row([None::<i64>], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            let steps = st.get_status(rusqlite::StatementStatus::VmStep);
            let sorts = st.get_status(rusqlite::StatementStatus::Sort);
            assert!(
                steps < 100 && sorts == 0,
                "{sql}: {steps} steps, {sorts} sorts"
            );
        }
        let e = db
            .expire_owed_print_jobs(30 * hour + 60_000, limits, 64, None)
            .unwrap();
        assert_eq!(e, Expired { now: 0, total: 4 });
        assert_eq!(db.print_jobs_waiting().unwrap(), 5_000);
        assert_eq!(db.counters().unwrap(), db.recount_counters().unwrap());
    }

    #[test]
    fn an_attempt_is_recorded_before_it_starts_and_ends_one_of_four_ways() {
        let (_d, mut db) = db();
        db.record(&sale(TxnState::ApprovedOffline)).unwrap();
        let drawer = db.next_print_job().unwrap().unwrap();
        db.start_print_job(drawer.id).unwrap();
        // A stop here: the next start finds it `sending` (uncertain).
        assert!(db.next_print_job().unwrap().unwrap().sending);
        db.unconfirmed_print_job(drawer.id, "connection lost", 3)
            .unwrap();
        let receipt = db.next_print_job().unwrap().unwrap();
        assert!(!receipt.doc.is_drawer() && !receipt.sending);
        db.start_print_job(receipt.id).unwrap();
        db.unsend_print_job(receipt.id, "paper out").unwrap();
        db.start_print_job(receipt.id).unwrap();
        db.print_job_progress(receipt.id, 1).unwrap();
        let mut doc = receipt.doc.clone();
        doc.mark_printer_fault();
        db.requeue_uncertain_print_job(receipt.id, &doc, Language::Es, 1, "not answering")
            .unwrap();
        let again = db.next_print_job().unwrap().unwrap();
        assert_eq!(
            (again.id, again.parts_done, again.sending),
            (receipt.id, 1, false)
        );
        assert_eq!(again.doc, doc);
        assert_eq!(db.print_jobs_waiting().unwrap(), 1);
        db.finish_print_job(again.id, None, 9).unwrap();
        assert_eq!(db.print_jobs_waiting().unwrap(), 0);
        let states: Vec<String> = jobs(&db).into_iter().map(|j| j.1).collect();
        assert_eq!(states, ["unconfirmed", "printed"]);
    }
}
