//! The host's own `crypt(3)` (libxcrypt), to test a candidate password against a shadow hash.
//!
//! Using the library that wrote the hashes means every scheme the host can verify at login
//! (yescrypt, sha512crypt, sha256crypt, md5crypt, bcrypt, ...) is covered, with exactly its
//! rules, and nothing of it is reimplemented here.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int, c_ulong, c_void};

/// `CRYPT_OUTPUT_SIZE` of <crypt.h>: the `output` field at the start of `struct crypt_data`.
const CRYPT_OUTPUT_SIZE: usize = 384;
/// `CRYPT_GENSALT_OUTPUT_SIZE` of <crypt.h>.
const CRYPT_GENSALT_OUTPUT_SIZE: usize = 192;
/// `sizeof(struct crypt_data)`: <crypt.h> fixes it at 32768 bytes for ABI stability.
const CRYPT_DATA_SIZE: usize = 32_768;

/// `struct crypt_data`, opaque. Its fields are all `char`, but the library casts its scratch
/// area to its own structures, so it gets the alignment malloc would have given it.
#[repr(C, align(16))]
struct CryptData([u8; CRYPT_DATA_SIZE]);

#[link(name = "crypt")]
unsafe extern "C" {
    fn crypt_rn(
        phrase: *const c_char,
        setting: *const c_char,
        data: *mut c_void,
        size: c_int,
    ) -> *mut c_char;
    fn crypt_gensalt_rn(
        prefix: *const c_char,
        count: c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
        output: *mut c_char,
        output_size: c_int,
    ) -> *mut c_char;
}

thread_local! {
    // 32 KiB is too much to put on the stack per call, and allocating it per candidate would
    // cost a page fault storm per hash; one zeroed block per thread, reused, is what
    // <crypt.h> asks for ("initialized" must be 0 before the first call).
    static DATA: RefCell<Box<CryptData>> = RefCell::new(zeroed_data());
}

fn zeroed_data() -> Box<CryptData> {
    // SAFETY: CryptData is a byte array, for which all-zero is a valid value.
    unsafe { Box::<CryptData>::new_zeroed().assume_init() }
}

/// `crypt_rn` on this thread's data block; `f` sees the result, which lives in that block.
/// `None` when the library refuses: the setting is not a hash it supports, or is malformed.
fn with_crypt<T>(phrase: &CStr, setting: &CStr, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
    DATA.with(|cell| {
        let mut data = cell.borrow_mut();
        // SAFETY: both strings are NUL-terminated; the data block is sizeof(struct crypt_data)
        // bytes, as the size argument says, and exclusively borrowed for the call.
        let out = unsafe {
            crypt_rn(
                phrase.as_ptr(),
                setting.as_ptr(),
                data.0.as_mut_ptr().cast(),
                CRYPT_DATA_SIZE as c_int,
            )
        };
        if out.is_null() {
            return None;
        }
        // SAFETY: on success crypt_rn returns a NUL-terminated string inside the data block,
        // which stays borrowed until `f` returns.
        let result = unsafe { CStr::from_ptr(out) }.to_bytes();
        let value = f(result);
        // The output is the hash of a candidate, not a secret, but it is also the hash of the
        // account's password when the candidate matched; leave nothing of it behind.
        data.0[..CRYPT_OUTPUT_SIZE].fill(0);
        Some(value)
    })
}

/// Whether `password` is the password of `hash`. `None` when this host's crypt cannot verify
/// `hash` at all (an unsupported or malformed setting), which a caller may want to report
/// instead of trying more candidates.
pub fn try_verify(password: &str, hash: &str) -> Option<bool> {
    let setting = CString::new(hash).ok()?;
    // A NUL cannot be typed at a password prompt, so no password contains one.
    let Ok(phrase) = CString::new(password) else {
        return Some(false);
    };
    with_crypt(&phrase, &setting, |out| {
        // Failure tokens ("*0", "*1") never match, even against a field that holds one.
        !out.starts_with(b"*") && !out.starts_with(b"!") && constant_time_eq(out, hash.as_bytes())
    })
}

