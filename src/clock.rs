//! The wall clock and what this build is: the one place the product reads the time of day, and
//! the version every layer reports, and whether that time of day can be trusted (offline codes,
//! fleet command freshness). Everything below takes `now` as a value from here.

/// posd's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit it was built from (`unknown` outside a checkout).
pub const GIT_COMMIT: &str = env!("POSD_GIT_COMMIT");
/// Unix seconds of this build: a clock earlier than that is certainly wrong.
pub const BUILD_UNIX: &str = env!("POSD_BUILD_UNIX");

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether the clock can be trusted at `now_ms`: never before this build (minus a day), and
/// then always (`always`: a box with a trusted RTC, tests) or while the kernel says it is
/// synchronised (NTP/chrony/RTC discipline).
pub fn trusted(always: bool, now_ms: u64) -> bool {
    let floor = BUILD_UNIX
        .parse::<u64>()
        .unwrap_or(0)
        .saturating_sub(86_400);
    if now_ms / 1000 < floor {
        return false;
    }
    always || kernel_clock_synchronized()
}

/// The kernel's NTP state: synchronised unless `adjtimex` reports STA_UNSYNC / TIME_ERROR.
fn kernel_clock_synchronized() -> bool {
    // SAFETY: adjtimex with modes = 0 only reads the kernel's clock state into `t`.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::adjtimex(&mut t) };
    r != -1 && r != libc::TIME_ERROR && (t.status & libc::STA_UNSYNC) == 0
}
