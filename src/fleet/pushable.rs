//! Which configuration keys the fleet may push, and how a pushed overlay becomes a `Config`.
//! No I/O.
//!
//! A push's `config` object is an overlay shaped like the TOML file (`{"limits":
//! {"max_sale_amount": 5000}}`). Each push is the *whole* desired overlay: the effective
//! configuration is always the local file plus the latest applied overlay, so a key left out of
//! a push goes back to its local value. Only the keys in [`PUSHABLE`] may appear; anything else
//! (the terminal id, the broker, TLS, the control socket) is refused by name, because a push
//! must never be able to cut a terminal off from its fleet — and so is every trust anchor (the
//! fleet's keys, the payment host's keys `broker.host_keys`, the platforms' issuer keys
//! `offline.issuer_keys`, the clock's trust `offline.clock`): whoever holds the fleet key must
//! not be able to make the terminal trust a key of their own. They change only in the local file.
//! The merged result goes through the very same parser and checks as the local file
//! ([`Config::from_toml`]: types, ranges and cross-field rules), so a pushed value is held to
//! exactly the local schema.

use crate::config::{Config, Problem};
use serde_json::{Map, Value};

/// When a pushed setting takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// At once, without a restart (new sales use it; sales in flight finish as they started).
    Now,
    /// Stored and reported as applied, effective from the next start of posd.
    Restart,
}

/// One entry of the allow-list: a key path and everything under it.
#[derive(Debug, Clone, Copy)]
pub struct Pushable {
    pub path: &'static str,
    pub takes: Takes,
    pub what: &'static str,
}

/// The documented allow-list (docs/fleet.md repeats it).
pub const PUSHABLE: &[Pushable] = &[
    Pushable {
        path: "terminal.language",
        takes: Takes::Now,
        what: "the shop's language (en, zh-CN, es): screens, refusals, receipts",
    },
    Pushable {
        path: "limits.max_sale_amount",
        takes: Takes::Now,
        what: "largest sale, minor units",
    },
    Pushable {
        path: "online.query_interval_s",
        takes: Takes::Now,
        what: "online payment query interval",
    },
    Pushable {
        path: "online.query_total_s",
        takes: Takes::Now,
        what: "time before an unanswered payment is reversed",
    },
    Pushable {
        path: "online.reverse_backoff_initial_s",
        takes: Takes::Now,
        what: "reversal retry backoff",
    },
    Pushable {
        path: "online.reverse_backoff_max_s",
        takes: Takes::Now,
        what: "reversal retry backoff cap",
    },
    Pushable {
        path: "codes",
        takes: Takes::Now,
        what: "payment-code patterns and longest scan",
    },
    Pushable {
        path: "offline.enabled",
        takes: Takes::Now,
        what: "accept P1 offline codes",
    },
    Pushable {
        path: "offline.allowed_skew_s",
        takes: Takes::Now,
        what: "phone/terminal clock skew tolerated",
    },
    Pushable {
        path: "offline.limits",
        takes: Takes::Now,
        what: "offline limits (per sale, per user per day, unsynced count/amount/age)",
    },
    Pushable {
        path: "offline.denylist",
        takes: Takes::Now,
        what: "denied offline users and credentials (the whole list)",
    },
    Pushable {
        path: "offline.settle_query_interval_s",
        takes: Takes::Now,
        what: "settlement query interval",
    },
    Pushable {
        path: "merchant_qr",
        takes: Takes::Now,
        what: "merchant-presented QR: mode, timeouts and the merchant templates",
    },
    Pushable {
        path: "card.store_and_forward",
        takes: Takes::Now,
        what: "card store-and-forward: enabled, floor limit, count, age",
    },
    Pushable {
        path: "receipt",
        takes: Takes::Restart,
        what: "receipt text and layout (shop name, header, footer, width, copies)",
    },
    Pushable {
        path: "logging.level",
        takes: Takes::Now,
        what: "log level",
    },
    Pushable {
        path: "devices.console",
        takes: Takes::Restart,
        what: "console device",
    },
    Pushable {
        path: "devices.camera",
        takes: Takes::Restart,
        what: "camera scanner settings (health-checked: the device must open)",
    },
];

/// Why an overlay cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("not pushable: {}", .0.join(", "))]
    NotPushable(Vec<String>),
    #[error("{path}: {message}")]
    BadValue { path: String, message: String },
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
}

impl PushError {
    /// Stable machine-readable code (`cfg/reported.error`).
    pub fn code(&self) -> &'static str {
        match self {
            PushError::NotPushable(_) => "not_pushable",
            PushError::BadValue { .. } => "invalid_value",
            PushError::Invalid(_) => "invalid_config",
        }
    }
}

