//! The classifier and `inspect` as the till and `posctl code inspect` meet them: one realistic
//! text per kind, the JSON and text renderings, and card data never shown in clear.

use base64::Engine;
use posd_core::codes::classify::{classify, format_receipt_ref, CodeKind, Patterns};
use posd_core::codes::emv_mpm::{generate_dynamic, MerchantAccount, MpmMerchant};
use posd_core::codes::inspect::{inspect, CodeError};
use posd_core::codes::p1::{issue_credential, make_code, CredentialRequest, PrivateKey};
use posd_core::codes::tlv::{self, Tag, Tlv};
use serde_json::Value;

const PAN: &str = "4761739001010010";

fn t(b: &[u8]) -> Tag {
    Tag::from_bytes(b).unwrap()
}

/// A consumer-presented payload shaped like EMVCo's example: PFI, one application template with
/// AID, label, track-2 equivalent, PAN, and a transparent template with the cryptogram.
fn cpm_text() -> String {
    let objects = vec![
        Tlv::primitive(t(&[0x85]), b"CPV01".to_vec()),
        Tlv::constructed(
            t(&[0x61]),
            vec![
                Tlv::primitive(t(&[0x4F]), hex::decode("A0000000031010").unwrap()),
                Tlv::primitive(t(&[0x50]), b"VISA CREDIT".to_vec()),
                Tlv::primitive(
                    t(&[0x57]),
                    hex::decode(format!("{PAN}D25122010123409172")).unwrap(),
                ),
                Tlv::primitive(t(&[0x5A]), hex::decode(PAN).unwrap()),
                Tlv::primitive(t(&[0x5F, 0x20]), b"CARDHOLDER/VISA".to_vec()),
                Tlv::primitive(t(&[0x5F, 0x2D]), b"en".to_vec()),
                Tlv::constructed(
                    t(&[0x63]),
                    vec![
                        Tlv::primitive(t(&[0x9F, 0x26]), hex::decode("584FD385FA234BCC").unwrap()),
                        Tlv::primitive(t(&[0x9F, 0x27]), vec![0x80]),
                        Tlv::primitive(t(&[0x9F, 0x36]), vec![0x00, 0x01]),
                    ],
                ),
            ],
        ),
    ];
    base64::engine::general_purpose::STANDARD.encode(tlv::encode(&objects).unwrap())
}

fn kind(text: &str) -> CodeKind {
    classify(text, &Patterns::default()).unwrap().kind
}

#[test]
fn one_text_per_kind() {
    let p1 = {
        let issuer = PrivateKey::generate().unwrap();
        let user = PrivateKey::generate().unwrap();
        let cred = issue_credential(
            &issuer,
            1,
            &CredentialRequest {
                user_id: 1,
                user_key: user.public_key(),
                valid_from: 0,
                valid_until: u32::MAX,
                max_amount: 100,
                currency: 156,
            },
        )
        .unwrap();
        make_code(&user, &cred, 1, 1).unwrap().to_text()
    };
    let cpm = cpm_text();
    let cases = [
        ("134567890123456789", CodeKind::WeChat),
        ("287654321098765432", CodeKind::Alipay),
        ("6223456789012345678", CodeKind::UnionPay),
        (cpm.as_str(), CodeKind::EmvCpm),
        (p1.as_str(), CodeKind::P1Offline),
        (
            "00020101021129370016A000000677010111011300668012345675802TH530376463046197",
            CodeKind::EmvMpm,
        ),
        (
            "R1.POS-7.123e4567-e89b-12d3-a456-426614174000",
            CodeKind::ReceiptRef,
        ),
        (";4761739001010010=25122011143804489?", CodeKind::CardTrack),
        ("https://example.com/not-a-payment", CodeKind::Unknown),
    ];
    for (text, expected) in cases {
        assert_eq!(kind(text), expected, "{text}");
        assert_eq!(kind(&format!("{text}\r\n")), expected, "{text} with CRLF");
    }
}

