//! The plain HTTP handlers (consoles, disk uploads) and storage calls, through the router, on a
//! simulated host.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use drover_core::{Caller, Engine, EngineConfig, Op, Reply, VmAction};
use drover_host::sim::{SimConfig, SimHost};
use drover_model::Value;
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    app: Router,
    session: String,
    caller: Caller,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(SimHost::new(SimConfig::default()));
    let config = EngineConfig {
        data_dir: dir.path().to_path_buf(),
        admin_password: Some("secret".into()),
        console_base: "http://127.0.0.1:8080".into(),
        tiny_guest: None,
        ..EngineConfig::default()
    };
    let engine = Engine::open(config, host).await.unwrap();
    let session = engine
        .login("root", "secret", "")
        .await
        .unwrap()
        .to_string();
    let caller = engine.authenticate(&session).unwrap();
    Fixture {
        _dir: dir,
        app: drover_xenapi::router(engine.clone()),
        engine,
        session,
        caller,
    }
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn put(uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(Method::PUT)
        .uri(uri)
        .body(Body::from(body))
        .unwrap()
}

async fn jsonrpc(app: &Router, method: &str, params: serde_json::Value) -> serde_json::Value {
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let req = Request::post("/jsonrpc")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(call.to_string()))
        .unwrap();
    let (status, body) = send(app, req).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_str(&body).unwrap()
}

/// A running VM with one disk; its reference.
async fn running_vm(f: &Fixture) -> String {
    let template = f.engine.read(|db| {
        db.all("VM")
            .find(|v| v.str("name_label") == "Other install media")
            .unwrap()
            .r
            .to_string()
    });
    let call = |op| f.engine.call(&f.caller, op);
    let Reply::Ref(vm) = call(Op::Vm {
        vm: template,
        action: VmAction::Clone { name: "web".into() },
    })
    .await
    .unwrap() else {
        panic!("a ref expected")
    };
    let vm = vm.to_string();
    call(Op::Vm {
        vm: vm.clone(),
        action: VmAction::Provision,
    })
    .await
    .unwrap();
    call(Op::SetField {
        class: "VM".into(),
        r: vm.clone(),
        field: "is_a_template".into(),
        value: Value::Bool(false),
    })
    .await
    .unwrap();
    call(Op::Vm {
        vm: vm.clone(),
        action: VmAction::Start {
            paused: false,
            force: false,
        },
    })
    .await
    .unwrap();
    vm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consoles_need_a_session_and_a_known_console() {
    let f = fixture().await;
    let (status, _) = send(&f.app, get("/console?ref=OpaqueRef:x")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(
        &f.app,
        get("/console?ref=OpaqueRef:x&session_id=OpaqueRef:bad"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = send(
        &f.app,
        get(&format!(
            "/console?ref=OpaqueRef:x&session_id={}",
            f.session
        )),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("HANDLE_INVALID"), "{body}");
    let vm = running_vm(&f).await;
    let console = f
        .engine
        .get("VM", &vm)
        .unwrap()
        .refs("consoles")
        .into_iter()
        .find(|c| f.engine.get("console", c).unwrap().str("protocol") == "vt100")
        .unwrap();
    let location = f
        .engine
        .get("console", &console)
        .unwrap()
        .str("location")
        .to_string();
    assert_eq!(
        location,
        format!("http://127.0.0.1:8080/console?ref={console}")
    );
    // The session may come as a cookie; the simulated host keeps no console output.
    let req = Request::get(format!("/console?ref={console}"))
        .header(header::COOKIE, format!("lang=en; session_id={}", f.session))
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let error: Vec<String> = serde_json::from_str(&body).unwrap();
    assert_eq!(error[0], "OPERATION_NOT_ALLOWED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_uploads_stream_past_the_rpc_body_limit() {
    let f = fixture().await;
    let vm = running_vm(&f).await;
    let vbd = f.engine.get("VM", &vm).unwrap().refs("VBDs")[0].clone();
    let disk = f.engine.get("VBD", &vbd).unwrap().str("VDI").to_string();
    let (status, body) = send(
        &f.app,
        put(
            &format!("/import_raw_vdi?session_id={}&vdi={disk}", f.session),
            vec![1; 16],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("VDI_IN_USE"), "{body}");

    let sr = f.engine.get("VDI", &disk).unwrap().str("SR").to_string();
    let Reply::Ref(blank) = f
        .engine
        .call(
            &f.caller,
            Op::Create {
                class: "VDI".into(),
                fields: vec![
                    ("SR".into(), Value::str(&sr)),
                    ("virtual_size".into(), Value::Int(64 << 20)),
                ],
            },
        )
        .await
        .unwrap()
    else {
        panic!("a ref expected")
    };
    let uuid = f.engine.get("VDI", &blank).unwrap().uuid().to_string();
    let big = vec![0x55; 20 << 20];
    let (status, body) = send(
        &f.app,
        put(
            &format!(
                "/import_raw_vdi?session_id={}&vdi={uuid}&format=raw&task_id=",
                f.session
            ),
            big,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(
        &f.app,
        put(
            &format!("/import_raw_vdi?session_id={}&vdi={blank}", f.session),
            vec![0; 65 << 20],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("IMPORT_ERROR"), "{body}");
    let (status, _) = send(&f.app, put("/import_raw_vdi?vdi=x", vec![])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(
        &f.app,
        put(&format!("/import_raw_vdi?session_id={}", f.session), vec![]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sr_create_makes_an_sr_with_its_pbd() {
    let f = fixture().await;
    let host = f.engine.this_host().to_string();
    let reply = jsonrpc(
        &f.app,
        "SR.create",
        serde_json::json!([f.session, host, {"location": "/srv/isos"}, "0", "ISOs", "", "iso", "", false, {}]),
    )
    .await;
    let sr = reply["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"))
        .to_string();
    let record = jsonrpc(&f.app, "SR.get_record", serde_json::json!([f.session, sr])).await;
    assert_eq!(record["result"]["type"], "iso");
    assert_eq!(record["result"]["content_type"], "iso");
    let pbd = record["result"]["PBDs"][0].as_str().unwrap().to_string();
    let pbd = jsonrpc(
        &f.app,
        "PBD.get_record",
        serde_json::json!([f.session, pbd]),
    )
    .await;
    assert_eq!(pbd["result"]["device_config"]["location"], "/srv/isos");
    assert_eq!(pbd["result"]["currently_attached"], true);
    let reply = jsonrpc(
        &f.app,
        "SR.create",
        serde_json::json!([f.session, host, {}, "0", "x", "", "lvm", "", false]),
    )
    .await;
    assert_eq!(reply["error"]["message"], "SR_UNKNOWN_DRIVER", "{reply}");
    let reply = jsonrpc(&f.app, "SR.destroy", serde_json::json!([f.session, sr])).await;
    assert!(reply["error"].is_null(), "{reply}");
}
