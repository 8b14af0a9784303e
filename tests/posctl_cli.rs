//! `posctl` as till software and operators meet it: every till command's words and JSON,
//! failures included, and its exit code, against the real daemon, mosquitto and the sandbox
//! host. The transcript is `tests/golden/posctl/cli.txt` (ids, references and times replaced
//! by placeholders); `UPDATE_GOLDEN=1 cargo test -p posd --test posctl_cli` rewrites it.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One posctl run, as the transcript records it.
struct Run {
    exit: i32,
    stdout: String,
    stderr: String,
}

fn posctl(socket: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_posctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env("POSD_MANAGER_PIN", PIN)
        .output()
        .expect("run posctl");
    Run {
        exit: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_uuid(w: &str) -> bool {
    w.len() == 36
        && w.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `2026-11-21 14:03:05 +08:00` at byte `i`.
fn time_at(b: &[u8], i: usize) -> bool {
    const PAT: &[u8] = b"dddd-dd-dd dd:dd:dd sdd:dd";
    b.len() >= i + PAT.len()
        && PAT.iter().zip(&b[i..]).all(|(p, c)| match p {
            b'd' => c.is_ascii_digit(),
            b's' => *c == b'+' || *c == b'-',
            other => other == c,
        })
}

/// `2026-11-21` at byte `i` (a business day), not followed by a time.
fn date_at(b: &[u8], i: usize) -> bool {
    const PAT: &[u8] = b"dddd-dd-dd";
    b.len() >= i + PAT.len()
        && PAT.iter().zip(&b[i..]).all(|(p, c)| match p {
            b'd' => c.is_ascii_digit(),
            other => other == c,
        })
        && b.get(i + PAT.len()).is_none_or(|c| !c.is_ascii_digit())
}

/// Replaces what changes from run to run: times, dates, transaction ids, receipt references,
/// host references and unix-ms numbers in JSON.
fn normalise(text: &str) -> String {
    let b = text.as_bytes();
    let mut no_times = String::new();
    let mut i = 0;
    while i < b.len() {
        if time_at(b, i) {
            // Same width, the zone kept: the zone is what is checked.
            no_times.push_str("YYYY-MM-DD hh:mm:ss ");
            no_times.push_str(&text[i + 20..i + 26]);
            i += 26;
        } else if date_at(b, i) {
            no_times.push_str("YYYY-MM-DD");
            i += 10;
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            no_times.push(ch);
            i += ch.len_utf8();
        }
    }
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let w = word.as_str();
        let rep = if is_uuid(w) {
            "<TXN>".to_string()
        } else if w.len() == 12 && is_hex(w) {
            "<shortref12>".to_string()
        } else if w.len() == 13 && w.starts_with(['H', 'R']) && is_hex(&w[1..]) {
            "<HOSTREF>".to_string()
        } else if w.len() == 13 && w.bytes().all(|b| b.is_ascii_digit()) {
            "<MS>".to_string()
        } else {
            w.to_string()
        };
        out.push_str(&rep);
        word.clear();
    };
    for c in no_times.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

struct Transcript {
    text: String,
    /// The test's directory, shown as `<DIR>`.
    dir: String,
}

impl Transcript {
    fn run(&mut self, socket: &Path, args: &[&str]) -> Run {
        let r = posctl(socket, args);
        let shown = |s: &str| normalise(&s.replace(&self.dir, "<DIR>"));
        self.text.push_str(&format!(
            "$ posctl {}\n[exit {}]\n",
            shown(&args.join(" ")),
            r.exit
        ));
        if !r.stdout.is_empty() {
            let s = shown(&r.stdout);
            self.text.push_str(&s);
        }
        if !r.stderr.is_empty() {
            let s = shown(&r.stderr);
            self.text.push_str("(stderr) ");
            self.text.push_str(&s);
        }
        self.text.push('\n');
        r
    }
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/posctl/cli.txt")
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {:?}", r.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posctl_words_json_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transcript {
        text: String::new(),
        dir: dir.path().display().to_string(),
    };

    // No daemon: said once, with the fix; exit 5.
    let missing = dir.path().join("nowhere.sock");
    let r = t.run(&missing, &["status"]);
    assert_eq!(r.exit, 5);
    assert_eq!(r.stderr.matches("os error").count(), 0, "{}", r.stderr);
    let r = t.run(&missing, &["status", "--json"]);
    assert_eq!(json(&r)["code"], "no_socket");
    // Usage: exit 2, as JSON too.
    let r = t.run(&missing, &["sale", "--json"]);
    assert_eq!(r.exit, 2);
    assert_eq!(json(&r)["code"], "usage");

    let broker = Mosquitto::start();
    let platform = Platform::new();
    let mut host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--issuer-key".into(), platform.host_key_arg()],
    );
    let extra = format!("{}\n{}", manager_toml(), platform.offline_toml(""));
    let mut d = Daemon::start(&dir.path().join("t"), "T-CLI", &broker.url(), &extra);
    // The shop is in China (UTC+8 all year): times are shown in its zone.
    let conf = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        conf.replacen(
            "[terminal]\n",
            "[terminal]\ntime_zone = \"Asia/Shanghai\"\n",
            1,
        ),
    )
    .unwrap();
    d.restart();
    wait_online(&d).await;
    let s = d.socket.clone();

    let r = t.run(&s, &["current"]);
    assert_eq!(r.exit, 0);
    t.run(&s, &["current", "--json"]);
    // A code with no sale waiting is refused, not "passed to the sale in progress".
    let r = t.run(&s, &["scan", "134567890123456780"]);
    assert_eq!(r.exit, 4);
    let r = t.run(&s, &["scan", "134567890123456780", "--json"]);
    assert_eq!(json(&r)["code"], "no_sale");

    // Connected: the link line says so (and when the host last answered, once it has).
    let st = posctl(&s, &["status"]);
    assert!(
        st.stdout
            .lines()
            .any(|l| l.starts_with("link       connected; the host")),
        "{}",
        st.stdout
    );
    // Sales in major units; approved 0, declined 3.
    let r = t.run(
        &s,
        &["sale", "--amount", "3.20", "--code", "134567890123456780"],
    );
    assert_eq!(r.exit, 0);
    assert!(r.stdout.contains("3.20 CNY"), "{}", r.stdout);
    let sale_id = r
        .stdout
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    let r = t.run(
        &s,
        &["sale", "--amount", "12.50", "--code", "134567890123456711"],
    );
    assert_eq!(r.exit, 3);
    let r = t.run(
        &s,
        &[
            "sale",
            "--amount",
            "12.50",
            "--code",
            "134567890123456711",
            "--json",
        ],
    );
    assert_eq!(r.exit, 3);
    assert_eq!(json(&r)["result"], "declined");
    // Refused by posd: exit 4, the machine code in JSON, "refused" said once.
    let r = t.run(&s, &["sale", "--amount", "1.234"]);
    assert_eq!(r.exit, 4);
    let r = t.run(&s, &["sale", "--amount", "1.234", "--json"]);
    assert_eq!(json(&r)["code"], "amount");

    // Refunds: too much (in major units), then part of it.
    let r = t.run(&s, &["refund", "--original", &sale_id, "--amount", "5.00"]);
    assert_eq!(r.exit, 4);
    assert!(!r.stderr.contains("journal"), "{}", r.stderr);
    assert_eq!(r.stderr.matches("refused").count(), 1, "{}", r.stderr);
    let r = t.run(
        &s,
        &[
            "refund",
            "--original",
            &sale_id,
            "--amount",
            "1.00",
            "--pin",
            "0000",
        ],
    );
    assert_eq!(r.exit, 4);
    let r = t.run(&s, &["refund", "--original", &sale_id, "--amount", "1.00"]);
    assert_eq!(r.exit, 0);
    assert!(r.stdout.starts_with("REFUNDED 1.00 CNY"), "{}", r.stdout);

    // An offline sale voided while the host is away: VOIDED, not APPROVED.
    host.kill();
    let mut wallet = platform.wallet(7, 10_000);
    let code = wallet.next_code();
    let r = posctl(&s, &["sale", "--amount", "2.00", "--code", &code, "--json"]);
    assert_eq!(r.exit, 0, "{}", r.stderr);
    let off_id = json(&r)["txn_id"].as_str().unwrap().to_string();
    let r = t.run(&s, &["void", &off_id]);
    assert_eq!(r.exit, 0);
    assert!(r.stdout.starts_with("VOIDED"), "{}", r.stdout);
    let r = t.run(&s, &["void", &sale_id]);
    assert_eq!(r.exit, 4);
    host.restart();
    wait_drained(&d, Duration::from_secs(20)).await;

    // Lookups: a table with a header, times in the shop's zone, the receipt's reference.
    let r = t.run(&s, &["txn", "list"]);
    assert!(r.stdout.starts_with("TIME "), "{}", r.stdout);
    assert!(r.stdout.contains("+08:00"), "{}", r.stdout);
    let short = &sale_id[sale_id.len() - 12..];
    let r = t.run(&s, &["txn", "show", short]);
    assert_eq!(r.exit, 0);
    assert!(r.stdout.contains(&sale_id), "{}", r.stdout);
    let r = posctl(&s, &["txn", "show", short, "--json"]);
    assert_eq!(json(&r)["txn"]["id"], sale_id.as_str());
    let r = t.run(&s, &["txn", "show", "000000000000"]);
    assert_eq!(r.exit, 4);
    let r = t.run(&s, &["txn", "show", "000000000000", "--json"]);
    assert_eq!(json(&r)["code"], "not_found");
    let r = t.run(&s, &["cancel"]);
    assert_eq!(r.exit, 4);
    // devices: what is plugged in (none on a build machine, perhaps) and posd's roles.
    let r = posctl(&s, &["devices", "--json"]);
    assert_eq!(r.exit, 0, "{}", r.stderr);
    let v = json(&r);
    assert_eq!(v["posd"], "ok", "{v}");
    assert!(
        v["devices"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["role"] == "console")),
        "{v}"
    );
    let r = t.run(&s, &["queue"]);
    assert_eq!(r.exit, 0);
    let r = t.run(&s, &["batch-close"]);
    assert_eq!(r.exit, 0);
    assert!(r.stdout.contains("net 2.20 CNY"), "{}", r.stdout);

    // Code inspection without a daemon: a sale would refuse this text, exit 4.
    let r = t.run(&missing, &["code", "inspect", "not a code"]);
    assert_eq!(r.exit, 4);
    // A swipe: the checks a sale applies, and a wrong check digit refused as a sale would.
    let good = "%B4111111111111111^DOE/JOHN^4912201000000000?;4111111111111111=49122010000000000?";
    let r = t.run(&missing, &["code", "inspect", good]);
    assert_eq!(r.exit, 0);
    assert!(
        r.stdout.contains("check digit    ok (Luhn)"),
        "{}",
        r.stdout
    );
    let bad = good.replace("4111111111111111", "4111111111111112");
    let r = t.run(&missing, &["code", "inspect", &bad, "--json"]);
    assert_eq!(r.exit, 4);
    assert_eq!(json(&r)["code"], "card_luhn");

    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &t.text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == t.text,
        "posctl transcript differs from {} (UPDATE_GOLDEN=1 rewrites it):\n{}",
        path.display(),
        t.text
    );
}

