//! The posd daemon binary: `posd [--config FILE]`, `posd check-config FILE`, `posd
//! pending-events [JOURNAL]` (its command line: `posd::cli::posd`).

use anyhow::Context;
use clap::Parser;
use posd::cli::posd::{Cli, Cmd};
use posd::config::{Config, ConfigError};
use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.cmd.unwrap_or(Cmd::Run) {
        Cmd::CheckConfig { file, service_user } => {
            match Config::load(&file).and_then(|c| match c.check_service_access(&service_user) {
                p if p.is_empty() => Ok(c),
                p => Err(ConfigError::Invalid(p)),
            }) {
                Ok(c) => {
                    for w in c.warnings() {
                        eprintln!("{}: warning: {w}", file.display());
                    }
                    println!("{}: ok", file.display());
                    std::process::ExitCode::SUCCESS
                }
                Err(ConfigError::Invalid(problems)) => {
                    for p in &problems {
                        eprintln!("{}: {p}", file.display());
                    }
                    eprintln!("{}: {} problem(s)", file.display(), problems.len());
                    std::process::ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Cmd::PendingEvents { journal } => match posd::store::pending_events(&journal) {
            Ok(n) => {
                println!("{n}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("posd: {}: {e}", journal.display());
                std::process::ExitCode::FAILURE
            }
        },
        Cmd::Run => match run(cli.config) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("posd: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let cfg = Config::load(&path).with_context(|| {
        format!(
            "posd will not start without a valid configuration ({}); see `posd check-config`",
            path.display()
        )
    })?;
    posd::logging::init(&cfg.logging.level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stop = posd::daemon::stop_signal()?;
        posd::daemon::run(cfg, stop).await?;
        Ok(())
    })
}
