//! The printer job protocol against the TCP printer emulator: a good print, the cover open,
//! paper running out in the middle of a job, a dropped connection, a printer that never answers
//! status, an unreachable printer — and the retry that succeeds once the fault clears. Also the
//! file transport.

#[path = "common/receipt_fixtures.rs"]
mod fixtures;

use posd::config::devices::{PrinterConfig, StatusMode, Transport};
use posd::printer::{Fault, PrintOutcome, Printer};
use posd_core::receipt::charset::TextEncoding;
use posd_core::receipt::escpos_enc::{encode, PrinterProfile};
use posd_core::receipt::layout::{layout, PaperWidth};
use posd_sandbox::printer_emulator::{EmulatorScript, PrinterEmulator};

fn job() -> Vec<u8> {
    let cfg = fixtures::config(PaperWidth::Mm80, TextEncoding::Gb18030, false);
    let bytes = encode(
        &layout(&fixtures::sale(), &cfg),
        &PrinterProfile::from_config(&cfg),
    )
    .expect("encode");
    assert!(
        bytes.len() > 2000,
        "raster job should be large: {}",
        bytes.len()
    );
    bytes
}

/// Compares jobs without printing kilobytes of bytes on failure.
#[track_caller]
fn same(got: Vec<u8>, want: &[u8]) {
    let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "got {} bytes, want {}; first difference at {first_diff:?}",
        got.len(),
        want.len()
    );
}

fn printer(emu: &PrinterEmulator, status: StatusMode) -> Printer {
    let mut cfg = PrinterConfig::new(Transport::Tcp {
        host: "127.0.0.1".into(),
        port: emu.port(),
    });
    cfg.status = status;
    cfg.status_timeout_ms = 300;
    Printer::new(cfg)
}

#[tokio::test]
async fn good_printer_prints_the_whole_job() {
    let emu = PrinterEmulator::start(EmulatorScript::default())
        .await
        .unwrap();
    let job = job();
    let out = printer(&emu, StatusMode::Auto).print(&job).await;
    match out {
        PrintOutcome::Printed { status: Some(st) } => assert!(st.online && !st.paper_near_end),
        other => panic!("{other:?}"),
    }
    same(emu.printed(), &job);
    assert_eq!(emu.status_queries(), 6);
}

