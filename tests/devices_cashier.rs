//! The cashier's keypad state machine, path by path: full sales with each method, cancel at
//! every step, overflow and decimals per currency exponent, the menu, masked PIN entry, and
//! sales started elsewhere (the control socket) becoming the keypad's sale; issue 15: the
//! partial refund's amount entry, the void, the reprint by a receipt's QR (Enter: the newest),
//! the Z report again, a sale recovered after a restart and the alerts on the idle screen.

use posd_core::cashier::{
    Action, Awaiting, Cashier, CashierConfig, Input, Key, Op, PayMethod, Screen, State,
};
use posd_core::money::Currency;

fn cashier(cur: &str, max: i64) -> Cashier {
    Cashier::new(CashierConfig {
        currency: Currency::from_code(cur).unwrap(),
        max_amount: max,
        result_ms: 5000,
        pin_min_len: 4,
        pin_max_len: 8,
        language: posd_core::i18n::Language::En,
    })
}

fn keys(c: &mut Cashier, ks: &[Key]) -> Vec<Action> {
    ks.iter()
        .flat_map(|k| c.handle(Input::Key(*k), 0))
        .collect()
}

fn digits(s: &str) -> Vec<Key> {
    s.chars()
        .map(|ch| match ch {
            '.' => Key::Point,
            d => Key::Digit(d.to_digit(10).unwrap() as u8),
        })
        .collect()
}

fn last_screen(actions: &[Action]) -> Screen {
    actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Show(s) => Some(s.clone()),
            _ => None,
        })
        .expect("a screen")
}

fn started(actions: &[Action]) -> Vec<(i64, PayMethod)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartSale { amount, method } => Some((*amount, *method)),
            _ => None,
        })
        .collect()
}

#[test]
fn full_scan_sale_idle_to_idle() {
    let mut c = cashier("CNY", 1_000_000);
    let a = keys(&mut c, &digits("12.5"));
    assert_eq!(last_screen(&a).line2, "12.5");
    let a = keys(&mut c, &[Key::Enter]);
    assert!(matches!(c.state(), State::Method { amount: 1250, .. }));
    assert!(last_screen(&a).line2.contains("1 Scan"));
    let a = keys(&mut c, &[Key::Enter]);
    assert_eq!(started(&a), vec![(1250, PayMethod::Scan)]);
    // The engine's AwaitingCode for the same sale changes nothing.
    assert!(c.handle(Input::SaleStarted { amount: 1250 }, 10).is_empty());
    let a = c.handle(
        Input::Pending {
            text: "Contacting host".into(),
        },
        20,
    );
    assert_eq!(last_screen(&a).line2, "Contacting host");
    let a = c.handle(
        Input::Outcome {
            approved: true,
            text: "Paid".into(),
        },
        100,
    );
    assert_eq!(last_screen(&a), Screen::new("APPROVED", "Paid"));
    assert!(c.handle(Input::Tick, 5099).is_empty());
    let a = c.handle(Input::Tick, 5100);
    assert_eq!(c.state(), &State::Idle);
    assert_eq!(last_screen(&a).line1, "Ready");
}

#[test]
fn each_method_key_starts_its_sale() {
    for (key, method) in [
        (Key::MethodScan, PayMethod::Scan),
        (Key::MethodQr, PayMethod::MerchantQr),
        (Key::MethodCard, PayMethod::Card),
        (Key::Digit(1), PayMethod::Scan),
        (Key::Digit(2), PayMethod::MerchantQr),
        (Key::Digit(3), PayMethod::Card),
    ] {
        let mut c = cashier("EUR", 100_000);
        keys(&mut c, &digits("7"));
        keys(&mut c, &[Key::Enter]);
        let a = keys(&mut c, &[key]);
        assert_eq!(started(&a), vec![(700, method)], "{key:?}");
    }
    // Method keys straight from amount entry skip the method screen.
    let mut c = cashier("EUR", 100_000);
    keys(&mut c, &digits("3"));
    let a = keys(&mut c, &[Key::MethodQr]);
    assert_eq!(started(&a), vec![(300, PayMethod::MerchantQr)]);
}

