//! TLS material: a CA + server certificate generated at start (rcgen), or loaded from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Where the server certificate comes from.
#[derive(Clone, Debug, Default)]
pub enum TlsSource {
    /// Generate a fresh CA and a server certificate for `localhost`/`127.0.0.1`/`::1` at start.
    #[default]
    Generate,
    /// Load a certificate chain and its private key from PEM files.
    Files {
        /// Certificate chain (PEM); also what clients should trust.
        cert: PathBuf,
        /// Private key (PEM, PKCS#8/PKCS#1/SEC1).
        key: PathBuf,
    },
}

/// A ready server config plus the PEM a client must trust (`--ca`).
#[derive(Clone)]
pub struct TlsMaterial {
    /// The rustls server config (ring provider).
    pub server_config: Arc<rustls::ServerConfig>,
    /// PEM of the CA certificate (generated) or of the certificate chain (files).
    pub ca_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("TLS certificate/key")?;
    Ok(Arc::new(cfg))
}

/// Builds the TLS material.
pub fn load(source: &TlsSource) -> anyhow::Result<TlsMaterial> {
    match source {
        TlsSource::Generate => generate(),
        TlsSource::Files { cert, key } => from_files(cert, key),
    }
}

/// A new CA ("oracle-sim CA") and a server certificate it signs, for `localhost`, `127.0.0.1` and
/// `::1`. Clients trust the CA PEM.
pub fn generate() -> anyhow::Result<TlsMaterial> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "oracle-sim CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let mut leaf_params = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "oracle-sim");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca)?;

    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    Ok(TlsMaterial {
        server_config: server_config(chain, key)?,
        ca_pem: ca.pem(),
    })
}

fn from_files(cert: &Path, key: &Path) -> anyhow::Result<TlsMaterial> {
    let ca_pem =
        std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{}: no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("{}: no PEM private key", key.display()))?;
    Ok(TlsMaterial {
        server_config: server_config(chain, key)?,
        ca_pem,
    })
}

/// Writes the CA PEM to `path` (mode 0644: it is public).
pub fn write_ca(path: &Path, pem: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("pem.tmp");
    std::fs::write(&tmp, pem).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