#[tokio::test]
async fn cover_open_sends_nothing_then_prints_when_closed() {
    let emu = PrinterEmulator::start(EmulatorScript {
        cover_open: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let p = printer(&emu, StatusMode::Auto);
    let job = job();
    assert_eq!(p.print(&job).await, PrintOutcome::Fault(Fault::CoverOpen));
    assert!(emu.received().is_empty());
    assert_eq!(p.status().await.unwrap().map(|s| s.cover_open), Some(true));
    emu.set_cover_open(false);
    assert!(matches!(p.print(&job).await, PrintOutcome::Printed { .. }));
    same(emu.printed(), &job);
}

#[tokio::test]
async fn paper_out_mid_job_is_a_fault_and_the_retry_prints_it_all() {
    let job = job();
    let half = job.len() / 2;
    let emu = PrinterEmulator::start(EmulatorScript {
        paper_out_after: Some(half),
        ..Default::default()
    })
    .await
    .unwrap();
    let p = printer(&emu, StatusMode::Auto);
    assert_eq!(p.print(&job).await, PrintOutcome::Fault(Fault::PaperOut));
    assert_eq!(emu.printed().len(), half);
    same(emu.received(), &job);
    // Still out: refused before sending.
    emu.clear();
    assert_eq!(p.print(&job).await, PrintOutcome::Fault(Fault::PaperOut));
    assert!(emu.received().is_empty());
    // Refilled.
    emu.set_paper_out(false);
    assert!(matches!(p.print(&job).await, PrintOutcome::Printed { .. }));
    same(emu.printed(), &job);
}

#[tokio::test]
async fn dropped_connection_is_a_fault_and_the_retry_prints() {
    let emu = PrinterEmulator::start(EmulatorScript {
        drop_after: Some(100),
        ..Default::default()
    })
    .await
    .unwrap();
    let p = printer(&emu, StatusMode::Auto);
    let job = job();
    match p.print(&job).await {
        PrintOutcome::Fault(Fault::Disconnected(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.received().len(), 100);
    emu.clear();
    assert!(matches!(p.print(&job).await, PrintOutcome::Printed { .. }));
    same(emu.printed(), &job);
    assert_eq!(emu.connections(), 2);
}

#[tokio::test]
async fn paper_near_end_still_prints_and_says_so() {
    let emu = PrinterEmulator::start(EmulatorScript {
        near_end: true,
        ..Default::default()
    })
    .await
    .unwrap();
    match printer(&emu, StatusMode::Auto).print(&job()).await {
        PrintOutcome::Printed { status: Some(st) } => assert!(st.paper_near_end),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn silent_printer_prints_blind_in_auto_and_is_offline_when_required() {
    let emu = PrinterEmulator::start(EmulatorScript {
        silent: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let job = job();
    assert_eq!(
        printer(&emu, StatusMode::Auto).print(&job).await,
        PrintOutcome::Printed { status: None }
    );
    emu.wait_closed(1).await;
    same(emu.printed(), &job);
    emu.clear();
    assert_eq!(
        printer(&emu, StatusMode::Required).print(&job).await,
        PrintOutcome::Fault(Fault::Offline)
    );
    assert!(emu.received().is_empty());
    emu.clear();
    let off = printer(&emu, StatusMode::Off);
    assert_eq!(
        off.print(&job).await,
        PrintOutcome::Printed { status: None }
    );
    emu.wait_closed(3).await;
    same(emu.printed(), &job);
}

#[tokio::test]
async fn status_off_never_asks() {
    let emu = PrinterEmulator::start(EmulatorScript::default())
        .await
        .unwrap();
    let job = job();
    assert_eq!(
        printer(&emu, StatusMode::Off).print(&job).await,
        PrintOutcome::Printed { status: None }
    );
    emu.wait_closed(1).await;
    assert_eq!(emu.status_queries(), 0);
    same(emu.printed(), &job);
}

#[tokio::test]
async fn unreachable_printer_is_a_fault() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = Printer::new(PrinterConfig::new(Transport::Tcp {
        host: "127.0.0.1".into(),
        port,
    }));
    assert!(matches!(
        p.print(b"x").await,
        PrintOutcome::Fault(Fault::Unreachable(_))
    ));
    assert!(matches!(p.status().await, Err(Fault::Unreachable(_))));
}

#[tokio::test]
async fn file_transport_appends_the_job() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("receipt-file-printer");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lp0");
    let _ = std::fs::remove_file(&path);
    let p = Printer::new(PrinterConfig::new(Transport::File { path: path.clone() }));
    let job = job();
    assert_eq!(p.print(&job).await, PrintOutcome::Printed { status: None });
    assert_eq!(p.print(&job).await, PrintOutcome::Printed { status: None });
    same(std::fs::read(&path).unwrap(), &[job.clone(), job].concat());
    assert_eq!(p.status().await, Ok(None));
    let missing = Printer::new(PrinterConfig::new(Transport::File {
        path: dir.join("no/such/dir/lp0"),
    }));
    assert!(matches!(
        missing.print(b"x").await,
        PrintOutcome::Fault(Fault::Unreachable(_))
    ));
}

#[tokio::test]
async fn missing_serial_and_usb_printers_fail_cleanly() {
    let serial = Printer::new(PrinterConfig::new(Transport::Serial {
        path: "/dev/posd-no-such-tty".into(),
        baud: 9600,
    }));
    assert!(matches!(
        serial.print(b"x").await,
        PrintOutcome::Fault(Fault::Unreachable(_) | Fault::Unsupported(_))
    ));
    let usb = Printer::new(PrinterConfig::new(Transport::Usb {
        vendor_id: 0xFFFF,
        product_id: 0xFFFE,
    }));
    assert!(matches!(
        usb.print(b"x").await,
        PrintOutcome::Fault(Fault::Unreachable(_) | Fault::Unsupported(_))
    ));
}

/// The blocking path (escpos' `SerialPortDriver` in `spawn_blocking`) against a printer played
/// on the other end of a pseudo-terminal: status before and after, the whole job in between.
#[cfg(feature = "printer-serial")]
#[tokio::test]
async fn serial_printer_through_a_pseudo_terminal() {
    use serialport::SerialPort;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let cfg = fixtures::config(PaperWidth::Mm58, TextEncoding::Cp858, true);
    let job = encode(
        &layout(&fixtures::sale(), &cfg),
        &PrinterProfile::from_config(&cfg),
    )
    .unwrap();
    // The naive printer below needs no command parsing: no DLE in a native-QR text job.
    assert!(!job.contains(&0x10));

    let (mut master, slave) = serialport::TTYPort::pair().expect("pty pair");
    let path = slave.name().expect("pty name");
    master
        .set_timeout(std::time::Duration::from_millis(50))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let printer_side = std::thread::spawn(move || {
        let (mut got, mut pending, mut queries) = (Vec::new(), Vec::new(), 0);
        let mut buf = [0u8; 4096];
        while !stop2.load(Ordering::Relaxed) {
            match master.read(&mut buf) {
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => break,
            }
            let mut i = 0;
            while i < pending.len() {
                if pending[i] == 0x10 {
                    if i + 2 >= pending.len() {
                        break;
                    }
                    queries += 1;
                    let _ = master.write_all(&[0x12]);
                    i += 3;
                } else {
                    got.push(pending[i]);
                    i += 1;
                }
            }
            pending.drain(..i);
        }
        (got, queries)
    });

    let mut pc = PrinterConfig::new(Transport::Serial {
        path,
        baud: 115_200,
    });
    pc.status = StatusMode::Required;
    let out = Printer::new(pc).print(&job).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (got, queries) = printer_side.join().unwrap();
    drop(slave);
    assert!(
        matches!(out, PrintOutcome::Printed { status: Some(st) } if st.online),
        "{out:?}"
    );
    assert_eq!(queries, 6);
    same(got, &job);
}
