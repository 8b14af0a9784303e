//! The printer job protocol against the TCP printer emulator: a good print, the cover open,
//! paper running out in the middle of a job, a dropped connection, a printer that never answers
//! status, an unreachable printer — and the retry that succeeds once the fault clears. A printer
//! that confirms jobs (`GS ( H`) held through paper out and resuming from its own buffer, what
//! it confirmed before a disconnect or a hang, health checks without a job, the name it
//! reports. Also the file transport.

#[path = "common/receipt_fixtures.rs"]
mod fixtures;

use posd::config::devices::{PrinterConfig, StatusMode, Transport};
use posd::printer::{Check, Fault, Job, JobEnd, JobEvent, PrintOutcome, Printer};
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
    // A printer that drops what it had buffered when the paper is refilled: the retry is the
    // only copy. (One that keeps it is below: the queue must not send it again unmarked.)
    let emu = PrinterEmulator::start(EmulatorScript {
        paper_out_after: Some(half),
        clear_buffer_on_recovery: true,
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

/// Two parts (the merchant and the customer copy), as the queue sends them.
fn two_parts() -> Vec<Vec<u8>> {
    let cfg = fixtures::config(PaperWidth::Mm80, TextEncoding::Gb18030, true);
    let profile = PrinterProfile::from_config(&cfg);
    posd_core::receipt::layout_copies(&fixtures::sale(), &cfg)
        .iter()
        .map(|r| encode(r, &profile).expect("encode"))
        .collect()
}

/// Runs a job to its end, answering the queue's side of the protocol; returns the end and the
/// events seen.
async fn run_job(
    p: &Printer,
    parts: &[Vec<u8>],
    first: usize,
    confirm: bool,
) -> (JobEnd, Vec<String>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let job = Job {
        parts,
        first,
        confirm,
        tag: 7,
    };
    let run = p.run(&job, &tx);
    tokio::pin!(run);
    let mut seen = Vec::new();
    let end = loop {
        tokio::select! {
            end = &mut run => break end,
            Some(ev) = rx.recv() => match ev {
                JobEvent::Sending(ack) => {
                    seen.push("sending".to_string());
                    let _ = ack.send(());
                }
                JobEvent::Status(st) => seen.push(format!("status paper_out={}", st.paper_out)),
                JobEvent::PartsDone(n) => seen.push(format!("done {n}")),
            },
        }
    };
    while let Ok(ev) = rx.try_recv() {
        if let JobEvent::PartsDone(n) = ev {
            seen.push(format!("done {n}"));
        }
    }
    (end, seen)
}

fn fast(emu: &PrinterEmulator) -> Printer {
    let mut cfg = PrinterConfig::new(Transport::Tcp {
        host: "127.0.0.1".into(),
        port: emu.port(),
    });
    cfg.status_timeout_ms = 300;
    cfg.fault_poll_ms = 200;
    cfg.confirm_timeout_ms = 2_000;
    Printer::new(cfg)
}

#[tokio::test]
async fn a_printer_that_keeps_its_buffer_prints_the_rest_after_the_paper_is_refilled() {
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
    assert_eq!(emu.buffered(), job.len() - half);
    emu.set_paper_out(false);
    // Nothing sent again: the printer finished the job from its own buffer.
    same(emu.printed(), &job);
    assert_eq!(emu.buffered(), 0);
}

#[tokio::test]
async fn a_confirming_printer_is_held_through_paper_out_and_nothing_is_sent_twice() {
    let parts = two_parts();
    let emu = PrinterEmulator::start(EmulatorScript {
        process_id: true,
        paper_out_after: Some(parts[0].len() / 2),
        ..Default::default()
    })
    .await
    .unwrap();
    let p = fast(&emu);
    let refill = async {
        // The job is out and stopped: refill once the printer has said "paper out".
        while emu.printed().len() < parts[0].len() / 2 || emu.status_queries() < 6 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        emu.set_paper_out(false);
    };
    let ((end, seen), ()) = tokio::join!(run_job(&p, &parts, 0, true), refill);
    assert!(
        matches!(end, JobEnd::Printed { status: Some(_) }),
        "{end:?}"
    );
    assert!(
        seen.contains(&"status paper_out=true".to_string()),
        "{seen:?}"
    );
    assert!(seen.contains(&"done 2".to_string()), "{seen:?}");
    same(emu.printed(), &parts.concat());
    assert_eq!(emu.process_ids().len(), 2);
    assert_eq!(
        emu.connections(),
        1,
        "held on one connection, nothing resent"
    );
}

#[tokio::test]
async fn a_disconnect_after_the_first_copy_leaves_only_the_second_uncertain() {
    let parts = two_parts();
    let emu = PrinterEmulator::start(EmulatorScript {
        process_id: true,
        drop_after: Some(parts[0].len() + 11 + 50),
        ..Default::default()
    })
    .await
    .unwrap();
    let (end, _) = run_job(&fast(&emu), &parts, 0, true).await;
    match end {
        JobEnd::Uncertain { done, .. } => assert_eq!(done, 1),
        other => panic!("{other:?}"),
    }
    // The rest, resumed from part 1, prints the second copy only.
    emu.clear();
    let (end, _) = run_job(&fast(&emu), &parts, 1, true).await;
    assert!(matches!(end, JobEnd::Printed { .. }), "{end:?}");
    same(emu.printed(), &parts[1]);
}

#[tokio::test]
async fn silence_in_the_middle_of_a_job_is_uncertain_not_printed() {
    let parts = two_parts();
    for confirm in [false, true] {
        let emu = PrinterEmulator::start(EmulatorScript {
            process_id: confirm,
            hang_after: Some(parts[0].len() / 3),
            ..Default::default()
        })
        .await
        .unwrap();
        let (end, seen) = run_job(&fast(&emu), &parts, 0, confirm).await;
        assert!(
            matches!(
                end,
                JobEnd::Uncertain {
                    fault: Fault::Offline,
                    done: 0
                }
            ),
            "confirm {confirm}: {end:?} {seen:?}"
        );
        assert!(emu.is_hung());
        let p = fast(&emu);
        assert!(matches!(p.check().await, Check::NotAnswering(_)));
        emu.recover();
        assert!(matches!(p.check().await, Check::Status(st) if st.online));
    }
}

#[tokio::test]
async fn health_is_checked_without_a_job() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed = Printer::new(PrinterConfig::new(Transport::Tcp {
        host: "127.0.0.1".into(),
        port,
    }));
    assert!(matches!(closed.check().await, Check::Unreachable(d) if d.contains("refused")));
    let silent = PrinterEmulator::start(EmulatorScript {
        silent: true,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(matches!(
        fast(&silent).check().await,
        Check::NotAnswering(_)
    ));
    let emu = PrinterEmulator::start(EmulatorScript {
        near_end: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let p = fast(&emu);
    match p.check().await {
        Check::Status(st) => assert!(st.online && st.paper_near_end && !st.paper_out),
        other => panic!("{other:?}"),
    }
    emu.set_cover_open(true);
    assert!(matches!(p.check().await, Check::Status(st) if st.cover_open && !st.online));
    assert!(emu.received().is_empty(), "a health check prints nothing");
}

#[tokio::test]
async fn the_printer_reports_its_name() {
    let emu = PrinterEmulator::start(EmulatorScript {
        name: Some("TM-T20III".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(fast(&emu).identify().await.as_deref(), Some("TM-T20III"));
    let quiet = PrinterEmulator::start(EmulatorScript::default())
        .await
        .unwrap();
    assert_eq!(fast(&quiet).identify().await, None);
}
