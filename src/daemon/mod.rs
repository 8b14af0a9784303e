//! The daemon: wires the journal, the MQTT link, the sale engine, the control socket, the
//! console and systemd together, and shuts them down gracefully on SIGTERM.

mod fleet_impl;

use crate::clock::{now_ms, GIT_COMMIT, VERSION};
use crate::config::Config;
use crate::control::{self, ControlCtx, StatusProvider};
use crate::engine::{self, EngineMsg, EngineParams, OfflineRuntime};
use crate::link::{self, Inbound, LinkParams, StatusFn};
use crate::store::{QueueStats, SettlementVerdict, Store, StoreError};
use posd_core::control::StatusDoc;
use posd_core::display::UiEvent;
use posd_core::protocol::{self, BatchStatus, Notify, PaymentStatus, SettlementStatus};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("journal: {0}")]
    Store(StoreError),
    #[error("MQTT link: {0}")]
    Link(link::LinkError),
    #[error("control socket: {0}")]
    Control(control::ControlError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("signal handling: {0}")]
    Signal(std::io::Error),
}

posd_core::wraps_error!(DaemonError {
    Store(StoreError),
    Link(link::LinkError),
    Control(control::ControlError),
});

/// Runs posd until `stop` resolves (SIGTERM/SIGINT in the binary).
pub async fn run(
    cfg: Config,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let store = Store::open(&cfg.db_path())?;
    let r = serve(&store, cfg, stop).await;
    // On every way out (a stop, or a start that failed after the engine began): the tasks on
    // the journal's thread (the engine, the control socket) end and the journal closes (its
    // log checkpointed).
    if tokio::time::timeout(Duration::from_secs(5), store.close())
        .await
        .is_err()
    {
        log::warn!("the journal did not close within 5 s; it is recovered at the next start");
    }
    r
}