#[test]
fn declined_and_refused_sales_show_the_reason() {
    let mut c = cashier("CNY", 1_000_000);
    keys(&mut c, &digits("5"));
    keys(&mut c, &[Key::Enter, Key::Enter]);
    let a = c.handle(
        Input::Outcome {
            approved: false,
            text: "insufficient funds".into(),
        },
        0,
    );
    assert_eq!(
        last_screen(&a),
        Screen::new("NOT PAID", "insufficient funds")
    );
    // A key in the result screen starts the next sale directly.
    let a = keys(&mut c, &[Key::Digit(9)]);
    assert_eq!(last_screen(&a).line2, "9");
}

#[test]
fn cancel_at_every_step() {
    // Amount entry → idle.
    let mut c = cashier("CNY", 1_000_000);
    keys(&mut c, &digits("12"));
    let a = keys(&mut c, &[Key::Cancel]);
    assert_eq!(c.state(), &State::Idle);
    assert!(!a.iter().any(|a| matches!(a, Action::CancelSale)));
    // Method → idle, no sale.
    keys(&mut c, &digits("12"));
    keys(&mut c, &[Key::Enter]);
    let a = keys(&mut c, &[Key::Cancel]);
    assert_eq!(c.state(), &State::Idle);
    assert!(started(&a).is_empty());
    // Waiting → CancelSale once, and stays waiting for the engine's verdict.
    keys(&mut c, &digits("12"));
    keys(&mut c, &[Key::Enter, Key::Enter]);
    let a = keys(&mut c, &[Key::Cancel]);
    assert!(matches!(
        a.as_slice(),
        [Action::CancelSale, Action::Show(_)]
    ));
    assert_eq!(last_screen(&a).line2, "Cancelling...");
    assert!(
        keys(&mut c, &[Key::Cancel]).is_empty(),
        "second cancel is not sent twice"
    );
    let a = c.handle(
        Input::Outcome {
            approved: false,
            text: "cancelled by the cashier".into(),
        },
        0,
    );
    assert_eq!(last_screen(&a).line1, "NOT PAID");
    // Result → idle.
    keys(&mut c, &[Key::Cancel]);
    assert_eq!(c.state(), &State::Idle);
    // Menu → idle; PIN → idle; idle stays idle.
    keys(&mut c, &[Key::Menu]);
    keys(&mut c, &[Key::Cancel]);
    assert_eq!(c.state(), &State::Idle);
    keys(&mut c, &[Key::Menu, Key::Digit(1), Key::Digit(1)]);
    keys(&mut c, &[Key::Cancel]);
    assert_eq!(c.state(), &State::Idle);
    let a = keys(&mut c, &[Key::Cancel]);
    assert_eq!(c.state(), &State::Idle);
    assert!(!a.iter().any(|a| matches!(a, Action::CancelSale)));
}

#[test]
fn a_sale_from_the_control_socket_is_the_keypads_sale() {
    let mut c = cashier("CNY", 1_000_000);
    keys(&mut c, &digits("4")); // half-keyed amount is abandoned
    let a = c.handle(Input::SaleStarted { amount: 990 }, 0);
    assert_eq!(
        c.state(),
        &State::Waiting(Awaiting::Sale {
            amount: 990,
            cancel_requested: false
        })
    );
    assert_eq!(last_screen(&a).line1, "9.90 CNY");
    let a = keys(&mut c, &[Key::Cancel]);
    assert!(matches!(a.first(), Some(Action::CancelSale)));
    c.handle(
        Input::Outcome {
            approved: false,
            text: "cancelled".into(),
        },
        0,
    );
    assert!(matches!(c.state(), State::Result { .. }));
}

