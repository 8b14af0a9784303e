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
//!
//! Sizes are bounded both ways (issue 14, `posd_core::protocol::limits`): MQTT 5 tells the
//! broker the largest packet the terminal takes; a message over its topic's limit, or one that
//! does not parse, is acknowledged and dropped with a rate-limited warning; an event too big to
//! ever be delivered is set aside (a stub with its seq goes in its place) instead of blocking
//! every event behind it.

mod wire;

use crate::clock::now_ms;
use crate::config::{parse_broker_url, BrokerConfig, MqttProtocol, TlsConfig};
use crate::store::{OutboxRow, QueueStats, Store, StoreError};
use posd_core::backoff::Backoff;
use posd_core::outbox::SendWindow;
use posd_core::protocol::limits::{
    inbound_limit, InboundKind, SetAsideReason, WarnGate, FLEET_REFUSALS_PER_SECOND,
    MAX_EVENT_BYTES, MAX_PACKET_BYTES,
};
use posd_core::protocol::signed::{Admitted, GateError, HostGate, HostKeys, HostKind, HostRefusal};
use posd_core::protocol::{self, Request, Response, Topics};
use posd_core::till::{LinkState, LinkVerdict};
use rumqttc::{EventLoop, MqttOptions, TlsConfiguration, Transport};
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
    /// The reason is part of the message, not a source as well (said once in a whole chain).
    #[error("cannot read TLS file {path}: {error}")]
    TlsFile { path: String, error: std::io::Error },
    #[error("cannot encode a message: {0}")]
    Encode(serde_json::Error),
}

posd_core::wraps_error!(LinkError { Encode(serde_json::Error) });

/// How often, at most, each kind of dropped message is logged (the rest are counted).
const DROP_WARN_EVERY_MS: u64 = 60_000;
/// Longest a graceful stop waits for its last status and DISCONNECT to be written (the
/// requests queued before them go first: on a slow uplink with a full window, seconds).
/// Bounded well inside the unit's stop timeout.
const GOODBYE_WAIT: Duration = Duration::from_secs(3);

/// The TLS transport for an `mqtts://` URL (None: plain TCP).
fn transport(tls_url: bool, tls: Option<&TlsConfig>) -> Result<Option<Transport>, LinkError> {
    if !tls_url {
        return Ok(None);
    }
    let tls = tls.ok_or_else(|| LinkError::Config("mqtts:// without TLS files".into()))?;
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|error| LinkError::TlsFile {
            path: p.display().to_string(),
            error,
        })
    };
    install_crypto_provider();
    Ok(Some(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: read(&tls.ca)?,
        alpn: None,
        client_auth: Some((read(&tls.cert)?, read(&tls.key)?)),
    })))
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
    o.set_max_packet_size(MAX_PACKET_BYTES as usize, MAX_PACKET_BYTES as usize);
    if let Some(t) = transport(addr.tls, tls)? {
        o.set_transport(t);
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
    /// Set by [`Link::goodbye`]: the connection it ends is not made again.
    pub leaving: AtomicBool,
    /// The event loop wrote the goodbye's DISCONNECT (and so everything queued before it).
    bye_sent: tokio::sync::Notify,
    /// Highest seq the host acknowledged (mirrors the journal's `acked_seq`).
    pub acked_seq: AtomicU64,
    /// Highest seq handed to the MQTT client in this connection.
    pub sent_seq: AtomicU64,
    /// Unix ms of the last turn of the event loop task (for the watchdog).
    pub heartbeat_ms: AtomicU64,
    pub connects: AtomicU64,
    /// Host messages that did not parse (or acks beyond the last seq): dropped.
    pub bad_messages: AtomicU64,
    /// Messages over their topic's size limit: dropped.
    pub dropped_oversize: AtomicU64,
    /// Fleet messages dropped unchecked (`FLEET_REFUSALS_PER_SECOND`).
    pub fleet_not_checked: AtomicU64,
    /// Connections the client ended on a packet over `MAX_PACKET_BYTES`.
    pub refused_packets: AtomicU64,
    /// The broker's Maximum Packet Size from its last CONNACK (0: none said).
    pub broker_max_packet: AtomicU64,
    /// Publishes the broker refused (PUBACK reason ≥ 0x80, or "packet too large").
    pub broker_refused: AtomicU64,
    /// Connections that ended on the broker's "packet too large" (the drain loop learns from
    /// each one which event was too big).
    pub refused_too_large: AtomicU64,
    /// Largest event payload the broker takes, learned from its refusals (0: not learned). Only
    /// ever lowered, and only below the size of an event the broker refused.
    pub learned_event_limit: AtomicU64,
    /// `broker.protocol`.
    pub protocol: String,
    /// The last drop, for `status`.
    pub last_drop: Mutex<Option<String>>,
    /// One warning a minute per kind of drop.
    pub drop_warn: Mutex<std::collections::BTreeMap<&'static str, WarnGate>>,
    /// Highest seq handed to the MQTT client since start (at least the journal's ack at
    /// start): a host `ack` above it is refused.
    pub published_seq: AtomicU64,
    /// Checks everything the host sends (its counts are what `status` shows).
    pub host_gate: Mutex<HostGate>,
    /// The last connection error and the next attempt, for `status`.
    pub conn: Mutex<posd_core::control::BrokerLinkStatus>,
    /// Connected, owed answers, last heard from the host: what the till's decision reads
    /// (`posd_core::till::LinkState`; docs/payments.md, "The link's state").
    pub link_state: Mutex<LinkState>,
    /// `broker.host_silence_s` in ms (0: the silence rule is off).
    pub host_silence_ms: u64,
}

