//! The outbox's send window (DESIGN §4): which journal events to publish next, how many may be
//! unacknowledged at once, and when to publish again from the host's last `ack` — after a
//! reconnect, or when no ack came for a while (a broker does not queue for absent shared
//! subscribers, and an ack can be lost). Pure; the link's drain task asks it and publishes.

use crate::txn::Millis;

/// The drain's position: events up to `acked` are the host's; up to `sent` are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    window: u64,
    ack_timeout_ms: u64,
    acked: u64,
    sent: u64,
    /// The highest seq published since start (acks above it are refused).
    published: u64,
    /// When the host last made progress (or the first unacknowledged event left).
    progress_at: Millis,
}

impl SendWindow {
    /// A window of `window` unacknowledged events, starting from what the journal says the host
    /// already has.
    pub fn new(window: u64, ack_timeout_ms: u64, acked: u64, now: Millis) -> SendWindow {
        SendWindow {
            window: window.max(1),
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

    /// How many more events may leave now.
    pub fn room(&self) -> u64 {
        self.window
            .saturating_sub(self.sent.saturating_sub(self.acked))
    }

    /// A new connection (or a lost one): everything unacknowledged is published again.
    pub fn reconnected(&mut self, now: Millis) {
        self.sent = self.acked;
        self.progress_at = now;
    }

    /// The host acknowledged every event up to `upto`. Returns whether that was progress.
    pub fn ack(&mut self, upto: u64, now: Millis) -> bool {
        if upto <= self.acked {
            return false;
        }
        self.acked = upto;
        self.sent = self.sent.max(upto);
        self.progress_at = now;
        true
    }

    /// Events are out but no ack came for the timeout: publish again from the last ack (the host
    /// keys events by `event_id`). Returns how many events will be published again.
    pub fn check_timeout(&mut self, now: Millis) -> Option<u64> {
        if self.sent > self.acked && now.saturating_sub(self.progress_at) >= self.ack_timeout_ms {
            let again = self.sent - self.acked;
            self.sent = self.acked;
            self.progress_at = now;
            return Some(again);
        }
        None
    }

    /// Event `seq` was handed to the MQTT client.
    pub fn published_one(&mut self, seq: u64, now: Millis) {
        if self.sent == self.acked {
            // The first unacknowledged event starts the ack timeout.
            self.progress_at = now;
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
        let mut w = SendWindow::new(3, 10_000, 5, 0);
        assert_eq!((w.sent(), w.room()), (5, 3));
        for seq in 6..=8 {
            w.published_one(seq, 1);
        }
        assert_eq!((w.sent(), w.room(), w.published()), (8, 0, 8));
        assert!(w.ack(7, 2));
        assert_eq!(w.room(), 2);
        assert!(!w.ack(6, 3), "an ack going backwards is no progress");
        assert_eq!(w.acked(), 7);
    }

    #[test]
    fn a_reconnect_publishes_everything_unacknowledged_again() {
        let mut w = SendWindow::new(100, 10_000, 0, 0);
        for seq in 1..=10 {
            w.published_one(seq, 1);
        }
        w.ack(4, 2);
        w.reconnected(3);
        assert_eq!((w.sent(), w.room()), (4, 100));
        assert_eq!(w.published(), 10, "what was published stays published");
    }

    #[test]
    fn silence_after_publishing_resends_from_the_last_ack() {
        let mut w = SendWindow::new(100, 10_000, 0, 0);
        assert_eq!(w.timeout_at(), None);
        w.published_one(1, 1_000);
        w.published_one(2, 1_500);
        assert_eq!(w.timeout_at(), Some(11_000));
        assert_eq!(w.check_timeout(10_999), None);
        assert_eq!(w.check_timeout(11_000), Some(2));
        assert_eq!(w.sent(), 0);
        // Progress restarts the clock; so does the first event out after everything was acked.
        w.published_one(1, 12_000);
        w.ack(1, 15_000);
        w.published_one(2, 16_000);
        assert_eq!(w.check_timeout(25_999), None);
        assert_eq!(w.check_timeout(26_000), Some(1));
    }

    #[test]
    fn an_ack_beyond_what_was_sent_moves_sent_along() {
        let mut w = SendWindow::new(10, 1_000, 0, 0);
        w.ack(20, 1);
        assert_eq!((w.acked(), w.sent(), w.room()), (20, 20, 10));
    }
}
