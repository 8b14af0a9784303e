//! Store-and-forward: may a card sale be approved offline and queued (sealed) for the host?
//!
//! Why it exists: DESIGN §1.4 allows store-and-forward only under a floor limit and only where
//! the configuration enables it (off by default). The decision is a pure function of the limits,
//! the amount, the queue's state and the time, so the engine asks it and tests pin every edge.

use crate::i18n::Msg;
use serde::Deserialize;

/// Store-and-forward limits (config). The default is disabled with every limit at zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafLimits {
    /// Store-and-forward allowed at all.
    pub enabled: bool,
    /// Largest sale that may be stored, minor units (a sale equal to it may be stored).
    pub floor_limit: i64,
    /// Most sales waiting in the queue, this one included.
    pub max_count: u32,
    /// Oldest a waiting sale may be, seconds; past it nothing more is stored until the queue
    /// drains (0: only while every queued sale is from this very second).
    pub max_age_s: u64,
}

/// Why a sale may not be stored and forwarded. `Display` is the cashier's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SafRefusal {
    /// Store-and-forward is not enabled.
    #[error("offline card sales are not enabled")]
    Disabled,
    /// The amount is zero or negative.
    #[error("offline card sale refused: invalid amount")]
    BadAmount,
    /// The amount is above the floor limit.
    #[error("amount above the offline card limit")]
    OverFloorLimit,
    /// The queue already holds `max_count` sales.
    #[error("offline card queue is full: go online first")]
    QueueFull,
    /// The oldest queued sale is older than `max_age_s`.
    #[error("offline card queue is too old: go online first")]
    QueueTooOld,
}

impl SafRefusal {
    /// A stable reason code for journals and the host.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            SafRefusal::Disabled => "saf_disabled",
            SafRefusal::BadAmount => "saf_bad_amount",
            SafRefusal::OverFloorLimit => "saf_over_floor_limit",
            SafRefusal::QueueFull => "saf_queue_full",
            SafRefusal::QueueTooOld => "saf_queue_too_old",
        }
    }
}

impl SafRefusal {
    /// The cashier's text in the catalogue (`Display` is the English one).
    #[must_use]
    pub fn msg(&self) -> Msg {
        match self {
            SafRefusal::Disabled => Msg::CardSafDisabled,
            SafRefusal::BadAmount => Msg::CardSafBadAmount,
            SafRefusal::OverFloorLimit => Msg::CardSafOverFloor,
            SafRefusal::QueueFull => Msg::CardSafQueueFull,
            SafRefusal::QueueTooOld => Msg::CardSafQueueOld,
        }
    }
}