async fn serve(
    store: &Store,
    cfg: Config,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let disk = crate::retention::DiskWatch::new(cfg.terminal.state_dir.clone(), &cfg.retention);
    // Fleet (issue 8): the local file overlaid with the last applied push.
    let local = cfg;
    let (cfg, fleet_view) = crate::fleet::startup(store, &local).await;
    crate::lang::set(cfg.terminal.language);
    let patterns = posd_core::codes::Patterns::new(cfg.codes.clone())
        .map_err(|e| DaemonError::Config(e.to_string()))?;
    let offline = OfflineRuntime::from_config(&cfg.offline, cfg.terminal.currency)
        .map_err(|e| DaemonError::Config(e.to_string()))?;
    for w in cfg.warnings() {
        log::warn!("configuration: {w}");
    }
    let (zone, zone_source) = cfg
        .shop_zone()
        .map_err(|p| DaemonError::Config(p.to_string()))?;
    log::info!("shop time zone {} ({zone_source})", zone.name());
    let receipt_ctx = posd_core::receipt::ReceiptCtx {
        terminal: cfg.terminal.id.clone(),
        zone: zone.clone(),
        drawer: posd_core::receipt::DrawerPolicy::from_config(&cfg.receipt),
        language: cfg.terminal.language,
    };
    if cfg.devices.printer.is_some() {
        let ctx = receipt_ctx.clone();
        store
            .call(move |db| {
                db.set_receipts(Some(ctx));
                Ok(())
            })
            .await?;
    }
    let printer_state = cfg
        .devices
        .printer
        .as_ref()
        .map(|_| watch::channel(posd_core::control::PrinterHealth::default()));
    let printer_rx = printer_state.as_ref().map(|(_, rx)| rx.clone());
    // One code, one sale (issue 15): the key of the in-flight digests, beside the journal.
    let code_key = crate::store::code_key(&cfg.terminal.state_dir)?;
    let (refusal_tx, refusal_rx) = watch::channel::<Option<posd_core::control::CodeRefusal>>(None);
    // Offline codes are off while the clock is not trusted: the cashier is told (issue 15).
    // The `[offline]` in force decides (a fleet push changes it: `EngineApplier`).
    let (offline_clock_tx, offline_clock) =
        watch::channel(cfg.offline.enabled.then_some(cfg.offline.clock));
    let session = uuid::Uuid::now_v7().to_string();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (inbound_tx, mut inbound_rx) = mpsc::channel::<Inbound>(1024);
    let (engine_tx, engine_rx) = mpsc::channel::<EngineMsg>(256);
    let (ui_tx, _) = broadcast::channel::<UiEvent>(64);
    // The displays listen before the engine starts, so a sale recovered at start is shown.
    let console_rx = cfg.devices.console.then(|| ui_tx.subscribe());
    let vfd_rx = cfg
        .devices
        .customer_display
        .as_ref()
        .map(|_| ui_tx.subscribe());

    let terminal = cfg.terminal.id.clone();
    let camera_status = cfg
        .devices
        .camera
        .as_ref()
        .map(|_| watch::channel(crate::camera::CameraStatus::Starting));
    let camera_rx = camera_status.as_ref().map(|(_, rx)| rx.clone());
    use crate::devices::{self, status_channel, DeviceStatus};
    let hid = cfg
        .devices
        .hid_scanner
        .clone()
        .map(|c| (c, status_channel()));
    let serial = cfg
        .devices
        .serial_scanner
        .clone()
        .map(|c| (c, status_channel()));
    let keypad = cfg.devices.keypad.clone().map(|c| (c, status_channel()));
    let vfd = cfg
        .devices
        .customer_display
        .clone()
        .map(|c| (c, status_channel()));
    let dev_rx: Vec<(&'static str, watch::Receiver<DeviceStatus>)> = [
        ("hid_scanner", hid.as_ref().map(|(_, (_, rx))| rx.clone())),
        (
            "serial_scanner",
            serial.as_ref().map(|(_, (_, rx))| rx.clone()),
        ),
        ("keypad", keypad.as_ref().map(|(_, (_, rx))| rx.clone())),
        (
            "customer_display",
            vfd.as_ref().map(|(_, (_, rx))| rx.clone()),
        ),
    ]
    .into_iter()
    .filter_map(|(n, rx)| rx.map(|rx| (n, rx)))
    .collect();
    let printer_rx_for_alerts = printer_rx.clone();
    let status_fn: StatusFn = {
        let dev_rx = dev_rx.clone();
        let terminal = terminal.clone();
        let session = session.clone();
        let console = cfg.devices.console;
        let camera_rx = camera_rx.clone();
        let fleet_view = fleet_view.clone();
        let zone = zone.clone();
        let disk = disk.clone();
        Arc::new(move |online: bool, q: QueueStats| {
            let mut devices = BTreeMap::new();
            devices.insert(
                "console".to_string(),
                if console { "ok" } else { "disabled" }.to_string(),
            );
            if let Some(rx) = &camera_rx {
                devices.insert("camera".into(), rx.borrow().to_string());
            }
            let printer = printer_rx.as_ref().map(|rx| rx.borrow().clone());
            if let Some(h) = &printer {
                devices.insert("printer".into(), posd_core::display::printer_text(h));
            }
            for (name, rx) in &dev_rx {
                devices.insert(name.to_string(), rx.borrow().to_string());
            }
            let summary = crate::fleet::summary(&fleet_view);
            StatusDoc {
                alerts: Vec::new(),
                last_refusal: None,
                terminal: terminal.clone(),
                online,
                session: session.clone(),
                version: VERSION.to_string(),
                config_version: summary.config_version,
                config: summary.report,
                // The retained MQTT status carries the depth and age only.
                queue: QueueStats {
                    last_seq: 0,
                    acked_seq: 0,
                    ..q
                },
                devices,
                // Filled in from the link (`LinkShared::host_trust`) by whoever publishes it.
                host_messages: Default::default(),
                at: now_ms(),
                printer,
                commit: None,
                // The offset in force now (the daylight-saving one in summer), for tools that
                // predate `time_zone`.
                utc_offset_s: Some(zone.offset_s_at(now_ms())),
                time_zone: Some(zone.name().to_string()),
                // Filled in from the link by the control socket's status.
                broker: None,
                // Filled in from the link (`LinkShared::wire_status`) by whoever publishes it.
                wire: Default::default(),
                disk: Some(disk.status()),
                language: Some(crate::lang::current()),
            }
        })
    };
    // The link stops after the rest: its last word at a stop (`Link::goodbye`) needs the event
    // loop running. Dropped on every other way out of `serve`, which stops it too.
    let (link_stop_tx, link_stop) = watch::channel(false);
    let link = link::start(
        LinkParams {
            terminal: terminal.clone(),
            session: session.clone(),
            broker: cfg.broker.clone(),
            store: store.clone(),
            inbound: inbound_tx,
            status: status_fn.clone(),
        },
        link_stop,
    )?;

    let print_wake = cfg
        .devices
        .printer
        .as_ref()
        .map(|_| Arc::new(tokio::sync::Notify::new()));
    let engine_beat: engine::Heartbeat = Arc::new(AtomicU64::new(now_ms()));
    // The engine and the control socket run on the journal's own thread: a sale's commits
    // are made there and then, with no hand-off to another thread (issue 18).
    let engine_task = store.spawn(engine::run(
        EngineParams {
            store: store.clone(),
            link: link.clone(),
            policy: cfg.online.policy(),
            currency: cfg.terminal.currency,
            max_amount: cfg.limits.max_sale_amount,
            patterns,
            offline,
            ui: ui_tx.clone(),
            terminal: terminal.clone(),
            merchant_qr: engine::MerchantQrRuntime {
                platform: cfg.merchant_qr.mode == crate::config::MerchantQrMode::Platform,
                merchant: cfg.merchant_qr.merchant.clone(),
                print: cfg.merchant_qr.print,
                policy: cfg.merchant_qr.policy(&cfg.online),
            },
            card: engine::CardRuntime {
                host_key: cfg.card.host_key().map_err(DaemonError::Config)?,
                chip_reader: cfg.card.chip_reader,
                saf: cfg.card.store_and_forward,
            },
            refund_policy: posd_core::refund::RefundPolicy::default(),
            pin_hash: (!cfg.manager.pin_hash.is_empty()).then(|| cfg.manager.pin_hash.clone()),
            printer: print_wake.clone(),
            zone: zone.clone(),
            disk: disk.clone(),
            code_key,
            printer_health: printer_state.as_ref().map(|(_, rx)| rx.clone()),
            refusals: refusal_tx,
        },
        engine_rx,
        engine_beat.clone(),
        shutdown.clone(),
    ));

    let print_handle = print_wake.clone().map(|wake| crate::printq::PrintHandle {
        store: store.clone(),
        ctx: receipt_ctx.clone(),
        wake,
    });
    let fleet_tx = crate::fleet::FleetAgent {
        store: store.clone(),
        link: link.clone(),
        terminal: terminal.clone(),
        keys: posd_core::fleet::envelope::FleetKeys::from_config(&local.fleet.keys)
            .map_err(|e| DaemonError::Config(e.to_string()))?,
        local,
        current: cfg.clone(),
        applier: fleet_impl::EngineApplier {
            engine: engine_tx.clone(),
            store: store.clone(),
            offline_clock: offline_clock_tx,
        },
        commands: fleet_impl::DaemonCommands {
            link: link.clone(),
            store: store.clone(),
            view: fleet_view.clone(),
            printer: print_handle.clone(),
            engine: engine_tx.clone(),
        },
        view: fleet_view,
    }
    .spawn(shutdown.clone());

    // Host → terminal messages, from the link's event loop to the engine: both on the journal's
    // thread, so this runs there too.
    {
        let engine_tx = engine_tx.clone();
        store.spawn(async move {
            let mut next = None;
            loop {
                let msg = match next.take() {
                    Some(m) => m,
                    None => match inbound_rx.recv().await {
                        Some(m) => m,
                        None => return,
                    },
                };
                match msg {
                    Inbound::Resp(r) => {
                        if engine_tx.send(EngineMsg::Resp(r)).await.is_err() {
                            return;
                        }
                    }
                    Inbound::Notify(n) => {
                        let mut msg = notify_msg(n);
                        if let EngineMsg::Settlements(batch) = &mut msg {
                            next = take_settlements(batch, &mut inbound_rx);
                        }
                        if engine_tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    Inbound::CfgDesired(b) => {
                        let _ = fleet_tx.send(crate::fleet::FleetMsg::Cfg(b)).await;
                    }
                    Inbound::Cmd(b) => {
                        let _ = fleet_tx.send(crate::fleet::FleetMsg::Cmd(b)).await;
                    }
                }
            }
        });
    }

    let status_provider: StatusProvider = {
        let store = store.clone();
        let link = link.clone();
        let status_fn = status_fn.clone();
        let broker_url = cfg.broker.url.clone();
        let refusal_rx = refusal_rx.clone();
        let offline_clock = offline_clock.clone();
        Arc::new(move || {
            let store = store.clone();
            let link = link.clone();
            let status_fn = status_fn.clone();
            let broker_url = broker_url.clone();
            let refusal_rx = refusal_rx.clone();
            let offline_clock = *offline_clock.borrow();
            Box::pin(async move {
                // The journal's last numbers, read without a journal call. (`status` runs on
                // the journal thread, between its jobs: it waits for at most the one running.)
                let q = store.queue_stats(now_ms());
                let online = link.is_connected();
                let mut v = status_fn(online, q);
                v.queue = q;
                v.alerts = posd_core::display::notices::alerts(&alert_inputs(
                    online,
                    &q,
                    v.printer.as_ref(),
                    offline_clock,
                ));
                v.last_refusal = refusal_rx.borrow().clone();
                v.host_messages = link.shared.host_trust();
                v.wire = link.wire_status();
                v.commit = Some(GIT_COMMIT.to_string());
                v.broker = Some(posd_core::control::BrokerLinkStatus {
                    url: broker_url,
                    ..link.shared.conn_status()
                });
                v
            })
        })
    };
    if let (Some(pcfg), Some((state_tx, _)), Some(wake)) = (
        cfg.devices.printer.clone(),
        printer_state,
        print_wake.clone(),
    ) {
        let state_rx = state_tx.subscribe();
        forward_printer_to_ui(state_tx.subscribe(), ui_tx.clone(), shutdown.clone());
        tokio::spawn(crate::printq::run(
            store.clone(),
            pcfg,
            cfg.receipt.clone(),
            wake,
            state_tx,
            shutdown.clone(),
        ));
        forward_status_changes(state_rx, link.clone(), shutdown.clone(), printer_key);
    }
    let listener = control::bind(&cfg.control.socket)?;
    store.spawn(control::serve(
        listener,
        ControlCtx {
            store: store.clone(),
            engine: engine_tx.clone(),
            currency: cfg.terminal.currency,
            status: status_provider,
            receipt_ctx,
            receipt_cfg: cfg.receipt.clone(),
            printer: print_handle.clone(),
        },
        control::Limits::from_config(&cfg.control),
        shutdown.clone(),
    ));

    if let Some(rx) = console_rx {
        spawn_console(rx, engine_tx.clone(), shutdown.clone());
    }
    spawn_alerts(
        store.clone(),
        link.clone(),
        printer_rx_for_alerts,
        offline_clock.clone(),
        ui_tx.clone(),
        shutdown.clone(),
    );
    if let Some((c, (tx, _))) = hid {
        devices::spawn_hid_scanner(c, engine_tx.clone(), tx, shutdown.clone());
    }
    if let Some((c, (tx, _))) = serial {
        devices::spawn_serial_scanner(c, engine_tx.clone(), tx, shutdown.clone());
    }
    if let Some((c, (tx, _))) = keypad {
        devices::spawn_keypad(
            c,
            cfg.terminal.currency,
            cfg.limits.max_sale_amount,
            engine_tx.clone(),
            ui_tx.clone(),
            print_handle.clone(),
            tx,
            shutdown.clone(),
        );
    }
    if let (Some((c, (tx, _))), Some(rx)) = (vfd, vfd_rx) {
        devices::spawn_customer_display(c, rx, tx, shutdown.clone());
    }
    // A device that comes or goes changes the retained status at once.
    for (_, rx) in dev_rx.clone() {
        forward_status_changes(rx, link.clone(), shutdown.clone(), |s| Some(s.clone()));
    }
    if let (Some(cam), Some((status_tx, _))) = (cfg.devices.camera.clone(), camera_status) {
        spawn_camera(
            cam,
            status_tx,
            engine_tx.clone(),
            link.clone(),
            shutdown.clone(),
        );
    }

    crate::systemd::ready();
    if let Some(problem) = crate::clock::clock_offset_problem() {
        log::warn!("{problem}");
    } else if crate::clock::clock_offset_ms() != 0 {
        log::warn!(
            "the clock is shifted by {} ms ({}, for soak tests only): unset it on a real till",
            crate::clock::clock_offset_ms(),
            crate::clock::CLOCK_OFFSET_ENV
        );
    }
    log::info!(
        "posd {VERSION} ({GIT_COMMIT}) ready: terminal {terminal}, journal {}, control {}",
        cfg.db_path().display(),
        cfg.control.socket.display()
    );

    tokio::spawn(crate::retention::run(
        store.clone(),
        disk.clone(),
        cfg.retention.clone(),
        shutdown.clone(),
    ));

    let watchdog = tokio::spawn(watchdog_loop(
        store.clone(),
        link.clone(),
        engine_beat,
        shutdown.clone(),
    ));

    stop.await;
    log::info!("stopping");
    crate::systemd::stopping();
    let _ = shutdown_tx.send(true);
    // Let the engine finish the write it is doing; the journal thread drains its queue.
    let _ = tokio::time::timeout(Duration::from_secs(5), engine_task).await;
    watchdog.abort();
    let q = store.call(|db| db.queue_stats(now_ms())).await.ok();
    let mut goodbye =
        serde_json::json!({"terminal": terminal, "online": false, "session": session});
    if let Some(q) = q {
        goodbye["queue"] =
            serde_json::json!({"pending": q.pending, "oldest_age_s": q.oldest_age_s});
    }
    link.goodbye(goodbye).await;
    let _ = link_stop_tx.send(true);
    // A final round trip proves every queued journal write has been made (`run` then closes
    // the journal).
    let _ = store.call(|_| Ok(())).await;
    control::remove_socket(&cfg.control.socket);
    Ok(())
}

async fn watchdog_loop(
    store: Store,
    link: link::Link,
    engine_beat: engine::Heartbeat,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(period) = crate::systemd::watchdog_interval() else {
        return;
    };
    let every = period / 2;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let store_ok = tokio::time::timeout(every, store.call(|_| Ok(()))).await;
        let now = now_ms();
        let store_beat = if matches!(store_ok, Ok(Ok(()))) {
            now
        } else {
            0
        };
        let beats = [
            ("engine", engine_beat.load(Ordering::Relaxed)),
            ("mqtt", link.shared.heartbeat_ms.load(Ordering::Relaxed)),
            ("journal", store_beat),
        ];
        match crate::systemd::all_fresh(now, &beats, period) {
            Ok(()) => crate::systemd::watchdog(),
            Err(e) => log::error!("watchdog withheld: {e}"),
        }
    }
}

