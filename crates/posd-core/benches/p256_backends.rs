//! Which P-256 verifier a P1 code should use, and what remembering checked credentials saves
//! (issue 18). Same inputs, same process, interleaved sample by sample, so a noisy shared machine
//! slows both sides alike; prints each side's median/p99, the ratio and the load.
//!
//! Run: `cargo bench -p posd-core --bench p256_backends`. For repeatable numbers on a noisy
//! machine, count instructions: `scripts/callgrind-p256.sh` (each backend 200 times under
//! valgrind, minus the set-up run).

use posd_core::codes::offline::{verify_p1, IssuerKeys, OfflinePolicy, P1Verifier};
use posd_core::codes::p1::{
    issue_credential, make_code, CredentialRequest, PrivateKey, PublicKey, CODE_DOMAIN,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

const RUNS: usize = 3000;
const NOW: u64 = 1_750_000_000;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn q(s: &mut [Duration], p: f64) -> Duration {
    s.sort_unstable();
    s[((s.len() - 1) as f64 * p).round() as usize]
}

fn pair(name_a: &str, name_b: &str, mut a: impl FnMut(), mut b: impl FnMut()) {
    for _ in 0..100 {
        a();
        b();
    }
    let (mut ta, mut tb) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..RUNS {
        let t = Instant::now();
        a();
        ta.push(t.elapsed());
        let t = Instant::now();
        b();
        tb.push(t.elapsed());
    }
    let (ma, mb) = (q(&mut ta, 0.5), q(&mut tb, 0.5));
    let (pa, pb) = (q(&mut ta, 0.99), q(&mut tb, 0.99));
    println!(
        "{name_a:<26} median {ma:>9.1?} p99 {pa:>9.1?} | {name_b:<26} median {mb:>9.1?} p99 {pb:>9.1?} | ratio median {:.2} p99 {:.2} | load {}",
        mb.as_secs_f64() / ma.as_secs_f64(),
        pb.as_secs_f64() / pa.as_secs_f64(),
        load()
    );
}

#[inline(never)]
fn callgrind_p256(pk: &PublicKey, parts: &[&[u8]], sig: &[u8; 64]) -> bool {
    pk.verify_with_p256(parts, sig)
}

#[inline(never)]
fn callgrind_ring(pk: &PublicKey, parts: &[&[u8]], sig: &[u8; 64]) -> bool {
    pk.verify_with_ring(parts, sig)
}

fn main() {
    let issuer = PrivateKey::generate().expect("rng");
    let user = PrivateKey::generate().expect("rng");
    let cred = issue_credential(
        &issuer,
        1,
        &CredentialRequest {
            user_id: 7,
            user_key: user.public_key(),
            valid_from: 1_700_000_000,
            valid_until: 1_800_000_000,
            max_amount: 10_000,
            currency: 156,
        },
    )
    .expect("credential");
    let code = make_code(&user, &cred, NOW as u32, 1).expect("code");
    let text = code.to_text();
    let mut keys = IssuerKeys::new();
    keys.insert(1, issuer.public_key(), false);
    let policy = OfflinePolicy::default();
    let upk = user.public_key();
    let signed = code.user_signed_bytes();
    let parts: [&[u8]; 2] = [CODE_DOMAIN, &signed];
    // The user signature of a real code: valid for both backends.
    let sig = code.user_sig;
    assert!(upk.verify_with_p256(&parts, &sig) && upk.verify_with_ring(&parts, &sig));

    // `--callgrind p256|ring|none N`: only that backend, N times (the binary is stripped, so
    // compare whole-run instruction counts; `none` is the set-up to subtract).
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--callgrind") {
        let which = args.get(i + 1).map(String::as_str).unwrap_or("none");
        let n: usize = args.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(200);
        for _ in 0..n {
            match which {
                "p256" => black_box(callgrind_p256(&upk, &parts, &sig)),
                "ring" => black_box(callgrind_ring(&upk, &parts, &sig)),
                _ => black_box(false),
            };
        }
        return;
    }

    println!("one ECDSA P-256 verification, same key, message and signature:");
    pair(
        "p256",
        "ring",
        || {
            black_box(upk.verify_with_p256(black_box(&parts), black_box(&sig)));
        },
        || {
            black_box(upk.verify_with_ring(black_box(&parts), black_box(&sig)));
        },
    );
    println!("a whole P1 code (decode, issuer + user signatures, time checks), ring inside:");
    let mut v = P1Verifier::default();
    v.verify(&text, NOW, &keys, &policy).expect("valid code");
    pair(
        "verify_p1 (every check)",
        "P1Verifier (known cred)",
        || {
            black_box(verify_p1(black_box(&text), NOW, &keys, &policy).is_ok());
        },
        || {
            black_box(v.verify(black_box(&text), NOW, &keys, &policy).is_ok());
        },
    );
}
