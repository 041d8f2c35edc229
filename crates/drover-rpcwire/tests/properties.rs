//! Property tests: arbitrary values survive both encodings, and no input makes
//! either parser panic.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use drover_rpcwire::jsonrpc::{self, Version};
use drover_rpcwire::{xmlrpc, Limits, WireValue};
use proptest::collection::vec;
use proptest::prelude::*;

fn leaf() -> impl Strategy<Value = WireValue> {
    prop_oneof![
        any::<String>().prop_map(WireValue::Str),
        any::<i64>().prop_map(WireValue::Int),
        any::<bool>().prop_map(WireValue::Bool),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(WireValue::Double),
        any::<String>().prop_map(WireValue::DateTime),
        vec(any::<u8>(), 0..40).prop_map(WireValue::Base64),
        Just(WireValue::Nil),
    ]
}

fn value() -> impl Strategy<Value = WireValue> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(WireValue::Array),
            vec((any::<String>(), inner), 0..8).prop_map(WireValue::Struct),
        ]
    })
}

/// Applies `f` to every string (values and member names) in `value`.
fn map_strings(value: &WireValue, f: &impl Fn(&str) -> String) -> WireValue {
    match value {
        WireValue::Str(s) => WireValue::Str(f(s)),
        WireValue::DateTime(s) => WireValue::DateTime(f(s)),
        WireValue::Array(items) => {
            WireValue::Array(items.iter().map(|v| map_strings(v, f)).collect())
        }
        WireValue::Struct(members) => WireValue::Struct(
            members
                .iter()
                .map(|(k, v)| (f(k), map_strings(v, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What XML-RPC can carry: characters XML 1.0 forbids become U+FFFD.
fn xml_legal(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\0'..='\u{1f}' | '\u{FFFE}' | '\u{FFFF}' => '\u{FFFD}',
            _ => c,
        })
        .collect()
}

/// What JSON carries: datetimes and binary become strings.
fn as_json(value: &WireValue) -> WireValue {
    match value {
        WireValue::DateTime(s) => WireValue::Str(s.clone()),
        WireValue::Base64(bytes) => WireValue::Str(STANDARD.encode(bytes)),
        WireValue::Array(items) => WireValue::Array(items.iter().map(as_json).collect()),
        WireValue::Struct(members) => WireValue::Struct(
            members
                .iter()
                .map(|(k, v)| (k.clone(), as_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Rewrites a `<methodResponse>` into a `<methodCall>` with the same parameter.
fn response_as_call(response: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(response).unwrap();
    text.replace("<methodResponse>", "<methodCall><methodName>r</methodName>")
        .replace("</methodResponse>", "</methodCall>")
        .into_bytes()
}

/// Extracts the result value from a V1 success response and wraps it as a call.
fn success_as_call(response: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(response).unwrap();
    let value = text
        .strip_prefix("{\"result\": ")
        .and_then(|rest| rest.strip_suffix(", \"error\": null, \"id\": null}"))
        .unwrap();
    format!("{{\"method\": \"r\", \"params\": [{value}]}}").into_bytes()
}

/// A valid XML-RPC call for `value`, used as a seed for corruption.
fn xml_call(value: &WireValue) -> Vec<u8> {
    let mut out = Vec::new();
    xmlrpc::write_response(&mut out, value);
    response_as_call(&out)
}

/// Fragments that steer random input deep into the XML-RPC grammar.
fn xml_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        "<methodCall>",
        "</methodCall>",
        "<methodName>m</methodName>",
        "<params>",
        "</params>",
        "<param>",
        "</param>",
        "<value>",
        "</value>",
        "<value/>",
        "<array>",
        "</array>",
        "<data>",
        "</data>",
        "<struct>",
        "</struct>",
        "<member>",
        "</member>",
        "<name>",
        "</name>",
        "<int>",
        "</int>",
        "<boolean>",
        "</boolean>",
        "<base64>",
        "</base64>",
        "<nil/>",
        "1",
        "x",
        " ",
        "&amp;",
        "&#65;",
        "&bogus;",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<",
        ">",
        "&",
    ]);
    vec(token, 0..60).prop_map(|tokens| tokens.concat().into_bytes())
}

proptest! {
    #[test]
    fn xmlrpc_round_trip(value in value()) {
        let mut out = Vec::new();
        xmlrpc::write_response(&mut out, &value);
        let call = xmlrpc::parse_call(&response_as_call(&out), &Limits::default()).unwrap();
        prop_assert_eq!(call.params, vec![map_strings(&value, &xml_legal)]);
    }

    #[test]
    fn jsonrpc_round_trip(value in value()) {
        let mut out = Vec::new();
        jsonrpc::write_success(&mut out, &serde_json::Value::Null, Version::V1, &value);
        let call = jsonrpc::parse_call(&success_as_call(&out), &Limits::default()).unwrap();
        prop_assert_eq!(call.call.params, vec![as_json(&value)]);
        prop_assert_eq!(call.version, Version::V1);
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in vec(any::<u8>(), 0..512)) {
        let _ = xmlrpc::parse_call(&body, &Limits::default());
        let _ = jsonrpc::parse_call(&body, &Limits::default());
    }

    #[test]
    fn xml_soup_never_panics(body in xml_soup()) {
        let _ = xmlrpc::parse_call(&body, &Limits::default());
    }

    #[test]
    fn corrupted_calls_never_panic(
        value in value(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut body = xml_call(&value);
        let position = at.index(body.len());
        body[position] = byte;
        let _ = xmlrpc::parse_call(&body, &Limits::default());
        body.truncate(cut.index(body.len()));
        let _ = xmlrpc::parse_call(&body, &Limits::default());

        let mut json = Vec::new();
        jsonrpc::write_success(&mut json, &serde_json::Value::Null, Version::V1, &value);
        let mut json = success_as_call(&json);
        let position = at.index(json.len());
        json[position] = byte;
        let _ = jsonrpc::parse_call(&json, &Limits::default());
        json.truncate(cut.index(json.len()));
        let _ = jsonrpc::parse_call(&json, &Limits::default());
    }
}
