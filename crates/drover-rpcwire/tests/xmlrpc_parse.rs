//! Parsing XML-RPC requests as real clients write them.

use drover_rpcwire::xmlrpc::parse_call;
use drover_rpcwire::{Call, Limits, WireValue};
use WireValue::{Array, Base64, Bool, DateTime, Double, Int, Nil, Str, Struct};

fn parse(body: &str) -> Call {
    parse_call(body.as_bytes(), &Limits::default()).unwrap()
}

fn param(value_xml: &str) -> WireValue {
    let body = format!(
        "<methodCall><methodName>m</methodName><params><param><value>{value_xml}</value></param></params></methodCall>"
    );
    parse(&body).params.remove(0)
}

fn s(text: &str) -> WireValue {
    Str(text.to_owned())
}

#[test]
fn python_dumps_of_mixed_values() {
    let call = parse(include_str!("fixtures/vm_get_record.xml"));
    assert_eq!(call.method, "VM.get_record");
    assert_eq!(
        call.params,
        vec![
            s("a&b <c> \"q\" 's'"),
            s("  lead and trail \n"),
            s(""),
            s("héllo ✓ 😀"),
            Int(1),
            Int(-2147483648),
            Int(2147483647),
            Bool(true),
            Bool(false),
            Double(1.5),
            Double(-0.25),
            Double(1e300),
            Nil,
            Array(vec![
                Int(1),
                Array(vec![Int(2), Array(vec![])]),
                Struct(vec![
                    ("k".into(), s("v")),
                    ("n".into(), Struct(vec![("deep".into(), Array(vec![Nil]))])),
                ]),
            ]),
            Struct(vec![]),
        ]
    );
}

#[test]
fn python_login_with_password() {
    let call = parse(include_str!("fixtures/login_with_password.xml"));
    assert_eq!(call.method, "session.login_with_password");
    assert_eq!(
        call.params,
        vec![s("root"), s("xenroot"), s("1.0"), s("drover-test")]
    );
}

#[test]
fn python_datetime_and_wrapped_base64() {
    let call = parse(include_str!("fixtures/datetime_base64.xml"));
    assert_eq!(
        call.params,
        vec![
            DateTime("20230729T13:20:01Z".into()),
            Base64(b"\x00\x01hello\xff".repeat(10)),
        ]
    );
}

#[test]
fn empty_or_missing_params() {
    assert_eq!(parse(include_str!("fixtures/no_params.xml")).params, vec![]);
    let call = parse("<methodCall><methodName>pool.get_all</methodName></methodCall>");
    assert_eq!(call.method, "pool.get_all");
    assert_eq!(call.params, vec![]);
    assert_eq!(
        parse("<methodCall><methodName>x</methodName><params/></methodCall>").params,
        vec![]
    );
}

#[test]
fn bare_text_and_empty_values_are_strings() {
    assert_eq!(param("OpaqueRef:1234"), s("OpaqueRef:1234"));
    assert_eq!(param(""), s(""));
    assert_eq!(param("  spaced\n"), s("  spaced\n"));
    assert_eq!(param("<string/>"), s(""));
    let call = parse("<methodCall><methodName>m</methodName><params><param><value/></param></params></methodCall>");
    assert_eq!(call.params, vec![s("")]);
}

#[test]
fn whitespace_around_typed_values_is_ignored() {
    assert_eq!(param("\n  <int>5</int>\n"), Int(5));
    assert_eq!(
        param("<string> keep \r\n me </string>"),
        s(" keep \r\n me ")
    );
}

#[test]
fn references_and_cdata() {
    assert_eq!(
        param("<string>&amp;&lt;&gt;&quot;&apos;&#10;&#x41;&#233;</string>"),
        s("&<>\"'\nAé")
    );
    assert_eq!(param("a&amp;b"), s("a&b"));
    assert_eq!(
        param("<string><![CDATA[<not> &markup;]]> tail</string>"),
        s("<not> &markup; tail")
    );
}

#[test]
fn integer_and_number_forms() {
    assert_eq!(param("<i4>-7</i4>"), Int(-7));
    assert_eq!(param("<i8>9223372036854775807</i8>"), Int(i64::MAX));
    assert_eq!(param("<int> 42 </int>"), Int(42));
    assert_eq!(param("<double>1e-7</double>"), Double(1e-7));
    assert_eq!(param("<double>-3</double>"), Double(-3.0));
    assert!(matches!(param("<double>nan</double>"), Double(x) if x.is_nan()));
    assert_eq!(param("<double>inf</double>"), Double(f64::INFINITY));
}

#[test]
fn nil_forms() {
    assert_eq!(param("<nil/>"), Nil);
    assert_eq!(param("<nil></nil>"), Nil);
    assert_eq!(param("<ex:nil/>"), Nil);
}

#[test]
fn comments_prolog_and_attributes_are_tolerated() {
    let call = parse(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- hi -->\
         <methodCall xmlns:ex=\"http://ws.apache.org/xmlrpc/namespaces/extensions\">\
         <methodName>m</methodName><params><param><value><!-- c --><ex:nil/></value></param>\
         </params></methodCall>\n<!-- bye -->\n",
    );
    assert_eq!(call.params, vec![Nil]);
}

#[test]
fn struct_members_keep_order_and_duplicates() {
    let v = param(
        "<struct><member><name>z</name><value>1</value></member>\
         <member><name>a</name><value><int>2</int></value></member>\
         <member><name>z</name><value/></member></struct>",
    );
    assert_eq!(
        v,
        Struct(vec![
            ("z".into(), s("1")),
            ("a".into(), Int(2)),
            ("z".into(), s(""))
        ])
    );
}

#[test]
fn control_characters_sent_raw_by_python_are_kept() {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xmlrpc.client as x; sys.stdout.write(x.dumps(('a\\x01b\\x7f',), methodname='m'))",
        ])
        .output()
        .expect("python3 runs");
    assert!(out.status.success());
    let call = parse_call(&out.stdout, &Limits::default()).unwrap();
    assert_eq!(call.params, vec![s("a\u{1}b\u{7f}")]);
}

#[test]
fn depth_exactly_at_the_limit_is_accepted() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let nested = "<array><data><value><struct><member><name>k</name><value>\
                  <array><data><value><int>1</int></value></data></array>\
                  </value></member></struct></value></data></array>";
    let body = format!(
        "<methodCall><methodName>m</methodName><params><param><value>{nested}</value></param></params></methodCall>"
    );
    assert!(parse_call(body.as_bytes(), &limits).is_ok());
    let limits = Limits {
        max_depth: 2,
        ..limits
    };
    assert_eq!(
        parse_call(body.as_bytes(), &limits),
        Err(drover_rpcwire::WireError::TooDeep)
    );
}
