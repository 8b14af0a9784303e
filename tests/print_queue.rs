//! The durable print queue through the real daemon and the printer emulator: receipts wait out
//! a paper-out and print by themselves, nothing is printed twice across a power cut unless asked
//! (`reprint`), and the receipt drawn by `posctl receipt render` carries a QR that reads back to
//! the receipt reference.
//!
//! Issue 16, fault by fault (paper out in the middle of a receipt then refilled, paper near end,
//! cover open, silence in the middle of a job, a dropped connection), on a printer that confirms
//! what it printed and on one that cannot: every copy is printed exactly once unmarked, or again
//! marked `REPRINT - printer fault` — never twice unmarked, never lost — and the drawer opens
//! exactly once per sale. The status (control socket, retained MQTT status, the cashier's
//! console) follows the printer within 2 s without a job; every kind of receipt reprints and
//! renders.

mod common;
use common::*;
use posd_core::control as ctl;
use posd_core::receipt::{render_text, PaperWidth, RenderOptions};
use posd_sandbox::printer_emulator::{EmulatorScript, PrinterEmulator};
use serde_json::Value;
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

    // Paper out: nothing prints, the jobs wait, the status says why and for how long (the
    // shipped `job_max_age_h`).
    eventually(
        Duration::from_secs(10),
        "printer fault and the wait's bound in status",
        || async {
            let mut c = d.client().await;
            let s = status(&mut c).await;
            s["devices"]["printer"]
                .as_str()
                .is_some_and(|p| {
                    p.contains("paper out")
                        && p.ends_with(
                            "2 jobs wait and print by themselves if the printer is back within 24 h",
                        )
                })
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

// ------------------------------------------------------------------------------------------------
// Issue 16: never twice, never silently
// ------------------------------------------------------------------------------------------------

/// One copy as it came out of the printer (the text up to its `-- ... COPY --` line; what a
/// cut-off print left goes with the copy printed after it).
#[derive(Debug)]
struct PrintedCopy {
    qr: Option<String>,
    customer: bool,
    marked: bool,
    fault_marked: bool,
    text: String,
}

fn printed_copies(bytes: &[u8]) -> Vec<PrintedCopy> {
    let text = render_text(bytes, &RenderOptions::for_width(PaperWidth::Mm58));
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        cur.push_str(line);
        cur.push('\n');
        if line.contains(" COPY --") {
            let qr = cur
                .lines()
                .find_map(|l| l.strip_prefix("[QR ").and_then(|q| q.strip_suffix(']')))
                .map(str::to_string);
            out.push(PrintedCopy {
                qr,
                customer: cur.contains("CUSTOMER COPY"),
                marked: cur.contains("REPRINT"),
                fault_marked: cur.contains("REPRINT - printer fault"),
                text: std::mem::take(&mut cur),
            });
        }
    }
    out
}

/// For each sale and copy: at most one unmarked copy, and at least one copy in all. With
/// `strict`, exactly one unmarked copy and no reprint. Returns the number of marked reprints.
#[track_caller]
fn assert_never_twice_unmarked(
    bytes: &[u8],
    terminal: &str,
    txn_ids: &[String],
    strict: bool,
) -> usize {
    let copies = printed_copies(bytes);
    let mut marked_total = 0;
    for id in txn_ids {
        let qr = format!("R1.{terminal}.{id}");
        for customer in [false, true] {
            let of: Vec<&PrintedCopy> = copies
                .iter()
                .filter(|c| c.qr.as_deref() == Some(qr.as_str()) && c.customer == customer)
                .collect();
            let unmarked = of.iter().filter(|c| !c.marked).count();
            let marked = of.iter().filter(|c| c.marked).count();
            let which = if customer { "customer" } else { "merchant" };
            assert!(
                unmarked <= 1,
                "{id} {which} copy printed {unmarked} times unmarked: {copies:#?}"
            );
            assert!(
                unmarked + marked >= 1,
                "{id} {which} copy never printed: {copies:#?}"
            );
            if strict {
                assert_eq!((unmarked, marked), (1, 0), "{id} {which}: {copies:#?}");
            }
            assert!(
                of.iter().filter(|c| c.marked).all(|c| c.fault_marked),
                "a reprint nobody asked for must say why: {copies:#?}"
            );
            marked_total += marked;
        }
    }
    marked_total
}

fn printer_toml(port: u16, model: &str, extra_printer: &str) -> String {
    format!(
        "[devices]\nconsole = true\n[devices.printer]\nstatus = \"required\"\nstatus_timeout_ms = 500\nfault_poll_ms = 1000\nhealth_interval_ms = 1000\n{extra_printer}\n[devices.printer.transport]\ntype = \"tcp\"\nhost = \"127.0.0.1\"\nport = {port}\n\n[receipt]\nshop_name = \"Noodle Bar\"\nwidth = 32\nencoding = \"cp858\"\ndrawer_kick = true\nprinter_model = \"{model}\"\ncut = true\n"
    )
}

/// A till selling offline (no broker needed) on the emulated printer.
struct Till {
    _dir: tempfile::TempDir,
    d: Daemon,
    emu: PrinterEmulator,
    wallet: Wallet,
    _platform: Platform,
    terminal: &'static str,
}

impl Till {
    async fn start(terminal: &'static str, script: EmulatorScript, model: &str) -> Till {
        Till::start_with(terminal, script, model, "").await
    }

    async fn start_with(
        terminal: &'static str,
        script: EmulatorScript,
        model: &str,
        receipt_extra: &str,
    ) -> Till {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::new();
        let emu = PrinterEmulator::start(script).await.unwrap();
        let nowhere = format!("mqtt://127.0.0.1:{}", free_port());
        let extra = format!(
            "{}{}{receipt_extra}\n",
            platform.offline_toml(""),
            printer_toml(emu.port(), model, "")
        );
        let d = Daemon::start(&dir.path().join("t"), terminal, &nowhere, &extra);
        let wallet = platform.wallet(7, 1_000_000);
        Till {
            _dir: dir,
            d,
            emu,
            wallet,
            _platform: platform,
            terminal,
        }
    }

    /// A generic printer out of paper from the start.
    async fn out_of_paper(terminal: &'static str) -> Till {
        let script = EmulatorScript {
            paper_out: true,
            ..Default::default()
        };
        Till::start(terminal, script, "generic").await
    }

    async fn sell(&mut self, amount: &str) -> String {
        let code = self.wallet.next_code();
        let v = sale(&self.d, amount, &code).await.unwrap();
        assert_eq!(v["state"], "approved_offline", "{v}");
        v["txn_id"].as_str().unwrap().to_string()
    }

    async fn status(&self) -> Value {
        let mut c = self.d.client().await;
        status(&mut c).await
    }

    /// Waits (at most `within`) until the printer's status shows `what`.
    async fn wait_printer(&self, within: Duration, what: &str) -> Value {
        eventually(within, &format!("printer status {what:?}"), || async {
            let s = self.status().await;
            s["devices"]["printer"]
                .as_str()
                .is_some_and(|p| p.contains(what))
                .then_some(s)
        })
        .await
    }

    /// Waits until every copy of `ids` came out (and nothing waits any more).
    async fn wait_all_printed(&self, within: Duration, ids: &[String]) {
        eventually(within, "every copy printed", || async {
            let copies = printed_copies(&self.emu.printed());
            let all = ids.iter().all(|id| {
                let qr = format!("R1.{}.{id}", self.terminal);
                [false, true].iter().all(|cust| {
                    copies
                        .iter()
                        .any(|c| c.qr.as_deref() == Some(qr.as_str()) && c.customer == *cust)
                })
            });
            let mut c = self.d.client().await;
            let jobs = c
                .call_json(ctl::PrintJobs { limit: Some(100) })
                .await
                .ok()?;
            let idle = jobs
                .as_array()?
                .iter()
                .all(|j| j["state"] != "queued" && j["state"] != "sending");
            (all && idle).then_some(())
        })
        .await
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.d.stdout_path()).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_out_mid_receipt_then_refilled_resumes_without_a_second_copy() {
    // An Epson TM-T20: it confirms each copy (GS ( H) once printed.
    let mut t = Till::start(
        "T-PO-EP",
        EmulatorScript {
            process_id: true,
            paper_out_after: Some(300),
            name: Some("TM-T20III".into()),
            ..Default::default()
        },
        "epson_tm_t20",
    )
    .await;
    t.wait_printer(Duration::from_secs(10), "ok").await;
    let id = t.sell("12.50").await;
    // Paper out in the middle of the merchant copy: the status says so within 2 s.
    let s = t.wait_printer(Duration::from_secs(2), "paper out").await;
    assert_eq!(s["printer"]["state"], "paper_out", "{s}");
    assert_eq!(s["printer"]["reported_name"], "TM-T20III", "{s}");
    assert!(
        t.emu.buffered() > 0,
        "the rest waits in the printer's buffer"
    );
    let before = t.emu.received().len();
    // Refilled: the printer finishes from its own buffer; posd confirms it within 2 s and
    // sends nothing again.
    t.emu.set_paper_out(false);
    t.wait_all_printed(Duration::from_secs(2), std::slice::from_ref(&id))
        .await;
    assert_eq!(t.emu.received().len(), before, "nothing sent twice");
    assert_never_twice_unmarked(&t.emu.printed(), t.terminal, &[id], true);
    assert_eq!(t.emu.drawer_pulses(), 1);
    t.wait_printer(Duration::from_secs(2), "ok").await;
    let console = t.console();
    assert!(
        console.contains("[till] printer: paper out — load a new roll"),
        "{console}"
    );
    let out_at = console.find("paper out").unwrap();
    assert!(
        console[out_at..].contains("[till] printer: ok"),
        "{console}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_while_a_receipt_waits_out_paper_out_prints_it_again_marked() {
    let mut t = Till::start(
        "T-PO-CUT",
        EmulatorScript {
            process_id: true,
            paper_out_after: Some(300),
            ..Default::default()
        },
        "epson_tm_t20",
    )
    .await;
    let id = t.sell("5.50").await;
    t.wait_printer(Duration::from_secs(5), "paper out").await;
    // The job was going out when the power went: whatever the printer does with it, posd
    // cannot know, so after the restart it prints it again — marked.
    t.d.kill9();
    t.emu.set_paper_out(false);
    t.d.restart();
    t.wait_all_printed(Duration::from_secs(15), std::slice::from_ref(&id))
        .await;
    let marked = assert_never_twice_unmarked(
        &t.emu.printed(),
        t.terminal,
        std::slice::from_ref(&id),
        false,
    );
    assert!(marked >= 1);
    assert_eq!(
        t.emu.drawer_pulses(),
        1,
        "the drawer went before the receipt, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_out_on_a_printer_that_cannot_confirm_is_reprinted_marked() {
    let mut t = Till::start(
        "T-PO-GEN",
        EmulatorScript {
            paper_out_after: Some(300),
            ..Default::default()
        },
        "generic",
    )
    .await;
    let a = t.sell("12.50").await;
    t.wait_printer(Duration::from_secs(5), "paper out").await;
    let b = t.sell("3.00").await;
    t.emu.set_paper_out(false);
    t.wait_all_printed(Duration::from_secs(15), &[a.clone(), b.clone()])
        .await;
    // What the printer had buffered printed once; posd's second print says why it is there.
    let marked =
        assert_never_twice_unmarked(&t.emu.printed(), t.terminal, &[a.clone(), b.clone()], false);
    assert!(marked >= 1, "the uncertain job is printed again, marked");
    assert!(printed_copies(&t.emu.printed())
        .iter()
        .filter(|c| c.marked)
        .all(|c| c.text.contains("SALE") && c.text.contains("TOTAL")));
    // The second sale was never in doubt.
    let copies = printed_copies(&t.emu.printed());
    assert_eq!(
        copies
            .iter()
            .filter(|c| c.qr.as_deref() == Some(format!("R1.T-PO-GEN.{b}").as_str()))
            .count(),
        2,
        "{copies:#?}"
    );
    assert_eq!(t.emu.drawer_pulses(), 2, "one pulse per sale");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cover_opened_mid_job_on_a_printer_that_drops_its_buffer_loses_nothing() {
    let mut t = Till::start(
        "T-COVER",
        EmulatorScript {
            cover_open_after: Some(400),
            clear_buffer_on_recovery: true,
            ..Default::default()
        },
        "generic",
    )
    .await;
    let id = t.sell("8.80").await;
    let s = t.wait_printer(Duration::from_secs(5), "cover open").await;
    assert_eq!(s["printer"]["state"], "cover_open");
    t.emu.set_cover_open(false);
    t.wait_all_printed(Duration::from_secs(15), std::slice::from_ref(&id))
        .await;
    let marked = assert_never_twice_unmarked(&t.emu.printed(), t.terminal, &[id], false);
    assert_eq!(marked, 2, "both copies again, marked");
    assert_eq!(t.emu.drawer_pulses(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_near_end_prints_once_and_says_so() {
    let mut t = Till::start(
        "T-NEAR",
        EmulatorScript {
            near_end: true,
            ..Default::default()
        },
        "xprinter_xp58",
    )
    .await;
    let s = t
        .wait_printer(Duration::from_secs(10), "paper near its end")
        .await;
    assert_eq!(s["printer"]["state"], "paper_near_end", "{s}");
    assert_eq!(s["printer"]["paper_near_end"], true, "{s}");
    let id = t.sell("4.20").await;
    t.wait_all_printed(Duration::from_secs(10), std::slice::from_ref(&id))
        .await;
    assert_never_twice_unmarked(&t.emu.printed(), t.terminal, &[id], true);
    assert_eq!(t.emu.drawer_pulses(), 1);
    // An XP-58 has no cutter: fed to the tear bar, and `cut = true` is a warning.
    let s = t.status().await;
    let warnings = s["printer"]["warnings"].to_string();
    assert!(warnings.contains("no cutter"), "{s}");
    // A new roll: the warning goes within 2 s.
    t.emu.set_near_end(false);
    eventually(Duration::from_secs(2), "near end cleared", || async {
        let s = t.status().await;
        (s["printer"]["paper_near_end"] == false && s["printer"]["state"] == "ok").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_mid_job_is_printed_again_marked_once_the_printer_answers() {
    let mut t = Till::start(
        "T-HANG",
        EmulatorScript {
            hang_after: Some(300),
            ..Default::default()
        },
        "generic",
    )
    .await;
    let id = t.sell("6.60").await;
    let s = t
        .wait_printer(Duration::from_secs(10), "not answering")
        .await;
    assert_eq!(s["printer"]["state"], "not_answering", "{s}");
    assert!(t.emu.is_hung());
    t.emu.recover();
    t.wait_all_printed(Duration::from_secs(15), std::slice::from_ref(&id))
        .await;
    let marked = assert_never_twice_unmarked(&t.emu.printed(), t.terminal, &[id], false);
    assert!(marked >= 1);
    assert_eq!(t.emu.drawer_pulses(), 1);
    t.wait_printer(Duration::from_secs(2), "ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_from_what_the_printer_confirmed() {
    // Epson: the merchant copy is confirmed before the connection drops in the customer copy.
    let mut t = Till::start(
        "T-DROP",
        EmulatorScript {
            process_id: true,
            drop_after_process_id: Some((1, 60)),
            ..Default::default()
        },
        "epson_tm_t20",
    )
    .await;
    let id = t.sell("9.90").await;
    t.wait_all_printed(Duration::from_secs(15), std::slice::from_ref(&id))
        .await;
    let bytes = t.emu.printed();
    assert_never_twice_unmarked(&bytes, t.terminal, std::slice::from_ref(&id), false);
    let copies = printed_copies(&bytes);
    let merchant: Vec<_> = copies
        .iter()
        .filter(|c| !c.customer && c.qr.is_some())
        .collect();
    assert_eq!(
        merchant.len(),
        1,
        "the confirmed copy is not printed again: {copies:#?}"
    );
    assert!(!merchant[0].marked);
    let customer: Vec<_> = copies.iter().filter(|c| c.customer).collect();
    assert!(
        customer.iter().any(|c| c.fault_marked),
        "the copy cut off is printed again, marked: {copies:#?}"
    );
    assert_eq!(t.emu.drawer_pulses(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drawer_opens_once_per_sale_and_only_for_cash_like_methods_when_asked() {
    let mut t = Till::start_with(
        "T-DRAWER",
        EmulatorScript::default(),
        "generic",
        "drawer_on = \"cash_like\"\ncash_like = [\"offline_code\"]\n",
    )
    .await;
    let a = t.sell("1.00").await;
    let b = t.sell("2.00").await;
    t.wait_all_printed(Duration::from_secs(15), &[a.clone(), b.clone()])
        .await;
    assert_eq!(t.emu.drawer_pulses(), 2);
    // Power cut and restart: nothing owed again, no pulse again.
    t.d.kill9();
    t.d.restart();
    t.wait_printer(Duration::from_secs(10), "ok").await;
    // A reprint never opens the drawer.
    let mut c = t.d.client().await;
    c.call_json(ctl::Reprint {
        txn_id: Some(a.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the reprint", || async {
        printed_copies(&t.emu.printed())
            .iter()
            .any(|c| c.marked)
            .then_some(())
    })
    .await;
    assert_eq!(t.emu.drawer_pulses(), 2);
    // A till where the drawer opens for card payments only: an offline sale does not open it.
    let mut cards_only = Till::start_with(
        "T-DRAWER2",
        EmulatorScript::default(),
        "generic",
        "drawer_on = \"cash_like\"\ncash_like = [\"card\"]\n",
    )
    .await;
    let c1 = cards_only.sell("1.00").await;
    cards_only
        .wait_all_printed(Duration::from_secs(15), std::slice::from_ref(&c1))
        .await;
    assert_eq!(cards_only.emu.drawer_pulses(), 0);
}

/// What the printer owes, by state.
async fn job_states(d: &Daemon) -> Vec<String> {
    let mut c = d.client().await;
    let jobs = c
        .call_json(ctl::PrintJobs { limit: Some(100) })
        .await
        .unwrap();
    let mut v: Vec<String> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap_or("?").to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_dead_printer_owes_is_given_up_after_its_age_and_never_printed_stale() {
    let mut t = Till::out_of_paper("T-STALE").await;
    let a = t.sell("4.00").await;
    let _b = t.sell("6.00").await;
    t.wait_printer(Duration::from_secs(10), "paper out").await;
    // Two pulses, two receipts.
    let s = eventually(Duration::from_secs(10), "four jobs waiting", || async {
        let s = t.status().await;
        (s["printer"]["waiting"] == 4).then_some(s)
    })
    .await;
    assert_eq!(s["printer"]["expired"], 0, "{s}");

    // Ten minutes later (the box was off): the drawer pulses are past drawer_max_age_s (300 s)
    // and are given up at start, though the printer still cannot print; the receipts wait.
    t.d.clock_offset_ms = Some(10 * 60_000);
    t.d.restart();
    let s = eventually(Duration::from_secs(15), "the pulses given up", || async {
        let s = t.status().await;
        (s["printer"]["expired"] == 2 && s["printer"]["waiting"] == 2).then_some(s)
    })
    .await;
    assert_eq!(s["printer"]["state"], "paper_out", "{s}");
    assert_eq!(
        job_states(&t.d).await,
        ["expired", "expired", "queued", "queued"]
    );

    // A day and an hour after the sales: the receipts are past job_max_age_h (24 h).
    t.d.clock_offset_ms = Some(25 * 3_600_000);
    t.d.restart();
    eventually(Duration::from_secs(15), "the receipts given up", || async {
        let s = t.status().await;
        (s["printer"]["expired"] == 4 && s["printer"]["waiting"] == 0).then_some(())
    })
    .await;
    assert_eq!(job_states(&t.d).await, ["expired"; 4]);
    assert!(
        std::fs::read_to_string(t.d.log_path())
            .unwrap_or_default()
            .contains("2 job(s) given up: the printer could not take them within job_max_age_h = 24 h (a drawer pulse: drawer_max_age_s = 300 s); 4 given up since the journal was made"),
        "the log says what the receipts' step gave up"
    );

    // The printer comes back: nothing stale comes out, the drawer stays shut ...
    t.emu.set_paper_out(false);
    t.wait_printer(Duration::from_secs(10), "ok").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(printed_copies(&t.emu.printed()).is_empty());
    assert_eq!(t.emu.drawer_pulses(), 0);
    // ... and a receipt asked for again prints, marked.
    let mut c = t.d.client().await;
    c.call_json(ctl::Reprint {
        txn_id: Some(a.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the reprint", || async {
        let copies = printed_copies(&t.emu.printed());
        let qr = format!("R1.T-STALE.{a}");
        copies
            .iter()
            .any(|c| c.marked && c.qr.as_deref() == Some(qr.as_str()))
            .then_some(())
    })
    .await;
    assert_eq!(t.emu.drawer_pulses(), 0, "a reprint never opens the drawer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_stale_jobs_than_one_step_gives_up_and_none_of_them_prints() {
    let mut t = Till::out_of_paper("T-STALE-MANY").await;
    // 40 sales: 80 jobs, more than the 64 a step gives up before a job is taken.
    for _ in 0..40 {
        t.sell("1.00").await;
    }
    t.wait_printer(Duration::from_secs(10), "paper out").await;
    // posd is off for a day and more; meanwhile the paper is refilled, so at start the printer
    // is ready and only the step before each pick gives jobs up.
    t.d.kill9();
    t.emu.set_paper_out(false);
    t.d.clock_offset_ms = Some(25 * 3_600_000);
    t.d.restart();
    eventually(Duration::from_secs(15), "every job given up", || async {
        let s = t.status().await;
        (s["printer"]["expired"] == 80 && s["printer"]["waiting"] == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        printed_copies(&t.emu.printed()).is_empty(),
        "a stale receipt printed"
    );
    assert_eq!(t.emu.drawer_pulses(), 0, "a stale drawer pulse went out");
    assert_eq!(job_states(&t.d).await, ["expired"; 80]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_that_does_not_answer_is_not_ok_without_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    // Nothing listens on this port.
    let port = free_port();
    let d = Daemon::start(
        &dir.path().join("t"),
        "T-GONE",
        &broker.url(),
        &printer_toml(port, "generic", ""),
    );
    let s = eventually(Duration::from_secs(10), "unreachable printer", || async {
        let mut c = d.client().await;
        let s = status(&mut c).await;
        (s["printer"]["state"] == "unreachable").then_some(s)
    })
    .await;
    let words = s["devices"]["printer"].as_str().unwrap();
    assert!(words.starts_with("unreachable"), "{words}");
    assert!(
        words.to_lowercase().contains("connection refused"),
        "{words}"
    );
    // The retained MQTT status says the same.
    let (client, mut el) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new("print-watch", "127.0.0.1", broker.port),
        16,
    );
    client
        .subscribe("pos/v1/T-GONE/status", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let retained = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = el.poll().await {
                let v: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                if v["printer"]["state"] == "unreachable" {
                    return v;
                }
            }
        }
    })
    .await
    .expect("retained status with the printer unreachable");
    assert!(retained["devices"]["printer"]
        .as_str()
        .is_some_and(|p| p.contains("unreachable")));

    // A printer that takes connections but never answers its status is not "ok" either.
    let silent = PrinterEmulator::start(EmulatorScript {
        silent: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let d2 = Daemon::start(
        &dir.path().join("t2"),
        "T-MUTE",
        &format!("mqtt://127.0.0.1:{}", free_port()),
        &printer_toml(silent.port(), "generic", "").replace("\"required\"", "\"auto\""),
    );
    eventually(Duration::from_secs(10), "silent printer not ok", || async {
        let mut c2 = d2.client().await;
        let s = status(&mut c2).await;
        (s["printer"]["state"] == "not_answering").then_some(())
    })
    .await;
    assert!(silent.received().is_empty(), "checked without a job");
}

const ORDER: &str = r#"
[online]
query_interval_s = 1
query_total_s = 4
reverse_backoff_initial_s = 1
reverse_backoff_max_s = 2

[merchant_qr]
timeout_s = 3
query_interval_s = 1
close_wait_s = 2
print = true

[merchant_qr.merchant]
merchant_category_code = "5812"
country_code = "CN"
merchant_name = "BEST CANTEEN"
merchant_city = "BEIJING"

[[merchant_qr.merchant.accounts]]
tag = 26
guid = "com.sandbox.posd"
fields = { "01" = "M0001" }
"#;

async fn txn_state(d: &Daemon, id: &str) -> String {
    let mut c = d.client().await;
    c.call_json(ctl::TxnShow { id: id.into() })
        .await
        .map(|v| v["txn"]["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

async fn wait_state(d: &Daemon, id: &str, want: &str) {
    eventually(Duration::from_secs(30), &format!("{id} {want}"), || async {
        (txn_state(d, id).await == want).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_receipt_reprints_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let platform = Platform::new();
    let mut host = Host::start_with_args(
        &broker.url(),
        &dir.path().join("host.sqlite"),
        &["--issuer-key".into(), platform.host_key_arg()],
    );
    let emu = PrinterEmulator::start(EmulatorScript::default())
        .await
        .unwrap();
    let extra = format!(
        "{ORDER}\n{}\n{}\n{}",
        manager_toml(),
        platform.offline_toml(""),
        printer_toml(emu.port(), "generic", "")
    );
    let d = Daemon::start(&dir.path().join("t"), "T-ALL", &broker.url(), &extra);
    wait_online(&d).await;
    let mut wallet = platform.wallet(5, 1_000_000);
    let mut c = d.client().await;

    // An offline sale the host settles.
    let settled = sale(&d, "3.30", &wallet.next_code()).await.unwrap();
    let settled = settled["txn_id"].as_str().unwrap().to_string();
    wait_state(&d, &settled, "settled").await;
    // An online sale, partly refunded.
    let online = sale(&d, "10.00", "134567890123456780").await.unwrap();
    assert_eq!(online["result"], "approved", "{online}");
    let online = online["txn_id"].as_str().unwrap().to_string();
    let refund = c
        .call_json(ctl::Refund {
            original: Some(online.clone()),
            amount: Some("4.00".into()),
            pin: PIN.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refund["result"], "approved", "{refund}");
    let refund = refund["txn_id"].as_str().unwrap().to_string();
    // A merchant-QR order nobody pays: its pay slip printed, then closed unpaid.
    let order = c
        .call_json(ctl::Sale {
            amount: "7.70".into(),
            method: Some(ctl::SaleMethod::MerchantQr),
            ..Default::default()
        })
        .await
        .unwrap();
    let order = order["txn_id"].as_str().unwrap().to_string();
    wait_state(&d, &order, "closed").await;
    // An offline sale voided before the host settles it.
    host.kill();
    let voided = sale(&d, "2.20", &wallet.next_code()).await.unwrap();
    let voided = voided["txn_id"].as_str().unwrap().to_string();
    let void = c
        .call_json(ctl::Void {
            original: voided.clone(),
            pin: PIN.into(),
        })
        .await
        .unwrap();
    assert_eq!(void["state"], "voided", "{void}");
    let void = void["txn_id"].as_str().unwrap().to_string();
    // The batch close: Z report number 1.
    let z = c.call_json(ctl::BatchClose {}).await.unwrap();
    assert_eq!(z["report"]["batch_no"], 1, "{z}");

    eventually(Duration::from_secs(20), "the first prints", || async {
        let mut c = d.client().await;
        let jobs = c
            .call_json(ctl::PrintJobs { limit: Some(100) })
            .await
            .ok()?;
        let jobs = jobs.as_array()?.clone();
        // 3 sales × (drawer + receipt), refund, void, pay slip, Z report.
        (jobs.len() == 10 && jobs.iter().all(|j| j["state"] == "printed")).then_some(())
    })
    .await;
    let first = emu.printed().len();
    let opts = RenderOptions::for_width(PaperWidth::Mm58);
    let reprints: Vec<(ctl::Reprint, &str, &str)> = vec![
        (
            ctl::Reprint {
                txn_id: Some(settled.clone()),
                ..Default::default()
            },
            "receipt",
            "SETTLED",
        ),
        (
            ctl::Reprint {
                txn_id: Some(online.clone()),
                ..Default::default()
            },
            "receipt",
            "APPROVED",
        ),
        (
            ctl::Reprint {
                txn_id: Some(refund.clone()),
                ..Default::default()
            },
            "receipt",
            "REFUND",
        ),
        (
            ctl::Reprint {
                txn_id: Some(voided.clone()),
                ..Default::default()
            },
            "receipt",
            "VOIDED",
        ),
        (
            ctl::Reprint {
                txn_id: Some(void.clone()),
                ..Default::default()
            },
            "receipt",
            "VOID",
        ),
        (
            ctl::Reprint {
                txn_id: Some(order.clone()),
                ..Default::default()
            },
            "receipt",
            "NOT PAID",
        ),
        (
            ctl::Reprint {
                txn_id: Some(order.clone()),
                pay_slip: true,
                ..Default::default()
            },
            "pay_slip",
            "SCAN TO PAY",
        ),
        (
            ctl::Reprint {
                batch: Some(1),
                ..Default::default()
            },
            "z_report",
            "Z REPORT",
        ),
    ];
    for (req, kind, word) in reprints {
        let at = emu.printed().len();
        let r = c.call_json(req.clone()).await.unwrap();
        assert_eq!(r["kind"], kind, "{r}");
        let text = eventually(Duration::from_secs(10), word, || async {
            let printed = emu.printed();
            let t = render_text(printed.get(at..).unwrap_or_default(), &opts);
            (t.contains(word) && t.contains("*** REPRINT ***")).then_some(t)
        })
        .await;
        assert!(
            !text.contains("[drawer"),
            "a reprint never opens the drawer: {text}"
        );
        // The same document, drawn without a printer.
        let v = c
            .call_json(ctl::Receipt {
                txn_id: req.txn_id.clone(),
                batch: req.batch,
                pay_slip: req.pay_slip,
            })
            .await
            .unwrap();
        assert_eq!(v["kind"], kind, "{v}");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["escpos_b64"].as_str().unwrap())
            .unwrap();
        let drawn = render_text(&bytes, &opts);
        assert!(drawn.contains(word), "{word}: {drawn}");
        assert!(!drawn.contains("REPRINT"), "{drawn}");
    }
    // The Z report by number says settled and voided in words, and names channels.
    let all = render_text(&emu.printed()[first..], &opts);
    assert!(all.contains("APPROVED, SETTLED"), "{all}");
    assert!(all.contains("APPROVED, VOIDED"), "{all}");
    assert!(!all.contains("wechat") && !all.contains("emv_mpm"), "{all}");
    // Asking for a batch that was never closed, or two documents at once, is refused.
    for (bad, code) in [
        (
            ctl::Reprint {
                batch: Some(99),
                ..Default::default()
            },
            "no_batch",
        ),
        (
            ctl::Reprint {
                txn_id: Some(online.clone()),
                batch: Some(1),
                ..Default::default()
            },
            "bad_request",
        ),
        (
            ctl::Reprint {
                txn_id: Some(online.clone()),
                pay_slip: true,
                ..Default::default()
            },
            "no_receipt",
        ),
    ] {
        match c.call_json(bad).await {
            Err(posd::control::ControlError::Refused { code: got, .. }) => assert_eq!(got, code),
            other => panic!("{other:?}"),
        }
    }
    // Each sale opened the drawer once; refunds, voids, closed orders and reprints never.
    assert_eq!(emu.drawer_pulses(), 3);
}