fn allowed(path: &str) -> Option<&'static Pushable> {
    PUSHABLE.iter().find(|p| {
        path == p.path
            || path
                .strip_prefix(p.path)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

fn walk(prefix: &str, map: &Map<String, Value>, bad: &mut Vec<String>, hit: &mut Vec<Takes>) {
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if let Some(p) = allowed(&path) {
            hit.push(p.takes);
        } else if let Some(inner) = v.as_object().filter(|m| !m.is_empty()) {
            // Name the leaves: `broker.url`, not `broker`.
            walk(&path, inner, bad, hit);
        } else {
            bad.push(path);
        }
    }
}

/// Checks that every key of the overlay is on the allow-list; returns whether any needs a
/// restart to take effect.
pub fn check_keys(overlay: &Map<String, Value>) -> Result<bool, PushError> {
    let mut bad = Vec::new();
    let mut hit = Vec::new();
    walk("", overlay, &mut bad, &mut hit);
    if bad.is_empty() {
        Ok(hit.contains(&Takes::Restart))
    } else {
        Err(PushError::NotPushable(bad))
    }
}

fn json_to_toml(path: &str, v: &Value) -> Result<toml::Value, PushError> {
    let bad = |message: &str| PushError::BadValue {
        path: path.to_string(),
        message: message.to_string(),
    };
    Ok(match v {
        Value::Null => return Err(bad("null is not a value (leave the key out instead)")),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                toml::Value::Integer(i)
            } else if n.is_u64() {
                return Err(bad("integer too large"));
            } else {
                toml::Value::Float(n.as_f64().ok_or_else(|| bad("not a number"))?)
            }
        }
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| json_to_toml(&format!("{path}[{i}]"), x))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut t = toml::Table::new();
            for (k, x) in m {
                t.insert(k.clone(), json_to_toml(&format!("{path}.{k}"), x)?);
            }
            toml::Value::Table(t)
        }
    })
}

