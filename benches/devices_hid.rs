//! HID scanner benchmark: (1) time from the terminator event to the code reaching the sale
//! logic's channel (p50/p99/max), through the same `HidPipeline` the evdev reader uses and a
//! tokio mpsc like `EngineMsg`'s; (2) dropped characters at 1 ms per character, through the
//! whole async reader loop (`run_hid_scanner`) with recorded streams. Plain `Instant`.
//!
//! Run: `nice -n 10 cargo bench --bench devices_hid`

use posd::devices::evdev_reader::{self, synthesize, HidPipeline, RecordedEnd, RecordedOpener};
use posd::engine::EngineMsg;
use posd_core::hid::assembler::{Assembled, AssemblerConfig};
use posd_core::hid::keymap::{code, Layout};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

const T0: u64 = 1_785_312_000_000_000;

fn code_text(i: usize, len: usize) -> String {
    let alphabet: Vec<char> =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:/?=&%"
            .chars()
            .collect();
    (0..len)
        .map(|j| alphabet[(i * 131 + j * 17 + j / 5) % alphabet.len()])
        .collect()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency() {
    let n = 20_000;
    let mut pipe = HidPipeline::new(AssemblerConfig::default());
    let (tx, mut rx) = mpsc::channel::<EngineMsg>(16);
    let mut lat = Vec::with_capacity(n);
    let mut t = T0;
    for i in 0..n {
        let text = code_text(i, 64);
        let ev = synthesize(Layout::Us, &text, t, |_| 1000, code::ENTER).unwrap();
        t += 1_000_000;
        // The terminator's press is 3 events (MSC, KEY, SYN) before its release.
        let split = ev.len() - 6;
        for e in &ev[..split] {
            assert!(pipe.feed(e).is_none());
        }
        let start = Instant::now();
        let mut out = None;
        for e in &ev[split..] {
            if let Some(a) = pipe.feed(e) {
                out = Some(a);
                break;
            }
        }
        let Some(Assembled::Code { text: got, .. }) = out else {
            panic!("code {i} not assembled");
        };
        tx.try_send(EngineMsg::Code {
            text: got,
            source: "hid_scanner".into(),
        })
        .unwrap();
        let Ok(EngineMsg::Code { text: got, .. }) = rx.try_recv() else {
            panic!("not received");
        };
        lat.push(start.elapsed());
        assert_eq!(got, text);
    }
    lat.sort();
    println!(
        "terminator -> sale channel, {n} codes of 64 chars: p50 {:?}  p99 {:?}  max {:?}",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

fn dropped_at_1ms() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let codes = 2_000;
    let len = 80;
    let mut events = Vec::new();
    let mut expected = Vec::new();
    let mut t = T0;
    for i in 0..codes {
        let text = code_text(i, len);
        // Exactly 1 ms per character; 300 ms between codes (beyond the gap timeout).
        events.extend(synthesize(Layout::Us, &text, t, |_| 1000, code::ENTER).unwrap());
        t += (len as u64 + 1) * 1000 + 300_000;
        expected.push(text);
    }
    let total_chars: usize = expected.iter().map(|s| s.chars().count()).sum();
    let (got, elapsed) = rt.block_on(async move {
        let (tx, mut rx) = mpsc::channel(256);
        let (st_tx, _st) = posd::devices::status_channel();
        let (_stop, stop_rx) = watch::channel(false);
        let start = Instant::now();
        tokio::spawn(evdev_reader::run_hid_scanner(
            RecordedOpener::new(vec![events], RecordedEnd::Stay),
            AssemblerConfig::default(),
            Duration::from_millis(10),
            "hid_scanner",
            tx,
            st_tx,
            stop_rx,
        ));
        let mut got = Vec::new();
        while got.len() < codes {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some(EngineMsg::Code { text, .. })) => got.push(text),
                _ => break,
            }
        }
        (got, start.elapsed())
    });
    let mut dropped = 0usize;
    for (i, want) in expected.iter().enumerate() {
        match got.get(i) {
            Some(g) if g == want => {}
            Some(g) => {
                dropped += want
                    .chars()
                    .count()
                    .saturating_sub(g.chars().count())
                    .max(1)
            }
            None => dropped += want.chars().count(),
        }
    }
    println!(
        "1 ms/char through run_hid_scanner: {codes} codes, {total_chars} chars, {} codes received, \
         {dropped} characters dropped or wrong, {:.0} chars/s processed",
        got.len(),
        total_chars as f64 / elapsed.as_secs_f64()
    );
}

fn main() {
    latency();
    dropped_at_1ms();
}
