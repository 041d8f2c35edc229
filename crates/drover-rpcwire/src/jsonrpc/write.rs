use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::Version;
use crate::number::{push_f64, push_i64};
use crate::scan::{bytes_below, bytes_equal, find};
use crate::WireValue;

/// Appends a success response carrying `result`.
///
/// V1: `{"result": …, "error": null, "id": …}`;
/// V2: `{"jsonrpc": "2.0", "result": …, "id": …}`.
pub fn write_success(
    out: &mut Vec<u8>,
    id: &serde_json::Value,
    version: Version,
    result: &WireValue,
) {
    out.extend_from_slice(match version {
        Version::V1 => b"{\"result\": ".as_slice(),
        Version::V2 => b"{\"jsonrpc\": \"2.0\", \"result\": ",
    });
    write_value(out, result);
    if version == Version::V1 {
        out.extend_from_slice(b", \"error\": null");
    }
    push_id(out, id);
}

/// Appends an error response for the XenAPI error `code` with its `params`.
///
/// V1: `{"result": null, "error": ["CODE", "p1", …], "id": …}`;
/// V2: `{"jsonrpc": "2.0", "error": {"code": 1, "message": "CODE", "data": ["p1", …]}, "id": …}`.
pub fn write_failure(
    out: &mut Vec<u8>,
    id: &serde_json::Value,
    version: Version,
    code: &str,
    params: &[String],
) {
    match version {
        Version::V1 => {
            out.extend_from_slice(b"{\"result\": null, \"error\": [");
            push_str(out, code);
            for param in params {
                out.extend_from_slice(b", ");
                push_str(out, param);
            }
            out.push(b']');
        }
        Version::V2 => {
            out.extend_from_slice(b"{\"jsonrpc\": \"2.0\", \"error\": {\"code\": 1, \"message\": ");
            push_str(out, code);
            out.extend_from_slice(b", \"data\": [");
            for (i, param) in params.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                push_str(out, param);
            }
            out.extend_from_slice(b"]}");
        }
    }
    push_id(out, id);
}

/// Appends a JSON-RPC 2.0 parse error (`code` -32700, `id` null), for bodies
/// that could not be read as a request at all.
pub fn write_parse_error(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(b"{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32700, \"message\": ");
    push_str(out, message);
    out.extend_from_slice(b"}, \"id\": null}");
}

/// Appends `, "id": <id>}`, closing the response object.
fn push_id(out: &mut Vec<u8>, id: &serde_json::Value) {
    out.extend_from_slice(b", \"id\": ");
    out.extend_from_slice(id.to_string().as_bytes());
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, value: &WireValue) {
    match value {
        WireValue::Str(s) | WireValue::DateTime(s) => push_str(out, s),
        WireValue::Int(n) => push_i64(out, *n),
        WireValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        WireValue::Double(x) if x.is_finite() => push_f64(out, *x),
        WireValue::Double(_) | WireValue::Nil => out.extend_from_slice(b"null"),
        WireValue::Base64(bytes) => push_str(out, &STANDARD.encode(bytes)),
        WireValue::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        WireValue::Struct(members) => {
            out.push(b'{');
            for (i, (name, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, name);
                out.push(b':');
                write_value(out, member);
            }
            out.push(b'}');
        }
    }
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// `true` if no byte of `word` satisfies [`needs_escape`].
fn clean_word(word: u64) -> bool {
    bytes_below(word, 0x20) | bytes_equal(word, b'"') | bytes_equal(word, b'\\') == 0
}

/// Appends `text` as a quoted JSON string.
fn push_str(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut done = 0;
    while let Some(offset) = find(&bytes[done..], needs_escape, clean_word) {
        let at = done + offset;
        out.extend_from_slice(&bytes[done..at]);
        match bytes[at] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            control => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(control >> 4)]);
                out.push(HEX[usize::from(control & 0xf)]);
            }
        }
        done = at + 1;
    }
    out.extend_from_slice(&bytes[done..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_strings() {
        let s = text(|out| push_str(out, "a\"b\\c\n\r\t\u{1}\u{1f}é"));
        assert_eq!(s, r#""a\"b\\c\n\r\t\u0001\u001fé""#);
    }

    #[test]
    fn success_envelopes() {
        let v = WireValue::Array(vec![WireValue::Int(-3), WireValue::Double(f64::NAN)]);
        assert_eq!(
            text(|out| write_success(out, &json!(7), Version::V1, &v)),
            r#"{"result": [-3,null], "error": null, "id": 7}"#
        );
        assert_eq!(
            text(|out| write_success(out, &json!("x"), Version::V2, &WireValue::Nil)),
            r#"{"jsonrpc": "2.0", "result": null, "id": "x"}"#
        );
    }

    #[test]
    fn failure_envelopes() {
        let params = ["a".to_owned(), "b\"".to_owned()];
        assert_eq!(
            text(|out| write_failure(out, &json!(1), Version::V1, "HANDLE_INVALID", &params)),
            r#"{"result": null, "error": ["HANDLE_INVALID", "a", "b\""], "id": 1}"#
        );
        assert_eq!(
            text(|out| write_failure(out, &json!(null), Version::V2, "SESSION_INVALID", &[])),
            r#"{"jsonrpc": "2.0", "error": {"code": 1, "message": "SESSION_INVALID", "data": []}, "id": null}"#
        );
    }

    #[test]
    fn parse_error_envelope() {
        assert_eq!(
            text(|out| write_parse_error(out, "expected value")),
            r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "expected value"}, "id": null}"#
        );
    }
}
