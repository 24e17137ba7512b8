//! Hash indicators: lists of SHA-256 and MD5 digests of known-bad files, one per line, each
//! with an optional name (`<hex> [name]`, `#` starts a comment). A malformed line refuses the
//! whole list, naming the list and the line.

use std::collections::HashMap;

#[derive(Debug, Default, Clone)]
pub struct Indicators {
    sha256: HashMap<[u8; 32], String>,
    md5: HashMap<[u8; 16], String>,
}

impl Indicators {
    /// Adds the list `text` called `source`.
    pub fn add(&mut self, source: &str, text: &str) -> Result<usize, String> {
        let mut sha = Vec::new();
        let mut md5 = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (hex, name) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let name = if name.trim().is_empty() {
                format!("{source} indicator")
            } else {
                name.trim().to_string()
            };
            let bytes = hex::decode(hex)
                .map_err(|e| format!("{source}:{}: {hex:?} is not hexadecimal ({e})", i + 1))?;
            match bytes.len() {
                32 => sha.push((bytes.try_into().expect("32 bytes"), name)),
                16 => md5.push((bytes.try_into().expect("16 bytes"), name)),
                n => {
                    return Err(format!(
                        "{source}:{}: {n} bytes is neither SHA-256 (32) nor MD5 (16)",
                        i + 1
                    ));
                }
            }
        }
        let n = sha.len() + md5.len();
        self.sha256.extend(sha);
        self.md5.extend(md5);
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.sha256.len() + self.md5.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty() && self.md5.is_empty()
    }

    /// The name of the indicator `data` matches, if any.
    pub fn matches(&self, sha256: &[u8; 32], data: &[u8]) -> Option<(&'static str, &str)> {
        if let Some(n) = self.sha256.get(sha256) {
            return Some(("sha256", n));
        }
        if self.md5.is_empty() {
            return None;
        }
        use md5::Digest as _;
        let m: [u8; 16] = md5::Md5::digest(data).into();
        self.md5.get(&m).map(|n| ("md5", n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_bad_lines_are_named() {
        let mut i = Indicators::default();
        let sha = "a".repeat(64);
        let text = format!("# known bad\n{sha} Evil.Dropper\n\n{} \n", "b".repeat(32));
        assert_eq!(i.add("feed.txt", &text), Ok(2));
        let e = i.add("feed.txt", "abc\n").unwrap_err();
        assert!(e.starts_with("feed.txt:1:"), "{e}");
        let e = i.add("feed.txt", &format!("{sha}\nzz\n")).unwrap_err();
        assert!(e.starts_with("feed.txt:2:"), "{e}");
        let mut s = [0u8; 32];
        s.fill(0xaa);
        assert_eq!(i.matches(&s, b""), Some(("sha256", "Evil.Dropper")));
    }
}
