//! The engine's certificate authority: it issues the nodes' server certificates and the
//! engine's own client certificate.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tls::{cert_pem, read_cert, read_key, write_private};
use crate::NodeError;

const CA_KEY: &str = "ca-key.pem";
const CA_CERT: &str = "ca-cert.pem";
const ENGINE_KEY: &str = "engine-key.pem";
const ENGINE_CERT: &str = "engine-cert.pem";
/// The name in the engine's client certificate.
const ENGINE_NAME: &str = "drover-engine";
/// How long issued certificates are valid.
const VALIDITY_DAYS: i64 = 3650;

/// A key and the certificate issued for it.
pub(crate) struct Issued {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: PrivatePkcs8KeyDer<'static>,
}

/// The engine's certificate authority, kept as `ca-key.pem` (mode 0600) and `ca-cert.pem` in
/// its directory, with the engine's client key and certificate beside them.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    engine_cert: CertificateDer<'static>,
    engine_key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn cert_err(e: impl std::fmt::Display) -> NodeError {
    NodeError::Cert(e.to_string())
}

/// The CA's parameters; an issuer made from them and the CA key signs exactly as the stored
/// CA certificate names itself.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "Drover engine CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut p);
    p
}

fn validity(p: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(VALIDITY_DAYS);
}

impl Ca {
    /// Loads the CA from `dir`, making the directory, the CA and the engine's client
    /// certificate the first time.
    pub fn load_or_create(dir: &Path) -> Result<Ca, NodeError> {
        std::fs::create_dir_all(dir).map_err(NodeError::file(dir))?;
        let key_path = dir.join(CA_KEY);
        let cert_path = dir.join(CA_CERT);
        let (key, cert) = if key_path.exists() && cert_path.exists() {
            let pem = std::fs::read_to_string(&key_path).map_err(NodeError::file(&key_path))?;
            (
                KeyPair::from_pem(&pem).map_err(cert_err)?,
                read_cert(&cert_path)?,
            )
        } else {
            let key = KeyPair::generate().map_err(cert_err)?;
            let cert = ca_params().self_signed(&key).map_err(cert_err)?;
            write_private(&key_path, key.serialize_pem().as_bytes())?;
            write_private(&cert_path, cert.pem().as_bytes())?;
            (key, cert.der().clone())
        };
        let issuer = Issuer::new(ca_params(), key);
        let (engine_key_path, engine_cert_path) = (dir.join(ENGINE_KEY), dir.join(ENGINE_CERT));
        if !engine_key_path.exists() || !engine_cert_path.exists() {
            let issued = issue(&issuer, ENGINE_NAME, ExtendedKeyUsagePurpose::ClientAuth)?;
            write_private(
                &engine_key_path,
                crate::tls::key_pem(issued.key.secret_pkcs8_der()).as_bytes(),
            )?;
            write_private(&engine_cert_path, cert_pem(&issued.cert).as_bytes())?;
        }
        Ok(Ca {
            issuer,
            cert,
            engine_cert: read_cert(&engine_cert_path)?,
            engine_key: read_key(&engine_key_path)?,
        })
    }

    /// The CA certificate (DER), the trust anchor of both sides.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Issues a node's server certificate (SAN: `name`; usable for server authentication only,
    /// so that a node cannot pose as the engine to another node).
    pub(crate) fn issue_node(&self, name: &str) -> Result<Issued, NodeError> {
        issue(&self.issuer, name, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// The TLS configuration of the engine towards its enrolled nodes.
    pub(crate) fn client_config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, NodeError> {
        crate::tls::engine_client(
            &self.cert,
            self.engine_cert.clone(),
            self.engine_key.clone_key(),
        )
    }
}

fn issue(
    issuer: &Issuer<'static, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Result<Issued, NodeError> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut p = CertificateParams::new(vec![name.to_string()]).map_err(cert_err)?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![usage];
    p.use_authority_key_identifier_extension = true;
    validity(&mut p);
    let cert = p.signed_by(&key, issuer).map_err(cert_err)?;
    Ok(Issued {
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    })
}

/// A self-signed certificate for `name` and its key, the node's bootstrap identity.
pub(crate) fn self_signed(name: &str) -> Result<Issued, NodeError> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut p = CertificateParams::new(vec![name.to_string()]).map_err(cert_err)?;
    p.distinguished_name.push(DnType::CommonName, name);
    validity(&mut p);
    let cert = p.self_signed(&key).map_err(cert_err)?;
    Ok(Issued {
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    })
}
