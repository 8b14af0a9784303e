//! Micro-benchmark of the issue-4 hot paths (no criterion: plain `Instant`).
//!
//! Run: `cargo bench --bench payments`. Prints median and p99 of: a swipe parsed and checked,
//! the card sealed to the host's key (X25519 + ChaCha20-Poly1305) and opened again, a dynamic
//! EMVCo merchant payload generated (with its self re-parse), the Z-report totals of a
//! 1,000-transaction batch, and one manager-PIN verification (argon2id, deliberately slow —
//! it bounds how fast PINs can be guessed and what a refund waits for).

use std::hint::black_box;
use std::time::{Duration, Instant};

use posd_core::card::{seal, track};
use posd_core::money::Currency;
use posd_core::txn::{Method, Transaction, TxnKind, TxnState};

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |q: f64| {
        let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(idx).copied().unwrap_or_default()
    };
    println!(
        "{name:<30} runs {:>5}  median {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn time<F: FnMut()>(runs: usize, mut f: F) -> Vec<Duration> {
    for _ in 0..runs.min(20) {
        f();
    }
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn main() {
    let swipe =
        "%B4111111111111111^SANDBOX/TEST^3512101000000000?;4111111111111111=3512101000000000?";
    report(
        "card: parse + check",
        time(5000, || {
            let c = track::parse_swipe(black_box(swipe)).expect("swipe");
            c.check(2026, 11, false).expect("check");
            black_box(c.masked_pan());
        }),
    );
    let (secret, public) = seal::keygen_random().expect("keygen");
    let card = track::parse_swipe(swipe).expect("swipe");
    let aad = b"01a20000-0000-7000-8000-000000000000|2500|CNY";
    report(
        "card: seal (X25519+ChaCha)",
        time(2000, || {
            black_box(seal::seal_random(&card, &public, aad).expect("seal"));
        }),
    );
    let sealed = seal::seal_random(&card, &public, aad).expect("seal");
    report(
        "card: open (host side)",
        time(2000, || {
            black_box(seal::open(&sealed, &secret, aad).expect("open"));
        }),
    );
    let merchant: posd_core::codes::MpmMerchant = toml::from_str(
        r#"
merchant_category_code = "5812"
country_code = "CN"
merchant_name = "BEST CANTEEN"
merchant_city = "BEIJING"
[[accounts]]
tag = 26
guid = "com.sandbox.posd"
fields = { "01" = "M0001" }
"#,
    )
    .expect("merchant");
    report(
        "merchant QR: generate+reparse",
        time(5000, || {
            black_box(
                posd_core::codes::generate_dynamic(
                    &merchant,
                    1234,
                    "CNY",
                    "01a201293bcc7e34bb4bbe8cd",
                    "T-0001",
                )
                .expect("payload"),
            );
        }),
    );
    let cny = Currency::from_code("CNY").expect("CNY");
    let txns: Vec<Transaction> = (0..1000u32)
        .map(|i| {
            let mut t = Transaction::new(
                if i % 10 == 0 {
                    TxnKind::Refund
                } else {
                    TxnKind::Sale
                },
                [Method::PaymentCode, Method::Card, Method::MerchantQr][(i % 3) as usize],
                i64::from(100 + i),
                cny,
                [TxnState::Approved, TxnState::Declined, TxnState::Settled][(i % 3) as usize],
                1_000 + u64::from(i),
                [(i % 251) as u8; 10],
            );
            t.channel = Some(["wechat", "visa", "emv_mpm"][(i % 3) as usize].into());
            t
        })
        .collect();
    report(
        "Z totals of 1000 txns",
        time(200, || {
            black_box(posd_core::batch::totals(
                txns.iter().enumerate().map(|(i, t)| (i as u64 + 1, t)),
                1,
                0,
                2000,
                0,
                9,
                "CNY",
            ));
        }),
    );
    let hash = posd_core::pin::hash_pin("4711").expect("hash");
    report(
        "manager PIN verify (argon2id)",
        time(20, || {
            black_box(posd_core::pin::verify_pin("4711", &hash));
        }),
    );
}
