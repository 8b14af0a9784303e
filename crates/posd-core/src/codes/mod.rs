//! Payment codes: everything posd reads from a scanner or shows as a QR, as pure functions.
//!
//! Why it exists: DESIGN §2 asks for a core with no I/O. Every scanned text enters posd through
//! [`classify()`], and every format posd reads or writes — wallet payment codes, EMVCo
//! consumer-presented (BER-TLV) and merchant-presented (EMV MPM) payloads, the `P1` offline code,
//! receipt references, magnetic-stripe swipes — is parsed, generated and checked here, with time
//! passed in as `now` and configuration passed in as values. Nothing here touches a file, a
//! socket or the clock, so all of it is unit-tested, property-tested and fuzzed (`fuzz/`).
//!
//! Map:
//! - [`mod@classify`]: scan → [`CodeKind`] (routing), sanitising, configurable [`Patterns`];
//! - [`tlv`] and [`cpm`]: BER-TLV codec and the EMVCo CPM payload (DESIGN §1.1);
//! - [`emv_mpm`]: EMVCo MPM parse and dynamic generation (DESIGN §1.3);
//! - [`p1`] and [`offline`]: the `P1` offline code, its wallet side, and the acceptance rules
//!   (DESIGN §1.2);
//! - [`currency`]: ISO 4217 alpha/numeric/exponent;
//! - [`mod@inspect`] / [`inspect()`]: `posctl code inspect`.

pub mod classify;
pub mod cpm;
pub mod currency;
pub mod emv_mpm;
pub mod inspect;
pub mod offline;
pub mod p1;
pub mod tlv;

pub use classify::{
    classify, format_receipt_ref, Classified, ClassifyError, CodeKind, OtherTerminal, PatternError,
    Patterns, PatternsConfig, ReceiptRef,
};
pub use currency::Currency;
pub use emv_mpm::{generate_dynamic, GenerateError, MpmError, MpmMerchant, MpmPayload};
pub use inspect::{inspect, CodeError, Inspection};
pub use offline::{
    check_offline_acceptance, verify_p1, IssuerKeyConfig, IssuerKeys, OfflineLimits, OfflinePolicy,
    OfflineReject, OfflineState, VerifiedP1,
};
pub use p1::{
    issue_credential, make_code, sign_credential, Credential, CredentialRequest, P1Code, P1Error,
    PrivateKey, PublicKey,
};
