//! The answers of the REST layer, byte for byte as the original writes them.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value as Json};

use crate::error::ZvmError;
use crate::pyjson::dumps;

/// The `Content-Type` of the REST layer's own JSON errors.
const JSON_UTF8: &str = "application/json; charset=UTF-8";
/// The `Content-Type` of its HTML pages (and of some JSON errors).
const HTML_UTF8: &str = "text/html; charset=UTF-8";

/// How a call's return codes become an HTTP status, per route as in the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapper {
    /// Only the generic rules.
    Plain,
    /// Also the "does not exist" return codes → 404.
    NotFound,
    /// Also the "already exists" return codes → 409.
    AlreadyExists,
    /// Guest actions: "does not exist" → 404, a capture refused for the guest's state → 409.
    Action,
    /// Always 200.
    Always200,
}

/// The envelope of a backend result: `{overallRC, modID, rc, rs, errmsg, output}`.
pub fn envelope(result: &Result<Json, ZvmError>) -> Json {
    let mut m = Map::new();
    match result {
        Ok(output) => {
            m.insert("overallRC".into(), json!(0));
            m.insert("modID".into(), Json::Null);
            m.insert("rc".into(), json!(0));
            m.insert("rs".into(), json!(0));
            m.insert("errmsg".into(), json!(""));
            m.insert(
                "output".into(),
                if output.is_null() {
                    json!("")
                } else {
                    output.clone()
                },
            );
        }
        Err(e) => {
            let (overall, module, rc, rs) = e.codes();
            m.insert("overallRC".into(), json!(overall));
            m.insert("modID".into(), module);
            m.insert("rc".into(), json!(rc));
            m.insert("rs".into(), json!(rs));
            m.insert("errmsg".into(), json!(e.message()));
            m.insert("output".into(), json!(""));
        }
    }
    Json::Object(m)
}

/// The HTTP status of an envelope under a route's mapper.
pub fn status(env: &Json, mapper: Mapper) -> StatusCode {
    let get = |k: &str| env.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    let (overall, rc, rs) = (get("overallRC"), get("rc"), get("rs"));
    if overall == 0 || mapper == Mapper::Always200 {
        return StatusCode::OK;
    }
    let code = match overall {
        400 | 404 | 409 | 501 | 503 => overall as u16,
        100 => 400,
        _ => {
            let errmsg = env.get("errmsg").and_then(|v| v.as_str()).unwrap_or("");
            let not_found = matches!(
                (overall, rc, rs),
                (8, 212, 40) | (4, 5, 402) | (300, 300, 20) | (8, 400, 4) | (8, 200, 4)
            ) || ((overall, rc, rs) == (300, 300, 3)
                && errmsg.contains("not linked; not in CP directory"));
            let exists = matches!(
                (overall, rc, rs),
                (8, 212, 36) | (300, 300, 13) | (8, 400, 8)
            );
            let conflict = (overall, rc, rs) == (300, 300, 5);
            match mapper {
                Mapper::NotFound if not_found => 404,
                Mapper::AlreadyExists if exists => 409,
                Mapper::Action if not_found => 404,
                Mapper::Action if conflict => 409,
                _ => 500,
            }
        }
    };
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A backend result as the REST layer answers it.
pub fn result(result: &Result<Json, ZvmError>, mapper: Mapper) -> Response<Body> {
    let env = envelope(result);
    let code = status(&env, mapper);
    json_response(code, "application/json", dumps(&env))
}

/// A JSON body with the original's headers.
pub fn json_response(code: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// An error of the REST layer itself (`modID` 120), in its key order. Only those a handler
/// raises as an HTTP error (Malformed JSON, a bad action) pass the original's middleware that
/// adds `cache-control: no-cache`; validation and authentication failures, unhandled errors and
/// the router's 404/405 come out around it, without.
fn rest_error(code: StatusCode, ctype: &'static str, errmsg: &str) -> Response<Body> {
    let mut m = Map::new();
    m.insert("overallRC".into(), json!(400));
    m.insert("rc".into(), json!(400));
    m.insert("rs".into(), json!(code.as_u16()));
    m.insert("modID".into(), json!(120));
    m.insert("output".into(), json!(""));
    m.insert("errmsg".into(), json!(errmsg));
    uncached(json_response(code, ctype, dumps(&Json::Object(m))))
}

/// A response without the `cache-control` header.
fn uncached(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut().remove(header::CACHE_CONTROL);
    r
}

/// A request body that fails validation.
pub fn validation_error(errmsg: &str) -> Response<Body> {
    rest_error(StatusCode::BAD_REQUEST, JSON_UTF8, errmsg)
}

/// A request without valid credentials.
pub fn unauthorized() -> Response<Body> {
    rest_error(
        StatusCode::UNAUTHORIZED,
        JSON_UTF8,
        "This server could not verify that you are authorized to access the document you \
         requested. Either you supplied the wrong credentials (e.g., bad password), or your \
         browser does not understand how to supply the credentials required.",
    )
}

/// A request the REST layer refuses before validation (malformed JSON, unknown action):
/// JSON, but labelled HTML as the original does.
pub fn bad_request(errmsg: &str) -> Response<Body> {
    let mut r = rest_error(StatusCode::BAD_REQUEST, HTML_UTF8, errmsg);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// An unexpected failure of the REST layer, as the original answers an unhandled exception.
pub fn internal() -> Response<Body> {
    rest_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        JSON_UTF8,
        "The server has either erred or is incapable of performing the requested operation.",
    )
}

/// `404 Not Found` for an unknown route.
pub fn not_found(json_wanted: bool) -> Response<Body> {
    if json_wanted {
        return uncached(json_response(
            StatusCode::NOT_FOUND,
            "application/json",
            dumps(&json!({"errors": [{"status": 404, "title": "Not Found",
                "detail": "The resource could not be found.\n\n   "}]})),
        ));
    }
    html(
        StatusCode::NOT_FOUND,
        "404 Not Found",
        "The resource could not be found.<br /><br />\n\n\n\n",
    )
}

/// `405 Method Not Allowed` for a known route and another method.
pub fn method_not_allowed(method: &str, allow: &str, json_wanted: bool) -> Response<Body> {
    let mut r = if json_wanted {
        uncached(json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            dumps(
                &json!({"errors": [{"status": 405, "title": "Method Not Allowed",
                "detail": format!("The method {method} is not allowed for this resource. \n\n The method specified is not allowed for this resource.")}]}),
            ),
        ))
    } else {
        html(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed",
            &format!(
                "The method {method} is not allowed for this resource. <br /><br />\nThe method \
                 specified is not allowed for this resource.\n"
            ),
        )
    };
    if let Ok(v) = HeaderValue::from_str(allow) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

fn html(code: StatusCode, title: &str, text: &str) -> Response<Body> {
    let body = format!(
        "<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n  \
         {text} </body>\n</html>"
    );
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(HTML_UTF8));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_route_mappers() {
        let smt_exists = json!({"overallRC": 8, "rc": 400, "rs": 8});
        assert_eq!(
            status(&smt_exists, Mapper::AlreadyExists),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(&smt_exists, Mapper::Plain),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let capture = json!({"overallRC": 300, "rc": 300, "rs": 5});
        assert_eq!(status(&capture, Mapper::Action), StatusCode::CONFLICT);
        let image = json!({"overallRC": 300, "rc": 300, "rs": 20});
        assert_eq!(status(&image, Mapper::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status(&json!({"overallRC": 100}), Mapper::Plain),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(&json!({"overallRC": 500}), Mapper::Always200),
            StatusCode::OK
        );
    }
}
