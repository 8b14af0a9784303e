//! `posd`'s command line: running the daemon, checking a configuration, and counting the
//! events a journal holds that the payment host has not acknowledged (the package's prerm).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The journal in the package's state directory (`terminal.state_dir`'s default).
pub const DEFAULT_JOURNAL: &str = "/var/lib/posd/posd.sqlite";

#[derive(Parser)]
#[command(
    name = "posd",
    about = "Payment daemon for Linux micro-POS boxes",
    long_about = "Payment daemon for Linux micro-POS boxes.\n\n\
        posd takes payments on a small Linux box with a keypad, a barcode scanner or camera and \
        a receipt printer: customer-presented payment codes verified online, offline P1 codes \
        verified on the box, merchant-presented QR codes and cards. Every transaction is written \
        to a local SQLite journal before anything leaves the box, and is synchronised to the \
        backend over MQTT whenever the network allows.\n\n\
        Under systemd it runs as posd.service (Type=notify): it reports READY=1 once the \
        journal, the MQTT link and the control socket are up, pets the watchdog only while its \
        main loop, journal writer and MQTT task are all alive, and on SIGTERM finishes the \
        journal write in progress, reports STOPPING=1 and publishes its offline status.",
    version = version()
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "/etc/posd/posd.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the daemon (the default).
    #[command(
        long_about = "Run the daemon (the default). posd refuses to start, with every \
        problem and its key path on standard error, when the configuration is missing or \
        invalid."
    )]
    Run,
    /// Check a configuration file: print every problem with its key path.
    #[command(
        long_about = "Check a configuration file: print every problem with its key path.\n\n\
        Prints FILE: ok and exits 0, or prints every problem once, with its key path, and exits \
        1: a TOML syntax error with its line and column; unknown keys; the broker's TLS files \
        missing, unreadable, not PEM, or a key that does not match its certificate; run as \
        root, TLS files the service user cannot read. posd.service runs this as its \
        ExecCondition: with an invalid file the service is skipped, not started."
    )]
    CheckConfig {
        file: PathBuf,
        /// The user posd runs as (posd.service's `User=`): when run as root, the TLS files
        /// must be readable by it.
        #[arg(long, default_value = "posd")]
        service_user: String,
    },
    /// Count the events in a journal that the payment host has not acknowledged.
    #[command(
        long_about = "Count the events in a journal that the payment host has not \
        acknowledged (posctl queue's pending). Prints the number alone. Reads the journal \
        without changing it, whether posd is running or not; exits 1 when it cannot be read. \
        The package's prerm asks this before a removal, so that a purge keeps such a journal \
        aside instead of deleting it."
    )]
    PendingEvents {
        /// The journal (SQLite).
        #[arg(default_value = DEFAULT_JOURNAL)]
        journal: PathBuf,
    },
}

/// `posd --version`: the package version and the git commit it was built from.
pub fn version() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (",
        env!("POSD_GIT_COMMIT"),
        ")"
    )
}