/// Offline, `status` says why: the broker, the last connection error and the next try; the
/// log warns once, not at every retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_why_it_is_offline() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port(); // nobody listens there
    let url = format!("mqtt://127.0.0.1:{port}");
    let d = Daemon::start(&dir.path().join("t"), "T-OFFLINE", &url, "");
    let s = d.socket.clone();
    let v = eventually(Duration::from_secs(10), "three failed attempts", || {
        let s = s.clone();
        async move {
            let r = posctl(&s, &["status", "--json"]);
            let v = json(&r);
            (v["broker"]["failures"].as_u64() >= Some(3)).then_some(v)
        }
    })
    .await;
    assert_eq!(v["online"], false);
    assert_eq!(v["broker"]["url"], url.as_str());
    assert!(v["broker"]["last_error"].as_str().is_some(), "{v}");
    assert!(v["broker"]["next_retry_at"].as_u64().is_some(), "{v}");
    let r = posctl(&s, &["status"]);
    assert_eq!(r.exit, 0);
    let broker_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("broker "))
        .unwrap_or_default()
        .to_string();
    assert!(
        broker_line.contains(&url) && broker_line.contains("not connected"),
        "{}",
        r.stdout
    );
    assert!(broker_line.contains("next try in"), "{}", r.stdout);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("last error ")),
        "{}",
        r.stdout
    );
    // The link as the till judges it, with what still sells (issue 15).
    assert!(
        r.stdout.lines().any(|l| l
            == "link       not connected: online codes are refused; offline codes and cards still sell"),
        "{}",
        r.stdout
    );
    // Several failures, one warning (rate-limited to one a minute).
    let log = std::fs::read_to_string(d.log_path()).unwrap_or_default();
    assert_eq!(
        log.matches("cannot connect to the broker").count(),
        1,
        "{log}"
    );

    // In a Chinese shop the cashier's lines are Chinese; --json keeps its machine words.
    let mut d = d;
    let conf = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        conf.replacen("[terminal]\n", "[terminal]\nlanguage = \"zh-CN\"\n", 1),
    )
    .unwrap();
    d.restart();
    let v = eventually(Duration::from_secs(10), "a failed attempt", || {
        let s = s.clone();
        async move {
            let v = json(&posctl(&s, &["status", "--json"]));
            (v["broker"]["failures"].as_u64() >= Some(1)).then_some(v)
        }
    })
    .await;
    assert_eq!(v["language"], "zh-CN", "{v}");
    assert_eq!(v["broker"]["state"], "not_connected", "{v}");
    assert_eq!(v["alerts"][0]["code"], "offline", "{v}");
    assert_eq!(v["alerts"][0]["text"], "离线: 没有待同步的交易", "{v}");
    let r = posctl(&s, &["status"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l == "连接       未连接: 拒收在线付款码; 离线码和刷卡仍可收款"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l == "提醒       离线: 没有待同步的交易"),
        "{}",
        r.stdout
    );
    let r = posctl(&s, &["current"]);
    assert_eq!(
        r.stdout.lines().next(),
        Some("空闲: 当前没有交易"),
        "{}",
        r.stdout
    );
}

