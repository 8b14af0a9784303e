//! The MQTT link: one broker connection per terminal (rumqttc), kept up for as long as posd runs.
//!
//! Three tasks share the connection: the event loop (connects, reconnects with capped
//! exponential backoff and jitter, routes incoming messages), the outbox drain (publishes
//! journal events in `seq` order at QoS 1 with a bounded window of events the host has not yet
//! acknowledged; after every reconnect it starts again from the last `ack`, because rumqttc keeps
//! unsent messages in memory only) and the status publisher (retained `status`, with a Will).
//! Events leave the SQLite outbox only on the host's application-level `ack {upto_seq}`.
//! What the host sends (`resp`, `notify`, `ack`) passes posd-core's `HostGate` first: signed by a
//! key of `[[broker.host_keys]]`, and an ack no higher than what was published since start.

use crate::clock::now_ms;
use crate::config::{parse_broker_url, BrokerConfig, TlsConfig};
use crate::store::{QueueStats, Store, StoreError};
use posd_core::backoff::Backoff;
use posd_core::outbox::SendWindow;
use posd_core::protocol::signed::{Admitted, GateError, HostGate, HostKeys, HostKind};
use posd_core::protocol::{self, Request, Response, Topics};
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("not connected to the broker")]
    Offline,
    #[error("the MQTT client queue is full")]
    Busy,
    #[error("bad broker settings: {0}")]
    Config(String),
    #[error("cannot read TLS file {path}: {source}")]
    TlsFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode a message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Installs rustls' ring provider once (rumqttc is built without a provider of its own).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds rumqttc options for a client id from a broker URL (and TLS files for mqtts://).
pub fn mqtt_options(
    client_id: &str,
    url: &str,
    tls: Option<&TlsConfig>,
    keep_alive_s: u64,
) -> Result<MqttOptions, LinkError> {
    let addr = parse_broker_url(url).map_err(LinkError::Config)?;
    let mut o = MqttOptions::new(client_id, addr.host.clone(), addr.port);
    o.set_keep_alive(Duration::from_secs(keep_alive_s.max(5)));
    o.set_max_packet_size(256 * 1024, 256 * 1024);
    if addr.tls {
        let tls = tls.ok_or_else(|| LinkError::Config("mqtts:// without TLS files".into()))?;
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| LinkError::TlsFile {
                path: p.display().to_string(),
                source,
            })
        };
        install_crypto_provider();
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: read(&tls.ca)?,
            alpn: None,
            client_auth: Some((read(&tls.cert)?, read(&tls.key)?)),
        }));
    }
    Ok(o)
}

/// Sends small MQTT packets at once: with Nagle's algorithm on, a request/response exchange
/// waits on delayed ACKs (measured: ~88 ms per round trip on loopback instead of < 1 ms).
pub fn disable_nagle(eventloop: &mut EventLoop) {
    let mut n = eventloop.network_options();
    n.set_tcp_nodelay(true);
    eventloop.set_network_options(n);
}

/// Messages from the host to this terminal, routed by topic.
#[derive(Debug, Clone)]
pub enum Inbound {
    Resp(Response),
    Notify(protocol::Notify),
    CfgDesired(Vec<u8>),
    Cmd(Vec<u8>),
}

/// State shared between the link's tasks and the rest of the daemon.
#[derive(Debug, Default)]
pub struct LinkShared {
    pub connected: AtomicBool,
    /// Highest seq the host acknowledged (mirrors the journal's `acked_seq`).
    pub acked_seq: AtomicU64,
    /// Highest seq handed to the MQTT client in this connection.
    pub sent_seq: AtomicU64,
    /// Unix ms of the last turn of the event loop task (for the watchdog).
    pub heartbeat_ms: AtomicU64,
    pub connects: AtomicU64,
    pub bad_messages: AtomicU64,
    /// Highest seq handed to the MQTT client since start (at least the journal's ack at
    /// start): a host `ack` above it is refused.
    pub published_seq: AtomicU64,
    /// Checks everything the host sends (its counts are what `status` shows).
    pub host_gate: Mutex<HostGate>,
}

impl LinkShared {
    fn gate(&self) -> std::sync::MutexGuard<'_, HostGate> {
        self.host_gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host message verification summary for `status`.
    pub fn host_trust(&self) -> posd_core::protocol::signed::HostTrustStatus {
        self.gate().status().clone()
    }
}