/// Publishes the retained status again whenever what the fleet sees of a device changes:
/// `key` says what that is (None: nothing to publish for, such as a printer busy printing).
fn forward_status_changes<T, K>(
    mut rx: watch::Receiver<T>,
    link: link::Link,
    mut shutdown: watch::Receiver<bool>,
    key: fn(&T) -> Option<K>,
) where
    T: Send + Sync + 'static,
    K: PartialEq + Send + 'static,
{
    tokio::spawn(async move {
        let mut last = key(&rx.borrow_and_update());
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                r = rx.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let k = key(&rx.borrow_and_update());
                    if k.is_some() && k != last {
                        last = k;
                        link.status_changed();
                    }
                }
            }
        }
    });
}

/// What the retained status shows of the printer and is worth publishing at once: a fault or
/// its end, paper near its end, a warning. Not the jobs waiting, nor `printing` and back, which
/// change with every receipt (20,000 times a bus day): the periodic status carries those.
type PrinterKey = (
    posd_core::control::PrinterState,
    bool,
    Option<String>,
    Vec<String>,
    Option<String>,
);

fn printer_key(h: &posd_core::control::PrinterHealth) -> Option<PrinterKey> {
    (h.state != posd_core::control::PrinterState::Printing).then(|| {
        (
            h.state,
            h.paper_near_end,
            h.detail.clone(),
            h.warnings.clone(),
            h.reported_name.clone(),
        )
    })
}

