//! `posctl`'s command line: every subcommand and option, the exit codes, and the help text the
//! man pages are generated from.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The exit codes, documented in `posctl --help`, posctl(1) and docs/posctl.md.
pub mod exit {
    /// Done; a sale, refund or void approved.
    pub const OK: u8 = 0;
    /// Anything else went wrong (a file, the broker, a malformed answer).
    pub const ERROR: u8 = 1;
    /// Bad arguments: nothing was asked of posd.
    pub const USAGE: u8 = 2;
    /// The sale or refund ended without money moving: declined by the host, cancelled.
    pub const DECLINED: u8 = 3;
    /// posd (or the terminal, for fleet tools) refused the request: nothing happened.
    pub const REFUSED: u8 = 4;
    /// posd's control socket cannot be reached (not running, no permission).
    pub const UNREACHABLE: u8 = 5;
    /// No final answer yet: the daemon keeps asking the host; look again with `txn show`.
    pub const PENDING: u8 = 6;
}

/// Each exit code and what it means, in the words of `posctl --help` and posctl(1)'s EXIT
/// STATUS (a second line continues the first).
pub const EXIT_STATUS: [(u8, &str); 7] = [
    (exit::OK, "done; a sale, refund or void approved"),
    (
        exit::ERROR,
        "any other error (a file, the broker, a malformed answer)",
    ),
    (exit::USAGE, "usage: bad arguments, nothing was asked"),
    (exit::DECLINED, "declined or cancelled: no money moved"),
    (
        exit::REFUSED,
        "refused by posd (or by the terminal, for fleet tools): nothing happened;\n\
         --json prints {\"ok\":false,\"code\":...,\"error\":...} with the machine code",
    ),
    (
        exit::UNREACHABLE,
        "posd unreachable: no socket, no permission, not listening",
    ),
    (
        exit::PENDING,
        "pending: no final answer yet, posd keeps asking (posctl txn show ID)",
    ),
];

/// The "Exit status:" block at the end of `posctl --help`.
pub fn exit_status_help() -> String {
    let mut s = String::from("Exit status:");
    for (code, text) in EXIT_STATUS {
        for (i, line) in text.lines().enumerate() {
            if i == 0 {
                s.push_str(&format!("\n  {code}  {line}"));
            } else {
                s.push_str(&format!("\n     {line}"));
            }
        }
    }
    s
}

#[derive(Parser)]
#[command(
    name = "posctl",
    about = "Talk to posd: the till, receipts, codes and the fleet",
    long_about = "Talk to posd: the till, receipts, codes and the fleet.\n\n\
        posctl drives a running posd through its control socket (/run/posd/control.sock; the \
        caller must be root or in group posd), and carries the fleet manager's tools and the \
        payment-code tools. Every command accepts --json: one JSON document on stdout, failures \
        included ({\"ok\":false,\"code\":...,\"error\":...,\"exit\":N}, with the control \
        socket's machine code). Amounts are shown in the currency's major unit, times in the \
        shop's zone.",
    version,
    after_help = exit_status_help()
)]
pub struct Cli {
    /// posd's control socket.
    #[arg(long, global = true, default_value = "/run/posd/control.sock")]
    pub socket: PathBuf,
    /// One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...}).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    #[command(flatten)]
    Till(TillCmd),
    /// Manager PIN: make the hash for `[manager] pin_hash`.
    Manager {
        #[command(subcommand)]
        cmd: ManagerCmd,
    },
    /// Payment codes: decode images, inspect scanned text.
    Code {
        #[command(subcommand)]
        cmd: CodeCmd,
    },
    /// Devices on this box: kind, VID:PID, by-id path, and the role and state posd gives them.
    Devices,
    /// Fleet management: signing keys, signed config pushes and commands, fleet status.
    Fleet {
        #[command(subcommand)]
        cmd: FleetCmd,
    },
    /// Print the shell completion script for posctl.
    #[command(
        long_about = "Print the shell completion script for posctl on stdout.\n\n\
        The package installs them already (bash, zsh and fish load them by themselves); by hand: \
        posctl completions bash > ~/.local/share/bash-completion/completions/posctl"
    )]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
