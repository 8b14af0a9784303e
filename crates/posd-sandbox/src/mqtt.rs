//! The sandbox's MQTT clients (host, wallet): rumqttc options from a broker URL, plain TCP with
//! Nagle off, and the wall clock the sandbox stamps its records with.

use posd_core::protocol::parse_broker_url;
use rumqttc::{EventLoop, MqttOptions};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Once;
use std::time::Duration;

/// Options for `client_id` at `url` (`mqtt://host:port`; the sandbox does not do TLS).
pub fn options(client_id: &str, url: &str, keep_alive_s: u64) -> Result<MqttOptions, String> {
    let addr = parse_broker_url(url)?;
    if addr.tls {
        return Err(format!("{url}: the sandbox speaks plain MQTT only"));
    }
    let mut o = MqttOptions::new(client_id, addr.host, addr.port);
    o.set_keep_alive(Duration::from_secs(keep_alive_s.max(5)));
    o.set_max_packet_size(256 * 1024, 256 * 1024);
    Ok(o)
}

/// Small packets leave at once (Nagle plus delayed ACKs cost ~40 ms a round trip).
pub fn disable_nagle(eventloop: &mut EventLoop) {
    let mut n = eventloop.network_options();
    n.set_tcp_nodelay(true);
    eventloop.set_network_options(n);
}

/// The same variable as posd's `POSD_CLOCK_OFFSET_MS` (docs/soak.md): milliseconds added to the
/// wall clock, so a host and a wallet started for a soak's simulated day share the terminal's
/// time. Read once, at the first use.
pub const CLOCK_OFFSET_ENV: &str = "POSD_CLOCK_OFFSET_MS";

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
static OFFSET_INIT: Once = Once::new();

fn init_offset() {
    OFFSET_INIT.call_once(|| {
        if let Some(v) = std::env::var(CLOCK_OFFSET_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            OFFSET_MS.store(v, Ordering::Relaxed);
        }
    });
}

/// Shifts this process's sandbox clock (the soak moves its in-process host and wallet to each
/// simulated day; nothing of the product is touched).
pub fn set_clock_offset_ms(offset: i64) {
    init_offset();
    OFFSET_MS.store(offset, Ordering::Relaxed);
}

/// The current shift of the sandbox clock.
pub fn clock_offset_ms() -> i64 {
    init_offset();
    OFFSET_MS.load(Ordering::Relaxed)
}

/// The real wall clock, in unix milliseconds.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix milliseconds now, shifted by [`clock_offset_ms`].
pub fn now_ms() -> u64 {
    wall_ms().saturating_add_signed(clock_offset_ms())
}
