//! What the demo, the soak and the fleet simulation share to run real daemons: a mosquitto of
//! their own on a free loopback port, the `posd` binary and its control socket ([`Till`]),
//! stopping a child like systemd would, its memory, P1 wallets from one issuer, and signed
//! fleet pushes and commands published as the fleet manager's tool would.

use anyhow::{bail, Context};
use posd_core::codes::{self, Credential, PrivateKey};
use posd_core::control::{self as ctl, AnswerError, Command};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A free loopback TCP port, never 1883 (a system mosquitto may own it).
pub fn free_port() -> anyhow::Result<u16> {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let p = l.local_addr()?.port();
        if p != 1883 {
            return Ok(p);
        }
    }
}

/// A mosquitto of our own on a free loopback port, killed when dropped.
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    /// Where its log (stderr) goes, appended across restarts; None: nowhere.
    log: Option<PathBuf>,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts one with the soak's settings (no persistence, deep queues, Nagle off).
    pub fn start(dir: &Path) -> anyhow::Result<Mosquitto> {
        Mosquitto::start_with(dir, "", None)
    }

    /// Starts one with `extra` lines appended to its configuration; with `log`, what it
    /// writes to stderr (`log_dest stderr` in `extra`) is appended there — a file of its own
    /// would be written by the `mosquitto` user it drops to when started as root.
    pub fn start_with(dir: &Path, extra: &str, log: Option<PathBuf>) -> anyhow::Result<Mosquitto> {
        let port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 100000\nmax_inflight_messages 0\nset_tcp_nodelay true\n{extra}"
            ),
        )?;
        let mut m = Mosquitto {
            port,
            conf,
            log,
            child: None,
        };
        m.restart()?;
        Ok(m)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The running broker's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it (SIGKILL, like a crash): nothing retained survives (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts it and waits until it listens.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let stderr = match &self.log {
            Some(p) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("open {}", p.display()))?,
            ),
            None => Stdio::null(),
        };
        let child = Process::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("mosquitto must be installed (apt-get install mosquitto)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("mosquitto did not listen on 127.0.0.1:{}", self.port);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `posd` to run: `--posd`, the one built beside this binary, or `posd` on PATH.
pub fn posd_binary(arg: &Option<PathBuf>) -> PathBuf {
    if let Some(p) = arg {
        return p.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("posd")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("posd"))
}

/// A control-socket client of the kind any till software would write: one JSON line out, one
/// typed answer back (`posd_core::control`).
pub struct Till {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Till {
    /// Connects, waiting up to `wait` for the socket; gives up at once when `daemon` exits.
    pub fn connect(
        socket: &Path,
        mut daemon: Option<&mut Child>,
        wait: Duration,
    ) -> anyhow::Result<Till> {
        let deadline = Instant::now() + wait;
        let s = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(e).with_context(|| format!("posd's socket {}", socket.display()))
                }
                Err(_) => {
                    if let Some(Ok(Some(st))) = daemon.as_deref_mut().map(Child::try_wait) {
                        bail!("posd exited at start: {st}");
                    }
                    std::thread::sleep(Duration::from_millis(20))
                }
            }
        };
        Ok(Till {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    pub fn call<C: Command>(&mut self, req: C) -> anyhow::Result<Result<C::Reply, AnswerError>> {
        let mut line = serde_json::to_vec(&req.into())?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        let mut answer = Vec::new();
        if self.reader.read_until(b'\n', &mut answer)? == 0 {
            bail!("posd closed the control socket");
        }
        Ok(ctl::parse_answer(&answer))
    }

    /// A call whose refusal ends the run.
    pub fn must<C: Command>(&mut self, req: C) -> anyhow::Result<C::Reply> {
        Ok(self.call(req)??)
    }
}

/// Stops a daemon as systemd would (SIGTERM), then waits for it.
pub fn stop(daemon: &mut Child) {
    signal(daemon.id(), libc::SIGTERM);
    let _ = daemon.wait();
}

/// Sends `sig` to our own child `pid`.
pub fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// The first number after `key` (e.g. `"VmRSS:"`) on its line of `/proc/<pid>/<file>`; 0 when
/// the process is gone or the line is missing.
fn proc_number(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A process's resident memory (VmRSS), KiB; 0 when it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    proc_number(pid, "status", "VmRSS:")
}

/// A process's proportional share of memory (Pss: shared pages such as the binary's text split
/// among the processes sharing them), KiB; 0 when it is gone. Summed over many daemons of one
/// binary, it is what they really take, where VmRSS would count the shared pages each time.
pub fn pss_kib(pid: u32) -> u64 {
    proc_number(pid, "smaps_rollup", "Pss:")
}

/// A flag that SIGTERM or SIGINT (Ctrl-C) sets, for the sandbox's long-running commands (the
/// host, the soak) to stop cleanly — and stop what they started — instead of dying with children
/// left running. The handlers are registered before this returns, so no signal is missed; a
/// thread of its own waits for them.
pub fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut int) = rt.block_on(async {
        anyhow::Ok((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async {
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            });
            flag.store(true, Ordering::Relaxed);
        })?;
    Ok(stop)
}

/// The machine's 1-, 5- and 15-minute load averages, as every bench prints them.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU time a process has used (user + system, every thread it has had), seconds, to the
/// nanosecond: its CPU clock (`clock_getcpuclockid`). `/proc/<pid>/stat` counts 10 ms ticks,
/// ~10 % of what posd spends over a 20,000-event drain on a fast machine, which moved the
/// drain's CPU ratio by a tenth at one rounding step; that is only the fallback now. 0 when the
/// process is gone.
pub fn cpu_s(pid: u32) -> f64 {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return 0.0;
    };
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getcpuclockid writes one clockid into `clock` and clock_gettime one
    // timespec into `ts`; both live for the calls.
    let read = unsafe {
        libc::clock_getcpuclockid(pid, &mut clock) == 0 && libc::clock_gettime(clock, &mut ts) == 0
    };
    if read {
        return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
    }
    stat_cpu_s(&format!("/proc/{pid}/stat"))
}