#[test]
fn cpm_inspection_shows_the_tree_with_card_data_masked() {
    let text = cpm_text();
    let i = inspect(&text, &Patterns::default(), None).unwrap();
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["kind"], "emv_cpm");
    assert_eq!(json["format"], "emv_cpm");
    assert_eq!(json["applications"], 1);
    let tree = json["tlv"].as_array().unwrap();
    assert_eq!(tree[0]["tag"], "85");
    assert_eq!(tree[0]["text"], "CPV01");
    let app = &tree[1];
    assert_eq!(app["tag"], "61");
    assert_eq!(app["constructed"], true);
    let children = app["children"].as_array().unwrap();
    let by_tag = |tag: &str| children.iter().find(|c| c["tag"] == tag).unwrap().clone();
    assert_eq!(by_tag("4F")["hex"], "A0000000031010");
    assert_eq!(by_tag("50")["text"], "VISA CREDIT");
    assert_eq!(by_tag("5A")["masked"], "476173******0010");
    assert!(by_tag("57")["masked"]
        .as_str()
        .unwrap()
        .starts_with("476173******0010"));
    assert_eq!(by_tag("5F20")["masked"], "(withheld)");
    let inner = by_tag("63");
    let crypt = inner["children"].as_array().unwrap();
    assert_eq!(crypt[0]["tag"], "9F26");
    assert_eq!(crypt[0]["name"], "Application Cryptogram");
    assert_eq!(crypt[0]["hex"], "584FD385FA234BCC");
    // The clear PAN and the cardholder name appear nowhere, in JSON or text.
    let rendered = format!("{}{}", serde_json::to_string(&i).unwrap(), i);
    assert!(!rendered.contains(PAN), "{rendered}");
    assert!(!rendered.contains("CARDHOLDER"), "{rendered}");
    assert!(i.to_string().contains("9F26 Application Cryptogram"));
}

#[test]
fn mpm_inspection_lists_every_field_and_the_crc() {
    let merchant = MpmMerchant {
        accounts: vec![MerchantAccount {
            tag: 26,
            guid: "br.gov.bcb.pix".into(),
            fields: [("01".to_string(), "chave@example.com".to_string())].into(),
        }],
        merchant_category_code: "0000".into(),
        country_code: "BR".into(),
        merchant_name: "Padaria São João".into(),
        merchant_city: "BRASÍLIA".into(),
        postal_code: Some("70000-000".into()),
        language: None,
    };
    let text = generate_dynamic(&merchant, 1_050, "BRL", "TX0001", "CAIXA-2").unwrap();
    let i = inspect(&text, &Patterns::default(), None).unwrap();
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["kind"], "emv_mpm");
    assert_eq!(json["dynamic"], true);
    assert_eq!(json["amount_minor"], 1_050);
    assert_eq!(json["currency"], "BRL");
    assert_eq!(json["crc"]["valid"], true);
    assert_eq!(json["crc"]["stated"], &text[text.len() - 4..]);
    let fields = json["fields"].as_array().unwrap();
    let tags: Vec<&str> = fields.iter().map(|f| f["tag"].as_str().unwrap()).collect();
    assert_eq!(
        tags,
        ["00", "01", "26", "52", "53", "54", "58", "59", "60", "61", "62", "63"]
    );
    let f62 = fields.iter().find(|f| f["tag"] == "62").unwrap();
    assert_eq!(f62["sub_fields"][0]["name"], "Reference Label");
    assert_eq!(f62["sub_fields"][0]["value"], "TX0001");
    assert_eq!(f62["sub_fields"][1]["value"], "CAIXA-2");
    let shown = i.to_string();
    assert!(shown.contains("10.50 BRL"), "{shown}");
    assert!(shown.contains("Padaria São João"), "{shown}");
    // And a broken CRC is an error with both CRCs named.
    let bad = format!("{}0000", &text[..text.len() - 4]);
    let e = inspect(&bad, &Patterns::default(), None).unwrap_err();
    assert!(matches!(e, CodeError::Mpm(_)), "{e:?}");
    assert!(e.to_string().contains("CRC mismatch"), "{e}");
}

