//! `posctl code`: what a scanned text is (every parsed field and the checks a sale would
//! apply), and the camera's decode pipeline run on image files.

use posd::cli::posctl::CodeCmd;
use serde_json::Value;
use std::process::ExitCode;

pub fn run(cmd: CodeCmd, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        CodeCmd::Inspect { text } => {
            let patterns =
                posd_core::codes::Patterns::new(posd_core::codes::PatternsConfig::default())?;
            match posd_core::codes::inspect(&text, &patterns, Some(posd::clock::now_ms() / 1000)) {
                Ok(i) => {
                    if json {
                        println!("{}", serde_json::to_string(&i)?);
                    } else {
                        println!("{i}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                // A sale would refuse this text: said once, exit 4 (refused), code bad_code.
                Err(e) => Err(crate::out::Failure::refused(
                    match &e {
                        posd_core::codes::CodeError::Card(c) => c.code(),
                        _ => posd_core::control::codes::BAD_CODE,
                    },
                    format!("invalid code: {e}"),
                )
                .into()),
            }
        }
        CodeCmd::ScanImage { files } => {
            let reports = posd::camera::scan_image_files(&files);
            let mut failed = false;
            for r in &reports {
                failed |= r.error.is_some();
                if json {
                    println!("{}", serde_json::to_string(r)?);
                } else {
                    let v = serde_json::to_value(r)?;
                    let payloads: Vec<String> = v["payloads"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| match p["text"].as_str() {
                            Some(t) => format!("{t:?}"),
                            None => format!("hex:{}", plain(&p["hex"])),
                        })
                        .collect();
                    match &r.error {
                        Some(e) => println!("{}: error: {e}", r.file),
                        None if payloads.is_empty() => {
                            println!("{}: no code ({:.2} ms)", r.file, r.ms)
                        }
                        None => println!("{}: {} ({:.2} ms)", r.file, payloads.join(", "), r.ms),
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
