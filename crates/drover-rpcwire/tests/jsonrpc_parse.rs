//! Parsing JSON-RPC requests as XenAPI's JSON clients write them.

use drover_rpcwire::jsonrpc::{parse_call, JsonCall, Version};
use drover_rpcwire::{Limits, WireError, WireValue};
use serde_json::json;
use WireValue::{Array, Bool, Double, Int, Nil, Str, Struct};

fn parse(body: &str) -> JsonCall {
    parse_call(body.as_bytes(), &Limits::default()).unwrap()
}

fn s(text: &str) -> WireValue {
    Str(text.to_owned())
}

#[test]
fn version_2_login() {
    let call = parse(
        r#"{"jsonrpc": "2.0", "method": "session.login_with_password",
            "params": ["root", "xenroot", "1.0", "drover-test"], "id": "8a3c"}"#,
    );
    assert_eq!(call.version, Version::V2);
    assert_eq!(call.id, json!("8a3c"));
    assert_eq!(call.call.method, "session.login_with_password");
    assert_eq!(
        call.call.params,
        vec![s("root"), s("xenroot"), s("1.0"), s("drover-test")]
    );
}

#[test]
fn version_1_defaults() {
    let call = parse(r#"{"method": "pool.get_all"}"#);
    assert_eq!(call.version, Version::V1);
    assert_eq!(call.id, json!(null));
    assert_eq!(call.call.params, vec![]);

    let call =
        parse(r#"{"id": {"any": [1, 2]}, "params": [], "method": "m", "extra": {"x": [1]}}"#);
    assert_eq!(call.id, json!({"any": [1, 2]}));
}

#[test]
fn value_mapping() {
    let call = parse(
        r#"{"method": "m", "params": [
            "a\"b\u00e9\n", 1, -1, 9223372036854775807, 18446744073709551615,
            1.5, 1.0, 1e3, true, false, null,
            [1, [], {}],
            {"z": 1, "a": {"n": null}, "m": "x"}
        ]}"#,
    );
    assert_eq!(
        call.call.params,
        vec![
            s("a\"bé\n"),
            Int(1),
            Int(-1),
            Int(i64::MAX),
            Double(18446744073709551615.0),
            Double(1.5),
            Double(1.0),
            Double(1000.0),
            Bool(true),
            Bool(false),
            Nil,
            Array(vec![Int(1), Array(vec![]), Struct(vec![])]),
            Struct(vec![
                ("z".into(), Int(1)),
                ("a".into(), Struct(vec![("n".into(), Nil)])),
                ("m".into(), s("x")),
            ]),
        ]
    );
}

#[test]
fn depth_exactly_at_the_limit_is_accepted() {
    let body = r#"{"method": "m", "params": [[{"k": [1]}]]}"#;
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    assert!(parse_call(body.as_bytes(), &limits).is_ok());
    let limits = Limits {
        max_depth: 2,
        ..limits
    };
    assert_eq!(
        parse_call(body.as_bytes(), &limits).map(|_| ()),
        Err(WireError::TooDeep)
    );
}
