//! Hostward's private PKI and TLS settings.
//!
//! The center owns a CA (ECDSA P-256). It issues its own server certificate and one client
//! certificate per agent, whose subject CN is the agent id. Agents trust only this CA, which they
//! first learn through [`PinnedCaVerifier`]: the CA certificate the server sends in its chain is
//! accepted only if its SHA-256 equals the fingerprint the operator passed on the command line.
//!
//! Every TLS configuration here is TLS 1.3 only and uses the `ring` provider, so there is exactly
//! one crypto provider in the process. Nothing here does network or file I/O.

use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{what} is not valid PEM: {detail}")]
    Pem { what: &'static str, detail: String },
    #[error("certificate signing request rejected: {0}")]
    BadCsr(String),
    #[error("client verifier: {0}")]
    Verifier(String),
}

pub type Result<T> = std::result::Result<T, PkiError>;

/// The one crypto provider Hostward uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide default provider. Safe to call more than once.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

const CA_DAYS: i64 = 3650;
const SERVER_DAYS: i64 = 825;
const AGENT_DAYS: i64 = 825;

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // DER integers are signed; keep serials positive
    bytes[0] |= 0x01; // and exactly 16 bytes long
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    // Tolerate small clock differences between center and agents.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

fn named(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Hostward");
    dn.push(DnType::CommonName, cn);
    dn
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A certificate the CA issued to an agent.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    /// Lower-case hex of the serial number, as stored by the center.
    pub serial_hex: String,
    pub not_after: i64,
}

/// The center's certificate authority.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Creates a new CA. `name` goes into the subject, e.g. "Hostward CA <host>".
    pub fn generate(name: &str) -> Result<(Ca, CertAndKey)> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = named(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        validity(&mut params, CA_DAYS);
        let cert = params.self_signed(&key)?;
        let files = CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        let ca = Ca::load(&files.cert_pem, &files.key_pem)?;
        Ok((ca, files))
    }

    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the CA certificate (DER), lower-case hex: what operators pin.
    pub fn fingerprint(&self) -> String {
        fingerprint_sha256(&self.cert_pem).expect("own CA certificate parses")
    }

    /// Issues the center's server certificate for the given DNS names and IP addresses.
    pub fn issue_server_cert(&self, names: &[String]) -> Result<CertAndKey> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = named(names.first().map(String::as_str).unwrap_or("hostward"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, SERVER_DAYS);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs an agent's CSR. Only the CSR's public key is used: subject, names and usages come
    /// from the CA, so an agent cannot ask for a server certificate or another agent's identity.
    pub fn sign_agent_csr(&self, csr_pem: &str, agent_id: &str) -> Result<IssuedCert> {
        let now = time::OffsetDateTime::now_utc();
        self.sign_agent_csr_valid(
            csr_pem,
            agent_id,
            now - time::Duration::hours(1),
            now + time::Duration::days(AGENT_DAYS),
        )
    }

    /// [`Ca::sign_agent_csr`] with an explicit validity window (tests of expiry use a past one).
    pub fn sign_agent_csr_valid(
        &self,
        csr_pem: &str,
        agent_id: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<IssuedCert> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = named(agent_id);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let serial = random_serial();
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let not_after = params.not_after.unix_timestamp();
        let cert = params.signed_by(&csr.public_key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            serial_hex,
            not_after,
        })
    }
}

/// A fresh agent key pair and a CSR for it. The CSR's subject is informational only.
pub fn agent_key_and_csr(hostname: &str) -> Result<(String, String)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = named(hostname);
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

fn first_cert(pem: &str, what: &'static str) -> Result<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| PkiError::Pem {
            what,
            detail: "no CERTIFICATE block".into(),
        })?
        .map_err(|e| PkiError::Pem {
            what,
            detail: e.to_string(),
        })
}

fn all_certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            what,
            detail: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn private_key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem {
        what,
        detail: e.to_string(),
    })
}

/// SHA-256 of the first certificate in `pem` (over its DER), lower-case hex.
pub fn fingerprint_sha256(pem: &str) -> Result<String> {
    Ok(hex::encode(Sha256::digest(
        first_cert(pem, "certificate")?.as_ref(),
    )))
}

/// Normalises a fingerprint typed by a person: accepts `AB:CD:…`, upper case, or a `sha256:` prefix.
pub fn normalize_fingerprint(input: &str) -> Option<[u8; 32]> {
    let cleaned: String = input
        .trim()
        .trim_start_matches("sha256:")
        .trim_start_matches("SHA256:")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let bytes = hex::decode(cleaned.to_ascii_lowercase()).ok()?;
    bytes.try_into().ok()
}

/// `sha256//<base64 SPKI hash>` of the first certificate: the form curl's `--pinnedpubkey` and
/// Chromium's `--ignore-certificate-errors-spki-list` (without the prefix) take.
pub fn spki_sha256_base64(cert_pem: &str) -> Result<String> {
    let der = first_cert(cert_pem, "certificate")?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| PkiError::Pem {
            what: "certificate",
            detail: e.to_string(),
        })?;
    let digest = Sha256::digest(cert.public_key().raw);
    Ok(base64_std(&digest))
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Identity read from a verified agent certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Subject CN: the agent id.
    pub agent_id: String,
    pub serial_hex: String,
}