#[test]
fn decimals_follow_the_currency_exponent() {
    // 2 decimals: a third is refused, the entry unchanged.
    let mut c = cashier("EUR", 1_000_000);
    let a = keys(&mut c, &digits("1.234"));
    assert_eq!(last_screen(&a).line2, "Only 2 decimals");
    keys(&mut c, &[Key::Enter]);
    assert!(matches!(c.state(), State::Method { amount: 123, .. }));
    // 0 decimals: the point is refused.
    let mut c = cashier("JPY", 1_000_000);
    let a = keys(&mut c, &digits("5.0"));
    assert_eq!(last_screen(&a).line2, "50");
    keys(&mut c, &[Key::Enter]);
    assert!(matches!(c.state(), State::Method { amount: 50, .. }));
    // 3 decimals.
    let mut c = cashier("KWD", 1_000_000);
    keys(&mut c, &digits("1.005"));
    keys(&mut c, &[Key::Enter]);
    assert!(matches!(c.state(), State::Method { amount: 1005, .. }));
    // "0." and "." alone are zero: Enter is refused.
    let mut c = cashier("EUR", 1_000_000);
    let a = keys(&mut c, &[Key::Point, Key::Enter]);
    assert_eq!(last_screen(&a).line2, "Enter an amount");
    assert!(started(&a).is_empty());
    // Double zero.
    let mut c = cashier("EUR", 1_000_000);
    keys(&mut c, &[Key::Digit(5), Key::DoubleZero, Key::Enter]);
    assert!(matches!(c.state(), State::Method { amount: 50000, .. }));
}

#[test]
fn backspace_and_clear_edit_the_amount() {
    let mut c = cashier("EUR", 1_000_000);
    keys(&mut c, &digits("12.34"));
    let a = keys(&mut c, &[Key::Backspace]);
    assert_eq!(last_screen(&a).line2, "12.3");
    let a = keys(&mut c, &[Key::Backspace, Key::Backspace]);
    assert_eq!(last_screen(&a).line2, "12");
    let a = keys(&mut c, &[Key::Backspace, Key::Backspace, Key::Backspace]);
    assert_eq!(last_screen(&a).line2, "0");
    let a = keys(&mut c, &digits("98"));
    assert_eq!(last_screen(&a).line2, "98");
    let a = keys(&mut c, &[Key::Clear]);
    assert_eq!(last_screen(&a).line2, "0");
    // Backspace on the method screen returns to the amount, intact.
    keys(&mut c, &digits("7.5"));
    keys(&mut c, &[Key::Enter, Key::Backspace]);
    assert_eq!(c.screen().line2, "7.5");
    keys(&mut c, &[Key::Enter, Key::Clear]);
    assert_eq!(c.screen().line2, "0");
}

#[test]
fn the_maximum_and_overflow_are_refused() {
    let mut c = cashier("CNY", 50_000); // 500.00
    let a = keys(&mut c, &digits("5001"));
    assert_eq!(last_screen(&a).line2, "Max 500.00");
    assert!(matches!(c.state(), State::Amount(e) if e.minor(2) == Some(50000)));
    let a = keys(&mut c, &[Key::DoubleZero]);
    assert_eq!(last_screen(&a).line2, "Max 500.00");
    // i64 overflow never panics, whatever is keyed.
    let mut c = cashier("CNY", i64::MAX);
    let a = keys(&mut c, &digits(&"9".repeat(40)));
    assert!(last_screen(&a).line2.starts_with("Max"));
    keys(&mut c, &[Key::Enter, Key::Enter]);
    assert!(matches!(c.state(), State::Waiting(_)));
    // Out-of-range digit values are ignored.
    let mut c = cashier("CNY", 1000);
    assert!(keys(&mut c, &[Key::Digit(1), Key::Digit(12)]).len() == 1);
}

#[test]
fn menu_operations() {
    for (d, want, op) in [
        (2, Action::Reprint, Op::Reprint),
        (3, Action::BatchClose, Op::BatchClose),
        (4, Action::Status, Op::Status),
    ] {
        let name = posd_core::i18n::text(posd_core::i18n::Language::En, op.msg());
        let mut c = cashier("CNY", 1000);
        let a = keys(&mut c, &[Key::Menu]);
        assert_eq!(last_screen(&a).line1, "1 Refund 2 Reprint");
        let a = keys(&mut c, &[Key::Digit(d)]);
        assert_eq!(a.first(), Some(&want));
        assert_eq!(c.state(), &State::Waiting(Awaiting::Operation(op)));
        // Cancel cannot abort an operation (its result ends it), except the reprint's wait
        // for a receipt to be scanned.
        if d == 2 {
            let a = keys(&mut c, &[Key::Cancel]);
            assert_eq!(a.first(), Some(&Action::CancelSale));
            assert_eq!(last_screen(&a), Screen::new(name, "Cancelled"));
            continue;
        }
        assert!(keys(&mut c, &[Key::Cancel]).is_empty());
        let a = c.handle(
            Input::OperationDone {
                text: "not available yet".into(),
            },
            0,
        );
        assert_eq!(last_screen(&a), Screen::new(name, "not available yet"));
    }
    // Unknown menu keys keep the menu.
    let mut c = cashier("CNY", 1000);
    keys(&mut c, &[Key::Menu, Key::Digit(9)]);
    assert_eq!(c.state(), &State::Menu);
}

