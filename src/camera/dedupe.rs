//! De-duplication of scans: a code held in front of the camera is read in many consecutive
//! frames but is one scan; the same code shown again after it has left the view is a new scan.
//!
//! Pure state machine on the frames' own clock (no I/O, no wall clock), so image sequences in
//! tests behave exactly like a camera.

use std::collections::HashMap;
use std::time::Duration;

use super::decode::Payload;

/// Remembers when each payload was last seen.
///
/// A payload counts as a new scan when it has not been seen for longer than `hold_off`. A frame in
/// which the code is missed (blur, hand in the way) does not end the scan; only `hold_off` of
/// absence does.
#[derive(Debug)]
pub struct Deduper {
    hold_off: Duration,
    last_seen: HashMap<Payload, Duration>,
}

impl Deduper {
    pub fn new(hold_off: Duration) -> Self {
        Self {
            hold_off,
            last_seen: HashMap::new(),
        }
    }

    /// Feeds the payloads read in the frame taken at `at`; returns those that are new scans.
    /// Timestamps are expected not to go backwards; if they do, the code is treated as still seen.
    pub fn observe<'a>(
        &mut self,
        at: Duration,
        payloads: impl IntoIterator<Item = &'a Payload>,
    ) -> Vec<Payload> {
        let hold_off = self.hold_off;
        self.last_seen
            .retain(|_, seen| at.saturating_sub(*seen) <= hold_off);
        let mut new = Vec::new();
        for p in payloads {
            if self.last_seen.insert(p.clone(), at).is_none() && !new.contains(p) {
                new.push(p.clone());
            }
        }
        new
    }

    /// Payloads currently considered "in view".
    pub fn in_view(&self) -> usize {
        self.last_seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Payload {
        Payload {
            bytes: s.as_bytes().to_vec(),
        }
    }
    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn consecutive_frames_are_one_scan() {
        let mut d = Deduper::new(ms(500));
        assert_eq!(d.observe(ms(0), &[p("a")]), vec![p("a")]);
        for t in (33..1000).step_by(33) {
            assert!(d.observe(ms(t), &[p("a")]).is_empty(), "at {t} ms");
        }
    }

    #[test]
    fn a_missed_frame_within_hold_off_is_still_the_same_scan() {
        let mut d = Deduper::new(ms(500));
        d.observe(ms(0), &[p("a")]);
        assert!(d.observe(ms(100), &[]).is_empty());
        assert!(d.observe(ms(500), &[p("a")]).is_empty());
    }

    #[test]
    fn the_same_code_after_leaving_the_view_is_a_new_scan() {
        let mut d = Deduper::new(ms(500));
        d.observe(ms(0), &[p("a")]);
        d.observe(ms(100), &[]);
        assert_eq!(d.observe(ms(601), &[p("a")]), vec![p("a")]);
        assert_eq!(d.in_view(), 1);
    }

    #[test]
    fn different_codes_are_separate_scans_and_duplicates_in_one_frame_count_once() {
        let mut d = Deduper::new(ms(500));
        assert_eq!(
            d.observe(ms(0), &[p("a"), p("a"), p("b")]),
            vec![p("a"), p("b")]
        );
        assert_eq!(d.observe(ms(33), &[p("a"), p("c")]), vec![p("c")]);
    }

    #[test]
    fn zero_hold_off_still_merges_identical_timestamps_only() {
        let mut d = Deduper::new(Duration::ZERO);
        assert_eq!(d.observe(ms(0), &[p("a")]).len(), 1);
        assert!(d.observe(ms(0), &[p("a")]).is_empty());
        assert_eq!(d.observe(ms(1), &[p("a")]).len(), 1);
    }
}
