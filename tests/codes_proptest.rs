//! Property tests for the payment-code core: round trips hold for generated values, and no input
//! of any shape makes a parser, the classifier or `inspect` panic.

use base64::Engine;
use posd_core::codes::classify::{classify, Patterns};
use posd_core::codes::emv_mpm::{self, generate_dynamic, MerchantAccount, MpmMerchant};
use posd_core::codes::inspect::inspect;
use posd_core::codes::offline::{verify_p1, IssuerKeys, OfflinePolicy};
use posd_core::codes::p1::{P1Code, PrivateKey, P1_LEN};
use posd_core::codes::tlv::{self, Tag, Tlv, TlvValue};
use posd_core::codes::{cpm, Currency};
use proptest::prelude::*;

// ------------------------------------------------------------------ BER-TLV

/// Tag bytes for a given class and constructed flag: single-byte (number 0–30) or multi-byte
/// (1–3 subsequent bytes).
fn tag_strategy(constructed: bool) -> impl Strategy<Value = Tag> {
    let first = (0u8..4).prop_map(move |class| (class << 6) | if constructed { 0x20 } else { 0 });
    prop_oneof![
        (first.clone(), 0u8..=30).prop_map(|(f, n)| vec![f | n]),
        (first, prop::collection::vec(0u8..=0x7F, 0..=2), 0u8..=0x7F).prop_map(
            |(f, mids, last)| {
                let mut v = vec![f | 0x1F];
                v.extend(mids.into_iter().map(|b| b | 0x80));
                v.push(last);
                v
            }
        ),
    ]
    .prop_map(|bytes| Tag::from_bytes(&bytes).expect("generated tag is well formed"))
}

fn tlv_strategy() -> impl Strategy<Value = Tlv> {
    let leaf = (
        tag_strategy(false),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(t, v)| Tlv::primitive(t, v));
    leaf.prop_recursive(6, 64, 5, |inner| {
        (tag_strategy(true), prop::collection::vec(inner, 0..5))
            .prop_map(|(t, children)| Tlv::constructed(t, children))
    })
}

proptest! {
    #[test]
    fn tlv_encode_parse_round_trip(objects in prop::collection::vec(tlv_strategy(), 0..4)) {
        let bytes = tlv::encode(&objects).unwrap();
        prop_assert_eq!(tlv::parse(&bytes).unwrap(), objects);
    }

    #[test]
    fn tlv_parse_never_panics_and_is_canonical(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(tree) = tlv::parse(&bytes) {
            // What parses re-encodes (minimal lengths) to something that parses to the same tree.
            let again = tlv::encode(&tree).unwrap();
            prop_assert_eq!(tlv::parse(&again).unwrap(), tree);
        }
    }

    #[test]
    fn tlv_nested_garbage_never_panics(
        prefix in prop::collection::vec(prop::sample::select(vec![0x61u8, 0x63, 0x7F, 0x9F, 0x81, 0x82, 0x84, 0x80, 0xFF]), 0..64),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = prefix;
        bytes.extend(tail);
        let _ = tlv::parse(&bytes);
        let _ = cpm::parse_bytes(&bytes);
    }
}

// ------------------------------------------------------------------ EMV MPM

