//! The serial scanner against pseudo-terminal pairs: each suffix mode, garbage and NUL bytes,
//! prefix stripping, and a port that disappears and comes back (a `by-id`-style symlink
//! re-pointed at a new pty, as udev does for a replugged scanner).

use posd::config::devices::{SerialScannerConfig, Suffix};
use posd::devices::serial_scanner::{self, Frame, Framer};
use posd::devices::{status_channel, DeviceStatus};
use posd::engine::EngineMsg;
use serialport::{SerialPort, TTYPort};
use std::io::Write;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

struct Running {
    rx: mpsc::Receiver<EngineMsg>,
    status: watch::Receiver<DeviceStatus>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(cfg: SerialScannerConfig) -> Running {
    let (tx, rx) = mpsc::channel(16);
    let (st_tx, status) = status_channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::task::spawn_blocking(move || {
        serial_scanner::run(cfg, "serial_scanner", tx, st_tx, stop_rx)
    });
    Running {
        rx,
        status,
        stop,
        task,
    }
}

impl Running {
    async fn code(&mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(20), self.rx.recv()).await {
            Ok(Some(EngineMsg::Code { text, source })) => {
                assert_eq!(source, "serial_scanner");
                text
            }
            Ok(_) => panic!("scanner ended or sent something else"),
            Err(_) => panic!("no code arrived"),
        }
    }

    async fn wait(&mut self, kind: &str) -> DeviceStatus {
        let f = self.status.wait_for(|s| s.kind() == kind);
        tokio::time::timeout(Duration::from_secs(20), f)
            .await
            .expect("status never reached")
            .unwrap()
            .clone()
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

fn pair() -> (TTYPort, TTYPort, String) {
    let (master, slave) = TTYPort::pair().expect("pty pair");
    let name = slave.name().expect("pts name");
    (master, slave, name)
}

fn cfg(port: &str, suffix: Suffix) -> SerialScannerConfig {
    SerialScannerConfig {
        port: port.to_string(),
        suffix,
        idle_timeout_ms: 60,
        reconnect_ms: 20,
        ..SerialScannerConfig::default()
    }
}

#[tokio::test]
async fn each_suffix_mode_over_a_pty() {
    for (suffix, wire) in [
        (Suffix::Cr, &b"CODE-CR\rSECOND\r"[..]),
        (Suffix::Lf, &b"CODE-LF\nSECOND\n"[..]),
        (Suffix::Crlf, &b"CODE-CRLF\r\nSECOND\r\n"[..]),
    ] {
        let (mut master, _slave, name) = pair();
        let mut s = start(cfg(&name, suffix));
        s.wait("ok").await;
        master.write_all(wire).unwrap();
        let first = s.code().await;
        assert!(first.starts_with("CODE-"), "{suffix:?}: {first}");
        assert_eq!(s.code().await, "SECOND", "{suffix:?}");
        s.stop().await;
    }
    // No suffix: the idle timeout ends the code.
    let (mut master, _slave, name) = pair();
    let mut s = start(cfg(&name, Suffix::None));
    s.wait("ok").await;
    master.write_all(b"NO-SUFFIX-CODE").unwrap();
    assert_eq!(s.code().await, "NO-SUFFIX-CODE");
    s.stop().await;
}

#[tokio::test]
async fn garbage_and_nul_bytes_do_not_reach_the_sale() {
    let (mut master, _slave, name) = pair();
    let mut s = start(cfg(&name, Suffix::Cr));
    s.wait("ok").await;
    // Not UTF-8: dropped whole. NUL and control bytes inside a code: removed.
    master.write_all(b"\xff\xfe\xfd\r").unwrap();
    master.write_all(b"\0\0\x01AB\0C\x7f\r").unwrap();
    assert_eq!(s.code().await, "ABC");
    // A frame of nothing but noise produces no code.
    master.write_all(b"\0\0\0\r\x02\x03\rNEXT\r").unwrap();
    assert_eq!(s.code().await, "NEXT");
    s.stop().await;
}

#[tokio::test]
async fn the_prefix_is_stripped() {
    let (mut master, _slave, name) = pair();
    let mut c = cfg(&name, Suffix::Crlf);
    c.strip_prefix = Some("]Q1".into());
    let mut s = start(c);
    s.wait("ok").await;
    master.write_all(b"]Q1PAYLOAD-1\r\nNOPREFIX\r\n").unwrap();
    assert_eq!(s.code().await, "PAYLOAD-1");
    assert_eq!(s.code().await, "NOPREFIX");
    s.stop().await;
}

#[tokio::test]
async fn a_port_that_disappears_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("usb-Scanner-if00");
    let (mut master, slave, name) = pair();
    std::os::unix::fs::symlink(&name, &link).unwrap();
    let mut s = start(cfg(link.to_str().unwrap(), Suffix::Cr));
    s.wait("ok").await;
    master.write_all(b"BEFORE\r").unwrap();
    assert_eq!(s.code().await, "BEFORE");
    // Unplug: half a code, then the device and its link vanish.
    master.write_all(b"HALF-A-CO").unwrap();
    master.flush().unwrap();
    drop(master);
    drop(slave);
    std::fs::remove_file(&link).unwrap();
    let st = s.wait("absent").await;
    assert!(st.to_string().starts_with("absent"), "{st}");
    // Replug: a new pty behind the same stable name.
    let (mut master2, _slave2, name2) = pair();
    std::os::unix::fs::symlink(&name2, &link).unwrap();
    s.wait("ok").await;
    master2.write_all(b"AFTER\r").unwrap();
    // The half code from before the unplug is gone, not glued to this one.
    assert_eq!(s.code().await, "AFTER");
    s.stop().await;
}

#[tokio::test]
async fn a_missing_port_is_a_status_not_a_crash() {
    let mut s = start(cfg("/nonexistent/ttyUSB9", Suffix::Cr));
    let st = s.wait("absent").await;
    assert!(st.to_string().contains("/nonexistent/ttyUSB9"));
    s.stop().await;
    // A bad configuration is an error status.
    let mut s = start(SerialScannerConfig {
        data_bits: 9,
        ..cfg("/dev/null", Suffix::Cr)
    });
    s.wait("error").await;
    s.stop().await;
}

#[test]
fn framer_splits_across_reads_and_drops_what_it_must() {
    let mut f = Framer::new(Suffix::Crlf, None, 8);
    assert!(f.feed(b"ABC").is_empty());
    assert!(f.feed(b"D\r").is_empty());
    assert_eq!(
        f.feed(b"\nEF\r\n"),
        vec![Frame::Code("ABCD".into()), Frame::Code("EF".into())]
    );
    // Too long: dropped whole.
    assert_eq!(
        f.feed(b"123456789\r\n"),
        vec![Frame::Dropped {
            bytes: 9,
            reason: "too long"
        }]
    );
    // A partial frame when the line goes quiet is dropped (suffix modes) ...
    f.feed(b"PART");
    assert!(matches!(f.idle(), Some(Frame::Dropped { bytes: 4, .. })));
    assert_eq!(f.idle(), None);
    // ... and is the code in suffix-less mode.
    let mut f = Framer::new(Suffix::None, Some("]C0".into()), 64);
    f.feed(b"]C0xyz");
    assert_eq!(f.idle(), Some(Frame::Code("xyz".into())));
    // CR mode tolerates a device that sends CRLF.
    let mut f = Framer::new(Suffix::Cr, None, 64);
    assert_eq!(
        f.feed(b"A\r\nB\r\n"),
        vec![Frame::Code("A".into()), Frame::Code("B".into())]
    );
}