/// Bytes a process has caused to be written to storage (`write_bytes` of `/proc/<pid>/io`:
/// counted when it dirties file pages, so a WAL frame counts once whether or not it is synced
/// yet); 0 when it cannot be read.
pub fn write_bytes(pid: u32) -> u64 {
    proc_number(pid, "io", "write_bytes:")
}

/// Bytes the write-ahead log of the SQLite database at `db` still owes the database file: the
/// distinct pages of its frames no checkpoint has copied yet (`nBackfill` < frame ≤ `mxFrame`
/// of the wal-index in `<db>-shm`), times the page size. Those writes are certain to come (at
/// the next checkpoint), so a measure of what a piece of work wrote to storage that stops
/// before the checkpoint must add them, or it favours whoever checkpoints later. `None` when
/// the files cannot be read (no log, or not in WAL mode). Read it while nothing writes.
pub fn wal_bytes_owed(db: &Path) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut shm = [0u8; 100];
    let name = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    std::fs::File::open(name("-shm"))
        .ok()?
        .read_exact(&mut shm)
        .ok()?;
    // The wal-index header (native byte order): szPage (u16) at 14, mxFrame (u32) at 16;
    // the checkpoint info after the header's two copies: nBackfill (u32) at 96.
    let u32_at = |o: usize| u32::from_ne_bytes([shm[o], shm[o + 1], shm[o + 2], shm[o + 3]]);
    let page = match u16::from_ne_bytes([shm[14], shm[15]]) {
        1 => 65_536u64,
        p => u64::from(p),
    };
    let (max_frame, backfilled) = (u64::from(u32_at(16)), u64::from(u32_at(96)));
    if page == 0 || backfilled >= max_frame {
        return Some(0);
    }
    // Frame i (from 1) begins with its page number (u32, big-endian) after the log's 32-byte
    // header and i − 1 frames of a 24-byte header and a page each.
    let mut wal = std::fs::File::open(name("-wal")).ok()?;
    let mut pages = std::collections::HashSet::new();
    let mut number = [0u8; 4];
    for frame in backfilled + 1..=max_frame {
        wal.seek(SeekFrom::Start(32 + (frame - 1) * (24 + page)))
            .ok()?;
        wal.read_exact(&mut number).ok()?;
        pages.insert(u32::from_be_bytes(number));
    }
    Some(pages.len() as u64 * page)
}

/// CPU time the calling thread has used (user + system), seconds, to the nanosecond (the
/// thread's CPU clock; `/proc`'s ticks are 10 ms, coarser than a short measurement).
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, which lives for the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// User + system time from a `/proc/.../stat` file, seconds; 0 when it cannot be read.
fn stat_cpu_s(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // After the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) as f64 / hz
}

/// A P1 customer: key, credential, the next counter.
pub struct Wallet {
    pub key: PrivateKey,
    pub credential: Credential,
    pub counter: u32,
}

impl Wallet {
    /// The next offline code of this customer, made at unix second `now_s`.
    pub fn next_code(&mut self, now_s: u32) -> anyhow::Result<String> {
        self.counter += 1;
        Ok(codes::make_code(&self.key, &self.credential, now_s, self.counter)?.to_text())
    }
}

/// `n` customers with credentials from `issuer` (key id 1), users 10,000 and up, CNY.
pub fn issue_wallets(
    issuer: &PrivateKey,
    n: usize,
    valid_from: u32,
    valid_until: u32,
) -> anyhow::Result<Vec<Wallet>> {
    let mut wallets = Vec::with_capacity(n);
    for u in 0..n {
        let key = PrivateKey::generate()?;
        let credential = codes::issue_credential(
            issuer,
            1,
            &codes::CredentialRequest {
                user_id: 10_000 + u as u64,
                user_key: key.public_key(),
                valid_from,
                valid_until,
                max_amount: 100_000,
                currency: 156,
            },
        )?;
        wallets.push(Wallet {
            key,
            credential,
            counter: 0,
        });
    }
    Ok(wallets)
}

