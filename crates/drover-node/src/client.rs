//! [`RemoteHost`]: a [`HostDriver`] that calls a node over mutual TLS, with requests
//! multiplexed by id over one connection, per-request timeouts and reconnection with backoff.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use drover_host::{
    BondSpec, ByteSource, ConsoleKind, DiskSpec, GuestEvent, GuestMetrics, GuestSpec, GuestState,
    HostDriver, HostError, HostInfo, HostMetrics, ImageFormat, ImageInfo, Ip6Config, IpConfig,
    MigrationStats, NetCapabilities, NetworkSpec, NicSpec, PifCounters, PifInfo, StorageInfo,
    Stream,
};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::AbortHandle;
use tokio_util::codec::Framed;

use crate::stream::{bridge, send_all, Chunk, ChunkReader, Out, Streams};
use crate::wire::{codec, decode, encode, Call, Frame, Reply, WireError};
use crate::{Ca, NodeError};

/// Timeouts and backoff of a [`RemoteHost`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Connecting and the TLS handshake.
    pub connect_timeout: Duration,
    /// An ordinary request, including waiting for the connection.
    pub request_timeout: Duration,
    /// A request that may take long (see [`Call::is_long`]).
    pub long_request_timeout: Duration,
    /// The first pause before reconnecting; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest pause between reconnection attempts.
    pub max_backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            long_request_timeout: Duration::from_secs(3600),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Reply, WireError>>>>;

