//! Signed fleet commands on `cmd` (no I/O): the same envelope as config pushes, whose payload
//! is `{cmd_id, op, args, terminal, issued_at}`. `op` is one of `sync_now`, `reprint`,
//! `batch_close`, `ping`. Idempotency by `cmd_id` is the shell's job (SQLite); [`check_fresh`]
//! decides whether a command not seen before may run now: issued within `max_age_s` of the
//! terminal's trusted clock, not before the oldest record still kept (records younger than
//! `max_age_s` are never dropped, so a command cannot outlive its record and run twice), and
//! not beyond the number of records the terminal keeps.

use super::envelope::{self, EnvelopeError, FleetKeys};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the fleet can ask a terminal to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Publish the outbox and the status now.
    SyncNow,
    /// Print a receipt again (`args.txn_id`).
    Reprint,
    /// End-of-day batch close.
    BatchClose,
    /// Answer with `pong`, the software and config versions.
    Ping,
}

impl Op {
    pub fn as_str(&self) -> &'static str {
        match self {
            Op::SyncNow => "sync_now",
            Op::Reprint => "reprint",
            Op::BatchClose => "batch_close",
            Op::Ping => "ping",
        }
    }
}

/// A command document (the signed payload on `cmd`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Unique per command: a repeated `cmd_id` is answered from the record, never run twice.
    pub cmd_id: String,
    pub op: Op,
    #[serde(default)]
    pub args: Value,
    /// `"*"` or the terminal id, so a command cannot be replayed onto another terminal.
    pub terminal: String,
    #[serde(default)]
    pub issued_at: u64,
}

/// Verifies a `cmd` message: signature, shape, `cmd_id`, terminal.
pub fn verify_command(
    bytes: &[u8],
    keys: &FleetKeys,
    terminal: &str,
) -> Result<(String, Command), EnvelopeError> {
    let v = envelope::open(bytes, keys)?;
    let cmd: Command = serde_json::from_slice(&v.payload)
        .map_err(|e| EnvelopeError::BadDocument(e.to_string()))?;
    if cmd.cmd_id.is_empty() || cmd.cmd_id.len() > 128 || cmd.cmd_id.chars().any(|c| c.is_control())
    {
        return Err(EnvelopeError::BadDocument(
            "cmd_id must be 1-128 printable characters".into(),
        ));
    }
    if !(cmd.args.is_null() || cmd.args.is_object()) {
        return Err(EnvelopeError::BadDocument("args must be an object".into()));
    }
    envelope::check_terminal(&cmd.terminal, terminal)?;
    Ok((v.key_id, cmd))
}

/// What [`check_fresh`] needs from the terminal (the shell's clock and SQLite records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Unix seconds by the terminal's clock.
    pub now: u64,
    /// Whether that clock can be trusted (synchronised, after the build date).
    pub clock_trusted: bool,
    /// `[fleet] cmd_max_age_s`.
    pub max_age_s: u64,
    /// Commands issued before this are refused: records older were dropped
    /// ([`purge_before`], kept in SQLite, never lowered).
    pub floor: u64,
    /// Records younger than `max_age_s` the terminal holds now.
    pub live: u64,
    /// `[fleet] cmd_records`.
    pub max_records: u64,
}

/// Records of commands issued before this may be dropped at `now`: such a command is refused
/// as expired anyway, and the floor rises to here so it stays refused whatever the clock does.
pub fn purge_before(now: u64, max_age_s: u64) -> u64 {
    now.saturating_sub(max_age_s)
}

/// Whether a verified command that has no record yet may run now.
pub fn check_fresh(issued_at: u64, f: &Freshness) -> Result<(), EnvelopeError> {
    if !f.clock_trusted {
        return Err(EnvelopeError::ClockUntrusted);
    }
    if f.now.abs_diff(issued_at) > f.max_age_s {
        return Err(EnvelopeError::Expired {
            issued_at,
            now: f.now,
            max_age_s: f.max_age_s,
        });
    }
    if issued_at < f.floor {
        return Err(EnvelopeError::Stale {
            issued_at,
            floor: f.floor,
        });
    }
    if f.live >= f.max_records {
        return Err(EnvelopeError::TooManyCommands {
            live: f.live,
            max: f.max_records,
            max_age_s: f.max_age_s,
        });
    }
    Ok(())
}

