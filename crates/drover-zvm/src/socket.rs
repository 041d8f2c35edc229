//! The socket protocol of the original's SDK server, which `ZVMConnector(connection_type=
//! 'socket')` speaks: one TCP connection per call; the client sends `[api_name, args, kwargs]`
//! as JSON without framing, the server answers with the result envelope and closes.

use std::sync::Arc;

use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::api::Backend;
use crate::error::{Module, ZvmError};
use crate::pyjson::dumps;
use crate::rest::{envelope, jsonerr};

/// The largest request read.
const REQUEST_LIMIT: usize = 16 << 20;

/// Serves the socket protocol on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, backend: Arc<Backend>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let backend = backend.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_one(stream, peer, &backend).await {
                tracing::debug!(%peer, "z/VM socket request failed: {e}");
            }
        });
    }
}

async fn serve_one(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    backend: &Backend,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let request: Option<Json> = loop {
        if let Ok(v) = serde_json::from_slice::<Json>(&buf) {
            break Some(v);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > REQUEST_LIMIT {
            break serde_json::from_slice(&buf).ok();
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if buf.is_empty() {
        return Ok(());
    }
    let result = match request {
        Some(Json::Array(parts)) if parts.len() == 3 => {
            let mut parts = parts.into_iter();
            let (name, args, kwargs) = (parts.next(), parts.next(), parts.next());
            match (name, args, kwargs) {
                (Some(Json::String(name)), Some(Json::Array(args)), Some(Json::Object(kwargs))) => {
                    backend.call(&name, args, kwargs).await
                }
                _ => Err(bad_input(peer, &buf)),
            }
        }
        Some(_) => Err(bad_input(peer, &buf)),
        None => Err(
            match std::str::from_utf8(&buf)
                .ok()
                .and(jsonerr::python_error(&buf))
            {
                // What the original's `json.loads` raises, caught as an unexpected exception.
                Some(e) => unexpected(peer, &format!("JSONDecodeError({})", py_repr(&e))),
                None => bad_input(peer, &buf),
            },
        ),
    };
    let body = dumps(&envelope(&result));
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// The original's answer to a request that is JSON but not `[name, args, kwargs]`.
fn bad_input(peer: std::net::SocketAddr, data: &[u8]) -> ZvmError {
    ZvmError::internal(
        Module::SdkServer,
        format!(
            "({}:{}) SDK server got wrong input: '{}' from client.",
            peer.ip(),
            peer.port(),
            String::from_utf8_lossy(data)
        ),
    )
}

/// The original's answer to an exception it did not expect.
fn unexpected(peer: std::net::SocketAddr, repr: &str) -> ZvmError {
    ZvmError::internal(
        Module::SdkServer,
        format!(
            "({}:{}) SDK server got unexpected exception: {repr}",
            peer.ip(),
            peer.port()
        ),
    )
}

/// Python's `repr` of a string of printable ASCII.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        if c == '\\' || c == quote {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(quote);
    out
}
