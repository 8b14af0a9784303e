//! The wall clock and what this build is: the one place the product reads the time of day, and
//! the version every layer reports. Everything below takes `now` as a value from here.

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
