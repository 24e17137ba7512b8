//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP: HMAC-SHA1, 30-second steps,
//! six digits), as every authenticator app computes them, and the recovery codes that stand in
//! for a lost phone. Pure: the caller gives the time and the last step used, and stores what a
//! check returns so a code is never accepted twice.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Steps accepted either side of the current one: a phone's clock a little off still works.
pub const SKEW_STEPS: i64 = 1;
/// Recovery codes issued when two-factor sign-in is turned on.
pub const RECOVERY_CODES: usize = 10;
const DIGITS: u32 = 6;

/// RFC 4226's HOTP value of `counter` under `key`.
pub fn hotp(key: &[u8], counter: u64) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    bin % 10u32.pow(DIGITS)
}

/// The step a Unix time falls in.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

/// The six-digit code of the step `unix` falls in.
pub fn code_at(key: &[u8], unix: i64) -> String {
    format!("{:06}", hotp(key, step_of(unix).max(0) as u64))
}

/// The step `code` belongs to, if it is a code of a step near `now` later than `last_step`
/// (the last one accepted: a code is good once). Spaces in the code are ignored.
pub fn check(key: &[u8], code: &str, now: i64, last_step: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let want: u32 = code.parse().ok()?;
    let now_step = step_of(now);
    (now_step - SKEW_STEPS..=now_step + SKEW_STEPS)
        .filter(|s| *s > last_step && *s >= 0)
        .find(|s| {
            super::secret::constant_time_eq(
                &hotp(key, *s as u64).to_be_bytes(),
                &want.to_be_bytes(),
            )
        })
}

/// A new random secret: 160 bits, RFC 4226's recommended length.
pub fn new_secret() -> Vec<u8> {
    let mut key = vec![0u8; 20];
    rand::rng().fill(&mut key[..]);
    key
}

/// The secret as authenticator apps take it typed in: base32 without padding.
pub fn base32(key: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(key)
}

/// The `otpauth://` URI an app imports (from a QR code or pasted): issuer and account named.
pub fn otpauth_uri(issuer: &str, account: &str, key: &[u8]) -> String {
    let enc = crate::web::page::enc;
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        base32(key),
        enc(issuer)
    )
}

/// Fresh recovery codes, `xxxxx-xxxxx` from an alphabet without look-alikes (50 bits each).
pub fn recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut s: String = (0..10)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            s.insert(5, '-');
            s
        })
        .collect()
}

/// A recovery code as typed, in its stored form: lower case, no spaces or dashes.
pub fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B (SHA-1 key), six digits of its eight.
    #[test]
    fn rfc_6238_test_vectors() {
        let key = b"12345678901234567890";
        for (t, want) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at(key, t), want, "T = {t}");
        }
        // RFC 4226 appendix D, counter 0 and 9.
        assert_eq!(hotp(key, 0), 755_224);
        assert_eq!(hotp(key, 9), 520_489);
    }

    #[test]
    fn a_code_is_good_once_and_only_near_its_time() {
        let key = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&key, now);
        let step = check(&key, &code, now, 0).expect("the current code");
        assert_eq!(step, step_of(now));
        assert_eq!(check(&key, &code, now, step), None, "used already");
        assert!(
            check(&key, &code_at(&key, now - 30), now, 0).is_some(),
            "one step of skew"
        );
        assert_eq!(
            check(&key, &code_at(&key, now - 90), now, 0),
            None,
            "too old"
        );
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(check(&key, &spaced, now, 0).is_some());
        for bad in ["", "12345", "1234567", "abcdef"] {
            assert_eq!(check(&key, bad, now, 0), None, "{bad}");
        }
    }

    #[test]
    fn secrets_uris_and_recovery_codes() {
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = otpauth_uri("Hostward", "ada@center", b"12345678901234567890");
        assert!(
            uri.starts_with("otpauth://totp/Hostward:ada%40center?secret=GEZDGNBV"),
            "{uri}"
        );
        let codes = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
        );
        assert_eq!(normalize_recovery(" ABCDE-fghjk "), "abcdefghjk");
        assert_eq!(new_secret().len(), 20);
    }
}