#[test]
fn refund_pin_is_masked_and_needs_minimum_length() {
    let mut c = cashier("CNY", 1000);
    let mut shown = Vec::new();
    shown.extend(keys(&mut c, &[Key::Menu, Key::Digit(1)]));
    shown.extend(keys(&mut c, &digits("9876")));
    let a = keys(&mut c, &[Key::Backspace]);
    assert_eq!(last_screen(&a).line2, "***");
    shown.extend(a);
    let a = keys(&mut c, &[Key::Enter]);
    assert_eq!(last_screen(&a).line2, "PIN too short");
    shown.extend(a);
    shown.extend(keys(&mut c, &digits("5")));
    // PIN, then the amount (Enter alone: all that is left).
    let a = keys(&mut c, &[Key::Enter]);
    assert_eq!(
        last_screen(&a),
        Screen::new("Refund amount CNY", "Enter: all the rest")
    );
    shown.extend(a);
    let a = keys(&mut c, &[Key::Enter]);
    let (pin, amount) = a
        .iter()
        .find_map(|a| match a {
            Action::Refund { pin, amount } => Some((pin.clone(), *amount)),
            _ => None,
        })
        .expect("refund");
    assert_eq!(amount, None);
    assert_eq!(pin.expose(), b"9875");
    shown.extend(a);
    // No screen and no debug output ever shows a PIN digit.
    for action in &shown {
        if let Action::Show(s) = action {
            if s.line1 == "Manager PIN" {
                assert!(!s.line2.chars().any(|c| c.is_ascii_digit()), "{s:?}");
            }
            assert!(!s.line2.contains("98"), "{s:?}");
        }
        let dbg = format!("{action:?}");
        assert!(!dbg.contains("9875") && !dbg.contains("987"), "{dbg}");
    }
    assert_eq!(format!("{pin:?}"), "Pin(****)");
    // Max length: extra digits are ignored.
    let mut c = cashier("CNY", 1000);
    keys(&mut c, &[Key::Menu, Key::Digit(1)]);
    let a = keys(&mut c, &digits("1234567890"));
    assert_eq!(last_screen(&a).line2, "********");
    // Clear empties the PIN.
    let a = keys(&mut c, &[Key::Clear]);
    assert_eq!(last_screen(&a).line2, "");
}

#[test]
fn inputs_out_of_place_are_ignored() {
    let mut c = cashier("CNY", 1000);
    assert!(c
        .handle(
            Input::Outcome {
                approved: true,
                text: "x".into()
            },
            0
        )
        .is_empty());
    assert!(c
        .handle(Input::OperationDone { text: "x".into() }, 0)
        .is_empty());
    assert!(c.handle(Input::Pending { text: "x".into() }, 0).is_empty());
    assert!(c.handle(Input::Tick, u64::MAX).is_empty());
    assert_eq!(c.state(), &State::Idle);
    // An operation result does not end a sale.
    keys(&mut c, &digits("1"));
    keys(&mut c, &[Key::Enter, Key::Enter]);
    assert!(c
        .handle(Input::OperationDone { text: "x".into() }, 0)
        .is_empty());
    assert!(matches!(c.state(), State::Waiting(Awaiting::Sale { .. })));
    // Keys other than Cancel do nothing while waiting.
    for k in [
        Key::Digit(1),
        Key::Enter,
        Key::Menu,
        Key::Clear,
        Key::Backspace,
        Key::Point,
    ] {
        assert!(keys(&mut c, &[k]).is_empty());
    }
}

