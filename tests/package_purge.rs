//! A purge must not delete money the payment host has not heard of: the package's real
//! maintainer scripts (packaging/debian/prerm and postrm) run, under DPKG_ROOT, against journals
//! made by posd's store — one with unacknowledged events (kept aside, and said so), one fully
//! acknowledged (deleted, silently), one that is not a journal (kept: it cannot be counted) —
//! the way dpkg runs them: prerm remove, the files go, postrm remove, postrm purge.

use posd::store::Db;
use posd_core::money::Currency;
use posd_core::txn::{Method, Transaction, TxnKind, TxnState};
use std::path::{Path, PathBuf};
use std::process::Command;

const NOW: u64 = 1_790_000_000_000;

/// A box's root for DPKG_ROOT: the installed `posd` (this build's) and the state directory.
struct Box {
    root: tempfile::TempDir,
    /// A PATH of the few tools the scripts use: no deb-systemd-helper, systemctl or udevadm
    /// of the machine running the test is reached.
    bin: PathBuf,
}

impl Box {
    fn new() -> Box {
        let root = tempfile::tempdir().unwrap();
        let usr_bin = root.path().join("usr/bin");
        std::fs::create_dir_all(&usr_bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_posd"), usr_bin.join("posd")).unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/posd")).unwrap();
        std::fs::create_dir_all(root.path().join("etc/posd/tls")).unwrap();
        let bin = root.path().join("test-bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in ["sh", "rm", "mv", "date", "cat", "rmdir"] {
            let found = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("no {tool} in /usr/bin or /bin"));
            std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
        }
        Box { root, bin }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.path().join(p.trim_start_matches('/'))
    }

    fn journal(&self) -> PathBuf {
        self.path("/var/lib/posd/posd.sqlite")
    }

    /// Runs a maintainer script; returns what it said on stderr.
    fn script(&self, name: &str, arg: &str, purge_unsynced: bool) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("packaging/debian")
            .join(name);
        let mut cmd = Command::new(self.bin.join("sh"));
        cmd.arg(&script)
            .arg(arg)
            .env_clear()
            .env("PATH", &self.bin)
            .env("DPKG_ROOT", self.root.path());
        if purge_unsynced {
            cmd.env("POSD_PURGE_UNSYNCED", "1");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{name} {arg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// dpkg --purge: prerm remove, the package's files go, postrm remove, postrm purge.
    /// Returns everything the scripts said.
    fn purge(&self, purge_unsynced: bool) -> String {
        let mut said = self.script("prerm", "remove", purge_unsynced);
        std::fs::remove_file(self.path("/usr/bin/posd")).unwrap();
        said += &self.script("postrm", "remove", purge_unsynced);
        said += &self.script("postrm", "purge", purge_unsynced);
        said
    }

    /// The directories the purge kept aside.
    fn kept(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path("/var/lib"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("posd-unsynced-")
            })
            .collect()
    }
}

/// A journal with `n` sales recorded by the store, the first `acked` of them acknowledged.
fn journal(path: &Path, n: usize, acked: usize) -> Db {
    let mut db = Db::open(path).unwrap();
    let mut seqs = Vec::new();
    for i in 0..n {
        let t = Transaction::new(
            TxnKind::Sale,
            Method::PaymentCode,
            1250,
            Currency::from_code("CNY").unwrap(),
            TxnState::Approved,
            NOW + i as u64,
            [i as u8; 10],
        );
        seqs.push(db.record(&t).unwrap());
    }
    if acked > 0 {
        db.ack(seqs[acked - 1]).unwrap();
    }
    db
}

