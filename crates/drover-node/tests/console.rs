//! Console streams through a node: a simulated host whose guests' consoles echo what they are
//! sent, served with `serve` and reached through `RemoteHost::console_open`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_host::sim::{SimConfig, SimHost};
use drover_host::{
    BondSpec, ByteSource, ConsoleKind, DiskSpec, GuestEvent, GuestMetrics, GuestSpec, GuestState,
    HostDriver, HostError, HostInfo, HostMetrics, ImageFormat, ImageInfo, Ip6Config, IpConfig,
    NetCapabilities, NetworkSpec, NicSpec, PifCounters, PifInfo, StorageInfo, Stream,
};
use drover_node::wire::{CHUNK, WINDOW};
use drover_node::{enrol, serve, Ca, ClientConfig, NodeIdentity, RemoteHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NODE: &str = "0c6f1d2e-7a3b-4e8f-9d10-2b3c4d5e6f70";

/// The simulated host, with serial consoles that echo every byte back.
struct EchoConsoles {
    sim: SimHost,
    /// Consoles whose node side is still open.
    open: Arc<AtomicUsize>,
}

#[async_trait]
impl HostDriver for EchoConsoles {
    fn info(&self) -> HostInfo {
        self.sim.info()
    }
    async fn metrics(&self) -> HostMetrics {
        self.sim.metrics().await
    }
    async fn ping(&self) -> Result<(), HostError> {
        self.sim.ping().await
    }
    async fn migrate_receive(
        &self,
        spec: &GuestSpec,
        listen_ip: &str,
    ) -> Result<String, HostError> {
        self.sim.migrate_receive(spec, listen_ip).await
    }
    async fn migrate_send(
        &self,
        uuid: &str,
        uri: &str,
        max_downtime_ms: u64,
    ) -> Result<drover_host::MigrationStats, HostError> {
        self.sim.migrate_send(uuid, uri, max_downtime_ms).await
    }
    async fn migrate_cancel(&self, uuid: &str) -> Result<(), HostError> {
        self.sim.migrate_cancel(uuid).await
    }
    async fn migrate_incoming_finish(&self, uuid: &str, commit: bool) -> Result<(), HostError> {
        self.sim.migrate_incoming_finish(uuid, commit).await
    }
    async fn migrate_release(&self, uuid: &str) -> Result<(), HostError> {
        self.sim.migrate_release(uuid).await
    }
    async fn guests(&self) -> Vec<(String, GuestState)> {
        self.sim.guests().await
    }
    async fn start(&self, spec: &GuestSpec, paused: bool) -> Result<(), HostError> {
        self.sim.start(spec, paused).await
    }
    async fn shutdown(&self, uuid: &str, hard: bool) -> Result<(), HostError> {
        self.sim.shutdown(uuid, hard).await
    }
    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), HostError> {
        self.sim.reboot(uuid, hard).await
    }
    async fn pause(&self, uuid: &str) -> Result<(), HostError> {
        self.sim.pause(uuid).await
    }
    async fn unpause(&self, uuid: &str) -> Result<(), HostError> {
        self.sim.unpause(uuid).await
    }
    async fn suspend(&self, uuid: &str, sr: &str, state_image: &str) -> Result<(), HostError> {
        self.sim.suspend(uuid, sr, state_image).await
    }
    async fn resume(
        &self,
        spec: &GuestSpec,
        sr: &str,
        state_image: &str,
        paused: bool,
    ) -> Result<(), HostError> {
        self.sim.resume(spec, sr, state_image, paused).await
    }
    async fn disk_attach(&self, uuid: &str, disk: &DiskSpec) -> Result<(), HostError> {
        self.sim.disk_attach(uuid, disk).await
    }
    async fn disk_detach(&self, uuid: &str, device: &str) -> Result<(), HostError> {
        self.sim.disk_detach(uuid, device).await
    }
    async fn media_change(
        &self,
        uuid: &str,
        device: &str,
        media: Option<(&str, &str)>,
    ) -> Result<(), HostError> {
        self.sim.media_change(uuid, device, media).await
    }
    async fn console_log(&self, uuid: &str) -> Result<Vec<u8>, HostError> {
        self.sim.console_log(uuid).await
    }
    async fn console_open(
        &self,
        uuid: &str,
        kind: ConsoleKind,
    ) -> Result<Box<dyn Stream>, HostError> {
        if !self.sim.guests().await.iter().any(|(u, _)| u == uuid) {
            return Err(HostError::NoSuchGuest(uuid.into()));
        }
        if kind != ConsoleKind::Serial {
            return Err(HostError::Unsupported("only serial consoles echo".into()));
        }
        // A small pipe, so that a reader that does not keep up pushes back at once.
        let (ours, guest) = tokio::io::duplex(4096);
        self.open.fetch_add(1, Ordering::SeqCst);
        let open = self.open.clone();
        tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(guest);
            let _ = tokio::io::copy(&mut r, &mut w).await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(Box::new(ours))
    }
    async fn set_memory(&self, uuid: &str, bytes: u64) -> Result<(), HostError> {
        self.sim.set_memory(uuid, bytes).await
    }
    async fn set_vcpus(&self, uuid: &str, count: u32) -> Result<(), HostError> {
        self.sim.set_vcpus(uuid, count).await
    }
    async fn guest_metrics(&self, uuid: &str) -> Result<GuestMetrics, HostError> {
        self.sim.guest_metrics(uuid).await
    }
    async fn nic_attach(&self, uuid: &str, nic: &NicSpec) -> Result<(), HostError> {
        self.sim.nic_attach(uuid, nic).await
    }
    async fn nic_detach(&self, uuid: &str, device: &str) -> Result<(), HostError> {
        self.sim.nic_detach(uuid, device).await
    }
    async fn nic_move(
        &self,
        uuid: &str,
        device: &str,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), HostError> {
        self.sim.nic_move(uuid, device, bridge, mtu).await
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<GuestEvent> {
        self.sim.subscribe()
    }
    async fn sr_attach(&self, sr: &str, location: &str) -> Result<StorageInfo, HostError> {
        self.sim.sr_attach(sr, location).await
    }
    async fn sr_detach(&self, sr: &str) -> Result<(), HostError> {
        self.sim.sr_detach(sr).await
    }
    async fn sr_scan(&self, sr: &str) -> Result<Vec<ImageInfo>, HostError> {
        self.sim.sr_scan(sr).await
    }
    async fn storage_info(&self, sr: &str) -> Result<StorageInfo, HostError> {
        self.sim.storage_info(sr).await
    }
    async fn image_create(
        &self,
        sr: &str,
        name: &str,
        size: u64,
        format: ImageFormat,
    ) -> Result<ImageInfo, HostError> {
        self.sim.image_create(sr, name, size, format).await
    }
    async fn image_destroy(&self, sr: &str, image: &str) -> Result<(), HostError> {
        self.sim.image_destroy(sr, image).await
    }
    async fn image_clone(&self, sr: &str, src: &str, dst: &str) -> Result<ImageInfo, HostError> {
        self.sim.image_clone(sr, src, dst).await
    }
    async fn image_copy(
        &self,
        sr: &str,
        src: &str,
        dst_sr: &str,
        dst: &str,
    ) -> Result<ImageInfo, HostError> {
        self.sim.image_copy(sr, src, dst_sr, dst).await
    }
    async fn image_resize(&self, sr: &str, image: &str, size: u64) -> Result<ImageInfo, HostError> {
        self.sim.image_resize(sr, image, size).await
    }
    async fn image_info(&self, sr: &str, image: &str) -> Result<ImageInfo, HostError> {
        self.sim.image_info(sr, image).await
    }
    async fn image_import(
        &self,
        sr: &str,
        image: &str,
        format: &str,
        data: ByteSource,
    ) -> Result<ImageInfo, HostError> {
        self.sim.image_import(sr, image, format, data).await
    }
    async fn image_from_files(
        &self,
        sr: &str,
        name: &str,
        label: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<ImageInfo, HostError> {
        self.sim.image_from_files(sr, name, label, files).await
    }
    async fn image_export(&self, sr: &str, image: &str) -> Result<ByteSource, HostError> {
        self.sim.image_export(sr, image).await
    }
    async fn net_capabilities(&self) -> NetCapabilities {
        self.sim.net_capabilities().await
    }
    async fn network_ensure(&self, spec: &NetworkSpec) -> Result<(), HostError> {
        self.sim.network_ensure(spec).await
    }
    async fn network_remove(&self, bridge: &str) -> Result<(), HostError> {
        self.sim.network_remove(bridge).await
    }
    async fn network_prune(&self, keep: &[String]) -> Result<(), HostError> {
        self.sim.network_prune(keep).await
    }
    async fn pif_scan(&self) -> Result<Vec<PifInfo>, HostError> {
        self.sim.pif_scan().await
    }
    async fn pif_counters(&self, device: &str) -> Result<PifCounters, HostError> {
        self.sim.pif_counters(device).await
    }
    async fn pif_configure_ip(&self, bridge: &str, config: &IpConfig) -> Result<(), HostError> {
        self.sim.pif_configure_ip(bridge, config).await
    }
    async fn pif_configure_ipv6(&self, bridge: &str, config: &Ip6Config) -> Result<(), HostError> {
        self.sim.pif_configure_ipv6(bridge, config).await
    }
    async fn bond_create(&self, spec: &BondSpec) -> Result<(), HostError> {
        self.sim.bond_create(spec).await
    }
    async fn bond_destroy(&self, name: &str) -> Result<(), HostError> {
        self.sim.bond_destroy(name).await
    }
}

/// An enrolled node serving [`EchoConsoles`] with a running guest `vm-1`, and a client.
async fn node() -> (tempfile::TempDir, Arc<AtomicUsize>, RemoteHost) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&tmp.path().join("engine")).unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let driver = Arc::new(EchoConsoles {
        sim: SimHost::new(SimConfig::default()),
        open: open.clone(),
    });
    let spec = GuestSpec {
        uuid: "vm-1".into(),
        name: "g".into(),
        vcpus: 1,
        memory: 64 << 20,
        ..GuestSpec::default()
    };
    driver.start(&spec, false).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (identity, secret) = NodeIdentity::load_or_init(&tmp.path().join("node"), None).unwrap();
    tokio::spawn(serve(listener, driver, Arc::new(identity)));
    enrol(&addr, &ca, &secret.unwrap(), NODE).await.unwrap();
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        long_request_timeout: Duration::from_secs(10),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    };
    let host = RemoteHost::connect_with(&addr, &ca, NODE, config)
        .await
        .unwrap();
    (tmp, open, host)
}

