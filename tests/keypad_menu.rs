//! The keypad's menu (issue 15 item 5) through its shell: recorded evdev key streams (the same
//! opener path as a real keypad) into `keypad::run`, a real journal and print queue
//! (`PrintHandle` on a `Store`), and the engine's channel answered here as the engine answers
//! (the receipt scanned, the refund's and void's replies). A partial refund keys its amount
//! after the manager PIN; a void and a reprint find their transaction by a scanned receipt;
//! the Z report prints again.

use posd::config::devices::KeypadConfig;
use posd::devices::evdev_reader::{input_event, RecordedEnd, RecordedOpener, EV_KEY};
use posd::devices::{keypad, status_channel};
use posd::engine::EngineMsg;
use posd::printq::PrintHandle;
use posd::store::Store;
use posd_core::control::SaleReply;
use posd_core::display::UiEvent;
use posd_core::hid::keymap::code;
use posd_core::money::Currency;
use posd_core::txn::{Method, SaleOutcome, Transaction, TxnKind, TxnState};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch, Notify};

fn stream(keys: &[u16]) -> Vec<evdev::InputEvent> {
    keys.iter()
        .enumerate()
        .flat_map(|(i, k)| {
            let t = 1_000_000 + i as u64 * 300_000;
            [
                input_event(t, EV_KEY, *k, 1),
                input_event(t + 50_000, EV_KEY, *k, 0),
            ]
        })
        .collect()
}

/// The manager PIN 4711 and Enter.
const PIN: [u16; 5] = [code::KP4, code::KP7, code::KP1, code::KP1, code::KPENTER];

struct Rig {
    engine: mpsc::Receiver<EngineMsg>,
    ui: broadcast::Receiver<UiEvent>,
    _stop: watch::Sender<bool>,
}

fn start(keys: &[u16], printer: &PrintHandle) -> Rig {
    let (engine_tx, engine) = mpsc::channel(8);
    let (ui_tx, ui) = broadcast::channel(64);
    let (st_tx, _st_rx) = status_channel();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(keypad::run(
        RecordedOpener::new(vec![stream(keys)], RecordedEnd::Stay),
        KeypadConfig::default(),
        Currency::from_code("CNY").unwrap(),
        1_000_000,
        engine_tx,
        ui_tx,
        Some(printer.clone()),
        st_tx,
        stop_rx,
    ));
    Rig {
        engine,
        ui,
        _stop: stop,
    }
}

impl Rig {
    /// The next message to the engine (the start-up `current` answered: nothing recovered).
    async fn next(&mut self) -> EngineMsg {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.engine.recv())
                .await
                .expect("a message to the engine")
                .expect("keypad running");
            match m {
                EngineMsg::Current { reply } => {
                    let _ = reply.send(None);
                }
                m => return m,
            }
        }
    }

    /// Waits for the keypad to show `line1\nline2`.
    async fn screen(&mut self, want: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let ev = tokio::time::timeout_at(deadline, self.ui.recv()).await;
            match ev {
                Ok(Ok(UiEvent::Notice { text })) if text == want => return,
                Ok(Ok(UiEvent::Notice { text })) => seen.push(text),
                Ok(Ok(_)) => {}
                _ => panic!("no screen {want:?}; saw {seen:?}"),
            }
        }
    }
}

fn sale(now: u64) -> Transaction {
    let mut t = Transaction::new(
        TxnKind::Sale,
        Method::PaymentCode,
        1250,
        Currency::from_code("CNY").unwrap(),
        TxnState::Approved,
        now,
        [now as u8; 10],
    );
    t.channel = Some("wechat".into());
    t.code_masked = Some("1345**********6789".into());
    t
}

/// The scanned receipt: the engine answers a lookup with the transaction its QR names.
fn found(t: &Transaction) -> SaleReply {
    SaleReply::of(t, SaleOutcome::Approved { host_ref: None })
}

