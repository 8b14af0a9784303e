//! `posd-sandbox demo`: the real daemon on embedded defaults, so a newcomer sees it work with
//! nothing installed but Rust.
//!
//! It starts an in-process MQTT broker (rumqttd) on a free loopback port — or uses `--broker` —
//! the sandbox host in a thread, and the `posd` binary as a child process with a state directory
//! and configuration of its own; then
//! it makes sales through the control socket (approved, declined, approved after the customer
//! confirmed, an offline P1 code, a merchant-presented QR, a card), a refund and a batch close,
//! waits until the host has acknowledged every event, and prints the status, the host's
//! reconciliation of the batch and its ledger audit.

use crate::broker::start_embedded_broker;
use crate::host::{self, HostConfig};
use crate::world::{free_port, posd_binary, stop, Till};
use anyhow::{bail, Context};
use posd_core::control::{self as ctl, AnswerError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process};
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
    /// The posd binary (default: the one next to this program, then `posd` on PATH).
    #[arg(long)]
    pub posd: Option<PathBuf>,
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
    let issuer = posd_core::codes::PrivateKey::generate()?;
    let user = posd_core::codes::PrivateKey::generate()?;
    let now_s = (crate::mqtt::now_ms() / 1000) as u32;
    let credential = posd_core::codes::issue_credential(
        &issuer,
        1,
        &posd_core::codes::CredentialRequest {
            user_id: 20_26,
            user_key: user.public_key(),
            valid_from: now_s.saturating_sub(60),
            valid_until: now_s + 86_400,
            max_amount: 10_000,
            currency: 156,
        },
    )?;
    // With --keep-running, the customer's wallet as a file (`posd-sandbox wallet code`) and a
    // fleet signing key the terminal trusts (`posctl fleet push|cmd`), so both paths can be
    // tried against the running demo.
    let wallet_file = dir.join("wallet.json");
    let wallet = serde_json::json!({
        "credential": hex::encode(credential.to_bytes()),
        "user_private_key": user.to_hex(),
        "user_id": 20_26,
        "fingerprint": credential.fingerprint(),
    });
    std::fs::write(&wallet_file, serde_json::to_vec_pretty(&wallet)?)
        .with_context(|| format!("write {}", wallet_file.display()))?;
    let fleet_key = posd_core::fleet::envelope::generate_key();
    let fleet_pub = hex::encode(fleet_key.verifying_key().to_bytes());
    let fleet_file = dir.join("fleet.key");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let doc = serde_json::json!({
            "id": "demo-fleet",
            "private_key": hex::encode(fleet_key.to_bytes()),
            "public_key": fleet_pub,
        });
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&fleet_file)
            .and_then(|mut f| f.write_all(&serde_json::to_vec_pretty(&doc)?))
            .with_context(|| format!("write {}", fleet_file.display()))?;
    }
    // The host's card-sealing key pair and the manager PIN of the demo shop.
    let (card_secret, card_public) =
        posd_core::card::seal::keygen_random().map_err(|e| anyhow::anyhow!("card key: {e}"))?;
    let pin_hash = posd_core::pin::hash_pin(DEMO_PIN).map_err(|e| anyhow::anyhow!(e))?;
    // The host signs every resp/notify/ack; the terminal lists its public key.
    let host_signer = posd_core::protocol::signed::HostSigner::generate(1);
    let host_keys = host_signer.toml_entry();
    let stop_host = Arc::new(AtomicBool::new(false));
    let mut hc = HostConfig::new(&broker, &dir.join("host.sqlite"));
    hc.client_id = "posd-demo-host".into();
    hc.issuer_keys.insert(1, issuer.public_key(), false);
    hc.card_secret = Some(card_secret);
    hc.signer = Some(host_signer);
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
    // The embedded rumqttd listens for MQTT 3.1.1 only (and would not honour MQTT 5's Maximum
    // Packet Size); its own payload limit keeps big messages away. A real broker: MQTT 5.
    let protocol = if args.broker.is_none() { "3.1.1" } else { "5" };
    let text = format!(
        r#"
[terminal]
id = "DEMO-1"
currency = "CNY"
state_dir = "{state}"
[broker]
url = "{broker}"
protocol = "{protocol}"
status_interval_s = 5
{host_keys}[control]
socket = "{socket}"
[online]
query_interval_s = 1
query_total_s = 10
[logging]
level = "warn"
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
[fleet]
keys = [{{ id = "demo-fleet", public_key = "{fleet_pub}" }}]
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
        card_public = posd_core::card::seal::key_to_b64(&card_public),
    );
    let config = dir.join("posd.toml");
    std::fs::write(&config, text).with_context(|| format!("write {}", config.display()))?;
    let posd = posd_binary(&args.posd);
    println!(
        "● posd ({}): terminal DEMO-1, state in {}",
        posd.display(),
        dir.join("state").display()
    );
    let mut daemon = Process::new(&posd)
        .arg("--config")
        .arg(&config)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (build it first: cargo build --release --workspace)",
                posd.display()
            )
        })?;
    let try_it = format!(
        "\nTry it (the demo's own wallet and fleet key):\n  \
         posctl --socket {sock} sale --amount 5.00 --code \"$(posd-sandbox wallet code --wallet {wallet} --counter 100)\"   # a new --counter per sale\n  \
         printf '[limits]\\nmax_sale_amount = 50000\\n' > limits.toml\n  \
         posctl fleet push --key {fleet} --broker {broker} --terminal DEMO-1 --version 1 --wait limits.toml\n  \
         posctl fleet cmd --key {fleet} --broker {broker} --terminal DEMO-1 ping\n  \
         posctl --socket {sock} status",
        sock = socket.display(),
        wallet = wallet_file.display(),
        fleet = fleet_file.display(),
    );
    let result = drive(
        &socket,
        &user,
        &credential,
        args.keep_running,
        &try_it,
        &mut daemon,
    );
    stop(&mut daemon);
    stop_host.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = host_thread.join();
    result?;
    if let Ok(bytes) = std::fs::read(&receipts) {
        let opts =
            posd_core::receipt::RenderOptions::for_width(posd_core::receipt::PaperWidth::Mm58);
        let text = posd_core::receipt::render_text(&bytes, &opts);
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

/// The demo's sales, refund and batch close through the control socket.
fn drive(
    socket: &Path,
    user: &posd_core::codes::PrivateKey,
    credential: &posd_core::codes::Credential,
    keep: bool,
    try_it: &str,
    daemon: &mut Child,
) -> anyhow::Result<()> {
    let mut c = Till::connect(socket, None, Duration::from_secs(10))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.must(ctl::Status {})?.online {
        if Instant::now() > deadline {
            bail!("posd did not connect to the broker");
        }
        if let Ok(Some(st)) = daemon.try_wait() {
            bail!("posd exited: {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("● connected; selling\n");
    let p1 =
        posd_core::codes::make_code(user, credential, (crate::mqtt::now_ms() / 1000) as u32, 1)?
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
        let r = c.call(ctl::Sale {
            amount: amount.into(),
            code: Some(code),
            ..ctl::Sale::default()
        })?;
        if let Ok(v) = &r {
            first_sale.get_or_insert(v.txn_id.clone());
        }
        show(r);
    }
    // Wait until the host has acknowledged every event.
    let deadline = Instant::now() + Duration::from_secs(15);
    let q = loop {
        let q = c.must(ctl::Queue {})?;
        if q.pending == 0 || Instant::now() > deadline {
            break q;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "● events synced: last seq {}, acknowledged by the host up to {}, {} pending",
        q.last_seq, q.acked_seq, q.pending
    );
    // The offline sale settles once the host has verified the code again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = c.must(ctl::TxnList { limit: Some(1) })?;
        let state = list.first().map(|t| t.state.as_str()).unwrap_or("");
        if state == "settled" || Instant::now() > deadline {
            println!("● offline sale at the host: {state}");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("\n→ sale 8.11 CNY — merchant-presented QR; the sandbox customer pays it");
    show(c.call(ctl::Sale {
        amount: "8.11".into(),
        method: Some(ctl::SaleMethod::MerchantQr),
        ..ctl::Sale::default()
    })?);
    println!("→ sale 25.00 CNY — card swipe 4111 1111 1111 1111 (sealed to the host's key)");
    show(c.call(ctl::Sale {
        amount: "25.00".into(),
        code: Some("%B4111111111111111^DEMO/CARD^3512101000?;4111111111111111=3512101000?".into()),
        ..ctl::Sale::default()
    })?);
    if let Some(original) = first_sale {
        println!("→ refund 4.00 CNY of the first sale, manager PIN {DEMO_PIN}");
        show(c.call(ctl::Refund {
            original: Some(original),
            amount: Some("4.00".into()),
            pin: DEMO_PIN.into(),
            ..ctl::Refund::default()
        })?);
    }
    let b = c.must(ctl::BatchClose {})?;
    let z = &b.report;
    let cny = posd_core::money::Currency::from_code("CNY")?;
    println!(
        "● batch {} closed: {} sales {} CNY, {} refunds {} CNY, net {} CNY; Z report printed",
        z.batch_no,
        z.sales_count,
        cny.format(z.sales_amount),
        z.refunds_count,
        cny.format(z.refunds_amount),
        cny.format(z.net_total)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = c.must(ctl::TxnShow {
            id: b.txn_id.clone(),
        })?;
        let state = t.txn.state.as_str();
        if state != "closed" || Instant::now() > deadline {
            println!("● the host's reconciliation of the batch: {state}");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the printer finish the Z report.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let jobs = c.must(ctl::PrintJobs { limit: Some(5) })?;
        if !jobs.iter().any(|j| j.state == "queued") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = c.must(ctl::Status {})?;
    println!("● status: {}", serde_json::to_string_pretty(&status)?);
    if keep {
        println!(
            "\nposd keeps running: control socket {}; Ctrl-C stops it.{try_it}",
            socket.display()
        );
        let _ = daemon.wait();
    }
    Ok(())
}

/// The demo shop's manager PIN.
const DEMO_PIN: &str = "4711";

fn show(r: Result<ctl::SaleReply, AnswerError>) {
    use posd_core::txn::SaleOutcome;
    match r {
        Ok(v) => {
            let (result, detail) = match &v.outcome {
                SaleOutcome::Approved { host_ref } => ("APPROVED", host_ref.clone()),
                SaleOutcome::Declined { reason } => ("DECLINED", Some(reason.clone())),
                SaleOutcome::Cancelled { reason } => ("CANCELLED", Some(reason.clone())),
                SaleOutcome::Pending { reason } => ("PENDING", Some(reason.clone())),
            };
            println!(
                "← {result} ({}), txn {}\n",
                detail.or(v.code_masked).unwrap_or_default(),
                v.txn_id
            );
        }
        Err(e) => println!("← refused: {e}\n"),
    }
}
