//! posctl: the operator's and integrator's tool — the till over posd's control socket, the
//! manager PIN, payment-code tools and the fleet manager's commands. The sandbox (payment host,
//! wallet, card keys) is `posd-sandbox`, which never ships.

mod code;
mod fleet;
mod manager;
mod till;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "posctl",
    about = "Talk to posd: the till, receipts, codes and the fleet",
    version
)]
struct Cli {
    /// posd's control socket.
    #[arg(long, global = true, default_value = "/run/posd/control.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(flatten)]
    Till(till::TillCmd),
    /// Manager PIN: make the hash for `[manager] pin_hash`.
    Manager {
        #[command(subcommand)]
        cmd: manager::ManagerCmd,
    },
    /// Payment codes: decode images, inspect scanned text.
    Code {
        #[command(subcommand)]
        cmd: code::CodeCmd,
    },
    /// Fleet management: signing keys, signed config pushes and commands, fleet status.
    Fleet {
        #[command(subcommand)]
        cmd: fleet::FleetCmd,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Till(cmd) => till::run(cli.socket, cmd),
        Cmd::Manager { cmd } => manager::run(cmd),
        Cmd::Code { cmd } => code::run(cmd),
        Cmd::Fleet { cmd } => fleet::run(cmd),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("posctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