/// Every key in every state: never a panic, and a sale starts only from the method step.
#[test]
fn exhaustive_key_by_state_never_panics() {
    let all = [
        Key::Digit(0),
        Key::Digit(1),
        Key::Digit(2),
        Key::Digit(3),
        Key::Digit(4),
        Key::Digit(9),
        Key::DoubleZero,
        Key::Point,
        Key::Backspace,
        Key::Clear,
        Key::Enter,
        Key::Cancel,
        Key::Menu,
        Key::MethodScan,
        Key::MethodQr,
        Key::MethodCard,
    ];
    let preludes: Vec<Vec<Key>> = vec![
        vec![],
        digits("12"),
        [digits("12"), vec![Key::Enter]].concat(),
        [digits("12"), vec![Key::Enter, Key::Enter]].concat(),
        vec![Key::Menu],
        vec![Key::Menu, Key::Digit(1), Key::Digit(1)],
    ];
    for p in &preludes {
        for k1 in all {
            for k2 in all {
                let mut c = cashier("EUR", 100_000);
                keys(&mut c, p);
                let in_method = matches!(c.state(), State::Method { .. });
                let in_amount = matches!(c.state(), State::Amount(_));
                let a = keys(&mut c, &[k1]);
                if !started(&a).is_empty() {
                    assert!(in_method || in_amount, "{p:?} {k1:?}");
                }
                keys(&mut c, &[k2]);
            }
        }
    }
}

fn refund_action(a: &[Action]) -> Option<(Vec<u8>, Option<i64>)> {
    a.iter().find_map(|a| match a {
        Action::Refund { pin, amount } => Some((pin.expose().to_vec(), *amount)),
        _ => None,
    })
}

#[test]
fn partial_refund_keys_its_amount_after_the_pin() {
    let mut c = cashier("CNY", 1_000_000);
    keys(&mut c, &[Key::Menu, Key::Digit(1)]);
    keys(&mut c, &digits("4711"));
    keys(&mut c, &[Key::Enter]);
    assert!(matches!(c.state(), State::RefundAmount { .. }));
    // Keyed like a sale's amount: decimals per the currency, backspace, the same limits.
    let a = keys(&mut c, &digits("4.505"));
    assert_eq!(last_screen(&a).line2, "Only 2 decimals");
    let a = keys(&mut c, &[Key::Backspace]);
    assert_eq!(last_screen(&a).line2, "4.5");
    let a = keys(&mut c, &[Key::Enter]);
    assert_eq!(refund_action(&a), Some((b"4711".to_vec(), Some(450))));
    assert_eq!(c.state(), &State::Waiting(Awaiting::Operation(Op::Refund)));
    // The engine then waits for the receipt; Cancel ends that wait.
    assert_eq!(keys(&mut c, &[Key::Cancel]), vec![Action::CancelSale]);
    let a = c.handle(
        Input::OperationDone {
            text: "Refunded".into(),
        },
        0,
    );
    assert_eq!(last_screen(&a), Screen::new("Refund", "Refunded"));
    // A zero amount is not a refund; Cancel leaves without one.
    let mut c = cashier("CNY", 1_000_000);
    keys(&mut c, &[Key::Menu, Key::Digit(1)]);
    keys(&mut c, &digits("4711"));
    keys(&mut c, &[Key::Enter]);
    let a = keys(&mut c, &[Key::Digit(0), Key::Enter]);
    assert_eq!(last_screen(&a).line2, "Enter an amount");
    assert!(refund_action(&a).is_none());
    let a = keys(&mut c, &[Key::Cancel]);
    assert!(refund_action(&a).is_none());
    assert_eq!(c.state(), &State::Idle);
}