fn text_without_controls(max: usize) -> impl Strategy<Value = String> {
    // Any non-control characters, including CJK, accents and emoji.
    prop::collection::vec(
        any::<char>().prop_filter("no control characters", |c| !c.is_control()),
        1..=max,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn merchant_strategy() -> impl Strategy<Value = MpmMerchant> {
    (
        text_without_controls(25),
        text_without_controls(15),
        26u8..=51,
        "[A-Za-z0-9.]{1,32}",
        "[0-9]{4}",
        "[A-Z]{2}",
    )
        .prop_map(|(name, city, tag, guid, mcc, country)| MpmMerchant {
            accounts: vec![MerchantAccount {
                tag,
                guid,
                fields: [("01".to_string(), "MERCHANT-0001".to_string())].into(),
            }],
            merchant_category_code: mcc,
            country_code: country,
            merchant_name: name,
            merchant_city: city,
            postal_code: None,
            language: None,
        })
}

proptest! {
    #[test]
    fn mpm_generate_parse_round_trip(
        m in merchant_strategy(),
        amount in 1u64..=10_000_000_000_000,
        cur in prop::sample::select(vec!["CNY", "JPY", "KWD", "THB", "BRL"]),
        reference in text_without_controls(25),
        label in text_without_controls(25),
    ) {
        let currency = Currency::from_alpha(cur).unwrap();
        let generated = generate_dynamic(&m, amount, cur, &reference, &label);
        let text = match generated {
            Ok(t) => t,
            // Only the 13-character amount field may legitimately refuse (JPY/KWD widths).
            Err(emv_mpm::GenerateError::TooLong { what, .. }) if what == "amount" => {
                prop_assert!(currency.format_minor(amount).len() > 13);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("generate failed: {e}"))),
        };
        let p = emv_mpm::parse(&text).unwrap();
        prop_assert_eq!(p.get(0), Some("01"));
        prop_assert_eq!(p.get(1), Some("12"));
        prop_assert_eq!(p.sub(m.accounts[0].tag, 0), Some(m.accounts[0].guid.as_str()));
        prop_assert_eq!(p.sub(m.accounts[0].tag, 1), Some("MERCHANT-0001"));
        prop_assert_eq!(p.get(52), Some(m.merchant_category_code.as_str()));
        let numeric = currency.numeric_str();
        prop_assert_eq!(p.get(53), Some(numeric.as_str()));
        prop_assert_eq!(p.amount_minor().map(|(a, c)| (a, c.alpha)), Some((amount, cur)));
        prop_assert_eq!(p.get(58), Some(m.country_code.as_str()));
        prop_assert_eq!(p.get(59), Some(m.merchant_name.as_str()));
        prop_assert_eq!(p.get(60), Some(m.merchant_city.as_str()));
        prop_assert_eq!(p.sub(62, 5), Some(reference.as_str()));
        prop_assert_eq!(p.sub(62, 7), Some(label.as_str()));
        prop_assert!(p.missing_mandatory().is_empty());
        // A generated code is always recognised as a merchant code.
        prop_assert_eq!(
            classify(&text, &Patterns::default()).unwrap().kind,
            posd_core::codes::CodeKind::EmvMpm
        );
    }

    #[test]
    fn mpm_parse_never_panics(s in "\\PC{0,200}") {
        let _ = emv_mpm::parse(&s);
        let _ = emv_mpm::looks_like_valid_mpm(&s);
    }

    #[test]
    fn mpm_parse_never_panics_on_near_valid(s in "000201([0-9]{2}[0-9]{2}[0-9A-Z最佳 ]{0,12}){0,8}(6304[0-9A-F]{4})?") {
        let _ = emv_mpm::parse(&s);
    }
}

// ------------------------------------------------------------------ classifier and inspect

fn scan_strategy() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "",
        "P1.",
        "R1.",
        "000201",
        "hQVDUFYwM",
        "%B",
        ";",
        "62",
        "13",
        "28",
        "\r\n",
    ]);
    prop_oneof![
        any::<String>(),
        (prefix.clone(), any::<String>()).prop_map(|(p, s)| format!("{p}{s}")),
        (prefix, "[0-9A-Za-z+/=._^?%;-]{0,300}").prop_map(|(p, s)| format!("{p}{s}")),
        "[0-9]{0,30}",
    ]
}

proptest! {
    #[test]
    fn classifier_and_inspect_never_panic(s in scan_strategy()) {
        let p = Patterns::default();
        if let Ok(c) = classify(&s, &p) {
            // The sanitised text is a suffix-trimmed prefix of the input.
            prop_assert!(s.starts_with(c.text));
        }
        if let Ok(i) = inspect(&s, &p, Some(1_770_000_000)) {
            let _ = i.to_string();
            let _ = serde_json::to_string(&i).unwrap();
        }
    }

    #[test]
    fn classifier_handles_long_input(n in 4000usize..4200, c in prop::sample::select(vec!['9', 'A', '好'])) {
        let s: String = std::iter::repeat_n(c, n).collect();
        let r = classify(&s, &Patterns::default());
        if s.len() > 4096 {
            prop_assert!(r.is_err());
        } else {
            prop_assert!(r.is_ok());
        }
    }
}

// ------------------------------------------------------------------ P1

proptest! {
    #[test]
    fn p1_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(code) = P1Code::from_bytes(&bytes) {
            prop_assert_eq!(&code.to_bytes()[..], &bytes[..]);
        }
        let text = format!("P1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
        let _ = P1Code::from_text(&text);
    }

    #[test]
    fn p1_structurally_valid_random_codes_never_panic(
        mut bytes in prop::collection::vec(any::<u8>(), P1_LEN..=P1_LEN),
        key_prefix in prop::sample::select(vec![0x02u8, 0x03]),
        now in any::<u64>(),
    ) {
        bytes[0] = 1;
        bytes[1] = 1;
        bytes[10] = key_prefix;
        let code = P1Code::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&code.to_bytes()[..], &bytes[..]);
        let mut keys = IssuerKeys::new();
        keys.insert(1, PrivateKey::from_hex(&"11".repeat(32)).unwrap().public_key(), false);
        // Random signatures never verify.
        let r = verify_p1(&code.to_text(), now, &keys, &OfflinePolicy::default());
        prop_assert_eq!(r.map_err(|e| e.code()), Err("bad_issuer_signature"));
    }

    #[test]
    fn p1_text_never_panics(s in "P1\\.[A-Za-z0-9_=+/-]{0,300}") {
        let _ = P1Code::from_text(&s);
        let _ = verify_p1(&s, 0, &IssuerKeys::new(), &OfflinePolicy::default());
    }
}

#[test]
fn tlv_value_kinds_match_tags_in_strategy() {
    // Guard for the strategy itself: constructed tags carry children, primitive tags bytes.
    let t = Tag::from_bytes(&[0x61]).unwrap();
    assert!(t.is_constructed());
    assert!(matches!(
        Tlv::constructed(t, vec![]).value,
        TlvValue::Constructed(_)
    ));
}