/// One live connection.
struct Conn {
    out: Out,
    pending: Arc<Pending>,
    streams: Arc<Streams>,
    tasks: [AbortHandle; 2],
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Inner {
    addr: String,
    name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    config: ClientConfig,
    conn: watch::Sender<Option<Arc<Conn>>>,
    events: broadcast::Sender<GuestEvent>,
    info: Mutex<HostInfo>,
    next_id: AtomicU64,
}

/// A host reached over the network: a drop-in `Arc<dyn HostDriver>`.
///
/// Guest events missed while the connection is down are not replayed; the engine reconciles
/// through [`HostDriver::guests`] as after any restart.
#[derive(Clone)]
pub struct RemoteHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RemoteHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHost")
            .field("addr", &self.inner.addr)
            .field("node", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl RemoteHost {
    /// Connects to the enrolled node `expected_node` at `addr`, whose certificate must be
    /// issued by `ca` for that name, and fetches its [`HostInfo`].
    pub async fn connect(
        addr: &str,
        ca: &Ca,
        expected_node: &str,
    ) -> Result<RemoteHost, NodeError> {
        Self::connect_with(addr, ca, expected_node, ClientConfig::default()).await
    }

    /// [`RemoteHost::connect`] with explicit timeouts.
    pub async fn connect_with(
        addr: &str,
        ca: &Ca,
        expected_node: &str,
        config: ClientConfig,
    ) -> Result<RemoteHost, NodeError> {
        let inner = Arc::new(Inner {
            addr: addr.into(),
            name: crate::tls::node_server_name(expected_node)?,
            tls: ca.client_config()?,
            config,
            conn: watch::Sender::new(None),
            events: broadcast::channel(1024).0,
            info: Mutex::new(HostInfo {
                hostname: String::new(),
                cpu_count: 0,
                cpu_model: String::new(),
                cpu_speed_mhz: 0,
                memory_total: 0,
                driver: "remote",
            }),
            next_id: AtomicU64::new(1),
        });
        let dead = open(&inner).await?;
        tokio::spawn(supervise(Arc::downgrade(&inner), dead));
        Ok(RemoteHost { inner })
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.inner.conn.borrow().is_some()
    }

    async fn call(&self, call: Call) -> Result<Reply, HostError> {
        self.request(call, None).await.map(|(r, _)| r)
    }

    /// Sends `call`; with `upload`, streams its bytes as the request's stream meanwhile.
    async fn request(
        &self,
        call: Call,
        upload: Option<ByteSource>,
    ) -> Result<(Reply, Option<Opened>), HostError> {
        let inner = &self.inner;
        let limit = if call.is_long() {
            inner.config.long_request_timeout
        } else {
            inner.config.request_timeout
        };
        let deadline = tokio::time::Instant::now() + limit;
        let what = format!("{call:?}");
        let what = what
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_string();
        let timed_out = || {
            HostError::Failed(format!(
                "node {} did not answer {what} within {limit:?}",
                inner.addr
            ))
        };
        let mut watch = inner.conn.subscribe();
        let conn = tokio::time::timeout_at(deadline, watch.wait_for(Option::is_some))
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| HostError::Failed("remote host closed".into()))?
            .clone()
            .ok_or_else(timed_out)?;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let streaming = matches!(
            call,
            Call::ConsoleOpen { .. } | Call::ImageImport { .. } | Call::ImageExport { .. }
        );
        let stream = streaming.then(|| conn.streams.open(id));
        let (tx, rx) = oneshot::channel();
        lock(&conn.pending).insert(id, tx);
        let lost = || HostError::Failed(format!("connection to node {} lost", inner.addr));
        if conn.out.send(Frame::Request { id, call }).is_err() {
            lock(&conn.pending).remove(&id);
            return Err(lost());
        }
        let pump = match (upload, &stream) {
            (Some(data), Some((_, credit))) => {
                let (out, credit) = (conn.out.clone(), credit.clone());
                Some(tokio::spawn(async move {
                    send_all(id, data, &out, &credit).await
                }))
            }
            _ => None,
        };
        let answer = tokio::time::timeout_at(deadline, rx).await;
        if let Some(p) = pump {
            p.abort();
        }
        let reply = match answer {
            Ok(Ok(Ok(reply))) => reply,
            Ok(Ok(Err(e))) => {
                conn.streams.close(id);
                return Err(e.into());
            }
            Ok(Err(_)) => return Err(lost()),
            Err(_) => {
                lock(&conn.pending).remove(&id);
                conn.streams.close(id);
                return Err(timed_out());
            }
        };
        let opened = match (stream, &reply) {
            (Some((rx, credit)), Reply::Stream) => Some(Opened {
                id,
                rx,
                credit,
                conn,
            }),
            (Some(_), _) => {
                conn.streams.close(id);
                None
            }
            (None, _) => None,
        };
        Ok((reply, opened))
    }
}

/// A stream the node opened in answer to a request.
struct Opened {
    id: u64,
    rx: tokio::sync::mpsc::Receiver<Chunk>,
    credit: Arc<tokio::sync::Semaphore>,
    conn: Arc<Conn>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Connects, fetches the host info and installs the connection; the receiver fires when it
/// dies.
async fn open(inner: &Arc<Inner>) -> Result<oneshot::Receiver<()>, NodeError> {
    let limit = inner.config.connect_timeout;
    let tcp = tokio::time::timeout(limit, TcpStream::connect(&inner.addr))
        .await
        .map_err(|_| NodeError::Timeout("connect"))??;
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(inner.tls.clone());
    let tls = tokio::time::timeout(limit, connector.connect(inner.name.clone(), tcp))
        .await
        .map_err(|_| NodeError::Timeout("TLS handshake"))?
        .map_err(|e| NodeError::Tls(e.to_string()))?;
    let (mut sink, mut frames) = Framed::new(tls, codec()).split();
    // The first exchange proves the node accepted our certificate (TLS 1.3 lets the client
    // finish its handshake before the server has checked it).
    let hello = encode(&Frame::Request {
        id: 0,
        call: Call::Info,
    })
    .map_err(|e| NodeError::Protocol(e.to_string()))?;
    sink.send(tokio_util::bytes::Bytes::from(hello)).await?;
    let first = tokio::time::timeout(limit, frames.next())
        .await
        .map_err(|_| NodeError::Timeout("host info"))?
        .ok_or_else(|| NodeError::Tls("the node closed the connection".into()))?
        .map_err(|e| NodeError::Tls(e.to_string()))?;
    match decode::<Frame>(&first) {
        Ok(Frame::Response {
            id: 0,
            result: Ok(Reply::Info(info)),
        }) => {
            *lock(&inner.info) = info.into();
        }
        other => {
            return Err(NodeError::Protocol(format!(
                "expected host info, got {other:?}"
            )))
        }
    }
    let (out, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<Frame>();
    let writer = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            let Ok(bytes) = encode(&frame) else { continue };
            if sink
                .send(tokio_util::bytes::Bytes::from(bytes))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let pending: Arc<Pending> = Arc::default();
    let streams: Arc<Streams> = Arc::default();
    let (dead_tx, dead_rx) = oneshot::channel();
    let reader = {
        let (pending, streams, events) = (pending.clone(), streams.clone(), inner.events.clone());
        tokio::spawn(async move {
            while let Some(Ok(bytes)) = frames.next().await {
                let Ok(frame) = decode::<Frame>(&bytes) else {
                    tracing::warn!("bad frame from node; dropping the connection");
                    break;
                };
                match frame {
                    Frame::Response { id, result } => {
                        if let Some(tx) = lock(&pending).remove(&id) {
                            let _ = tx.send(result);
                        }
                    }
                    Frame::Event(e) => {
                        let _ = events.send(e);
                    }
                    Frame::Data { stream, bytes } => streams.deliver(stream, Chunk::Data(bytes)),
                    Frame::End { stream } => streams.deliver(stream, Chunk::End),
                    Frame::Abort { stream, reason } => {
                        streams.deliver(stream, Chunk::Abort(reason))
                    }
                    Frame::Credit { stream, chunks } => streams.credit(stream, chunks),
                    Frame::Request { .. } => break,
                }
            }
            lock(&pending).clear();
            streams.clear();
            let _ = dead_tx.send(());
        })
    };
    let conn = Conn {
        out,
        pending,
        streams,
        tasks: [reader.abort_handle(), writer.abort_handle()],
    };
    inner.conn.send_replace(Some(Arc::new(conn)));
    Ok(dead_rx)
}

/// Reconnects with backoff whenever the connection dies, until the [`RemoteHost`] is dropped.
async fn supervise(inner: Weak<Inner>, mut dead: oneshot::Receiver<()>) {
    loop {
        let _ = dead.await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.conn.send_replace(None);
        tracing::warn!(node = %strong.addr, "connection to node lost; reconnecting");
        let mut backoff = strong.config.min_backoff;
        drop(strong);
        dead = loop {
            tokio::time::sleep(backoff).await;
            let Some(strong) = inner.upgrade() else {
                return;
            };
            match open(&strong).await {
                Ok(d) => {
                    tracing::info!(node = %strong.addr, "reconnected to node");
                    break d;
                }
                Err(e) => {
                    tracing::debug!(node = %strong.addr, "reconnect failed: {e}");
                    backoff = (backoff * 2).min(strong.config.max_backoff);
                }
            }
        };
    }
}

fn unexpected(reply: Reply) -> HostError {
    HostError::Failed(format!("node answered unexpectedly: {reply:?}"))
}

macro_rules! expect {
    ($self:ident, $call:expr, $pat:pat => $val:expr) => {
        match $self.call($call).await? {
            $pat => Ok($val),
            other => Err(unexpected(other)),
        }
    };
}

fn s(v: &str) -> String {
    v.to_string()
}

#[async_trait]
impl HostDriver for RemoteHost {
    fn info(&self) -> HostInfo {
        lock(&self.inner.info).clone()
    }

    async fn ping(&self) -> Result<(), HostError> {
        match self.call(Call::Ping).await? {
            Reply::Unit => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn metrics(&self) -> HostMetrics {
        match self.call(Call::Metrics).await {
            Ok(Reply::Metrics(m)) => m,
            other => {
                tracing::warn!(node = %self.inner.addr, "no metrics: {other:?}");
                HostMetrics::default()
            }
        }
    }

    async fn guests(&self) -> Vec<(String, GuestState)> {
        // An empty answer would read as "every guest is gone": wait for the node instead.
        let mut pause = self.inner.config.min_backoff;
        loop {
            match self.call(Call::Guests).await {
                Ok(Reply::Guests(g)) => return g,
                other => tracing::warn!(node = %self.inner.addr, "listing guests: {other:?}"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.inner.config.max_backoff);
        }
    }

    async fn start(&self, spec: &GuestSpec, paused: bool) -> Result<(), HostError> {
        expect!(self, Call::Start { spec: spec.clone(), paused }, Reply::Unit => ())
    }

    async fn shutdown(&self, uuid: &str, hard: bool) -> Result<(), HostError> {
        expect!(self, Call::Shutdown { uuid: s(uuid), hard }, Reply::Unit => ())
    }

    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), HostError> {
        expect!(self, Call::Reboot { uuid: s(uuid), hard }, Reply::Unit => ())
    }

    async fn pause(&self, uuid: &str) -> Result<(), HostError> {
        expect!(self, Call::Pause { uuid: s(uuid) }, Reply::Unit => ())
    }

    async fn unpause(&self, uuid: &str) -> Result<(), HostError> {
        expect!(self, Call::Unpause { uuid: s(uuid) }, Reply::Unit => ())
    }

    async fn migrate_receive(
        &self,
        spec: &GuestSpec,
        listen_ip: &str,
    ) -> Result<String, HostError> {
        let call = Call::MigrateReceive {
            spec: spec.clone(),
            listen_ip: s(listen_ip),
        };
        expect!(self, call, Reply::Uri(uri) => uri)
    }

    async fn migrate_send(
        &self,
        uuid: &str,
        uri: &str,
        max_downtime_ms: u64,
    ) -> Result<MigrationStats, HostError> {
        let call = Call::MigrateSend {
            uuid: s(uuid),
            uri: s(uri),
            max_downtime_ms,
        };
        expect!(self, call, Reply::Migrated(stats) => stats)
    }

    async fn migrate_cancel(&self, uuid: &str) -> Result<(), HostError> {
        expect!(self, Call::MigrateCancel { uuid: s(uuid) }, Reply::Unit => ())
    }

    async fn migrate_incoming_finish(&self, uuid: &str, commit: bool) -> Result<(), HostError> {
        let call = Call::MigrateIncomingFinish {
            uuid: s(uuid),
            commit,
        };
        expect!(self, call, Reply::Unit => ())
    }

    async fn migrate_release(&self, uuid: &str) -> Result<(), HostError> {
        expect!(self, Call::MigrateRelease { uuid: s(uuid) }, Reply::Unit => ())
    }

    async fn suspend(&self, uuid: &str, sr: &str, state_image: &str) -> Result<(), HostError> {
        let call = Call::Suspend {
            uuid: s(uuid),
            sr: s(sr),
            state_image: s(state_image),
        };
        expect!(self, call, Reply::Unit => ())
    }

    async fn resume(
        &self,
        spec: &GuestSpec,
        sr: &str,
        state_image: &str,
        paused: bool,
    ) -> Result<(), HostError> {
        let call = Call::Resume {
            spec: spec.clone(),
            sr: s(sr),
            state_image: s(state_image),
            paused,
        };
        expect!(self, call, Reply::Unit => ())
    }

    async fn disk_attach(&self, uuid: &str, disk: &DiskSpec) -> Result<(), HostError> {
        expect!(self, Call::DiskAttach { uuid: s(uuid), disk: disk.clone() }, Reply::Unit => ())
    }

    async fn disk_detach(&self, uuid: &str, device: &str) -> Result<(), HostError> {
        expect!(self, Call::DiskDetach { uuid: s(uuid), device: s(device) }, Reply::Unit => ())
    }

    async fn media_change(
        &self,
        uuid: &str,
        device: &str,
        media: Option<(&str, &str)>,
    ) -> Result<(), HostError> {
        let media = media.map(|(a, b)| (s(a), s(b)));
        let call = Call::MediaChange {
            uuid: s(uuid),
            device: s(device),
            media,
        };
        expect!(self, call, Reply::Unit => ())
    }

    async fn console_log(&self, uuid: &str) -> Result<Vec<u8>, HostError> {
        expect!(self, Call::ConsoleLog { uuid: s(uuid) }, Reply::Bytes(b) => b)
    }

    async fn console_open(
        &self,
        uuid: &str,
        kind: ConsoleKind,
    ) -> Result<Box<dyn Stream>, HostError> {
        let (reply, opened) = self
            .request(
                Call::ConsoleOpen {
                    uuid: s(uuid),
                    kind,
                },
                None,
            )
            .await?;
        let Some(o) = opened else {
            return Err(unexpected(reply));
        };
        let (user, ours) = tokio::io::duplex(crate::wire::CHUNK);
        let (streams, out) = (o.conn.streams.clone(), o.conn.out.clone());
        tokio::spawn(bridge(o.id, ours, streams, o.rx, o.credit, out));
        Ok(Box::new(user))
    }

    async fn set_memory(&self, uuid: &str, bytes: u64) -> Result<(), HostError> {
        expect!(self, Call::SetMemory { uuid: s(uuid), bytes }, Reply::Unit => ())
    }

    async fn set_vcpus(&self, uuid: &str, count: u32) -> Result<(), HostError> {
        expect!(self, Call::SetVcpus { uuid: s(uuid), count }, Reply::Unit => ())
    }

    async fn guest_metrics(&self, uuid: &str) -> Result<GuestMetrics, HostError> {
        expect!(self, Call::GuestMetrics { uuid: s(uuid) }, Reply::GuestMetrics(m) => m)
    }

    async fn nic_attach(&self, uuid: &str, nic: &NicSpec) -> Result<(), HostError> {
        expect!(self, Call::NicAttach { uuid: s(uuid), nic: nic.clone() }, Reply::Unit => ())
    }

    async fn nic_detach(&self, uuid: &str, device: &str) -> Result<(), HostError> {
        expect!(self, Call::NicDetach { uuid: s(uuid), device: s(device) }, Reply::Unit => ())
    }

    async fn nic_move(
        &self,
        uuid: &str,
        device: &str,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), HostError> {
        let call = Call::NicMove {
            uuid: s(uuid),
            device: s(device),
            bridge: s(bridge),
            mtu,
        };
        expect!(self, call, Reply::Unit => ())
    }

    fn subscribe(&self) -> broadcast::Receiver<GuestEvent> {
        self.inner.events.subscribe()
    }

    async fn sr_attach(&self, sr: &str, location: &str) -> Result<StorageInfo, HostError> {
        expect!(self, Call::SrAttach { sr: s(sr), location: s(location) }, Reply::StorageInfo(i) => i)
    }

    async fn sr_detach(&self, sr: &str) -> Result<(), HostError> {
        expect!(self, Call::SrDetach { sr: s(sr) }, Reply::Unit => ())
    }

    async fn sr_scan(&self, sr: &str) -> Result<Vec<ImageInfo>, HostError> {
        expect!(self, Call::SrScan { sr: s(sr) }, Reply::Images(i) => i)
    }

    async fn storage_info(&self, sr: &str) -> Result<StorageInfo, HostError> {
        expect!(self, Call::StorageInfo { sr: s(sr) }, Reply::StorageInfo(i) => i)
    }

    async fn image_create(
        &self,
        sr: &str,
        name: &str,
        size: u64,
        format: ImageFormat,
    ) -> Result<ImageInfo, HostError> {
        let call = Call::ImageCreate {
            sr: s(sr),
            name: s(name),
            size,
            format: format.into(),
        };
        expect!(self, call, Reply::Image(i) => i)
    }

    async fn image_destroy(&self, sr: &str, image: &str) -> Result<(), HostError> {
        expect!(self, Call::ImageDestroy { sr: s(sr), image: s(image) }, Reply::Unit => ())
    }

    async fn image_clone(&self, sr: &str, src: &str, dst: &str) -> Result<ImageInfo, HostError> {
        let call = Call::ImageClone {
            sr: s(sr),
            src: s(src),
            dst: s(dst),
        };
        expect!(self, call, Reply::Image(i) => i)
    }

    async fn image_copy(
        &self,
        sr: &str,
        src: &str,
        dst_sr: &str,
        dst: &str,
    ) -> Result<ImageInfo, HostError> {
        let call = Call::ImageCopy {
            sr: s(sr),
            src: s(src),
            dst_sr: s(dst_sr),
            dst: s(dst),
        };
        expect!(self, call, Reply::Image(i) => i)
    }

    async fn image_resize(&self, sr: &str, image: &str, size: u64) -> Result<ImageInfo, HostError> {
        let call = Call::ImageResize {
            sr: s(sr),
            image: s(image),
            size,
        };
        expect!(self, call, Reply::Image(i) => i)
    }

    async fn image_info(&self, sr: &str, image: &str) -> Result<ImageInfo, HostError> {
        expect!(self, Call::ImageInfo { sr: s(sr), image: s(image) }, Reply::Image(i) => i)
    }

    async fn image_import(
        &self,
        sr: &str,
        image: &str,
        format: &str,
        data: ByteSource,
    ) -> Result<ImageInfo, HostError> {
        let call = Call::ImageImport {
            sr: s(sr),
            image: s(image),
            format: s(format),
        };
        match self.request(call, Some(data)).await?.0 {
            Reply::Image(i) => Ok(i),
            other => Err(unexpected(other)),
        }
    }

    async fn image_from_files(
        &self,
        sr: &str,
        name: &str,
        label: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<ImageInfo, HostError> {
        let call = Call::ImageFromFiles {
            sr: s(sr),
            name: s(name),
            label: s(label),
            files: files.to_vec(),
        };
        expect!(self, call, Reply::Image(i) => i)
    }

    async fn image_export(&self, sr: &str, image: &str) -> Result<ByteSource, HostError> {
        let call = Call::ImageExport {
            sr: s(sr),
            image: s(image),
        };
        let (reply, opened) = self.request(call, None).await?;
        let Some(o) = opened else {
            return Err(unexpected(reply));
        };
        Ok(Box::new(ChunkReader::new(o.id, o.rx, o.conn.out.clone())))
    }

    async fn net_capabilities(&self) -> NetCapabilities {
        match self.call(Call::NetCapabilities).await {
            Ok(Reply::NetCapabilities(c)) => c,
            other => {
                tracing::warn!(node = %self.inner.addr, "no network capabilities: {other:?}");
                NetCapabilities::default()
            }
        }
    }

    async fn network_ensure(&self, spec: &NetworkSpec) -> Result<(), HostError> {
        expect!(self, Call::NetworkEnsure { spec: spec.clone() }, Reply::Unit => ())
    }

    async fn network_remove(&self, bridge: &str) -> Result<(), HostError> {
        expect!(self, Call::NetworkRemove { bridge: s(bridge) }, Reply::Unit => ())
    }

    async fn network_prune(&self, keep: &[String]) -> Result<(), HostError> {
        expect!(self, Call::NetworkPrune { keep: keep.to_vec() }, Reply::Unit => ())
    }

    async fn pif_scan(&self) -> Result<Vec<PifInfo>, HostError> {
        expect!(self, Call::PifScan, Reply::Pifs(p) => p)
    }

    async fn pif_counters(&self, device: &str) -> Result<PifCounters, HostError> {
        expect!(self, Call::PifCounters { device: s(device) }, Reply::PifCounters(c) => c)
    }

    async fn pif_configure_ip(&self, bridge: &str, config: &IpConfig) -> Result<(), HostError> {
        let call = Call::PifConfigureIp {
            bridge: s(bridge),
            config: config.clone(),
        };
        expect!(self, call, Reply::Unit => ())
    }

    async fn pif_configure_ipv6(&self, bridge: &str, config: &Ip6Config) -> Result<(), HostError> {
        let call = Call::PifConfigureIpv6 {
            bridge: s(bridge),
            config: config.clone(),
        };
        expect!(self, call, Reply::Unit => ())
    }

    async fn bond_create(&self, spec: &BondSpec) -> Result<(), HostError> {
        expect!(self, Call::BondCreate { spec: spec.clone() }, Reply::Unit => ())
    }

    async fn bond_destroy(&self, name: &str) -> Result<(), HostError> {
        expect!(self, Call::BondDestroy { name: s(name) }, Reply::Unit => ())
    }
}