#[test]
fn void_needs_the_pin_then_a_receipt() {
    let mut c = cashier("CNY", 1_000_000);
    let a = keys(&mut c, &[Key::Menu]);
    assert_eq!(
        last_screen(&a),
        Screen::new("1 Refund 2 Reprint", "3Cls 4Stat 5Void 6Z")
    );
    assert!(last_screen(&a).line2.chars().count() <= 20);
    let a = keys(&mut c, &[Key::Digit(5)]);
    assert_eq!(last_screen(&a).line1, "Manager PIN");
    keys(&mut c, &digits("4711"));
    let a = keys(&mut c, &[Key::Enter]);
    let pin = a.iter().find_map(|a| match a {
        Action::Void { pin } => Some(pin.expose().to_vec()),
        _ => None,
    });
    assert_eq!(pin, Some(b"4711".to_vec()));
    assert_eq!(c.state(), &State::Waiting(Awaiting::Operation(Op::Void)));
    let a = c.handle(
        Input::OperationDone {
            text: "Voided".into(),
        },
        0,
    );
    assert_eq!(last_screen(&a), Screen::new("Void", "Voided"));
    // Cancel while the receipt is awaited: the wait ends, nothing is voided.
    keys(&mut c, &[Key::Cancel]);
    keys(&mut c, &[Key::Menu, Key::Digit(5)]);
    keys(&mut c, &digits("4711"));
    keys(&mut c, &[Key::Enter]);
    let a = keys(&mut c, &[Key::Cancel]);
    assert_eq!(a.first(), Some(&Action::CancelSale));
    assert_eq!(last_screen(&a), Screen::new("Void", "Cancelled"));
    assert!(c
        .handle(
            Input::OperationDone {
                text: "late".into()
            },
            0
        )
        .is_empty());
}

#[test]
fn reprint_waits_for_a_receipt_or_takes_the_newest_on_enter() {
    let mut c = cashier("CNY", 1_000_000);
    keys(&mut c, &[Key::Menu]);
    let a = keys(&mut c, &[Key::Digit(2)]);
    assert_eq!(a.first(), Some(&Action::Reprint));
    let a = keys(&mut c, &[Key::Enter]);
    assert_eq!(a.first(), Some(&Action::ReprintLast));
    assert_eq!(c.state(), &State::Waiting(Awaiting::Operation(Op::Reprint)));
    let a = c.handle(
        Input::OperationDone {
            text: "Reprint queued".into(),
        },
        0,
    );
    assert_eq!(last_screen(&a), Screen::new("Reprint", "Reprint queued"));
    // Z again: no PIN (no money moves).
    let mut c = cashier("CNY", 1_000_000);
    keys(&mut c, &[Key::Menu]);
    let a = keys(&mut c, &[Key::Digit(6)]);
    assert_eq!(a.first(), Some(&Action::ZAgain));
    assert_eq!(c.state(), &State::Waiting(Awaiting::Operation(Op::ZAgain)));
}

#[test]
fn a_recovered_sale_holds_the_keypad_until_its_outcome() {
    let mut c = cashier("CNY", 1_000_000);
    let a = c.handle(
        Input::Recovered {
            short_ref: "0123456789ab".into(),
        },
        0,
    );
    assert_eq!(
        last_screen(&a),
        Screen::new("Recovered 0123456789ab", "Wait for result")
    );
    // Digits and the menu do nothing: no second sale while it is resolved.
    for k in [Key::Digit(1), Key::Menu, Key::Enter] {
        assert!(keys(&mut c, &[k]).is_empty(), "{k:?}");
    }
    let a = keys(&mut c, &[Key::Cancel]);
    assert_eq!(a.first(), Some(&Action::CancelSale));
    assert_eq!(last_screen(&a).line2, "Cancelling...");
    let a = c.handle(
        Input::Outcome {
            approved: false,
            text: "no final answer from the host in time".into(),
        },
        0,
    );
    assert_eq!(last_screen(&a).line1, "NOT PAID");
}

#[test]
fn the_idle_screen_shows_the_first_alert() {
    let mut c = cashier("CNY", 1_000_000);
    let a = c.handle(
        Input::Alerts {
            current: vec![
                "receipt waiting: paper out".into(),
                "offline: 2 sales to sync".into(),
            ],
        },
        0,
    );
    assert_eq!(
        last_screen(&a),
        Screen::new("Ready", "receipt waiting: paper out")
    );
    // Not while keying: the alert waits for the idle screen.
    keys(&mut c, &digits("1"));
    assert!(c.handle(Input::Alerts { current: vec![] }, 0).is_empty());
    keys(&mut c, &[Key::Cancel]);
    assert_eq!(c.screen(), Screen::new("Ready", "Enter amount"));
}
