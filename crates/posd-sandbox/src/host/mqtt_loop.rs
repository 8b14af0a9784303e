//! The host's broker session: subscribes to every terminal's `events` and `req` and to the
//! wallet topic, commits and acknowledges events in small batches, and publishes answers,
//! late answers, automatic order payments and notifies once their transaction has committed.

use super::db::open_db;
use super::events::{contiguous, store_event, Stored};
use super::orders::{pay_order, wallet_pay, wallet_pay_topic, wallet_result_topic, PayOutcome};
use super::reply::{Effects, Reply};
use super::requests::answer;
use super::{HostConfig, HostError};
use crate::mqtt::now_ms;
use posd_core::protocol::signed::{HostKind, HostSigner};
use posd_core::protocol::{self, Ack, Notify, Response, Topics};
use rumqttc::{Client, Event, Packet, QoS};
use rusqlite::TransactionBehavior;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs a host instance until `stop` is set.
pub fn run(cfg: HostConfig, stop: Arc<AtomicBool>) -> Result<(), HostError> {
    let mut db = open_db(&cfg.db)?;
    let mut opts =
        crate::mqtt::options(&cfg.client_id, &cfg.broker_url, 30).map_err(HostError::Broker)?;
    opts.set_clean_session(true);
    let (client, mut conn) = Client::new(opts, 4096);
    crate::mqtt::disable_nagle(&mut conn.eventloop);
    let prefix = cfg.prefix.trim_end_matches('/').to_string();
    let mut later: Vec<(u64, String, Response)> = Vec::new();
    let mut batch_terminals: BTreeSet<String> = BTreeSet::new();
    let mut batch_started: Option<u64> = None;
    // Events stored in the open batch: it closes early at `cfg.batch_max`.
    let mut batch_events = 0usize;
    let mut tx_open = false;
    let mut notifies: Vec<(String, Notify)> = Vec::new();
    // Automatic order payments (due ms, txn_id): in memory only, lost on a restart.
    let mut pays: Vec<(u64, String)> = Vec::new();
    let pay_topic = wallet_pay_topic(&prefix);
    // Subscriptions asked for at the last CONNACK and not yet acknowledged; `cfg.ready_file`
    // is written when the first connection's are all acknowledged.
    let mut awaiting_subacks = 0usize;
    let mut ready_written = false;
    let signer = cfg.signer.clone();
    let publish_notify = |term: &str, n: &Notify| {
        if let Err(e) = client.try_publish(
            Topics::new(&prefix, term).notify(),
            QoS::AtLeastOnce,
            false,
            body(signer.as_ref(), term, HostKind::Notify, n),
        ) {
            log::warn!("host: notify not queued: {e}");
        }
    };
    log::info!("sandbox host {} on {}", cfg.client_id, cfg.broker_url);
    while !stop.load(Ordering::Relaxed) {
        let now = now_ms();
        // Commit and acknowledge the current batch when it is old enough or full.
        if let Some(start) = batch_started {
            if now >= start.saturating_add(cfg.batch_ms) || batch_events >= cfg.batch_max {
                if tx_open {
                    db.execute_batch("COMMIT")?;
                    tx_open = false;
                }
                let t = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut acks = Vec::new();
                for term in &batch_terminals {
                    acks.push((term.clone(), contiguous(&t, term)?));
                }
                t.commit()?;
                for (term, n) in notifies.drain(..) {
                    publish_notify(&term, &n);
                }
                for (term, upto_seq) in acks {
                    let body = body(signer.as_ref(), &term, HostKind::Ack, &Ack { upto_seq });
                    if let Err(e) = client.try_publish(
                        Topics::new(&prefix, &term).ack(),
                        QoS::AtLeastOnce,
                        false,
                        body,
                    ) {
                        log::warn!("host: ack not queued: {e}");
                    }
                }
                batch_terminals.clear();
                batch_started = None;
                batch_events = 0;
            }
        }
        // Late answers that are due.
        later.sort_by_key(|l| l.0);
        while later.first().is_some_and(|l| l.0 <= now) {
            let (_, term, r) = later.remove(0);
            let body = body(signer.as_ref(), &term, HostKind::Resp, &r);
            let _ = client.try_publish(
                Topics::new(&prefix, &term).resp(),
                QoS::AtLeastOnce,
                false,
                body,
            );
        }
        // Automatic order payments that are due (a closed order is never paid).
        pays.sort_by_key(|p| p.0);
        while pays.first().is_some_and(|p| p.0 <= now) {
            let (_, txn) = pays.remove(0);
            if tx_open {
                db.execute_batch("COMMIT")?;
                tx_open = false;
            }
            let t = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let outcome = pay_order(&t, &txn, now, false)?;
            t.commit()?;
            match outcome {
                PayOutcome::Paid {
                    terminal,
                    notify: Some(n),
                    ..
                } => publish_notify(&terminal, &n),
                PayOutcome::Paid { notify: None, .. } => {
                    log::info!("host: order {txn} paid; its notify is lost (amount ends in 33)")
                }
                PayOutcome::Refused(why) => {
                    log::info!("host: automatic payment of {txn} not made: {why}")
                }
            }
        }
        let mut wait = match batch_started {
            Some(s) => s.saturating_add(cfg.batch_ms).saturating_sub(now).max(1),
            None => 200,
        };
        if let Some(p) = pays.first() {
            wait = wait.min(p.0.saturating_sub(now).max(1));
        }
        let ev = match conn.recv_timeout(Duration::from_millis(wait)) {
            Ok(ev) => ev,
            Err(_) => continue,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                awaiting_subacks = 0;
                // `+`: every terminal, an MQTT wildcard in the terminal's place.
                let every = Topics::new(&prefix, "+");
                let leaves = [every.events(), every.req(), pay_topic.clone()];
                for leaf in leaves {
                    let topic = match &cfg.group {
                        Some(g) => format!("$share/{g}/{leaf}"),
                        None => leaf,
                    };
                    match client.try_subscribe(topic, QoS::AtLeastOnce) {
                        Ok(()) => awaiting_subacks += 1,
                        Err(e) => log::error!("host: subscribe: {e}"),
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                awaiting_subacks = awaiting_subacks.saturating_sub(1);
                if awaiting_subacks == 0 && !ready_written {
                    if let Some(path) = &cfg.ready_file {
                        if let Err(e) = std::fs::write(path, b"") {
                            log::error!("host: cannot write {}: {e}", path.display());
                        }
                    }
                    ready_written = true;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == pay_topic => {
                // Before terminal routing: split_topic would take "sandbox" for a terminal.
                if tx_open {
                    db.execute_batch("COMMIT")?;
                    tx_open = false;
                }
                let t = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let (result, notify) = wallet_pay(&t, &p.payload, now)?;
                t.commit()?;
                if let Some((term, n)) = notify {
                    publish_notify(&term, &n);
                }
                if let Err(e) = client.try_publish(
                    wallet_result_topic(&prefix),
                    QoS::AtLeastOnce,
                    false,
                    result.to_string(),
                ) {
                    log::warn!("host: wallet result not queued: {e}");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some((terminal, leaf)) = protocol::split_topic(&prefix, &p.topic) else {
                    continue;
                };
                let terminal = terminal.to_string();
                match leaf {
                    "events" => {
                        if !tx_open {
                            db.execute_batch("BEGIN IMMEDIATE")?;
                            tx_open = true;
                        }
                        // Inside the batch's open transaction: committed (durable) before the ack.
                        let stored = match store_event(&db, &terminal, &p.payload, now, &cfg)? {
                            Stored::Bad => false,
                            Stored::Ok => true,
                            Stored::Notify(n) => {
                                notifies.push((terminal.clone(), n));
                                true
                            }
                            Stored::Notifies(ns) => {
                                notifies.extend(ns.into_iter().map(|n| (terminal.clone(), n)));
                                true
                            }
                        };
                        // The batch holds it: acked with it, and one event nearer full.
                        if stored {
                            batch_events += 1;
                            batch_terminals.insert(terminal);
                            batch_started.get_or_insert(now);
                        }
                    }
                    "req" => {
                        let req = match protocol::parse_request(&p.payload) {
                            Ok(r) => r,
                            Err(e) => {
                                log::error!("host: {e}");
                                continue;
                            }
                        };
                        if tx_open {
                            db.execute_batch("COMMIT")?;
                            tx_open = false;
                        }
                        let t = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                        let mut fx = Effects::default();
                        let reply = answer(&t, &terminal, &req, now, &cfg, &mut fx)?;
                        t.commit()?;
                        pays.append(&mut fx.pays);
                        match reply {
                            Reply::Now(r) => {
                                let body = body(signer.as_ref(), &terminal, HostKind::Resp, &r);
                                if let Err(e) = client.try_publish(
                                    Topics::new(&prefix, &terminal).resp(),
                                    QoS::AtLeastOnce,
                                    false,
                                    body,
                                ) {
                                    log::warn!("host: resp not queued: {e}");
                                }
                            }
                            Reply::Later(at, r) => later.push((at, terminal, r)),
                            Reply::Never => {}
                        }
                        for (term, n) in fx.notifies {
                            publish_notify(&term, &n);
                        }
                    }
                    _ => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                log::debug!("host: broker: {e}");
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
    if tx_open {
        db.execute_batch("COMMIT")?;
    }
    let _ = client.disconnect();
    Ok(())
}

/// What goes on `terminal`'s `kind` topic for `msg`: the signed envelope of its JSON bytes, or
/// (unsigned host, lab only) the JSON itself.
fn body<T: serde::Serialize>(
    signer: Option<&HostSigner>,
    terminal: &str,
    kind: HostKind,
    msg: &T,
) -> Vec<u8> {
    let json = serde_json::to_vec(msg).unwrap_or_default();
    match signer {
        Some(s) => s.seal_json(terminal, kind, &json),
        None => json,
    }
}