async fn newest_job(store: &Store) -> (String, String) {
    store
        .call(|db| {
            db.conn()
                .query_row(
                    "SELECT txn_id, data FROM print_jobs ORDER BY id DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|e| posd::store::StoreError::Sqlite(e.to_string()))
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keypad_refunds_part_voids_reprints_by_qr_and_prints_the_z_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("j.sqlite")).unwrap();
    let now = 1_796_000_000_000;
    let s = sale(now);
    let rec = s.clone();
    store.call(move |db| db.record(&rec)).await.unwrap();
    let printer = PrintHandle {
        store: store.clone(),
        ctx: posd_core::receipt::ReceiptCtx {
            terminal: "T-KEYPAD".into(),
            zone: Default::default(),
            drawer: Default::default(),
            language: Default::default(),
        },
        wake: Arc::new(Notify::new()),
    };

    // Partial refund: Menu 1, PIN, 4.50 Enter → the engine is asked for 4.50 behind the PIN,
    // the sale named by the receipt scanned next.
    let mut keys = vec![code::KPPLUS, code::KP1];
    keys.extend(PIN);
    keys.extend([code::KP4, code::KPDOT, code::KP5, code::KPENTER]);
    let mut r = start(&keys, &printer);
    r.screen("Refund amount CNY\n4.5").await;
    match r.next().await {
        EngineMsg::Refund { req, reply } => {
            assert_eq!(req.amount, Some(450));
            assert_eq!(req.pin, "4711");
            assert_eq!(req.original, None, "the receipt scanned names it");
            let mut refund = s.clone();
            refund.kind = TxnKind::Refund;
            refund.amount = 450;
            let _ = reply.send(Ok(SaleReply::of(
                &refund,
                SaleOutcome::Approved { host_ref: None },
            )));
        }
        _ => panic!("expected a refund"),
    }
    r.screen("Refund\nRefunded").await;

    // Void: Menu 5, PIN → the engine waits for a receipt; the scan names the sale; the void
    // carries the PIN for the engine to check.
    let mut keys = vec![code::KPPLUS, code::KP5];
    keys.extend(PIN);
    let mut r = start(&keys, &printer);
    match r.next().await {
        EngineMsg::FindReceipt { prompt, reply } => {
            assert_eq!(prompt, "Void\nScan the receipt");
            let _ = reply.send(Ok(found(&s)));
        }
        _ => panic!("expected a receipt lookup"),
    }
    match r.next().await {
        EngineMsg::Void {
            original,
            pin,
            reply,
        } => {
            assert_eq!(original, s.id.to_string());
            assert_eq!(pin, "4711");
            let mut v = s.clone();
            v.kind = TxnKind::Void;
            v.state = TxnState::Voided;
            let _ = reply.send(Ok(SaleReply::of(
                &v,
                SaleOutcome::Approved { host_ref: None },
            )));
        }
        _ => panic!("expected a void"),
    }
    r.screen("Void\nVoided").await;

    // Reprint by QR: Menu 2 → the scanned receipt's transaction is queued again, marked.
    let mut r = start(&[code::KPPLUS, code::KP2], &printer);
    match r.next().await {
        EngineMsg::FindReceipt { prompt, reply } => {
            assert_eq!(prompt, "Reprint\nScan QR / Enter=last");
            let _ = reply.send(Ok(found(&s)));
        }
        _ => panic!("expected a receipt lookup"),
    }
    r.screen("Reprint\nReprint queued").await;
    let (txn, data) = newest_job(&store).await;
    assert_eq!(txn, s.id.to_string());
    assert!(
        data.contains("REPRINT") || data.contains("reprint"),
        "{data}"
    );

    // Z again before any batch: said so. Then after a close: its Z report is queued again.
    let mut r = start(&[code::KPPLUS, code::KP6], &printer);
    r.screen("Z report again\nNo batch closed yet").await;
    let close = Transaction::new(
        TxnKind::BatchClose,
        Method::None,
        0,
        Currency::from_code("CNY").unwrap(),
        TxnState::Closed,
        now + 1000,
        [9; 10],
    );
    let (close, _) = store.call(move |db| db.batch_close(close)).await.unwrap();
    let mut r = start(&[code::KPPLUS, code::KP6], &printer);
    r.screen("Z report again\nReprint queued").await;
    let (txn, _) = newest_job(&store).await;
    assert_eq!(txn, close.id.to_string());
}
