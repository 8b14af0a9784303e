//! The outbox's send window (DESIGN §4): which journal events to publish next, how many — and
//! how many bytes — may be unacknowledged at once, and when to publish again from the host's
//! last `ack` — after a reconnect, or when no ack came for a while (a broker does not queue for
//! absent shared subscribers, and an ack can be lost). Pure; the link's drain task asks it and
//! publishes.
//!
//! Why bytes as well as events: on a slow uplink whatever is unacknowledged sits in a queue
//! (the modem's, the socket's) ahead of the keep-alive PINGREQ and of a live sale's `req`. 512
//! events of ~700 bytes are 4 s of a 1 Mbit/s uplink and 11 s of 256 kbit/s: past a short
//! keep-alive the broker connection is dropped, everything is sent again, and the backlog never
//! drains (measured in the bus soak, docs/broker.md "Slow links"). The byte bound keeps that
//! queue to what the link carries in a moment, whatever the backlog.
//!
//! Why the byte bound adapts: a fixed bound caps the drain at `bound / round trip` — 128 KiB over
//! the ~1.9 s an event and its ack took on a 150–600 ms link is 0.55 Mbit/s, whatever the link
//! carries (the bus soak drained a day's 26 MB in the same 300 s at 1 and at 2 Mbit/s). So the
//! configured bound is the floor, and it grows while acks come back within [`QUEUE_TARGET_MS`]
//! of the quickest round trip seen on this connection (nothing is queueing) and shrinks back when
//! they come later (a queue is building), up to [`MAX_GROWTH`] times the floor: the queue ahead of
//! a PINGREQ stays about a second of the link, on a slow link and on a long one.

use std::collections::VecDeque;

use crate::txn::Millis;

/// How much later than the connection's quickest round trip an ack may come before the byte
/// bound stops growing and shrinks: the time a queue on the way may add.
pub const QUEUE_TARGET_MS: u64 = 1_000;
/// The byte bound grows to at most this many times the configured `inflight_bytes`.
pub const MAX_GROWTH: u64 = 8;

/// The drain's position: events up to `acked` are the host's; up to `sent` are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    window: u64,
    /// The configured byte bound: where the adaptive bound starts on each connection and its
    /// floor.
    max_bytes: u64,
    /// Payload bytes published and not acknowledged, at most, now (one event may pass it, so
    /// that an event bigger than the bound still leaves, alone): between `max_bytes` and
    /// `MAX_GROWTH × max_bytes`.
    byte_limit: u64,
    /// The quickest publish-to-ack time seen on this connection.
    rtt_min: Option<Millis>,
    /// (seq, payload bytes, when published) of what is published and unacknowledged since the
    /// last (re)send from the last ack, oldest first; bounded by `window`.
    in_flight: VecDeque<(u64, u64, Millis)>,
    bytes_in_flight: u64,
    ack_timeout_ms: u64,
    acked: u64,
    sent: u64,
    /// The highest seq published since start (acks above it are refused).
    published: u64,
    /// When the host last made progress (or the first unacknowledged event left).
    progress_at: Millis,
}

