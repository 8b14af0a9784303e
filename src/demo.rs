//! `posd demo`: the real daemon on embedded defaults, so a newcomer sees it work with nothing
//! installed but Rust.
//!
//! It starts an in-process MQTT broker (rumqttd) on a free loopback port — or uses `--broker` —
//! the sandbox host in a thread, and the daemon itself with a state directory of its own; then
//! it makes sales through the control socket (approved, declined, approved after the customer
//! confirmed, an offline P1 code, a merchant-presented QR, a card), a refund and a batch close,
//! waits until the host has acknowledged every event, and prints the status, the host's
//! reconciliation of the batch and its ledger audit.

use crate::config::Config;
use crate::control::{ControlClient, ControlRequest};
use crate::host::{self, HostConfig};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Use this broker (mqtt://host:port) instead of the embedded one.
    #[arg(long)]
    pub broker: Option<String>,
    /// State directory (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the daemon running after the scripted sales (Ctrl-C stops it); type codes on stdin.
    #[arg(long)]
    pub keep_running: bool,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts rumqttd on 127.0.0.1:port in a background thread (it has no shutdown API; it ends
/// with the process).
pub fn start_embedded_broker(port: u16) -> anyhow::Result<()> {
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 1000
max_segment_size = 10485760
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 262144
max_inflight_count = 1000
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&text).context("embedded broker config")?;
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("embedded broker stopped: {e}");
            }
        })?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the embedded broker did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::logging::init("warn");
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("posd-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let broker = match &args.broker {
        Some(b) => b.clone(),
        None => {
            let port = free_port()?;
            start_embedded_broker(port)?;
            println!("● embedded MQTT broker on 127.0.0.1:{port}");
            format!("mqtt://127.0.0.1:{port}")
        }
    };

    // A payment platform's issuer key and one customer's wallet, for an offline P1 sale.
    let issuer = crate::codes::PrivateKey::generate()?;
    let user = crate::codes::PrivateKey::generate()?;
    let now_s = (crate::link::now_ms() / 1000) as u32;
    let credential = crate::codes::issue_credential(
        &issuer,
        1,
        &crate::codes::CredentialRequest {
            user_id: 20_26,
            user_key: user.public_key(),
            valid_from: now_s.saturating_sub(60),
            valid_until: now_s + 86_400,
            max_amount: 10_000,
            currency: 156,
        },
    )?;
    // The host's card-sealing key pair and the manager PIN of the demo shop.
    let (card_secret, card_public) =
        crate::card::seal::keygen_random().map_err(|e| anyhow::anyhow!("card key: {e}"))?;
    let pin_hash = crate::engine::hash_pin(DEMO_PIN).map_err(|e| anyhow::anyhow!(e))?;
    let stop_host = Arc::new(AtomicBool::new(false));
    let mut hc = HostConfig::new(&broker, &dir.join("host.sqlite"));
    hc.client_id = "posd-demo-host".into();
    hc.issuer_keys.insert(1, issuer.public_key(), false);
    hc.card_secret = Some(card_secret);
    hc.pay_after_ms = 1500;
    if args.broker.is_none() {
        // rumqttd's shared subscriptions lose messages in this setup; one host needs none.
        hc.group = None;
    }
    let host_db = hc.db.clone();
    let host_thread = {
        let stop = stop_host.clone();
        std::thread::spawn(move || host::run(hc, stop))
    };
    println!("● sandbox host (the payment platform) on {broker}");

    let socket = dir.join("control.sock");
    let receipts = dir.join("receipts.escpos");
    let text = format!(
        r#"
[terminal]
id = "DEMO-1"
currency = "CNY"
state_dir = "{state}"
[broker]
url = "{broker}"
status_interval_s = 5
[control]
socket = "{socket}"
[online]
query_interval_s = 1
query_total_s = 10
[devices]
console = true
[devices.printer.transport]
type = "file"
path = "{receipts}"
[receipt]
shop_name = "posd demo shop"
footer = ["Thank you!"]
copies = ["customer"]
[offline]
clock = "always"
settle_query_interval_s = 2
[[offline.issuer_keys]]
id = 1
public_key = "{issuer_pub}"
[manager]
pin_hash = "{pin_hash}"
[card]
host_public_key = "{card_public}"
[merchant_qr]
timeout_s = 30
query_interval_s = 1
[merchant_qr.merchant]
merchant_category_code = "5812"
country_code = "CN"
merchant_name = "POSD DEMO SHOP"
merchant_city = "BEIJING"
[[merchant_qr.merchant.accounts]]
tag = 26
guid = "com.sandbox.posd"
fields = {{ "01" = "M0001" }}
"#,
        state = dir.join("state").display(),
        socket = socket.display(),
        receipts = receipts.display(),
        issuer_pub = issuer.public_key().to_hex(),
        card_public = crate::card::seal::key_to_b64(&card_public),
    );
    let cfg = Config::from_toml(&text).context("demo configuration")?;
    println!(
        "● posd: terminal DEMO-1, journal {}",
        cfg.db_path().display()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let keep = args.keep_running;
    let result = rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(crate::daemon::run(cfg, async move {
            let _ = stop_rx.await;
        }));
        let mut c = connect(&socket).await?;
        wait_online(&mut c).await?;
        println!("● connected; selling\n");
        let p1 =
            crate::codes::make_code(&user, &credential, (crate::link::now_ms() / 1000) as u32, 1)?
                .to_text();
        let sales = [
            (
                "12.50",
                "134567890123456780".to_string(),
                "WeChat Pay code, approved at once",
            ),
            (
                "8.00",
                "287654321098765411".to_string(),
                "Alipay code, declined by the platform",
            ),
            (
                "23.00",
                "134567890123456722".to_string(),
                "WeChat Pay code, customer confirms on the phone",
            ),
            (
                "6.00",
                p1,
                "P1 offline code, verified on the box with no host involved",
            ),
        ];
        let mut first_sale: Option<String> = None;
        for (amount, code, what) in sales {
            println!("→ sale {amount} CNY — {what}");
            let r = c
                .call(&ControlRequest::Sale {
                    amount: amount.into(),
                    currency: None,
                    code: Some(code),
                    method: None,
                })
                .await;
            if let Ok(v) = &r {
                first_sale.get_or_insert(v["txn_id"].as_str().unwrap_or("").to_string());
            }
            show(r);
        }
        // Wait until the host has acknowledged every event.
        let deadline = Instant::now() + Duration::from_secs(15);
        let q = loop {
            let q = c.call(&ControlRequest::Queue).await?;
            if q["pending"].as_u64() == Some(0) || Instant::now() > deadline {
                break q;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!(
            "● events synced: last seq {}, acknowledged by the host up to {}, {} pending",
            q["last_seq"], q["acked_seq"], q["pending"]
        );
        // The offline sale settles once the host has verified the code again.
        let settle_deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = c.call(&ControlRequest::TxnList { limit: Some(1) }).await?;
            let state = list[0]["state"].as_str().unwrap_or("").to_string();
            if state == "settled" || Instant::now() > settle_deadline {
                println!("● offline sale at the host: {state}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Issue 4: the merchant shows a code, a card, a refund, the end of the day.
        println!("\n→ sale 8.11 CNY — merchant-presented QR; the sandbox customer pays it");
        show(
            c.call(&ControlRequest::Sale {
                amount: "8.11".into(),
                currency: None,
                code: None,
                method: Some("merchant_qr".into()),
            })
            .await,
        );
        println!("→ sale 25.00 CNY — card swipe 4111 1111 1111 1111 (sealed to the host's key)");
        show(
            c.call(&ControlRequest::Sale {
                amount: "25.00".into(),
                currency: None,
                code: Some(
                    "%B4111111111111111^DEMO/CARD^3512101000?;4111111111111111=3512101000?"
                        .into(),
                ),
                method: Some("card".into()),
            })
            .await,
        );
        if let Some(original) = first_sale {
            println!("→ refund 4.00 CNY of the first sale, manager PIN {DEMO_PIN}");
            show(
                c.call(&ControlRequest::Refund {
                    original: Some(original),
                    receipt: None,
                    amount: Some("4.00".into()),
                    refund_id: None,
                    pin: DEMO_PIN.into(),
                })
                .await,
            );
        }
        let b = c.call(&ControlRequest::BatchClose).await?;
        let z = &b["report"];
        println!(
            "● batch {} closed: {} sales {} CNY, {} refunds {} CNY, net {} (minor units); Z report printed",
            z["batch_no"], z["sales_count"], z["sales_amount"], z["refunds_count"], z["refunds_amount"], z["net_total"]
        );
        let batch_id = b["txn_id"].as_str().unwrap_or("").to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let t = c
                .call(&ControlRequest::TxnShow {
                    id: batch_id.clone(),
                })
                .await?;
            let state = t["txn"]["state"].as_str().unwrap_or("").to_string();
            if state != "closed" || Instant::now() > deadline {
                println!("● the host's reconciliation of the batch: {state}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let the printer finish the Z report.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let jobs = c.call(&ControlRequest::PrintJobs { limit: Some(5) }).await?;
            if !jobs
                .as_array()
                .into_iter()
                .flatten()
                .any(|j| j["state"] == "queued")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = c.call(&ControlRequest::Status).await?;
        println!("● status: {}", serde_json::to_string_pretty(&status)?);
        if keep {
            println!(
                "\nposd keeps running: control socket {}; Ctrl-C stops it.",
                socket.display()
            );
            let _ = tokio::signal::ctrl_c().await;
        }
        let _ = stop_tx.send(());
        daemon.await??;
        anyhow::Ok(())
    });
    stop_host.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = host_thread.join();
    result?;
    if let Ok(bytes) = std::fs::read(&receipts) {
        let opts = crate::receipt::RenderOptions::for_width(crate::receipt::PaperWidth::Mm58);
        let text = crate::receipt::render_text(&bytes, &opts);
        let last = text.rsplit("~~~ cut ~~~").nth(1).unwrap_or(&text);
        println!(
            "● the last slip printed — the Z report (file printer {}):\n{}",
            receipts.display(),
            last.trim_matches(|c| c == '~' || c == '\n')
        );
    }
    let db = host::open_db(&host_db)?;
    let audit = host::audit(&db)?;
    println!(
        "● host ledger audit: {} events stored, {} charges, charged without a sale: {}, sale without a charge: {} → {}",
        audit.events,
        audit.charges,
        audit.charged_without_sale.len(),
        audit.sale_without_charge.len(),
        if audit.ok() { "OK" } else { "MISMATCH" }
    );
    if !audit.ok() {
        bail!("the ledger audit found a mismatch");
    }
    Ok(())
}

/// The demo shop's manager PIN.
const DEMO_PIN: &str = "4711";

fn show(r: Result<serde_json::Value, crate::control::ControlError>) {
    match r {
        Ok(v) => println!(
            "← {} ({}), txn {}\n",
            v["result"].as_str().unwrap_or("?").to_uppercase(),
            v["reason"]
                .as_str()
                .or(v["host_ref"].as_str())
                .or(v["code_masked"].as_str())
                .unwrap_or(""),
            v["txn_id"].as_str().unwrap_or("?")
        ),
        Err(e) => println!("← refused: {e}\n"),
    }
}

async fn connect(socket: &std::path::Path) -> anyhow::Result<ControlClient> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ControlClient::connect(socket).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn wait_online(c: &mut ControlClient) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = c.call(&ControlRequest::Status).await?;
        if s["online"] == serde_json::Value::Bool(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("posd did not connect to the broker");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