/// The fleet manager's signing key, as terminals list it in `[[fleet.keys]]`.
pub struct FleetKey {
    pub id: String,
    pub key: ed25519_dalek::SigningKey,
}

impl FleetKey {
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// A signed `cfg/desired` envelope for `terminal` (`*`: the fleet-wide topic).
    pub fn sign_config(
        &self,
        terminal: &str,
        version: u64,
        config: serde_json::Value,
    ) -> anyhow::Result<Vec<u8>> {
        let doc = serde_json::json!({
            "version": version,
            "issued_at": crate::mqtt::now_ms() / 1000,
            "terminal": terminal,
            "config": config,
        });
        let env = posd_core::fleet::envelope::seal(&serde_json::to_vec(&doc)?, &self.id, &self.key);
        Ok(serde_json::to_vec(&env)?)
    }

    /// A signed `cmd` envelope for `terminal`.
    pub fn sign_command(
        &self,
        terminal: &str,
        cmd_id: &str,
        op: posd_core::fleet::command::Op,
    ) -> anyhow::Result<Vec<u8>> {
        let cmd = posd_core::fleet::command::Command {
            cmd_id: cmd_id.to_string(),
            op,
            args: serde_json::Value::Null,
            terminal: terminal.to_string(),
            issued_at: crate::mqtt::now_ms() / 1000,
        };
        let env = posd_core::fleet::envelope::seal(&serde_json::to_vec(&cmd)?, &self.id, &self.key);
        Ok(serde_json::to_vec(&env)?)
    }
}

/// Publishes `(topic, body)` messages at QoS 1 on `url` with one short-lived client and waits
/// for every PUBACK.
pub fn publish_all(
    url: &str,
    client_id: &str,
    retain: bool,
    msgs: Vec<(String, Vec<u8>)>,
) -> anyhow::Result<()> {
    let opts = crate::mqtt::options(client_id, url, 10).map_err(anyhow::Error::msg)?;
    let (client, mut conn) = rumqttc::Client::new(opts, msgs.len().max(10));
    let mut left = msgs.len();
    for (topic, body) in msgs {
        client.publish(topic, rumqttc::QoS::AtLeastOnce, retain, body)?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while left > 0 {
        if Instant::now() > deadline {
            bail!("publish: {left} PUBACK(s) missing from the broker after 20 s");
        }
        match conn.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => left -= 1,
            Ok(Err(e)) => bail!("publish: {e}"),
            _ => {}
        }
    }
    let _ = client.disconnect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log's debt to the database file: the distinct pages of the frames not yet copied
    /// (a page written twice is owed once), none once a checkpoint copied them, and `None`
    /// for a database not in WAL mode.
    #[test]
    fn the_log_owes_its_distinct_pages_until_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.sqlite");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);",
        )
        .unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(wal_bytes_owed(&db), Some(0));
        let page = c
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64;
        // Each row fills a page of its own; every insert also rewrites the table's root.
        for i in 0..10 {
            c.execute("INSERT INTO t (id, v) VALUES (?1, zeroblob(3000))", [i])
                .unwrap();
        }
        let pages = c
            .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64;
        let owed = wal_bytes_owed(&db).unwrap();
        // Every page the file has now was written since the checkpoint, except the schema's
        // first page at most; far fewer than the frames the log holds (the root, again and again).
        assert!(
            owed >= (pages - 1) * page && owed <= pages * page,
            "{owed} of {pages} pages"
        );
        c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(wal_bytes_owed(&db), Some(0));
        let plain = dir.path().join("plain.sqlite");
        rusqlite::Connection::open(&plain)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        assert_eq!(wal_bytes_owed(&plain), None);
    }

    /// A busy child's CPU time, read to the nanosecond while it runs (not in 10 ms ticks), agrees
    /// with `/proc`'s ticks; a process that is gone reads 0.
    #[test]
    fn a_process_cpu_time_is_read_finer_than_a_tick() {
        let mut child = Process::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let t0 = Instant::now();
        while cpu_s(pid) < 0.05 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (fine, ticks) = (cpu_s(pid), stat_cpu_s(&format!("/proc/{pid}/stat")));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(fine >= 0.05, "the busy child used {fine} s");
        assert!(
            (fine - ticks).abs() < 0.05,
            "{fine} s against {ticks} s in ticks"
        );
        let in_ticks = fine * 100.0;
        assert!(
            (in_ticks - in_ticks.round()).abs() > 1e-6,
            "{fine} s is a whole number of ticks"
        );
        assert_eq!(cpu_s(pid), 0.0, "a reaped process");
    }
}
