//! Whether a file's content looks encrypted: a sample of its first bytes with the Shannon
//! entropy random data of that length has, and no magic number of a format that is dense
//! anyway (archives, compressed streams, media). Text, office XML, databases and executables
//! stay far below; what ransomware writes (and `openssl enc`'s `Salted__` stream) does not.

/// Bytes read from the start of a file.
pub const SAMPLE: usize = 64 * 1024;
/// Below this a sample says too little: even random bytes score low.
pub const MIN_SAMPLE: usize = 256;

/// Bits per byte, 0 to 8.
pub fn shannon(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// The entropy a sample of `n` bytes must reach: what `n` random bytes score (8 bits less the
/// estimator's bias, 255 / (2 n ln 2)), less a margin; at most 7.5.
pub fn threshold(n: usize) -> f64 {
    let bias = 255.0 / (2.0 * n as f64 * std::f64::consts::LN_2);
    (8.0 - bias - 0.35).min(7.5)
}

/// Formats whose content is dense by design, by their first bytes.
const DENSE: &[&[u8]] = &[
    b"\x1f\x8b",             // gzip
    b"PK\x03\x04",           // zip, docx, xlsx, jar
    b"\x89PNG",              // png
    b"\xff\xd8\xff",         // jpeg
    b"\xfd7zXZ",             // xz
    b"\x28\xb5\x2f\xfd",     // zstd
    b"BZh",                  // bzip2
    b"7z\xbc\xaf\x27\x1c",   // 7-zip
    b"Rar!",                 // rar
    b"OggS",                 // ogg
    b"RIFF",                 // webp, wav, avi
    b"GIF8",                 // gif
    b"%PDF",                 // pdf (compressed streams)
    b"\x04\x22\x4d\x18",     // lz4
    b"-----BEGIN PGP",       // armoured, but written on purpose
    b"\x00\x00\x00\x18ftyp", // mp4
    b"\x00\x00\x00\x20ftyp",
    b"\x1a\x45\xdf\xa3", // matroska, webm
];

pub fn dense_format(head: &[u8]) -> bool {
    DENSE.iter().any(|m| head.starts_with(m))
}

/// Whether `sample` (a file's first bytes, at most [`SAMPLE`]) looks encrypted.
pub fn looks_encrypted(sample: &[u8]) -> bool {
    sample.len() >= MIN_SAMPLE
        && !dense_format(sample)
        && shannon(sample) >= threshold(sample.len())
}

/// Reads a file's first [`SAMPLE`] bytes.
pub fn sample(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = Vec::with_capacity(8192);
    std::fs::File::open(path)?
        .take(SAMPLE as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize) -> Vec<u8> {
        (0..n).map(|_| rand::random::<u8>()).collect()
    }

    #[test]
    fn random_bytes_pass_at_every_length_and_text_formats_never_do() {
        for n in [256, 300, 1024, 4096, 65536] {
            for _ in 0..50 {
                let r = random(n);
                assert!(
                    looks_encrypted(&r),
                    "{n} random bytes: {} < {}",
                    shannon(&r),
                    threshold(n)
                );
            }
        }
        let text =
            "Quarterly report, region north: revenue 1,204,330; costs 880,120.\n".repeat(200);
        assert!(!looks_encrypted(text.as_bytes()));
        // Base64 (6 bits a byte) and hex stay below as well.
        let b64: String = random(6000)
            .chunks(3)
            .map(|c| format!("{:02x}{:02x}", c[0], c[c.len() - 1]))
            .collect();
        assert!(!looks_encrypted(b64.as_bytes()));
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let base64: Vec<u8> = random(8000)
            .iter()
            .map(|b| alphabet[(*b as usize) % 64])
            .collect();
        assert!(
            !looks_encrypted(&base64),
            "base64 scores {}",
            shannon(&base64)
        );
        // A sample too small to tell, and dense formats, are not counted.
        assert!(!looks_encrypted(&random(200)));
        let mut gz = b"\x1f\x8b\x08\x00".to_vec();
        gz.extend(random(5000));
        assert!(!looks_encrypted(&gz));
        // What `openssl enc` writes: a magic of its own, then ciphertext.
        let mut salted = b"Salted__".to_vec();
        salted.extend(random(4000));
        assert!(looks_encrypted(&salted));
    }
}
