//! The shop's language through a real mosquitto, the real posd binary, the printer emulator and
//! a customer display on a pseudo-terminal (issue 15 item 6): a fleet push of
//! `terminal.language` switches, without a restart, the next receipt (printed in the printer's
//! Chinese mode for zh-CN), the cashier's console, the customer display and the refusal reasons
//! — while the refusal's machine code stays English.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use posd::control::ControlError;
use posd::fleet::tool::{self, Broker, KeyFile};
use posd_core::receipt::PaperWidth;
use posd_sandbox::printer_emulator::{EmulatorScript, PrinterEmulator};
use serde_json::{json, Map, Value};
use serialport::{SerialPort, TTYPort};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("object"),
    }
}

async fn push(m: &Mosquitto, k: &KeyFile, terminal: &str, version: u64, cfg: Value) {
    let body = tool::sign_config(k, terminal, version, obj(cfg)).expect("sign");
    let b = Broker {
        url: m.url(),
        prefix: "pos/v1".into(),
        client_id: format!("lang-test-{}", fastrand::u64(..)),
        tls: None,
    };
    tool::publish(&b, &b.cfg_topic(terminal), body, true)
        .await
        .expect("publish");
}

/// Waits until the terminal reports `version` applied.
async fn applied(d: &Daemon, version: u64) {
    eventually(WAIT, "the push applied", || async {
        let mut c = d.client().await;
        let s = status(&mut c).await;
        (s["config"]["version"] == version && s["config"]["state"] == "applied").then_some(())
    })
    .await
}

/// Everything the customer display received, read from the pty's master side.
fn read_display(mut master: TTYPort) -> Arc<Mutex<Vec<u8>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    master
        .set_timeout(Duration::from_millis(100))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        loop {
            match master.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => return,
            }
        }
    });
    got
}

/// A P1 sale; returns the transaction id.
async fn sell(d: &Daemon, w: &mut Wallet, amount: &str) -> String {
    let r = sale(d, amount, &w.next_code()).await.expect("sale");
    assert_eq!(r["result"], "approved", "{r}");
    r["txn_id"].as_str().unwrap().to_string()
}

/// The refusal of a sale over `[limits] max_sale_amount`: its code and its message.
async fn over_limit(d: &Daemon) -> String {
    match sale(d, "5000.00", "134567890123456789").await {
        Err(ControlError::Refused { code, message }) => {
            assert_eq!(code, "over_limit", "the machine code stays English");
            message
        }
        other => panic!("a sale over the limit must be refused: {other:?}"),
    }
}

/// The printed text since `from` (a length of `printed_text` before the sale) once both copies
/// of the receipt of `txn` printed.
async fn receipt_text(emu: &PrinterEmulator, txn: &str, from: usize) -> String {
    let qr = format!("[QR R1.T-LANG.{txn}]");
    eventually(WAIT, "the receipt printed", || async {
        let t = emu.printed_text(PaperWidth::Mm58);
        let t = t.get(from..)?;
        (t.matches(&qr).count() == 2 && t.contains(" --\n")).then(|| t.to_string())
    })
    .await
}

fn printed_len(emu: &PrinterEmulator) -> usize {
    emu.printed_text(PaperWidth::Mm58).len()
}

