//! Tests of the QMP client against a scripted fake QMP server.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use drover_qmp::{Qmp, QmpError};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(5);

/// The server side of one fake QMP connection.
struct FakeConn {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl FakeConn {
    async fn send_raw(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
        self.write.flush().await.unwrap();
    }

    async fn send(&mut self, v: Value) {
        self.send_raw(format!("{v}\r\n").as_bytes()).await;
    }

    /// Receives the next command; `None` on EOF.
    async fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        if self.read.read_line(&mut line).await.unwrap() == 0 {
            return None;
        }
        Some(serde_json::from_str(&line).expect("client sent invalid JSON"))
    }

    /// Receives a command, asserting its name; returns its (id, arguments).
    async fn expect(&mut self, name: &str) -> (Value, Value) {
        let cmd = self.recv().await.expect("client closed");
        assert_eq!(cmd["execute"], name, "unexpected command {cmd}");
        (cmd["id"].clone(), cmd["arguments"].clone())
    }

    async fn reply(&mut self, id: &Value, ret: Value) {
        self.send(json!({"return": ret, "id": id})).await;
    }

    async fn event(&mut self, name: &str, data: Value) {
        self.send(json!({"event": name, "data": data,
            "timestamp": {"seconds": 1700000000, "microseconds": 42}}))
            .await;
    }

    async fn greeting(&mut self) {
        self.send(
            json!({"QMP": {"version": {"qemu": {"micro": 19, "minor": 2, "major": 7},
            "package": "Debian 1:7.2+dfsg-7+deb12u1"}, "capabilities": ["oob"]}}),
        )
        .await;
    }

    /// Sends the greeting and requires `qmp_capabilities` before anything else.
    async fn handshake(&mut self) {
        self.greeting().await;
        loop {
            let cmd = self.recv().await.expect("client closed during handshake");
            if cmd["execute"] == "qmp_capabilities" {
                self.reply(&cmd["id"], json!({})).await;
                return;
            }
            self.send(json!({"error": {"class": "CommandNotFound",
                "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"},
                "id": cmd["id"]}))
                .await;
        }
    }
}

/// Starts a fake server accepting one connection, run by `script`.
fn serve<F, Fut>(script: F) -> (tempfile::TempDir, PathBuf, JoinHandle<()>)
where
    F: FnOnce(FakeConn) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, write) = stream.into_split();
        script(FakeConn {
            read: BufReader::new(read),
            write,
        })
        .await;
    });
    (dir, path, task)
}

async fn finish(task: JoinHandle<()>) {
    tokio::time::timeout(T, task)
        .await
        .expect("fake server hung")
        .expect("fake server panicked");
}

#[tokio::test]
async fn connect_negotiates_and_parses_greeting() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        let (id, args) = c.expect("query-status").await;
        assert_eq!(args, Value::Null, "no arguments key when None");
        c.reply(&id, json!({"running": true, "status": "running"}))
            .await;
        let (id, args) = c.expect("human-monitor-command").await;
        assert_eq!(args, json!({"command-line": "info version"}));
        c.reply(&id, json!("7.2.19\r\n")).await;
    });
    let (qmp, greeting) = Qmp::connect(&path, T).await.unwrap();
    assert_eq!((greeting.major, greeting.minor, greeting.micro), (7, 2, 19));
    assert_eq!(greeting.package, "Debian 1:7.2+dfsg-7+deb12u1");
    assert_eq!(greeting.capabilities, vec!["oob".to_owned()]);
    let status = qmp.execute("query-status", None, T).await.unwrap();
    assert_eq!(status["status"], "running");
    let out = qmp
        .execute(
            "human-monitor-command",
            Some(json!({"command-line": "info version"})),
            T,
        )
        .await
        .unwrap();
    assert_eq!(out, "7.2.19\r\n");
    finish(task).await;
}

#[tokio::test]
async fn error_reply_maps_to_command_error() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        let cmd = c.recv().await.unwrap();
        c.send(
            json!({"error": {"class": "DeviceNotFound", "desc": "Device 'x' not found"},
            "id": cmd["id"]}),
        )
        .await;
        let (id, _) = c.expect("stop").await;
        c.reply(&id, json!({})).await;
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    match qmp.execute("device_del", Some(json!({"id": "x"})), T).await {
        Err(QmpError::Command { class, desc }) => {
            assert_eq!(class, "DeviceNotFound");
            assert_eq!(desc, "Device 'x' not found");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(qmp.execute("stop", None, T).await.unwrap(), json!({}));
    finish(task).await;
}

#[tokio::test]
async fn non_object_arguments_rejected_locally() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        let (id, _) = c.expect("cont").await;
        c.reply(&id, json!({})).await;
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let err = qmp.execute("cont", Some(json!([1])), T).await.unwrap_err();
    assert!(matches!(err, QmpError::Protocol(_)), "{err:?}");
    qmp.execute("cont", None, T).await.unwrap();
    finish(task).await;
}

