//! Hostile and broken request bodies: every one is an error, none panics.

use drover_rpcwire::{jsonrpc, xmlrpc, Limits, WireError};

fn xml(body: &[u8]) -> Result<drover_rpcwire::Call, WireError> {
    xmlrpc::parse_call(body, &Limits::default())
}

fn json(body: &[u8]) -> Result<jsonrpc::JsonCall, WireError> {
    jsonrpc::parse_call(body, &Limits::default())
}

fn xml_param(value_xml: &str) -> Result<drover_rpcwire::Call, WireError> {
    xml(format!(
        "<methodCall><methodName>m</methodName><params><param><value>{value_xml}</value></param></params></methodCall>"
    )
    .as_bytes())
}

fn assert_malformed<T: std::fmt::Debug>(result: Result<T, WireError>) {
    match result {
        Err(WireError::Malformed(message)) => assert!(!message.is_empty()),
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn xml_every_truncation_fails() {
    let body = include_bytes!("fixtures/vm_get_record.xml");
    let root_end = body
        .windows(13)
        .position(|w| w == b"</methodCall>")
        .unwrap()
        + 13;
    assert!(xml(body).is_ok());
    for end in 0..root_end {
        assert!(xml(&body[..end]).is_err(), "prefix of {end} bytes parsed");
    }
}

#[test]
fn xml_unknown_elements() {
    assert_malformed(xml_param("<foo>1</foo>"));
    assert_malformed(xml_param("<int>1<b/></int>"));
    assert_malformed(xml(
        b"<methodCall><bogus/><methodName>m</methodName></methodCall>",
    ));
    assert_malformed(xml(b"<methodResponse><params/></methodResponse>"));
    assert_malformed(xml(
        b"<methodCall><methodName>m</methodName><params><junk/></params></methodCall>",
    ));
    assert_malformed(xml(
        b"<methodCall><methodName>m</methodName><extra/></methodCall>",
    ));
}

#[test]
fn xml_doctype_and_entities_are_refused() {
    let laughs = b"<?xml version=\"1.0\"?>\
        <!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;\">]>\
        <methodCall><methodName>&lol2;</methodName></methodCall>";
    assert_malformed(xml(laughs));
    let external = b"<!DOCTYPE m [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
        <methodCall><methodName>&xxe;</methodName></methodCall>";
    assert_malformed(xml(external));
    assert_malformed(xml(
        b"<methodCall><methodName>&xxe;</methodName></methodCall>",
    ));
    assert_malformed(xml_param("<string>&#0;</string>"));
    assert_malformed(xml_param("<string>&#xD800;</string>"));
    assert_malformed(xml_param("a & b"));
}

#[test]
fn xml_wrong_structure() {
    assert_malformed(xml(b""));
    assert_malformed(xml(b"   "));
    assert_malformed(xml(b"not xml at all"));
    assert_malformed(xml_param("<array><value>1</value></array>"));
    assert_malformed(xml_param("<array/>"));
    assert_malformed(xml_param(
        "<struct><member><value>1</value><name>k</name></member></struct>",
    ));
    assert_malformed(xml_param(
        "<struct><member><name>k</name></member></struct>",
    ));
    assert_malformed(xml_param("text<int>1</int>"));
    assert_malformed(xml_param("<int>1</int>text"));
    assert_malformed(xml_param("<int>1</int><int>2</int>"));
    assert_malformed(xml_param("<nil>x</nil>"));
    assert_malformed(xml(
        b"<methodCall><methodName>m</methodName><params><param><value>1</value></params></param></methodCall>",
    ));
    assert_malformed(xml(
        b"<methodCall><methodName>m</methodName><params><param></param></params></methodCall>",
    ));
    assert_malformed(xml(
        b"<methodCall><methodName>m</methodName><params>text</params></methodCall>",
    ));
}

#[test]
fn xml_trailing_garbage() {
    let ok = "<methodCall><methodName>m</methodName></methodCall>";
    assert!(xml(format!("{ok} \n<!-- c -->\n").as_bytes()).is_ok());
    assert_malformed(xml(format!("{ok}x").as_bytes()));
    assert_malformed(xml(format!("{ok}{ok}").as_bytes()));
    assert_malformed(xml(format!("{ok}</methodCall>").as_bytes()));
    assert_malformed(xml(format!("{ok}<?pi x?>").as_bytes()));
    assert_malformed(xml(format!("{ok}<?xml version='1.0'?>").as_bytes()));
}

#[test]
fn xml_bad_scalars() {
    assert_malformed(xml_param("<int>99999999999999999999</int>"));
    assert_malformed(xml_param("<i8>-9223372036854775809</i8>"));
    assert_malformed(xml_param("<int></int>"));
    assert_malformed(xml_param("<int>1.5</int>"));
    assert_malformed(xml_param("<boolean>2</boolean>"));
    assert_malformed(xml_param("<boolean>true</boolean>"));
    assert_malformed(xml_param("<boolean/>"));
    assert_malformed(xml_param("<double>one</double>"));
    assert_malformed(xml_param("<base64>not*base64</base64>"));
}

#[test]
fn xml_invalid_utf8() {
    assert_malformed(xml(
        b"<methodCall><methodName>m\xff</methodName></methodCall>",
    ));
    assert_malformed(xml(b"\xfe\xff<methodCall/>"));
}

#[test]
fn xml_deep_nesting_is_too_deep() {
    let levels = 100_000;
    let mut body = String::from("<methodCall><methodName>m</methodName><params><param><value>");
    body.push_str(&"<array><data><value>".repeat(levels));
    assert_eq!(xml(body.as_bytes()), Err(WireError::TooDeep));

    let mut body = String::from("<methodCall><methodName>m</methodName><params><param><value>");
    body.push_str(&"<struct><member><name>k</name><value>".repeat(levels));
    body.push('1');
    body.push_str(&"</value></member></struct>".repeat(levels));
    body.push_str("</value></param></params></methodCall>");
    assert_eq!(xml(body.as_bytes()), Err(WireError::TooDeep));

    assert_malformed(xml("<a>".repeat(levels).as_bytes()));
}

#[test]
fn xml_body_over_limit_is_refused_before_parsing() {
    let limits = Limits {
        max_body: 64,
        ..Limits::default()
    };
    let body = vec![b'<'; 65];
    assert_eq!(xmlrpc::parse_call(&body, &limits), Err(WireError::TooLarge));
    let ok = b"<methodCall><methodName>m</methodName></methodCall>";
    assert!(xmlrpc::parse_call(ok, &limits).is_ok());
}

#[test]
fn json_not_a_request() {
    assert_malformed(json(b""));
    assert_malformed(json(b"<methodCall/>"));
    assert_malformed(json(b"{\"method\": \"m\""));
    assert_malformed(json(b"{\"method\": \"m\"} x"));
    assert_malformed(json(b"[{\"method\": \"m\"}]"));
    assert_malformed(json(b"\"m\""));
    assert_malformed(json(b"{\"params\": []}"));
    assert_malformed(json(b"{\"method\": 1}"));
    assert_malformed(json(b"{\"method\": \"m\", \"params\": {\"a\": 1}}"));
    assert_malformed(json(b"{\"method\": \"m\", \"params\": null}"));
    assert_malformed(json(b"{\"method\": \"m\", \"method\": \"n\"}"));
    assert_malformed(json(b"{\"method\": \"m\", \"jsonrpc\": \"1.0\"}"));
    assert_malformed(json(b"{\"method\": \"m\", \"jsonrpc\": 2}"));
    assert_malformed(json(b"{\"method\": \"m\", \"jsonrpc\": null}"));
    assert_malformed(json(b"{\"method\": \"m\", \"params\": [NaN]}"));
}

#[test]
fn json_every_truncation_fails() {
    let body = br#"{"jsonrpc": "2.0", "method": "VM.get_record", "params": ["s", [1, {"k": null}]], "id": 7}"#;
    assert!(json(body).is_ok());
    for end in 0..body.len() {
        assert!(json(&body[..end]).is_err(), "prefix of {end} bytes parsed");
    }
}

#[test]
fn json_invalid_utf8() {
    assert_malformed(json(b"{\"method\": \"m\xff\"}"));
    assert_malformed(json(b"{\"method\": \"m\", \"params\": [\"\xc3\"]}"));
}

#[test]
fn json_deep_nesting_is_too_deep() {
    let levels = 100_000;
    let deep_array = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let deep_object = format!("{}1{}", "{\"k\":".repeat(levels), "}".repeat(levels));
    for deep in [&deep_array, &deep_object] {
        for body in [
            format!("{{\"method\": \"m\", \"params\": [{deep}]}}"),
            format!("{{\"method\": \"m\", \"id\": {deep}}}"),
        ] {
            assert_eq!(json(body.as_bytes()).map(|_| ()), Err(WireError::TooDeep));
        }
        // Unknown members are skipped by serde_json without recursion.
        let ignored = format!("{{\"method\": \"m\", \"other\": {deep}}}");
        assert!(json(ignored.as_bytes()).is_ok());
        assert_malformed(json(deep.as_bytes()));
    }
}

#[test]
fn json_body_over_limit_is_refused_before_parsing() {
    let limits = Limits {
        max_body: 64,
        ..Limits::default()
    };
    assert_eq!(
        jsonrpc::parse_call(&[b'x'; 65], &limits).map(|_| ()),
        Err(WireError::TooLarge)
    );
}

#[test]
fn errors_display_briefly() {
    assert_eq!(WireError::TooLarge.to_string(), "request body too large");
    assert_eq!(WireError::TooDeep.to_string(), "request nested too deeply");
    let Err(error) = xml_param("<boolean>2</boolean>") else {
        panic!("accepted a bad boolean");
    };
    assert_eq!(
        error.to_string(),
        "malformed request: <boolean> must be 0 or 1"
    );
}