/// Bytes that show where they were cut or reordered.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(i as u8 | 1))
        .collect()
}

/// Writes `data` to `console` while reading as much back, and returns what came back.
async fn echo(console: &mut Box<dyn Stream>, data: &[u8]) -> Vec<u8> {
    let (mut r, mut w) = tokio::io::split(console);
    let write = async {
        // Uneven writes, not aligned with the chunks.
        for part in data.chunks(CHUNK / 3 + 7) {
            w.write_all(part).await.unwrap();
        }
        w.flush().await.unwrap();
    };
    let mut back = vec![0; data.len()];
    let read = r.read_exact(&mut back);
    let (_, n) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(write, read) })
        .await
        .expect("the echo came back in time");
    assert_eq!(n.unwrap(), data.len());
    back
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..250 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_console_carries_bytes_both_ways() {
    let (_tmp, open, host) = node().await;
    let mut console = host
        .console_open("vm-1", ConsoleKind::Serial)
        .await
        .unwrap();
    assert_eq!(open.load(Ordering::SeqCst), 1);

    // A keystroke and its echo.
    console.write_all(b"ls\r").await.unwrap();
    let mut back = [0; 3];
    tokio::time::timeout(Duration::from_secs(5), console.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"ls\r");

    // Many windows' worth each way, in an odd length.
    let data = pattern(CHUNK * WINDOW as usize * 3 + 1234, 7);
    assert!(echo(&mut console, &data).await == data, "the echo differs");
    // The same console goes on working after that.
    let data = pattern(100, 9);
    assert!(echo(&mut console, &data).await == data);

    // Closing the console here closes it on the node.
    drop(console);
    wait_for("the node's side of the console to close", || {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
    assert_eq!(host.guests().await.len(), 1, "the connection is still up");
}

#[tokio::test]
async fn a_console_that_is_not_read_holds_back_only_itself() {
    let (_tmp, open, host) = node().await;
    let mut a = host
        .console_open("vm-1", ConsoleKind::Serial)
        .await
        .unwrap();
    let mut b = host
        .console_open("vm-1", ConsoleKind::Serial)
        .await
        .unwrap();
    assert_eq!(open.load(Ordering::SeqCst), 2);

    // Write far more than the window into `a` and never read its echo: the writer stops.
    let data = pattern(CHUNK * WINDOW as usize * 4, 3);
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let writer = {
        let data = data.clone();
        tokio::spawn(async move {
            a_write.write_all(&data).await.unwrap();
            a_write
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !writer.is_finished(),
        "a window and some buffers, not 4 MiB"
    );

    // Meanwhile the connection serves calls and the other console.
    tokio::time::timeout(Duration::from_secs(5), host.guests())
        .await
        .expect("calls are answered while a console is stuck");
    let other = pattern(CHUNK * WINDOW as usize + 99, 5);
    assert!(echo(&mut b, &other).await == other);

    // Reading `a` lets it all through, intact and in order.
    let mut back = vec![0; data.len()];
    tokio::time::timeout(Duration::from_secs(30), a_read.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert!(back == data, "the echo differs");
    a = a_read.unsplit(writer.await.unwrap());
    drop((a, b));
    wait_for("both consoles to close on the node", || {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
}

#[tokio::test]
async fn console_errors_come_back_and_the_connection_stays() {
    let (_tmp, open, host) = node().await;
    let none = host.console_open("vm-404", ConsoleKind::Serial).await;
    assert!(
        matches!(&none, Err(HostError::NoSuchGuest(u)) if u == "vm-404"),
        "{:?}",
        none.err()
    );
    let vnc = host.console_open("vm-1", ConsoleKind::Vnc).await;
    assert!(
        matches!(vnc, Err(HostError::Unsupported(_))),
        "{:?}",
        vnc.err()
    );
    assert_eq!(open.load(Ordering::SeqCst), 0);
    let mut console = host
        .console_open("vm-1", ConsoleKind::Serial)
        .await
        .unwrap();
    let data = pattern(1000, 1);
    assert!(echo(&mut console, &data).await == data);
}
