//! Drover's host agent as a network service, and the engine's side of it.
//!
//! A node (`drover node`) serves one [`drover_host::HostDriver`] over TCP with [`serve`]; the
//! engine reaches it through [`RemoteHost`], itself a `HostDriver`, so a remote host is a
//! drop-in `Arc<dyn HostDriver>`.
//!
//! # Security
//!
//! Every connection is TLS 1.3 (rustls, ring provider); nothing is ever spoken in clear.
//!
//! * **The engine's CA** ([`Ca`]) lives in the engine's data directory (`ca-key.pem`, mode
//!   0600, and `ca-cert.pem`). It issues each node a server certificate whose only name (SAN)
//!   is the node's name (its host uuid) and whose extended key usage is server authentication
//!   only, and the engine a client certificate usable for client authentication only: a node's
//!   certificate cannot pose as the engine to another node.
//! * **Before enrolment** a node has no certificate from the engine. It makes a self-signed
//!   bootstrap certificate and a one-time enrolment secret (256 random bits, written to
//!   `DIR/enrol-secret` with mode 0600 and shown once, or read from a file the operator gives)
//!   and serves nothing but enrolment.
//! * **Enrolment** ([`enrol`]): the engine connects, takes the node's bootstrap certificate
//!   `C` from the handshake, and sends a fresh nonce `N` with
//!   `HMAC-SHA256(secret, SHA256(C) || N)`. The node checks it against its own certificate's
//!   fingerprint in constant time. A man in the middle terminating TLS shows its own
//!   certificate, so the proof the engine computes for it is useless against the real node,
//!   and the proof reveals nothing usable about the 256-bit secret. The node answers
//!   `HMAC-SHA256(secret, N || SHA256(C) || "node")`, proving that the engine talks to the
//!   holder of the secret. Only then does the engine send the node its key, certificate and
//!   the CA certificate, over that TLS channel. The node stores them (mode 0600), deletes the
//!   secret and its bootstrap identity, and from then on accepts only mutual TLS. A wrong
//!   secret is refused after a growing pause and counted; after
//!   [`identity::MAX_FAILURES`] the node forgets the secret and refuses every enrolment until
//!   it restarts with a new one. One enrolment runs at a time.
//! * **After enrolment** the node accepts a connection only if the client's certificate
//!   chains to the CA and is meant for client authentication (the engine's); anything else
//!   (plain TCP, TLS without a certificate, a certificate of another CA, another node's
//!   certificate) fails the handshake. The engine ([`RemoteHost::connect`]) accepts the node
//!   only if its certificate chains to the CA and names the expected node.
//!
//! # Protocol
//!
//! Length-prefixed postcard frames ([`wire`]), at most [`wire::MAX_FRAME`] bytes, over one
//! connection: requests carry ids and may be answered in any order; guest events are pushed;
//! byte streams (consoles, image import and export) travel as chunks with credit-based flow
//! control ([`wire::WINDOW`] chunks of [`wire::CHUNK`] bytes in flight per stream).

mod ca;
mod client;
mod enrol;
mod error;
pub mod identity;
mod server;
mod stream;
mod tls;
pub mod wire;

pub use ca::Ca;
pub use client::{ClientConfig, RemoteHost};
pub use enrol::{enrol, NodeCredentials};
pub use error::NodeError;
pub use identity::NodeIdentity;
pub use server::serve;
