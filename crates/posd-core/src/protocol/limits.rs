//! Size limits on the wire (issue 14, "bounded messages"): what a terminal publishes and what it
//! takes from the broker stay within named sizes whatever a peer sends. Pure: the link applies
//! them, the sandbox host follows them, docs/payments.md ("Message sizes") states them.
//!
//! Three layers, from the outside in:
//! 1. the broker refuses any PUBLISH above its message size limit (the shipped mosquitto.conf:
//!    [`BROKER_MESSAGE_SIZE_LIMIT`]);
//! 2. the terminal announces [`MAX_PACKET_BYTES`] as MQTT 5's Maximum Packet Size in CONNECT, so
//!    the broker discards (rather than delivers) anything larger — including queued messages of
//!    the persistent session and retained ones; its MQTT client refuses anything larger too;
//! 3. each topic has its own payload limit ([`inbound_limit`]): a message above it, or one that
//!    does not parse, is acknowledged and dropped with one rate-limited warning.

/// The largest MQTT packet the terminal sends or takes (CONNECT's Maximum Packet Size).
pub const MAX_PACKET_BYTES: u32 = 256 * 1024;

/// The largest event payload (`events`, bytes of JSON) a terminal publishes. An event above it
/// is set aside ([`set_aside_stub`]). 64 KiB: the largest legitimate event (a Z report with
/// totals and a digest, a card sale with its sealed track data) is a few KiB, so this leaves
/// ten times the room; a 4G uplink at 100 kbit/s sends it in about 5 s; and it stays well inside
/// every broker's default limit and [`MAX_PACKET_BYTES`].
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// The largest `resp`, `ack` or `notify` payload (the signed envelope included) the terminal
/// takes from the host. The host keeps its lists within [`MAX_NOTIFY_LIST`] entries.
pub const MAX_HOST_MESSAGE_BYTES: usize = 64 * 1024;

/// The largest `cfg/desired` or `cmd` payload: a signed fleet envelope.
pub const MAX_FLEET_MESSAGE_BYTES: usize = crate::fleet::envelope::MAX_ENVELOPE;

/// The message size limit the shipped broker configuration sets (payload bytes): the largest
/// payload any posd party sends (a fleet envelope), below [`MAX_PACKET_BYTES`] with room for the
/// topic and headers.
pub const BROKER_MESSAGE_SIZE_LIMIT: usize = MAX_FLEET_MESSAGE_BYTES;

/// At most this many entries in any list of a host notify (`batch_close` `mismatches`, `txns`);
/// the notify says how many there were and whether the list was cut.
pub const MAX_NOTIFY_LIST: usize = 100;

/// The `type` of the stub event published in place of one that was set aside.
pub const SET_ASIDE_TYPE: &str = "set_aside";

/// What a message from the broker is, for its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundKind {
    Resp,
    Ack,
    Notify,
    CfgDesired,
    Cmd,
}

impl InboundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundKind::Resp => "resp",
            InboundKind::Ack => "ack",
            InboundKind::Notify => "notify",
            InboundKind::CfgDesired => "cfg/desired",
            InboundKind::Cmd => "cmd",
        }
    }
}

/// The largest payload the terminal takes on a topic of this kind.
pub fn inbound_limit(kind: InboundKind) -> usize {
    match kind {
        InboundKind::Resp | InboundKind::Ack | InboundKind::Notify => MAX_HOST_MESSAGE_BYTES,
        InboundKind::CfgDesired | InboundKind::Cmd => MAX_FLEET_MESSAGE_BYTES,
    }
}

/// Why an event was set aside (`detail.reason` of the stub).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetAsideReason {
    /// Larger than [`MAX_EVENT_BYTES`].
    TooLarge,
    /// Larger than the broker's own Maximum Packet Size (its CONNACK).
    BrokerLimit,
    /// Larger than what the broker took: it refused this event (or one of the same size) as
    /// "packet too large" without announcing a limit.
    BrokerRefused,
}

impl SetAsideReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SetAsideReason::TooLarge => "too_large",
            SetAsideReason::BrokerLimit => "broker_limit",
            SetAsideReason::BrokerRefused => "broker_refused",
        }
    }
}

