//! The posd daemon binary: `posd [--config FILE]`, `posd check-config FILE`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use posd::config::{Config, ConfigError};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "posd", about = "Payment daemon for Linux micro-POS boxes", version = version())]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "/etc/posd/posd.toml")]
    config: PathBuf,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon (the default).
    Run,
    /// Check a configuration file: print every problem with its key path.
    CheckConfig {
        file: PathBuf,
        /// The user posd runs as (posd.service's `User=`): when run as root, the TLS files
        /// must be readable by it.
        #[arg(long, default_value = "posd")]
        service_user: String,
    },
}

fn version() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (",
        env!("POSD_GIT_COMMIT"),
        ")"
    )
}

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
