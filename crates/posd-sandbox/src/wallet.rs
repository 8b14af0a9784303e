//! A customer's wallet, as the payment platform's app would hold it: P1 credentials issued by a
//! platform key, P1 codes made from them (DESIGN §1.2), and paying a merchant-presented QR at
//! the sandbox host. `posd-sandbox wallet ...`.

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum WalletCmd {
    /// A new P-256 key pair (issuer or user): prints {"private_key", "public_key"} as hex.
    Keygen,
    /// Issue a credential: signs it with the issuer key and writes a wallet file (credential +
    /// the user's private key) that `posd-sandbox wallet code` makes codes from.
    Issue {
        /// Issuer private key (hex).
        #[arg(long)]
        issuer_key: String,
        #[arg(long)]
        key_id: u8,
        #[arg(long)]
        user_id: u64,
        /// Unix seconds (default: now).
        #[arg(long)]
        valid_from: Option<u32>,
        /// Unix seconds (default: valid_from + 30 days).
        #[arg(long)]
        valid_until: Option<u32>,
        /// Per-transaction maximum in minor units.
        #[arg(long, default_value_t = 10_000)]
        max_amount: u32,
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// The user's private key (hex); a new one when absent.
        #[arg(long)]
        user_key: Option<String>,
        /// Wallet file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a P1 code from a wallet file for a given time and counter.
    Code {
        #[arg(long)]
        wallet: PathBuf,
        #[arg(long)]
        counter: u32,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<u32>,
    },
    /// Pay a merchant-presented code at the sandbox host, as a customer's wallet would: the
    /// scanned text (EMVCo payload or platform URL). Exit 0 paid, 3 refused or no answer in 5 s.
    PayQr {
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        #[arg(long, default_value = "pos/v1")]
        prefix: String,
        qr: String,
    },
}

pub fn unix_now() -> u32 {
    (crate::mqtt::now_ms() / 1000).min(u64::from(u32::MAX)) as u32
}

pub fn run(cmd: WalletCmd) -> anyhow::Result<ExitCode> {
    use posd_core::codes::{
        issue_credential, make_code, Credential, CredentialRequest, PrivateKey,
    };
    match cmd {
        WalletCmd::Keygen => {
            let k = PrivateKey::generate()?;
            println!(
                "{}",
                serde_json::json!({"private_key": k.to_hex(), "public_key": k.public_key().to_hex()})
            );
        }
        WalletCmd::Issue {
            issuer_key,
            key_id,
            user_id,
            valid_from,
            valid_until,
            max_amount,
            currency,
            user_key,
            out,
        } => {
            let issuer = PrivateKey::from_hex(&issuer_key)?;
            let user = match user_key {
                Some(h) => PrivateKey::from_hex(&h)?,
                None => PrivateKey::generate()?,
            };
            let cur = posd_core::money::Currency::from_code(&currency)?;
            let from = valid_from.unwrap_or_else(unix_now);
            let req = CredentialRequest {
                user_id,
                user_key: user.public_key(),
                valid_from: from,
                valid_until: valid_until.unwrap_or(from.saturating_add(30 * 86_400)),
                max_amount,
                currency: cur.numeric(),
            };
            let cred = issue_credential(&issuer, key_id, &req)?;
            let wallet = serde_json::json!({
                "credential": hex::encode(cred.to_bytes()),
                "user_private_key": user.to_hex(),
                "user_id": user_id,
                "fingerprint": cred.fingerprint(),
            });
            std::fs::write(&out, serde_json::to_vec_pretty(&wallet)?)
                .with_context(|| format!("write {}", out.display()))?;
            println!("{wallet}");
        }
        WalletCmd::Code {
            wallet,
            counter,
            timestamp,
        } => {
            let w: Value = serde_json::from_slice(
                &std::fs::read(&wallet).with_context(|| format!("read {}", wallet.display()))?,
            )?;
            let cred_hex = w["credential"]
                .as_str()
                .context("wallet has no credential")?;
            let key_hex = w["user_private_key"]
                .as_str()
                .context("wallet has no user_private_key")?;
            let cred = Credential::from_bytes(&hex::decode(cred_hex)?)?;
            let user = PrivateKey::from_hex(key_hex)?;
            let code = make_code(&user, &cred, timestamp.unwrap_or_else(unix_now), counter)?;
            println!("{}", code.to_text());
        }
        WalletCmd::PayQr { broker, prefix, qr } => return pay_qr(&broker, &prefix, &qr),
    }
    Ok(ExitCode::SUCCESS)
}

/// Publishes `{"qr": ...}` on `{prefix}/sandbox/pay` and waits up to 5 s for the host's result.
pub fn pay_qr(broker: &str, prefix: &str, qr: &str) -> anyhow::Result<ExitCode> {
    use rumqttc::{Client, Event, Packet, QoS};
    use std::time::{Duration, Instant};
    let opts = crate::mqtt::options(&format!("posd-wallet-{}", std::process::id()), broker, 30)
        .map_err(anyhow::Error::msg)?;
    let (client, mut conn) = Client::new(opts, 16);
    let result_topic = crate::host::wallet_result_topic(prefix);
    let body = serde_json::json!({ "qr": qr }).to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = false;
    let mut last_err = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let ev = match conn.recv_timeout(left) {
            Ok(ev) => ev,
            Err(_) => break,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                client.try_subscribe(result_topic.clone(), QoS::AtLeastOnce)?;
            }
            Ok(Event::Incoming(Packet::SubAck(_))) if !sent => {
                client.try_publish(
                    crate::host::wallet_pay_topic(prefix),
                    QoS::AtLeastOnce,
                    false,
                    body.clone(),
                )?;
                sent = true;
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == result_topic => {
                let v: Value = match serde_json::from_slice(&p.payload) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if v["qr"].as_str() != Some(qr) {
                    continue; // another wallet's result
                }
                println!("{v}");
                let _ = client.disconnect();
                return Ok(if v["status"] == "paid" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                });
            }
            Ok(_) => {}
            Err(e) => {
                let e = e.to_string();
                if e != last_err {
                    eprintln!("posd-sandbox: broker: {e}");
                    last_err = e;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    eprintln!("posd-sandbox: no answer from the sandbox host within 5 s");
    Ok(ExitCode::from(3))
}
