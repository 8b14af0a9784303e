//! The shop's time zone (`terminal.time_zone`, an IANA name with daylight saving, or the
//! deprecated fixed `terminal.utc_offset_s`) and what an instant is there: its local date and
//! wall-clock time, the offset in force, the start of its local day.
//!
//! Pure: the zone is a value ([`jiff::tz::TimeZone`]) the shell builds from the tz database it
//! chose, and every question takes the instant as unix milliseconds. Receipts, the Z report and
//! its business day, the per-user daily offline limit ("today") and card expiry all ask here,
//! so a daylight-saving change moves all of them together.

use crate::receipt::layout::LocalTime;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

/// The largest fixed offset accepted (±18 h, as ISO 8601 and jiff allow).
pub const MAX_FIXED_OFFSET_S: i32 = 18 * 3600;

/// The shop's zone, with the name people and tools know it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopZone {
    tz: TimeZone,
    name: String,
}

/// A local calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalDate {
    pub year: i16,
    pub month: i8,
    pub day: i8,
}

impl std::fmt::Display for LocalDate {
    /// `2027-03-28`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Why a zone cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("{0} s is not a UTC offset: must be within ±18 h (±64800 s)")]
    OffsetOutOfRange(i64),
}

impl Default for ShopZone {
    /// UTC (the default when neither `time_zone` nor `utc_offset_s` is set).
    fn default() -> Self {
        ShopZone::utc()
    }
}

