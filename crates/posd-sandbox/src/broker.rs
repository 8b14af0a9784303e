//! An MQTT broker inside the demo's process (rumqttd), so the demo needs nothing installed but
//! Rust. Tests use a real mosquitto instead. It speaks MQTT 3.1.1 only, so the demo's terminal
//! sets `broker.protocol = "3.1.1"`; `max_payload_size` is the wire's broker limit.

use anyhow::{bail, Context};
use std::time::{Duration, Instant};

/// Starts rumqttd on 127.0.0.1:port in a background thread (it has no shutdown API; it ends
/// with the process).
pub fn start_embedded_broker(port: u16) -> anyhow::Result<()> {
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 1000
max_segment_size = 10485760
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
# The largest payload any posd party sends (posd_core::protocol::limits, docs/broker.md).
max_payload_size = {max_payload}
max_inflight_count = 1000
dynamic_filters = true
"#,
        max_payload = posd_core::protocol::limits::BROKER_MESSAGE_SIZE_LIMIT
    );
    let config: rumqttd::Config = toml::from_str(&text).context("embedded broker config")?;
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("embedded broker stopped: {e}");
            }
        })?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the embedded broker did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