#[test]
fn purge_keeps_a_journal_with_unacknowledged_events_aside_and_says_so() {
    let b = Box::new();
    // The daemon still holds the journal open (prerm runs before it is stopped).
    let db = journal(&b.journal(), 3, 1);
    let pending = db.queue_stats(NOW).unwrap().pending;
    assert_eq!(pending, 2, "the store's own count");
    let said = b.purge(false);
    drop(db);
    assert!(
        said.contains("posd: 2 event(s) in the journal the payment host does not have in full (unacknowledged or set aside)"),
        "prerm said: {said}"
    );
    assert!(
        !b.path("/var/lib/posd").exists(),
        "the journal is still in place"
    );
    let kept = b.kept();
    assert_eq!(kept.len(), 1, "kept: {kept:?}");
    let at = Path::new("/var/lib").join(kept[0].file_name().unwrap());
    assert!(
        said.contains(&format!(
            "posd: the journal held 2 event(s) the payment host had not acknowledged: kept in {}, not deleted",
            at.display()
        )),
        "postrm said: {said}"
    );
    // Kept whole: the events are still there to be sent.
    assert_eq!(
        posd::store::pending_events(&kept[0].join("posd.sqlite")).unwrap(),
        2
    );
    // The rest of the package's state is gone as usual.
    assert!(!b.path("/etc/posd").exists());
}

#[test]
fn purge_deletes_a_fully_acknowledged_journal_without_a_word() {
    let b = Box::new();
    let db = journal(&b.journal(), 3, 3);
    assert_eq!(db.queue_stats(NOW).unwrap().pending, 0);
    let said = b.purge(false);
    drop(db);
    assert!(said.is_empty(), "the scripts said: {said}");
    assert!(!b.path("/var/lib/posd").exists(), "purge left the journal");
    assert!(b.kept().is_empty(), "kept: {:?}", b.kept());
}

#[test]
fn purge_keeps_a_journal_it_cannot_read() {
    let b = Box::new();
    std::fs::write(b.journal(), "not a journal").unwrap();
    let said = b.purge(false);
    assert!(
        said.contains("posd: the journal could not be read (/")
            && said.contains("it may hold events the payment host has not acknowledged"),
        "prerm said: {said}"
    );
    assert!(
        said.contains("posd: the journal (unreadable) may hold events the payment host had not acknowledged: kept in /var/lib/posd-unsynced-"),
        "postrm said: {said}"
    );
    assert_eq!(b.kept().len(), 1);
}

#[test]
fn purge_with_posd_purge_unsynced_deletes_unacknowledged_events() {
    let b = Box::new();
    drop(journal(&b.journal(), 2, 0));
    let said = b.purge(true);
    // prerm still says what is there; postrm deletes it as asked.
    assert!(
        said.contains("posd: 2 event(s) in the journal"),
        "said: {said}"
    );
    assert!(!said.contains("kept in"), "said: {said}");
    assert!(!b.path("/var/lib/posd").exists());
    assert!(b.kept().is_empty());
}

#[test]
fn pending_events_counts_what_the_store_has_not_had_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posd.sqlite");
    let db = journal(&path, 5, 2);
    let out = Command::new(env!("CARGO_BIN_EXE_posd"))
        .arg("pending-events")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "3\n");
    assert_eq!(db.queue_stats(NOW).unwrap().pending, 3);
    // A missing journal is an error, said once, not a zero.
    let out = Command::new(env!("CARGO_BIN_EXE_posd"))
        .arg("pending-events")
        .arg(dir.path().join("none.sqlite"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("none.sqlite"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn an_event_set_aside_counts_as_not_synced_even_after_its_stub_is_acknowledged() {
    use posd_core::protocol::limits::SetAsideReason;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posd.sqlite");
    let mut db = journal(&path, 3, 0);
    // The second event is set aside; then the host acknowledges all three (the stub included).
    let aside = db.set_aside(2, SetAsideReason::TooLarge, 10, NOW).unwrap();
    assert!(aside.is_some());
    assert_eq!(posd::store::pending_events(&path).unwrap(), 3);
    db.ack(3).unwrap();
    assert_eq!(db.queue_stats(NOW).unwrap().pending, 0);
    // The host holds only the stub: a purge must not delete the one full copy without a word.
    assert_eq!(posd::store::pending_events(&path).unwrap(), 1);
}
