//! Secrets the center must read back (TOTP seeds, notification channels' SMTP passwords and
//! webhook signing secrets), sealed at rest: ChaCha20-Poly1305 under a
//! key in the data directory (`secrets.key`, 32 random bytes, 0600, made on first use). The
//! database alone then gives no seed away; replicas share the key as they share the CA, through
//! the data directory. The sealed form is base64url of nonce then ciphertext and tag.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

const KEY_FILE: &str = "secrets.key";
const KEY_LEN: usize = 32;

/// The data directory's sealing key, made (0600, never replaced) when there is none.
fn key(data_dir: &Path) -> Result<LessSafeKey, String> {
    let path = data_dir.join(KEY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let fresh: [u8; KEY_LEN] = rand::random();
            let made = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(&fresh).and_then(|()| f.sync_all()));
            match made {
                Ok(()) => fresh.to_vec(),
                // Another replica made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if bytes.len() != KEY_LEN {
        return Err(format!(
            "{}: {} bytes, a sealing key has {KEY_LEN}",
            path.display(),
            bytes.len()
        ));
    }
    UnboundKey::new(&CHACHA20_POLY1305, &bytes)
        .map(LessSafeKey::new)
        .map_err(|_| "the sealing key was refused".to_string())
}

pub fn seal(data_dir: &Path, plain: &[u8]) -> Result<String, String> {
    let key = key(data_dir)?;
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce_bytes),
        Aad::empty(),
        &mut buf,
    )
    .map_err(|_| "sealing failed".to_string())?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&buf);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

pub fn open(data_dir: &Path, sealed: &str) -> Result<Vec<u8>, String> {
    let key = key(data_dir)?;
    let raw = URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| "a sealed secret that is not base64url".to_string())?;
    if raw.len() < NONCE_LEN {
        return Err("a sealed secret too short for its nonce".into());
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_string())?;
    let mut buf = rest.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .map_err(|_| {
            "a sealed secret that does not open under this data directory's key".to_string()
        })?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn sealed_secrets_open_only_under_their_key_file() {
        let a = tempfile::tempdir().unwrap();
        let s = seal(a.path(), b"seed").unwrap();
        assert_ne!(
            seal(a.path(), b"seed").unwrap(),
            s,
            "a fresh nonce each time"
        );
        assert_eq!(open(a.path(), &s).unwrap(), b"seed");
        let mode = std::fs::metadata(a.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = tempfile::tempdir().unwrap();
        assert!(open(b.path(), &s).is_err(), "another key");
        let mut t = s.clone();
        t.replace_range(20..21, if &s[20..21] == "A" { "B" } else { "A" });
        assert!(open(a.path(), &t).is_err(), "tampered");
        std::fs::write(a.path().join(KEY_FILE), b"short").unwrap();
        assert!(seal(a.path(), b"x").unwrap_err().contains("bytes"));
    }
}
