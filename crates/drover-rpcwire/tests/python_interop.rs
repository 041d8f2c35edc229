//! Responses written here, read back by Python's `xmlrpc.client` and `json`,
//! and by serde_json.

use std::io::Write;
use std::process::{Command, Stdio};

use drover_rpcwire::jsonrpc::{write_failure, write_parse_error, write_success, Version};
use drover_rpcwire::xmlrpc::{write_fault, write_response};
use drover_rpcwire::WireValue;
use serde_json::json;
use WireValue::{Array, Base64, Bool, DateTime, Double, Int, Nil, Str, Struct};

/// Runs `script` under python3 with `input` on stdin; the script exits
/// non-zero (printing why) when the check fails.
fn python(script: &str, input: &[u8]) {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python check failed:\n{}{}\ninput:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(input)
    );
}

fn s(text: &str) -> WireValue {
    Str(text.to_owned())
}

/// Every variant, awkward strings, extreme numbers.
fn every_variant() -> WireValue {
    Struct(vec![
        ("str".into(), s("a&b <c> \"q\" 's' ]]> &amp;")),
        ("spaces".into(), s("  lead\n\ttrail \r\n")),
        ("empty".into(), s("")),
        ("unicode".into(), s("héllo ✓ 😀 \u{7f}\u{85}\u{FEFF}")),
        (
            "control".into(),
            s("bell\u{7}nul\u{0}esc\u{1b}\u{FFFE}\u{FFFF}."),
        ),
        ("int".into(), Int(42)),
        ("i32_min".into(), Int(i32::MIN.into())),
        ("i32_over".into(), Int(i64::from(i32::MAX) + 1)),
        ("i64_max".into(), Int(i64::MAX)),
        ("i64_min".into(), Int(i64::MIN)),
        ("true".into(), Bool(true)),
        ("false".into(), Bool(false)),
        ("double".into(), Double(0.1)),
        ("integral".into(), Double(3.0)),
        ("huge".into(), Double(1e300)),
        ("tiny".into(), Double(-5e-324)),
        ("inf".into(), Double(f64::INFINITY)),
        ("nan".into(), Double(f64::NAN)),
        ("dt".into(), DateTime("20230729T13:20:01Z".into())),
        ("b64".into(), Base64(vec![0, 1, 2, 255, 254, b'<'])),
        ("b64_empty".into(), Base64(vec![])),
        (
            "array".into(),
            Array(vec![Int(1), s("x"), Array(vec![]), Struct(vec![]), Nil]),
        ),
        ("nil".into(), Nil),
        ("key <&> \u{1}".into(), s("escaped key")),
    ])
}

#[test]
fn xmlrpc_response_read_by_python() {
    let mut out = Vec::new();
    write_response(&mut out, &every_variant());
    assert!(out.starts_with(b"<?xml version='1.0'?>\n<methodResponse><params><param><value>"));
    python(
        r#"
import sys, math, xmlrpc.client as x
(r,), method = x.loads(sys.stdin.buffer.read())
assert method is None
nan = r.pop('nan')
assert math.isnan(nan), nan
expected = {
    'str': 'a&b <c> "q" \'s\' ]]> &amp;',
    'spaces': '  lead\n\ttrail \r\n',
    'empty': '',
    'unicode': 'héllo ✓ 😀 \x7f\x85\ufeff',
    'control': 'bell\ufffdnul\ufffdesc\ufffd\ufffd\ufffd.',
    'int': 42,
    'i32_min': -2**31,
    'i32_over': 2**31,
    'i64_max': 2**63 - 1,
    'i64_min': -2**63,
    'true': True,
    'false': False,
    'double': 0.1,
    'integral': 3.0,
    'huge': 1e300,
    'tiny': -5e-324,
    'inf': float('inf'),
    'dt': x.DateTime('20230729T13:20:01Z'),
    'b64': x.Binary(bytes([0, 1, 2, 255, 254, 60])),
    'b64_empty': x.Binary(b''),
    'array': [1, 'x', [], {}, None],
    'nil': None,
    'key <&> \ufffd': 'escaped key',
}
bad = [k for k in set(r) | set(expected) if r.get(k, KeyError) != expected.get(k, KeyError)
       or type(r.get(k)) is not type(expected.get(k))]
for k in sorted(bad):
    print(repr(k), repr(r.get(k, 'MISSING')), '!=', repr(expected.get(k, 'MISSING')))
sys.exit(1 if bad else 0)
"#,
        &out,
    );
}