/// Builds the status message from (online, outbox depth).
pub type StatusFn = Arc<dyn Fn(bool, QueueStats) -> posd_core::control::StatusDoc + Send + Sync>;

/// A handle to the running link.
#[derive(Clone)]
pub struct Link {
    client: AsyncClient,
    topics: Topics,
    pub shared: Arc<LinkShared>,
    drain: Arc<Notify>,
    status_now: Arc<Notify>,
    /// Fleet-wide config pushes (`{prefix}/all/cfg/desired`).
    all_cfg: String,
}

impl Link {
    /// Sends an online request. Refused at once when offline: the caller's state machine
    /// treats it like an unanswered request (query, then reverse), and nothing is queued to
    /// leave later at a surprising time.
    pub fn send_request(&self, req: &Request) -> Result<(), LinkError> {
        if !self.shared.connected.load(Ordering::Acquire) {
            return Err(LinkError::Offline);
        }
        let payload = serde_json::to_vec(req)?;
        self.client
            .try_publish(self.topics.req(), QoS::AtLeastOnce, false, payload)
            .map_err(|_| LinkError::Busy)
    }

    /// New events are in the outbox.
    pub fn kick(&self) {
        self.drain.notify_one();
    }

    /// Publish the status now (something changed).
    pub fn status_changed(&self) {
        self.status_now.notify_one();
    }

