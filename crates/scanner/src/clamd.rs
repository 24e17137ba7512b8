//! ClamAV as a second engine, through the socket of a clamd already running on the host
//! (`INSTREAM`: the bytes go over the socket, so clamd needs no access to the file). clamd
//! unpacks what this scanner does not (PE packers such as UPX, 7z, rar, arj, cab, bzip2, OLE2
//! documents, PDF, RTF, mail encodings…) but reads at tens of MB/s, so it gets only the files
//! whose format it can open further, and the archives our reader could not: everything else
//! is searched by the rules alone.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// clamd's default StreamMaxLength; a larger stream is refused, so it is not sent.
pub const MAX_STREAM: usize = 25 << 20;
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Clamd {
    pub socket: PathBuf,
}

/// Magic numbers of the formats clamd opens and this scanner does not.
const MAGIC: &[&[u8]] = &[
    b"MZ",                               // PE (packed or not), SZDD-less installers
    b"7z\xbc\xaf\x27\x1c",               // 7-Zip
    b"Rar!\x1a\x07",                     // RAR
    b"\x60\xea",                         // ARJ
    b"MSCF",                             // Microsoft cabinet
    b"ISc(",                             // InstallShield cabinet
    b"BZh",                              // bzip2
    b"\xfd7zXZ\x00",                     // xz
    b"{\\rtf",                           // RTF
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", // OLE2: doc, xls, ppt, msi
    b"%PDF-",                            // PDF
    b"070701",                           // cpio (newc)
    b"070707",                           // cpio (odc)
    b"\xc7\x71",                         // cpio (binary, little-endian)
    b"\x71\xc7",                         // cpio (binary, big-endian)
    b"ITSF",                             // CHM
    b"SZDD",                             // MS compress
    b"\x78\x9f\x3e\x22",                 // TNEF (winmail.dat)
];

/// Symbian installers: their UID at offset 4.
const SIS_UID: &[u8] = b"\x12\x3a\x00\x10";

/// Text that carries an encoded program: mail, uuencode, BinHex, HTML.
const TEXT_MARKERS: &[&str] = &[
    "mime-version:",
    "content-transfer-encoding:",
    "\nbegin 6",
    "(this file must be converted with binhex",
    "<html",
    "<!doctype html",
    ";base64,",
];

/// Whether clamd should see `data`: a format it opens further than this scanner.
pub fn wants(data: &[u8]) -> bool {
    if MAGIC.iter().any(|m| data.starts_with(m)) || data.get(4..8) == Some(SIS_UID) {
        return true;
    }
    let head = &data[..data.len().min(1024)];
    if data.starts_with(b"From ") || data.starts_with(b"begin 6") {
        return true;
    }
    let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
    TEXT_MARKERS.iter().any(|m| lower.contains(m))
}

/// The clamd socket named by a clamd.conf text (`LocalSocket`), if any.
pub fn socket_in_conf(conf: &str) -> Option<PathBuf> {
    conf.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("LocalSocket"))
            .then(|| w.next().map(PathBuf::from))
            .flatten()
    })
}

/// The socket of the host's clamd, when one listens: the one /etc/clamav/clamd.conf names, or
/// Debian's and Red Hat's defaults.
pub fn find(root: &Path) -> Option<PathBuf> {
    let conf = std::fs::read_to_string(root.join("etc/clamav/clamd.conf"))
        .ok()
        .and_then(|c| socket_in_conf(&c));
    conf.into_iter()
        .chain(
            [
                "/run/clamav/clamd.ctl",
                "/var/run/clamav/clamd.ctl",
                "/run/clamd.scan/clamd.sock",
            ]
            .map(PathBuf::from),
        )
        .find(|p| {
            use std::os::unix::fs::FileTypeExt as _;
            std::fs::metadata(root.join(p.strip_prefix("/").unwrap_or(p)))
                .is_ok_and(|m| m.file_type().is_socket())
        })
}

impl Clamd {
    /// The signature clamd found in `data`, None when it found nothing.
    pub fn scan(&self, data: &[u8]) -> Result<Option<String>, String> {
        if data.len() > MAX_STREAM {
            return Ok(None);
        }
        let mut s = UnixStream::connect(&self.socket)
            .map_err(|e| format!("clamd at {}: {e}", self.socket.display()))?;
        let t = Some(Duration::from_secs(60));
        s.set_read_timeout(t)
            .and_then(|_| s.set_write_timeout(t))
            .map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| format!("clamd: {e}");
        s.write_all(b"zINSTREAM\0").map_err(io)?;
        for c in data.chunks(CHUNK) {
            s.write_all(&(c.len() as u32).to_be_bytes()).map_err(io)?;
            s.write_all(c).map_err(io)?;
        }
        s.write_all(&0u32.to_be_bytes()).map_err(io)?;
        let mut reply = Vec::new();
        s.take(4096).read_to_end(&mut reply).map_err(io)?;
        parse_reply(&String::from_utf8_lossy(&reply))
    }
}

/// `stream: OK`, `stream: <signature> FOUND` or an error.
pub fn parse_reply(reply: &str) -> Result<Option<String>, String> {
    let r = reply.trim_end_matches(['\0', '\n']).trim();
    let body = r.strip_prefix("stream:").map(str::trim).unwrap_or(r);
    if body == "OK" {
        Ok(None)
    } else if let Some(sig) = body.strip_suffix(" FOUND") {
        Ok(Some(sig.trim().to_string()))
    } else {
        Err(format!("clamd answered {r:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_formats_are_read() {
        assert_eq!(parse_reply("stream: OK\0"), Ok(None));
        assert_eq!(
            parse_reply("stream: Win.Test.EICAR_HDB-1 FOUND\0"),
            Ok(Some("Win.Test.EICAR_HDB-1".into()))
        );
        assert!(parse_reply("INSTREAM size limit exceeded. ERROR\0").is_err());
        assert!(wants(b"MZ\x90\x00rest"));
        assert!(wants(b"Received: x\nMIME-Version: 1.0\n"));
        assert!(!wants(b"\x7fELF\x02\x01"));
        assert!(!wants(b"#!/bin/sh\necho hi\n"));
        assert_eq!(
            socket_in_conf("# c\nLocalSocket /run/clamav/clamd.ctl\nUser clamav\n"),
            Some(PathBuf::from("/run/clamav/clamd.ctl"))
        );
        assert_eq!(socket_in_conf("TCPSocket 3310\n"), None);
    }
}