/// Tells the cashier when the printer's state changes (paper out, cover open, back to ok).
fn forward_printer_to_ui(
    mut rx: watch::Receiver<posd_core::control::PrinterHealth>,
    ui: broadcast::Sender<UiEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut last = None;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                r = rx.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let h = rx.borrow_and_update().clone();
                    let key = (h.state, h.paper_near_end);
                    if last == Some(key) || h.state == posd_core::control::PrinterState::Printing {
                        continue;
                    }
                    last = Some(key);
                    let _ = ui.send(UiEvent::Printer {
                        text: posd_core::display::printer_text_in(&h, crate::lang::current()),
                        ok: !h.state.is_fault(),
                    });
                }
            }
        }
    });
}

/// What the alerts are made of, from what `status` already holds (counters, no scans).
fn alert_inputs<'a>(
    online: bool,
    q: &QueueStats,
    printer: Option<&'a posd_core::control::PrinterHealth>,
    offline_clock: Option<crate::config::ClockTrust>,
) -> posd_core::display::notices::AlertInputs<'a> {
    posd_core::display::notices::AlertInputs {
        online,
        unsynced_sales: q.offline_unsynced,
        printer,
        offline_codes_blocked_by_clock: offline_clock
            .is_some_and(|mode| !engine::clock_trusted(mode, now_ms())),
        language: crate::lang::current(),
    }
}