    /// Publishes a JSON message on a topic under this terminal's root.
    pub fn publish_json<T: serde::Serialize>(
        &self,
        leaf: &str,
        retain: bool,
        value: &T,
    ) -> Result<(), LinkError> {
        let payload = serde_json::to_vec(value)?;
        self.client
            .try_publish(
                format!("{}/{leaf}", self.topics.root()),
                QoS::AtLeastOnce,
                retain,
                payload,
            )
            .map_err(|_| LinkError::Busy)
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Publishes `online:false` (retained) and disconnects; used on graceful shutdown.
    pub async fn goodbye(&self, status: serde_json::Value) {
        if self.is_connected() {
            if let Ok(payload) = serde_json::to_vec(&status) {
                let _ = self
                    .client
                    .publish(self.topics.status(), QoS::AtLeastOnce, true, payload)
                    .await;
            }
            let _ = self.client.disconnect().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Everything the link needs to start.
pub struct LinkParams {
    pub terminal: String,
    pub session: String,
    pub broker: BrokerConfig,
    pub store: Store,
    pub inbound: mpsc::Sender<Inbound>,
    pub status: StatusFn,
}

/// Starts the link's tasks. They run until `shutdown` turns true.
pub fn start(p: LinkParams, shutdown: watch::Receiver<bool>) -> Result<Link, LinkError> {
    let topics = Topics::new(&p.broker.prefix, &p.terminal);
    let host_keys = HostKeys::from_config(&p.broker.host_keys)
        .map_err(|e| LinkError::Config(format!("broker.host_keys: {e}")))?;
    if p.broker.lab_accept_unsigned {
        log::warn!(
            "broker.lab_accept_unsigned is on: unsigned resp/notify/ack messages are accepted \
             (a lab setting: anyone on the broker can approve a sale)"
        );
    } else if host_keys.is_empty() {
        log::error!(
            "no [[broker.host_keys]]: every resp, notify and ack will be refused; list the \
             payment host's public key there (docs/payments.md, \"Signed host messages\")"
        );
    }
    let mut opts = mqtt_options(
        &p.terminal,
        &p.broker.url,
        p.broker.tls.as_ref(),
        p.broker.keep_alive_s,
    )?;
    // Persistent session: the broker keeps our subscriptions and QoS 1 messages for us.
    opts.set_clean_session(false);
    let will = serde_json::json!({"terminal": p.terminal, "online": false, "session": p.session});
    opts.set_last_will(LastWill::new(
        topics.status(),
        serde_json::to_vec(&will)?,
        QoS::AtLeastOnce,
        true,
    ));
    let window = p.broker.inflight_window.max(1);
    opts.set_inflight(window.min(u16::MAX as u32) as u16);
    let cap = window as usize + 64;
    let (client, mut eventloop) = AsyncClient::new(opts, cap);
    disable_nagle(&mut eventloop);
    let shared = Arc::new(LinkShared {
        host_gate: Mutex::new(HostGate::new(host_keys, p.broker.lab_accept_unsigned)),
        ..LinkShared::default()
    });
    let link = Link {
        client,
        topics,
        shared,
        drain: Arc::new(Notify::new()),
        status_now: Arc::new(Notify::new()),
        all_cfg: protocol::all_cfg_desired(&p.broker.prefix),
    };
    let (gen_tx, gen_rx) = watch::channel(0u64);
    let backoff = Backoff {
        initial_ms: p.broker.backoff_initial_ms,
        max_ms: p.broker.backoff_max_ms,
    };
    tokio::spawn(event_loop(
        link.clone(),
        eventloop,
        backoff,
        p.inbound,
        p.store.clone(),
        gen_tx,
        shutdown.clone(),
    ));
    tokio::spawn(drain_loop(
        link.clone(),
        p.store.clone(),
        window as u64,
        Duration::from_secs(p.broker.ack_timeout_s.max(1)),
        gen_rx.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(status_loop(
        link.clone(),
        p.store.clone(),
        p.status,
        Duration::from_secs(p.broker.status_interval_s.max(1)),
        gen_rx,
        shutdown,
    ));
    Ok(link)
}

async fn event_loop(
    link: Link,
    mut eventloop: EventLoop,
    backoff: Backoff,
    inbound: mpsc::Sender<Inbound>,
    store: Store,
    gen_tx: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    let mut beat = tokio::time::interval(Duration::from_millis(500));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let t = &link.topics;
    let subs = [
        t.ack(),
        t.resp(),
        t.notify(),
        t.cfg_desired(),
        t.cmd(),
        link.all_cfg.clone(),
    ];
    // Events up to the journal's ack were published by an earlier run: acks up to there are
    // not "beyond what was published".
    if let Ok(acked) = store.call(|db| Ok(db.acked_seq())).await {
        link.shared.published_seq.fetch_max(acked, Ordering::AcqRel);
    }
    loop {
        link.shared.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
        let ev = tokio::select! {
            _ = shutdown.changed() => return,
            _ = beat.tick() => continue,
            ev = eventloop.poll() => ev,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                attempt = 0;
                link.shared.connects.fetch_add(1, Ordering::Relaxed);
                // Always (re)subscribe: a restarted broker without persistence forgets us.
                for s in &subs {
                    if let Err(e) = link.client.try_subscribe(s.clone(), QoS::AtLeastOnce) {
                        log::warn!("subscribe {s}: {e}");
                    }
                }
                link.shared.connected.store(true, Ordering::Release);
                log::info!(
                    session_present = ack.session_present;
                    "connected to the broker"
                );
                gen_tx.send_modify(|g| *g += 1);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                route(&link, &store, &inbound, &p.topic, &p.payload).await;
            }
            Ok(_) => {}
            Err(e) => {
                if link.shared.connected.swap(false, Ordering::AcqRel) {
                    log::warn!("broker connection lost: {e}");
                    gen_tx.send_modify(|g| *g += 1);
                } else {
                    log::debug!("broker connect failed: {e}");
                }
                let delay = backoff.jittered_ms(attempt, fastrand::f64());
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                }
            }
        }
    }
}

async fn route(
    link: &Link,
    store: &Store,
    inbound: &mpsc::Sender<Inbound>,
    topic: &str,
    payload: &[u8],
) {
    let t = &link.topics;
    let kind = if topic == t.ack() {
        Some(HostKind::Ack)
    } else if topic == t.resp() {
        Some(HostKind::Resp)
    } else if topic == t.notify() {
        Some(HostKind::Notify)
    } else {
        None
    };
    let msg = if let Some(kind) = kind {
        let published = link.shared.published_seq.load(Ordering::Acquire);
        let terminal = link.topics.terminal();
        let verdict = link
            .shared
            .gate()
            .admit(terminal, kind, payload, published, now_ms());
        match verdict {
            Ok(Admitted::Ack(a)) => return apply_ack(link, store, a.upto_seq).await,
            Ok(Admitted::Resp(r)) => Inbound::Resp(r),
            Ok(Admitted::Notify(n)) => Inbound::Notify(n),
            Err(e @ GateError::Refused { first_of_kind, .. }) => {
                if first_of_kind {
                    log::warn!(
                        "host message dropped: {e} (further refusals of {} are counted in \
                         status, not logged)",
                        kind.as_str()
                    );
                }
                return;
            }
            Err(GateError::Malformed(e)) => {
                link.shared.bad_messages.fetch_add(1, Ordering::Relaxed);
                log::error!("{e}: ignored");
                return;
            }
        }
    } else if topic == t.cfg_desired() || topic == link.all_cfg {
        Inbound::CfgDesired(payload.to_vec())
    } else if topic == t.cmd() {
        Inbound::Cmd(payload.to_vec())
    } else {
        log::debug!("message on unexpected topic {topic}");
        return;
    };
    if inbound.send(msg).await.is_err() {
        log::warn!("inbound message dropped: the daemon is stopping");
    }
}

/// Drops the events the host acknowledged (the gate already bounded `upto` by what was
/// published).
async fn apply_ack(link: &Link, store: &Store, upto: u64) {
    match store.call(move |db| db.ack_bounded(upto)).await {
        Ok(o) => {
            link.shared
                .acked_seq
                .fetch_max(o.acked_seq, Ordering::AcqRel);
            if o.dropped > 0 {
                log::debug!(seq = o.acked_seq; "host acknowledged events");
                link.drain.notify_one();
            } else if upto < o.acked_seq {
                log::info!(
                    "ack for seq {upto} ignored: the host already acknowledged up to {}",
                    o.acked_seq
                );
            }
        }
        Err(StoreError::AckBeyondLast { upto, last }) => {
            link.shared.bad_messages.fetch_add(1, Ordering::Relaxed);
            log::error!("ignored ack for seq {upto}: beyond the highest seq {last}");
        }
        Err(e) => log::error!("cannot record ack {upto}: {e}"),
    }
}

async fn drain_loop(
    link: Link,
    store: Store,
    window: u64,
    ack_timeout: Duration,
    mut gen: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Start from what the journal says the host already has.
    let acked = store.call(|db| Ok(db.acked_seq())).await.unwrap_or(0);
    link.shared.acked_seq.fetch_max(acked, Ordering::AcqRel);
    let mut w = SendWindow::new(window, ack_timeout.as_millis() as u64, acked, now_ms());
    let mut seen_gen = *gen.borrow();
    let topic = link.topics.events();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = now_ms();
        let g = *gen.borrow();
        if g != seen_gen {
            // New connection (or lost one): resend everything the host has not acknowledged.
            seen_gen = g;
            w.reconnected(now);
        }
        w.ack(link.shared.acked_seq.load(Ordering::Acquire), now);
        if let Some(again) = w.check_timeout(now) {
            // Published but never acknowledged (no host was subscribed, or an ack was lost):
            // publish again from the last ack. The host keys events by event_id.
            log::info!("no ack for {again} event(s) in {ack_timeout:?}: resending");
        }
        link.shared.sent_seq.store(w.sent(), Ordering::Relaxed);
        let mut batch = Vec::new();
        if link.is_connected() && w.room() > 0 {
            let (after, limit) = (w.sent(), w.room().min(256) as u32);
            match store.call(move |db| db.outbox_after(after, limit)).await {
                Ok(b) => batch = b,
                Err(e) => log::error!("cannot read the outbox: {e}"),
            }
        }
        if batch.is_empty() {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = gen.changed() => {}
                _ = link.drain.notified() => {}
                // Re-check now and then even without a wake-up (the ack timeout).
                _ = tokio::time::sleep(ack_timeout.min(Duration::from_secs(5))) => {}
            }
            continue;
        }
        for (seq, payload) in batch {
            if *gen.borrow() != seen_gen {
                break;
            }
            // Before the client has it: the host's ack can never arrive ahead of this.
            link.shared.published_seq.fetch_max(seq, Ordering::AcqRel);
            let r = tokio::select! {
                _ = shutdown.changed() => return,
                r = link.client.publish(topic.clone(), QoS::AtLeastOnce, false, payload) => r,
            };
            if let Err(e) = r {
                log::warn!("cannot queue event {seq}: {e}");
                break;
            }
            w.published_one(seq, now_ms());
        }
    }
}

async fn status_loop(
    link: Link,
    store: Store,
    status: StatusFn,
    every: Duration,
    mut gen: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if link.is_connected() {
            let now = now_ms();
            let q = store
                .call(move |db| db.queue_stats(now))
                .await
                .unwrap_or_default();
            let mut v = status(true, q);
            v.host_messages = link.shared.host_trust();
            if let Err(e) = link.publish_json("status", true, &v) {
                log::debug!("status not published: {e}");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = gen.changed() => {}
            _ = link.status_now.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}
