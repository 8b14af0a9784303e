//! The keypad's reprint of a receipt found by scanning its QR, end to end (issue 15 item 5):
//! recorded evdev keys into `keypad::run`, the real engine (`engine::run`, with its link to a
//! broker that is not there: a reprint needs no host), the real journal and print queue
//! (`printq::run`) printing to the sandbox's printer emulator over TCP. The receipt's QR is
//! scanned as a scanner would hand it to the engine (`EngineMsg::Code`); the emulator must
//! print the sale's receipt a second time, marked as a reprint.

mod common;

use common::{eventually, free_port};
use posd::config::devices::KeypadConfig;
use posd::config::Config;
use posd::devices::evdev_reader::{input_event, RecordedEnd, RecordedOpener, EV_KEY};
use posd::devices::{keypad, status_channel};
use posd::engine::{self, EngineMsg, EngineParams};
use posd::printq::PrintHandle;
use posd::store::Store;
use posd_core::display::UiEvent;
use posd_core::hid::keymap::code;
use posd_core::money::Currency;
use posd_core::receipt::PaperWidth;
use posd_core::txn::{Method, Transaction, TxnKind, TxnState};
use posd_sandbox::printer_emulator::{EmulatorScript, PrinterEmulator};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch, Notify};

const WAIT: Duration = Duration::from_secs(20);

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