/// Tells the cashier (console, keypad) when an alert starts, and when the receipts that
/// waited for the printer came out (issue 15). Reads the running counters once a second.
fn spawn_alerts(
    store: Store,
    link: link::Link,
    printer: Option<watch::Receiver<posd_core::control::PrinterHealth>>,
    offline_clock: watch::Receiver<Option<crate::config::ClockTrust>>,
    ui: broadcast::Sender<UiEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    use posd_core::display::notices;
    tokio::spawn(async move {
        let mut shown: Vec<posd_core::control::Alert> = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let q = store.queue_stats(now_ms());
            let health = printer.as_ref().map(|rx| rx.borrow().clone());
            let alerts = notices::alerts(&alert_inputs(
                link.is_connected(),
                &q,
                health.as_ref(),
                *offline_clock.borrow(),
            ));
            if alerts == shown {
                continue;
            }
            let current: Vec<String> = alerts.iter().map(|a| a.text.clone()).collect();
            let mut said: Vec<String> = Vec::new();
            for a in shown
                .iter()
                .filter(|a| !alerts.iter().any(|n| n.code == a.code))
            {
                // The waiting receipts came out only if the printer is fine now.
                let printed =
                    a.code != "receipt_waiting" || health.as_ref().is_some_and(|h| h.state.is_ok());
                if let (true, Some(t)) = (
                    printed,
                    notices::alert_ended(crate::lang::current(), &a.code),
                ) {
                    said.push(t.to_string());
                }
            }
            said.extend(
                alerts
                    .iter()
                    .filter(|a| !shown.contains(a))
                    .map(|a| a.text.clone()),
            );
            if said.is_empty() {
                said.push(current.first().cloned().unwrap_or_default());
            }
            for text in said {
                let _ = ui.send(UiEvent::Alert {
                    text,
                    current: current.clone(),
                });
            }
            shown = alerts;
        }
    });
}

