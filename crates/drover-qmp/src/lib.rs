//! A small async client for QEMU's QMP (QEMU Machine Protocol) over a Unix socket.
//!
//! Replies and events are handled as untyped [`serde_json::Value`]s so the client
//! works across QEMU versions. A background task reads newline-delimited JSON
//! from the socket, routes command replies to their callers by `id`, and
//! broadcasts asynchronous events to subscribers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), drover_qmp::QmpError> {
//! use std::time::Duration;
//! let (qmp, greeting) =
//!     drover_qmp::Qmp::connect("/run/vm.qmp".as_ref(), Duration::from_secs(5)).await?;
//! println!("QEMU {}.{}.{}", greeting.major, greeting.minor, greeting.micro);
//! let status = qmp.execute("query-status", None, Duration::from_secs(5)).await?;
//! println!("{status}");
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Largest single QMP message (one line) accepted; longer lines are discarded.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How many events are buffered per subscriber before it lags.
pub const EVENT_CAPACITY: usize = 1024;

/// Errors returned by the QMP client.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// An I/O error on the socket (e.g. connecting failed).
    #[error("QMP I/O error: {0}")]
    Io(#[from] io::Error),
    /// No reply (or greeting) arrived within the given timeout.
    #[error("QMP command '{command}' timed out")]
    Timeout {
        /// The command that timed out (`"connect"` for the connection set-up).
        command: String,
    },
    /// The connection is closed (QEMU exited or the socket was closed).
    #[error("QMP connection closed")]
    Closed,
    /// QEMU (or the caller) violated the protocol.
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// QEMU answered the command with an error.
    #[error("QMP command failed: {class}: {desc}")]
    Command {
        /// The QMP error class, e.g. `"GenericError"` or `"CommandNotFound"`.
        class: String,
        /// The human-readable description.
        desc: String,
    },
}

/// The QEMU version announced in the QMP greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QmpGreeting {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Micro version.
    pub micro: u64,
    /// Package string (e.g. `"Debian 1:7.2+dfsg-7"`), possibly empty.
    pub package: String,
    /// Capabilities offered by the server (not enabled by this client).
    pub capabilities: Vec<String>,
}

/// An asynchronous QMP event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QmpEvent {
    /// Event name, e.g. `"SHUTDOWN"`.
    pub name: String,
    /// Event data; `Value::Null` if the event carried none.
    pub data: Value,
    /// Event timestamp in microseconds since the Unix epoch.
    pub timestamp_us: i64,
}

type ReplySender = oneshot::Sender<Result<Value, QmpError>>;

/// State shared between handles and the background tasks.
struct Shared {
    /// Waiting callers by id; `None` once the connection is closed.
    pending: Mutex<Option<HashMap<u64, ReplySender>>>,
    /// Event broadcaster; `None` once the connection is closed.
    events: Mutex<Option<broadcast::Sender<QmpEvent>>>,
    /// A receiver created with the connection, handed to the first subscriber
    /// so that events arriving right after negotiation are not lost.
    first_events: Mutex<Option<broadcast::Receiver<QmpEvent>>>,
    /// Becomes `true` when the connection is gone.
    closed: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new() -> Self {
        let (events, first) = broadcast::channel(EVENT_CAPACITY);
        Shared {
            pending: Mutex::new(Some(HashMap::new())),
            events: Mutex::new(Some(events)),
            first_events: Mutex::new(Some(first)),
            closed: watch::channel(false).0,
        }
    }

    /// Marks the connection closed: fails pending commands, ends event streams.
    fn close(&self) {
        let pending = lock(&self.pending).take();
        for (_, tx) in pending.into_iter().flatten() {
            let _ = tx.send(Err(QmpError::Closed));
        }
        drop(lock(&self.events).take());
        self.closed.send_replace(true);
    }

    fn dispatch(&self, line: &[u8]) {
        let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(line) else {
            return; // garbage: ignored
        };
        if let Some(Value::String(name)) = obj.remove("event") {
            let event = parse_event(name, &mut obj);
            if let Some(tx) = lock(&self.events).as_ref() {
                let _ = tx.send(event);
            }
        } else if obj.contains_key("return") || obj.contains_key("error") {
            let mut pending = lock(&self.pending);
            let Some(map) = pending.as_mut() else { return };
            let id = match obj.get("id") {
                // QEMU omits the id only for errors it cannot attribute (e.g.
                // bad JSON); it runs commands in order, so give it to the oldest.
                None => map.keys().min().copied(),
                Some(id) => id.as_u64(),
            };
            let result = parse_reply(obj);
            if let Some(tx) = id.and_then(|id| map.remove(&id)) {
                let _ = tx.send(result);
            }
        }
    }
}