#[test]
fn xmlrpc_fault_read_by_python() {
    let mut out = Vec::new();
    write_fault(&mut out, -32700, "parse error: <bad> & \u{1}");
    python(
        r#"
import sys, xmlrpc.client as x
try:
    x.loads(sys.stdin.buffer.read())
except x.Fault as f:
    assert f.faultCode == -32700, f.faultCode
    assert f.faultString == 'parse error: <bad> & \ufffd', repr(f.faultString)
else:
    sys.exit('no fault raised')
"#,
        &out,
    );
}

fn every_variant_as_json() -> serde_json::Value {
    json!({
        "str": "a&b <c> \"q\" 's' ]]> &amp;",
        "spaces": "  lead\n\ttrail \r\n",
        "empty": "",
        "unicode": "héllo ✓ 😀 \u{7f}\u{85}\u{FEFF}",
        "control": "bell\u{7}nul\u{0}esc\u{1b}\u{FFFE}\u{FFFF}.",
        "int": 42,
        "i32_min": i32::MIN,
        "i32_over": i64::from(i32::MAX) + 1,
        "i64_max": i64::MAX,
        "i64_min": i64::MIN,
        "true": true,
        "false": false,
        "double": 0.1,
        "integral": 3.0,
        "huge": 1e300,
        "tiny": -5e-324,
        "inf": null,
        "nan": null,
        "dt": "20230729T13:20:01Z",
        "b64": "AAEC//48",
        "b64_empty": "",
        "array": [1, "x", [], {}, null],
        "nil": null,
        "key <&> \u{1}": "escaped key",
    })
}

#[test]
fn json_success_read_by_serde_json() {
    let id = json!({"seq": [1, "two"]});
    let mut out = Vec::new();
    write_success(&mut out, &id, Version::V1, &every_variant());
    let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        parsed,
        json!({"result": every_variant_as_json(), "error": null, "id": id})
    );

    out.clear();
    write_success(&mut out, &id, Version::V2, &every_variant());
    let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        parsed,
        json!({"jsonrpc": "2.0", "result": every_variant_as_json(), "id": id})
    );
    assert!(parsed["result"]["integral"].is_f64());
}

#[test]
fn json_success_read_by_python() {
    let mut out = Vec::new();
    write_success(&mut out, &json!(3), Version::V2, &every_variant());
    out.push(b'\n');
    out.extend_from_slice(every_variant_as_json().to_string().as_bytes());
    python(
        r#"
import sys, json
got, expected = sys.stdin.buffer.read().split(b'\n', 1)
got = json.loads(got)
assert got['jsonrpc'] == '2.0' and got['id'] == 3 and 'error' not in got, got
assert got['result'] == json.loads(expected), got['result']
assert isinstance(got['result']['integral'], float)
"#,
        &out,
    );
}

#[test]
fn json_failures_read_by_serde_json() {
    let params = ["OpaqueRef:1".to_owned(), "quote\"d\n".to_owned()];
    let mut out = Vec::new();
    write_failure(&mut out, &json!(9), Version::V1, "HANDLE_INVALID", &params);
    let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        parsed,
        json!({"result": null, "error": ["HANDLE_INVALID", "OpaqueRef:1", "quote\"d\n"], "id": 9})
    );

    out.clear();
    write_failure(
        &mut out,
        &json!("a"),
        Version::V2,
        "HANDLE_INVALID",
        &params,
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        parsed,
        json!({
            "jsonrpc": "2.0",
            "error": {"code": 1, "message": "HANDLE_INVALID", "data": ["OpaqueRef:1", "quote\"d\n"]},
            "id": "a"
        })
    );

    out.clear();
    write_parse_error(&mut out, "EOF while parsing \"x\"");
    let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        parsed,
        json!({
            "jsonrpc": "2.0",
            "error": {"code": -32700, "message": "EOF while parsing \"x\""},
            "id": null
        })
    );
}