/// The camera as a scanner: every de-duplicated code goes to the sale in progress.
fn spawn_camera(
    cam: crate::config::devices::CameraConfig,
    status: watch::Sender<crate::camera::CameraStatus>,
    engine: mpsc::Sender<EngineMsg>,
    link: link::Link,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::channel::<crate::camera::ScannedCode>(16);
    let mut status_rx = status.subscribe();
    let factory_cfg = cam.clone();
    let capture = tokio::spawn(crate::camera::run_capture(
        move || crate::camera::V4lSource::new(factory_cfg),
        cam,
        tx,
        status,
    ));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = status_rx.changed() => link.status_changed(),
                code = rx.recv() => match code {
                    Some(c) => match c.payload.text() {
                        Some(text) => {
                            let msg = EngineMsg::Code { text: text.to_string(), source: "camera".into() };
                            if engine.send(msg).await.is_err() {
                                break;
                            }
                        }
                        None => log::info!("camera read a binary code: not a payment code"),
                    },
                    None => break,
                },
            }
        }
        capture.abort();
    });
}

/// The console device: results and prompts on stdout, codes typed (or wedged) on stdin.
fn spawn_console(
    mut ui: broadcast::Receiver<UiEvent>,
    engine: mpsc::Sender<EngineMsg>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                _ = shutdown.changed() => return,
                ev = ui.recv() => ev,
            };
            match ev {
                Ok(ev) => println!(
                    "{}",
                    posd_core::display::console_text_in(&ev, crate::lang::current())
                ),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    });
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let text = line.trim().to_string();
            if text.is_empty() {
                continue;
            }
            let msg = EngineMsg::Code {
                text,
                source: "console".into(),
            };
            if engine.send(msg).await.is_err() {
                return;
            }
        }
    });
}

