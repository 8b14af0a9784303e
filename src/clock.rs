//! The wall clock and what this build is: the one place the product reads the time of day, and
//! the version every layer reports, and whether that time of day can be trusted (offline codes,
//! fleet command freshness). Everything below takes `now` as a value from here.

/// posd's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit it was built from (`unknown` outside a checkout).
pub const GIT_COMMIT: &str = env!("POSD_GIT_COMMIT");
/// Unix seconds of this build: a clock earlier than that is certainly wrong.
pub const BUILD_UNIX: &str = env!("POSD_BUILD_UNIX");

/// The environment variable that shifts this process's clock for the soak test's simulated
/// days (docs/soak.md): a signed number of milliseconds added to the wall clock, read once at the
/// first use and never again. Only whoever sets the daemon's environment (root, in the unit file)
/// can set it — the same party that can set the system clock — and nothing that arrives on the
/// control socket, MQTT or a device can change it. The daemon logs a warning at start when it is
/// set.
pub const CLOCK_OFFSET_ENV: &str = "POSD_CLOCK_OFFSET_MS";

/// The offset from [`CLOCK_OFFSET_ENV`], fixed for the life of the process (0 when unset or
/// unreadable; an unreadable value is reported by [`clock_offset_problem`]).
pub fn clock_offset_ms() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var(CLOCK_OFFSET_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0)
    })
}

/// What is wrong with [`CLOCK_OFFSET_ENV`], if it is set but not a whole number of milliseconds.
pub fn clock_offset_problem() -> Option<String> {
    let v = std::env::var(CLOCK_OFFSET_ENV).ok()?;
    match v.trim().parse::<i64>() {
        Ok(_) => None,
        Err(_) => Some(format!(
            "{CLOCK_OFFSET_ENV}={v:?} is not a whole number of milliseconds; the clock is not shifted (unset it)"
        )),
    }
}

/// Unix milliseconds now (the wall clock, shifted by [`clock_offset_ms`] if that is set).
pub fn now_ms() -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    wall.saturating_add_signed(clock_offset_ms())
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