/// The stub event published in the place of an event that can never be delivered, so the host's
/// cumulative `ack {upto_seq}` can pass it: same `seq` and `event_id`, `type` `set_aside`,
/// amount 0, and in `detail` what the original was (`type`, `state`, `amount`), its size, the
/// limit and the reason. The full event stays in the terminal's journal. Fields the original
/// does not yield (it is our own JSON, but may not parse) are left empty.
pub fn set_aside_stub(
    original: &str,
    seq: u64,
    event_id: &str,
    reason: SetAsideReason,
    limit: usize,
    at: u64,
) -> String {
    let orig: serde_json::Value = serde_json::from_str(original).unwrap_or_default();
    let s = |k: &str| {
        orig.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let stub = super::Event {
        seq,
        event_id: event_id.to_string(),
        txn_id: s("txn_id"),
        kind: SET_ASIDE_TYPE.to_string(),
        state: SET_ASIDE_TYPE.to_string(),
        method: s("method"),
        channel: None,
        amount: 0,
        currency: s("currency"),
        at,
        reason: Some(reason.as_str().to_string()),
        host_ref: None,
        code_masked: None,
        detail: Some(serde_json::json!({
            "original_type": s("type"),
            "original_state": s("state"),
            "original_amount": orig.get("amount").and_then(|v| v.as_i64()).unwrap_or(0),
            "size": original.len(),
            "limit": limit,
            "reason": reason.as_str(),
        })),
    };
    // An Event of plain strings and numbers always serializes.
    serde_json::to_string(&stub).unwrap_or_default()
}

/// Fleet messages (`cfg/desired`, `cmd`) that may fail their envelope's checks in a second, at
/// most (see [`RefusalBudget`]): a refused push is recorded durably and reported, ~0.9 ms of CPU
/// and ~19 KB written each, so a flood of forged pushes wore the flash at wire speed (800 forged
/// pushes: 14.9 MB written, 800 warnings). Real pushes and commands come minutes or hours apart.
pub const FLEET_REFUSALS_PER_SECOND: u64 = 10;

/// Fleet messages signed by a fleet key and still not applied or run (a stale or foreign
/// document, a command no longer fresh) that may be handled in a second, at most: a replay of
/// genuine old messages in a loop is bounded like a flood of forgeries, while a broker that
/// delivers a persistent session's queued (and now expired) commands in one burst after an
/// outage does not starve the fresh one behind them. Already handled messages cost a lookup
/// and spend nothing.
pub const FLEET_GENUINE_REFUSALS_PER_SECOND: u64 = 100;

/// Failures a peer can cause at wire speed, allowed at most `per_second` a second (and that many
/// at once): a token bucket the caller spends on each failure and asks before checking the
/// next message; beyond it the caller drops messages unchecked until the rate falls (the host
/// gate's [`crate::protocol::signed::REFUSALS_PER_SECOND`], the fleet agent's pushes and
/// commands). Pure: `now` (unix ms) is passed in.
#[derive(Debug, Clone)]
pub struct RefusalBudget {
    per_second: u64,
    /// What is left, in thousandths of a failure.
    milli: u64,
    /// Unix ms of the last refill.
    at: u64,
}

impl RefusalBudget {
    /// A full budget of `per_second` failures.
    pub fn new(per_second: u64) -> RefusalBudget {
        RefusalBudget {
            per_second,
            milli: per_second.saturating_mul(1000),
            at: 0,
        }
    }

    /// Refills for the time since the last call and says whether a failure may be checked now.
    /// A clock stepped back refills nothing for the step and counts on from the new time: a
    /// box whose clock NTP sets back by hours must not stop checking for those hours.
    pub fn allows(&mut self, now: u64) -> bool {
        let ms = now.saturating_sub(self.at);
        self.milli = self
            .milli
            .saturating_add(ms.saturating_mul(self.per_second))
            .min(self.per_second.saturating_mul(1000));
        self.at = now;
        self.milli >= 1000
    }

    /// One failure checked.
    pub fn spend(&mut self) {
        self.milli = self.milli.saturating_sub(1000);
    }
}

/// One warning per `every_ms` for a kind of trouble that can repeat at wire speed; the rest are
/// counted and the count is said with the next warning.
#[derive(Debug, Clone, Default)]
pub struct WarnGate {
    every_ms: u64,
    last_at: Option<u64>,
    suppressed: u64,
}

impl WarnGate {
    pub fn new(every_ms: u64) -> WarnGate {
        WarnGate {
            every_ms,
            last_at: None,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log now, saying `n` more happened since the last warning; `None`: stay quiet.
    pub fn check(&mut self, now: u64) -> Option<u64> {
        match self.last_at {
            Some(t) if now.saturating_sub(t) < self.every_ms => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_at = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stub_is_an_event_that_names_the_original() {
        let original = r#"{"seq":7,"event_id":"e7","txn_id":"t7","type":"batch_close","state":"closed","method":"none","amount":1234,"currency":"EUR","at":5,"detail":{"txns":{}}}"#;
        let stub = set_aside_stub(original, 7, "e7", SetAsideReason::TooLarge, 10, 99);
        let ev = super::super::parse_event(stub.as_bytes()).unwrap();
        assert_eq!((ev.seq, ev.event_id.as_str()), (7, "e7"));
        assert_eq!((ev.kind.as_str(), ev.txn_id.as_str()), ("set_aside", "t7"));
        assert_eq!((ev.amount, ev.at), (0, 99));
        let d = ev.detail.unwrap();
        assert_eq!(d["original_type"], "batch_close");
        assert_eq!(d["original_amount"], 1234);
        assert_eq!(d["size"], original.len());
        assert_eq!(d["reason"], "too_large");
        assert!(stub.len() < 1024);
    }

    #[test]
    fn a_stub_of_garbage_still_parses() {
        let stub = set_aside_stub("not json", 3, "e3", SetAsideReason::BrokerLimit, 10, 1);
        let ev = super::super::parse_event(stub.as_bytes()).unwrap();
        assert_eq!((ev.seq, ev.txn_id.as_str()), (3, ""));
        assert_eq!(ev.reason.as_deref(), Some("broker_limit"));
    }

    #[test]
    fn limits_nest() {
        const _: () = assert!(MAX_EVENT_BYTES < BROKER_MESSAGE_SIZE_LIMIT);
        const _: () = assert!(BROKER_MESSAGE_SIZE_LIMIT + 8 * 1024 <= MAX_PACKET_BYTES as usize);
        assert_eq!(inbound_limit(InboundKind::Ack), MAX_HOST_MESSAGE_BYTES);
        assert_eq!(inbound_limit(InboundKind::Cmd), MAX_FLEET_MESSAGE_BYTES);
    }

    #[test]
    fn warnings_are_rate_limited_and_count_the_rest() {
        let mut g = WarnGate::new(1000);
        assert_eq!(g.check(0), Some(0));
        assert_eq!(g.check(10), None);
        assert_eq!(g.check(999), None);
        assert_eq!(g.check(1000), Some(2));
        assert_eq!(g.check(1500), None);
    }
}
