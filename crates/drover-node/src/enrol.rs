//! Enrolment: the engine and a new node prove to each other that they know the one-time
//! secret, bound to the node's bootstrap certificate, and the engine hands the node its
//! CA-issued credentials.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::identity::{fingerprint, NodeIdentity};
use crate::wire::{codec, decode, encode};
use crate::{Ca, NodeError};

/// How long each step of the exchange may take.
const STEP: Duration = Duration::from_secs(10);
/// Pause per wrong secret so far before the node answers a wrong one.
const PENALTY: Duration = Duration::from_millis(200);

type HmacSha256 = Hmac<Sha256>;

/// Messages of the enrolment exchange.
#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    /// Engine: a fresh nonce and HMAC(secret, node fingerprint || nonce).
    Hello { nonce: [u8; 32], proof: [u8; 32] },
    /// Node: HMAC(secret, nonce || node fingerprint || "node").
    Proof { proof: [u8; 32] },
    /// Node: no.
    Refused { reason: String },
    /// Engine: the node's key and certificate, and the CA certificate.
    Credentials {
        #[serde(with = "serde_bytes")]
        cert: Vec<u8>,
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        ca: Vec<u8>,
    },
    /// Node: stored; from now on mutual TLS only.
    Done,
}

/// What the engine learns by enrolling a node.
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    /// The node's name, the identity its certificate carries.
    pub node_name: String,
    /// The certificate issued to the node (DER).
    pub cert: Vec<u8>,
    /// SHA-256 fingerprint of the node's bootstrap certificate, the one the secret was bound to.
    pub bootstrap_fingerprint: [u8; 32],
}

fn engine_proof(secret: &[u8], fp: &[u8; 32], nonce: &[u8; 32]) -> HmacSha256 {
    let mut mac = keyed(secret);
    mac.update(fp);
    mac.update(nonce);
    mac
}

fn node_proof(secret: &[u8], fp: &[u8; 32], nonce: &[u8; 32]) -> HmacSha256 {
    let mut mac = keyed(secret);
    mac.update(nonce);
    mac.update(fp);
    mac.update(b"node");
    mac
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    msg: &Msg,
) -> Result<(), NodeError> {
    let bytes = encode(msg).map_err(|e| NodeError::Protocol(e.to_string()))?;
    framed.send(tokio_util::bytes::Bytes::from(bytes)).await?;
    Ok(())
}

async fn recv<S: AsyncRead + AsyncWrite + Unpin, T: DeserializeOwned>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
) -> Result<T, NodeError> {
    let frame = tokio::time::timeout(STEP, framed.next())
        .await
        .map_err(|_| NodeError::Timeout("enrolment step"))?
        .ok_or_else(|| NodeError::Protocol("connection closed during enrolment".into()))??;
    decode(&frame).map_err(|e| NodeError::Protocol(e.to_string()))
}

/// Enrols the node listening at `addr` (which shows its bootstrap certificate) under
/// `node_name` (a DNS name, such as the host's uuid), given its one-time `secret`; the node
/// then serves only mutual TLS with certificates of `ca`.
pub async fn enrol(
    addr: &str,
    ca: &Ca,
    secret: &str,
    node_name: &str,
) -> Result<NodeCredentials, NodeError> {
    crate::tls::node_server_name(node_name)?;
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| NodeError::Timeout("connect"))??;
    let connector = tokio_rustls::TlsConnector::from(crate::tls::enrol_client()?);
    let name = rustls::pki_types::ServerName::try_from("drover-node-bootstrap")
        .map_err(|e| NodeError::Tls(e.to_string()))?;
    let tls = tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .map_err(|_| NodeError::Timeout("TLS handshake"))?
        .map_err(|e| NodeError::Tls(e.to_string()))?;
    let fp = match tls.get_ref().1.peer_certificates() {
        Some([cert, ..]) => fingerprint(cert),
        _ => return Err(NodeError::Tls("the node showed no certificate".into())),
    };
    let mut framed = Framed::new(tls, codec());
    let nonce = rand::random::<[u8; 32]>();
    let proof = engine_proof(secret.as_bytes(), &fp, &nonce)
        .finalize()
        .into_bytes()
        .into();
    send(&mut framed, &Msg::Hello { nonce, proof }).await?;
    match recv(&mut framed).await? {
        Msg::Proof { proof } => node_proof(secret.as_bytes(), &fp, &nonce)
            .verify_slice(&proof)
            .map_err(|_| NodeError::NodeNotAuthentic)?,
        Msg::Refused { reason } => return Err(NodeError::Refused(reason)),
        other => return Err(NodeError::Protocol(format!("unexpected {other:?}"))),
    }
    let issued = ca.issue_node(node_name)?;
    let creds = Msg::Credentials {
        cert: issued.cert.to_vec(),
        key: issued.key.secret_pkcs8_der().to_vec(),
        ca: ca.cert_der().to_vec(),
    };
    send(&mut framed, &creds).await?;
    match recv(&mut framed).await? {
        Msg::Done => Ok(NodeCredentials {
            node_name: node_name.into(),
            cert: issued.cert.to_vec(),
            bootstrap_fingerprint: fp,
        }),
        Msg::Refused { reason } => Err(NodeError::Refused(reason)),
        other => Err(NodeError::Protocol(format!("unexpected {other:?}"))),
    }
}

/// The node's side of an enrolment on an accepted bootstrap TLS connection.
pub(crate) async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    identity: &NodeIdentity,
) -> Result<(), NodeError> {
    let _one_at_a_time = identity.enrolling.lock().await;
    let Some((secret, fp)) = identity.secret() else {
        return Err(NodeError::Refused("not enrolling".into()));
    };
    let mut framed = Framed::new(stream, codec());
    let Msg::Hello { nonce, proof } = recv(&mut framed).await? else {
        return Err(NodeError::Protocol("expected Hello".into()));
    };
    if engine_proof(&secret, &fp, &nonce)
        .verify_slice(&proof)
        .is_err()
    {
        let failures = identity.record_failure();
        tokio::time::sleep(PENALTY * failures).await;
        let reason = "wrong enrolment secret".to_string();
        send(&mut framed, &Msg::Refused { reason }).await?;
        return Err(NodeError::Refused(format!(
            "wrong enrolment secret ({failures} so far)"
        )));
    }
    let proof = node_proof(&secret, &fp, &nonce)
        .finalize()
        .into_bytes()
        .into();
    send(&mut framed, &Msg::Proof { proof }).await?;
    let Msg::Credentials { cert, key, ca } = recv(&mut framed).await? else {
        return Err(NodeError::Protocol("expected Credentials".into()));
    };
    let stored = identity.complete(
        CertificateDer::from(cert),
        PrivatePkcs8KeyDer::from(key),
        CertificateDer::from(ca),
    );
    match stored {
        Ok(()) => send(&mut framed, &Msg::Done).await,
        Err(e) => {
            let reason = e.to_string();
            send(&mut framed, &Msg::Refused { reason }).await?;
            Err(e)
        }
    }
}
