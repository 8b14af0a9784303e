//! The manager PIN (DESIGN §1.5, §6): stored only as an argon2id hash, checked slowly on
//! purpose. Pure computation; the salt is the only OS randomness.
//!
//! Memory: argon2id's working memory is the hash's `m` cost (19 MiB with the defaults). Allocating
//! it per check from whatever thread runs the check left each allocator arena holding its own
//! copy (RSS 21 → 248 MB after ~20 checks, issue 14). [`PinVerifier`] owns one buffer and reuses
//! it: one long-lived verifier costs `m` KiB of RSS once, whatever the number of checks. Hashes
//! asking for more than [`MAX_PIN_MEMORY_KIB`] are refused, so a pushed or hand-edited hash cannot
//! make the box allocate without bound.

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The largest argon2 memory cost a PIN hash may ask for (KiB): 64 MiB, 3.4× the default. The
/// check holds this much at most, for the life of the daemon.
pub const MAX_PIN_MEMORY_KIB: u32 = 64 * 1024;

/// Why a PIN hash cannot be checked at all (as opposed to a wrong PIN).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinHashError {
    #[error("not an argon2 hash: make one with `posctl manager hash-pin`")]
    NotArgon2,
    #[error(
        "the PIN hash asks for {0} KiB of memory, more than the {MAX_PIN_MEMORY_KIB} KiB a terminal \
         allows: make one with `posctl manager hash-pin`"
    )]
    TooCostly(u32),
}

/// The parameters of a PIN hash, checked (config validation and [`PinVerifier`]).
pub fn pin_hash_params(hash: &str) -> Result<Params, PinHashError> {
    let h = PasswordHash::new(hash).map_err(|_| PinHashError::NotArgon2)?;
    Algorithm::try_from(h.algorithm).map_err(|_| PinHashError::NotArgon2)?;
    let p = Params::try_from(&h).map_err(|_| PinHashError::NotArgon2)?;
    if h.hash.is_none() || h.salt.is_none() {
        return Err(PinHashError::NotArgon2);
    }
    if p.m_cost() > MAX_PIN_MEMORY_KIB {
        return Err(PinHashError::TooCostly(p.m_cost()));
    }
    Ok(p)
}

/// Checks PINs with one reused argon2 working buffer (see the module note). Keep one per
/// process, on the thread that checks PINs.
#[derive(Default)]
pub struct PinVerifier {
    blocks: Vec<Block>,
}

impl PinVerifier {
    pub fn new() -> PinVerifier {
        PinVerifier::default()
    }

    /// The working memory this verifier holds, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }

    /// The address range of the working memory, so the shell can hand its pages back to the OS
    /// between checks (`madvise(MADV_DONTNEED)`: the pages read as zero afterwards, which also
    /// wipes what the PIN left there).
    pub fn memory_range(&self) -> std::ops::Range<usize> {
        let start = self.blocks.as_ptr() as usize;
        start..start + self.memory_bytes()
    }

    /// True when `pin` matches `hash` (constant-time comparison of the outputs).
    pub fn verify(&mut self, pin: &str, hash: &str) -> Result<bool, PinHashError> {
        let params = pin_hash_params(hash)?;
        let h = PasswordHash::new(hash).map_err(|_| PinHashError::NotArgon2)?;
        let algorithm = Algorithm::try_from(h.algorithm).map_err(|_| PinHashError::NotArgon2)?;
        let version = match h.version {
            Some(v) => Version::try_from(v).map_err(|_| PinHashError::NotArgon2)?,
            None => Version::default(),
        };
        let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
            return Err(PinHashError::NotArgon2);
        };
        let mut salt_buf = [0u8; 64];
        let salt = salt
            .decode_b64(&mut salt_buf)
            .map_err(|_| PinHashError::NotArgon2)?;
        let need = params.block_count();
        if self.blocks.len() < need {
            self.blocks.resize(need, Block::default());
        }
        let argon = Argon2::new(algorithm, version, params);
        let mut out = [0u8; Output::MAX_LENGTH];
        let out = &mut out[..expected.len()];
        argon
            .hash_password_into_with_memory(pin.as_bytes(), salt, out, &mut self.blocks[..need])
            .map_err(|_| PinHashError::NotArgon2)?;
        let got = Output::new(out).map_err(|_| PinHashError::NotArgon2)?;
        Ok(got == expected)
    }
}

/// Checks a PIN against an argon2 PHC hash with a one-off buffer (slow on purpose: run off the
/// async threads). The daemon uses a long-lived [`PinVerifier`] instead.
pub fn verify_pin(pin: &str, hash: &str) -> bool {
    PinVerifier::new().verify(pin, hash).unwrap_or(false)
}

/// Makes the argon2id PHC hash of a PIN (`posctl manager hash-pin`).
pub fn hash_pin(pin: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut salt)
        .map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_hash_round_trip() {
        let h = hash_pin("4711").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_pin("4711", &h));
        assert!(!verify_pin("4712", &h));
        assert!(!verify_pin("4711", "not a hash"));
    }

    #[test]
    fn verifier_agrees_with_the_crate_and_reuses_its_buffer() {
        use argon2::password_hash::PasswordVerifier;
        let h = hash_pin("2580").unwrap();
        let mut v = PinVerifier::new();
        for (pin, want) in [("2580", true), ("2581", false), ("", false), ("2580", true)] {
            let crate_says = Argon2::default()
                .verify_password(pin.as_bytes(), &PasswordHash::new(&h).unwrap())
                .is_ok();
            assert_eq!(crate_says, want);
            assert_eq!(v.verify(pin, &h), Ok(want), "{pin}");
        }
        // The default m cost (19 MiB), allocated once.
        assert_eq!(v.memory_bytes(), 19 * 1024 * 1024);
    }

    #[test]
    fn a_known_argon2id_vector_verifies() {
        // The reference implementation's answer for "password" / "somesalt", t=2, m=2^16, p=1
        // (`echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1 -l 32 -e`; also in the
        // argon2 crate's tests/kat.rs).
        let h = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        let mut v = PinVerifier::new();
        assert_eq!(v.verify("password", h), Ok(true));
        assert_eq!(v.verify("passwore", h), Ok(false));
    }

    #[test]
    fn costly_or_broken_hashes_are_refused_not_allocated() {
        let mut v = PinVerifier::new();
        let big = "$argon2id$v=19$m=1048576,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert_eq!(v.verify("x", big), Err(PinHashError::TooCostly(1_048_576)));
        assert_eq!(
            v.verify("x", "$argon2id$v=19$m=19456"),
            Err(PinHashError::NotArgon2)
        );
        assert_eq!(v.verify("x", "plain"), Err(PinHashError::NotArgon2));
        assert_eq!(v.memory_bytes(), 0);
    }
}
