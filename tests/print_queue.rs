//! The durable print queue through the real daemon and a TCP printer emulator: receipts wait
//! out a paper-out and print by themselves, nothing is printed twice across a power cut unless
//! asked (`reprint`), and the receipt drawn by `posctl receipt render` carries a QR that reads
//! back to the receipt reference.

mod common;
use common::*;
use posd_core::control as ctl;
use posd_core::receipt::RenderOptions;
use posd_sandbox::printer_emulator::{EmulatorScript, PrinterEmulator};
use std::time::Duration;

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_wait_for_paper_print_once_and_reprint_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let emu = PrinterEmulator::start(EmulatorScript {
        paper_out: true,
        ..EmulatorScript::default()
    })
    .await
    .unwrap();
    let nowhere = format!("mqtt://127.0.0.1:{}", free_port());
    let extra = format!(
        "{}[devices.printer]\nstatus = \"required\"\n[devices.printer.transport]\ntype = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n\n[receipt]\nshop_name = \"Noodle Bar\"\nwidth = 32\n",
        platform.offline_toml(""),
        emu.port()
    );
    let mut d = Daemon::start(&dir.path().join("t"), "T-PRINT", &nowhere, &extra);
    let mut w = platform.wallet(11, 100_000);
    let a = sale(&d, "12.50", &w.next_code()).await.unwrap();
    let b = sale(&d, "3.00", &w.next_code()).await.unwrap();
    let (ida, idb) = (
        a["txn_id"].as_str().unwrap().to_string(),
        b["txn_id"].as_str().unwrap().to_string(),
    );

    // Paper out: nothing prints, the jobs wait, the status says why.
    eventually(
        Duration::from_secs(10),
        "printer fault in status",
        || async {
            let mut c = d.client().await;
            let s = status(&mut c).await;
            s["devices"]["printer"]
                .as_str()
                .is_some_and(|p| p.contains("paper out"))
                .then_some(())
        },
    )
    .await;
    assert!(emu.printed().is_empty());
    let mut c = d.client().await;
    let jobs = c.call_json(ctl::PrintJobs { limit: None }).await.unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    assert!(jobs
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["state"] == "queued"));

    // Paper in: both print by themselves, in order, each once (merchant + customer copy).
    emu.set_paper_out(false);
    let opts = RenderOptions::for_width(posd_core::receipt::PaperWidth::Mm58);
    let text = eventually(Duration::from_secs(30), "both receipts printed", || async {
        let t = posd_core::receipt::render_text(&emu.printed(), &opts);
        (t.contains(&format!("[QR R1.T-PRINT.{idb}]")) && count(&t, "CUSTOMER COPY") == 2)
            .then_some(t)
    })
    .await;
    let qa = text.find(&format!("[QR R1.T-PRINT.{ida}]"));
    let qb = text.find(&format!("[QR R1.T-PRINT.{idb}]"));
    assert!(qa.is_some() && qa < qb, "printed in order");
    assert!(text.contains("Noodle Bar"));
    assert!(text.contains("APPROVED OFFLINE"));
    assert_eq!(count(&text, "MERCHANT COPY"), 2);

    // A power cut after printing: nothing is printed again.
    d.kill9();
    d.restart();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = posd_core::receipt::render_text(&emu.printed(), &opts);
    assert_eq!(
        count(&again, "MERCHANT COPY"),
        2,
        "no receipt printed twice"
    );

    // Unless asked.
    let mut c = d.client().await;
    c.call_json(ctl::Reprint {
        txn_id: Some(ida.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(15), "the reprint", || async {
        let t = posd_core::receipt::render_text(&emu.printed(), &opts);
        (count(&t, "MERCHANT COPY") == 3).then_some(())
    })
    .await;
    let t = posd_core::receipt::render_text(&emu.printed(), &opts);
    assert!(t.contains("REPRINT"));

    // Rendered without a printer: the QR reads back to the receipt reference.
    let v = c
        .call_json(ctl::Receipt {
            txn_id: Some(idb.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["escpos_b64"].as_str().unwrap())
        .unwrap();
    let png = posd_core::receipt::render_png(&bytes, &opts).unwrap();
    let file = dir.path().join("r.png");
    std::fs::write(&file, png).unwrap();
    let reports = posd::camera::scan_image_files(&[file]);
    let found: Vec<String> = reports[0]
        .payloads
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .collect();
    assert!(
        found.contains(&format!("R1.T-PRINT.{idb}")),
        "QR read {found:?}"
    );
}
