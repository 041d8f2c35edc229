//! Errors of the node service, enrolment and certificate handling.

use std::path::PathBuf;

/// What can go wrong setting up, enrolling or reaching a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A file of the node's or the engine's credentials could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A network operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Making or reading a key or certificate failed.
    #[error("certificate: {0}")]
    Cert(String),
    /// Setting up TLS failed, or the peer failed the TLS handshake.
    #[error("TLS: {0}")]
    Tls(String),
    /// The node name is not usable as a certificate name (a DNS name, such as a host uuid).
    #[error("bad node name {0:?}: it must be a DNS name such as a host uuid")]
    BadNodeName(String),
    /// The enrolment secret is too short or unreadable.
    #[error("bad enrolment secret: {0}")]
    BadSecret(String),
    /// The node refused the enrolment.
    #[error("enrolment refused by the node: {0}")]
    Refused(String),
    /// The node could not prove that it knows the enrolment secret.
    #[error("the node did not prove knowledge of the enrolment secret")]
    NodeNotAuthentic,
    /// The peer broke the protocol (bad frame, unexpected message, closed early).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The peer did not answer in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

impl NodeError {
    pub(crate) fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NodeError {
        let path = path.into();
        move |source| NodeError::File { path, source }
    }
}