/// Tables merge key by key; any other value (arrays included) replaces what was there.
fn merge_into(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_into(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The local configuration as TOML text (what the overlay is merged onto).
fn local_table(local: &Config) -> Result<toml::Table, PushError> {
    match toml::Value::try_from(local) {
        Ok(toml::Value::Table(t)) => Ok(t),
        Ok(_) => Err(PushError::BadValue {
            path: String::new(),
            message: "the local configuration is not a table".into(),
        }),
        Err(e) => Err(PushError::BadValue {
            path: String::new(),
            message: format!("the local configuration cannot be re-encoded: {e}"),
        }),
    }
}

/// Merges a pushed overlay onto the local configuration and validates the result with the
/// local file's own schema. Nothing is applied here.
pub fn merge(local: &Config, overlay: &Map<String, Value>) -> Result<Config, PushError> {
    check_keys(overlay)?;
    let mut base = local_table(local)?;
    let over = match json_to_toml("", &Value::Object(overlay.clone()))? {
        toml::Value::Table(t) => t,
        _ => toml::Table::new(),
    };
    merge_into(&mut base, over);
    let text = toml::to_string(&base).map_err(|e| PushError::BadValue {
        path: String::new(),
        message: e.to_string(),
    })?;
    Config::from_toml(&text).map_err(|e| match e {
        crate::config::ConfigError::Invalid(p) => PushError::Invalid(p),
        other => PushError::Invalid(vec![Problem {
            path: String::new(),
            message: other.to_string(),
        }]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn local() -> Config {
        Config::from_toml(include_str!("../../config/posd.toml")).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    #[test]
    fn empty_overlay_round_trips_the_local_file() {
        let l = local();
        let m = merge(&l, &Map::new()).unwrap();
        assert_eq!(format!("{:?}", m), format!("{:?}", l));
    }

    #[test]
    fn pushable_values_apply_and_deep_merge() {
        let l = local();
        let m = merge(
            &l,
            &obj(json!({
                "limits": {"max_sale_amount": 5000},
                "online": {"query_interval_s": 3},
                "logging": {"level": "debug"},
                "offline": {"limits": {"per_txn_limit": 77}, "denylist": {"user_ids": [42]}}
            })),
        )
        .unwrap();
        assert_eq!(m.limits.max_sale_amount, 5000);
        assert_eq!(m.online.query_interval_s, 3);
        assert_eq!(m.online.query_total_s, l.online.query_total_s);
        assert_eq!(m.offline.limits.per_txn_limit, 77);
        assert_eq!(
            m.offline.limits.max_unsynced_count,
            l.offline.limits.max_unsynced_count
        );
        assert_eq!(m.offline.denylist.user_ids, [42]);
        assert_eq!(m.terminal.id, l.terminal.id);
    }

    #[test]
    fn non_pushable_keys_refused_by_name() {
        let e = merge(
            &local(),
            &obj(json!({
                "terminal": {"id": "X"},
                "broker": {"url": "mqtt://evil:1883"},
                "limits": {"max_sale_amount": 5},
                "offline": {"clock": "always"},
                "fleet": {"keys": []}
            })),
        )
        .unwrap_err();
        assert_eq!(e.code(), "not_pushable");
        let PushError::NotPushable(keys) = e else {
            panic!()
        };
        assert_eq!(
            keys,
            ["broker.url", "fleet.keys", "offline.clock", "terminal.id"]
        );
        assert_eq!(
            check_keys(&obj(json!({"offline": 1}))).unwrap_err().code(),
            "not_pushable"
        );
    }

    #[test]
    fn invalid_values_refused_with_the_local_schema() {
        let l = local();
        for (overlay, path) in [
            (
                json!({"limits": {"max_sale_amount": -1}}),
                "limits.max_sale_amount",
            ),
            (
                json!({"limits": {"max_sale_amount": "lots"}}),
                "limits.max_sale_amount",
            ),
            (json!({"logging": {"level": "loud"}}), "logging.level"),
            (
                json!({"offline": {"limits": {"bogus": 1}}}),
                "offline.limits.bogus",
            ),
            (
                json!({"offline": {"denylist": {"credentials": ["zz"]}}}),
                "offline.denylist.credentials",
            ),
        ] {
            let e = merge(&l, &obj(overlay.clone())).unwrap_err();
            assert_eq!(e.code(), "invalid_config", "{overlay}");
            let PushError::Invalid(p) = e else { panic!() };
            assert!(p.iter().any(|p| p.path == path), "{overlay}: {p:?}");
        }
        let e = merge(&l, &obj(json!({"limits": {"max_sale_amount": null}}))).unwrap_err();
        assert_eq!(e.code(), "invalid_value");
    }

    #[test]
    fn out_of_range_and_incoherent_values_are_refused_by_path() {
        let l = local();
        for (overlay, path) in [
            (
                json!({"offline": {"allowed_skew_s": 4_000_000_000u64}}),
                "offline.allowed_skew_s",
            ),
            (
                json!({"offline": {"limits": {"max_unsynced_age_s": 999_999_999}}}),
                "offline.limits.max_unsynced_age_s",
            ),
            (
                json!({"offline": {"limits": {"per_txn_limit": 30_000}}}),
                "offline.limits.per_txn_limit",
            ),
            (
                json!({"offline": {"settle_query_interval_s": 0}}),
                "offline.settle_query_interval_s",
            ),
            (
                json!({"online": {"query_interval_s": 100_000, "query_total_s": 200_000}}),
                "online.query_interval_s",
            ),
            (json!({"codes": {"max_len": 0}}), "codes.max_len"),
            (json!({"codes": {"wechat": "("}}), "codes.wechat"),
            (
                json!({"merchant_qr": {"timeout_s": 10, "query_interval_s": 20}}),
                "merchant_qr.query_interval_s",
            ),
            (
                json!({"card": {"store_and_forward": {"max_age_s": 99_999_999}}}),
                "card.store_and_forward.max_age_s",
            ),
        ] {
            let e = merge(&l, &obj(overlay.clone())).unwrap_err();
            assert_eq!(e.code(), "invalid_config", "{overlay}");
            assert!(e.to_string().contains(path), "{overlay}: {e}");
        }
    }

    #[test]
    fn trust_anchors_are_not_pushable() {
        let e = merge(
            &local(),
            &obj(json!({
                "offline": {"issuer_keys": [{"id": 9, "public_key": "03aa"}], "clock": "always"},
                "broker": {"host_keys": [], "lab_accept_unsigned": true},
                "fleet": {"keys": [], "cmd_max_age_s": 86400}
            })),
        )
        .unwrap_err();
        let PushError::NotPushable(keys) = e else {
            panic!("{e}")
        };
        assert_eq!(
            keys,
            [
                "broker.host_keys",
                "broker.lab_accept_unsigned",
                "fleet.cmd_max_age_s",
                "fleet.keys",
                "offline.clock",
                "offline.issuer_keys"
            ]
        );
    }

    #[test]
    fn the_language_is_pushable_at_once_and_checked() {
        use posd_core::i18n::Language;
        let l = local();
        let m = merge(&l, &obj(json!({"terminal": {"language": "zh-CN"}}))).unwrap();
        assert_eq!(m.terminal.language, Language::ZhCn);
        assert_eq!(m.receipt.language, Language::ZhCn, "receipts follow it");
        assert_eq!(m.terminal.id, l.terminal.id);
        assert!(!check_keys(&obj(json!({"terminal": {"language": "es"}}))).unwrap());
        let e = merge(&l, &obj(json!({"terminal": {"language": "fr"}}))).unwrap_err();
        assert_eq!(e.code(), "invalid_config");
        let msg = e.to_string();
        assert!(
            msg.contains("terminal.language") && msg.contains("\"zh-CN\""),
            "{msg}"
        );
        let e = merge(&l, &obj(json!({"terminal": {"language": "es", "id": "X"}}))).unwrap_err();
        let PushError::NotPushable(keys) = e else {
            panic!("{e}")
        };
        assert_eq!(keys, ["terminal.id"]);
    }

    #[test]
    fn restart_keys_are_flagged() {
        assert!(!check_keys(&obj(json!({"limits": {"max_sale_amount": 5}}))).unwrap());
        assert!(check_keys(&obj(json!({"devices": {"console": true}}))).unwrap());
    }
}