/// Reads the agent id and serial from a DER certificate the TLS layer has already verified.
pub fn peer_identity(der: &[u8]) -> Option<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let serial = cert.raw_serial();
    // Strip a DER sign byte so the hex matches what rcgen reported at issue time.
    let serial = if serial.len() > 1 && serial[0] == 0 {
        &serial[1..]
    } else {
        serial
    };
    Some(PeerIdentity {
        agent_id: cn,
        serial_hex: hex::encode(serial),
    })
}

/// Server side of the console/API port: TLS 1.3, no client certificate.
/// `chain_pem` is the server certificate followed by the CA certificate, so that agents can
/// find the pinned CA in the chain.
pub fn server_config(chain_pem: &str, key_pem: &str) -> Result<ServerConfig> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            all_certs(chain_pem, "server certificate chain")?,
            private_key(key_pem, "server key")?,
        )?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Called when a certificate our CA really issued fails verification now (expired, or not yet
/// valid because of the agent's clock), with the identity in it and rustls' reason.
pub type OnStaleCert = Arc<dyn Fn(PeerIdentity, String) + Send + Sync>;

/// Server side of the agent gateway: TLS 1.3, client certificate from our CA required.
pub fn gateway_server_config(
    chain_pem: &str,
    key_pem: &str,
    ca_pem: &str,
    on_stale: Option<OnStaleCert>,
) -> Result<ServerConfig> {
    let verifier = ReportingClientVerifier::new(ca_pem, on_stale)?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            all_certs(chain_pem, "server certificate chain")?,
            private_key(key_pem, "server key")?,
        )?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// rustls' client verifier, plus a report of genuine certificates that fail only on time. A
/// certificate counts as genuine only if it verifies against our CA at a moment inside its own
/// validity window, so a forged certificate naming someone else's agent is never reported.
pub struct ReportingClientVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    on_stale: Option<OnStaleCert>,
}

impl std::fmt::Debug for ReportingClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportingClientVerifier")
            .finish_non_exhaustive()
    }
}

impl ReportingClientVerifier {
    pub fn new(ca_pem: &str, on_stale: Option<OnStaleCert>) -> Result<Self> {
        let mut roots = RootCertStore::empty();
        roots.add(first_cert(ca_pem, "CA certificate")?)?;
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| PkiError::Verifier(e.to_string()))?;
        Ok(ReportingClientVerifier { inner, on_stale })
    }

    fn report_if_stale(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        err: &rustls::Error,
    ) {
        let Some(on_stale) = &self.on_stale else {
            return;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity.as_ref()) else {
            return;
        };
        let inside = cert.validity().not_before.timestamp().max(0) as u64 + 1;
        let then = UnixTime::since_unix_epoch(std::time::Duration::from_secs(inside));
        if self
            .inner
            .verify_client_cert(end_entity, intermediates, then)
            .is_ok()
            && let Some(id) = peer_identity(end_entity.as_ref())
        {
            on_stale(id, err.to_string());
        }
    }
}

impl rustls::server::danger::ClientCertVerifier for ReportingClientVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| {
                if matches!(
                    e,
                    rustls::Error::InvalidCertificate(
                        rustls::CertificateError::Expired
                            | rustls::CertificateError::NotValidYet
                            | rustls::CertificateError::ExpiredContext { .. }
                            | rustls::CertificateError::NotValidYetContext { .. }
                    )
                ) {
                    self.report_if_stale(end_entity, intermediates, e);
                }
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Client side: trusts only `ca_pem`; presents `client` when given (the agent's identity).
pub fn client_config(ca_pem: &str, client: Option<(&str, &str)>) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(first_cert(ca_pem, "CA certificate")?)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some((cert_pem, key_pem)) => builder.with_client_auth_cert(
            all_certs(cert_pem, "agent certificate")?,
            private_key(key_pem, "agent key")?,
        )?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Client config for a public HTTPS server (a vulnerability feed), trusting every CA of a
/// bundle such as `/etc/ssl/certs/ca-certificates.crt`. Still TLS 1.3 only.
pub fn bundle_client_config(bundle_pem: &str) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(all_certs(bundle_pem, "CA bundle")?);
    if added == 0 {
        return Err(PkiError::Pem {
            what: "CA bundle",
            detail: "no usable CA certificate".into(),
        });
    }
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Client config for the first contact: trusts the server only if its chain contains a CA whose
/// SHA-256 equals the pin, and the server certificate verifies against that CA.
pub fn pinned_client_config(pin: [u8; 32]) -> Result<(ClientConfig, Arc<PinnedCaVerifier>)> {
    let verifier = Arc::new(PinnedCaVerifier {
        pin,
        provider: provider(),
        matched: Mutex::new(None),
    });
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    Ok((cfg, verifier))
}

/// See [`pinned_client_config`].
#[derive(Debug)]
pub struct PinnedCaVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
    matched: Mutex<Option<CertificateDer<'static>>>,
}

/// Message of the error a pin mismatch produces; callers match on it to report `ca_mismatch`.
pub const CA_MISMATCH: &str = "CA fingerprint mismatch";

impl PinnedCaVerifier {
    /// The CA certificate (PEM) that matched the pin during the last successful handshake.
    pub fn matched_ca_pem(&self) -> Option<String> {
        let der = self.matched.lock().unwrap().clone()?;
        Some(pem_encode("CERTIFICATE", der.as_ref()))
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64_std(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| Sha256::digest(c.as_ref())[..] == self.pin[..])
            .ok_or_else(|| {
                let seen: Vec<String> = intermediates
                    .iter()
                    .map(|c| hex::encode(Sha256::digest(c.as_ref())))
                    .collect();
                rustls::Error::General(format!(
                    "{CA_MISMATCH}: server chain has {seen:?}, expected {}",
                    hex::encode(self.pin)
                ))
            })?
            .clone()
            .into_owned();
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)?;
        *self.matched.lock().unwrap() = Some(ca);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_certificate_carries_agent_id_and_serial() {
        let (ca, _) = Ca::generate("Test CA").unwrap();
        let (_key, csr) = agent_key_and_csr("web-1").unwrap();
        let issued = ca.sign_agent_csr(&csr, "agent-123").unwrap();
        let der = first_cert(&issued.cert_pem, "t").unwrap();
        let id = peer_identity(der.as_ref()).unwrap();
        assert_eq!(id.agent_id, "agent-123");
        assert_eq!(id.serial_hex, issued.serial_hex);
    }

