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

use std::collections::VecDeque;

use crate::txn::Millis;

/// The drain's position: events up to `acked` are the host's; up to `sent` are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    window: u64,
    /// Payload bytes published and not acknowledged, at most (one event may pass it, so that an
    /// event bigger than the bound still leaves, alone).
    max_bytes: u64,
    /// (seq, payload bytes) of what is published and unacknowledged since the last (re)send
    /// from the last ack, oldest first; bounded by `window`.
    in_flight: VecDeque<(u64, u64)>,
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
        if self.bytes_in_flight >= self.max_bytes {
            return 0;
        }
        self.window
            .saturating_sub(self.sent.saturating_sub(self.acked))
    }

    /// Payload bytes published and not yet acknowledged.
    pub fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// (seq, payload bytes) of what is published and unacknowledged, oldest first.
    pub fn in_flight(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.in_flight.iter().copied()
    }

    /// Everything unacknowledged will be published again from the last ack.
    fn rewind(&mut self, now: Millis) {
        self.sent = self.acked;
        self.in_flight.clear();
        self.bytes_in_flight = 0;
        self.progress_at = now;
    }

    /// A new connection (or a lost one): everything unacknowledged is published again.
    pub fn reconnected(&mut self, now: Millis) {
        self.rewind(now);
    }

    /// The host acknowledged every event up to `upto`. Returns whether that was progress.
    pub fn ack(&mut self, upto: u64, now: Millis) -> bool {
        if upto <= self.acked {
            return false;
        }
        self.acked = upto;
        self.sent = self.sent.max(upto);
        while let Some(&(seq, bytes)) = self.in_flight.front() {
            if seq > upto {
                break;
            }
            self.in_flight.pop_front();
            self.bytes_in_flight = self.bytes_in_flight.saturating_sub(bytes);
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
            self.in_flight.push_back((seq, bytes));
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
}
