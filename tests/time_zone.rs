//! The shop's time zone through the real daemon, mosquitto, the sandbox host and the printer
//! emulator: a batch in Madrid that spans the spring daylight-saving change (2027-03-28,
//! 02:00 CET becomes 03:00 CEST). The daemon's clock is put there with `POSD_CLOCK_OFFSET_MS`.
//! Receipts show the local time with the offset in force on each side of the change, the Z
//! report's business day and times are local, `status` and `posctl` say the zone and the
//! current offset, and the per-user daily offline limit's "today" is the local day: it resets
//! at local midnight (an hour before UTC's) and not at the change.

mod common;
use base64::Engine as _;
use common::*;
use posd::control::ControlError;
use posd_core::control as ctl;
use posd_core::receipt::{render_text, PaperWidth, RenderOptions};
use posd_sandbox::printer_emulator::{EmulatorScript, PrinterEmulator};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix ms of a UTC wall-clock time.
fn utc_ms(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> i64 {
    jiff::civil::date(y, mo, d)
        .at(h, mi, s, 0)
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn real_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A till whose clock can be moved, and a wallet valid over the whole test.
struct Shop {
    d: Daemon,
    emu: PrinterEmulator,
    wallet: Wallet,
}

impl Shop {
    /// Restarts the daemon with its clock at `at_ms` (unix ms).
    fn move_clock_to(&mut self, at_ms: i64) {
        self.d.clock_offset_ms = Some(at_ms - real_now_ms());
        self.d.restart();
    }

    /// The daemon's clock, in unix seconds (the P1 code's timestamp must be fresh there).
    fn daemon_now_s(&self) -> u32 {
        ((real_now_ms() + self.d.clock_offset_ms.unwrap_or(0)) / 1000) as u32
    }

    async fn p1(&mut self, amount: &str) -> Result<serde_json::Value, ControlError> {
        self.wallet.counter += 1;
        let code = self
            .wallet
            .code_at(self.daemon_now_s(), self.wallet.counter);
        sale(&self.d, amount, &code).await
    }

    async fn approved(&mut self, amount: &str) -> String {
        let v = self.p1(amount).await.expect("approved offline");
        assert_eq!(v["state"], "approved_offline", "{v}");
        v["txn_id"].as_str().unwrap().to_string()
    }

    async fn refused(&mut self, amount: &str) -> String {
        match self.p1(amount).await {
            Err(ControlError::Refused { code, .. }) => code,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// The receipt posd prints for a transaction, as text.
    async fn receipt_text(&self, txn_id: &str) -> String {
        let mut c = self.d.client().await;
        let r = c
            .call(ctl::Receipt {
                txn_id: Some(txn_id.into()),
                batch: None,
                pay_slip: false,
            })
            .await
            .expect("receipt");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&r.escpos_b64)
            .unwrap();
        render_text(&bytes, &RenderOptions::for_width(PaperWidth::Mm58))
    }

    async fn status(&self) -> serde_json::Value {
        let mut c = self.d.client().await;
        status(&mut c).await
    }

    fn posctl(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_posctl"))
            .arg("--socket")
            .arg(&self.d.socket)
            .args(args)
            .output()
            .expect("run posctl");
        assert!(out.status.success(), "posctl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The line of `text` that holds `label`.
fn line_with<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_across_the_spring_daylight_saving_change_in_madrid() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let broker = Mosquitto::start();
    let host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--issuer-key".into(), platform.host_key_arg()],
    );
    let emu = PrinterEmulator::start(EmulatorScript::default())
        .await
        .unwrap();
    // The daily limit per user is 10.00.
    let limits = "per_txn_limit = 1000\nper_user_daily_limit = 1000\nmax_unsynced_count = 1000\nmax_unsynced_amount = 10000000\nmax_unsynced_age_s = 864000";
    let extra = format!(
        "{}[devices.printer]\nstatus = \"required\"\n[devices.printer.transport]\ntype = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n\n[receipt]\nshop_name = \"Bar Pepe\"\nwidth = 32\nencoding = \"cp858\"\n",
        platform.offline_toml(limits),
        emu.port()
    );
    let d = Daemon::start(&dir.path().join("t"), "T-MAD", &broker.url(), &extra);
    // The shop is in Madrid; the deprecated fixed offset is ignored when both are set.
    let conf = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        conf.replacen(
            "[terminal]\n",
            "[terminal]\ntime_zone = \"Europe/Madrid\"\nutc_offset_s = 28800\n",
            1,
        ),
    )
    .unwrap();

    // A P1 credential valid over the simulated days.
    let key = posd_core::codes::PrivateKey::generate().unwrap();
    let from = (utc_ms(2027, 3, 27, 0, 0, 0) / 1000) as u32;
    let credential = posd_core::codes::issue_credential(
        &platform.issuer,
        platform.key_id,
        &posd_core::codes::CredentialRequest {
            user_id: 7,
            user_key: key.public_key(),
            valid_from: from,
            valid_until: from + 3 * 86_400,
            max_amount: 100_000,
            currency: 156,
        },
    )
    .unwrap();
    let mut shop = Shop {
        d,
        emu,
        wallet: Wallet {
            user_id: 7,
            key,
            credential,
            counter: 0,
        },
    };

    // Saturday 2027-03-27, 23:40 in Madrid (22:40 UTC).
    shop.move_clock_to(utc_ms(2027, 3, 27, 22, 40, 0));
    wait_online(&shop.d).await;
    let s = shop.status().await;
    assert_eq!(s["time_zone"], "Europe/Madrid", "{s}");
    assert_eq!(s["utc_offset_s"], 3600, "winter time: {s}");
    let sat = shop.approved("6.00").await;
    // 6.00 + 5.00 is over the day's 10.00.
    assert_eq!(shop.refused("5.00").await, "over_daily_limit");
    let r = shop.receipt_text(&sat).await;
    assert!(r.contains("2027-03-27 23:40:"), "{r}");
    assert!(r.contains("+01:00"), "{r}");

    // Sunday 00:10 in Madrid — still Saturday 23:10 in UTC. A new local day: the limit is
    // fresh (with UTC's day, 6.00 + 5.00 would still be refused).
    shop.move_clock_to(utc_ms(2027, 3, 27, 23, 10, 0));
    let sun_early = shop.approved("5.00").await;
    let r = shop.receipt_text(&sun_early).await;
    assert!(r.contains("2027-03-28 00:10:"), "{r}");

    // Sunday 01:59:40 CET, twenty seconds before the clocks go forward to 03:00 CEST.
    let change = utc_ms(2027, 3, 28, 1, 0, 0);
    shop.move_clock_to(change - 20_000);
    let before = shop.approved("3.00").await; // 8.00 today
    let r = shop.receipt_text(&before).await;
    let t = line_with(&r, "2027-03-28 01:59:");
    assert!(t.trim_end().ends_with("+01:00"), "{r}");
    let s = shop.status().await;
    assert_eq!(s["utc_offset_s"], 3600, "{s}");
    eventually(
        Duration::from_secs(30),
        "the daemon's clock past 03:00 CEST",
        || async { (shop.daemon_now_s() as i64 * 1000 >= change + 1000).then_some(()) },
    )
    .await;
    // The same local day: no reset at the change. 8.00 + 3.00 is over; 2.00 reaches 10.00.
    assert_eq!(shop.refused("3.00").await, "over_daily_limit");
    let after = shop.approved("2.00").await;
    let s = shop.status().await;
    assert_eq!(s["utc_offset_s"], 7200, "summer time: {s}");
    assert_eq!(s["time_zone"], "Europe/Madrid", "{s}");

    let r = shop.receipt_text(&after).await;
    let t = line_with(&r, "2027-03-28 03:00:");
    assert!(t.trim_end().ends_with("+02:00"), "{r}");

    // posctl shows each stored time with the offset in force then, and the zone.
    let show = shop.posctl(&["txn", "show", &sat]);
    assert!(show.contains("2027-03-27 23:40:"), "{show}");
    let show = shop.posctl(&["txn", "show", &after]);
    assert!(
        line_with(&show, "created").contains("2027-03-28 03:00:"),
        "{show}"
    );
    assert!(
        line_with(&show, "created").trim_end().ends_with("+02:00"),
        "{show}"
    );
    let st = shop.posctl(&["status"]);
    assert!(
        line_with(&st, "time zone").contains("Europe/Madrid (UTC+02:00 now)"),
        "{st}"
    );

    // The batch closes in summer time: its business day is Sunday, its times local.
    let mut c = shop.d.client().await;
    let z = c.call(ctl::BatchClose {}).await.expect("batch close");
    assert_eq!(z.business_day.as_deref(), Some("2027-03-28"));
    assert_eq!(z.report.sales_count, 4, "{z:?}");
    let opts = RenderOptions::for_width(PaperWidth::Mm58);
    let paper = eventually(Duration::from_secs(30), "the Z report printed", || async {
        let t = render_text(&shop.emu.printed(), &opts);
        t.contains("Z REPORT").then_some(t)
    })
    .await;
    let zr = &paper[paper.find("Z REPORT").unwrap()..];
    assert!(line_with(zr, "Business day").contains("2027-03-28"), "{zr}");
    let from = line_with(zr, "From");
    assert!(
        from.contains("2027-03-27 23:40:") && from.trim_end().ends_with("+01:00"),
        "{zr}"
    );
    let to = line_with(zr, "To ");
    assert!(
        to.contains("2027-03-28 03:0") && to.trim_end().ends_with("+02:00"),
        "{zr}"
    );
    // Every receipt reached the paper, each with its own offset.
    assert!(paper.contains("2027-03-28 01:59:"), "{paper}");

    // The host settles the offline sales (it verifies each code at the sale's own time) and
    // reconciles the batch.
    wait_drained(&shop.d, Duration::from_secs(30)).await;
    eventually(Duration::from_secs(30), "batch reconciled", || async {
        let mut c = shop.d.client().await;
        let v = c.call(ctl::Batches { limit: Some(1) }).await.ok()?;
        (v.first()?.state.as_str() == "reconciled").then_some(())
    })
    .await;
    let a = host.audit();
    assert!(a.ok(), "{a:?}");
}