#[tokio::test]
async fn negotiation_failure_is_reported() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.greeting().await;
        let (id, _) = c.expect("qmp_capabilities").await;
        c.send(json!({"error": {"class": "GenericError", "desc": "no"}, "id": id}))
            .await;
    });
    let err = Qmp::connect(&path, T).await.unwrap_err();
    assert!(
        matches!(&err, QmpError::Command { class, .. } if class == "GenericError"),
        "{err:?}"
    );
    finish(task).await;
}

#[tokio::test]
async fn bad_greeting_is_protocol_error() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.send(json!({"hello": 1})).await;
    });
    let err = Qmp::connect(&path, T).await.unwrap_err();
    assert!(matches!(err, QmpError::Protocol(_)), "{err:?}");
    finish(task).await;
}

#[tokio::test]
async fn connect_errors_and_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let err = Qmp::connect(&dir.path().join("missing.sock"), T)
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Io(_)), "{err:?}");

    // A server that never greets.
    let (_dir, path, task) = serve(|mut c| async move {
        assert!(c.recv().await.is_none(), "client should send nothing");
    });
    let err = Qmp::connect(&path, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Timeout { .. }), "{err:?}");
    finish(task).await;

    // Closed right after accepting.
    let (_dir, path, task) = serve(|c| async move { drop(c) });
    let err = Qmp::connect(&path, T).await.unwrap_err();
    assert!(matches!(err, QmpError::Closed), "{err:?}");
    finish(task).await;
}

#[tokio::test]
async fn events_delivered_while_commands_run() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        c.event("RESUME", json!({})).await;
        let (id, _) = c.expect("system_powerdown").await;
        // Events before and after the reply, plus an event without data.
        c.event("POWERDOWN", json!({})).await;
        c.reply(&id, json!({})).await;
        c.send(json!({"event": "STOP", "timestamp": {"seconds": 3, "microseconds": 4}}))
            .await;
        c.event(
            "SHUTDOWN",
            json!({"guest": true, "reason": "guest-shutdown"}),
        )
        .await;
        let (id, _) = c.expect("query-status").await;
        c.reply(&id, json!({"status": "shutdown"})).await;
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let mut events = qmp.events();
    qmp.execute("system_powerdown", None, T).await.unwrap();
    let status = qmp.execute("query-status", None, T).await.unwrap();
    assert_eq!(status["status"], "shutdown");
    let mut names = Vec::new();
    for _ in 0..4 {
        let ev = tokio::time::timeout(T, events.recv())
            .await
            .unwrap()
            .unwrap();
        match ev.name.as_str() {
            "STOP" => {
                assert_eq!(ev.data, Value::Null);
                assert_eq!(ev.timestamp_us, 3_000_004);
            }
            "SHUTDOWN" => {
                assert_eq!(ev.data["reason"], "guest-shutdown");
                assert_eq!(ev.timestamp_us, 1_700_000_000_000_042);
            }
            _ => {}
        }
        names.push(ev.name);
    }
    assert_eq!(names, ["RESUME", "POWERDOWN", "STOP", "SHUTDOWN"]);
    finish(task).await;
}

#[tokio::test]
async fn event_and_reply_in_one_write_and_split_reply() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        let (id, _) = c.expect("query-name").await;
        // An event and the reply in a single write.
        let both = format!(
            "{}\r\n{}\r\n",
            json!({"event": "RTC_CHANGE", "data": {"offset": 1},
                "timestamp": {"seconds": 1, "microseconds": 0}}),
            json!({"return": {"name": "vm1"}, "id": id})
        );
        c.send_raw(both.as_bytes()).await;
        // A reply split across several writes, with pauses.
        let (id, _) = c.expect("query-uuid").await;
        let text = format!(
            "{}\n",
            json!({"return": {"UUID": "u".repeat(100_000)}, "id": id})
        );
        for chunk in text.as_bytes().chunks(7_777) {
            c.send_raw(chunk).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let mut events = qmp.events();
    let name = qmp.execute("query-name", None, T).await.unwrap();
    assert_eq!(name["name"], "vm1");
    let ev = events.recv().await.unwrap();
    assert_eq!(
        (ev.name.as_str(), &ev.data),
        ("RTC_CHANGE", &json!({"offset": 1}))
    );
    let uuid = qmp.execute("query-uuid", None, T).await.unwrap();
    assert_eq!(uuid["UUID"].as_str().unwrap().len(), 100_000);
    finish(task).await;
}