/// Whether a sale of `amount` (minor units) may be stored, with `queued_count` sales already
/// waiting, the oldest queued at `oldest_queued_at_s` (Unix seconds; `None` for an empty queue),
/// at `now_s`. Checked in this order: enabled, amount > 0, amount ≤ floor limit,
/// queued_count + 1 ≤ max_count, now − oldest ≤ max_age_s (a clock that went back counts as 0).
///
/// # Errors
/// The first [`SafRefusal`] that applies.
pub fn saf_allowed(
    limits: &SafLimits,
    amount: i64,
    queued_count: u32,
    oldest_queued_at_s: Option<u64>,
    now_s: u64,
) -> Result<(), SafRefusal> {
    if !limits.enabled {
        return Err(SafRefusal::Disabled);
    }
    if amount <= 0 {
        return Err(SafRefusal::BadAmount);
    }
    if amount > limits.floor_limit {
        return Err(SafRefusal::OverFloorLimit);
    }
    if queued_count >= limits.max_count {
        return Err(SafRefusal::QueueFull);
    }
    if let Some(oldest) = oldest_queued_at_s {
        if now_s.saturating_sub(oldest) > limits.max_age_s {
            return Err(SafRefusal::QueueTooOld);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_says_in_english_what_display_says() {
        use crate::i18n::{text, Language};
        for r in [
            SafRefusal::Disabled,
            SafRefusal::BadAmount,
            SafRefusal::OverFloorLimit,
            SafRefusal::QueueFull,
            SafRefusal::QueueTooOld,
        ] {
            assert_eq!(text(Language::En, r.msg()), r.to_string());
        }
    }

    const NOW: u64 = 1_770_000_000;

    fn limits() -> SafLimits {
        SafLimits {
            enabled: true,
            floor_limit: 5_000,
            max_count: 10,
            max_age_s: 86_400,
        }
    }

    #[test]
    fn default_is_disabled() {
        let d = SafLimits::default();
        assert_eq!(
            d,
            SafLimits {
                enabled: false,
                floor_limit: 0,
                max_count: 0,
                max_age_s: 0
            }
        );
        assert_eq!(saf_allowed(&d, 1, 0, None, NOW), Err(SafRefusal::Disabled));
        let off = SafLimits {
            enabled: false,
            ..limits()
        };
        assert_eq!(
            saf_allowed(&off, 100, 0, None, NOW),
            Err(SafRefusal::Disabled)
        );
    }

    #[test]
    fn floor_limit_edges() {
        let l = limits();
        assert_eq!(saf_allowed(&l, 5_000, 0, None, NOW), Ok(()));
        assert_eq!(saf_allowed(&l, 4_999, 0, None, NOW), Ok(()));
        assert_eq!(saf_allowed(&l, 1, 0, None, NOW), Ok(()));
        assert_eq!(
            saf_allowed(&l, 5_001, 0, None, NOW),
            Err(SafRefusal::OverFloorLimit)
        );
        assert_eq!(
            saf_allowed(&l, i64::MAX, 0, None, NOW),
            Err(SafRefusal::OverFloorLimit)
        );
        assert_eq!(saf_allowed(&l, 0, 0, None, NOW), Err(SafRefusal::BadAmount));
        assert_eq!(
            saf_allowed(&l, -1, 0, None, NOW),
            Err(SafRefusal::BadAmount)
        );
        assert_eq!(
            saf_allowed(&l, i64::MIN, 0, None, NOW),
            Err(SafRefusal::BadAmount)
        );
        let zero_floor = SafLimits {
            floor_limit: 0,
            ..l
        };
        assert_eq!(
            saf_allowed(&zero_floor, 1, 0, None, NOW),
            Err(SafRefusal::OverFloorLimit)
        );
    }

    #[test]
    fn count_edges() {
        let l = limits();
        assert_eq!(saf_allowed(&l, 100, 9, Some(NOW), NOW), Ok(()));
        assert_eq!(
            saf_allowed(&l, 100, 10, Some(NOW), NOW),
            Err(SafRefusal::QueueFull)
        );
        assert_eq!(
            saf_allowed(&l, 100, 11, Some(NOW), NOW),
            Err(SafRefusal::QueueFull)
        );
        assert_eq!(
            saf_allowed(&l, 100, u32::MAX, Some(NOW), NOW),
            Err(SafRefusal::QueueFull)
        );
        let none = SafLimits { max_count: 0, ..l };
        assert_eq!(
            saf_allowed(&none, 100, 0, None, NOW),
            Err(SafRefusal::QueueFull)
        );
        let one = SafLimits { max_count: 1, ..l };
        assert_eq!(saf_allowed(&one, 100, 0, None, NOW), Ok(()));
        assert_eq!(
            saf_allowed(&one, 100, 1, Some(NOW), NOW),
            Err(SafRefusal::QueueFull)
        );
    }

    #[test]
    fn age_edges() {
        let l = limits();
        assert_eq!(saf_allowed(&l, 100, 1, Some(NOW - 86_400), NOW), Ok(()));
        assert_eq!(
            saf_allowed(&l, 100, 1, Some(NOW - 86_401), NOW),
            Err(SafRefusal::QueueTooOld)
        );
        assert_eq!(
            saf_allowed(&l, 100, 1, Some(0), NOW),
            Err(SafRefusal::QueueTooOld)
        );
        // the clock went back: the queued sale is "from the future", age 0
        assert_eq!(saf_allowed(&l, 100, 1, Some(NOW + 1_000), NOW), Ok(()));
        assert_eq!(saf_allowed(&l, 100, 0, None, 0), Ok(()));
        let zero_age = SafLimits { max_age_s: 0, ..l };
        assert_eq!(saf_allowed(&zero_age, 100, 1, Some(NOW), NOW), Ok(()));
        assert_eq!(
            saf_allowed(&zero_age, 100, 1, Some(NOW - 1), NOW),
            Err(SafRefusal::QueueTooOld)
        );
    }

    #[test]
    fn refusal_order() {
        // over the floor and full and old: the floor is reported first
        let l = limits();
        assert_eq!(
            saf_allowed(&l, 9_999, 10, Some(0), NOW),
            Err(SafRefusal::OverFloorLimit)
        );
        assert_eq!(
            saf_allowed(&l, 100, 10, Some(0), NOW),
            Err(SafRefusal::QueueFull)
        );
    }

    #[test]
    fn texts_and_codes() {
        let all = [
            SafRefusal::Disabled,
            SafRefusal::BadAmount,
            SafRefusal::OverFloorLimit,
            SafRefusal::QueueFull,
            SafRefusal::QueueTooOld,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(SafRefusal::code).collect();
        assert_eq!(codes.len(), all.len());
        for r in all {
            assert!(r.code().starts_with("saf_"));
            let text = r.to_string();
            assert!(!text.is_empty() && text.len() <= 48, "{text}");
        }
    }

    #[test]
    fn deserialize() {
        let l: SafLimits = toml::from_str(
            "enabled = true\nfloor_limit = 5000\nmax_count = 10\nmax_age_s = 86400\n",
        )
        .unwrap();
        assert_eq!(l, limits());
        let partial: SafLimits = toml::from_str("enabled = true\nfloor_limit = 300\n").unwrap();
        assert_eq!(
            partial,
            SafLimits {
                enabled: true,
                floor_limit: 300,
                ..SafLimits::default()
            }
        );
        let empty: SafLimits = toml::from_str("").unwrap();
        assert_eq!(empty, SafLimits::default());
        assert!(toml::from_str::<SafLimits>("enabled = true\nfloor = 1\n").is_err());
        assert!(toml::from_str::<SafLimits>("max_count = -1\n").is_err());
        let j: SafLimits = serde_json::from_str(r#"{"enabled":true}"#).unwrap();
        assert!(j.enabled);
    }
}
