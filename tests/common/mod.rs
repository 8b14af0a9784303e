//! Real components for integration tests: a mosquitto per test on a free loopback port, the
//! posd daemon binary, the sandbox host binary (`posd-sandbox`), and a control-socket client.
#![allow(dead_code)]

use posd::control::ControlClient;
use posd_core::control as ctl;
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sandbox's binary, `posd-sandbox`, which `cargo test --workspace` builds beside the
/// product's (`target/<profile>/`): the host and the wallet run as processes of their own.
pub fn sandbox_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join("posd-sandbox");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (which builds it) or build it \
         first with `cargo build -p posd-sandbox`",
        bin.display()
    );
    bin
}

pub fn free_port() -> u16 {
    // Never 1883: the machine's own broker may be there.
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        if p != 1883 {
            return p;
        }
    }
}

pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A mosquitto broker of the test's own.
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).ok();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).expect("conf");
        writeln!(
            f,
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 0\nset_tcp_nodelay true\n"
        )
        .expect("write conf");
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).ok();
        let mut m = Mosquitto {
            port,
            conf,
            child: None,
            _dir: dir,
        };
        m.restart();
        m
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (apt-get install mosquitto)");
        self.child = Some(child);
        assert!(
            wait_port(self.port, Duration::from_secs(10)),
            "mosquitto did not listen on {}",
            self.port
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The host's signing key in every test (DESIGN §4 "Signed host messages"): the sandbox host
/// signs with it and every [`Daemon`] lists its public half in `[[broker.host_keys]]`.
pub fn host_signer() -> posd_core::protocol::signed::HostSigner {
    posd_core::protocol::signed::HostSigner::from_seed(1, &[0x48; 32])
}

/// The sandbox host as its own process (`posd-sandbox host`).
pub struct Host {
    pub db: PathBuf,
    broker: String,
    late_ms: u64,
    child: Option<Child>,
    pub instance: String,
    pub extra_args: Vec<String>,
    /// Signs with [`host_signer`] (the default), or publishes unsigned (`--unsigned`).
    pub signed: bool,
}

impl Host {
    pub fn start(broker: &str, db: &Path) -> Host {
        Host::start_named(broker, db, "host-1", 60_000)
    }

    pub fn start_named(broker: &str, db: &Path, instance: &str, late_ms: u64) -> Host {
        let mut h = Host {
            db: db.to_path_buf(),
            broker: broker.to_string(),
            late_ms,
            child: None,
            instance: instance.to_string(),
            extra_args: Vec::new(),
            signed: true,
        };
        h.restart();
        h
    }

    /// A host that signs nothing (for terminals with the lab-only `lab_accept_unsigned`).
    pub fn start_unsigned(broker: &str, db: &Path) -> Host {
        let mut h = Host {
            db: db.to_path_buf(),
            broker: broker.to_string(),
            late_ms: 60_000,
            child: None,
            instance: "host-1".into(),
            extra_args: Vec::new(),
            signed: false,
        };
        h.restart();
        h
    }

    /// A host that verifies P1 offline sales with the platform's issuer key.
    pub fn start_with_args(broker: &str, db: &Path, args: &[String]) -> Host {
        let mut h = Host {
            db: db.to_path_buf(),
            broker: broker.to_string(),
            late_ms: 60_000,
            child: None,
            instance: "host-1".into(),
            extra_args: args.to_vec(),
            signed: true,
        };
        h.restart();
        h
    }

    pub fn restart(&mut self) {
        self.kill();
        let key = self.db.with_extension("host-key.json");
        let mut cmd = Command::new(sandbox_bin());
        cmd.arg("host");
        if self.signed {
            std::fs::write(&key, posd_sandbox::host::signing_key_file(&host_signer()))
                .expect("write the host key file");
            cmd.arg("--host-key").arg(&key);
        } else {
            cmd.arg("--unsigned");
        }
        let child = cmd
            .args(["--broker", &self.broker, "--db"])
            .arg(&self.db)
            .args([
                "--client-id",
                &self.instance,
                "--late-ms",
                &self.late_ms.to_string(),
            ])
            .args(["--log-level", "warn"])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sandbox host");
        self.child = Some(child);
        // Let it connect and subscribe.
        std::thread::sleep(Duration::from_millis(300));
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn audit(&self) -> posd_sandbox::host::Audit {
        let conn = posd_sandbox::host::open_db(&self.db).expect("host db");
        posd_sandbox::host::audit(&conn).expect("audit")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The posd daemon as its own process.
pub struct Daemon {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    /// `POSD_CLOCK_OFFSET_MS` for the next [`Daemon::restart`] (the daemon's clock shifted).
    pub clock_offset_ms: Option<i64>,
    child: Option<Child>,
}

impl Daemon {
    /// Writes a config (terminal `id`, broker, state in `dir`) plus `extra` TOML sections.
    pub fn start(dir: &Path, id: &str, broker: &str, extra: &str) -> Daemon {
        Daemon::start_at_level(dir, id, broker, extra, "warn")
    }

    /// As [`Daemon::start`] with another log level (the card test reads the logs at `debug`).
    pub fn start_at_level(dir: &Path, id: &str, broker: &str, extra: &str, level: &str) -> Daemon {
        Daemon::start_custom(dir, id, broker, extra, level, &host_signer().toml_entry())
    }

    /// As [`Daemon::start_at_level`]; `broker_extra` ends the `[broker]` section instead of the
    /// test host's key (`[[broker.host_keys]]`), e.g. `lab_accept_unsigned = true`.
    pub fn start_custom(
        dir: &Path,
        id: &str,
        broker: &str,
        extra: &str,
        level: &str,
        broker_extra: &str,
    ) -> Daemon {
        std::fs::create_dir_all(dir).expect("dir");
        let socket = dir.join("control.sock");
        let config = dir.join("posd.toml");
        let text = format!(
            "[terminal]\nid = \"{id}\"\nstate_dir = \"{}\"\n\n[broker]\nurl = \"{broker}\"\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\nack_timeout_s = 2\n{broker_extra}\n[control]\nsocket = \"{}\"\n\n[logging]\nlevel = \"{level}\"\n\n{extra}\n",
            dir.join("state").display(),
            socket.display()
        );
        std::fs::write(&config, text).expect("write config");
        let mut d = Daemon {
            dir: dir.to_path_buf(),
            config,
            socket,
            clock_offset_ms: None,
            child: None,
        };
        d.restart();
        d
    }

    /// The daemon's log (stderr), appended across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("posd.log")
    }

    /// What the daemon wrote on stdout (the console device: the cashier's lines), appended
    /// across restarts.
    pub fn stdout_path(&self) -> PathBuf {
        self.dir.join("posd.out")
    }

    pub fn restart(&mut self) {
        self.kill9();
        let open = |p: PathBuf| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("daemon output file")
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_posd"));
        match self.clock_offset_ms {
            Some(ms) => cmd.env("POSD_CLOCK_OFFSET_MS", ms.to_string()),
            None => cmd.env_remove("POSD_CLOCK_OFFSET_MS"),
        };
        let child = cmd
            .arg("--config")
            .arg(&self.config)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::from(open(self.stdout_path())))
            .stderr(Stdio::from(open(self.log_path())))
            .spawn()
            .expect("spawn posd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "posd did not open its control socket"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Power cut: SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Graceful stop with SIGTERM; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        unsafe_sigterm(c.id());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The daemon's resident set (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid().expect("daemon running");
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("state").join("posd.sqlite")
    }

    pub async fn client(&self) -> ControlClient {
        ControlClient::connect(&self.socket)
            .await
            .expect("control socket")
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `f` returns Some, polling; panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn status(c: &mut ControlClient) -> Value {
    c.call_json(ctl::Status {}).await.expect("status")
}

pub async fn wait_online(d: &Daemon) {
    eventually(Duration::from_secs(20), "posd online", || async {
        let mut c = d.client().await;
        let s = status(&mut c).await;
        (s["online"] == Value::Bool(true)).then_some(())
    })
    .await
}

/// Waits until every event was acknowledged by the host.
pub async fn wait_drained(d: &Daemon, timeout: Duration) -> Value {
    eventually(timeout, "outbox drained", || async {
        let mut c = d.client().await;
        let q = c.call_json(ctl::Queue {}).await.ok()?;
        (q["pending"].as_u64() == Some(0)).then_some(q)
    })
    .await
}

pub async fn sale(
    d: &Daemon,
    amount: &str,
    code: &str,
) -> Result<Value, posd::control::ControlError> {
    let mut c = d.client().await;
    c.call_json(ctl::Sale {
        amount: amount.into(),
        currency: None,
        code: Some(code.into()),
        method: None,
    })
    .await
}

/// The manager PIN of the tests and its `[manager]` section.
pub const PIN: &str = "4711";

pub fn manager_toml() -> String {
    let h = posd_core::pin::hash_pin(PIN).expect("hash pin");
    format!("[manager]\npin_hash = \"{h}\"\n")
}

/// The host's card key pair: the secret in a file for `--card-key`, the public key for
/// `[card] host_public_key`.
pub fn card_keys(dir: &Path) -> (PathBuf, String) {
    let (secret, public) = posd_core::card::seal::keygen_random().expect("keygen");
    let path = dir.join("host-card.key");
    std::fs::write(&path, posd_core::card::seal::key_to_b64(&secret)).expect("write key");
    (path, posd_core::card::seal::key_to_b64(&public))
}

/// A payment platform's issuer key and wallets, for P1 offline codes in tests.
pub struct Platform {
    pub issuer: posd_core::codes::PrivateKey,
    pub key_id: u8,
}

pub struct Wallet {
    pub user_id: u64,
    pub key: posd_core::codes::PrivateKey,
    pub credential: posd_core::codes::Credential,
    pub counter: u32,
}

pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl Platform {
    pub fn new() -> Platform {
        Platform {
            issuer: posd_core::codes::PrivateKey::generate().expect("key"),
            key_id: 1,
        }
    }

    /// The `[offline]` section a terminal needs to trust this platform, with generous limits
    /// unless `limits` says otherwise.
    pub fn offline_toml(&self, limits: &str) -> String {
        format!(
            "[offline]\nclock = \"always\"\nsettle_query_interval_s = 2\n[[offline.issuer_keys]]\nid = {}\npublic_key = \"{}\"\n[offline.limits]\n{}\n",
            self.key_id,
            self.issuer.public_key().to_hex(),
            if limits.is_empty() {
                "per_txn_limit = 1000000\nper_user_daily_limit = 1000000000\nmax_unsynced_count = 1000000\nmax_unsynced_amount = 100000000000\nmax_unsynced_age_s = 864000"
            } else {
                limits
            }
        )
    }

    pub fn host_key_arg(&self) -> String {
        format!("{}={}", self.key_id, self.issuer.public_key().to_hex())
    }

    pub fn wallet(&self, user_id: u64, max_amount: u32) -> Wallet {
        let key = posd_core::codes::PrivateKey::generate().expect("key");
        let now = unix_now();
        let req = posd_core::codes::CredentialRequest {
            user_id,
            user_key: key.public_key(),
            valid_from: now - 3600,
            valid_until: now + 86_400,
            max_amount,
            currency: 156,
        };
        let credential =
            posd_core::codes::issue_credential(&self.issuer, self.key_id, &req).expect("issue");
        Wallet {
            user_id,
            key,
            credential,
            counter: 0,
        }
    }
}

impl Wallet {
    /// The next fresh code (counter + 1, timestamp now).
    pub fn next_code(&mut self) -> String {
        self.counter += 1;
        self.code_at(unix_now(), self.counter)
    }

    pub fn code_at(&self, timestamp: u32, counter: u32) -> String {
        posd_core::codes::make_code(&self.key, &self.credential, timestamp, counter)
            .expect("code")
            .to_text()
    }
}

impl Mosquitto {
    /// A broker with a configuration of the test's own: `conf(port, dir)` returns its text;
    /// `dir` is the broker's private directory (0755), for certificates and the ACL.
    pub fn start_with_conf(conf: impl FnOnce(u16, &Path) -> String) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).ok();
        let port = free_port();
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf(port, dir.path())).expect("write conf");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).ok();
        let mut m = Mosquitto {
            port,
            conf: path,
            child: None,
            _dir: dir,
        };
        m.restart();
        m
    }
}