impl SendWindow {
    /// A window of `window` unacknowledged events and `max_bytes` unacknowledged payload
    /// bytes, starting from what the journal says the host already has.
    pub fn new(
        window: u64,
        max_bytes: u64,
        ack_timeout_ms: u64,
        acked: u64,
        now: Millis,
    ) -> SendWindow {
        SendWindow {
            window: window.max(1),
            max_bytes: max_bytes.max(1),
            byte_limit: max_bytes.max(1),
            rtt_min: None,
            in_flight: VecDeque::new(),
            bytes_in_flight: 0,
            ack_timeout_ms: ack_timeout_ms.max(1),
            acked,
            sent: acked,
            published: acked,
            progress_at: now,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Publish events with a seq above this.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The highest seq published since start.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// How many more events may leave now (0 while the byte bound is reached).
    pub fn room(&self) -> u64 {
        if self.bytes_in_flight >= self.byte_limit {
            return 0;
        }
        self.window
            .saturating_sub(self.sent.saturating_sub(self.acked))
    }

    /// Payload bytes published and not yet acknowledged.
    pub fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// The byte bound now (see the module's note: it adapts to the link).
    pub fn byte_limit(&self) -> u64 {
        self.byte_limit
    }

    /// (seq, payload bytes) of what is published and unacknowledged, oldest first.
    pub fn in_flight(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.in_flight.iter().map(|&(seq, bytes, _)| (seq, bytes))
    }

    /// Everything unacknowledged will be published again from the last ack, from the
    /// configured byte bound (a resend follows a lost connection or lost acks: start careful).
    fn rewind(&mut self, now: Millis) {
        self.sent = self.acked;
        self.in_flight.clear();
        self.bytes_in_flight = 0;
        self.progress_at = now;
        self.byte_limit = self.max_bytes;
    }

    /// A new connection (or a lost one): everything unacknowledged is published again, and the
    /// round trips of the old connection say nothing about the new one.
    pub fn reconnected(&mut self, now: Millis) {
        self.rewind(now);
        self.rtt_min = None;
    }

    /// An ack freed `freed` bytes; the newest event it covered was published at `published_at`.
    /// Grows the byte bound by what was freed while that round trip is within
    /// [`QUEUE_TARGET_MS`] of the quickest, shrinks it by half of that when it is not — so it at
    /// most doubles or halves in a round trip — between the configured bound and [`MAX_GROWTH`]
    /// times it. It grows only when the bound was what held the drain back (at
    /// least half of it in flight), not on a trickle of sales.
    fn adapt(&mut self, freed: u64, in_flight_before: u64, published_at: Millis, now: Millis) {
        let Some(rtt) = now.checked_sub(published_at) else {
            return; // the clock went back: no sample
        };
        let min = self.rtt_min.map_or(rtt, |m| m.min(rtt));
        self.rtt_min = Some(min);
        let ceiling = self.max_bytes.saturating_mul(MAX_GROWTH);
        if rtt - min <= QUEUE_TARGET_MS {
            if in_flight_before.saturating_mul(2) >= self.byte_limit {
                self.byte_limit = self.byte_limit.saturating_add(freed).min(ceiling);
            }
        } else {
            self.byte_limit = self
                .byte_limit
                .saturating_sub(freed / 2)
                .max(self.max_bytes);
        }
    }

    /// The host acknowledged every event up to `upto`. Returns whether that was progress.
    pub fn ack(&mut self, upto: u64, now: Millis) -> bool {
        if upto <= self.acked {
            return false;
        }
        self.acked = upto;
        self.sent = self.sent.max(upto);
        let before = self.bytes_in_flight;
        let (mut freed, mut newest) = (0, None);
        while let Some(&(seq, bytes, at)) = self.in_flight.front() {
            if seq > upto {
                break;
            }
            self.in_flight.pop_front();
            self.bytes_in_flight = self.bytes_in_flight.saturating_sub(bytes);
            freed += bytes;
            newest = Some(at);
        }
        if let Some(at) = newest {
            self.adapt(freed, before, at, now);
        }
        self.progress_at = now;
        true
    }

    /// Events are out but no ack came for the timeout: publish again from the last ack (the host
    /// keys events by `event_id`). Returns how many events will be published again.
    pub fn check_timeout(&mut self, now: Millis) -> Option<u64> {
        if self.sent > self.acked && now.saturating_sub(self.progress_at) >= self.ack_timeout_ms {
            let again = self.sent - self.acked;
            self.rewind(now);
            return Some(again);
        }
        None
    }

    /// Event `seq` (`bytes` of payload) was handed to the MQTT client.
    pub fn published_one(&mut self, seq: u64, bytes: u64, now: Millis) {
        if self.sent == self.acked {
            // The first unacknowledged event starts the ack timeout.
            self.progress_at = now;
        }
        if seq > self.acked {
            self.in_flight.push_back((seq, bytes, now));
            self.bytes_in_flight += bytes;
        }
        self.sent = self.sent.max(seq);
        self.published = self.published.max(seq);
    }

    /// When to look at the timeout next (None: nothing is waiting for an ack).
    pub fn timeout_at(&self) -> Option<Millis> {
        (self.sent > self.acked).then(|| self.progress_at + self.ack_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_bounds_unacknowledged_events() {
        let mut w = SendWindow::new(3, u64::MAX, 10_000, 5, 0);
        assert_eq!((w.sent(), w.room()), (5, 3));
        for seq in 6..=8 {
            w.published_one(seq, 100, 1);
        }
        assert_eq!((w.sent(), w.room(), w.published()), (8, 0, 8));
        assert!(w.ack(7, 2));
        assert_eq!(w.room(), 2);
        assert!(!w.ack(6, 3), "an ack going backwards is no progress");
        assert_eq!(w.acked(), 7);
    }

    #[test]
    fn a_reconnect_publishes_everything_unacknowledged_again() {
        let mut w = SendWindow::new(100, u64::MAX, 10_000, 0, 0);
        for seq in 1..=10 {
            w.published_one(seq, 100, 1);
        }
        w.ack(4, 2);
        w.reconnected(3);
        assert_eq!((w.sent(), w.room()), (4, 100));
        assert_eq!(w.published(), 10, "what was published stays published");
    }

    #[test]
    fn silence_after_publishing_resends_from_the_last_ack() {
        let mut w = SendWindow::new(100, u64::MAX, 10_000, 0, 0);
        assert_eq!(w.timeout_at(), None);
        w.published_one(1, 100, 1_000);
        w.published_one(2, 100, 1_500);
        assert_eq!(w.timeout_at(), Some(11_000));
        assert_eq!(w.check_timeout(10_999), None);
        assert_eq!(w.check_timeout(11_000), Some(2));
        assert_eq!(w.sent(), 0);
        // Progress restarts the clock; so does the first event out after everything was acked.
        w.published_one(1, 100, 12_000);
        w.ack(1, 15_000);
        w.published_one(2, 100, 16_000);
        assert_eq!(w.check_timeout(25_999), None);
        assert_eq!(w.check_timeout(26_000), Some(1));
    }

    #[test]
    fn an_ack_beyond_what_was_sent_moves_sent_along() {
        let mut w = SendWindow::new(10, u64::MAX, 1_000, 0, 0);
        w.ack(20, 1);
        assert_eq!((w.acked(), w.sent(), w.room()), (20, 20, 10));
    }

    #[test]
    fn the_byte_bound_stops_the_drain_until_acks_free_room() {
        // 10 events may be out, but only 1,000 bytes: three 400-byte events (the third passes
        // the bound, so an event bigger than the bound still leaves), then no room.
        let mut w = SendWindow::new(10, 1_000, 10_000, 0, 0);
        w.published_one(1, 400, 1);
        w.published_one(2, 400, 1);
        assert_eq!((w.room(), w.bytes_in_flight()), (8, 800));
        w.published_one(3, 400, 1);
        assert_eq!((w.room(), w.bytes_in_flight()), (0, 1_200));
        // The host has the first two: their bytes are free again.
        assert!(w.ack(2, 2));
        assert_eq!((w.room(), w.bytes_in_flight()), (9, 400));
        assert_eq!(w.in_flight().collect::<Vec<_>>(), vec![(3, 400)]);
        // A resend (reconnect or ack timeout) starts counting from nothing in flight.
        w.reconnected(3);
        assert_eq!((w.room(), w.bytes_in_flight(), w.sent()), (10, 0, 2));
        w.published_one(3, 5_000, 4);
        assert_eq!(w.room(), 0, "one event bigger than the bound leaves alone");
        assert_eq!(w.check_timeout(10_004), Some(1));
        assert_eq!((w.room(), w.bytes_in_flight()), (10, 0));
    }

    /// Publishes `n` events of `bytes` from `first` at `now`; returns the next seq.
    fn fill(w: &mut SendWindow, first: u64, bytes: u64, now: Millis) -> u64 {
        let mut seq = first;
        while w.room() > 0 {
            w.published_one(seq, bytes, now);
            seq += 1;
        }
        seq
    }

    #[test]
    fn the_byte_bound_grows_while_acks_come_back_quickly_up_to_its_ceiling() {
        // A long link: every ack 1.3 s after its event, no queue building.
        let mut w = SendWindow::new(10_000, 1_000, 60_000, 0, 0);
        let (mut next, mut now) = (1, 0);
        let mut limits = vec![w.byte_limit()];
        for _ in 0..6 {
            next = fill(&mut w, next, 100, now);
            now += 1_300;
            assert!(w.ack(next - 1, now));
            limits.push(w.byte_limit());
        }
        // Doubles each round trip, then stops at MAX_GROWTH × the configured bound.
        assert_eq!(
            limits,
            vec![1_000, 2_000, 4_000, 8_000, 8_000, 8_000, 8_000]
        );
        // A new connection starts from the configured bound again.
        w.reconnected(now);
        assert_eq!(w.byte_limit(), 1_000);
    }

    #[test]
    fn the_byte_bound_shrinks_back_when_a_queue_builds_and_never_below_the_configured_one() {
        let mut w = SendWindow::new(10_000, 1_000, 60_000, 0, 0);
        let (mut next, mut now) = (1, 0);
        for _ in 0..3 {
            next = fill(&mut w, next, 100, now);
            now += 500;
            w.ack(next - 1, now);
        }
        assert_eq!(w.byte_limit(), 8_000);
        // Acks now come 1.5 s later than the quickest: a queue is building on the way.
        let mut limits = Vec::new();
        for _ in 0..4 {
            next = fill(&mut w, next, 100, now);
            now += 2_000;
            w.ack(next - 1, now);
            limits.push(w.byte_limit());
        }
        assert_eq!(limits, vec![4_000, 2_000, 1_000, 1_000]);
        // Within the target again: it grows again.
        next = fill(&mut w, next, 100, now);
        now += 1_400;
        w.ack(next - 1, now);
        assert_eq!(w.byte_limit(), 2_000);
    }

    #[test]
    fn a_trickle_of_events_does_not_grow_the_byte_bound() {
        // One 100-byte sale at a time, acked quickly: the bound never held anything back.
        let mut w = SendWindow::new(10_000, 1_000, 60_000, 0, 0);
        for seq in 1..=50 {
            w.published_one(seq, 100, seq * 1_000);
            w.ack(seq, seq * 1_000 + 50);
        }
        assert_eq!(w.byte_limit(), 1_000);
        // A clock that went back gives no sample (and no panic).
        w.published_one(51, 600, 100_000);
        w.ack(51, 99_000);
        assert_eq!(w.byte_limit(), 1_000);
    }
}
