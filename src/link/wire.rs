//! The MQTT client under the link, in either protocol version (`broker.protocol`): MQTT 5 by
//! default, so CONNECT carries the terminal's Maximum Packet Size and the broker discards what
//! the terminal cannot take (issue 14); MQTT 3.1.1 for brokers without 5. The link sees one
//! small surface — publish, subscribe, and a poll that says "connected", "a message", or "the
//! connection ended, and whether a packet over the limit ended it" — whatever the version.

use crate::config::MqttProtocol;
use posd_core::protocol::limits::MAX_PACKET_BYTES;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{QoS, Transport};
use std::time::Duration;

/// The client half: every message of the link is QoS 1.
#[derive(Clone)]
pub enum WireClient {
    V3(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The event loop half.
pub enum WireLoop {
    V3(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What one turn of the event loop produced.
#[derive(Debug)]
pub enum WireEvent {
    Connected {
        session_present: bool,
        /// The broker's own Maximum Packet Size (MQTT 5 CONNACK), if it sent one.
        broker_max_packet: Option<u32>,
    },
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    /// The broker answered a SUBSCRIBE.
    SubAck,
    /// The broker refused a PUBLISH of ours (an MQTT 5 PUBACK with a reason of 0x80 or more:
    /// not authorised, quota exceeded, …). It stays unacknowledged and is sent again later.
    PubRefused {
        reason: String,
    },
    /// Our DISCONNECT was written to the socket (what was queued before it went first).
    DisconnectSent,
    Other,
    /// The connection ended (or could not be made). `oversize`: the client refused an incoming
    /// packet over its limit — a broker that does not honour the Maximum Packet Size.
    Error {
        text: String,
        oversize: bool,
        /// The broker answered "packet too large" (reason 0x95, which mosquitto puts in a
        /// PUBACK when a PUBLISH is over its `message_size_limit`; the client cannot parse it
        /// and ends the connection): something we published is bigger than the broker takes.
        too_large_for_broker: bool,
    },
}

/// MQTT 5 reason code "Packet too large".
const RC_PACKET_TOO_LARGE: u8 = 0x95;

/// What the link needs to build a client, whatever the version.
pub struct WireOptions {
    pub protocol: MqttProtocol,
    pub client_id: String,
    pub host: String,
    pub port: u16,
    pub keep_alive: Duration,
    pub transport: Option<Transport>,
    /// Retained Will: (topic, payload).
    pub will: (String, Vec<u8>),
    pub inflight: u16,
    pub cap: usize,
}

/// Builds a client with a persistent session (MQTT 5: clean start off and a session that never
/// expires, as 3.1.1's clean session off), the Will, and the packet limit both ways.
pub fn build(o: WireOptions) -> (WireClient, WireLoop) {
    match o.protocol {
        MqttProtocol::V311 => {
            let mut m = rumqttc::MqttOptions::new(o.client_id, o.host, o.port);
            m.set_keep_alive(o.keep_alive);
            m.set_max_packet_size(MAX_PACKET_BYTES as usize, MAX_PACKET_BYTES as usize);
            if let Some(t) = o.transport {
                m.set_transport(t);
            }
            m.set_clean_session(false);
            m.set_last_will(rumqttc::LastWill::new(
                o.will.0,
                o.will.1,
                QoS::AtLeastOnce,
                true,
            ));
            m.set_inflight(o.inflight);
            let (c, mut l) = rumqttc::AsyncClient::new(m, o.cap);
            let mut n = l.network_options();
            n.set_tcp_nodelay(true);
            l.set_network_options(n);
            (WireClient::V3(c), WireLoop::V3(Box::new(l)))
        }
        MqttProtocol::V5 => {
            let mut m = rumqttc::v5::MqttOptions::new(o.client_id, o.host, o.port);
            m.set_keep_alive(o.keep_alive);
            // CONNECT's Maximum Packet Size: the broker must not send anything larger (it
            // discards it, queued and retained messages included); the client also refuses it.
            m.set_max_packet_size(Some(MAX_PACKET_BYTES));
            if let Some(t) = o.transport {
                m.set_transport(t);
            }
            m.set_clean_start(false);
            // MQTT 5 ends a session at disconnect unless told otherwise; 0xFFFFFFFF = never.
            m.set_session_expiry_interval(Some(u32::MAX));
            m.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                o.will.0,
                o.will.1,
                QoS5::AtLeastOnce,
                true,
                None,
            ));
            m.set_outgoing_inflight_upper_limit(o.inflight);
            let mut n = m.network_options();
            n.set_tcp_nodelay(true);
            m.set_network_options(n);
            let (c, l) = rumqttc::v5::AsyncClient::new(m, o.cap);
            (WireClient::V5(c), WireLoop::V5(Box::new(l)))
        }
    }
}

/// The client refused to queue a message (its request channel is full or closed).
#[derive(Debug)]
pub struct Refused(pub String);

impl WireClient {
    pub fn try_publish(
        &self,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), Refused> {
        match self {
            WireClient::V3(c) => c
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .map_err(|e| Refused(e.to_string())),
            WireClient::V5(c) => c
                .try_publish(topic, QoS5::AtLeastOnce, retain, payload)
                .map_err(|e| Refused(e.to_string())),
        }
    }

    pub async fn publish(
        &self,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), Refused> {
        match self {
            WireClient::V3(c) => c
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await
                .map_err(|e| Refused(e.to_string())),
            WireClient::V5(c) => c
                .publish(topic, QoS5::AtLeastOnce, retain, payload)
                .await
                .map_err(|e| Refused(e.to_string())),
        }
    }

    pub fn try_subscribe(&self, topic: String) -> Result<(), Refused> {
        match self {
            WireClient::V3(c) => c
                .try_subscribe(topic, QoS::AtLeastOnce)
                .map_err(|e| Refused(e.to_string())),
            WireClient::V5(c) => c
                .try_subscribe(topic, QoS5::AtLeastOnce)
                .map_err(|e| Refused(e.to_string())),
        }
    }

    pub async fn disconnect(&self) {
        let _ = match self {
            WireClient::V3(c) => c.disconnect().await.map_err(|e| e.to_string()),
            WireClient::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }
}

impl WireLoop {
    /// One turn of the event loop.
    pub async fn poll(&mut self) -> WireEvent {
        match self {
            WireLoop::V3(l) => {
                use rumqttc::{ConnectionError, Event, Packet, StateError};
                match l.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => WireEvent::Connected {
                        session_present: a.session_present,
                        broker_max_packet: None,
                    },
                    Ok(Event::Incoming(Packet::Publish(p))) => WireEvent::Message {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                    },
                    Ok(Event::Incoming(Packet::SubAck(_))) => WireEvent::SubAck,
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => WireEvent::DisconnectSent,
                    Ok(_) => WireEvent::Other,
                    Err(e) => {
                        let oversize = matches!(
                            &e,
                            ConnectionError::MqttState(StateError::Deserialization(
                                rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)
                            ))
                        );
                        WireEvent::Error {
                            text: e.to_string(),
                            oversize,
                            too_large_for_broker: false,
                        }
                    }
                }
            }
            WireLoop::V5(l) => {
                use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
                use rumqttc::v5::mqttbytes::Error as E;
                use rumqttc::v5::{ConnectionError, Event, StateError};
                match l.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(a))) => WireEvent::Connected {
                        session_present: a.session_present,
                        broker_max_packet: a.properties.as_ref().and_then(|p| p.max_packet_size),
                    },
                    Ok(Event::Incoming(Packet::Publish(p))) => WireEvent::Message {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                    },
                    Ok(Event::Incoming(Packet::SubAck(_))) => WireEvent::SubAck,
                    Ok(Event::Incoming(Packet::PubAck(a)))
                        if !matches!(
                            a.reason,
                            PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                        ) =>
                    {
                        WireEvent::PubRefused {
                            reason: format!("{:?}", a.reason),
                        }
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => WireEvent::DisconnectSent,
                    Ok(_) => WireEvent::Other,
                    Err(e) => {
                        let oversize = matches!(
                            &e,
                            ConnectionError::MqttState(StateError::IncomingPacketTooLarge { .. })
                                | ConnectionError::MqttState(StateError::Deserialization(
                                    E::PayloadSizeLimitExceeded { .. }
                                ))
                        );
                        let too_large_for_broker = matches!(
                            &e,
                            ConnectionError::MqttState(StateError::Deserialization(
                                E::InvalidConnectReturnCode(RC_PACKET_TOO_LARGE)
                            ))
                        );
                        WireEvent::Error {
                            text: e.to_string(),
                            oversize,
                            too_large_for_broker,
                        }
                    }
                }
            }
        }
    }

    /// The next connection starts a clean session (true) or resumes the persistent one. Used
    /// once after a packet over the limit ended the connection: a broker that ignored the
    /// Maximum Packet Size would otherwise deliver the same message at every reconnect.
    pub fn set_clean(&mut self, clean: bool) {
        match self {
            WireLoop::V3(l) => {
                l.mqtt_options.set_clean_session(clean);
            }
            WireLoop::V5(l) => {
                l.options.set_clean_start(clean);
            }
        }
    }
}
