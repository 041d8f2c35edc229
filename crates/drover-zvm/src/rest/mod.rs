//! The REST layer of z/VM Cloud Connector 1.6.3: routes, authentication, validation and the
//! mapping of return codes to HTTP statuses, in front of the [`Backend`].

mod auth;
mod files;
pub(crate) mod jsonerr;
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
    // As a WSGI server hands them on: the path unquoted into Latin-1 (`%2F` is a `/`), the
    // query decoded as UTF-8 when a handler reads it (`None`: it cannot be).
    let path = unquote_latin1(req.uri().path());
    let parsed_query = parse_query(req.uri().query().unwrap_or(""));
    let query = parsed_query.clone().unwrap_or_default();
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
    // Every handler of the original, `GET /` and `/smapi-healthy` included, checks the token.
    if !rest
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
            Err(_) => {
                return match jsonerr::python_error(&bytes) {
                    Some(e) => reply::bad_request(&format!("Malformed JSON: {e}")),
                    None => reply::internal(),
                }
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
    // Handlers that read the query fail on one that is not UTF-8 (those that validate only
    // their path never look at it).
    let reads_query = matches!(check, Check::Query(_))
        || matches!(
            route,
            Route::GuestStats | Route::GuestInterfaceStats | Route::GuestNics
        );
    if parsed_query.is_none() && reads_query {
        return reply::internal();
    }
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
        return reply::internal();
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
            // Added to every answer a handler returns by the original's middleware.
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
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

/// Query parameters in order, percent-decoded and read as UTF-8 as webob's `req.GET` does;
/// `None` when one is not UTF-8.
fn parse_query(q: &str) -> Option<Vec<(String, String)>> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let text = |s: &str| String::from_utf8(unquote(s, true)).ok();
            Some((text(k)?, text(v)?))
        })
        .collect()
}

/// A path as `urllib.parse.unquote(path, 'iso-8859-1')` makes `PATH_INFO`.
fn unquote_latin1(path: &str) -> String {
    unquote(path, false).into_iter().map(char::from).collect()
}

/// The bytes of a percent-encoded string (`+` a space when `plus`); a `%` not followed by
/// two hex digits stays.
fn unquote(s: &str, plus: bool) -> Vec<u8> {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}