impl ShopZone {
    /// UTC.
    pub fn utc() -> ShopZone {
        ShopZone {
            tz: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    /// A zone from the tz database (its IANA name is its name; a zone without one is named
    /// by what the database called it, `fallback_name`).
    pub fn from_tz(tz: TimeZone, fallback_name: &str) -> ShopZone {
        let name = tz.iana_name().unwrap_or(fallback_name).to_string();
        ShopZone { tz, name }
    }

    /// A fixed offset east of UTC, no daylight saving (`terminal.utc_offset_s`, deprecated),
    /// named `UTC+08:00`.
    pub fn fixed(offset_s: i32) -> Result<ShopZone, ZoneError> {
        if !(-MAX_FIXED_OFFSET_S..=MAX_FIXED_OFFSET_S).contains(&offset_s) {
            return Err(ZoneError::OffsetOutOfRange(offset_s.into()));
        }
        let off = Offset::from_seconds(offset_s)
            .map_err(|_| ZoneError::OffsetOutOfRange(offset_s.into()))?;
        Ok(ShopZone {
            tz: TimeZone::fixed(off),
            name: fixed_name(offset_s),
        })
    }

    /// `Europe/Madrid`, or `UTC+08:00` for a fixed offset.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The IANA name, when the zone has one (a fixed offset has none).
    pub fn iana_name(&self) -> Option<&str> {
        self.tz.iana_name()
    }

    /// The jiff zone.
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    fn ts(ms: u64) -> Timestamp {
        // Out of jiff's range (year 9999 and later) is clamped to its last instant.
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX)
    }

    /// Seconds east of UTC in force at `ms` (`7200` in Madrid in summer, `3600` in winter).
    pub fn offset_s_at(&self, ms: u64) -> i32 {
        self.tz.to_offset(Self::ts(ms)).seconds()
    }

    /// The instant as receipts print it: unix seconds and the offset in force then.
    pub fn local_time(&self, ms: u64) -> LocalTime {
        LocalTime {
            unix_secs: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
            utc_offset_secs: self.offset_s_at(ms),
        }
    }

    /// The local calendar date at `ms`.
    pub fn date(&self, ms: u64) -> LocalDate {
        let d = Self::ts(ms).to_zoned_datetime(self.tz.clone()).date();
        LocalDate {
            year: d.year(),
            month: d.month(),
            day: d.day(),
        }
    }

    /// (year, month) at `ms` in the shop (card expiry is checked in shop time).
    pub fn year_month(&self, ms: u64) -> (u16, u8) {
        let d = self.date(ms);
        (d.year.clamp(0, 9999) as u16, d.month.clamp(1, 12) as u8)
    }

    /// The first instant (unix ms) of the local day that holds `ms`: local midnight, or the
    /// first instant after it where a daylight-saving change skips midnight. A day has 23, 24
    /// or 25 hours; every instant of one local day gets the same answer, so a total kept "for
    /// today" resets exactly once per local day, whatever the clocks do in between.
    pub fn day_start_ms(&self, ms: u64) -> u64 {
        let z = Self::ts(ms).to_zoned_datetime(self.tz.clone());
        match z.start_of_day() {
            Ok(s) => u64::try_from(s.timestamp().as_millisecond()).unwrap_or(0),
            // Only at the very ends of jiff's range: fall back to the fixed-offset arithmetic.
            Err(_) => {
                let off = i64::from(self.offset_s_at(ms)) * 1000;
                let local = i64::try_from(ms).unwrap_or(i64::MAX).saturating_add(off);
                u64::try_from(local - local.rem_euclid(86_400_000) - off).unwrap_or(0)
            }
        }
    }

    /// The business day a batch closed at `ms` belongs to: the local date of the close
    /// (`2027-03-28`), printed on the Z report and returned by `batch_close`.
    pub fn business_day(&self, ms: u64) -> String {
        self.date(ms).to_string()
    }
}

/// `UTC`, `UTC+08:00`, `UTC-05:30`, `UTC+05:45:30` (seconds only when there are any).
fn fixed_name(offset_s: i32) -> String {
    if offset_s == 0 {
        return "UTC".into();
    }
    let sign = if offset_s < 0 { '-' } else { '+' };
    let a = offset_s.unsigned_abs();
    let (h, m, s) = (a / 3600, (a % 3600) / 60, a % 60);
    if s == 0 {
        format!("UTC{sign}{h:02}:{m:02}")
    } else {
        format!("UTC{sign}{h:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::layout::format_time;

    fn zone(name: &str) -> ShopZone {
        let tz = jiff::tz::TimeZoneDatabase::bundled()
            .get(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        ShopZone::from_tz(tz, name)
    }

    /// Unix ms of a UTC wall-clock time.
    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> u64 {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned_datetime(TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_millisecond() as u64
    }

    const MIN: u64 = 60_000;
    const HOUR: u64 = 3_600_000;

    #[test]
    fn madrid_spring_forward_last_sunday_of_march() {
        let z = zone("Europe/Madrid");
        assert_eq!(z.name(), "Europe/Madrid");
        // 2027-03-28 01:00 UTC: 02:00 CET becomes 03:00 CEST.
        let change = utc(2027, 3, 28, 1, 0);
        let before = change - MIN;
        assert_eq!(z.offset_s_at(before), 3600);
        assert_eq!(z.offset_s_at(change), 7200);
        assert_eq!(
            format_time(z.local_time(before)),
            "2027-03-28 01:59:00 +01:00"
        );
        assert_eq!(
            format_time(z.local_time(change)),
            "2027-03-28 03:00:00 +02:00"
        );
        // The day is 23 hours long and starts at local midnight (23:00 UTC the day before).
        let start = utc(2027, 3, 27, 23, 0);
        for t in [start, before, change, change + 20 * HOUR + 59 * MIN] {
            assert_eq!(z.day_start_ms(t), start, "{}", format_time(z.local_time(t)));
            assert_eq!(z.business_day(t), "2027-03-28");
        }
        let next = utc(2027, 3, 28, 22, 0);
        assert_eq!(next - start, 23 * HOUR);
        assert_eq!(z.day_start_ms(next), next);
        assert_eq!(z.business_day(next), "2027-03-29");
        // 23:30 UTC on the 27th is already the 28th in Madrid (the UTC day is still the 27th).
        assert_eq!(z.business_day(utc(2027, 3, 27, 23, 30)), "2027-03-28");
        assert_eq!(
            z.day_start_ms(utc(2027, 3, 27, 22, 59)),
            utc(2027, 3, 26, 23, 0)
        );
    }

    #[test]
    fn madrid_fall_back_last_sunday_of_october() {
        let z = zone("Europe/Madrid");
        // 2027-10-31 01:00 UTC: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let change = utc(2027, 10, 31, 1, 0);
        let first = change - 30 * MIN;
        let second = change + 30 * MIN;
        assert_eq!(
            format_time(z.local_time(first)),
            "2027-10-31 02:30:00 +02:00"
        );
        assert_eq!(
            format_time(z.local_time(second)),
            "2027-10-31 02:30:00 +01:00"
        );
        // A 25-hour day: one start, from 22:00 UTC on the 30th to 23:00 UTC on the 31st.
        let start = utc(2027, 10, 30, 22, 0);
        let end = utc(2027, 10, 31, 23, 0);
        assert_eq!(end - start, 25 * HOUR);
        for t in [start, first, second, end - 1] {
            assert_eq!(z.day_start_ms(t), start);
        }
        assert_eq!(z.day_start_ms(end), end);
        assert_eq!(z.year_month(end - 1), (2027, 10));
        assert_eq!(z.year_month(end), (2027, 11));
    }

    #[test]
    fn mexico_city_has_no_daylight_saving_since_2022() {
        // The tz data must be current: Mexico abolished daylight saving in October 2022 (tzdata
        // 2022f). Before, April–October was UTC-5.
        let z = zone("America/Mexico_City");
        assert_eq!(z.offset_s_at(utc(2021, 7, 1, 12, 0)), -5 * 3600);
        for (y, m) in [(2023, 1), (2023, 7), (2026, 4), (2027, 7), (2030, 10)] {
            assert_eq!(z.offset_s_at(utc(y, m, 15, 12, 0)), -6 * 3600, "{y}-{m}");
        }
        let ms = utc(2027, 7, 1, 5, 59);
        assert_eq!(format_time(z.local_time(ms)), "2027-06-30 23:59:00 -06:00");
        assert_eq!(z.day_start_ms(ms), utc(2027, 6, 30, 6, 0));
    }

    #[test]
    fn shanghai_and_fixed_offsets() {
        let z = zone("Asia/Shanghai");
        let f = ShopZone::fixed(8 * 3600).unwrap();
        assert_eq!(f.name(), "UTC+08:00");
        assert_eq!(f.iana_name(), None);
        for ms in [0, utc(2027, 3, 28, 1, 0), utc(2027, 10, 31, 16, 0)] {
            assert_eq!(z.local_time(ms), f.local_time(ms));
            assert_eq!(z.day_start_ms(ms), f.day_start_ms(ms));
        }
        assert_eq!(
            z.day_start_ms(utc(2027, 1, 1, 16, 0)),
            utc(2027, 1, 1, 16, 0)
        );
        assert_eq!(z.year_month(utc(2026, 11, 30, 16, 0)), (2026, 12));
        assert_eq!(ShopZone::fixed(0).unwrap(), ShopZone::utc());
        assert_eq!(ShopZone::fixed(-19_800).unwrap().name(), "UTC-05:30");
        assert_eq!(ShopZone::fixed(3601).unwrap().name(), "UTC+01:00:01");
        assert_eq!(
            ShopZone::fixed(18 * 3600 + 1),
            Err(ZoneError::OffsetOutOfRange(64_801))
        );
        assert!(ShopZone::fixed(i32::MIN).is_err());
        assert_eq!(ShopZone::default().day_start_ms(86_400_000 + 5), 86_400_000);
    }

    #[test]
    fn every_day_start_of_a_zone_in_use_is_on_a_quarter_hour() {
        // The per-user offline totals are kept per UTC quarter hour (store: `p1_totals`); a
        // day's total is exact because every local midnight falls on one.
        for name in [
            "Europe/Madrid",
            "America/Mexico_City",
            "Asia/Shanghai",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
            "America/St_Johns",
            "America/Santiago",
        ] {
            let z = zone(name);
            let mut t = utc(2026, 1, 1, 0, 0);
            while t < utc(2028, 1, 1, 0, 0) {
                let s = z.day_start_ms(t);
                assert_eq!(s % 900_000, 0, "{name} at {t}");
                assert!(s <= t && t - s < 25 * HOUR, "{name} at {t}");
                t += 7 * HOUR;
            }
        }
    }

    #[test]
    fn instants_at_the_ends_do_not_panic() {
        let z = zone("Europe/Madrid");
        for ms in [0, 1, u64::MAX, i64::MAX as u64, 253_402_300_799_000] {
            let _ = z.local_time(ms);
            let _ = z.date(ms);
            let _ = z.day_start_ms(ms);
            let _ = z.year_month(ms);
        }
    }
}
