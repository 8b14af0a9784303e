//! The host's signing key file (`posd-sandbox host-key keygen`, `posd-sandbox host --host-key`):
//! JSON `{"id": u32, "private_key": "<64 hex: the Ed25519 seed>", "public_key": "<64 hex>"}`,
//! written readable by its owner only. The public half goes into every terminal's
//! `[[broker.host_keys]]`.

use posd_core::protocol::signed::HostSigner;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    id: u32,
    private_key: String,
    public_key: String,
}

/// The key file's text for `signer`.
pub fn signing_key_file(signer: &HostSigner) -> String {
    let f = KeyFile {
        id: signer.key_id,
        private_key: signer.seed_hex(),
        public_key: signer.public_hex(),
    };
    serde_json::to_string_pretty(&f).unwrap_or_default() + "\n"
}

/// Reads a key file; the message names the file and what is wrong with it.
pub fn read_signing_key(path: &Path) -> Result<HostSigner, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let f: KeyFile = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a host key file (posd-sandbox host-key keygen): {e}",
            path.display()
        )
    })?;
    let seed: [u8; 32] = hex::decode(f.private_key.trim())
        .ok()
        .and_then(|b| b.as_slice().try_into().ok())
        .ok_or_else(|| format!("{}: private_key is not 64 hex digits", path.display()))?;
    let signer = HostSigner::from_seed(f.id, &seed);
    if !signer
        .public_hex()
        .eq_ignore_ascii_case(f.public_key.trim())
    {
        return Err(format!(
            "{}: public_key does not belong to private_key",
            path.display()
        ));
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_mismatches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        let s = HostSigner::from_seed(3, &[5; 32]);
        std::fs::write(&path, signing_key_file(&s)).unwrap();
        let back = read_signing_key(&path).unwrap();
        assert_eq!((back.key_id, back.public_hex()), (3, s.public_hex()));
        let other = HostSigner::from_seed(3, &[6; 32]);
        let text = signing_key_file(&s).replace(&s.public_hex(), &other.public_hex());
        std::fs::write(&path, text).unwrap();
        assert!(read_signing_key(&path)
            .unwrap_err()
            .contains("does not belong"));
        std::fs::write(&path, "{}").unwrap();
        assert!(read_signing_key(&path)
            .unwrap_err()
            .contains("not a host key file"));
    }
}