/// The `cmd_id` of a message whose signature did not verify, if one can be read — only to
/// label the refusal on `cmd/result`.
pub fn unverified_cmd_id(bytes: &[u8]) -> Option<String> {
    let env: envelope::Envelope = serde_json::from_slice(bytes).ok()?;
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env.payload)
        .ok()?;
    let v: Value = serde_json::from_slice(&payload).ok()?;
    let id = v.get("cmd_id")?.as_str()?;
    (id.len() <= 128).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::envelope::{seal, FleetKeyConfig};
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    #[test]
    fn commands_verify_and_refuse() {
        let k = SigningKey::from_bytes(&[3u8; 32]);
        let keys = FleetKeys::from_config(&[FleetKeyConfig {
            id: "ops".into(),
            public_key: hex::encode(k.verifying_key().to_bytes()),
        }])
        .unwrap();
        let msg = |v: Value| {
            serde_json::to_vec(&seal(&serde_json::to_vec(&v).unwrap(), "ops", &k)).unwrap()
        };
        let (_, c) = verify_command(
            &msg(json!({"cmd_id": "c1", "op": "ping", "terminal": "T1"})),
            &keys,
            "T1",
        )
        .unwrap();
        assert_eq!((c.cmd_id.as_str(), c.op), ("c1", Op::Ping));
        let code = |v: Value| verify_command(&msg(v), &keys, "T1").unwrap_err().code();
        assert_eq!(
            code(json!({"cmd_id": "c1", "op": "ping", "terminal": "T2"})),
            "wrong_terminal"
        );
        assert_eq!(
            code(json!({"cmd_id": "c1", "op": "reboot", "terminal": "T1"})),
            "bad_document"
        );
        assert_eq!(
            code(json!({"cmd_id": "", "op": "ping", "terminal": "T1"})),
            "bad_document"
        );
        assert_eq!(
            code(json!({"cmd_id": "c", "op": "ping", "terminal": "T1", "args": [1]})),
            "bad_document"
        );
        // A config document is not a command.
        assert_eq!(
            code(json!({"version": 1, "issued_at": 1, "terminal": "T1", "config": {}})),
            "bad_document"
        );
        assert_eq!(
            unverified_cmd_id(&msg(json!({"cmd_id": "x9", "op": "ping"}))).as_deref(),
            Some("x9")
        );
    }

    #[test]
    fn only_fresh_commands_run() {
        let now = 1_800_000_000;
        let f = Freshness {
            now,
            clock_trusted: true,
            max_age_s: 300,
            floor: purge_before(now, 300),
            live: 3,
            max_records: 10,
        };
        let code = |issued_at: u64, f: &Freshness| check_fresh(issued_at, f).unwrap_err().code();
        assert!(check_fresh(now, &f).is_ok());
        assert!(
            check_fresh(now - 300, &f).is_ok(),
            "the window is inclusive"
        );
        assert!(
            check_fresh(now + 300, &f).is_ok(),
            "a fleet clock a little ahead"
        );
        // A command signed in 1970, or long ago, or far in the future.
        assert_eq!(code(1, &f), "expired");
        assert_eq!(code(now - 301, &f), "expired");
        assert_eq!(code(now + 301, &f), "expired");
        // The terminal's clock went back: what was purged stays refused.
        let back = Freshness {
            now: now - 1000,
            floor: now - 300,
            ..f
        };
        assert_eq!(code(now - 1100, &back), "stale_command");
        assert!(check_fresh(now - 1000, &back).is_err());
        // Without a trusted clock nothing can be judged fresh.
        let untrusted = Freshness {
            clock_trusted: false,
            ..f
        };
        assert_eq!(code(now, &untrusted), "clock_untrusted");
        // As many live records as kept: refused rather than forgetting one still replayable.
        let full = Freshness { live: 10, ..f };
        assert_eq!(code(now, &full), "too_many_commands");
        assert!(check_fresh(now, &Freshness { live: 9, ..f }).is_ok());
        assert!(EnvelopeError::Expired {
            issued_at: 1,
            now,
            max_age_s: 300
        }
        .to_string()
        .contains("cmd_max_age_s"));
    }
}
