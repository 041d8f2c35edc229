//! The plain HTTP handlers of XenAPI: guest consoles (`GET /console`, as text or over a
//! WebSocket) and disk uploads (`PUT /import_raw_vdi`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use drover_core::{Caller, CoreError, Engine};
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::errors::{describe, http_status};

/// Query parameters of a handler.
type Params = HashMap<String, String>;

/// A request refused before it reaches the engine: status and a short text.
type Refusal = (StatusCode, String);

/// An error as the XenAPI code and parameters, in a JSON array.
fn failure(e: &CoreError) -> Response {
    let body = serde_json::to_string(&describe(e)).unwrap_or_default();
    (
        http_status(e),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The caller of a request: its session from the `session_id` parameter or cookie.
fn caller(engine: &Engine, params: &Params, headers: &HeaderMap) -> Result<Caller, Refusal> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("session_id="));
    let session = params.get("session_id").map(String::as_str).or(cookie);
    session
        .and_then(|s| engine.authenticate(s).ok())
        .ok_or_else(|| {
            (
                StatusCode::UNAUTHORIZED,
                "a valid session_id is needed\n".into(),
            )
        })
}

/// A required query parameter.
fn param<'a>(params: &'a Params, name: &str) -> Result<&'a str, Refusal> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                format!("the {name} parameter is missing\n"),
            )
        })
}

/// `GET /console?ref=<console>&session_id=<session>`: the console's log so far as text, or,
/// with a WebSocket upgrade, the console itself (bytes both ways; RFB for `rfb` consoles).
pub async fn console(
    State(engine): State<Arc<Engine>>,
    params: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let caller = match caller(&engine, &params, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let console = match param(&params, "ref") {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    match upgrade {
        Ok(ws) => match engine.console_open(&caller, console).await {
            Ok(stream) => ws
                .protocols(["binary"])
                .on_upgrade(move |socket| bridge(socket, stream)),
            Err(e) => failure(&e),
        },
        Err(_) => match engine.console_log(&caller, console).await {
            Ok(log) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], log).into_response(),
            Err(e) => failure(&e),
        },
    }
}

/// Carries bytes between a WebSocket and a console stream until either side ends.
async fn bridge(socket: WebSocket, stream: impl AsyncRead + AsyncWrite + Send + Unpin) {
    let (mut from_guest, mut to_guest) = tokio::io::split(stream);
    let (mut sink, mut source) = socket.split();
    let inbound = async {
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Text(t) => Bytes::copy_from_slice(t.as_str().as_bytes()),
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if to_guest.write_all(&data).await.is_err() || to_guest.flush().await.is_err() {
                break;
            }
        }
    };
    let outbound = async {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from_guest.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let frame = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
}

/// `PUT /import_raw_vdi?session_id=..&vdi=<VDI ref or uuid>&format=raw|qcow2`: replaces the
/// VDI's contents with the request body, streamed (`task_id` is accepted and not used).
pub async fn import_raw_vdi(
    State(engine): State<Arc<Engine>>,
    params: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let caller = match caller(&engine, &params, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let vdi = match param(&params, "vdi") {
        Ok(v) => engine
            .read(|db| {
                db.table("VDI")
                    .and_then(|t| t.by_uuid(v))
                    .map(|r| r.to_string())
            })
            .unwrap_or_else(|| v.to_string()),
        Err(r) => return r.into_response(),
    };
    let format = params.get("format").map_or("raw", String::as_str);
    let data =
        tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    match engine
        .import_vdi(&caller, &vdi, format, Box::new(data))
        .await
    {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::routing::get;
    use axum::Router;
    use tokio_tungstenite::tungstenite::Message as Frame;

    use super::*;

    #[tokio::test]
    async fn the_bridge_carries_bytes_both_ways() {
        let (mut guest, console) = tokio::io::duplex(1024);
        let console = Arc::new(Mutex::new(Some(console)));
        let app = Router::new().route(
            "/ws",
            get(move |ws: WebSocketUpgrade| async move {
                let stream = console.lock().unwrap().take().unwrap();
                ws.on_upgrade(move |socket| bridge(socket, stream))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        client
            .send(Frame::Binary(b"typed".to_vec().into()))
            .await
            .unwrap();
        client.send(Frame::Text("ls\n".into())).await.unwrap();
        let mut got = vec![0u8; 8];
        guest.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"typedls\n");
        guest.write_all(b"login: ").await.unwrap();
        let reply = client.next().await.unwrap().unwrap();
        assert_eq!(reply, Frame::Binary(b"login: ".to_vec().into()));
        drop(guest);
        assert!(
            matches!(client.next().await, Some(Ok(Frame::Close(_))) | None),
            "the socket closes with the console"
        );
    }
}