    #[test]
    fn only_genuine_certificates_that_expired_are_reported() {
        use rustls::server::danger::ClientCertVerifier;
        let (ca, _) = Ca::generate("Test CA").unwrap();
        let (other, _) = Ca::generate("Other CA").unwrap();
        let reported = Arc::new(Mutex::new(Vec::new()));
        let sink = reported.clone();
        let v = ReportingClientVerifier::new(
            ca.cert_pem(),
            Some(Arc::new(move |id, why| {
                sink.lock().unwrap().push((id, why))
            })),
        )
        .unwrap();
        let (_, csr) = agent_key_and_csr("h").unwrap();
        let past = time::OffsetDateTime::now_utc() - time::Duration::days(10);
        let expired = ca
            .sign_agent_csr_valid(&csr, "agent-old", past, past + time::Duration::days(1))
            .unwrap();
        let forged = other
            .sign_agent_csr_valid(&csr, "agent-victim", past, past + time::Duration::days(1))
            .unwrap();
        let fresh = ca.sign_agent_csr(&csr, "agent-ok").unwrap();
        let der = |pem: &str| first_cert(pem, "t").unwrap();
        assert!(
            v.verify_client_cert(&der(&fresh.cert_pem), &[], UnixTime::now())
                .is_ok()
        );
        assert!(
            v.verify_client_cert(&der(&expired.cert_pem), &[], UnixTime::now())
                .is_err()
        );
        assert!(
            v.verify_client_cert(&der(&forged.cert_pem), &[], UnixTime::now())
                .is_err()
        );
        let got = reported.lock().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0.agent_id, "agent-old");
        assert_eq!(got[0].0.serial_hex, expired.serial_hex);
    }

    #[test]
    fn garbage_csr_is_rejected_with_a_message() {
        let (ca, _) = Ca::generate("Test CA").unwrap();
        let err = ca.sign_agent_csr(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "x",
        );
        assert!(matches!(err, Err(PkiError::BadCsr(_))));
    }

    #[test]
    fn fingerprint_forms_normalise_to_the_same_bytes() {
        let (ca, _) = Ca::generate("Test CA").unwrap();
        let fp = ca.fingerprint();
        let colons: String = fp
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(normalize_fingerprint(&fp), normalize_fingerprint(&colons));
        assert!(normalize_fingerprint(&fp).is_some());
        assert!(normalize_fingerprint("abc").is_none());
    }

    #[test]
    fn pem_encoding_round_trips() {
        let (ca, _) = Ca::generate("Test CA").unwrap();
        let der = first_cert(ca.cert_pem(), "t").unwrap();
        let again = pem_encode("CERTIFICATE", der.as_ref());
        assert_eq!(fingerprint_sha256(&again).unwrap(), ca.fingerprint());
    }

    #[test]
    fn configs_build_for_tls13() {
        let (ca, _) = Ca::generate("Test CA").unwrap();
        let server = ca
            .issue_server_cert(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let chain = format!("{}{}", server.cert_pem, ca.cert_pem());
        server_config(&chain, &server.key_pem).unwrap();
        gateway_server_config(&chain, &server.key_pem, ca.cert_pem(), None).unwrap();
        client_config(ca.cert_pem(), None).unwrap();
        assert!(spki_sha256_base64(&server.cert_pem).unwrap().ends_with('='));
    }
}
