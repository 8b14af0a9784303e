//! posctl: the operator's and integrator's tool — the till over posd's control socket, the
//! manager PIN, payment-code tools and the fleet manager's commands. Its command line is
//! `posd::cli::posctl` (shared with the man pages and `posctl completions`). The sandbox
//! (payment host, wallet, card keys) is `posd-sandbox`, which never ships.

mod code;
mod devices;
mod fleet;
mod manager;
mod out;
mod till;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use posd::cli::posctl::{Cli, Cmd};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || !std::env::args().any(|a| a == "--json")
            {
                // clap's own words (and its exit code 2 for usage, 0 for --help).
                e.exit();
            }
            // clap's message without its usage block and hints, on one line.
            let msg = e.to_string();
            let words: Vec<&str> = msg
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let text = words.join(" ");
            return out::Failure::usage(text.trim_start_matches("error: ")).print(true);
        }
    };
    let json = cli.json;
    let r = match cli.cmd {
        Cmd::Till(cmd) => till::run(cli.socket, cmd, json),
        Cmd::Manager { cmd } => manager::run(cmd),
        Cmd::Code { cmd } => code::run(cmd, json),
        Cmd::Devices => run_devices(&cli.socket, json),
        Cmd::Fleet { cmd } => fleet::run(cmd, json),
        Cmd::Completions { shell } => print_completions(shell),
    };
    match r {
        Ok(code) => code,
        Err(e) => out::Failure::of(&e).print(json),
    }
}

/// `posctl completions SHELL`: the script clap_complete makes from posctl's command line.
fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    // Into a buffer first: clap_complete panics on a failed write (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "posctl", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
        .context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// `posctl devices`: the local scan, with posd's roles when it answers (its absence is said,
/// not an error: the listing is what helps while posd is not configured yet).
fn run_devices(socket: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let found = devices::scan();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = rt.block_on(async {
        let mut c = posd::control::ControlClient::connect(socket).await?;
        c.call(posd_core::control::Status {}).await
    });
    let (rows, note) = match status {
        Ok(s) => (devices::with_roles(found, &s.devices), None),
        Err(e) => (found, Some(e.to_string())),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"devices": rows, "posd": note.as_deref().map_or_else(|| serde_json::json!("ok"), |n| serde_json::json!({"error": n}))})
        );
    } else {
        devices::print(&rows, note.as_deref());
    }
    Ok(ExitCode::SUCCESS)
}
