//! The sandbox's MQTT clients (host, wallet): rumqttc options from a broker URL, plain TCP with
//! Nagle off, and the wall clock the sandbox stamps its records with.

use posd_core::protocol::parse_broker_url;
use rumqttc::{EventLoop, MqttOptions};
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

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
