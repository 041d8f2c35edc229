//! The HTTP layer: the SSO endpoints and `/ovirt-engine/api`, content negotiation (XML by
//! default, JSON on `Accept: application/json`), the `Version` header, and faults.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Form, Json, Router};
use drover_core::Engine;
use serde_json::json;

use crate::api::{Api, Req, Resp};
use crate::auth::{self, BasicSessions, TOKEN_LIFETIME_SECS};
use crate::fault::ApiError;
use crate::routes;

/// Largest request body accepted.
const MAX_BODY: usize = 16 << 20;

/// The router of the oVirt API over `engine`.
pub fn router(engine: Arc<Engine>) -> Router {
    let api = Arc::new(Api {
        engine,
        basic: BasicSessions::default(),
    });
    Router::new()
        .route("/ovirt-engine/sso/oauth/token", post(token))
        .route("/ovirt-engine/services/sso-logout", post(sso_logout))
        .route("/ovirt-engine/api", any(root))
        .route("/ovirt-engine/api/", any(root))
        .route("/ovirt-engine/api/{*path}", any(api_path))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// The SSO token request's form.
#[derive(serde::Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    scope: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// `POST /ovirt-engine/sso/oauth/token`.
async fn token(State(api): State<Arc<Api>>, Form(form): Form<TokenForm>) -> Response {
    let sso_error = |code: &str, text: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error_code": code, "error": text})),
        )
            .into_response()
    };
    if form.grant_type.as_deref() != Some("password") {
        return sso_error(
            "unsupported_grant_type",
            "The grant type is not supported: only grant_type=password is",
        );
    }
    let (Some(user), Some(password)) = (form.username, form.password) else {
        return sso_error("invalid_request", "username and password are required");
    };
    match auth::login(&api.engine, &user, &password).await {
        Ok(token) => {
            let exp = (drover_core::now() + TOKEN_LIFETIME_SECS) * 1000;
            Json(json!({
                "access_token": token,
                "scope": form.scope.unwrap_or_else(|| "ovirt-app-api".into()),
                "exp": exp.to_string(),
                "token_type": "bearer",
            }))
            .into_response()
        }
        Err(ApiError::Unauthorized(text)) => sso_error("access_denied", &text),
        Err(e) => sso_error("server_error", e.detail()),
    }
}

/// The SSO logout request's form.
#[derive(serde::Deserialize)]
struct LogoutForm {
    token: Option<String>,
}

/// `POST /ovirt-engine/services/sso-logout`.
async fn sso_logout(State(api): State<Arc<Api>>, Form(form): Form<LogoutForm>) -> Response {
    let caller = form
        .token
        .as_deref()
        .and_then(|t| api.engine.authenticate(t).ok());
    match caller {
        Some(c) => match api.engine.logout(&c) {
            Ok(()) => Json(json!({"status": "logged out"})).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error_code": "server_error", "error": e.to_string()})),
            )
                .into_response(),
        },
        None => (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error_code": "invalid_grant", "error": "The token is unknown or expired"}),
            ),
        )
            .into_response(),
    }
}

async fn root(
    State(api): State<Arc<Api>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    serve(api, method, headers, String::new(), query, body).await
}

async fn api_path(
    State(api): State<Arc<Api>>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    serve(api, method, headers, path, query, body).await
}

/// Whether the client asked for JSON.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("application/xml"))
}

async fn serve(
    api: Arc<Api>,
    method: Method,
    headers: HeaderMap,
    path: String,
    query: Option<String>,
    body: Bytes,
) -> Response {
    let json = wants_json(&headers);
    match handle(&api, method, &headers, &path, query.as_deref(), body).await {
        Ok(resp) => render(resp.status, &resp, json),
        Err(e) => {
            let status = e.status();
            let mut r = render(
                status,
                &Resp {
                    status,
                    node: e.fault(),
                },
                json,
            );
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"RESTAPI\""),
                );
            }
            r
        }
    }
}

fn render(status: StatusCode, resp: &Resp, json: bool) -> Response {
    let (body, ctype) = if json {
        (
            serde_json::to_vec_pretty(&resp.node.to_json()).unwrap_or_default(),
            "application/json",
        )
    } else {
        (resp.node.to_xml(), "application/xml;charset=UTF-8")
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ctype)
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn handle(
    api: &Api,
    method: Method,
    headers: &HeaderMap,
    path: &str,
    query: Option<&str>,
    body: Bytes,
) -> Result<Resp, ApiError> {
    let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(v) = header_str("version") {
        if v.trim() != "4" {
            return Err(ApiError::BadRequest(format!(
                "version {v} of the API is not supported; this engine speaks version 4"
            )));
        }
    }
    let caller = api
        .basic
        .caller(&api.engine, header_str("authorization"))
        .await?;
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if segments.first().is_some_and(|s| s == "v4") {
        segments.remove(0);
    }
    let query = parse_query(query.unwrap_or(""));
    let json_body = header_str("content-type").is_some_and(|c| c.contains("json"));
    let correlation_id = header_str("correlation-id")
        .map(str::to_string)
        .or_else(|| query.get("correlation_id").cloned());
    let req = Req {
        caller,
        method,
        path: segments,
        query,
        body: body.to_vec(),
        json_body,
        correlation_id,
    };
    routes::dispatch(api, &req).await
}

/// Decodes a query string (`+` and percent escapes).
fn parse_query(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query("search=name%3Dvm1*+and+status%3Dup&max=10&x=%zz");
        assert_eq!(q["search"], "name=vm1* and status=up");
        assert_eq!(q["max"], "10");
        assert_eq!(q["x"], "%zz");
    }
}