pub enum TillCmd {
    /// The terminal's status.
    #[command(
        long_about = "The terminal's status: online or not (with the broker URL, the \
        last connection error and the next retry), version and commit, queue length and age of \
        the oldest unacknowledged event, devices; the printer's state as last asked (paper near \
        end, paper out, cover open, offline, not answering) and configuration it cannot print \
        as asked."
    )]
    Status,
    /// Events waiting for the host's acknowledgement.
    Queue,
    /// Transactions in the journal.
    Txn {
        #[command(subcommand)]
        cmd: TxnCmd,
    },
    /// Start a sale and wait for its end. Without --code, any scanner, the camera or the keypad
    /// completes it.
    Sale {
        /// Amount in the currency's units, e.g. 12.50.
        #[arg(long)]
        amount: String,
        #[arg(long)]
        currency: Option<String>,
        #[arg(long)]
        code: Option<String>,
        /// merchant_qr: the terminal shows a code for the customer to scan; code (default) or
        /// card: the customer presents a code or swipes a card.
        #[arg(long)]
        method: Option<String>,
    },
    /// Refund all or part of a sale (online only; needs the manager PIN).
    Refund {
        /// The sale's transaction id.
        #[arg(long, conflicts_with = "receipt")]
        original: Option<String>,
        /// The text of the sale receipt's QR (R1.<terminal>.<txn>).
        #[arg(long)]
        receipt: Option<String>,
        /// Amount in the currency's units; default: what is left to refund.
        #[arg(long)]
        amount: Option<String>,
        /// Idempotency key: repeating a refund with it never refunds twice.
        #[arg(long)]
        refund_id: Option<String>,
        /// The manager PIN (default: $POSD_MANAGER_PIN).
        #[arg(long, env = "POSD_MANAGER_PIN", hide_env_values = true)]
        pin: String,
    },
    /// Void an offline sale not yet settled (needs the manager PIN).
    Void {
        original: String,
        #[arg(long, env = "POSD_MANAGER_PIN", hide_env_values = true)]
        pin: String,
    },
    /// Close the batch: Z report printed and sent to the host for reconciliation.
    BatchClose,
    /// Batch closes and the host's reconciliation, newest first.
    Batches,
    /// The sale in progress and the merchant QR it shows.
    Current,
    /// Cancel the sale in progress (an online payment in progress is reversed).
    Cancel,
    /// Pass a code to the sale (or refund) waiting for one, as if scanned; refused when
    /// nothing waits.
    Scan { code: String },
    /// Print a receipt, pay slip or Z report again, marked REPRINT (default: the last
    /// transaction's receipt). Any final state: settled, voided, refunded, declined, ...
    Reprint {
        /// Transaction id (a batch close's id reprints its Z report).
        txn: Option<String>,
        /// The Z report of this batch number.
        #[arg(long, conflicts_with_all = ["txn", "pay_slip"])]
        batch: Option<u64>,
        /// The pay slip (the merchant QR offered) of the order TXN instead of its receipt.
        #[arg(long, requires = "txn")]
        pay_slip: bool,
    },
    /// Receipts: draw one as posd would print it, without a printer.
    Receipt {
        #[command(subcommand)]
        cmd: ReceiptCmd,
    },
    /// The durable print queue.
    PrintJobs,
}

#[derive(Subcommand)]
pub enum ReceiptCmd {
    /// Interpret the ESC/POS bytes posd would send and draw them: --png FILE and/or --text.
    Render {
        /// Transaction id (default: --last); a batch close's id draws its Z report.
        txn: Option<String>,
        #[arg(long)]
        last: bool,
        /// The Z report of this batch number.
        #[arg(long, conflicts_with_all = ["txn", "last", "pay_slip"])]
        batch: Option<u64>,
        /// The pay slip of the order TXN instead of its receipt.
        #[arg(long, requires = "txn")]
        pay_slip: bool,
        #[arg(long)]
        png: Option<PathBuf>,
        #[arg(long)]
        text: bool,
    },
}