/// Waits for a screen (a keypad or engine notice) `want`.
async fn screen(ui: &mut broadcast::Receiver<UiEvent>, want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, ui.recv()).await {
            Ok(Ok(UiEvent::Notice { text })) if text == want => return,
            Ok(Ok(UiEvent::Notice { text })) => seen.push(text),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            _ => panic!("no screen {want:?}; saw {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keypad_reprints_the_receipt_whose_qr_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let emu = PrinterEmulator::start(EmulatorScript::default())
        .await
        .unwrap();
    // Nobody listens on the broker's port: the link stays down, which a reprint does not need.
    let cfg = Config::from_toml(&format!(
        "[terminal]\nid = \"T-QR\"\nstate_dir = \"{}\"\n\n[broker]\nurl = \"mqtt://127.0.0.1:{}\"\n\
         lab_accept_unsigned = true\n\n[devices.printer]\nstatus = \"required\"\n\
         [devices.printer.transport]\ntype = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [receipt]\nshop_name = \"Lotus\"\nwidth = 32\nprinter_model = \"xprinter_xp58\"\n\
         copies = [\"customer\"]\n",
        dir.path().join("state").display(),
        free_port(),
        emu.port()
    ))
    .expect("config");
    let store = Store::open(&dir.path().join("journal.sqlite")).unwrap();
    let zone = posd_core::zone::ShopZone::default();
    let ctx = posd_core::receipt::ReceiptCtx {
        terminal: "T-QR".into(),
        zone: zone.clone(),
        drawer: Default::default(),
        language: Default::default(),
    };
    let c = ctx.clone();
    store
        .call(move |db| {
            db.set_receipts(Some(c));
            Ok(())
        })
        .await
        .unwrap();
    let (stop, shutdown) = watch::channel(false);

    // The print queue, to the emulator.
    let wake = Arc::new(Notify::new());
    let (health_tx, health_rx) = watch::channel(Default::default());
    tokio::spawn(posd::printq::run(
        store.clone(),
        cfg.devices.printer.clone().expect("printer"),
        cfg.receipt.clone(),
        wake.clone(),
        health_tx,
        shutdown.clone(),
    ));

    // An approved sale in the journal: its receipt is owed and printed once.
    let mut sale = Transaction::new(
        TxnKind::Sale,
        Method::PaymentCode,
        1250,
        Currency::from_code("CNY").unwrap(),
        TxnState::Approved,
        posd::clock::now_ms(),
        [7; 10],
    );
    sale.channel = Some("wechat".into());
    sale.code_masked = Some("1345**********6789".into());
    let rec = sale.clone();
    store.call(move |db| db.record(&rec)).await.unwrap();
    wake.notify_one();
    let qr = format!("R1.T-QR.{}", sale.id);
    let shown = format!("[QR {qr}]");
    eventually(WAIT, "the receipt printed once", || async {
        let t = emu.printed_text(PaperWidth::Mm58);
        (t.matches(&shown).count() == 1).then_some(())
    })
    .await;

    // The real engine, its link to no broker.
    let (ui_tx, mut ui) = broadcast::channel::<UiEvent>(256);
    let (inbound_tx, _inbound_rx) = mpsc::channel(16);
    let link = posd::link::start(
        posd::link::LinkParams {
            terminal: "T-QR".into(),
            session: "s-qr".into(),
            broker: cfg.broker.clone(),
            store: store.clone(),
            inbound: inbound_tx,
            status: Arc::new(|online, queue| posd_core::control::StatusDoc {
                online,
                queue,
                ..Default::default()
            }),
        },
        shutdown.clone(),
    )
    .expect("link");
    let (refusals, _refusals_rx) = watch::channel(None);
    let (engine_tx, engine_rx) = mpsc::channel::<EngineMsg>(64);
    tokio::spawn(engine::run(
        EngineParams {
            store: store.clone(),
            link,
            policy: cfg.online.policy(),
            currency: cfg.terminal.currency,
            max_amount: cfg.limits.max_sale_amount,
            patterns: posd_core::codes::Patterns::new(cfg.codes.clone()).unwrap(),
            offline: engine::OfflineRuntime::from_config(&cfg.offline, cfg.terminal.currency)
                .unwrap(),
            ui: ui_tx.clone(),
            terminal: "T-QR".into(),
            merchant_qr: engine::MerchantQrRuntime {
                platform: false,
                merchant: None,
                print: false,
                policy: cfg.merchant_qr.policy(&cfg.online),
            },
            card: engine::CardRuntime {
                host_key: None,
                chip_reader: false,
                saf: cfg.card.store_and_forward,
            },
            refund_policy: Default::default(),
            pin_hash: None,
            printer: Some(wake.clone()),
            zone,
            disk: posd::retention::DiskWatch::new(dir.path().to_path_buf(), &cfg.retention),
            code_key: posd::store::code_key(&dir.path().join("state")).unwrap(),
            printer_health: Some(health_rx),
            refusals,
        },
        engine_rx,
        Default::default(),
        shutdown.clone(),
    ));

    // The keypad: Menu, 2 (reprint) → the engine waits for a receipt's QR.
    let printer = PrintHandle {
        store: store.clone(),
        ctx,
        wake: wake.clone(),
    };
    let (st_tx, _st_rx) = status_channel();
    tokio::spawn(keypad::run(
        RecordedOpener::new(vec![stream(&[code::KPPLUS, code::KP2])], RecordedEnd::Stay),
        KeypadConfig::default(),
        cfg.terminal.currency,
        cfg.limits.max_sale_amount,
        engine_tx.clone(),
        ui_tx.clone(),
        Some(printer),
        st_tx,
        shutdown.clone(),
    ));
    screen(&mut ui, "Reprint\nScan QR / Enter=last").await;

    // The receipt's QR, as the scanner hands it over.
    engine_tx
        .send(EngineMsg::Code {
            text: qr.clone(),
            source: "test scanner".into(),
        })
        .await
        .unwrap();
    screen(&mut ui, "Reprint\nReprint queued").await;
    let printed = eventually(WAIT, "the receipt printed again", || async {
        let t = emu.printed_text(PaperWidth::Mm58);
        (t.matches(&shown).count() == 2).then_some(t)
    })
    .await;
    let second = &printed[printed.find(&shown).unwrap() + shown.len()..];
    assert!(second.contains("*** REPRINT ***"), "{second}");
    assert!(second.contains("12.50"), "{second}");
    let _ = stop.send(true);
}
