//! A network receipt printer on 127.0.0.1, for tests and demos: it takes ESC/POS over TCP like a
//! printer on port 9100, keeps what it was sent, and answers real-time status requests
//! (`DLE EOT n`) from a state that a test scripts — paper running out in the middle of a job, the
//! connection dropped after some bytes, the cover open — and can clear again ("paper refilled").
//!
//! It tells status requests from job bytes by skipping the payloads of `GS v 0` and `GS ( k`,
//! the only commands posd sends whose data may contain the bytes `10 04`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How the emulated printer behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmulatorScript {
    /// Cover open from the start.
    pub cover_open: bool,
    /// Paper out from the start.
    pub paper_out: bool,
    /// Paper near its end (prints, but says so).
    pub near_end: bool,
    /// Paper runs out once this many job bytes have arrived (once).
    pub paper_out_after: Option<usize>,
    /// The printer closes the connection once this many job bytes have arrived (once).
    pub drop_after: Option<usize>,
    /// Never answers status requests (a printer or transport without status).
    pub silent: bool,
}

#[derive(Debug, Default)]
struct State {
    script: EmulatorScript,
    printed: Vec<u8>,
    received: Vec<u8>,
    connections: usize,
    status_queries: usize,
}

/// A running emulated printer; stops when dropped.
pub struct PrinterEmulator {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    closed: watch::Receiver<usize>,
    task: JoinHandle<()>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PrinterEmulator {
    /// Binds a free port on 127.0.0.1 and starts serving.
    pub async fn start(script: EmulatorScript) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            script,
            ..State::default()
        }));
        let st = state.clone();
        let (closed_tx, closed) = watch::channel(0usize);
        let closed_tx = Arc::new(closed_tx);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((sock, _)) = listener.accept().await {
                lock(&st).connections += 1;
                let (st, closed_tx) = (st.clone(), closed_tx.clone());
                conns.spawn(async move {
                    serve(sock, st).await;
                    closed_tx.send_modify(|n| *n += 1);
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(PrinterEmulator {
            addr,
            state,
            closed,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Job bytes that reached the paper (before any paper-out), over all connections.
    pub fn printed(&self) -> Vec<u8> {
        lock(&self.state).printed.clone()
    }

    /// Every job byte received (status requests excluded).
    pub fn received(&self) -> Vec<u8> {
        lock(&self.state).received.clone()
    }

    pub fn connections(&self) -> usize {
        lock(&self.state).connections
    }

    /// Waits until `n` connections in all have been closed (by either side), so that everything
    /// a client sent before closing has been taken in.
    pub async fn wait_closed(&self, n: usize) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c >= n).await;
    }

    pub fn status_queries(&self) -> usize {
        lock(&self.state).status_queries
    }

    pub fn set_cover_open(&self, open: bool) {
        lock(&self.state).script.cover_open = open;
    }

    /// `false`: paper refilled.
    pub fn set_paper_out(&self, out: bool) {
        lock(&self.state).script.paper_out = out;
    }

    pub fn set_near_end(&self, near: bool) {
        lock(&self.state).script.near_end = near;
    }

    /// Forgets what was printed and received.
    pub fn clear(&self) {
        let mut s = lock(&self.state);
        s.printed.clear();
        s.received.clear();
    }
}

impl Drop for PrinterEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut conn_bytes = 0usize;
    let mut buf = [0u8; 4096];
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let (replies, hang_up) = process(&mut pending, &state, &mut conn_bytes);
        if !replies.is_empty() && sock.write_all(&replies).await.is_err() {
            return;
        }
        if hang_up {
            return;
        }
    }
}

/// Consumes complete commands from `pending`; returns status replies and whether to hang up.
fn process(pending: &mut Vec<u8>, state: &Mutex<State>, conn_bytes: &mut usize) -> (Vec<u8>, bool) {
    let mut s = lock(state);
    let mut replies = Vec::new();
    let mut i = 0;
    let mut hang_up = false;
    let b = pending.as_slice();
    'commands: while i < b.len() {
        let need = match (b[i], b.get(i + 1).copied()) {
            (0x10, None) => break,
            (0x10, Some(0x04)) => {
                let Some(&n) = b.get(i + 2) else { break };
                s.status_queries += 1;
                if !s.script.silent {
                    replies.push(status_byte(&s.script, n));
                }
                i += if matches!(n, 7 | 8 | 18) { 4 } else { 3 };
                continue;
            }
            (0x1D, None) => break,
            (0x1D, Some(b'v')) => match b.get(i + 2..i + 8) {
                None => break,
                Some(h) => {
                    8 + usize::from(u16::from_le_bytes([h[2], h[3]]))
                        * usize::from(u16::from_le_bytes([h[4], h[5]]))
                }
            },
            (0x1D, Some(b'(')) => match b.get(i + 2..i + 5) {
                None => break,
                Some(h) => 5 + usize::from(u16::from_le_bytes([h[1], h[2]])),
            },
            _ => 1,
        };
        let Some(chunk) = b.get(i..i + need) else {
            break;
        };
        for &byte in chunk {
            s.received.push(byte);
            if !s.script.paper_out {
                s.printed.push(byte);
            }
            *conn_bytes += 1;
            let total = s.received.len();
            if s.script.paper_out_after.is_some_and(|k| total >= k) {
                s.script.paper_out_after = None;
                s.script.paper_out = true;
            }
            if s.script.drop_after.is_some_and(|k| *conn_bytes >= k) {
                s.script.drop_after = None;
                hang_up = true;
                break 'commands;
            }
        }
        i += need;
    }
    if hang_up {
        pending.clear();
    } else {
        pending.drain(..i.min(pending.len()));
    }
    (replies, hang_up)
}

/// The byte a printer answers to `DLE EOT n` (fixed bits `0xx1xx10`).
fn status_byte(sc: &EmulatorScript, n: u8) -> u8 {
    let mut v = 0x12u8;
    let stopped = sc.cover_open || sc.paper_out;
    match n {
        1 if stopped => v |= 0x08, // offline
        2 => {
            if sc.cover_open {
                v |= 0x04;
            }
            if sc.paper_out {
                v |= 0x20; // printing stopped by paper end
            }
        }
        4 => {
            if sc.near_end || sc.paper_out {
                v |= 0x0C;
            }
            if sc.paper_out {
                v |= 0x60;
            }
        }
        _ => {}
    }
    v
}
