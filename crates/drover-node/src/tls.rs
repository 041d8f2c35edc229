//! TLS 1.3 configurations (rustls with the ring provider) and credential files.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::NodeError;

/// The crypto provider of every configuration.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Tls(e.to_string())
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, NodeError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).map_err(tls_err)?;
    Ok(Arc::new(roots))
}

/// The node's configuration once enrolled: its CA-issued certificate, and only clients whose
/// certificate chains to the CA and is meant for client authentication (the engine's).
pub(crate) fn node_server(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    ca: &CertificateDer<'static>,
) -> Result<Arc<ServerConfig>, NodeError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(tls_err)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .map_err(tls_err)?;
    Ok(Arc::new(config))
}

/// The node's configuration before enrolment: its self-signed bootstrap certificate, no
/// client certificates (the enrolment secret authenticates the engine).
pub(crate) fn bootstrap_server(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, NodeError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(tls_err)?;
    Ok(Arc::new(config))
}

/// The engine's configuration towards enrolled nodes: the node's certificate must chain to the
/// CA and name the expected node; the engine shows its own CA-issued client certificate.
pub(crate) fn engine_client(
    ca: &CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ClientConfig>, NodeError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(roots(ca)?)
        .with_client_auth_cert(vec![cert], key)
        .map_err(tls_err)?;
    Ok(Arc::new(config))
}

/// The engine's configuration for enrolment: any server certificate is taken (its fingerprint
/// is then bound into the secret's proof), the handshake signature is still checked.
pub(crate) fn enrol_client() -> Result<Arc<ClientConfig>, NodeError> {
    let verifier = Arc::new(BootstrapVerifier(provider()));
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Takes the node's bootstrap certificate as it is; see [`enrol_client`].
#[derive(Debug)]
struct BootstrapVerifier(Arc<CryptoProvider>);

impl ServerCertVerifier for BootstrapVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The DNS name a node's certificate carries.
pub(crate) fn node_server_name(name: &str) -> Result<ServerName<'static>, NodeError> {
    match ServerName::try_from(name.to_string()) {
        Ok(n @ ServerName::DnsName(_)) => Ok(n),
        _ => Err(NodeError::BadNodeName(name.into())),
    }
}

/// Writes `bytes` to `path` readable by its owner only, replacing it atomically.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(NodeError::file(path))
}

/// Reads a PEM certificate file.
pub(crate) fn read_cert(path: &Path) -> Result<CertificateDer<'static>, NodeError> {
    CertificateDer::from_pem_file(path)
        .map_err(|e| NodeError::Cert(format!("{}: {e}", path.display())))
}

/// Reads a PEM private key file.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, NodeError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| NodeError::Cert(format!("{}: {e}", path.display())))
}

/// PEM text of a certificate.
pub(crate) fn cert_pem(der: &CertificateDer<'_>) -> String {
    pem("CERTIFICATE", der)
}

/// PEM text of a PKCS#8 private key.
pub(crate) fn key_pem(der: &[u8]) -> String {
    pem("PRIVATE KEY", der)
}

fn pem(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}
