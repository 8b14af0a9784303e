//! The sandbox's command line as the product's tests and the demo use it: wallet keys and
//! codes, the host's card key file, and the audit of a host database.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn sandbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_posd-sandbox"))
        .args(args)
        .output()
        .expect("run posd-sandbox")
}

#[test]
fn wallet_issues_a_credential_and_makes_p1_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = sandbox(&["wallet", "keygen"]);
    assert!(out.status.success());
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let issuer = keys["private_key"].as_str().unwrap().to_string();
    let wallet = dir.path().join("w.json");
    let w = wallet.to_str().unwrap();
    let out = sandbox(&[
        "wallet",
        "issue",
        "--issuer-key",
        &issuer,
        "--key-id",
        "1",
        "--user-id",
        "42",
        "--out",
        w,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sandbox(&["wallet", "code", "--wallet", w, "--counter", "7"]);
    assert!(out.status.success());
    let code = String::from_utf8(out.stdout).unwrap();
    let parsed = posd_core::codes::P1Code::from_text(code.trim()).expect("a P1 code");
    assert_eq!(parsed.counter, 7);
    assert_eq!(parsed.credential.user_id, 42);
}

#[test]
fn card_keygen_writes_a_secret_only_its_owner_reads() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("card.key");
    let out = sandbox(&["card", "keygen", "--out-secret", secret.to_str().unwrap()]);
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap();
    assert!(posd_core::card::seal::parse_key_b64(public.trim()).is_ok());
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&secret).unwrap();
    assert!(posd_sandbox::host::parse_card_secret(text.trim()).is_ok());
}

#[test]
fn audit_of_an_empty_host_is_ok_and_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("host.sqlite");
    let out = sandbox(&["audit", "--db", db.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["events"], 0);
}

#[test]
fn host_key_keygen_writes_a_key_file_and_prints_the_terminal_entry() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("host.key");
    let out = sandbox(&[
        "host-key",
        "keygen",
        "--id",
        "7",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The printed entry is what a terminal's posd.toml takes, and it matches the key file.
    let entry: toml::Table = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    let listed = &entry["broker"]["host_keys"][0];
    assert_eq!(listed["id"].as_integer(), Some(7));
    let signer = posd_sandbox::host::read_signing_key(&key).unwrap();
    assert_eq!(
        listed["public_key"].as_str(),
        Some(signer.public_hex().as_str())
    );
    assert_eq!(signer.key_id, 7);
}

#[test]
fn the_host_refuses_to_start_without_a_signing_key_unless_told_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("host.sqlite");
    let out = sandbox(&[
        "host",
        "--broker",
        "mqtt://127.0.0.1:1",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--host-key") && err.contains("host-key keygen"),
        "{err}"
    );
}