#[test]
fn p1_inspection_shows_fields_in_hex_and_checks() {
    let issuer = PrivateKey::generate().unwrap();
    let user = PrivateKey::generate().unwrap();
    let cred = issue_credential(
        &issuer,
        4,
        &CredentialRequest {
            user_id: 77,
            user_key: user.public_key(),
            valid_from: 1_760_000_000,
            valid_until: 1_790_000_000,
            max_amount: 2_500,
            currency: 156,
        },
    )
    .unwrap();
    let code = make_code(&user, &cred, 1_770_000_000, 12).unwrap();
    let i = inspect(&code.to_text(), &Patterns::default(), Some(1_770_000_030)).unwrap();
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["kind"], "p1_offline");
    assert_eq!(json["credential"]["issuer_key_id"], 4);
    assert_eq!(json["credential"]["user_id"], 77);
    assert_eq!(
        json["credential"]["user_pubkey"],
        user.public_key().to_hex()
    );
    assert_eq!(
        json["credential"]["issuer_sig"],
        hex::encode(cred.issuer_sig)
    );
    assert_eq!(json["credential"]["currency_alpha"], "CNY");
    assert_eq!(json["code"]["counter"], 12);
    assert_eq!(json["code"]["user_sig"], hex::encode(code.user_sig));
    assert_eq!(json["checks"]["user_signature_valid"], true);
    assert_eq!(json["checks"]["credential_valid_now"], true);
    assert_eq!(json["checks"]["code_age_s"], 30);
    let shown = i.to_string();
    assert!(shown.contains("25.00 CNY"), "{shown}");
    assert!(shown.contains("2026-02-02"), "{shown}");
    // Tampered counter: still inspectable, user signature reported invalid.
    let mut bad = code;
    bad.counter += 1;
    let i = inspect(&bad.to_text(), &Patterns::default(), None).unwrap();
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["checks"]["user_signature_valid"], false);
    assert!(json["checks"].get("code_age_s").is_none());
    // Malformed P1: an error that says why.
    let e = inspect("P1.AQID", &Patterns::default(), None).unwrap_err();
    assert!(matches!(e, CodeError::P1(_)), "{e:?}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn receipt_and_card_inspection() {
    let r = format_receipt_ref("POS-7", "123E4567-E89B-12D3-A456-426614174000");
    let i = inspect(&r, &Patterns::default(), None).unwrap();
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["terminal"], "POS-7");
    assert_eq!(json["txn_id"], "123e4567-e89b-12d3-a456-426614174000");

    let swipe =
        "%B4761739001010010^VISA/TEST^2512201000000000000?;4761739001010010=25122011143804489?";
    let i = inspect(swipe, &Patterns::default(), None).unwrap();
    let json = serde_json::to_value(&i).unwrap();
    assert_eq!(json["kind"], "card_track");
    assert_eq!(json["track1"], true);
    assert_eq!(json["track2"], true);
    assert_eq!(json["masked_pan"], "476173******0010");
    let rendered = format!("{}{}", serde_json::to_string(&i).unwrap(), i);
    assert!(!rendered.contains(PAN));
    assert!(!rendered.contains("VISA/TEST"));
}

#[test]
fn refusals_have_reasons() {
    let p = Patterns::default();
    let mpm = "00020101021129370016A000000677010111011300668012345675802TH530376463046197";
    let (short, long) = kind(mpm).refusal().unwrap();
    assert!(short.chars().count() <= 20);
    assert!(long.contains("merchant QR"));
    for (text, needle) in [
        ("", "empty"),
        ("abc\u{1b}[0m", "control character"),
        ("12345", "digits"),
        ("hQVDUFYwMQ==", "no application template"),
        ("hQVDUFYwMWEFTwOgAA==", "BER-TLV"),
        ("hQVDUFYwMmEA", "CPV01"),
    ] {
        let e = inspect(text, &p, None).unwrap_err();
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
    let huge = "7".repeat(5000);
    let e = inspect(&huge, &p, None).unwrap_err();
    assert!(e.to_string().contains("at most 4096"), "{e}");
    // A CPM-looking text that is not valid: explained, not "unknown".
    let e = inspect("hQVDUFYwMWEFTwSgAAA=", &p, None).unwrap_err();
    assert!(matches!(e, CodeError::Cpm(_)), "{e:?}");
    let _: Value = serde_json::to_value(inspect("134567890123456789", &p, None).unwrap()).unwrap();
}
