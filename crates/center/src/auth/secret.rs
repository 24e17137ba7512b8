//! Random secrets and their at-rest form. Secrets are 256-bit random, so SHA-256 is enough to
//! store them (no slow hash needed); only the hash and a short display prefix are kept.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const API_TOKEN_PREFIX: &str = "hwa_";
pub const ENROLLMENT_TOKEN_PREFIX: &str = "hwe_";
/// Characters of a secret kept for display: the type prefix plus 8 random characters.
const DISPLAY_CHARS: usize = 12;

/// 32 random bytes, base64url without padding (43 characters).
pub fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// SHA-256 of the secret, lower-case hex: the form stored and looked up.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// What may be shown of a secret after creation.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(DISPLAY_CHARS).collect()
}

/// A new API token: `hwa_<43 random chars>`.
pub fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", random_secret())
}

/// A new enrollment token: `hwe_<43 random chars>`.
pub fn new_enrollment_token() -> String {
    format!("{ENROLLMENT_TOKEN_PREFIX}{}", random_secret())
}

/// Equality whose time does not depend on where the inputs differ, for CSRF tokens.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_prefix_and_enough_randomness() {
        let t = new_api_token();
        assert!(t.starts_with("hwa_"), "{t}");
        assert_eq!(t.len(), 4 + 43);
        assert!(
            t[4..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{t}"
        );
        let e = new_enrollment_token();
        assert!(e.starts_with("hwe_") && e.len() - 4 >= 32, "{e}");
        assert_ne!(new_api_token(), new_api_token());
        assert_eq!(display_prefix(&t).len(), 12);
        assert!(t.starts_with(&display_prefix(&t)));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
