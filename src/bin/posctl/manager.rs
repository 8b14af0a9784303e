//! `posctl manager`: the manager PIN's hash for `[manager] pin_hash`.

use posd::cli::posctl::ManagerCmd;
use std::process::ExitCode;

pub fn run(cmd: ManagerCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ManagerCmd::HashPin => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let pin = line.trim_end_matches(['\r', '\n']);
            if pin.len() < 4 || !pin.bytes().all(|b| b.is_ascii_digit()) {
                anyhow::bail!("a manager PIN is 4 or more digits");
            }
            let h = posd_core::pin::hash_pin(pin).map_err(|e| anyhow::anyhow!(e))?;
            println!("{h}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
