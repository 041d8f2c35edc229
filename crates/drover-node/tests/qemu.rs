//! Nodes serving the QEMU agent, with the tiny guest built by `guest/build-tiny-guest.sh` (in
//! `guest/out`, or `$DROVER_TINY_GUEST`): a guest started through `RemoteHost` keeps running
//! while the node restarts, and the new node re-attaches to it; a guest moves live from one node
//! to another over the loopback, or stays where it is when the move is cancelled. Like the
//! agent's own QEMU tests, these fail, loudly, without QEMU or the guest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_agent::{find_qemu, Accel, AccelChoice, AgentConfig, QemuHost};
use drover_host::{DiskSpec, GuestSpec, GuestState, HostDriver, HostError, ImageFormat};
use drover_node::{enrol, serve, Ca, ClientConfig, NodeIdentity, RemoteHost};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

const NODE: &str = "5b1e0c9a-2d4f-4a67-8e3b-9c0d1e2f3a4b";
/// The node a guest migrates to.
const NODE_B: &str = "6c2f1dab-3e50-4b78-9f4c-ad1e2f3a4b5c";
const GUEST: &str = "n-q1";

fn guest_dir() -> PathBuf {
    let dir = std::env::var_os("DROVER_TINY_GUEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guest/out"));
    assert!(
        dir.join("vmlinuz").is_file() && dir.join("initrd.img").is_file(),
        "the tiny guest is not built in {} (run guest/build-tiny-guest.sh)",
        dir.display()
    );
    dir
}

/// The agent as the agent's QEMU tests set it up, sending live migrations at `bandwidth` bytes
/// per second if given.
async fn qemu_host(data: &Path, bandwidth: Option<u64>) -> QemuHost {
    let mut config = AgentConfig::new(data);
    config.accel = AccelChoice::Fixed(Accel::Tcg);
    config.shutdown_timeout = Duration::from_secs(30);
    config.migration_bandwidth = bandwidth;
    QemuHost::open(config).await.expect("agent opens")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A node process: its own runtime, so that stopping it ends every task and socket of the
/// agent and the server, as a killed `drover node` would (QEMU outlives it by design).
struct NodeProcess {
    rt: Runtime,
    addr: SocketAddr,
    secret: Option<String>,
}

impl NodeProcess {
    /// Starts the QEMU agent on `data` and serves it on `addr` (any free port when `None`).
    fn start(data: &Path, addr: Option<SocketAddr>) -> NodeProcess {
        Self::start_with(data, addr, None)
    }

    /// [`NodeProcess::start`] with the agent's migration bandwidth.
    fn start_with(data: &Path, addr: Option<SocketAddr>, bandwidth: Option<u64>) -> NodeProcess {
        let rt = runtime();
        let (host, listener) = rt.block_on(async {
            let host = qemu_host(&data.join("agent"), bandwidth).await;
            let addr = addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
            (host, TcpListener::bind(addr).await.unwrap())
        });
        let addr = listener.local_addr().unwrap();
        let (identity, secret) = NodeIdentity::load_or_init(&data.join("node"), None).unwrap();
        rt.spawn(serve(listener, Arc::new(host), Arc::new(identity)));
        NodeProcess { rt, addr, secret }
    }

    /// Stops the server and the agent: their tasks, listener and connections go.
    fn stop(self) {
        self.rt.shutdown_timeout(Duration::from_secs(5));
    }

    /// Enrols the new node as `name` with the engine's `ca` and connects to it.
    async fn connect(&self, ca: &Ca, name: &str) -> RemoteHost {
        let addr = self.addr.to_string();
        let secret = self.secret.clone().expect("a new node makes a secret");
        enrol(&addr, ca, &secret, name).await.unwrap();
        RemoteHost::connect_with(&addr, ca, name, client_config())
            .await
            .unwrap()
    }
}

/// Short timeouts, for tests.
fn client_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        long_request_timeout: Duration::from_secs(60),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    }
}

/// Kills the guests a test left running when it fails (QEMU outlives the agent by design).
struct Reaper<'a>(&'a Path);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.0.join("agent/guests"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(pid) = std::fs::read_to_string(e.path().join("qemu.pid")) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid.trim()])
                    .status();
            }
        }
    }
}

/// The pid of the guest's QEMU process, as the agent recorded it.
fn qemu_pid(data: &Path) -> u32 {
    let file = data.join("agent/guests").join(GUEST).join("qemu.pid");
    let pid = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
    pid.trim().parse().unwrap()
}

