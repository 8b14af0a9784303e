//! Capped exponential backoff with jitter, as a pure function of the attempt number.
//!
//! Used by the MQTT reconnect loop and by reversal retries. Jitter is supplied by the caller
//! (a random fraction), so tests can pin it.

/// Doubling delays from `initial_ms`, capped at `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), without jitter.
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64.checked_shl(attempt.min(32)).unwrap_or(u64::MAX);
        self.initial_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// "Equal jitter": half the delay fixed, half scaled by `jitter` in [0, 1].
    pub fn jittered_ms(&self, attempt: u32, jitter: f64) -> u64 {
        let d = self.delay_ms(attempt);
        let j = jitter.clamp(0.0, 1.0);
        d / 2 + ((d - d / 2) as f64 * j) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let b = Backoff {
            initial_ms: 500,
            max_ms: 30_000,
        };
        let d: Vec<u64> = (0..9).map(|a| b.delay_ms(a)).collect();
        assert_eq!(d, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(b.delay_ms(u32::MAX), 30_000);
        assert_eq!(b.jittered_ms(3, 0.0), 2000);
        assert_eq!(b.jittered_ms(3, 1.0), 4000);
        assert_eq!(b.jittered_ms(3, 7.0), 4000);
    }
}
