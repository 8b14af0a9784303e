//! A 4G-like link between a terminal and its broker, in userspace: this kernel has no netem, so
//! the soak (and anyone at a shell, `posd-sandbox netem`) puts this TCP proxy in between.
//!
//! Every chunk read from one side is held for a latency drawn uniformly from a band (jitter,
//! order kept: a chunk never overtakes the one before it), then paced out at a bandwidth cap
//! (each direction on its own, as on a radio link). Two faults, per connection: a **silent
//! drop** (the link goes dead: nothing more is forwarded either way, and neither socket is
//! closed — a 4G link that lost coverage; only the ends' keep-alives find out) and a **reset**
//! (both sockets closed with RST). They come on a schedule drawn from the seed
//! (`drop_every`/`reset_every`: each connection gets a fault time uniform in 0.5–1.5× that),
//! or on demand from [`Netem::drop_now`] / [`Netem::reset_now`]; [`Netem::set_down`] makes
//! every new connection dead from its first byte (no coverage at all), and [`Netem::set_clean`]
//! gives new connections a clean link (no delay, no cap; faults on demand still apply). The same
//! seed gives the same latencies and fault times for the same sequence of connections.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the link does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetemConfig {
    /// One-way delay added to every chunk, drawn uniformly from `lo..=hi` ms.
    pub latency_ms: (u64, u64),
    /// Bits per second in each direction; None: unlimited.
    pub bandwidth_bps: Option<u64>,
    /// Each connection goes silently dead after 0.5–1.5× this; None: only on demand.
    pub drop_every: Option<Duration>,
    /// Each connection is reset after 0.5–1.5× this; None: only on demand.
    pub reset_every: Option<Duration>,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for NetemConfig {
    fn default() -> Self {
        NetemConfig {
            latency_ms: (0, 0),
            bandwidth_bps: None,
            drop_every: None,
            reset_every: None,
            seed: 1,
        }
    }
}

/// Why a `netem` argument was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetemArgError {
    #[error("latency {0:?}: write LO..HI in milliseconds, e.g. 150..600")]
    Latency(String),
    #[error("bandwidth {0:?}: write a rate such as 32kbit, 1mbit or 4000bit")]
    Bandwidth(String),
    #[error("duration {0:?}: write seconds such as 30s, 1.5s or 500ms")]
    Duration(String),
}