fn alive(pid: u32) -> bool {
    // A zombie is not alive: it would be one the test process reaped late.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// Waits, through the node, until the console log of guest `uuid` has a line containing
/// `needle` after byte `from`.
async fn console_wait(h: &RemoteHost, uuid: &str, from: usize, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = h.console_log(uuid).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&log[from.min(log.len())..]).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} on the console of {uuid}; it says:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn uptime(line: &str) -> f64 {
    line.split("uptime=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn boot_lines(log: &[u8]) -> usize {
    String::from_utf8_lossy(log)
        .lines()
        .filter(|l| l.contains("DROVER-GUEST boot_id="))
        .count()
}

#[test]
fn a_restarted_node_reattaches_to_its_guests() {
    let g = guest_dir();
    assert!(
        find_qemu().is_some(),
        "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let sr_dir = tmp.path().join("sr");
    std::fs::create_dir_all(&sr_dir).unwrap();
    let _reaper = Reaper(&data);
    let t0 = Instant::now();

    // The engine's side lives across both node processes.
    let engine = runtime();
    let node = NodeProcess::start(&data, None);
    let addr = node.addr;
    let host = engine.block_on(async {
        let ca = Ca::load_or_create(&tmp.path().join("engine")).unwrap();
        node.connect(&ca, NODE).await
    });
    assert_eq!(host.info().driver, "qemu");

    let marker = format!("m{}", std::process::id());
    let first = engine.block_on(async {
        let sr = sr_dir.to_str().unwrap();
        host.sr_attach("sr", sr).await.unwrap();
        let disk = host
            .image_create("sr", "d1", 16 << 20, ImageFormat::Qcow2)
            .await
            .unwrap();
        let spec = GuestSpec {
            uuid: GUEST.into(),
            name: "t".into(),
            vcpus: 1,
            memory: 96 << 20,
            kernel: g.join("vmlinuz").to_string_lossy().into_owned(),
            ramdisk: g.join("initrd.img").to_string_lossy().into_owned(),
            args: format!("console=ttyS0 no_timer_check marker={marker}"),
            disks: vec![DiskSpec {
                device: "1".into(),
                sr: "sr".into(),
                image: disk.location,
                ..DiskSpec::default()
            }],
            ..GuestSpec::default()
        };
        host.start(&spec, false).await.unwrap();
        console_wait(&host, GUEST, 0, &format!("marker={marker}")).await;
        console_wait(&host, GUEST, 0, "uptime=").await
    });
    let pid = qemu_pid(&data);
    assert!(alive(pid));
    let booted = engine.block_on(host.console_log(GUEST)).unwrap();
    assert_eq!(
        boot_lines(&booted),
        1,
        "{}",
        String::from_utf8_lossy(&booted)
    );

    // The node stops; its guest does not.
    node.stop();
    engine.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while host.is_connected() {
            assert!(Instant::now() < deadline, "the client saw the node go");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(alive(pid), "QEMU outlives the node");

    // A new node process on the same data directory and port; the same client reconnects.
    let node = NodeProcess::start(&data, Some(addr));
    assert!(
        node.secret.is_none(),
        "an enrolled node makes no new secret"
    );
    engine.block_on(async {
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(10), host.guests())
                .await
                .expect("the client reconnects"),
            vec![(GUEST.to_string(), GuestState::Running)]
        );
        assert!(host.is_connected());
        // A new agent knows no SR until the engine attaches it again, as it does on recovery.
        host.sr_attach("sr", sr_dir.to_str().unwrap())
            .await
            .unwrap();
        assert_eq!(qemu_pid(&data), pid, "the same QEMU process");
        assert!(alive(pid));

        // The same boot goes on: time moves on, and the guest did not boot again.
        let later = console_wait(&host, GUEST, booted.len(), "uptime=").await;
        assert!(uptime(&later) > uptime(&first), "{first} then {later}");
        assert_eq!(
            later.split("boot_id=").nth(1),
            first.split("boot_id=").nth(1),
            "the same boot"
        );
        let log = host.console_log(GUEST).await.unwrap();
        assert_eq!(boot_lines(&log), 1, "{}", String::from_utf8_lossy(&log));
        // The re-attached agent drives the guest: metrics, then a clean shutdown over ACPI.
        let m = host.guest_metrics(GUEST).await.unwrap();
        assert_eq!(m.vcpus, 1);
        host.shutdown(GUEST, false).await.unwrap();
        assert!(host.guests().await.is_empty());
        host.image_destroy("sr", "d1.qcow2").await.unwrap();
        host.sr_detach("sr").await.unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "QEMU {pid} is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.stop();
    drop(host);
    engine.shutdown_timeout(Duration::from_secs(5));
    eprintln!("node restart with a live guest took {:?}", t0.elapsed());
}

/// A direct-boot spec of the tiny guest.
fn tiny(uuid: &str, disks: Vec<DiskSpec>) -> GuestSpec {
    let g = guest_dir();
    GuestSpec {
        uuid: uuid.into(),
        name: "t".into(),
        vcpus: 1,
        memory: 96 << 20,
        kernel: g.join("vmlinuz").to_string_lossy().into_owned(),
        ramdisk: g.join("initrd.img").to_string_lossy().into_owned(),
        args: "console=ttyS0 no_timer_check".into(),
        disks,
        ..GuestSpec::default()
    }
}

/// `later` is a status line of the same boot as `first`, with time gone on.
fn same_boot(first: &str, later: &str) {
    assert_eq!(
        first.split("boot_id=").nth(1),
        later.split("boot_id=").nth(1),
        "{first} then {later}"
    );
    assert!(uptime(later) > uptime(first), "{first} then {later}");
}

/// Two new nodes on `tmp`, the first sending live migrations at `bandwidth` if given, both
/// enrolled with one engine CA, with the SR directory `tmp/sr` attached as `sr`.
fn two_nodes(
    engine: &Runtime,
    tmp: &Path,
    bandwidth: Option<u64>,
) -> ([NodeProcess; 2], RemoteHost, RemoteHost) {
    let sr = tmp.join("sr");
    std::fs::create_dir_all(&sr).unwrap();
    let node_a = NodeProcess::start_with(&tmp.join("a"), None, bandwidth);
    let node_b = NodeProcess::start(&tmp.join("b"), None);
    let (a, b) = engine.block_on(async {
        let ca = Ca::load_or_create(&tmp.join("engine")).unwrap();
        let (a, b) = (
            node_a.connect(&ca, NODE).await,
            node_b.connect(&ca, NODE_B).await,
        );
        for h in [&a, &b] {
            h.sr_attach("sr", sr.to_str().unwrap()).await.unwrap();
        }
        (a, b)
    });
    ([node_a, node_b], a, b)
}

#[test]
fn a_guest_moves_live_from_node_to_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (_ra, _rb) = (Reaper(&tmp.path().join("a")), Reaper(&tmp.path().join("b")));
    let engine = runtime();
    let (nodes, a, b) = two_nodes(&engine, tmp.path(), None);
    engine.block_on(async {
        let disk = a
            .image_create("sr", "d1", 16 << 20, ImageFormat::Qcow2)
            .await
            .unwrap();
        let spec = tiny(
            "n-m1",
            vec![DiskSpec {
                device: "1".into(),
                sr: "sr".into(),
                image: disk.location.clone(),
                ..DiskSpec::default()
            }],
        );
        a.start(&spec, false).await.unwrap();
        let first = console_wait(&a, "n-m1", 0, "uptime=").await;
        let (mut events_a, mut events_b) = (a.subscribe(), b.subscribe());

        let uri = b.migrate_receive(&spec, "127.0.0.1").await.unwrap();
        assert!(b.guests().await.is_empty());
        let stats = a.migrate_send("n-m1", &uri, 50).await.unwrap();
        eprintln!(
            "live migration through nodes: downtime {} ms, total {} ms, {} bytes sent",
            stats.downtime_ms, stats.total_ms, stats.transferred_bytes
        );
        assert!(matches!(
            a.pause("n-m1").await,
            Err(HostError::BadState {
                actual: "migrated",
                ..
            })
        ));
        b.migrate_incoming_finish("n-m1", true).await.unwrap();
        a.migrate_release("n-m1").await.unwrap();
        assert!(a.guests().await.is_empty());
        assert_eq!(
            b.guests().await,
            vec![("n-m1".to_string(), GuestState::Running)]
        );
        same_boot(&first, &console_wait(&b, "n-m1", 0, "uptime=").await);
        assert!(events_a.try_recv().is_err());
        assert!(events_b.try_recv().is_err());

        b.shutdown("n-m1", true).await.unwrap();
        b.image_destroy("sr", &disk.location).await.unwrap();
    });
    drop((a, b));
    for n in nodes {
        n.stop();
    }
    engine.shutdown_timeout(Duration::from_secs(5));
}

#[test]
fn a_migration_between_nodes_can_be_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let (_ra, _rb) = (Reaper(&tmp.path().join("a")), Reaper(&tmp.path().join("b")));
    let engine = runtime();
    // At 1 MiB/s the send lasts many seconds: the cancel comes first.
    let (nodes, a, b) = two_nodes(&engine, tmp.path(), Some(1 << 20));
    engine.block_on(async {
        let spec = tiny("n-c1", vec![]);
        a.start(&spec, false).await.unwrap();
        let first = console_wait(&a, "n-c1", 0, "uptime=").await;
        assert!(matches!(
            a.migrate_cancel("n-c1").await,
            Err(HostError::BadState {
                actual: "running",
                ..
            })
        ));

        let uri = b.migrate_receive(&spec, "127.0.0.1").await.unwrap();
        let send = tokio::spawn({
            let a = a.clone();
            async move { a.migrate_send("n-c1", &uri, 50).await }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(e) = a.migrate_cancel("n-c1").await {
            assert!(
                matches!(e, HostError::BadState { .. }) && Instant::now() < deadline,
                "{e}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = send.await.unwrap();
        assert!(
            matches!(sent, Err(HostError::MigrationCancelled)),
            "{sent:?}"
        );

        assert_eq!(
            a.guests().await,
            vec![("n-c1".to_string(), GuestState::Running)]
        );
        let before = a.console_log("n-c1").await.unwrap().len();
        same_boot(&first, &console_wait(&a, "n-c1", before, "uptime=").await);
        b.migrate_incoming_finish("n-c1", false).await.unwrap();
        assert!(b.guests().await.is_empty());
        a.shutdown("n-c1", true).await.unwrap();
    });
    drop((a, b));
    for n in nodes {
        n.stop();
    }
    engine.shutdown_timeout(Duration::from_secs(5));
}