/// Whether `password` is the password of `hash`; false for hashes this host cannot verify.
pub fn verify(password: &str, hash: &str) -> bool {
    try_verify(password, hash).unwrap_or(false)
}

/// A new hash of `password` in the scheme `prefix` names (`$y$`, `$6$`, `$5$`, `$1$`, `$2b$`)
/// at the library's default cost, with a fresh random salt. For fixtures and the benchmark;
/// the agent itself never writes hashes.
pub fn hash(password: &str, prefix: &str) -> Option<String> {
    let prefix = CString::new(prefix).ok()?;
    let phrase = CString::new(password).ok()?;
    let mut setting = [0u8; CRYPT_GENSALT_OUTPUT_SIZE];
    // SAFETY: prefix is NUL-terminated; null rbytes asks the library for OS randomness;
    // the output buffer is as large as the size argument says.
    let out = unsafe {
        crypt_gensalt_rn(
            prefix.as_ptr(),
            0,
            std::ptr::null(),
            0,
            setting.as_mut_ptr().cast(),
            CRYPT_GENSALT_OUTPUT_SIZE as c_int,
        )
    };
    if out.is_null() {
        return None;
    }
    let setting = CStr::from_bytes_until_nul(&setting).ok()?;
    with_crypt(&phrase, setting, |out| {
        (!out.starts_with(b"*")).then(|| String::from_utf8_lossy(out).into_owned())
    })
    .flatten()
}

/// Compares without an early exit, so the time taken does not tell how much of a hash a
/// candidate got right. Lengths are not secret: every hash of a scheme has the same length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMES: [&str; 5] = ["$y$", "$6$", "$5$", "$1$", "$2b$"];

    #[test]
    fn every_scheme_verifies_its_own_password_only() {
        for prefix in SCHEMES {
            let h = hash("correct horse", prefix).unwrap_or_else(|| panic!("{prefix}"));
            assert!(h.starts_with(prefix), "{prefix}");
            assert!(verify("correct horse", &h), "{prefix}");
            assert!(!verify("correct hors", &h), "{prefix}");
            assert!(!verify("correct horse ", &h), "{prefix}");
            assert!(!verify("", &h), "{prefix}");
            assert_eq!(try_verify("x", &h), Some(false), "{prefix}");
        }
    }

    #[test]
    fn salts_differ_between_hashes_of_one_password() {
        let a = hash("secret", "$6$").unwrap();
        let b = hash("secret", "$6$").unwrap();
        assert_ne!(a, b);
        assert!(verify("secret", &a) && verify("secret", &b));
    }

    #[test]
    fn fixed_vectors_of_other_tools() {
        // `openssl passwd -6 -salt saltsalt password` and `openssl passwd -1 -salt salt password`.
        let sha512 = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";
        assert!(verify("password", sha512));
        assert!(!verify("Password", sha512));
        assert!(verify("password", "$1$salt$qJH7.N4xYta3aEG/dfqo/0"));
    }

    #[test]
    fn locked_failure_and_garbage_settings_never_match() {
        let h = hash("pw", "$6$").unwrap();
        for setting in ["", "*", "*0", "*1", "!", "!!", "x", "$9$nope$", "*LK*"] {
            assert!(!verify("pw", setting), "{setting:?}");
            assert!(!verify("", setting), "{setting:?}");
        }
        assert!(
            !verify("pw", &format!("!{h}")),
            "a locked hash is not a setting"
        );
        assert_eq!(try_verify("pw", "$9$nope$"), None);
        assert_eq!(try_verify("pw", "a\0b"), None);
        assert!(!verify("p\0w", &h));
        assert!(hash("pw", "$nope$").is_none());
    }

    #[test]
    fn threads_use_their_own_data() {
        let h = hash("threaded", "$5$").unwrap();
        std::thread::scope(|s| {
            for i in 0..4 {
                let h = &h;
                s.spawn(move || {
                    for _ in 0..20 {
                        assert!(verify("threaded", h));
                        assert!(!verify(&format!("wrong{i}"), h));
                    }
                });
            }
        });
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
