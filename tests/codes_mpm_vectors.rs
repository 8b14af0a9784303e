//! Real EMVCo merchant-presented payloads (shared/testdata/emv/mpm_vectors.json) must parse exactly:
//! every top-level field and every template sub-field reproduced, every CRC accepted, and every
//! corruption refused with the right error.

use std::collections::BTreeMap;

use posd_core::codes::classify::{classify, CodeKind, Patterns};
use posd_core::codes::emv_mpm::{self, MpmError, MpmPayload};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/testdata/emv/mpm_vectors.json"
);

fn load() -> Option<Vec<Value>> {
    match std::fs::read_to_string(VECTORS) {
        Ok(text) => {
            let v: Value = serde_json::from_str(&text).expect("mpm_vectors.json is JSON");
            let list = v.as_array().expect("a JSON array").clone();
            assert!(!list.is_empty(), "no vectors in {VECTORS}");
            Some(list)
        }
        Err(e) => {
            println!("SKIPPED: {VECTORS} not readable ({e}); the EMV vectors live in shared/");
            None
        }
    }
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
        .collect()
}

fn fields_of(p: &MpmPayload) -> BTreeMap<String, String> {
    p.fields
        .iter()
        .map(|f| (format!("{:02}", f.tag), f.value.clone()))
        .collect()
}

/// Templates the vector files list: 26–51, 62 and 64 (80–99 are parsed too, but not listed).
fn listed_templates(p: &MpmPayload) -> BTreeMap<String, BTreeMap<String, String>> {
    p.fields
        .iter()
        .filter(|f| matches!(f.tag, 26..=51 | 62 | 64))
        .map(|f| {
            let subs = f
                .sub_fields
                .as_deref()
                .expect("template has sub-fields")
                .iter()
                .map(|s| (format!("{:02}", s.tag), s.value.clone()))
                .collect();
            (format!("{:02}", f.tag), subs)
        })
        .collect()
}

#[test]
fn every_vector_parses_exactly() {
    let Some(vectors) = load() else { return };
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let payload = v["payload"].as_str().unwrap();
        let p = emv_mpm::parse(payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.crc, v["crc"].as_str().unwrap(), "{name}: crc");
        assert_eq!(fields_of(&p), str_map(&v["fields"]), "{name}: fields");
        let expected: BTreeMap<String, BTreeMap<String, String>> = v["templates"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, t)| (k.clone(), str_map(t)))
            .collect();
        assert_eq!(listed_templates(&p), expected, "{name}: templates");
        // Field order is payload order and the CRC is last.
        assert_eq!(p.fields.first().map(|f| f.tag), Some(0), "{name}");
        assert_eq!(p.fields.last().map(|f| f.tag), Some(63), "{name}");
        // The classifier recognises it as a merchant code (to refuse it at a sale).
        let c = classify(payload, &Patterns::default()).unwrap();
        assert_eq!(c.kind, CodeKind::EmvMpm, "{name}");
        assert!(emv_mpm::looks_like_valid_mpm(payload), "{name}");
    }
}

#[test]
fn every_vector_corrupted_is_refused() {
    let Some(vectors) = load() else { return };
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let payload = v["payload"].as_str().unwrap();
        let crc = v["crc"].as_str().unwrap();

        // Wrong CRC: flip the last hex digit.
        let last = payload.chars().last().unwrap();
        let flipped = if last == '0' { '1' } else { '0' };
        let bad = format!("{}{flipped}", &payload[..payload.len() - 1]);
        match emv_mpm::parse(&bad) {
            Err(MpmError::CrcMismatch { stated, computed }) => {
                assert_eq!(computed, crc, "{name}");
                assert_ne!(stated, crc, "{name}");
            }
            other => panic!("{name}: wrong CRC gave {other:?}"),
        }
        assert_eq!(
            classify(&bad, &Patterns::default()).unwrap().kind,
            CodeKind::Unknown,
            "{name}"
        );

        // A changed character in the body (not in the CRC) is caught by the CRC.
        let body_bad = payload.replacen("5802", "5803", 1);
        if body_bad != payload {
            assert!(emv_mpm::parse(&body_bad).is_err(), "{name}: body change");
        }

        // Truncated anywhere: never accepted, never a panic.
        for cut in 1..payload.chars().count() {
            let t: String = payload.chars().take(cut).collect();
            assert!(emv_mpm::parse(&t).is_err(), "{name}: truncated at {cut}");
        }

        // Missing CRC record entirely.
        let no_crc = &payload[..payload.len() - 8];
        assert_eq!(emv_mpm::parse(no_crc), Err(MpmError::MissingCrc), "{name}");

        // A length that exceeds its record: bump 58's length from 02 to 99. Depending on what
        // follows, the misaligned parse meets a non-digit tag, runs off the end, or the CRC.
        let over = payload.replacen("5802", "5899", 1);
        assert!(
            matches!(
                emv_mpm::parse(&over),
                Err(MpmError::LengthExceedsInput { .. }
                    | MpmError::NonDigitTag { .. }
                    | MpmError::NonDigitLength { .. }
                    | MpmError::Truncated { .. }
                    | MpmError::CrcMismatch { .. }
                    | MpmError::MissingCrc)
            ),
            "{name}: {:?}",
            emv_mpm::parse(&over)
        );
        // The same record made the last one before the end: the length names the problem.
        let tail = format!("{}5999ABC", &payload[..payload.len() - 8]);
        assert!(
            matches!(
                emv_mpm::parse(&tail),
                Err(MpmError::LengthExceedsInput {
                    tag: 59,
                    declared: 99,
                    remaining: 3,
                    ..
                })
            ),
            "{name}: {:?}",
            emv_mpm::parse(&tail)
        );

        // Non-digit tag.
        let nd = format!("000201X{}", &payload[7..]);
        assert!(
            matches!(
                emv_mpm::parse(&nd),
                Err(MpmError::NonDigitTag { offset: 6, .. })
            ),
            "{name}: {:?}",
            emv_mpm::parse(&nd)
        );
    }
}

#[test]
fn length_exceeding_input_is_named() {
    // A dedicated case where the over-long record is the last before the CRC, so the structure
    // error (not the CRC) is what is hit first.
    let p = "0002015999ABC";
    assert_eq!(
        emv_mpm::parse(p),
        Err(MpmError::LengthExceedsInput {
            tag: 59,
            offset: 6,
            declared: 99,
            remaining: 3
        })
    );
}

#[test]
fn lengths_count_characters_not_bytes() {
    let Some(vectors) = load() else { return };
    let v = vectors
        .iter()
        .find(|v| v["payload"].as_str().unwrap().contains("最佳运输"))
        .expect("the EMVCo example with Chinese text is in the vectors");
    let p = emv_mpm::parse(v["payload"].as_str().unwrap()).unwrap();
    assert_eq!(p.sub(64, 1), Some("最佳运输"));
    // 4 characters, 12 UTF-8 bytes: the record length said 04.
    assert_eq!(p.sub(64, 1).unwrap().len(), 12);
}