fn parse_event(name: String, obj: &mut Map<String, Value>) -> QmpEvent {
    let data = obj.remove("data").unwrap_or(Value::Null);
    let ts = obj.get("timestamp");
    let field = |k: &str| {
        ts.and_then(|t| t.get(k))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    QmpEvent {
        name,
        data,
        timestamp_us: field("seconds")
            .saturating_mul(1_000_000)
            .saturating_add(field("microseconds")),
    }
}

fn parse_reply(mut obj: Map<String, Value>) -> Result<Value, QmpError> {
    if let Some(err) = obj.remove("error") {
        let text = |k: &str| {
            err.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Err(QmpError::Command {
            class: text("class"),
            desc: text("desc"),
        })
    } else {
        Ok(obj.remove("return").unwrap_or(Value::Null))
    }
}

/// Reads newline-terminated messages, bounding each to `max` bytes.
struct LineReader<R> {
    inner: R,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Returns the next line (without the newline), or `None` at EOF. Lines
    /// longer than `max` are skipped entirely; a partial line at EOF is dropped.
    async fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let mut discarding = false;
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                return Ok(None);
            }
            let (chunk, used, complete) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            if !discarding {
                line.extend_from_slice(chunk);
                if line.len() > self.max {
                    discarding = true;
                    line = Vec::new();
                }
            }
            self.inner.consume(used);
            if complete {
                if !discarding {
                    return Ok(Some(line));
                }
                discarding = false;
            }
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<Vec<u8>>,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer task ends (closing the write side) once `writer` drops.
        self.reader.abort();
    }
}

/// A QMP connection. Cloning is cheap; the connection closes when the last
/// clone is dropped (or when QEMU closes the socket).
#[derive(Clone)]
pub struct Qmp {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Removes a pending entry when the caller stops waiting (timeout/cancel).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(map) = lock(&self.shared.pending).as_mut() {
            map.remove(&self.id);
        }
    }
}

