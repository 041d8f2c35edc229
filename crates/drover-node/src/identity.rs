//! The node's identity: before enrolment a bootstrap certificate and the one-time secret,
//! after it the CA-issued certificate, kept in the node's data directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256};

use crate::tls::{cert_pem, key_pem, read_cert, read_key, write_private};
use crate::NodeError;

const NODE_KEY: &str = "node-key.pem";
const NODE_CERT: &str = "node-cert.pem";
const CA_CERT: &str = "ca-cert.pem";
const BOOT_KEY: &str = "bootstrap-key.pem";
const BOOT_CERT: &str = "bootstrap-cert.pem";
/// The file of the generated enrolment secret.
pub const SECRET_FILE: &str = "enrol-secret";
/// Wrong secrets after which the node refuses every enrolment until it restarts with a new
/// secret.
pub const MAX_FAILURES: u32 = 5;
/// The shortest enrolment secret accepted.
const MIN_SECRET: usize = 16;

/// How the node answers a new connection.
pub(crate) enum Mode {
    /// Mutual TLS with the engine.
    Enrolled(Arc<ServerConfig>),
    /// Enrolment only, with the bootstrap certificate.
    Enrolling(Arc<ServerConfig>),
    /// Nothing: too many wrong secrets.
    Locked,
}

enum State {
    Enrolled(Arc<ServerConfig>),
    Enrolling {
        config: Arc<ServerConfig>,
        fingerprint: [u8; 32],
        secret: Vec<u8>,
        failures: u32,
    },
    Locked,
}

/// The node's credentials and enrolment state.
pub struct NodeIdentity {
    dir: PathBuf,
    state: Mutex<State>,
    /// Held for a whole enrolment exchange: one attempt at a time.
    pub(crate) enrolling: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("dir", &self.dir)
            .field("enrolled", &self.is_enrolled())
            .finish_non_exhaustive()
    }
}

/// The SHA-256 fingerprint of a certificate's DER encoding.
pub(crate) fn fingerprint(cert: &[u8]) -> [u8; 32] {
    Sha256::digest(cert).into()
}

impl NodeIdentity {
    /// Loads the node's identity from `dir`. A node not yet enrolled gets a bootstrap
    /// certificate and an enrolment secret: the one in `secret_file` if given, else the one in
    /// `dir/enrol-secret`, else a new one written there (mode 0600) and returned, to be shown
    /// once.
    pub fn load_or_init(
        dir: &Path,
        secret_file: Option<&Path>,
    ) -> Result<(NodeIdentity, Option<String>), NodeError> {
        std::fs::create_dir_all(dir).map_err(NodeError::file(dir))?;
        let identity = |state| NodeIdentity {
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
            enrolling: tokio::sync::Mutex::new(()),
        };
        let (key, cert, ca) = (dir.join(NODE_KEY), dir.join(NODE_CERT), dir.join(CA_CERT));
        if key.exists() && cert.exists() && ca.exists() {
            let config =
                crate::tls::node_server(read_cert(&cert)?, read_key(&key)?, &read_cert(&ca)?)?;
            return Ok((identity(State::Enrolled(config)), None));
        }
        let (secret, shown) = match secret_file {
            Some(f) => (read_secret(f)?, None),
            None => {
                let path = dir.join(SECRET_FILE);
                if path.exists() {
                    (read_secret(&path)?, None)
                } else {
                    let secret = hex::encode(rand::random::<[u8; 32]>());
                    write_private(&path, secret.as_bytes())?;
                    (secret.clone(), Some(secret))
                }
            }
        };
        let (bkey, bcert) = (dir.join(BOOT_KEY), dir.join(BOOT_CERT));
        if !bkey.exists() || !bcert.exists() {
            let issued = crate::ca::self_signed("drover-node-bootstrap")?;
            write_private(&bkey, key_pem(issued.key.secret_pkcs8_der()).as_bytes())?;
            write_private(&bcert, cert_pem(&issued.cert).as_bytes())?;
        }
        let cert = read_cert(&bcert)?;
        let state = State::Enrolling {
            fingerprint: fingerprint(&cert),
            config: crate::tls::bootstrap_server(cert, read_key(&bkey)?)?,
            secret: secret.into_bytes(),
            failures: 0,
        };
        Ok((identity(state), shown))
    }

    /// Whether the node has its certificate from the engine.
    pub fn is_enrolled(&self) -> bool {
        matches!(*self.lock(), State::Enrolled(_))
    }

    pub(crate) fn mode(&self) -> Mode {
        match &*self.lock() {
            State::Enrolled(c) => Mode::Enrolled(c.clone()),
            State::Enrolling { config, .. } => Mode::Enrolling(config.clone()),
            State::Locked => Mode::Locked,
        }
    }

    /// The secret and the bootstrap certificate's fingerprint, while enrolling.
    pub(crate) fn secret(&self) -> Option<(Vec<u8>, [u8; 32])> {
        match &*self.lock() {
            State::Enrolling {
                secret,
                fingerprint,
                ..
            } => Some((secret.clone(), *fingerprint)),
            _ => None,
        }
    }

    /// Counts a wrong secret; the count so far. At [`MAX_FAILURES`] the secret is forgotten
    /// and enrolment refused until a restart with a new secret.
    pub(crate) fn record_failure(&self) -> u32 {
        let mut state = self.lock();
        let State::Enrolling { failures, .. } = &mut *state else {
            return MAX_FAILURES;
        };
        *failures += 1;
        let n = *failures;
        if n >= MAX_FAILURES {
            *state = State::Locked;
            let _ = std::fs::remove_file(self.dir.join(SECRET_FILE));
            tracing::error!(
                "{n} wrong enrolment secrets: enrolment is refused until the node restarts with a new secret"
            );
        }
        n
    }

    /// Stores the credentials the engine issued, forgets the secret and the bootstrap identity,
    /// and from now on serves mutual TLS only.
    pub(crate) fn complete(
        &self,
        cert: CertificateDer<'static>,
        key: PrivatePkcs8KeyDer<'static>,
        ca: CertificateDer<'static>,
    ) -> Result<(), NodeError> {
        let config =
            crate::tls::node_server(cert.clone(), PrivateKeyDer::Pkcs8(key.clone_key()), &ca)?;
        write_private(&self.dir.join(CA_CERT), cert_pem(&ca).as_bytes())?;
        write_private(&self.dir.join(NODE_CERT), cert_pem(&cert).as_bytes())?;
        write_private(
            &self.dir.join(NODE_KEY),
            key_pem(key.secret_pkcs8_der()).as_bytes(),
        )?;
        for f in [SECRET_FILE, BOOT_KEY, BOOT_CERT] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
        *self.lock() = State::Enrolled(config);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn read_secret(path: &Path) -> Result<String, NodeError> {
    let s = std::fs::read_to_string(path).map_err(NodeError::file(path))?;
    let s = s.trim().to_string();
    if s.len() < MIN_SECRET {
        return Err(NodeError::BadSecret(format!(
            "{}: at least {MIN_SECRET} characters are needed",
            path.display()
        )));
    }
    Ok(s)
}
