//! The 4G-like link really does what it says: every fault shows at the client, against a real
//! TCP echo server behind it.

use posd_sandbox::netem::{Netem, NetemConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on a free port; also counts what it received.
async fn echo() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            g.fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, got)
}

async fn link(cfg: NetemConfig) -> (Netem, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let (up, got) = echo().await;
    let n = Netem::start("127.0.0.1:0".parse().unwrap(), up, cfg)
        .await
        .unwrap();
    (n, got)
}

async fn round_trip(s: &mut TcpStream) -> Duration {
    let t0 = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
    t0.elapsed()
}

#[tokio::test]
async fn latency_stays_in_the_band_with_jitter_and_is_the_same_for_the_same_seed() {
    let cfg = NetemConfig {
        latency_ms: (150, 600),
        seed: 7,
        ..NetemConfig::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (n, _) = link(cfg.clone()).await;
        let mut s = TcpStream::connect(n.addr()).await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut rtts = Vec::new();
        for _ in 0..8 {
            rtts.push(round_trip(&mut s).await);
        }
        runs.push(rtts);
    }
    for rtts in &runs {
        let min = rtts.iter().min().unwrap();
        let max = rtts.iter().max().unwrap();
        // Two one-way delays, each at least 150 ms: never faster than 300 ms.
        assert!(*min >= Duration::from_millis(300), "{rtts:?}");
        // At most 2 × 600 ms, plus generous room for a loaded machine.
        assert!(*max < Duration::from_millis(1200 + 1500), "{rtts:?}");
        // Jitter: not one fixed delay.
        assert!(*max - *min > Duration::from_millis(50), "{rtts:?}");
    }
    // The same seed draws the same delays: the runs agree within scheduling noise.
    for (a, b) in runs[0].iter().zip(&runs[1]) {
        let d = if a > b { *a - *b } else { *b - *a };
        assert!(
            d < Duration::from_millis(150),
            "{:?} vs {:?}",
            runs[0],
            runs[1]
        );
    }
}

#[tokio::test]
async fn throughput_stays_under_the_cap() {
    let bps = 64_000u64;
    let (n, got) = link(NetemConfig {
        bandwidth_bps: Some(bps),
        ..NetemConfig::default()
    })
    .await;
    let mut s = TcpStream::connect(n.addr()).await.unwrap();
    let data = vec![0x55u8; 16 * 1024];
    let t0 = Instant::now();
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&data).await.unwrap();
    };
    let recv = async {
        let mut back = vec![0u8; data.len()];
        r.read_exact(&mut back).await.unwrap();
    };
    tokio::join!(send, recv);
    let took = t0.elapsed();
    assert_eq!(
        got.load(std::sync::atomic::Ordering::SeqCst),
        data.len() as u64
    );
    // 16 KiB at 64 kbit/s is 2.05 s each way; the echo back is paced too, but overlaps.
    let floor = Duration::from_secs_f64(data.len() as f64 * 8.0 / bps as f64);
    assert!(
        took >= floor,
        "16 KiB took {took:?}, the cap allows no less than {floor:?}"
    );
    let st = n.stats();
    assert_eq!((st.bytes_up, st.bytes_down), (16 * 1024, 16 * 1024));
}

#[tokio::test]
async fn a_reset_is_seen_by_the_client() {
    let (n, _) = link(NetemConfig::default()).await;
    let mut s = TcpStream::connect(n.addr()).await.unwrap();
    round_trip(&mut s).await;
    n.reset_now();
    assert_reset(&mut s).await;
    assert_eq!(n.stats().resets, 1);
}

#[tokio::test]
async fn a_silent_drop_forwards_nothing_and_closes_nothing() {
    let (n, got) = link(NetemConfig::default()).await;
    let mut s = TcpStream::connect(n.addr()).await.unwrap();
    round_trip(&mut s).await;
    let before = got.load(std::sync::atomic::Ordering::SeqCst);
    n.drop_now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The client can still write (the socket is open) ...
    s.write_all(b"hello?").await.unwrap();
    // ... but nothing comes back and nothing closes: the read just waits.
    let mut b = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_millis(800), s.read(&mut b)).await;
    assert!(r.is_err(), "expected silence, got {r:?}");
    // And the server never got it.
    assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), before);
    assert_eq!(n.stats().drops, 1);
}

#[tokio::test]
async fn scheduled_drops_come_from_the_seed_and_down_means_dead_from_the_start() {
    let (n, got) = link(NetemConfig {
        drop_every: Some(Duration::from_millis(200)),
        seed: 3,
        ..NetemConfig::default()
    })
    .await;
    let mut s = TcpStream::connect(n.addr()).await.unwrap();
    round_trip(&mut s).await;
    // 0.5–1.5 × 200 ms: dead by 300 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(n.stats().drops, 1);
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), s.read(&mut b))
            .await
            .is_err()
    );
    assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 4);

    let (n, got) = link(NetemConfig::default()).await;
    n.set_down(true);
    let mut s = TcpStream::connect(n.addr()).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), s.read(&mut b))
            .await
            .is_err()
    );
    assert_eq!(got.load(std::sync::atomic::Ordering::SeqCst), 0);
    n.set_down(false);
    let mut s = TcpStream::connect(n.addr()).await.unwrap();
    round_trip(&mut s).await;
}

#[tokio::test]
async fn a_clean_link_has_no_delay_for_new_connections_and_the_open_ones_keep_theirs() {
    let (n, _) = link(NetemConfig {
        latency_ms: (300, 300),
        bandwidth_bps: Some(8_000),
        seed: 5,
        ..NetemConfig::default()
    })
    .await;
    let mut slow = TcpStream::connect(n.addr()).await.unwrap();
    slow.set_nodelay(true).unwrap();
    assert!(round_trip(&mut slow).await >= Duration::from_millis(600));
    n.set_clean(true);
    let mut fast = TcpStream::connect(n.addr()).await.unwrap();
    fast.set_nodelay(true).unwrap();
    // 8 round trips on the clean link in less time than one on the 4G one.
    let t0 = Instant::now();
    for _ in 0..8 {
        round_trip(&mut fast).await;
    }
    assert!(
        t0.elapsed() < Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    // The connection opened before keeps its delay.
    assert!(round_trip(&mut slow).await >= Duration::from_millis(600));
    // Faults on demand still reach a clean connection.
    n.reset_now();
    assert_reset(&mut fast).await;
    n.set_clean(false);
    let mut again = TcpStream::connect(n.addr()).await.unwrap();
    again.set_nodelay(true).unwrap();
    assert!(round_trip(&mut again).await >= Duration::from_millis(600));
}

/// The next read on `s` ends in a reset (not a clean close) within 5 s.
async fn assert_reset(s: &mut TcpStream) {
    let mut b = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
        .await
        .expect("the reset arrives");
    let e = r.expect_err("a reset, not a clean close");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
}