impl Qmp {
    /// Connects to the QMP socket at `path`, reads the greeting and negotiates
    /// capabilities (`qmp_capabilities`), all within `timeout`.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<(Qmp, QmpGreeting), QmpError> {
        tokio::time::timeout(timeout, Self::connect_inner(path, timeout))
            .await
            .unwrap_or_else(|_| {
                Err(QmpError::Timeout {
                    command: "connect".into(),
                })
            })
    }

    async fn connect_inner(path: &Path, timeout: Duration) -> Result<(Qmp, QmpGreeting), QmpError> {
        let stream = UnixStream::connect(path).await?;
        let (read, write) = stream.into_split();
        let mut reader = LineReader {
            inner: BufReader::new(read),
            max: MAX_MESSAGE_BYTES,
        };
        let line = reader.next_line().await?.ok_or(QmpError::Closed)?;
        let greeting = parse_greeting(&line)?;
        let qmp = Self::start(reader, write);
        qmp.execute("qmp_capabilities", None, timeout).await?;
        Ok((qmp, greeting))
    }

    fn start(mut reader: LineReader<BufReader<OwnedReadHalf>>, write: OwnedWriteHalf) -> Qmp {
        let shared = Arc::new(Shared::new());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(write, rx, shared.clone()));
        let task_shared = shared.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                task_shared.dispatch(&line);
            }
            task_shared.close();
        });
        Qmp {
            inner: Arc::new(Inner {
                shared,
                writer: tx,
                next_id: AtomicU64::new(1),
                reader,
            }),
        }
    }

    /// Executes `command` with optional `arguments` (must be a JSON object) and
    /// returns its `return` value. A reply arriving after `timeout` is discarded
    /// and does not affect later commands.
    pub async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let shared = &*self.inner.shared;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = Map::new();
        msg.insert("execute".into(), Value::String(command.into()));
        match arguments {
            None => {}
            Some(args @ Value::Object(_)) => {
                msg.insert("arguments".into(), args);
            }
            Some(_) => {
                return Err(QmpError::Protocol(format!(
                    "arguments of '{command}' must be a JSON object"
                )))
            }
        }
        msg.insert("id".into(), id.into());
        let mut line = Value::Object(msg).to_string().into_bytes();
        line.push(b'\n');

        let (tx, rx) = oneshot::channel();
        match lock(&shared.pending).as_mut() {
            Some(map) => map.insert(id, tx),
            None => return Err(QmpError::Closed),
        };
        let _guard = PendingGuard { shared, id };
        self.inner.writer.send(line).map_err(|_| QmpError::Closed)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(QmpError::Closed),
            Err(_) => Err(QmpError::Timeout {
                command: command.into(),
            }),
        }
    }

    /// Subscribes to asynchronous events. The first call (across all clones)
    /// receives every event since the connection was made (up to
    /// [`EVENT_CAPACITY`]); later calls receive events from now on. The
    /// receiver reports `RecvError::Closed` once the connection is gone, and
    /// `RecvError::Lagged` if it falls behind [`EVENT_CAPACITY`] events.
    pub fn events(&self) -> broadcast::Receiver<QmpEvent> {
        if let Some(first) = lock(&self.inner.shared.first_events).take() {
            return first;
        }
        match lock(&self.inner.shared.events).as_ref() {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Resolves once the connection is gone (QEMU exited or the socket closed).
    pub async fn closed(&self) {
        let mut rx = self.inner.shared.closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        *self.inner.shared.closed.borrow()
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    while let Some(line) = rx.recv().await {
        if write.write_all(&line).await.is_err() || write.flush().await.is_err() {
            shared.close();
            return;
        }
    }
}

fn parse_greeting(line: &[u8]) -> Result<QmpGreeting, QmpError> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| QmpError::Protocol(format!("invalid greeting: {e}")))?;
    let qmp = value
        .get("QMP")
        .ok_or_else(|| QmpError::Protocol(format!("expected QMP greeting, got {value}")))?;
    let version = qmp.get("version");
    let num = |k: &str| {
        version
            .and_then(|v| v.get("qemu"))
            .and_then(|q| q.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(QmpGreeting {
        major: num("major"),
        minor: num("minor"),
        micro: num("micro"),
        package: version
            .and_then(|v| v.get("package"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        capabilities: qmp
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|caps| {
                caps.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn lines(input: &[u8], max: usize) -> Vec<Vec<u8>> {
        // A tiny buffer forces messages to be split across reads.
        let mut r = LineReader {
            inner: BufReader::with_capacity(3, input),
            max,
        };
        let mut out = Vec::new();
        while let Some(l) = r.next_line().await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn line_reader_splits_and_bounds() {
        let got = lines(b"{\"a\":1}\r\n0123456789\nok\n\npartial", 8).await;
        assert_eq!(
            got,
            vec![b"{\"a\":1}\r".to_vec(), b"ok".to_vec(), Vec::new()]
        );
        let got = lines(b"12345678\n123456789\nx\n", 8).await;
        assert_eq!(got, vec![b"12345678".to_vec(), b"x".to_vec()]);
    }

    #[test]
    fn greeting_parsing() {
        let g = parse_greeting(
            br#"{"QMP": {"version": {"qemu": {"micro": 19, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}"#,
        )
        .unwrap();
        assert_eq!((g.major, g.minor, g.micro), (7, 2, 19));
        assert_eq!(g.package, "Debian 1:7.2+dfsg-7");
        assert_eq!(g.capabilities, vec!["oob".to_owned()]);
        assert!(matches!(
            parse_greeting(b"{\"return\": {}}"),
            Err(QmpError::Protocol(_))
        ));
        assert!(matches!(
            parse_greeting(b"nope"),
            Err(QmpError::Protocol(_))
        ));
    }

    #[test]
    fn event_and_reply_parsing() {
        let mut obj =
            json!({"data": {"guest": true}, "timestamp": {"seconds": 2, "microseconds": 5}})
                .as_object()
                .unwrap()
                .clone();
        let ev = parse_event("SHUTDOWN".into(), &mut obj);
        assert_eq!(ev.timestamp_us, 2_000_005);
        assert_eq!(ev.data, json!({"guest": true}));
        let ev = parse_event("STOP".into(), &mut Map::new());
        assert_eq!((ev.data, ev.timestamp_us), (Value::Null, 0));

        let ok = json!({"return": {"running": true}, "id": 1});
        assert_eq!(
            parse_reply(ok.as_object().unwrap().clone()).unwrap(),
            json!({"running": true})
        );
        let err = json!({"error": {"class": "GenericError", "desc": "boom"}});
        match parse_reply(err.as_object().unwrap().clone()) {
            Err(QmpError::Command { class, desc }) => {
                assert_eq!((class.as_str(), desc.as_str()), ("GenericError", "boom"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn handle_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Qmp>();
    }
}
