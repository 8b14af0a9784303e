//! One code, one sale (issue 15): the name under which a payment code or card is "in flight".
//!
//! A customer-presented code (or a card's PAN) that already pays a transaction talking to the
//! host must not start a second sale — after a crash least of all. The journal never holds a
//! code in clear (only `code_masked`), so the in-flight index is keyed by a digest:
//! HMAC-SHA256 under a terminal-local secret key ([`CodeKey`]), not a plain SHA-256.
//!
//! Why keyed: the row also holds the masked code (first 4 and last 4 characters of a payment
//! code; first 6 and last 4 digits of a PAN), which leaves 10^10 candidates for an 18-digit
//! WeChat code and about 10^5 for a 16-digit PAN after Luhn — a plain SHA-256 of either is
//! reversed in seconds by anyone holding a copy of the database. Under a key kept outside the
//! database (a 0600 file beside it) the digest says nothing without the key. The digest also
//! lives only while its transaction is in flight: it is deleted in the SQLite transaction that
//! makes the transaction final, so the history holds none.
//!
//! Pure: the key is passed in; the shell creates and stores it.

use ring::hmac;
use zeroize::Zeroize;

/// A digest naming one code or card (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeDigest(pub [u8; 32]);

/// The terminal's secret key for code digests. Wiped on drop; `Debug` shows nothing.
pub struct CodeKey {
    bytes: [u8; 32],
    key: hmac::Key,
}

impl CodeKey {
    pub fn from_bytes(bytes: [u8; 32]) -> CodeKey {
        CodeKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            bytes,
        }
    }

    fn digest(&self, kind: &str, text: &str) -> CodeDigest {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"posd-code-v1\0");
        ctx.update(kind.as_bytes());
        ctx.update(b"\0");
        ctx.update(text.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        CodeDigest(out)
    }

    /// A customer-presented code as scanned (a trailing CR/LF does not make another code).
    pub fn payment_code(&self, code: &str) -> CodeDigest {
        self.digest("code", code.trim_end_matches(['\r', '\n']))
    }

    /// A card, by its PAN alone: the same card swiped again is the same card.
    pub fn card(&self, pan: &str) -> CodeDigest {
        self.digest("card", pan)
    }
}

impl Clone for CodeKey {
    fn clone(&self) -> CodeKey {
        CodeKey::from_bytes(self.bytes)
    }
}

impl Drop for CodeKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_code_has_the_same_digest_under_one_key_only() {
        let k = CodeKey::from_bytes([7; 32]);
        let code = "134567890123456733";
        assert_eq!(k.payment_code(code), k.payment_code(&format!("{code}\r\n")));
        assert_ne!(k.payment_code(code), k.payment_code("134567890123456734"));
        // Another terminal's key: another digest (nothing to compare across boxes).
        let other = CodeKey::from_bytes([8; 32]);
        assert_ne!(k.payment_code(code), other.payment_code(code));
        // A card and a code with the same digits are different things.
        assert_ne!(
            k.card("4111111111111111"),
            k.payment_code("4111111111111111")
        );
    }

    #[test]
    fn the_digest_is_hmac_sha256_not_a_plain_hash() {
        use sha2::{Digest, Sha256};
        let k = CodeKey::from_bytes([1; 32]);
        let plain: [u8; 32] = Sha256::digest(b"posd-code-v1\x00code\x00134567890123456789").into();
        assert_ne!(k.payment_code("134567890123456789").0, plain);
        assert_eq!(format!("{k:?}"), "CodeKey(..)");
    }
}
