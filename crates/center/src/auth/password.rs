//! Argon2id password hashes. Hashing costs tens of milliseconds of CPU, so it runs on the
//! blocking pool, never on an async worker.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::api::ApiError;

pub const MIN_PASSWORD_LEN: usize = 12;
/// Argon2 input is bounded so a huge body cannot buy a long hash.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Checks a password a user is about to set. `field` names it in the error.
pub fn validate_new_password(field: &str, password: &str) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(ApiError::invalid_body(format!(
            "{field}: must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::invalid_body(format!(
            "{field}: must be at most {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// A random password for accounts created without one (first admin, CLI resets): 24 characters
/// of base64url, 144 bits.
pub fn random_password() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}

/// Argon2id PHC string (`$argon2id$v=19$…`) with a random salt.
pub async fn hash_password(password: &str) -> Result<String, ApiError> {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || hash_blocking(&pw))
        .await
        .map_err(|e| ApiError::internal(format!("password hashing task: {e}")))?
}

fn hash_blocking(password: &str) -> Result<String, ApiError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("password hashing: {e}")))
}

/// Whether `password` matches the PHC string. A malformed stored hash is a mismatch.
pub async fn verify_password(password: &str, phc: &str) -> bool {
    let (pw, phc) = (password.to_string(), phc.to_string());
    tokio::task::spawn_blocking(move || verify_blocking(&pw, &phc))
        .await
        .unwrap_or(false)
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    PasswordVerifier::<str>::verify_password(&Argon2::default(), password.as_bytes(), phc).is_ok()
}

/// Spends the same work as a real check when the user does not exist, so response time does not
/// tell which usernames are real.
pub async fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let pw = password.to_string();
    let _ = tokio::task::spawn_blocking(move || {
        let phc = DUMMY
            .get_or_init(|| hash_blocking(&super::secret::random_secret()).unwrap_or_default());
        verify_blocking(&pw, phc)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_round_trip() {
        let h = hash_password("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h).await);
        assert!(!verify_password("correct horse batterY", &h).await);
        assert!(!verify_password("x", "not a phc string").await);
        assert_ne!(
            h,
            hash_password("correct horse battery").await.unwrap(),
            "salted"
        );
    }

    #[test]
    fn new_passwords_need_twelve_characters() {
        let err = validate_new_password("password", "short").unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            err.message.contains("password") && err.message.contains("12"),
            "{}",
            err.message
        );
        assert!(validate_new_password("password", "twelve chars").is_ok());
    }
}
