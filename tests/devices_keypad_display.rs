//! The keypad shell with a recorded keypad (same opener/hotplug path as a real one) driving a
//! sale into the engine's channel, and the displays: VFD bytes, UI frames, half-block QR.

use posd::config::devices::KeypadConfig;
use posd::devices::evdev_reader::{input_event, RecordedEnd, RecordedOpener, EV_KEY};
use posd::devices::{keypad, status_channel};
use posd::engine::EngineMsg;
use posd_core::display::vfd::{self, VfdFrame};
use posd_core::display::UiEvent;
use posd_core::hid::keymap::code;
use posd_core::money::Currency;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// The engine's next message to the keypad, answering its start-up question (is a sale
/// recovered after a restart in progress? here: nothing in progress).
async fn next_engine_msg(rx: &mut mpsc::Receiver<EngineMsg>) -> Option<EngineMsg> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap();
        match msg {
            Some(EngineMsg::Current { reply }) => {
                let _ = reply.send(None);
            }
            other => return other,
        }
    }
}

fn press(t: u64, k: u16) -> [evdev::InputEvent; 2] {
    [
        input_event(t, EV_KEY, k, 1),
        input_event(t + 50_000, EV_KEY, k, 0),
    ]
}

#[tokio::test]
async fn keyed_amount_becomes_the_engines_sale_and_cancel_reaches_it() {
    // 1 2 . 5 Enter Enter(scan) ... Esc(cancel)
    let keys = [
        code::KP1,
        code::KP2,
        code::KPDOT,
        code::KP5,
        code::KPENTER,
        code::KPENTER,
    ];
    let mut ev: Vec<_> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, k)| press(1_000_000 + i as u64 * 300_000, *k))
        .collect();
    ev.extend(press(5_000_000, code::ESC));
    let (engine_tx, mut engine_rx) = mpsc::channel(8);
    let (ui_tx, mut ui_rx) = broadcast::channel(64);
    let (st_tx, mut st_rx) = status_channel();
    let (_stop, stop_rx) = watch::channel(false);
    let cny = Currency::from_code("CNY").unwrap();
    tokio::spawn(keypad::run(
        RecordedOpener::new(vec![ev], RecordedEnd::Stay),
        KeypadConfig::default(),
        cny,
        1_000_000,
        engine_tx,
        ui_tx.clone(),
        None,
        st_tx,
        stop_rx,
    ));
    st_rx.wait_for(|s| s.is_ok()).await.unwrap();
    let msg = next_engine_msg(&mut engine_rx).await;
    let Some(EngineMsg::Sale {
        amount,
        currency,
        code,
        reply,
        ..
    }) = msg
    else {
        panic!("expected a sale");
    };
    assert_eq!((amount, currency, code), (1250, cny, None));
    let msg = next_engine_msg(&mut engine_rx).await;
    assert!(matches!(msg, Some(EngineMsg::Cancel { .. })));
    drop(reply);
    // The keypad's screens went out as notices (amount as keyed, then the method prompt).
    let mut notices = Vec::new();
    while let Ok(ev) = ui_rx.try_recv() {
        if let UiEvent::Notice { text } = ev {
            notices.push(text);
        }
    }
    assert!(
        notices.iter().any(|n| n == "Amount CNY\n12.5"),
        "{notices:?}"
    );
    assert!(
        notices.iter().any(|n| n.ends_with("1 Scan 2 QR 3 Card")),
        "{notices:?}"
    );
}

#[tokio::test]
async fn a_keypad_that_is_not_there_is_absent() {
    let (engine_tx, _engine_rx) = mpsc::channel(8);
    let (ui_tx, _) = broadcast::channel(8);
    let (st_tx, mut st_rx) = status_channel();
    let (_stop, stop_rx) = watch::channel(false);
    tokio::spawn(keypad::run(
        RecordedOpener::new(vec![], RecordedEnd::Stay),
        KeypadConfig::default(),
        Currency::from_code("EUR").unwrap(),
        1000,
        engine_tx,
        ui_tx,
        None,
        st_tx,
        stop_rx,
    ));
    let st = st_rx
        .wait_for(|s| s.kind() == "absent")
        .await
        .unwrap()
        .clone();
    assert_eq!(st.to_string(), "absent: keypad not found");
}