/// Settlement notifies recorded in one commit at most: a sale waits behind one such commit.
pub const SETTLEMENTS_PER_COMMIT: usize = 64;

fn verdict(s: protocol::SettlementNotify) -> SettlementVerdict {
    SettlementVerdict {
        settled: s.status == SettlementStatus::Settled,
        txn_id: s.txn_id,
        reason: s.reason,
    }
}

/// Adds to `batch` the settlement notifies already waiting right behind it, up to
/// [`SETTLEMENTS_PER_COMMIT`] in all, and returns the first other message met (it goes next,
/// so the host's order is kept). After an outage the host settles every offline sale at once:
/// one commit each kept a sale waiting behind all of them (~170 fsyncs, 30–50 ms, in the bench).
fn take_settlements(
    batch: &mut Vec<SettlementVerdict>,
    rx: &mut mpsc::Receiver<Inbound>,
) -> Option<Inbound> {
    while batch.len() < SETTLEMENTS_PER_COMMIT {
        match rx.try_recv() {
            Ok(Inbound::Notify(Notify::Settlement(s))) => batch.push(verdict(s)),
            Ok(other) => return Some(other),
            Err(_) => break,
        }
    }
    None
}

/// What a host `notify` asks of the engine.
fn notify_msg(n: Notify) -> EngineMsg {
    match n {
        Notify::Payment(p) => match p.status {
            PaymentStatus::Paid => EngineMsg::Paid {
                txn_id: p.txn_id,
                host_ref: p.host_ref,
                amount: p.amount,
            },
        },
        Notify::Settlement(s) => EngineMsg::Settlements(vec![verdict(s)]),
        Notify::BatchClose(b) => EngineMsg::BatchResult {
            reconciled: b.status == BatchStatus::Reconciled,
            detail: serde_json::to_value(&b).unwrap_or_default(),
            txn_id: b.txn_id,
        },
    }
}

