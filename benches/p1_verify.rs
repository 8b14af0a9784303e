//! Micro-benchmark of the offline verification path (no criterion: plain `Instant`).
//!
//! Run: `cargo bench --bench p1_verify`. Prints median and p99 over 2000 runs of `verify_p1`
//! (decode + two ECDSA P-256 verifications + time checks), of `check_offline_acceptance`, and of
//! `classify` on the same text, so the cost of an offline approval on a given box is known.

use std::hint::black_box;
use std::time::{Duration, Instant};

use posd_core::codes::classify::{classify, Patterns};
use posd_core::codes::offline::{
    check_offline_acceptance, verify_p1, IssuerKeys, OfflineLimits, OfflinePolicy, OfflineState,
};
use posd_core::codes::p1::{issue_credential, make_code, CredentialRequest, PrivateKey};

const RUNS: usize = 2000;
const NOW: u64 = 1_770_000_000;

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |q: f64| {
        let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(idx).copied().unwrap_or_default()
    };
    println!(
        "{name:<28} runs {:>5}  median {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn time<F: FnMut()>(mut f: F) -> Vec<Duration> {
    for _ in 0..50 {
        f(); // warm-up
    }
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn main() {
    let issuer = PrivateKey::generate().expect("rng");
    let user = PrivateKey::generate().expect("rng");
    let cred = issue_credential(
        &issuer,
        1,
        &CredentialRequest {
            user_id: 1,
            user_key: user.public_key(),
            valid_from: 1_760_000_000,
            valid_until: 1_790_000_000,
            max_amount: 10_000,
            currency: 156,
        },
    )
    .expect("issue");
    let text = make_code(&user, &cred, 1_770_000_000, 1)
        .expect("code")
        .to_text();
    let mut keys = IssuerKeys::new();
    keys.insert(1, issuer.public_key(), false);
    let policy = OfflinePolicy::default();
    let limits = OfflineLimits::default();
    let state = OfflineState {
        clock_trusted: true,
        ..OfflineState::default()
    };
    let patterns = Patterns::default();

    let verified = verify_p1(&text, NOW, &keys, &policy).expect("valid code");
    report(
        "verify_p1",
        time(|| {
            black_box(verify_p1(black_box(&text), NOW, &keys, &policy).is_ok());
        }),
    );
    report(
        "check_offline_acceptance",
        time(|| {
            black_box(
                check_offline_acceptance(&verified, 100, "CNY", &state, &limits, NOW).is_ok(),
            );
        }),
    );
    report(
        "classify (P1 text)",
        time(|| {
            black_box(classify(black_box(&text), &patterns).is_ok());
        }),
    );
    report(
        "classify (WeChat code)",
        time(|| {
            black_box(classify(black_box("134567890123456789"), &patterns).is_ok());
        }),
    );
}