#[tokio::test]
async fn out_of_order_replies_matched_by_id() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        let mut cmds = Vec::new();
        for _ in 0..3 {
            let cmd = c.recv().await.unwrap();
            cmds.push((cmd["id"].clone(), cmd["execute"].clone()));
        }
        // Answer in reverse order, echoing the command name.
        for (id, name) in cmds.iter().rev() {
            c.reply(id, json!({"echo": name})).await;
        }
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let (a, b, d) = tokio::join!(
        qmp.execute("a", None, T),
        qmp.execute("b", None, T),
        qmp.execute("d", None, T),
    );
    assert_eq!(a.unwrap()["echo"], "a");
    assert_eq!(b.unwrap()["echo"], "b");
    assert_eq!(d.unwrap()["echo"], "d");
    finish(task).await;
}

#[tokio::test]
async fn timeout_does_not_break_later_commands() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        let (slow, _) = c.expect("slow").await;
        let (fast, _) = c.expect("fast").await;
        // The late reply to "slow" arrives first and must be discarded.
        c.reply(&slow, json!("late")).await;
        c.reply(&fast, json!("fast")).await;
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let err = qmp
        .execute("slow", None, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QmpError::Timeout { command } if command == "slow"),
        "{err:?}"
    );
    assert_eq!(qmp.execute("fast", None, T).await.unwrap(), "fast");
    finish(task).await;
}

#[tokio::test]
async fn socket_close_fails_pending_and_resolves_closed() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        c.expect("pending").await;
        c.event("SHUTDOWN", json!({"guest": false})).await;
        // Drop the connection without replying (QEMU exited).
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let mut events = qmp.events();
    assert!(!qmp.is_closed());
    let err = qmp.execute("pending", None, T).await.unwrap_err();
    assert!(matches!(err, QmpError::Closed), "{err:?}");
    tokio::time::timeout(T, qmp.closed()).await.unwrap();
    assert!(qmp.is_closed());
    assert_eq!(events.recv().await.unwrap().name, "SHUTDOWN");
    assert!(matches!(events.recv().await, Err(RecvError::Closed)));
    // After close: new subscribers end at once and commands fail fast.
    assert!(matches!(qmp.events().recv().await, Err(RecvError::Closed)));
    let err = qmp.execute("later", None, T).await.unwrap_err();
    assert!(matches!(err, QmpError::Closed), "{err:?}");
    finish(task).await;
}

#[tokio::test]
async fn garbage_lines_are_ignored() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        let (id, _) = c.expect("query-status").await;
        c.send_raw(b"this is not json\n\n[1,2,3]\n{\"unknown\": true}\n\xff\xfe\n{\"return\": \n")
            .await;
        c.send(json!({"event": 5})).await;
        c.send(json!({"return": "stray", "id": 999_999})).await;
        c.send(json!({"return": "stray", "id": "not-a-number"}))
            .await;
        c.reply(&id, json!({"status": "running"})).await;
        assert!(c.recv().await.is_none(), "expected the client to hang up");
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let status = qmp.execute("query-status", None, T).await.unwrap();
    assert_eq!(status["status"], "running");
    assert!(!qmp.is_closed());
    drop(qmp);
    finish(task).await;
}

#[tokio::test]
async fn reply_without_id_goes_to_oldest_pending() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        c.expect("broken").await;
        c.send(json!({"error": {"class": "GenericError", "desc": "JSON parse error"}}))
            .await;
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let err = qmp.execute("broken", None, T).await.unwrap_err();
    assert!(matches!(err, QmpError::Command { .. }), "{err:?}");
    finish(task).await;
}

#[tokio::test]
async fn dropping_last_handle_closes_connection() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        let (id, _) = c.expect("ping").await;
        c.reply(&id, json!({})).await;
        // The client drops every handle: we see EOF.
        assert!(c.recv().await.is_none());
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let clone = qmp.clone();
    drop(qmp);
    clone.execute("ping", None, T).await.unwrap();
    let events = clone.events();
    drop(clone);
    finish(task).await;
    let mut events = events;
    let end = tokio::time::timeout(T, events.recv()).await.unwrap();
    assert!(matches!(end, Err(RecvError::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_from_many_tasks() {
    let (_dir, path, task) = serve(|mut c| async move {
        c.handshake().await;
        while let Some(cmd) = c.recv().await {
            if cmd["arguments"]["n"].as_u64().unwrap() % 5 == 0 {
                c.event("TICK", cmd["arguments"].clone()).await;
            }
            let n = cmd["arguments"]["n"].clone();
            c.reply(&cmd["id"], json!({"n": n})).await;
        }
    });
    let (qmp, _) = Qmp::connect(&path, T).await.unwrap();
    let mut handles = Vec::new();
    for n in 0..50u64 {
        let qmp = qmp.clone();
        handles.push(tokio::spawn(async move {
            let r = qmp.execute("echo", Some(json!({"n": n})), T).await.unwrap();
            assert_eq!(r["n"], n);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    drop(qmp);
    finish(task).await;
}
