//! The REST layer of z/VM Cloud Connector 1.6.3: routes, authentication, validation and the
//! mapping of return codes to HTTP statuses, in front of the [`Backend`].

mod auth;
mod files;
mod reply;
mod routes;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use axum::Router;
use serde_json::{json, Value as Json};

pub use auth::Auth;
pub use reply::envelope;

use crate::api::Backend;
use crate::pyjson::dumps;
use crate::validate;
use routes::{Check, Route};

/// The largest request body read into memory (file uploads stream to disk instead).
const BODY_LIMIT: usize = 64 << 20;

/// What the REST handlers share.
#[derive(Clone)]
pub struct Rest {
    backend: Arc<Backend>,
    auth: Auth,
}

/// The REST layer's router.
pub fn router(backend: Arc<Backend>, auth: Auth) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Rest { backend, auth })
}

async fn handle(State(rest): State<Rest>, req: Request) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let headers = req.headers().clone();
    let json_wanted = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let Some(route) = Route::parse(&path) else {
        return reply::not_found(json_wanted);
    };
    let m = method.as_str();
    if !route.methods().contains(&m) {
        return reply::method_not_allowed(m, &route.methods().join(", "), json_wanted);
    }
    if route == Route::Token {
        return token(&rest.auth, &headers);
    }
    if !matches!(route, Route::Version | Route::Healthy)
        && !rest
            .auth
            .admits(headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()))
    {
        return reply::unauthorized();
    }
    match (&route, &method) {
        (Route::Version, _) => return version(),
        (Route::Healthy, _) => return healthy(),
        (Route::Files, &Method::PUT) => {
            return files::import(rest.backend.config(), req.into_body()).await
        }
        _ => {}
    }
    let body = if routes::reads_body(&route, m) {
        let bytes: Bytes = match axum::body::to_bytes(req.into_body(), BODY_LIMIT).await {
            Ok(b) => b,
            Err(e) => return reply::bad_request(&format!("Malformed JSON: {e}")),
        };
        match serde_json::from_slice::<Json>(&bytes) {
            Ok(v) => v,
            Err(e) => {
                return reply::bad_request(&format!(
                    "Malformed JSON: {}",
                    py_json_error(&bytes, &e)
                ))
            }
        }
    } else {
        Json::Null
    };
    if route == Route::Files {
        return files::export(rest.backend.config(), &body).await;
    }
    let (check, prepared) = match routes::prepare(&route, m, &body, &query) {
        Ok(p) => p,
        Err(msg) => return reply::bad_request(&msg),
    };
    let checked = match (check, &route) {
        (Check::None, _) => Ok(()),
        (Check::Body(schema), Route::FcpTemplate(id)) => {
            let mut with_id = body.clone();
            if let Json::Object(m) = &mut with_id {
                m.insert("fcp_template_id".into(), json!(id));
            }
            validate::body(schema, &with_id)
        }
        (Check::Body(schema), _) => validate::body(schema, &body),
        (Check::Query(schema), _) => validate::query(schema, &query),
        (
            Check::PathUserid,
            Route::Guest(u) | Route::GuestGet(u, _) | Route::VolumeConnector(u),
        ) => validate::path_userid(u),
        (Check::PathFcp, Route::Fcp(id)) => validate::path_fcp_id(id),
        _ => Ok(()),
    };
    if let Err(msg) = checked {
        return reply::validation_error(&msg);
    }
    let Some(p) = prepared else {
        return reply::internal("Unexpected internal error in ZVM SDK REST layer");
    };
    let result = rest.backend.call(p.api, p.args, p.kwargs).await;
    reply::result(&result, p.mapper)
}

/// `POST /token`.
fn token(auth: &Auth, headers: &HeaderMap) -> Response<Body> {
    let admin = headers.get("X-Admin-Token").and_then(|v| v.to_str().ok());
    match auth.issue(admin) {
        Some(t) => {
            let mut r = Response::new(Body::empty());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=UTF-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&t) {
                r.headers_mut().insert("X-Auth-Token", v);
            }
            r
        }
        None => reply::unauthorized(),
    }
}

/// `GET /`: the API version, in the original's key order.
fn version() -> Response<Body> {
    let body = json!({
        "rs": 0, "overallRC": 0, "modID": null, "rc": 0, "errmsg": "",
        "output": {"version": "1.6.3", "api_version": "1.0", "max_version": "1.0", "min_version": "1.0"}
    });
    reply::json_response(StatusCode::OK, "application/json", dumps(&body))
}

/// `GET /smapi-healthy`: the directory manager is this engine, healthy while it answers.
fn healthy() -> Response<Body> {
    let body = json!({"SMAPI": {"totalSuccess": 0, "totalFail": 0, "lastSuccess": "",
        "lastFail": "", "continueousFail": 0, "healthy": true}});
    reply::json_response(StatusCode::OK, "application/json", dumps(&body))
}

/// Query parameters in order, percent-decoded as a WSGI server does.
fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Python's `json.loads` error text for the common cases.
fn py_json_error(bytes: &[u8], e: &serde_json::Error) -> String {
    let text = String::from_utf8_lossy(bytes);
    let char_at = |line: usize, col: usize| -> usize {
        text.split('\n')
            .take(line.saturating_sub(1))
            .map(|l| l.chars().count() + 1)
            .sum::<usize>()
            + col.saturating_sub(1)
    };
    let (line, col) = (e.line().max(1), e.column().max(1));
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        let pos = text.chars().count();
        return format!("Expecting value: line 1 column {} (char {pos})", pos + 1);
    }
    let msg = e.to_string();
    let what = if msg.contains("key must be a string") {
        "Expecting property name enclosed in double quotes"
    } else if msg.contains("expected value") {
        "Expecting value"
    } else if msg.contains("trailing") {
        "Extra data"
    } else {
        "Expecting ',' delimiter"
    };
    format!(
        "{what}: line {line} column {col} (char {})",
        char_at(line, col)
    )
}
