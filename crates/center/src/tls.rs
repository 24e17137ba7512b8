//! The center's certificate files: created on first start, loaded afterwards.
//!
//! Replicas of one installation must share these files (same CA), e.g. from a shared secret
//! volume; each replica's database rows trust only agents issued by that CA.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use hostward_pki::Ca;

use crate::state::CenterPki;

/// Writes `contents` to `path` atomically with the given mode (0600 for keys).
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Whether a changed list of server names may replace the server certificate. Only `serve`
/// may: an admin command replacing it would leave the running center serving a key that no
/// longer matches the pin in the install commands it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reissue {
    OnNameChange,
    Never,
}

/// Loads the CA and server certificate from `data_dir`, creating what is missing.
pub fn load_or_create(
    data_dir: &Path,
    names: &[String],
    reissue: Reissue,
) -> anyhow::Result<CenterPki> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    let (ca_crt, ca_key) = (data_dir.join("ca.crt"), data_dir.join("ca.key"));
    let ca = if ca_crt.exists() && ca_key.exists() {
        Ca::load(&read(&ca_crt)?, &read(&ca_key)?).context("loading the CA")?
    } else {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let (ca, files) =
            Ca::generate(&format!("Hostward CA {host}")).context("creating the CA")?;
        write_file(&ca_key, files.key_pem.as_bytes(), 0o600)?;
        write_file(&ca_crt, files.cert_pem.as_bytes(), 0o644)?;
        tracing::info!(fingerprint = %ca.fingerprint(), "created a new certificate authority");
        ca
    };
    let (srv_crt, srv_key, srv_names) = (
        data_dir.join("server.crt"),
        data_dir.join("server.key"),
        data_dir.join("server.names"),
    );
    let wanted = names.join("\n");
    let current = std::fs::read_to_string(&srv_names).unwrap_or_default();
    let present = srv_crt.exists() && srv_key.exists();
    if !present || (reissue == Reissue::OnNameChange && current != wanted) {
        let issued = ca
            .issue_server_cert(names)
            .context("issuing the server certificate")?;
        write_file(&srv_key, issued.key_pem.as_bytes(), 0o600)?;
        write_file(&srv_crt, issued.cert_pem.as_bytes(), 0o644)?;
        write_file(&srv_names, wanted.as_bytes(), 0o644)?;
        tracing::info!(names = ?names, "issued the server certificate");
    }
    let server_cert = read(&srv_crt)?;
    let spki = hostward_pki::spki_sha256_base64(&server_cert)?;
    Ok(CenterPki {
        ca_fingerprint: ca.fingerprint(),
        spki_pin: format!("sha256//{spki}"),
        chain_pem: format!("{server_cert}{}", ca.cert_pem()),
        server_key_pem: read(&srv_key)?,
        ca,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_and_reloaded_not_regenerated() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = load_or_create(dir.path(), &names, Reissue::OnNameChange).unwrap();
        for key in ["ca.key", "server.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
        let again = load_or_create(dir.path(), &names, Reissue::OnNameChange).unwrap();
        assert_eq!(first.ca_fingerprint, again.ca_fingerprint);
        assert_eq!(first.spki_pin, again.spki_pin);
        let other = ["hostward.example".to_string()];
        let kept = load_or_create(dir.path(), &other, Reissue::Never).unwrap();
        assert_eq!(
            first.chain_pem, kept.chain_pem,
            "admin commands never replace the served certificate"
        );
        let renamed = load_or_create(dir.path(), &other, Reissue::OnNameChange).unwrap();
        assert_eq!(
            first.ca_fingerprint, renamed.ca_fingerprint,
            "CA survives a rename"
        );
        assert_ne!(
            first.chain_pem, renamed.chain_pem,
            "server certificate reissued for new names"
        );
    }
}