/// A push the terminal would reject is refused by posctl before anything is signed or sent:
/// the key file does not even exist and no broker listens, yet the answer is the terminal's
/// own refusal (exit 4 with its code).
#[test]
fn fleet_push_refused_locally_before_signing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = format!("mqtt://127.0.0.1:{}", free_port());
    let push = |overlay: &str, json: bool| {
        let file = dir.path().join("overlay.toml");
        std::fs::write(&file, overlay).unwrap();
        let mut args = vec![
            "fleet".to_string(),
            "push".into(),
            "--key".into(),
            dir.path().join("no-such.key").display().to_string(),
            "--terminal".into(),
            "T1".into(),
            "--version".into(),
            "7".into(),
            "--broker".into(),
            broker.clone(),
            file.display().to_string(),
        ];
        if json {
            args.push("--json".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        posctl(&dir.path().join("unused.sock"), &args)
    };
    // Not on the pushable list.
    let r = push("[broker]\nurl = \"mqtt://evil:1883\"\n", false);
    assert_eq!(r.exit, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("not pushed") && r.stderr.contains("broker.url"),
        "{}",
        r.stderr
    );
    let r = push("[broker]\nurl = \"mqtt://evil:1883\"\n", true);
    assert_eq!(json(&r)["code"], "not_pushable");
    // Pushable, but not a value the terminal's schema takes.
    let r = push("[limits]\nmax_sale_amount = \"lots\"\n", true);
    assert_eq!(r.exit, 4);
    assert_eq!(json(&r)["code"], "invalid_config", "{}", r.stdout);
    // A good overlay gets past the checks: then the missing key file is the error (exit 1).
    let r = push("[limits]\nmax_sale_amount = 500\n", false);
    assert_eq!(r.exit, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no-such.key"), "{}", r.stderr);
}
