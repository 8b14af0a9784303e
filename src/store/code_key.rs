//! The terminal's secret key for code digests (issue 15, `posd_core::code_guard`): 32 random
//! bytes in a file beside the journal, readable by the service user only, made once. Kept out
//! of the database so a copy of the journal says nothing about the codes in flight.

use super::StoreError;
use posd_core::code_guard::CodeKey;
use std::io::Write;
use std::path::Path;

/// The key file's name in the state directory.
pub const CODE_KEY_FILE: &str = "code-digest.key";

/// Reads the key, or makes it (0600, fsynced with its directory) on the first start.
pub fn load_or_create(dir: &Path) -> Result<CodeKey, StoreError> {
    let path = dir.join(CODE_KEY_FILE);
    let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", path.display()));
    match std::fs::read(&path) {
        Ok(bytes) => {
            let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                StoreError::BadRow(format!(
                    "{} holds {} bytes, not 32: remove it and start again (codes now in \
                     flight are then not recognised until they end)",
                    path.display(),
                    bytes.len()
                ))
            })?;
            Ok(CodeKey::from_bytes(arr))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            let mut bytes = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
            let tmp = dir.join(format!("{CODE_KEY_FILE}.tmp"));
            {
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io)?;
                f.write_all(&bytes).map_err(io)?;
                f.sync_all().map_err(io)?;
            }
            std::fs::rename(&tmp, &path).map_err(io)?;
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            let key = CodeKey::from_bytes(bytes);
            zeroize::Zeroize::zeroize(&mut bytes);
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_private_and_the_same_at_every_start() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(CODE_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(
            a.payment_code("134567890123456789"),
            b.payment_code("134567890123456789")
        );
        std::fs::write(dir.path().join(CODE_KEY_FILE), b"short").unwrap();
        assert!(load_or_create(dir.path()).is_err());
    }
}