/// Resolves on SIGTERM or SIGINT.
pub fn stop_signal() -> Result<impl std::future::Future<Output = ()>, DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use posd_core::control::{PrinterHealth, PrinterState};

    #[test]
    fn settlement_notifies_waiting_together_go_to_the_engine_as_one_and_keep_the_order() {
        let settlement = |id: &str| {
            Inbound::Notify(Notify::Settlement(protocol::SettlementNotify {
                txn_id: id.into(),
                status: SettlementStatus::Settled,
                reason: None,
            }))
        };
        let (tx, mut rx) = mpsc::channel(200);
        for id in ["b", "c"] {
            tx.try_send(settlement(id)).unwrap();
        }
        tx.try_send(Inbound::Cmd(b"x".to_vec())).unwrap();
        tx.try_send(settlement("d")).unwrap();
        let first = |id: &str| SettlementVerdict {
            txn_id: id.into(),
            settled: true,
            reason: None,
        };
        let mut batch = vec![first("a")];
        let next = take_settlements(&mut batch, &mut rx);
        let ids: Vec<_> = batch.iter().map(|v| v.txn_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        // The command that came between goes next, then the later settlement.
        assert!(matches!(next, Some(Inbound::Cmd(_))));
        assert!(matches!(
            rx.try_recv(),
            Ok(Inbound::Notify(Notify::Settlement(_)))
        ));
        // At most SETTLEMENTS_PER_COMMIT in one message; the rest wait for the next.
        for i in 0..SETTLEMENTS_PER_COMMIT + 5 {
            tx.try_send(settlement(&i.to_string())).unwrap();
        }
        let mut batch = vec![first("x")];
        let next = take_settlements(&mut batch, &mut rx);
        assert_eq!(batch.len(), SETTLEMENTS_PER_COMMIT);
        assert!(next.is_none());
        let mut batch = vec![first("y")];
        take_settlements(&mut batch, &mut rx);
        assert_eq!(batch.len(), 7);
    }

    /// posd's last words (`posd: {e:#}`, the whole chain) say why once: a journal left by a
    /// newer posd printed its reason twice.
    #[test]
    fn a_start_that_fails_says_why_once() {
        let errors = [
            DaemonError::from(StoreError::SchemaTooNew {
                found: 15,
                known: 14,
            }),
            DaemonError::from(control::ControlError::from(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "address in use",
            ))),
        ];
        let said = errors.map(|e| format!("{:#}", anyhow::Error::from(e)));
        assert_eq!(
            said,
            [
                "journal: the journal has a newer schema (15) than this posd understands (14): a \
                 newer posd wrote it; install that posd again (a journal is never taken back to \
                 an older schema)",
                "control socket: control socket I/O: address in use",
            ]
        );
    }

    #[test]
    fn the_retained_status_follows_printer_faults_not_each_receipt() {
        let ok = PrinterHealth {
            state: PrinterState::Ok,
            waiting: 3,
            ..Default::default()
        };
        let printing = PrinterHealth {
            state: PrinterState::Printing,
            ..ok.clone()
        };
        let one_fewer = PrinterHealth {
            waiting: 2,
            ..ok.clone()
        };
        assert_eq!(printer_key(&printing), None, "a receipt going out");
        assert_eq!(
            printer_key(&ok),
            printer_key(&one_fewer),
            "the jobs waiting"
        );
        for changed in [
            PrinterHealth {
                state: PrinterState::PaperOut,
                ..ok.clone()
            },
            PrinterHealth {
                paper_near_end: true,
                ..ok.clone()
            },
            PrinterHealth {
                warnings: vec!["width".into()],
                ..ok.clone()
            },
        ] {
            assert_ne!(printer_key(&changed), printer_key(&ok), "{changed:?}");
        }
    }
}
