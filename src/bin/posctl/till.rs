//! The till's commands over posd's control socket (`posd_core::control`): status, the queue,
//! transactions, sales, refunds, voids, the batch close, receipts and the print queue — each
//! printed for people, or as the contract's JSON with `--json`.

use crate::out::{exit, money, money_code, shop_time, table, zone_of_status, Align, Failure};
use anyhow::Context;
use posd::cli::posctl::{ReceiptCmd, TillCmd, TxnCmd};
use posd::control::ControlClient;
use posd_core::control as ctl;
use posd_core::i18n::{text, tr, Language, Msg};
use posd_core::txn::{SaleOutcome, Transaction};
use posd_core::zone::ShopZone;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs one control-socket command.
pub fn run(socket: PathBuf, cmd: TillCmd, json: bool) -> anyhow::Result<ExitCode> {
    // These commands print to a terminal or a pipe: `posctl txn list | head` must end quietly,
    // not panic on EPIPE. Only here — the fleet tools keep SIGPIPE ignored, so a broker going
    // away is an error they report, not a silent death.
    // SAFETY: setting a signal disposition to the default before any thread is spawned.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Usage mistakes are found before the daemon is asked anything.
    if let TillCmd::Receipt {
        cmd:
            ReceiptCmd::Render {
                txn: Some(_),
                last: true,
                ..
            },
    } = &cmd
    {
        return Err(Failure::usage("give a transaction id or --last, not both").into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut c = ControlClient::connect(&socket).await?;
        till(&mut c, cmd, json).await
    })
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// The shop's time zone, as the daemon says (UTC from a daemon too old to say).
async fn shop_zone(c: &mut ControlClient) -> anyhow::Result<ShopZone> {
    Ok(zone_of_status(&c.call(ctl::Status {}).await?))
}

/// The shop's language, as the daemon says (English from a daemon too old to say, and for
/// `--json`, whose words are machine codes).
async fn shop_language(c: &mut ControlClient, json: bool) -> Language {
    if json {
        return Language::En;
    }
    match c.call(ctl::Status {}).await {
        Ok(s) => s.language.unwrap_or_default(),
        Err(_) => Language::En,
    }
}

async fn till(c: &mut ControlClient, cmd: TillCmd, json: bool) -> anyhow::Result<ExitCode> {
    let lang = match cmd {
        TillCmd::Current
        | TillCmd::Sale { .. }
        | TillCmd::Refund { .. }
        | TillCmd::Void { .. }
        | TillCmd::BatchClose
        | TillCmd::Reprint { .. } => shop_language(c, json).await,
        _ => Language::En,
    };
    match cmd {
        TillCmd::Status => {
            let v = c.call(ctl::Status {}).await?;
            if json {
                print_json(&v)?;
            } else {
                print_status(&v);
            }
        }
        TillCmd::Queue => {
            let v = c.call(ctl::Queue {}).await?;
            if json {
                print_json(&v)?;
            } else {
                println!(
                    "pending {}  oldest {} s  last seq {}  acked seq {}",
                    v.pending, v.oldest_age_s, v.last_seq, v.acked_seq
                );
                if v.set_aside > 0 {
                    println!("{}", set_aside_line(&v));
                }
            }
        }
        TillCmd::Txn {
            cmd: TxnCmd::List { limit },
        } => {
            let v = c.call(ctl::TxnList { limit: Some(limit) }).await?;
            if json {
                print_json(&v)?;
            } else {
                let off = shop_zone(c).await?;
                print!("{}", txn_table(&v, &off));
            }
        }
        TillCmd::Txn {
            cmd: TxnCmd::Show { id },
        } => {
            let v = c.call(ctl::TxnShow { id }).await?;
            if json {
                print_json(&v)?;
            } else {
                let off = shop_zone(c).await?;
                print!("{}", txn_detail(&v, &off));
            }
        }
        TillCmd::Sale {
            amount,
            currency,
            code,
            method,
        } => {
            let method = match method.as_deref().map(|m| m.replace('-', "_")) {
                None => None,
                Some(m) => Some(
                    serde_json::from_value::<ctl::SaleMethod>(serde_json::Value::String(m.clone()))
                        .map_err(|_| {
                            Failure::usage(format!(
                                "unknown method {m:?}: merchant_qr, code or card"
                            ))
                        })?,
                ),
            };
            let v = c
                .call(ctl::Sale {
                    amount,
                    currency,
                    code,
                    method,
                })
                .await?;
            return print_reply(&v, json, Kind::Sale, lang);
        }
        TillCmd::Refund {
            original,
            receipt,
            amount,
            refund_id,
            pin,
        } => {
            let v = c
                .call(ctl::Refund {
                    original,
                    receipt,
                    amount,
                    refund_id,
                    pin,
                })
                .await?;
            return print_reply(&v, json, Kind::Refund, lang);
        }
        TillCmd::Void { original, pin } => {
            let v = c
                .call(ctl::Void {
                    original: original.clone(),
                    pin,
                })
                .await?;
            return print_reply(&v, json, Kind::Void { original }, lang);
        }
        TillCmd::BatchClose => {
            let v = c.call(ctl::BatchClose {}).await?;
            if json {
                print_json(&v)?;
            } else {
                let z = &v.report;
                let m = |minor: i64| money_code(minor, &z.currency);
                let day = v
                    .business_day
                    .as_deref()
                    .map(|d| tr(lang, Msg::CtlBusinessDay, &[("day", &d)]))
                    .unwrap_or_default();
                println!(
                    "{}",
                    tr(
                        lang,
                        Msg::CtlBatchClosed,
                        &[
                            ("batch", &z.batch_no),
                            ("txn", &v.txn_id),
                            ("seq", &v.seq),
                            ("day", &day),
                            ("sales_n", &z.sales_count),
                            ("sales", &m(z.sales_amount)),
                            ("refunds_n", &z.refunds_count),
                            ("refunds", &m(z.refunds_amount)),
                            ("net", &m(z.net_total)),
                        ]
                    )
                );
                if z.carried_count > 0 {
                    let refs = z.carried_txns.join(", ");
                    println!(
                        "{}",
                        tr(
                            lang,
                            Msg::CtlCarried,
                            &[("n", &z.carried_count), ("refs", &refs)]
                        )
                    );
                }
                if z.carried_in_count > 0 {
                    println!(
                        "{}",
                        tr(lang, Msg::CtlCarriedIn, &[("n", &z.carried_in_count)])
                    );
                }
                let rows: Vec<Vec<String>> = z
                    .rows
                    .iter()
                    .map(|row| {
                        vec![
                            row.kind.clone(),
                            row.method.clone(),
                            row.channel.clone(),
                            row.state.clone(),
                            row.count.to_string(),
                            m(row.amount),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            ("KIND", Align::Left),
                            ("METHOD", Align::Left),
                            ("CHANNEL", Align::Left),
                            ("STATE", Align::Left),
                            ("COUNT", Align::Right),
                            ("AMOUNT", Align::Right),
                        ],
                        &rows
                    )
                );
            }
        }
        TillCmd::Batches => {
            let v = c.call(ctl::Batches { limit: Some(20) }).await?;
            if json {
                print_json(&v)?;
            } else {
                let off = shop_zone(c).await?;
                let rows: Vec<Vec<String>> = v
                    .iter()
                    .map(|b| {
                        vec![
                            b.detail
                                .as_ref()
                                .and_then(|d| d.get("batch_no"))
                                .map(plain)
                                .unwrap_or_default(),
                            shop_time(b.created_at, &off),
                            b.state.as_str().to_string(),
                            money(b.amount, b.currency),
                            b.id.to_string(),
                            b.reason.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            ("BATCH", Align::Right),
                            ("CLOSED", Align::Left),
                            ("STATE", Align::Left),
                            ("NET", Align::Right),
                            ("TXN", Align::Left),
                            ("REASON", Align::Left),
                        ],
                        &rows
                    )
                );
            }
        }
        TillCmd::Current => {
            let v = c.call(ctl::Current {}).await?;
            if json {
                print_json(&v)?;
            } else {
                match &v {
                    None => println!("{}", text(lang, Msg::CtlIdle)),
                    Some(ctl::CurrentReply::Txn(t)) => {
                        let amount = money_code(t.amount, &t.currency);
                        println!(
                            "{}",
                            tr(
                                lang,
                                Msg::CtlCurrent,
                                &[
                                    ("kind", &t.kind.as_str()),
                                    ("method", &t.method.as_str()),
                                    ("amount", &amount),
                                    ("state", &t.state.as_str()),
                                    ("txn", &t.txn_id),
                                    ("ref", &t.short_ref),
                                ]
                            )
                        );
                        if t.recovered {
                            println!(
                                "{}",
                                posd_core::display::notices::recovered_sale(
                                    lang,
                                    &t.short_ref,
                                    &amount
                                )
                            );
                        }
                        if let Some(qr) = &t.qr {
                            println!("{}", tr(lang, Msg::CtlMerchantQr, &[("qr", qr)]));
                        }
                    }
                    Some(ctl::CurrentReply::Awaiting(a)) => match a.awaiting.as_str() {
                        "receipt" => println!("{}", text(lang, Msg::CtlAwaitReceipt)),
                        _ => {
                            let amount = match (a.amount, &a.currency) {
                                (Some(m), Some(cur)) => money_code(m, cur),
                                _ => "?".to_string(),
                            };
                            println!("{}", tr(lang, Msg::CtlAwaitCode, &[("amount", &amount)]));
                        }
                    },
                }
                // What else the cashier must know: alerts and the last refusal.
                let st = c.call(ctl::Status {}).await?;
                print_cashier_notes(&st);
            }
        }
        TillCmd::Cancel => {
            let v = c.call(ctl::Cancel {}).await?;
            if json {
                print_json(&v)?;
            } else {
                println!("{}", v.message);
            }
        }
        TillCmd::Scan { code } => {
            let v = c.call(ctl::Scan { code }).await?;
            if json {
                print_json(&v)?;
            } else {
                println!("{}", v.message);
            }
        }
        TillCmd::Reprint {
            txn,
            batch,
            pay_slip,
        } => {
            let v = c
                .call(ctl::Reprint {
                    txn_id: txn,
                    batch,
                    pay_slip,
                })
                .await?;
            if json {
                print_json(&v)?;
            } else {
                let what = text(
                    lang,
                    match v.kind.as_str() {
                        "z_report" => Msg::CtlWhatZ,
                        "pay_slip" => Msg::CtlWhatPaySlip,
                        _ => Msg::CtlWhatReceipt,
                    },
                );
                println!(
                    "{}",
                    tr(
                        lang,
                        if v.already_queued {
                            Msg::CtlReprintAlreadyQueued
                        } else {
                            Msg::CtlReprintQueued
                        },
                        &[("what", &what), ("txn", &v.txn_id), ("job", &v.job)]
                    )
                );
            }
        }
        TillCmd::PrintJobs => {
            let v = c.call(ctl::PrintJobs { limit: Some(20) }).await?;
            if json {
                print_json(&v)?;
            } else {
                let rows: Vec<Vec<String>> = v
                    .iter()
                    .map(|j| {
                        vec![
                            j.id.to_string(),
                            j.state.clone(),
                            j.attempts.to_string(),
                            j.txn_id.clone(),
                            j.last_error.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            ("JOB", Align::Right),
                            ("STATE", Align::Left),
                            ("ATTEMPTS", Align::Right),
                            ("TXN", Align::Left),
                            ("LAST ERROR", Align::Left),
                        ],
                        &rows
                    )
                );
            }
        }
        TillCmd::Receipt {
            cmd:
                ReceiptCmd::Render {
                    txn,
                    last: _,
                    batch,
                    pay_slip,
                    png,
                    text,
                },
        } => {
            let v = c
                .call(ctl::Receipt {
                    txn_id: txn,
                    batch,
                    pay_slip,
                })
                .await?;
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&v.escpos_b64)
                .context("bad receipt bytes from posd")?;
            let opts = posd_core::receipt::RenderOptions::for_width(v.width);
            if let Some(path) = &png {
                let img = posd_core::receipt::render_png(&bytes, &opts)?;
                std::fs::write(path, img).with_context(|| format!("write {}", path.display()))?;
                if !json {
                    eprintln!("receipt of {} drawn to {}", v.txn_id, path.display());
                }
            }
            if json {
                let mut doc = serde_json::to_value(&v)?;
                if text || png.is_none() {
                    doc["text"] = render_text(&bytes, &opts).into();
                }
                if let Some(path) = &png {
                    doc["png"] = path.display().to_string().into();
                }
                print_json(&doc)?;
            } else if text || png.is_none() {
                print!("{}", render_text(&bytes, &opts));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render_text(bytes: &[u8], opts: &posd_core::receipt::RenderOptions) -> String {
    posd_core::receipt::render_text(bytes, opts)
}

/// What a sale-like reply answers.
enum Kind {
    Sale,
    Refund,
    Void { original: String },
}

/// Prints a sale, refund or void reply; the exit code says how it ended (0 approved, 3
/// declined or cancelled, 6 pending).
fn print_reply(
    v: &ctl::SaleReply,
    json: bool,
    kind: Kind,
    lang: Language,
) -> anyhow::Result<ExitCode> {
    let code = match &v.outcome {
        SaleOutcome::Approved { .. } => exit::OK,
        SaleOutcome::Declined { .. } | SaleOutcome::Cancelled { .. } => exit::DECLINED,
        SaleOutcome::Pending { .. } => exit::PENDING,
    };
    if json {
        print_json(v)?;
        return Ok(ExitCode::from(code));
    }
    let amount = money_code(v.amount, &v.currency);
    let txn = &v.txn_id;
    let with_reason = |m: Msg, reason: &str| {
        tr(
            lang,
            m,
            &[("amount", &amount), ("reason", &reason), ("txn", txn)],
        )
    };
    let line = match (&v.outcome, &kind) {
        (SaleOutcome::Approved { .. }, Kind::Void { original }) => tr(
            lang,
            Msg::CtlVoided,
            &[("original", original), ("txn", txn)],
        ),
        (SaleOutcome::Approved { host_ref }, _) => {
            let host = host_ref
                .as_deref()
                .map(|h| tr(lang, Msg::CtlHostRef, &[("ref", &h)]))
                .unwrap_or_default();
            let m = if matches!(kind, Kind::Refund) {
                Msg::CtlRefunded
            } else {
                Msg::CtlApproved
            };
            tr(
                lang,
                m,
                &[("amount", &amount), ("host", &host), ("txn", txn)],
            )
        }
        (SaleOutcome::Declined { reason }, _) => with_reason(Msg::CtlDeclined, reason),
        (SaleOutcome::Cancelled { reason }, _) => with_reason(Msg::CtlCancelled, reason),
        (SaleOutcome::Pending { reason }, _) => with_reason(Msg::CtlPending, reason),
    };
    println!("{line}");
    Ok(ExitCode::from(code))
}

fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The receipt's short reference: the last 12 hex digits of the id.
fn short_ref(t: &Transaction) -> String {
    let id = t.id.simple().to_string();
    id[id.len().saturating_sub(12)..].to_string()
}

fn txn_table(v: &[Transaction], off: &ShopZone) -> String {
    let rows: Vec<Vec<String>> = v
        .iter()
        .map(|t| {
            vec![
                shop_time(t.created_at, off),
                short_ref(t),
                t.kind.as_str().to_string(),
                t.method.as_str().to_string(),
                money(t.amount, t.currency),
                t.state.as_str().to_string(),
                t.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            ("TIME", Align::Left),
            ("REF", Align::Left),
            ("KIND", Align::Left),
            ("METHOD", Align::Left),
            ("AMOUNT", Align::Right),
            ("STATE", Align::Left),
            ("REASON", Align::Left),
        ],
        &rows,
    )
}

fn txn_detail(v: &ctl::TxnDetail, off: &ShopZone) -> String {
    let t = &v.txn;
    let mut s = String::new();
    let mut field = |k: &str, val: String| {
        if !val.is_empty() {
            s.push_str(&format!("{k:<12} {val}\n"));
        }
    };
    field("txn", t.id.to_string());
    field("receipt ref", short_ref(t));
    field("kind", t.kind.as_str().into());
    field("method", t.method.as_str().into());
    field("channel", t.channel.clone().unwrap_or_default());
    field("amount", money(t.amount, t.currency));
    field("state", t.state.as_str().into());
    field("reason", t.reason.clone().unwrap_or_default());
    field("code", t.code_masked.clone().unwrap_or_default());
    field("host ref", t.host_ref.clone().unwrap_or_default());
    field("created", shop_time(t.created_at, off));
    field("updated", shop_time(t.updated_at, off));
    if let Some(d) = &t.detail {
        field("detail", d.to_string());
    }
    s.push_str("history:\n");
    let rows: Vec<Vec<String>> = v
        .history
        .iter()
        .map(|h| vec![h.seq.to_string(), h.state.clone(), shop_time(h.at, off)])
        .collect();
    for line in table(
        &[
            ("SEQ", Align::Right),
            ("STATE", Align::Left),
            ("AT", Align::Left),
        ],
        &rows,
    )
    .lines()
    {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Events set aside are said loudly: they need a person (docs/payments.md, "Message sizes").
fn set_aside_line(q: &ctl::QueueStats) -> String {
    format!(
        "SET ASIDE  {} event(s) too big to deliver (last seq {}): kept in the journal (table \
         set_aside), a stub sent in their place; tell the payment platform",
        q.set_aside, q.set_aside_last_seq
    )
}

/// What the cashier must know (issue 15): the alerts in force and the last refusal.
fn print_cashier_notes(v: &ctl::StatusDoc) {
    let lang = v.language.unwrap_or_default();
    for a in &v.alerts {
        println!("{}", tr(lang, Msg::CtlAlert, &[("text", &a.text)]));
    }
    if let Some(r) = &v.last_refusal {
        let at = shop_time(r.at, &zone_of_status(v));
        println!(
            "{}",
            tr(
                lang,
                Msg::CtlRefusedAt,
                &[("at", &at), ("reason", &r.reason), ("code", &r.code)]
            )
        );
    }
}

/// The link as the till judges it (issue 15): connected and when the host last answered, not
/// connected, or the host silent since when; and the offline sales the host has not seen yet.
fn print_link(v: &ctl::StatusDoc) {
    let lang = v.language.unwrap_or_default();
    let off = zone_of_status(v);
    let Some(b) = &v.broker else { return };
    let line = match b.state.as_deref() {
        Some("host_silent") => {
            let since = shop_time(b.silent_since.unwrap_or(0), &off);
            tr(lang, Msg::CtlLinkSilent, &[("since", &since)])
        }
        Some("not_connected") => text(lang, Msg::CtlLinkDown).to_string(),
        Some(_) => match b.last_heard_at {
            Some(at) => tr(lang, Msg::CtlLinkUsable, &[("heard", &shop_time(at, &off))]),
            None => text(lang, Msg::CtlLinkUsableNever).to_string(),
        },
        // A daemon too old to judge the link: what `online` says.
        None if v.online => text(lang, Msg::CtlLinkUsableNever).to_string(),
        None => text(lang, Msg::CtlLinkDown).to_string(),
    };
    println!("{line}");
    if v.queue.offline_unsynced > 0 {
        println!(
            "{}",
            tr(lang, Msg::CtlToSync, &[("n", &v.queue.offline_unsynced)])
        );
    }
}

fn print_status(v: &ctl::StatusDoc) {
    let off = &zone_of_status(v);
    println!("terminal   {}", v.terminal);
    println!("online     {}", v.online);
    print_link(v);
    print_cashier_notes(v);
    if let Some(b) = &v.broker {
        let state = if v.online {
            format!("connected ({} connection(s) since start)", b.connects)
        } else {
            let next = b
                .next_retry_at
                .map(|t| format!("; next try in {} s", t.saturating_sub(v.at).div_ceil(1000)))
                .unwrap_or_default();
            format!(
                "not connected ({} failed attempt(s) in a row{next})",
                b.failures
            )
        };
        println!("broker     {} {state}", b.url);
        if let Some(e) = &b.last_error {
            println!(
                "last error {}: {e}",
                shop_time(b.last_error_at.unwrap_or(0), off)
            );
        }
    }
    println!(
        "version    {} ({})",
        v.version,
        v.commit.as_deref().unwrap_or("")
    );
    println!("session    {}", v.session);
    println!(
        "time zone  {} (UTC{} now)",
        off.name(),
        posd_core::receipt::layout::format_time(off.local_time(v.at))
            .rsplit(' ')
            .next()
            .unwrap_or("")
    );
    println!(
        "queue      {} pending, oldest {} s (last seq {}, acked {})",
        v.queue.pending, v.queue.oldest_age_s, v.queue.last_seq, v.queue.acked_seq
    );
    if v.queue.set_aside > 0 {
        println!("           {}", set_aside_line(&v.queue));
    }
    let w = &v.wire;
    println!(
        "broker     MQTT {}, {} connection(s) since start; dropped: {} oversize, {} malformed, \
         {} refused packet(s){}",
        w.protocol,
        w.connects,
        w.dropped_oversize,
        w.dropped_malformed,
        w.refused_packets,
        w.last_drop
            .as_deref()
            .map(|d| format!(" (last: {d})"))
            .unwrap_or_default()
    );
    if w.broker_refused > 0 {
        let limit = w
            .broker_event_limit
            .map(|n| {
                format!(
                    "; events over {n} bytes are set aside (raise the broker's message size limit)"
                )
            })
            .unwrap_or_default();
        println!(
            "           the broker refused {} message(s) of ours{limit}",
            w.broker_refused
        );
    }
    let last_push = match &v.config {
        Some(cfg) if cfg.is_object() => format!(
            "; last push: version {} {}{}",
            plain(&cfg["version"]),
            plain(&cfg["state"]),
            cfg["error"]
                .as_str()
                .map(|e| format!(" ({e}: {})", plain(&cfg["message"])))
                .unwrap_or_default()
        ),
        _ => String::new(),
    };
    println!(
        "config     {}{last_push}",
        match v.config_version {
            Some(n) => format!("version {n} (pushed)"),
            None => "local file".to_string(),
        }
    );
    let h = &v.host_messages;
    let keys = h
        .keys
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "host msgs  {}; refused since start: resp {}, notify {}, ack {}{}{}",
        match (h.unsigned_accepted, h.keys.is_empty()) {
            (true, _) => "UNSIGNED ACCEPTED (lab only: broker.lab_accept_unsigned)".to_string(),
            (false, true) => "no host key: every answer is refused ([[broker.host_keys]])".into(),
            (false, false) => format!("signed by host key {keys}"),
        },
        h.refused.resp,
        h.refused.notify,
        h.refused.ack,
        match h.not_checked {
            0 => String::new(),
            n => format!(", {n} of them not checked (a flood of failures)"),
        },
        h.last_refusal
            .as_ref()
            .map(|r| format!(" (last: {} {}: {})", r.kind.as_str(), r.code, r.message))
            .unwrap_or_default()
    );
    for (k, d) in &v.devices {
        println!("device     {k}: {d}");
    }
    if let Some(p) = &v.printer {
        if let Some(name) = &p.reported_name {
            println!("printer    reports itself as {name}");
        }
        for w in &p.warnings {
            println!("warning    printer: {w}");
        }
    }
    if let Some(d) = &v.disk {
        let mb = |b: u64| format!("{:.1} MB", b as f64 / 1048576.0);
        println!(
            "disk       {}: {} free of {} (low below {}, sales refused below {}); journal {} + log {}, {}",
            d.level.as_str(),
            mb(d.free_bytes),
            mb(d.total_bytes),
            mb(d.warn_below_bytes),
            mb(d.refuse_below_bytes),
            mb(d.db_bytes),
            mb(d.wal_bytes),
            match d.auto_vacuum.as_str() {
                "incremental" => "gives space back".to_string(),
                other => format!("auto_vacuum {other}: pruned space is reused, not given back"),
            }
        );
        println!(
            "retention  {} days; {} transactions pruned since start{}",
            d.retention_days,
            d.pruned_txns,
            d.oldest_txn_at
                .map(|t| format!("; oldest kept created at {t} (unix ms)"))
                .unwrap_or_default()
        );
    }
}
