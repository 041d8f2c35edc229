//! The HTTP endpoints.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use drover_core::Engine;
use drover_rpcwire::{jsonrpc, xmlrpc, Limits, WireError, WireValue};

use crate::convert::{self, Enc};
use crate::dispatch::{self, Answer};
use crate::http;

/// Largest request body accepted.
const MAX_BODY: usize = 16 << 20;

/// The XenAPI routes, the console and disk upload handlers, and `GET /health`.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/", post(xml))
        .route("/RPC2", post(xml))
        .route("/jsonrpc", post(json))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .route("/health", get(|| async { "ok" }))
        .route("/console", get(http::console))
        .route(
            "/import_raw_vdi",
            put(http::import_raw_vdi).layer(DefaultBodyLimit::disable()),
        )
        .with_state(engine)
}

fn limits() -> Limits {
    Limits {
        max_body: MAX_BODY,
        ..Limits::default()
    }
}

fn reject(e: &WireError) -> StatusCode {
    match e {
        WireError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Frees a large reply off the request's path: dropping a whole inventory's records takes
/// longer than sending them.
fn release(value: WireValue) {
    let large = matches!(&value, WireValue::Struct(m) if m.len() > 64)
        || matches!(&value, WireValue::Struct(m) if m.iter().any(|(_, v)| matches!(v, WireValue::Struct(x) if x.len() > 64)));
    if large {
        tokio::task::spawn_blocking(move || drop(value));
    }
}

fn status_struct(result: Result<WireValue, dispatch::Failure>) -> WireValue {
    match result {
        Ok(v) => WireValue::Struct(vec![
            ("Status".into(), WireValue::Str("Success".into())),
            ("Value".into(), v),
        ]),
        Err(desc) => WireValue::Struct(vec![
            ("Status".into(), WireValue::Str("Failure".into())),
            (
                "ErrorDescription".into(),
                WireValue::Array(desc.into_iter().map(WireValue::Str).collect()),
            ),
        ]),
    }
}

async fn xml(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    let call = match xmlrpc::parse_call(&body, &limits()) {
        Ok(c) => c,
        Err(e) => {
            let mut out = Vec::new();
            xmlrpc::write_fault(&mut out, 400, &e.to_string());
            return (reject(&e), [(header::CONTENT_TYPE, "text/xml")], out).into_response();
        }
    };
    let result = dispatch::call(&engine, &call.method, &call.params, Enc::Xml).await;
    let mut out = Vec::with_capacity(4096);
    match result {
        Ok(Answer::Records(objs)) => xmlrpc::write_response_with(&mut out, |w| {
            w.begin_struct();
            w.member("Status");
            w.str("Success");
            w.end_member();
            w.member("Value");
            convert::stream_records(w, &objs);
            w.end_member();
            w.end_struct();
        }),
        other => {
            let reply = status_struct(other.map(|a| a.into_tree(Enc::Xml)));
            xmlrpc::write_response(&mut out, &reply);
            release(reply);
        }
    }
    ([(header::CONTENT_TYPE, "text/xml")], out).into_response()
}

async fn json(State(engine): State<Arc<Engine>>, body: Bytes) -> Response {
    let call = match jsonrpc::parse_call(&body, &limits()) {
        Ok(c) => c,
        Err(e) => {
            let mut out = Vec::new();
            jsonrpc::write_parse_error(&mut out, &e.to_string());
            return (
                reject(&e),
                [(header::CONTENT_TYPE, "application/json")],
                out,
            )
                .into_response();
        }
    };
    let result = dispatch::call(&engine, &call.call.method, &call.call.params, Enc::Json)
        .await
        .map(|a| a.into_tree(Enc::Json));
    let mut out = Vec::with_capacity(4096);
    match result {
        Ok(v) => {
            jsonrpc::write_success(&mut out, &call.id, call.version, &v);
            release(v);
        }
        Err(desc) => jsonrpc::write_failure(&mut out, &call.id, call.version, &desc[0], &desc[1..]),
    }
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}