#[test]
fn bindings_resolve_and_refuse_mistakes() {
    let b = posd::config::devices::KeyBindings::default();
    let map = b.resolve().unwrap();
    assert_eq!(
        map.get(&code::KP7),
        Some(&posd_core::cashier::Key::Digit(7))
    );
    assert_eq!(
        map.get(&code::KPENTER),
        Some(&posd_core::cashier::Key::Enter)
    );
    let mut bad = b.clone();
    bad.enter.push("KEY_NOPE".into());
    assert!(bad.resolve().is_err());
    let mut twice = b.clone();
    twice.cancel.push("KEY_KP1".into());
    assert!(twice.resolve().is_err());
    let mut short = b;
    short.digits.pop();
    assert!(short.resolve().is_err());
}

#[test]
fn vfd_bytes_are_clear_home_two_fitted_lines() {
    let bytes = vfd::encode(&VfdFrame::new("TOTAL 12.50", "Café — merci beaucoup!!"));
    assert_eq!(bytes[0], vfd::CLEAR);
    assert_eq!(bytes[1], vfd::HOME);
    assert_eq!(&bytes[2..22], b"TOTAL 12.50         ");
    assert_eq!(&bytes[22..26], &[0x1F, 0x24, 1, 2]);
    assert_eq!(&bytes[26..46], b"Cafe - merci beaucou");
    assert_eq!(bytes.len(), 46);
}

#[test]
fn the_customer_sees_amount_prompt_result_and_refusal_reason() {
    let f = vfd::frame_for(&UiEvent::AwaitingCode {
        amount: "12.50 CNY".into(),
    });
    assert_eq!(f.line1, "TOTAL      12.50 CNY");
    assert_eq!(f.line2, "Show your pay code");
    let f = vfd::frame_for(&UiEvent::Result {
        txn_id: "t".into(),
        text: "insufficient funds".into(),
        approved: false,
    });
    assert_eq!(f, VfdFrame::new("NOT PAID", "insufficient funds"));
    let f = vfd::frame_for(&UiEvent::Result {
        txn_id: "t".into(),
        text: "this payment code has expired, ask for a new one".into(),
        approved: false,
    });
    assert_eq!(f.line1, "this payment code");
    assert!(f.line2.starts_with("has expired"));
    let f = vfd::frame_for(&UiEvent::Notice {
        text: "Amount CNY\n12.5".into(),
    });
    assert_eq!(f, VfdFrame::new("Amount CNY", "12.5"));
}

#[test]
fn console_lines_and_half_block_qr() {
    assert_eq!(
        posd_core::display::console_text(&UiEvent::Notice {
            text: "Amount CNY\n12.5".into()
        }),
        "[till] Amount CNY | 12.5"
    );
    let qr = posd_core::display::qr_half_blocks("00020101021226", false).unwrap();
    let lines: Vec<&str> = qr.lines().collect();
    // Version 1 (21 modules) + 2×4 quiet zone = 29 columns, 15 lines of two rows each.
    assert_eq!(lines.len(), 15);
    assert!(lines.iter().all(|l| l.chars().count() == 29));
    assert!(lines[0].chars().all(|c| c == ' '), "quiet zone");
    // The finder pattern's top edge: rows 4 (dark) and 5 (mixed) share line 2.
    assert!(lines[2].contains("█▀▀▀▀▀█"), "{}", lines[2]);
    let inverted = posd_core::display::qr_half_blocks("00020101021226", true).unwrap();
    assert!(inverted.lines().next().unwrap().chars().all(|c| c == '█'));
}