/// What the display showed after `from` bytes, as text (ASCII only reaches it).
fn display_since(got: &Arc<Mutex<Vec<u8>>>, from: usize) -> String {
    let g = got.lock().unwrap();
    String::from_utf8_lossy(&g[from.min(g.len())..]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_push_switches_the_language_of_receipts_screens_and_refusals() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let k = KeyFile::from_key("ops-1", &SigningKey::from_bytes(&[3; 32]));
    let emu = PrinterEmulator::start(EmulatorScript::default())
        .await
        .unwrap();
    let (master, slave) = TTYPort::pair().expect("pty pair");
    let display_port = slave.name().expect("pts name");
    let display = read_display(master);
    // A Chinese 58 mm printer: GB18030 (the default encoding), Chinese mode (`FS &`).
    let extra = format!(
        "{}[fleet]\n{}\n[limits]\nmax_sale_amount = 100000\n\n[devices]\nconsole = true\n\
         [devices.customer_display]\nport = \"{display_port}\"\nreconnect_ms = 100\n\
         [devices.printer]\nstatus = \"required\"\n[devices.printer.transport]\ntype = \"tcp\"\n\
         host = \"127.0.0.1\"\nport = {}\n\n[receipt]\nshop_name = \"Lotus\"\nwidth = 32\n\
         printer_model = \"xprinter_xp58\"\ncopies = [\"merchant\", \"customer\"]\n",
        platform.offline_toml(""),
        k.toml_entry(),
        emu.port()
    );
    let d = Daemon::start(&dir.path().join("t"), "T-LANG", &m.url(), &extra);
    wait_online(&d).await;
    let mut w = platform.wallet(21, 1_000_000);

    // English by default.
    let from = printed_len(&emu);
    let en = sell(&d, &mut w, "12.50").await;
    let text = receipt_text(&emu, &en, from).await;
    assert!(
        text.contains("SALE") && text.contains("APPROVED OFFLINE"),
        "{text}"
    );
    assert!(over_limit(&d).await.contains("is above the limit"));

    // zh-CN, pushed: no restart, the next texts are Chinese.
    let shown = display.lock().unwrap().len();
    let out_len = std::fs::read(d.stdout_path()).map(|b| b.len()).unwrap_or(0);
    push(
        &m,
        &k,
        "T-LANG",
        1,
        json!({"terminal": {"language": "zh-CN"}}),
    )
    .await;
    applied(&d, 1).await;
    let from = printed_len(&emu);
    let zh = sell(&d, &mut w, "8.80").await;
    let text = receipt_text(&emu, &zh, from).await;
    for want in [
        "消费",
        "离线交易成功",
        "合计",
        "离线码",
        "商户存根",
        "客户存根",
        "8.80",
    ] {
        assert!(
            text.contains(want),
            "no {want} in the zh-CN receipt:\n{text}"
        );
    }
    assert!(!text.contains("SALE") && !text.contains('?'), "{text}");
    // Printed in the printer's Chinese mode: `FS &` and GB18030 bytes of "消费".
    let bytes = emu.printed();
    assert!(bytes.windows(2).any(|w| w == [0x1C, b'&']));
    assert!(bytes.windows(4).any(|w| w == [0xCF, 0xFB, 0xB7, 0xD1]));
    let refused = over_limit(&d).await;
    assert!(refused.contains("超过限额"), "{refused}");
    let console = eventually(WAIT, "the console's Chinese result", || async {
        let out = std::fs::read(d.stdout_path()).ok()?;
        let t = String::from_utf8_lossy(out.get(out_len..)?).into_owned();
        t.contains(&format!("{zh}: 离线交易成功")).then_some(t)
    })
    .await;
    assert!(!console.contains("APPROVED OFFLINE"), "{console}");
    // The 2x20 display shows ASCII only: English there, never `?` for the Chinese texts.
    let vfd = eventually(WAIT, "the display's result", || async {
        let t = display_since(&display, shown);
        t.contains("THANK YOU").then_some(t)
    })
    .await;
    assert!(vfd.contains("APPROVED") && !vfd.contains('?'), "{vfd:?}");

    // Spanish, pushed.
    let shown = display.lock().unwrap().len();
    push(&m, &k, "T-LANG", 2, json!({"terminal": {"language": "es"}})).await;
    applied(&d, 2).await;
    let from = printed_len(&emu);
    let es = sell(&d, &mut w, "3.00").await;
    let text = receipt_text(&emu, &es, from).await;
    assert!(
        text.contains("VENTA") && text.contains("COPIA CLIENTE"),
        "{text}"
    );
    assert!(!text.contains('?'), "{text}");
    assert!(over_limit(&d).await.contains("supera el límite"));
    let vfd = eventually(WAIT, "the display in Spanish", || async {
        let t = display_since(&display, shown);
        t.contains("GRACIAS").then_some(t)
    })
    .await;
    assert!(vfd.contains("APROBADA SIN CONEXIO"), "{vfd:?}");

    // A tag posd does not have is refused by key path, naming the tags that exist.
    push(&m, &k, "T-LANG", 3, json!({"terminal": {"language": "fr"}})).await;
    let r = eventually(WAIT, "the bad push reported", || async {
        let mut c = d.client().await;
        let r = status(&mut c).await["config"].clone();
        (r["state"] == "rejected").then_some(r)
    })
    .await;
    assert_eq!(r["error"], "invalid_config", "{r}");
    let msg = r["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("terminal.language") && msg.contains("\"zh-CN\""),
        "{r}"
    );
    assert_eq!(r["applied_version"], 2, "{r}");
    assert!(over_limit(&d).await.contains("supera el límite"));

    // A receipt is a record: one owed in Spanish and held back by the printer (paper out)
    // prints in Spanish, even though zh-CN was pushed before the paper came back.
    emu.set_paper_out(true);
    eventually(WAIT, "posd sees the paper out", || async {
        let mut c = d.client().await;
        (status(&mut c).await["printer"]["state"] == "paper_out").then_some(())
    })
    .await;
    let from = printed_len(&emu);
    let held = sell(&d, &mut w, "2.00").await;
    push(
        &m,
        &k,
        "T-LANG",
        4,
        json!({"terminal": {"language": "zh-CN"}}),
    )
    .await;
    applied(&d, 4).await;
    emu.set_paper_out(false);
    let text = receipt_text(&emu, &held, from).await;
    assert!(
        text.contains("VENTA") && text.contains("APROBADA"),
        "printed in the language of its sale:\n{text}"
    );
    assert!(!text.contains("消费"), "{text}");
    // The next sale's receipt is Chinese.
    let from = printed_len(&emu);
    let after = sell(&d, &mut w, "1.00").await;
    let text = receipt_text(&emu, &after, from).await;
    assert!(text.contains("消费"), "{text}");
    drop(slave);
}