#[derive(Subcommand)]
pub enum TxnCmd {
    /// Transactions, newest first: a table for people.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One transaction and its history: by its id, the receipt's 12-digit reference or the
    /// text of the receipt's QR.
    Show { id: String },
}

#[derive(Subcommand)]
pub enum CodeCmd {
    /// Classify scanned text and print every parsed field; exit 4 with the reason if a sale
    /// would refuse it.
    #[command(
        long_about = "Say what a scanned text is (payment code, P1 offline code, \
        merchant-presented code, card swipe, ...) and print every parsed field; for a card \
        swipe, the checks a sale applies (check digit, expiry, service code). Refused (exit 4, \
        with the reason) when a sale would refuse it."
    )]
    Inspect { text: String },
    /// Run the camera's decode pipeline on image files (PNG, JPEG, WebP): one line per file.
    ScanImage {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ManagerCmd {
    /// Prints the argon2id hash of a PIN read from stdin (one line), for `[manager] pin_hash`.
    HashPin,
}

#[derive(Args, Clone)]
pub struct FleetBroker {
    /// Broker URL: mqtt://host:port, or mqtts://host:port with --tls-*.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    #[arg(long, default_value = "pos/v1")]
    pub prefix: String,
    /// MQTT client id (default: posctl-fleet-<pid>).
    #[arg(long)]
    pub client_id: Option<String>,
    /// CA certificate (PEM) for mqtts://.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM, X.509 v3).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum FleetCmd {
    /// A new Ed25519 fleet signing key: writes the key file (0600), prints the `[fleet]` line.
    Keygen {
        /// The key's name (the envelope's key_id).
        #[arg(long)]
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a config overlay (TOML or .json, shaped like posd.toml) and publish it retained.
    /// It is first checked as the terminal would (the pushable list, the merged result under
    /// the terminal's schema): a push the terminal would reject is refused here, unsigned.
    Push {
        #[arg(long)]
        key: PathBuf,
        /// A terminal id, or * for every terminal.
        #[arg(long)]
        terminal: String,
        /// Higher than any version pushed to these terminals before.
        #[arg(long)]
        version: u64,
        file: PathBuf,
        /// The terminal's posd.toml to check the push against (default: the shipped defaults
        /// with this terminal id).
        #[arg(long)]
        base: Option<PathBuf>,
        /// Wait for the terminal's verdict (cfg/reported): exit 0 applied, 4 rejected.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value_t = 30)]
        wait_s: u64,
        #[command(flatten)]
        mqtt: FleetBroker,
    },
    /// Send a signed command to one terminal and print its result.
    Cmd {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        terminal: String,
        /// sync_now, reprint, batch_close or ping.
        op: String,
        /// Arguments as a JSON object, e.g. '{"txn_id":"..."}'.
        #[arg(long)]
        args: Option<String>,
        /// Default: a new UUID. Repeating one returns the recorded result.
        #[arg(long)]
        cmd_id: Option<String>,
        #[arg(long, default_value_t = 15)]
        wait_s: u64,
        #[command(flatten)]
        mqtt: FleetBroker,
    },
    /// Every terminal's retained status and config report, as a table; with --summary, the
    /// fleet at a glance (online and offline, the oldest unsynced queue, config versions,
    /// device faults), fast with tens of thousands of terminals.
    Status {
        /// How long to collect retained messages (with --summary: at most; default 1000 for
        /// the table, 60000 for the summary).
        #[arg(long)]
        wait_ms: Option<u64>,
        /// Counts instead of a row per terminal.
        #[arg(long)]
        summary: bool,
        /// With --summary: the collection ends when the broker sent nothing this long.
        #[arg(long, default_value_t = 500)]
        quiet_ms: u64,
        #[command(flatten)]
        mqtt: FleetBroker,
    },
}
