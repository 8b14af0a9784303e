//! `posd check-config` catches what would stop the daemon, each problem once: a TOML syntax
//! error with its line and column, a bad value without false follow-ups, TLS files missing,
//! not PEM, not matching, or unreadable by the service user.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// (exit code, stdout, stderr) of `posd check-config FILE [args]`.
fn check(file: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_posd"))
        .arg("check-config")
        .arg(file)
        .args(args)
        .output()
        .expect("run posd check-config");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("posd.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn base(dir: &Path) -> String {
    format!(
        "[terminal]\nid = \"T1\"\nstate_dir = \"{}\"\n",
        dir.join("state").display()
    )
}

#[test]
fn syntax_errors_say_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "[terminal]\nid = \"T1\"\ncurrency = CNY\n[broker]\n",
    );
    let (code, _, err) = check(&f, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("line 3, column 12"), "{err}");
    assert_eq!(err.matches("not valid TOML").count(), 1, "{err}");
}

#[test]
fn a_bad_value_is_one_problem() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        &format!("{}currency = \"XXX\"\n", base(dir.path())),
    );
    let (code, _, err) = check(&f, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("terminal.currency"), "{err}");
    assert!(!err.contains("terminal.id"), "a false follow-up: {err}");
    assert!(err.contains(": 1 problem(s)"), "{err}");
}

#[test]
fn time_zone_names_are_checked_and_utc_offset_s_is_deprecated() {
    let dir = tempfile::tempdir().unwrap();
    let b = base(dir.path());
    // A misspelt zone: one problem, naming the fix.
    let f = write(dir.path(), &format!("{b}time_zone = \"Europe/Madird\"\n"));
    let (code, _, err) = check(&f, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("terminal.time_zone").count(), 1, "{err}");
    assert!(
        err.contains("\"Europe/Madird\" is not a time zone"),
        "{err}"
    );
    assert!(err.contains("\"Europe/Madrid\""), "names a fix: {err}");
    // The system has no tz database at all: found in the bundled copy (feature tz-bundle), else
    // refused once, naming the package to install (the .deb depends on it).
    let f = write(
        dir.path(),
        &format!("{b}time_zone = \"America/Mexico_City\"\n"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_posd"))
        .arg("check-config")
        .arg(&f)
        .env("TZDIR", dir.path().join("no-zoneinfo"))
        .output()
        .unwrap();
    if posd::clock::BUNDLED_TZDATA.is_some() {
        assert!(out.status.success(), "{out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(err.matches("terminal.time_zone").count(), 1, "{err}");
        assert!(
            err.contains("no-zoneinfo is missing") && err.contains("install the tzdata package"),
            "{err}"
        );
    }
    // Both set: time_zone wins, one warning; still ok.
    let f = write(
        dir.path(),
        &format!("{b}time_zone = \"Europe/Madrid\"\nutc_offset_s = 3600\n"),
    );
    let (code, out, err) = check(&f, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning: terminal.utc_offset_s: 3600 is ignored: terminal.time_zone"),
        "{err}"
    );
    // Only the deprecated key: accepted as a fixed offset, with the way to the new one.
    let f = write(dir.path(), &format!("{b}utc_offset_s = 28800\n"));
    let (code, _, err) = check(&f, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("deprecated") && err.contains("terminal.time_zone"),
        "{err}"
    );
    // Out of range.
    let f = write(dir.path(), &format!("{b}utc_offset_s = 90000\n"));
    let (code, _, err) = check(&f, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("terminal.utc_offset_s: 90000 s is not a UTC offset"),
        "{err}"
    );
}

#[test]
fn tls_files_present_parseable_matching_and_readable_by_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-test-pki.sh"))
        .arg(&pki)
        .args(["T1", "T2"])
        .output()
        .expect("openssl and bash are needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = |cert: &str, key: &str| {
        format!(
            "{}[broker]\nurl = \"mqtts://127.0.0.1:8884\"\n[broker.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            base(dir.path()),
            pki.join("ca.pem").display(),
            pki.join(cert).display(),
            pki.join(key).display()
        )
    };
    // Good files: ok (as a user that can read them: this test's own, when not root).
    let f = write(dir.path(), &conf("T1.pem", "T1.key"));
    let me = if euid_is_root() { "root" } else { "posd" };
    let (code, stdout, err) = check(&f, &["--service-user", me]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.ends_with(": ok\n"), "{stdout}");

    // A missing key.
    let f = write(dir.path(), &conf("T1.pem", "nope.key"));
    let (code, _, err) = check(&f, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("broker.tls.key") && err.contains("does not exist"),
        "{err}"
    );
    assert!(err.contains(": 1 problem(s)"), "{err}");

    // A certificate that is not PEM.
    std::fs::write(pki.join("junk.pem"), "not a certificate\n").unwrap();
    let f = write(dir.path(), &conf("junk.pem", "T1.key"));
    let (code, _, err) = check(&f, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("broker.tls.cert"), "{err}");

    // T1's certificate with T2's key.
    let f = write(dir.path(), &conf("T1.pem", "T2.key"));
    let (code, _, err) = check(&f, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("broker.tls.key"), "{err}");

    // The key 0600 root's: unreadable by the service user (only answerable as root).
    if euid_is_root() {
        std::fs::set_permissions(pki.join("T1.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let f = write(dir.path(), &conf("T1.pem", "T1.key"));
        let (code, _, err) = check(&f, &["--service-user", "nobody"]);
        assert_eq!(code, 1);
        assert!(
            err.contains("broker.tls.key")
                && err.contains("not readable by the service user nobody"),
            "{err}"
        );
    }
}

fn euid_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}