/// `150..600` (or `300`) → (150, 600).
pub fn parse_latency(s: &str) -> Result<(u64, u64), NetemArgError> {
    let bad = || NetemArgError::Latency(s.to_string());
    let (lo, hi) = match s.split_once("..") {
        Some((a, b)) => (a.trim(), b.trim().trim_start_matches('=')),
        None => (s.trim(), s.trim()),
    };
    let lo: u64 = lo.parse().map_err(|_| bad())?;
    let hi: u64 = hi.parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// `32kbit`, `1mbit`, `4000bit`, `4000` → bits per second.
pub fn parse_bandwidth(s: &str) -> Result<u64, NetemArgError> {
    let bad = || NetemArgError::Bandwidth(s.to_string());
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("bps")
        .or(t.strip_suffix("bit"))
        .unwrap_or(&t);
    let (num, mult) = if let Some(n) = t.strip_suffix('k') {
        (n, 1_000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 1_000_000)
    } else {
        (t, 1)
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(bad()),
    }
}

/// `30s`, `1.5s`, `500ms`, `30` (seconds) → a duration.
pub fn parse_duration(s: &str) -> Result<Duration, NetemArgError> {
    let bad = || NetemArgError::Duration(s.to_string());
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !(v.is_finite() && v > 0.0) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// What the link has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetemStats {
    /// Connections accepted.
    pub connections: u64,
    /// Of those, the ones whose upstream connection was made (the others were closed at once).
    pub established: u64,
    /// Connections that went silently dead.
    pub drops: u64,
    /// Connections reset.
    pub resets: u64,
    /// Bytes delivered client → upstream.
    pub bytes_up: u64,
    /// Bytes delivered upstream → client.
    pub bytes_down: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    established: AtomicU64,
    drops: AtomicU64,
    resets: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Drop,
    Reset,
}

const LIVE: u8 = 0;
const DEAD: u8 = 1;

/// A running proxy; stops (and closes its connections) when dropped.
pub struct Netem {
    addr: SocketAddr,
    counters: Arc<Counters>,
    faults: broadcast::Sender<Fault>,
    down: Arc<AtomicBool>,
    clean: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Netem {
    fn drop(&mut self) {
        self.task.abort();
        // Every connection task listens for this; a closed channel ends them too.
        let _ = self.faults.send(Fault::Reset);
    }
}

impl Netem {
    /// Listens on `listen` (port 0: a free one) and forwards every connection to `upstream`.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        cfg: NetemConfig,
    ) -> std::io::Result<Netem> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let (faults, _) = broadcast::channel(16);
        let down = Arc::new(AtomicBool::new(false));
        let clean = Arc::new(AtomicBool::new(false));
        let task = {
            let (counters, faults, down, clean) = (
                counters.clone(),
                faults.clone(),
                down.clone(),
                clean.clone(),
            );
            tokio::spawn(async move {
                let mut index: u64 = 0;
                while let Ok((client, _)) = listener.accept().await {
                    index += 1;
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    let rng = fastrand::Rng::with_seed(
                        cfg.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    );
                    let cfg = if clean.load(Ordering::Relaxed) {
                        NetemConfig {
                            latency_ms: (0, 0),
                            bandwidth_bps: None,
                            ..cfg.clone()
                        }
                    } else {
                        cfg.clone()
                    };
                    let conn = Conn {
                        cfg,
                        counters: counters.clone(),
                        faults: faults.subscribe(),
                        dead_from_start: down.load(Ordering::Relaxed),
                    };
                    tokio::spawn(conn.run(client, upstream, rng));
                }
            })
        };
        Ok(Netem {
            addr,
            counters,
            faults,
            down,
            clean,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> NetemStats {
        let c = &self.counters;
        NetemStats {
            connections: c.connections.load(Ordering::Relaxed),
            established: c.established.load(Ordering::Relaxed),
            drops: c.drops.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            bytes_up: c.bytes_up.load(Ordering::Relaxed),
            bytes_down: c.bytes_down.load(Ordering::Relaxed),
        }
    }

    /// Every open connection goes silently dead now.
    pub fn drop_now(&self) {
        let _ = self.faults.send(Fault::Drop);
    }

    /// Every open connection is reset now.
    pub fn reset_now(&self) {
        let _ = self.faults.send(Fault::Reset);
    }

    /// While down, connections are accepted (the modem answers) but nothing gets through.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// While clean, new connections get no delay and no bandwidth cap (the seed's scheduled
    /// faults and the faults on demand still apply); connections already open keep their link.
    pub fn set_clean(&self, clean: bool) {
        self.clean.store(clean, Ordering::Relaxed);
    }
}

struct Conn {
    cfg: NetemConfig,
    counters: Arc<Counters>,
    faults: broadcast::Receiver<Fault>,
    dead_from_start: bool,
}

/// A fault time uniform in 0.5–1.5× `every`.
fn fault_after(rng: &mut fastrand::Rng, every: Option<Duration>) -> Option<Duration> {
    every.map(|e| e.mul_f64(0.5 + rng.f64()))
}

/// Closes the socket with RST instead of FIN when it is dropped.
fn linger_zero(fd: i32) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a descriptor this task still owns, with a correctly sized linger.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

impl Conn {
    async fn run(mut self, client: TcpStream, upstream: SocketAddr, mut rng: fastrand::Rng) {
        let up = match TcpStream::connect(upstream).await {
            Ok(u) => u,
            Err(e) => {
                log::debug!("netem: upstream {upstream}: {e}");
                return;
            }
        };
        self.counters.established.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let (cfd, ufd) = (client.as_raw_fd(), up.as_raw_fd());
        let state = Arc::new(AtomicU8::new(if self.dead_from_start {
            DEAD
        } else {
            LIVE
        }));
        if self.dead_from_start {
            self.counters.drops.fetch_add(1, Ordering::Relaxed);
        }
        let drop_at = fault_after(&mut rng, self.cfg.drop_every).map(|d| Instant::now() + d);
        let reset_at = fault_after(&mut rng, self.cfg.reset_every).map(|d| Instant::now() + d);
        // `io::split`, not `into_split`: dropping its write half sends no FIN, so a reset (linger
        // 0, then the last half dropped) reaches the peer as an RST and nothing else.
        let (cr, cw) = tokio::io::split(client);
        let (ur, uw) = tokio::io::split(up);
        let rng_down = fastrand::Rng::with_seed(rng.u64(..));
        let mut upward = tokio::spawn(pipe(
            cr,
            uw,
            self.cfg.clone(),
            rng,
            state.clone(),
            self.counters.clone(),
            true,
        ));
        let mut downward = tokio::spawn(pipe(
            ur,
            cw,
            self.cfg.clone(),
            rng_down,
            state.clone(),
            self.counters.clone(),
            false,
        ));
        let (mut up_done, mut down_done) = (false, false);
        let far = Instant::now() + Duration::from_secs(365 * 86_400);
        let mut drop_at = drop_at;
        let reset = loop {
            if up_done && down_done {
                break false;
            }
            tokio::select! {
                _ = &mut upward, if !up_done => {
                    up_done = true;
                    if state.load(Ordering::Relaxed) == DEAD { break false; }
                }
                _ = &mut downward, if !down_done => {
                    down_done = true;
                    if state.load(Ordering::Relaxed) == DEAD { break false; }
                }
                _ = tokio::time::sleep_until(drop_at.unwrap_or(far)), if drop_at.is_some() => {
                    drop_at = None;
                    self.go_dead(&state);
                }
                _ = tokio::time::sleep_until(reset_at.unwrap_or(far)), if reset_at.is_some() => {
                    break true;
                }
                f = self.faults.recv() => match f {
                    Ok(Fault::Drop) => self.go_dead(&state),
                    Ok(Fault::Reset) | Err(broadcast::error::RecvError::Closed) => break true,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                },
            }
        };
        if reset {
            self.counters.resets.fetch_add(1, Ordering::Relaxed);
            linger_zero(cfd);
            linger_zero(ufd);
        }
        // Dropping the halves (held by the pipe tasks) closes both sockets.
        for (done, task) in [(up_done, upward), (down_done, downward)] {
            if !done {
                task.abort();
                let _ = task.await;
            }
        }
    }

    fn go_dead(&self, state: &AtomicU8) {
        if state.swap(DEAD, Ordering::Relaxed) != DEAD {
            self.counters.drops.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One direction: read chunks, hold each for its latency, pace them out at the cap. While the
/// link is dead, what is read is thrown away (the ends see silence, never a close).
async fn pipe(
    mut from: ReadHalf<TcpStream>,
    mut to: WriteHalf<TcpStream>,
    cfg: NetemConfig,
    mut rng: fastrand::Rng,
    state: Arc<AtomicU8>,
    counters: Arc<Counters>,
    upward: bool,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let writer_state = state.clone();
    let writer = async move {
        let mut line_free = Instant::now();
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if writer_state.load(Ordering::Relaxed) == DEAD {
                continue;
            }
            if let Some(bps) = cfg.bandwidth_bps {
                // Serialisation at the cap: the chunk leaves when its last bit would have.
                let start = line_free.max(Instant::now());
                let bits = (chunk.len() as u64).saturating_mul(8);
                line_free = start + Duration::from_micros(bits.saturating_mul(1_000_000) / bps);
                tokio::time::sleep_until(line_free).await;
                if writer_state.load(Ordering::Relaxed) == DEAD {
                    continue;
                }
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            let c = if upward {
                &counters.bytes_up
            } else {
                &counters.bytes_down
            };
            c.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        // The sender's side closed: pass the close on (FIN) once everything before it went.
        if writer_state.load(Ordering::Relaxed) != DEAD {
            let _ = to.shutdown().await;
        }
    };
    let (lo, hi) = cfg.latency_ms;
    let reader = async move {
        let mut last_due = Instant::now();
        // With a bandwidth cap, small reads keep the pacing smooth.
        let mut buf = vec![
            0u8;
            if cfg.bandwidth_bps.is_some() {
                1024
            } else {
                16 * 1024
            }
        ];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if state.load(Ordering::Relaxed) == DEAD {
                continue;
            }
            let lat = Duration::from_millis(if hi > lo { rng.u64(lo..=hi) } else { lo });
            let due = (Instant::now() + lat).max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
        // Dropping tx lets the writer finish and close.
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        assert_eq!(parse_latency("150..600"), Ok((150, 600)));
        assert_eq!(parse_latency("150..=600"), Ok((150, 600)));
        assert_eq!(parse_latency("40"), Ok((40, 40)));
        assert!(parse_latency("600..150").is_err());
        assert_eq!(parse_bandwidth("32kbit"), Ok(32_000));
        assert_eq!(parse_bandwidth("1mbit"), Ok(1_000_000));
        assert_eq!(parse_bandwidth("4000"), Ok(4000));
        assert!(parse_bandwidth("0").is_err());
        assert!(parse_bandwidth("fast").is_err());
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("-1s").is_err());
    }
}