impl LinkShared {
    fn link_state(&self, f: impl FnOnce(&mut LinkState)) {
        f(&mut self.link_state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The host answered something it owed (an ack that raised the watermark, a `resp` to a
    /// request in flight): it is not silent.
    pub fn host_answered(&self, now: u64) {
        self.link_state(|l| l.heard(now));
    }

    /// Is the link usable now, and if not, how the terminal knows.
    pub fn verdict(&self, now: u64) -> LinkVerdict {
        self.link_state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .verdict(now, self.host_silence_ms)
    }

    /// When the host was last heard from (unix ms).
    pub fn last_heard(&self) -> Option<u64> {
        self.link_state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_heard()
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, HostGate> {
        self.host_gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker link for `status` (its `url` is filled by the caller).
    pub fn conn_status(&self) -> posd_core::control::BrokerLinkStatus {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
        c.connects = self.connects.load(Ordering::Relaxed);
        let verdict = self.verdict(now_ms());
        c.state = Some(verdict.as_str().to_string());
        c.last_heard_at = self.last_heard();
        c.silent_since = match verdict {
            LinkVerdict::HostSilent { since, .. } => Some(since),
            _ => None,
        };
        c
    }

    fn conn_update(&self, f: impl FnOnce(&mut posd_core::control::BrokerLinkStatus)) {
        f(&mut self.conn.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Counts a dropped message and warns about it at most once a minute per `what`.
    fn dropped(&self, what: &'static str, text: String) {
        let now = now_ms();
        let verdict = {
            let mut g = self.drop_warn.lock().unwrap_or_else(|p| p.into_inner());
            g.entry(what)
                .or_insert_with(|| WarnGate::new(DROP_WARN_EVERY_MS))
                .check(now)
        };
        if let Some(more) = verdict {
            let also = if more > 0 {
                format!(" ({more} more since the last warning)")
            } else {
                String::new()
            };
            log::warn!("{text}{also}");
        }
        *self.last_drop.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    /// A fleet message (`leaf`: `cfg/desired` or `cmd`) dropped without being checked: counted,
    /// and said at most once a minute.
    pub fn fleet_unchecked(&self, leaf: &str) {
        self.fleet_not_checked.fetch_add(1, Ordering::Relaxed);
        self.dropped(
            "fleet_unchecked",
            format!(
                "fleet {leaf} message dropped unchecked: more than {FLEET_REFUSALS_PER_SECOND} \
                 fleet messages a second failed their checks (forged by whoever can publish on \
                 this terminal's topics: check the broker's ACL); checking resumes as the rate \
                 falls"
            ),
        );
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
    client: wire::WireClient,
    topics: Topics,
    pub shared: Arc<LinkShared>,
    drain: Arc<Notify>,
    status_now: Arc<Notify>,
    /// Fleet-wide config pushes (`{prefix}/all/cfg/desired`).
    all_cfg: String,
    /// The highest `ack {upto_seq}` admitted, for the ack task (`ack_loop`): the event loop
    /// only raises it, so socket I/O never waits for an ack's DELETE and commit, and a burst
    /// of acks becomes one journal call.
    acks: Arc<watch::Sender<u64>>,
}

impl Link {
    /// The host's highest admitted ack, recorded in the journal or not: the events it covers
    /// are stored by the host (a restart before the journal records it only sends them again,
    /// and the host keys them by event_id), so the drain's window need not wait for the ack's
    /// commit.
    fn admitted_ack(&self) -> u64 {
        self.shared
            .acked_seq
            .load(Ordering::Acquire)
            .max(*self.acks.borrow())
    }

    /// Sends an online request. Refused at once when offline, and nothing is queued to leave
    /// later at a surprising time: an `Err` means the request certainly never left the box
    /// (the caller's state machine is told so: `Input::NotSent`). `Ok` means the MQTT client
    /// has it: it may leave even if the connection drops now.
    pub fn send_request(&self, req: &Request) -> Result<(), LinkError> {
        if !self.shared.connected.load(Ordering::Acquire) {
            return Err(LinkError::Offline);
        }
        let payload = serde_json::to_vec(req)?;
        self.client
            .try_publish(self.topics.req(), false, payload)
            .map_err(|_| LinkError::Busy)?;
        self.shared.link_state(|l| l.sent(now_ms()));
        Ok(())
    }

    /// Is the link to the host usable now (the till's decision reads it)?
    pub fn verdict(&self, now: u64) -> LinkVerdict {
        self.shared.verdict(now)
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
            .try_publish(format!("{}/{leaf}", self.topics.root()), retain, payload)
            .map_err(|_| LinkError::Busy)
    }

    /// The connection and its drops, for `status`.
    pub fn wire_status(&self) -> posd_core::control::WireStatus {
        let s = &self.shared;
        posd_core::control::WireStatus {
            protocol: s.protocol.clone(),
            connects: s.connects.load(Ordering::Relaxed),
            dropped_oversize: s.dropped_oversize.load(Ordering::Relaxed),
            dropped_malformed: s.bad_messages.load(Ordering::Relaxed),
            refused_packets: s.refused_packets.load(Ordering::Relaxed),
            fleet_not_checked: s.fleet_not_checked.load(Ordering::Relaxed),
            broker_refused: s.broker_refused.load(Ordering::Relaxed),
            broker_event_limit: match s.learned_event_limit.load(Ordering::Relaxed) {
                0 => None,
                n => Some(n),
            },
            last_drop: s
                .last_drop
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Publishes `online:false` (retained) and disconnects; used on graceful shutdown. The
    /// event loop must still run (it sends both) and does not connect again after it: the
    /// retained status stays this one, not the broker's Will.
    pub async fn goodbye(&self, status: serde_json::Value) {
        self.shared.leaving.store(true, Ordering::Release);
        if self.is_connected() {
            // The requests go out in order: once the DISCONNECT is written, so is the status
            // (and any events queued ahead of it, which a slow uplink may take a while for).
            let said = async {
                if let Ok(payload) = serde_json::to_vec(&status) {
                    let _ = self
                        .client
                        .publish(self.topics.status(), true, payload)
                        .await;
                }
                self.client.disconnect().await;
                self.shared.bye_sent.notified().await;
            };
            if tokio::time::timeout(GOODBYE_WAIT, said).await.is_err() {
                log::warn!(
                    "the last status and the DISCONNECT were not written within {} s (a slow or \
                     stalled uplink): the fleet may see the broker's Will (online: false, \
                     without the queue) for this terminal instead",
                    GOODBYE_WAIT.as_secs()
                );
            }
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
    let addr = parse_broker_url(&p.broker.url).map_err(LinkError::Config)?;
    let will = serde_json::json!({"terminal": p.terminal, "online": false, "session": p.session});
    let window = p.broker.inflight_window.max(1);
    // Persistent session: the broker keeps our subscriptions and QoS 1 messages for us.
    let (client, eventloop) = wire::build(wire::WireOptions {
        protocol: p.broker.protocol,
        client_id: p.terminal.clone(),
        host: addr.host.clone(),
        port: addr.port,
        keep_alive: Duration::from_secs(p.broker.keep_alive_s.max(5)),
        transport: transport(addr.tls, p.broker.tls.as_ref())?,
        will: (topics.status(), serde_json::to_vec(&will)?),
        inflight: window.min(u16::MAX as u32) as u16,
        cap: window as usize + 64,
    });
    if p.broker.protocol == MqttProtocol::V311 {
        log::info!(
            "broker.protocol = \"3.1.1\": the broker cannot be told the largest packet this \
             terminal takes; set its message size limit (docs/broker.md)"
        );
    }
    let shared = Arc::new(LinkShared {
        host_gate: Mutex::new(HostGate::new(host_keys, p.broker.lab_accept_unsigned)),
        host_silence_ms: p.broker.host_silence_s.saturating_mul(1000),
        protocol: p.broker.protocol.as_str().to_string(),
        ..LinkShared::default()
    });
    let link = Link {
        client,
        topics,
        shared,
        drain: Arc::new(Notify::new()),
        status_now: Arc::new(Notify::new()),
        all_cfg: protocol::all_cfg_desired(&p.broker.prefix),
        acks: Arc::new(watch::channel(0u64).0),
    };
    // The event loop, the drain and the acks run on the journal's own thread (`Store::spawn`):
    // an outbox read, a publish and an ack's delete then change hands between tasks of one
    // thread instead of between threads (issue 18, stop 33: a third fewer context switches and
    // ~13 % less CPU an event in the drain, docs/performance.md). Their journal calls still
    // queue behind every sale's. The retained status stays on the daemon's runtime.
    p.store.spawn(ack_loop(
        link.clone(),
        p.store.clone(),
        link.acks.subscribe(),
        shutdown.clone(),
    ));
    let (gen_tx, gen_rx) = watch::channel(0u64);
    let backoff = Backoff {
        initial_ms: p.broker.backoff_initial_ms,
        max_ms: p.broker.backoff_max_ms,
    };
    p.store.spawn(event_loop(
        link.clone(),
        eventloop,
        backoff,
        p.inbound,
        p.store.clone(),
        gen_tx,
        shutdown.clone(),
    ));
    p.store.spawn(drain_loop(
        link.clone(),
        p.store.clone(),
        window as u64,
        u64::from(p.broker.inflight_bytes),
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
    mut eventloop: wire::WireLoop,
    backoff: Backoff,
    inbound: mpsc::Sender<Inbound>,
    store: Store,
    gen_tx: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    // Connection failures are warnings, at most one a minute (with the count in between).
    let mut warned_at: u64 = 0;
    let mut unwarned: u32 = 0;
    let mut awaiting_subacks: usize = 0;
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
        // One poll future runs to its end while the heartbeat ticks beside it: dropping it at
        // each tick (as before) dropped a CONNECT whose CONNACK had not come within 500 ms, so
        // on a 4G link with a 0.5 s+ round trip getting online was left to chance (the soak saw
        // 13-43 silent reconnects a day at 150-600 ms latency).
        let ev = {
            let poll = eventloop.poll();
            tokio::pin!(poll);
            loop {
                link.shared.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = beat.tick() => continue,
                    ev = &mut poll => break ev,
                }
            }
        };
        match ev {
            wire::WireEvent::Connected {
                session_present,
                broker_max_packet,
            } => {
                attempt = 0;
                // A clean session was asked for once (see below); persistent again from now.
                eventloop.set_clean(false);
                link.shared.connects.fetch_add(1, Ordering::Relaxed);
                link.shared
                    .broker_max_packet
                    .store(u64::from(broker_max_packet.unwrap_or(0)), Ordering::Relaxed);
                // Always (re)subscribe: a restarted broker without persistence forgets us.
                awaiting_subacks = 0;
                for s in &subs {
                    match link.client.try_subscribe(s.clone()) {
                        Ok(()) => awaiting_subacks += 1,
                        Err(e) => log::warn!("subscribe {s}: {}", e.0),
                    }
                }
                link.shared.conn_update(|c| {
                    c.failures = 0;
                    c.next_retry_at = None;
                });
                unwarned = 0;
                log::info!(
                    session_present = session_present;
                    "connected to the broker"
                );
                if awaiting_subacks == 0 {
                    link.shared.link_state(|l| l.connected(now_ms()));
                    link.shared.connected.store(true, Ordering::Release);
                    gen_tx.send_modify(|g| *g += 1);
                }
            }
            wire::WireEvent::SubAck => {
                // Online once every subscription stands: a request sent before `resp` is
                // subscribed (a first connection) could lose its answer.
                if awaiting_subacks > 0 {
                    awaiting_subacks -= 1;
                    if awaiting_subacks == 0 {
                        link.shared.link_state(|l| l.connected(now_ms()));
                        link.shared.connected.store(true, Ordering::Release);
                        gen_tx.send_modify(|g| *g += 1);
                    }
                }
            }
            wire::WireEvent::Message { topic, payload } => {
                route(&link, &inbound, &topic, &payload).await;
                // The client hands over the packets of one socket read without waiting: a
                // burst (a peer's flood, a settlement burst) would otherwise hold the thread the
                // sales' journal calls run on until the socket is drained.
                tokio::task::yield_now().await;
            }
            wire::WireEvent::DisconnectSent => link.shared.bye_sent.notify_one(),
            wire::WireEvent::Other => {}
            wire::WireEvent::PubRefused { reason } => {
                // Not ours to fix at the terminal (an ACL, a quota): the event stays
                // unacknowledged and is sent again after the ack timeout; status counts it.
                link.shared.broker_refused.fetch_add(1, Ordering::Relaxed);
                link.shared.dropped(
                    "puback",
                    format!(
                        "the broker refused a message of ours ({reason}): it is sent again \
                         later; check the broker's ACL and quotas for this terminal \
                         (docs/broker.md)"
                    ),
                );
            }
            wire::WireEvent::Error {
                text: e,
                oversize,
                too_large_for_broker,
            } => {
                if link.shared.leaving.load(Ordering::Acquire) {
                    // The goodbye's DISCONNECT went out: that was the last connection.
                    link.shared.connected.store(false, Ordering::Release);
                    log::debug!("disconnected from the broker: {e}");
                    return;
                }
                let now = now_ms();
                if too_large_for_broker {
                    // Something we published is over the broker's message size limit, and it
                    // did not say its limit in CONNACK. The drain loop finds which event.
                    link.shared.broker_refused.fetch_add(1, Ordering::Relaxed);
                    link.shared.refused_too_large.fetch_add(1, Ordering::AcqRel);
                    // The client keeps the refused PUBLISH and would send it again as soon as
                    // a resumed session starts: only a clean session forgets it. The drain
                    // resends the rest (and requests in flight are queried, as after any loss).
                    eventloop.set_clean(true);
                    link.shared.dropped(
                        "too_large",
                        format!(
                            "the broker refused a message of ours as too large ({e}): the event \
                             is set aside when it is sent again; raise the broker's message \
                             size limit to at least {} bytes (docs/broker.md)",
                            MAX_EVENT_BYTES
                        ),
                    );
                }
                if oversize {
                    // The broker sent a packet over the Maximum Packet Size (it ignored it, or
                    // speaks 3.1.1): with a persistent session it would send it again at every
                    // reconnect. The next connection starts a clean session, which drops it
                    // (and whatever else was queued: requests are queried again, events resent
                    // after the ack timeout).
                    link.shared.refused_packets.fetch_add(1, Ordering::Relaxed);
                    eventloop.set_clean(true);
                    link.shared.dropped(
                        "packet",
                        format!(
                            "the broker sent a packet over {MAX_PACKET_BYTES} bytes ({e}): \
                             reconnecting with a clean session to drop it; set the broker's \
                             message size limit (docs/broker.md)"
                        ),
                    );
                }
                link.shared.link_state(|l| l.disconnected(now));
                if link.shared.connected.swap(false, Ordering::AcqRel) {
                    log::warn!("broker connection lost: {e}");
                    gen_tx.send_modify(|g| *g += 1);
                } else if now.saturating_sub(warned_at) >= 60_000 {
                    let more = match unwarned {
                        0 => String::new(),
                        n => format!(" ({n} more failures since the last warning)"),
                    };
                    log::warn!("cannot connect to the broker: {e}{more}; retrying with backoff");
                    warned_at = now;
                    unwarned = 0;
                } else {
                    unwarned += 1;
                    log::debug!("broker connect failed: {e}");
                }
                let delay = backoff.jittered_ms(attempt, fastrand::f64());
                attempt = attempt.saturating_add(1);
                link.shared.conn_update(|c| {
                    c.last_error = Some(e.to_string());
                    c.last_error_at = Some(now);
                    c.failures = c.failures.saturating_add(1);
                    c.next_retry_at = Some(now + delay);
                });
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                }
            }
        }
    }
}

async fn route(link: &Link, inbound: &mpsc::Sender<Inbound>, topic: &str, payload: &[u8]) {
    let t = &link.topics;
    let wire_kind = if topic == t.ack() {
        InboundKind::Ack
    } else if topic == t.resp() {
        InboundKind::Resp
    } else if topic == t.notify() {
        InboundKind::Notify
    } else if topic == t.cfg_desired() || topic == link.all_cfg {
        InboundKind::CfgDesired
    } else if topic == t.cmd() {
        InboundKind::Cmd
    } else {
        log::debug!("message on unexpected topic {topic}");
        return;
    };
    let limit = inbound_limit(wire_kind);
    if payload.len() > limit {
        // Acknowledged by the client already: dropping it here ends it for good.
        link.shared.dropped_oversize.fetch_add(1, Ordering::Relaxed);
        link.shared.dropped(
            wire_kind.as_str(),
            format!(
                "dropped a {}-byte message on {topic}: over the {limit}-byte limit for {} \
                 (docs/payments.md, \"Message sizes\")",
                payload.len(),
                wire_kind.as_str()
            ),
        );
        return;
    }
    let kind = match wire_kind {
        InboundKind::Ack => Some(HostKind::Ack),
        InboundKind::Resp => Some(HostKind::Resp),
        InboundKind::Notify => Some(HostKind::Notify),
        InboundKind::CfgDesired | InboundKind::Cmd => None,
    };
    let msg = if let Some(kind) = kind {
        let published = link.shared.published_seq.load(Ordering::Acquire);
        let terminal = link.topics.terminal();
        let verdict = link
            .shared
            .gate()
            .admit(terminal, kind, payload, published, now_ms());
        // The host is heard when it answers what it owes — an ack that moves the watermark here,
        // a `resp` the engine matches to a request in flight (`LinkShared::host_answered`) — not
        // when any message signed by it arrives: an old signed message replayed by anyone who
        // can publish on the topic would otherwise hide a silent host for ever.
        match verdict {
            Ok(Admitted::Ack(a)) => {
                // Above what the terminal knew the host had, the journal's record included (an
                // old ack replayed after a restart is not an answer).
                if a.upto_seq > link.admitted_ack() {
                    link.shared.host_answered(now_ms());
                }
                let raised = link.acks.send_if_modified(|v| {
                    let raise = a.upto_seq > *v;
                    *v = (*v).max(a.upto_seq);
                    raise
                });
                if raised {
                    // The window moves now: the host has these events, whether or not the
                    // journal has recorded the ack yet (ack_loop does, off this loop).
                    link.drain.notify_one();
                }
                return;
            }
            Ok(Admitted::Resp(r)) => Inbound::Resp(r),
            Ok(Admitted::Notify(n)) => Inbound::Notify(n),
            Err(
                e @ GateError::Refused {
                    refusal: HostRefusal::NotChecked,
                    ..
                },
            ) => {
                // A flood: said at most once a minute, with the count since.
                link.shared
                    .dropped("unchecked", format!("host message dropped on {topic}: {e}"));
                return;
            }
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
                link.shared.dropped(
                    "malformed",
                    format!("dropped a malformed message on {topic}: {e}"),
                );
                return;
            }
        }
    } else if wire_kind == InboundKind::Cmd {
        Inbound::Cmd(payload.to_vec())
    } else {
        Inbound::CfgDesired(payload.to_vec())
    };
    if inbound.send(msg).await.is_err() {
        log::warn!("inbound message dropped: the daemon is stopping");
    }
}

/// The shortest time between two acks recorded in the journal. The host acks every few
/// milliseconds during a drain (the sandbox host every 5 ms); recording each one cost a
/// DELETE and a commit of the outbox's first pages per ~100 events — 14 % of posd's CPU in a
/// drain (issue 18, docs/performance.md, stop 36). The drain's window does not wait for the
/// record (it moves on the admitted ack), so what the gap delays is only the journal's copy:
/// `posctl queue` counts acknowledged events as waiting for at most this long, and after a
/// power cut the host may be sent this much again (it keys events by event_id).
pub const ACK_RECORD_GAP: Duration = Duration::from_millis(50);

/// Applies acks off the event loop: when the highest admitted ack rises, one journal call
/// records it — at once if none was recorded in the last [`ACK_RECORD_GAP`], else when that
/// gap is over (acks that arrived meanwhile are covered by it: they are cumulative). At a
/// stop, an ack admitted and not yet recorded is recorded before the task ends.
async fn ack_loop(
    link: Link,
    store: Store,
    mut acks: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut recorded_at: Option<tokio::time::Instant> = None;
    loop {
        let mut stop = tokio::select! {
            _ = shutdown.changed() => true,
            r = acks.changed() => if r.is_err() { return } else { false },
        };
        // `changed` marked the new value seen: it is owed a record whatever happens next.
        let owed = !stop;
        if let (false, Some(at)) = (stop, recorded_at) {
            tokio::select! {
                _ = shutdown.changed() => stop = true,
                _ = tokio::time::sleep_until(at + ACK_RECORD_GAP) => {}
            }
        }
        if stop {
            if owed || acks.has_changed().unwrap_or(false) {
                acks.borrow_and_update();
                apply_ack(&link, &store).await;
            }
            return;
        }
        acks.borrow_and_update();
        apply_ack(&link, &store).await;
        recorded_at = Some(tokio::time::Instant::now());
    }
}

/// Drops the events the host acknowledged (the gate already bounded the ack by what was
/// published). A background journal call: it waits for every sale's commit queued before it
/// runs, and then records the highest ack admitted by that moment — the acks that arrived
/// while it waited become one SQLite transaction.
async fn apply_ack(link: &Link, store: &Store) {
    let latest = link.acks.clone();
    let taken = store
        .call_background(move |db| {
            let upto = *latest.borrow();
            db.ack_bounded(upto).map(|o| (upto, o))
        })
        .await;
    match taken {
        Ok((upto, o)) => {
            link.shared
                .acked_seq
                .fetch_max(o.acked_seq, Ordering::AcqRel);
            if o.dropped > 0 {
                // The drain was woken when the ack was admitted (`route`).
                log::debug!(seq = o.acked_seq; "host acknowledged events");
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
        // At a stop after the journal closed: the host is sent those events again next time.
        Err(StoreError::Closed) => log::debug!(
            "ack {} not recorded: the journal is closed",
            *link.acks.borrow()
        ),
        Err(e) => log::error!("cannot record ack {}: {e}", *link.acks.borrow()),
    }
}

async fn drain_loop(
    link: Link,
    store: Store,
    window: u64,
    window_bytes: u64,
    ack_timeout: Duration,
    mut gen: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Start from what the journal says the host already has.
    let acked = store.call(|db| Ok(db.acked_seq())).await.unwrap_or(0);
    link.shared.acked_seq.fetch_max(acked, Ordering::AcqRel);
    let mut w = SendWindow::new(
        window,
        window_bytes,
        ack_timeout.as_millis() as u64,
        acked,
        now_ms(),
    );
    let mut seen_gen = *gen.borrow();
    let topic = link.topics.events();
    let mut refusals_seen = link.shared.refused_too_large.load(Ordering::Acquire);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = now_ms();
        let g = *gen.borrow();
        if g != seen_gen {
            // New connection (or lost one): resend everything the host has not acknowledged.
            seen_gen = g;
            let refusals = link.shared.refused_too_large.load(Ordering::Acquire);
            if refusals != refusals_seen {
                refusals_seen = refusals;
                // What this connection published and the host has not acknowledged: when the
                // broker refused one as too large, the biggest of them is the candidate.
                learn_event_limit(&link, w.in_flight(), link.admitted_ack());
            }
            w.reconnected(now);
        }
        w.ack(link.admitted_ack(), now);
        if let Some(again) = w.check_timeout(now) {
            // Published but never acknowledged (no host was subscribed, or an ack was lost):
            // publish again from the last ack. The host keys events by event_id.
            log::info!("no ack for {again} event(s) in {ack_timeout:?}: resending");
        }
        link.shared.sent_seq.store(w.sent(), Ordering::Relaxed);
        let mut batch = Vec::new();
        let max_event = event_limit(&link, &topic);
        if link.is_connected() && w.room() > 0 {
            let (after, limit) = (w.sent(), w.room().min(256) as u32);
            let max = max_event.0 as u64;
            // In the background: a sale's commit queued meanwhile goes first.
            match store
                .call_background(move |db| db.outbox_next(after, limit, max))
                .await
            {
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
        for row in batch {
            // The byte bound (`broker.inflight_bytes`) may close the window inside a batch.
            if *gen.borrow() != seen_gen || w.room() == 0 {
                break;
            }
            // An ack that came while the batch was read or published (after a rewind, the host's
            // late ack for what is being sent again): what it covers is not sent again. Such an
            // event's ack could not raise the watermark, so it would be owed an answer that
            // never counts, and a live host taken for silent.
            w.ack(link.admitted_ack(), now_ms());
            if row.seq <= w.acked() {
                continue;
            }
            let seq = row.seq;
            let Some(payload) = payload_or_set_aside(&store, row, max_event).await else {
                break;
            };
            // Before the client has it: the host's ack can never arrive ahead of this.
            link.shared.published_seq.fetch_max(seq, Ordering::AcqRel);
            let bytes = payload.len() as u64;
            let r = tokio::select! {
                _ = shutdown.changed() => return,
                r = link.client.publish(topic.clone(), false, payload.into_bytes()) => r,
            };
            if let Err(e) = r {
                log::warn!("cannot queue event {seq}: {}", e.0);
                break;
            }
            let now = now_ms();
            if seq > link.admitted_ack() {
                link.shared.link_state(|l| l.sent(now));
            }
            w.published_one(seq, bytes, now);
        }
    }
}

/// The largest event payload that can be delivered now, and why: `MAX_EVENT_BYTES`, or less
/// when the broker's CONNACK named a smaller Maximum Packet Size (less the topic and headers),
/// or less again when the broker refused a bigger event as too large.
fn event_limit(link: &Link, topic: &str) -> (usize, SetAsideReason) {
    let broker = link.shared.broker_max_packet.load(Ordering::Relaxed) as usize;
    // Fixed header (5) + topic length (2) + topic + packet id (2) + properties (1).
    let overhead = 10 + topic.len();
    let mut limit = (MAX_EVENT_BYTES, SetAsideReason::TooLarge);
    if broker > 0 && broker.saturating_sub(overhead) < limit.0 {
        limit = (broker.saturating_sub(overhead), SetAsideReason::BrokerLimit);
    }
    let learned = link.shared.learned_event_limit.load(Ordering::Relaxed) as usize;
    if learned > 0 && learned < limit.0 {
        limit = (learned, SetAsideReason::BrokerRefused);
    }
    limit
}

/// After the broker ended a connection on "packet too large": the event it refused is one this
/// connection published and the host has not acknowledged, and the biggest of those is at least
/// as big. So everything from that size up would be refused too, and nothing smaller is
/// suspected: the limit becomes one byte under it. A smaller event refused later lowers it
/// again, one refusal (one reconnect) at a time; a deliverable event is never set aside.
fn learn_event_limit(link: &Link, in_flight: impl Iterator<Item = (u64, u64)>, acked: u64) {
    let Some((seq, size)) = in_flight
        .filter(|&(s, _)| s > acked)
        .max_by_key(|&(_, size)| size)
    else {
        log::warn!(
            "the broker refused a message as too large, but no event of ours was waiting for \
             it: nothing to set aside"
        );
        return;
    };
    let limit = size.saturating_sub(1).max(1);
    let before = link.shared.learned_event_limit.load(Ordering::Relaxed);
    if before == 0 || limit < before {
        link.shared
            .learned_event_limit
            .store(limit, Ordering::Relaxed);
        log::warn!(
            "the broker refused an event as too large (event {seq} is {size} bytes, the \
             biggest sent): events of {size} bytes or more are set aside from now on"
        );
    }
}

/// The payload to publish for an outbox row: the event itself, or — when it is over the limit
/// and so can never be delivered — the stub that takes its place (set aside in the journal
/// first, loudly). None: the journal could not be written; try again later.
async fn payload_or_set_aside(
    store: &Store,
    row: OutboxRow,
    (limit, reason): (usize, SetAsideReason),
) -> Option<String> {
    match row.payload {
        Some(p) if p.len() <= limit => return Some(p),
        _ => {}
    }
    let (seq, size) = (row.seq, row.size);
    match store
        .call(move |db| db.set_aside(seq, reason, limit, now_ms()))
        .await
    {
        Ok(Some(a)) => {
            log::error!(
                "event {seq} ({} bytes, id {}) is over the {limit}-byte limit and can never be \
                 delivered: set aside, a stub took its place so the events behind it are \
                 delivered; the full event stays in the journal (table set_aside). `posctl \
                 queue` counts set-aside events; tell the payment platform (docs/payments.md, \
                 \"Message sizes\")",
                a.size,
                a.event_id
            );
            Some(a.stub)
        }
        Ok(None) => {
            log::debug!("event {seq} ({size} bytes) was acknowledged meanwhile");
            None
        }
        Err(e) => {
            log::error!("cannot set aside event {seq} ({size} bytes): {e}");
            // Not at wire speed: the drain tries again after a pause.
            tokio::time::sleep(Duration::from_secs(1)).await;
            None
        }
    }
}

/// The shortest time between two retained status publishes.
const STATUS_MIN_GAP: Duration = Duration::from_secs(1);

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
            let q = store.queue_stats(now_ms());
            let mut v = status(true, q);
            v.host_messages = link.shared.host_trust();
            v.wire = link.wire_status();
            if let Err(e) = link.publish_json("status", true, &v) {
                log::debug!("status not published: {e}");
            }
            // At most one a second whatever changes (a device that flaps, say): changes meanwhile
            // are published together after it.
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(STATUS_MIN_GAP) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use posd_core::money::Currency;
    use posd_core::txn::{Method, Transaction, TxnKind, TxnState};
    use std::time::Instant;

    /// A link whose broker is a closed loopback port (it never connects: the test drives its
    /// ack task directly), over a journal holding `events` unsent events.
    async fn offline_link(
        dir: &std::path::Path,
        events: u64,
    ) -> (Link, Store, watch::Sender<bool>) {
        let store = Store::open(&dir.join("j.sqlite")).expect("journal");
        store
            .call(move |db| {
                for i in 0..events {
                    let mut t = Transaction::new(
                        TxnKind::Sale,
                        Method::PaymentCode,
                        1250,
                        Currency::from_code("CNY").expect("CNY"),
                        TxnState::Authorizing,
                        1_000 + i,
                        [i as u8; 10],
                    );
                    t.channel = Some("wechat".into());
                    db.record(&t)?;
                }
                Ok(())
            })
            .await
            .expect("events");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (inbound, _inbound_rx) = mpsc::channel(8);
        let link = start(
            LinkParams {
                terminal: "T-ACKS".into(),
                session: "s".into(),
                broker: BrokerConfig {
                    url: format!("mqtt://127.0.0.1:{port}"),
                    backoff_initial_ms: 60_000,
                    ..BrokerConfig::default()
                },
                store: store.clone(),
                inbound,
                status: Arc::new(|_, _| posd_core::control::StatusDoc::default()),
            },
            shutdown,
        )
        .expect("link");
        (link, store, shutdown_tx)
    }

    /// Waits (at most 10 s) until the journal's recorded ack is `seq`.
    async fn recorded(link: &Link, seq: u64) -> Instant {
        let t0 = Instant::now();
        while link.shared.acked_seq.load(Ordering::Acquire) != seq {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "ack {seq} not recorded (recorded: {})",
                link.shared.acked_seq.load(Ordering::Acquire)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Instant::now()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acks_close_together_are_recorded_as_one_and_a_stop_records_the_last() {
        let dir = tempfile::tempdir().expect("dir");
        let (link, store, shutdown) = offline_link(dir.path(), 5).await;
        // The first ack is recorded at once. It is recorded after `sent`, so the gap it
        // opens ends after `sent + ACK_RECORD_GAP`.
        let sent = Instant::now();
        link.acks.send_modify(|v| *v = 1);
        recorded(&link, 1).await;
        // Two more within the gap: neither is recorded before the gap is over, then both in
        // one journal call.
        link.acks.send_modify(|v| *v = 2);
        link.acks.send_modify(|v| *v = 3);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let seen = link.shared.acked_seq.load(Ordering::Acquire);
        if sent.elapsed() < ACK_RECORD_GAP {
            assert_eq!(seen, 1, "recorded before the gap was over");
        }
        let second = recorded(&link, 3).await;
        assert!(second - sent >= ACK_RECORD_GAP, "{:?}", second - sent);
        assert_eq!(
            store
                .call(|db| Ok(db.queue_stats(0)?.pending))
                .await
                .unwrap(),
            2,
            "events 4 and 5 wait"
        );
        // An ack admitted just before a stop is recorded by the stop, not left to the gap.
        link.acks.send_modify(|v| *v = 5);
        shutdown.send(true).expect("stop");
        recorded(&link, 5).await;
        let left = store.call(|db| Ok(db.queue_stats(0)?.pending)).await;
        assert_eq!(left.unwrap(), 0);
        store.close().await;
    }
}
