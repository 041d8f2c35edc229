//! A node over loopback with the simulated host: enrolment, every driver method, events,
//! streams, reconnection and the security cases.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use drover_host::sim::{SimConfig, SimHost};
use drover_host::{
    ConsoleKind, DiskSpec, GuestEvent, GuestSpec, GuestState, HostDriver, HostError, ImageFormat,
    NetworkSpec,
};
use drover_node::{enrol, serve, Ca, ClientConfig, NodeError, NodeIdentity, RemoteHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const NODE: &str = "3f2a9c1e-0b7d-4c55-9a3e-5d1f2b8c7e60";

struct Node {
    addr: SocketAddr,
    task: JoinHandle<Result<(), NodeError>>,
    secret: Option<String>,
}

/// Starts a node on `addr` (any free port when `None`) with its state in `dir`.
async fn start_node(dir: &Path, sim: Arc<SimHost>, addr: Option<SocketAddr>) -> Node {
    let listener = TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (identity, secret) = NodeIdentity::load_or_init(dir, None).unwrap();
    let task = tokio::spawn(serve(listener, sim, Arc::new(identity)));
    Node { addr, task, secret }
}

fn sim() -> Arc<SimHost> {
    Arc::new(SimHost::new(SimConfig::default()))
}

fn quick() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        long_request_timeout: Duration::from_secs(10),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
    }
}

/// A CA, an enrolled node and a client connected to it.
async fn enrolled() -> (tempfile::TempDir, Ca, Node, Arc<SimHost>, RemoteHost) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&tmp.path().join("engine")).unwrap();
    let sim = sim();
    let node = start_node(&tmp.path().join("node"), sim.clone(), None).await;
    let secret = node.secret.clone().unwrap();
    let creds = enrol(&node.addr.to_string(), &ca, &secret, NODE)
        .await
        .unwrap();
    assert_eq!(creds.node_name, NODE);
    let host = RemoteHost::connect_with(&node.addr.to_string(), &ca, NODE, quick())
        .await
        .unwrap();
    (tmp, ca, node, sim, host)
}

fn spec(uuid: &str) -> GuestSpec {
    GuestSpec {
        uuid: uuid.into(),
        name: "g".into(),
        vcpus: 1,
        memory: 256 << 20,
        disks: vec![DiskSpec {
            device: "0".into(),
            sr: "sr1".into(),
            image: "disk0".into(),
            ..DiskSpec::default()
        }],
        ..GuestSpec::default()
    }
}

#[tokio::test]
async fn every_method_round_trips() {
    let (_tmp, _ca, node, sim, host) = enrolled().await;
    let remote: Arc<dyn HostDriver> = Arc::new(host);
    assert_eq!(remote.info().hostname, sim.info().hostname);
    assert_eq!(remote.info().driver, "sim");
    assert_eq!(
        remote.metrics().await.memory_total,
        sim.metrics().await.memory_total
    );
    assert_eq!(
        remote.net_capabilities().await,
        sim.net_capabilities().await
    );

    let info = remote.sr_attach("sr1", "/srv/sr1").await.unwrap();
    assert_eq!(info, remote.storage_info("sr1").await.unwrap());
    let img = remote
        .image_create("sr1", "disk0", 8 << 20, ImageFormat::Raw)
        .await
        .unwrap();
    assert_eq!(img.virtual_size, 8 << 20);
    assert_eq!(remote.image_info("sr1", &img.location).await.unwrap(), img);
    let clone = remote
        .image_clone("sr1", &img.location, "clone")
        .await
        .unwrap();
    let copy = remote
        .image_copy("sr1", &img.location, "sr1", "copy")
        .await
        .unwrap();
    let grown = remote
        .image_resize("sr1", &copy.location, 16 << 20)
        .await
        .unwrap();
    assert_eq!(grown.virtual_size, 16 << 20);
    assert_eq!(
        remote.sr_scan("sr1").await.unwrap(),
        sim.sr_scan("sr1").await.unwrap()
    );
    let files = vec![("meta/user-data".to_string(), b"hello".to_vec())];
    remote
        .image_from_files("sr1", "cfg", "config-2", &files)
        .await
        .unwrap();
    let bad = remote.image_from_files("sr1", "cfg", "", &files).await;
    assert!(matches!(bad, Err(HostError::BadImage { .. })), "{bad:?}");
    remote.image_destroy("sr1", &clone.location).await.unwrap();
    let gone = remote.image_info("sr1", &clone.location).await;
    assert!(matches!(gone, Err(HostError::NoSuchImage(_))), "{gone:?}");

    let mut s = spec("vm-1");
    s.disks[0].image = img.location.clone();
    remote.start(&s, false).await.unwrap();
    let dup = remote.start(&s, false).await;
    assert!(matches!(dup, Err(HostError::GuestExists(u)) if u == "vm-1"));
    assert_eq!(
        remote.guests().await,
        vec![("vm-1".to_string(), GuestState::Running)]
    );
    remote.pause("vm-1").await.unwrap();
    let bad = remote.pause("vm-1").await;
    let sim_bad = sim.pause("vm-1").await;
    assert_eq!(format!("{bad:?}"), format!("{sim_bad:?}"));
    assert!(matches!(
        bad,
        Err(HostError::BadState {
            actual: "paused",
            ..
        })
    ));
    remote.unpause("vm-1").await.unwrap();
    remote.reboot("vm-1", false).await.unwrap();
    remote.set_memory("vm-1", 128 << 20).await.unwrap();
    remote.set_vcpus("vm-1", 1).await.unwrap();
    let m = remote.guest_metrics("vm-1").await.unwrap();
    assert_eq!(m.vcpus, 1);
    let cd = DiskSpec {
        device: "3".into(),
        cdrom: true,
        ..DiskSpec::default()
    };
    remote.disk_attach("vm-1", &cd).await.unwrap();
    remote
        .media_change("vm-1", "3", Some(("sr1", &copy.location)))
        .await
        .unwrap();
    remote.media_change("vm-1", "3", None).await.unwrap();
    remote.disk_detach("vm-1", "3").await.unwrap();
    let nic = drover_host::NicSpec {
        device: "0".into(),
        mac: "02:00:00:00:00:01".into(),
        bridge: "drbr0".into(),
        mtu: 1500,
    };
    for bridge in ["drbr0", "drbr1"] {
        let net = NetworkSpec {
            bridge: bridge.into(),
            mtu: 1500,
            uplink: None,
            dhcp: None,
        };
        remote.network_ensure(&net).await.unwrap();
    }
    remote.nic_attach("vm-1", &nic).await.unwrap();
    remote.nic_move("vm-1", "0", "drbr1", 1500).await.unwrap();
    remote.nic_detach("vm-1", "0").await.unwrap();
    let log = remote.console_log("vm-1").await;
    assert_eq!(
        format!("{log:?}"),
        format!("{:?}", sim.console_log("vm-1").await)
    );
    let console = remote.console_open("vm-1", ConsoleKind::Serial).await;
    assert!(matches!(console, Err(HostError::Unsupported(_))));
    let state = remote
        .image_create("sr1", "state", 512 << 20, ImageFormat::Raw)
        .await
        .unwrap();
    remote
        .suspend("vm-1", "sr1", &state.location)
        .await
        .unwrap();
    assert_eq!(remote.guests().await, sim.guests().await);
    remote
        .resume(&s, "sr1", &state.location, false)
        .await
        .unwrap();
    remote.shutdown("vm-1", true).await.unwrap();
    let none = remote.shutdown("vm-1", true).await;
    assert!(matches!(none, Err(HostError::NoSuchGuest(u)) if u == "vm-1"));
    let big = GuestSpec {
        memory: u64::MAX / 2,
        ..spec("vm-big")
    };
    let refused = remote.start(&big, false).await;
    assert!(
        matches!(refused, Err(HostError::NotEnoughMemory { .. })),
        "{refused:?}"
    );

    let net = NetworkSpec {
        bridge: "drbr0".into(),
        mtu: 1500,
        uplink: None,
        dhcp: None,
    };
    remote.network_ensure(&net).await.unwrap();
    assert_eq!(
        remote.pif_scan().await.unwrap(),
        sim.pif_scan().await.unwrap()
    );
    let counters = remote.pif_counters("eth0").await;
    assert_eq!(
        format!("{counters:?}"),
        format!("{:?}", sim.pif_counters("eth0").await)
    );
    remote.network_prune(&["drbr0".to_string()]).await.unwrap();
    remote.network_remove("drbr0").await.unwrap();
    let taken = remote.bond_destroy("nobond").await;
    assert_eq!(
        format!("{taken:?}"),
        format!("{:?}", sim.bond_destroy("nobond").await)
    );
    remote.sr_detach("sr1").await.unwrap();
    node.task.abort();
}

#[tokio::test]
async fn events_and_image_streams() {
    let (_tmp, _ca, _node, sim, host) = enrolled().await;
    let mut events = host.subscribe();
    host.sr_attach("sr1", "/srv/sr1").await.unwrap();
    let img = host
        .image_create("sr1", "disk0", 8 << 20, ImageFormat::Raw)
        .await
        .unwrap();
    host.start(&spec("vm-1"), false).await.unwrap();
    sim.shutdown("vm-1", false).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        e,
        GuestEvent::Exited {
            uuid: "vm-1".into(),
            reason: "shutdown".into()
        }
    );

    let data: Vec<u8> = (0..6u32 << 20).map(|i| (i % 251) as u8).collect();
    let imported = host
        .image_import(
            "sr1",
            &img.location,
            "raw",
            Box::new(std::io::Cursor::new(data)),
        )
        .await
        .unwrap();
    assert_eq!(imported.virtual_size, 8 << 20);
    let refused = host
        .image_import(
            "sr1",
            &img.location,
            "qcow2",
            Box::new(std::io::Cursor::new(vec![1; 1 << 20])),
        )
        .await;
    assert!(
        matches!(refused, Err(HostError::BadImage { .. })),
        "{refused:?}"
    );

    let mut export = host.image_export("sr1", &img.location).await.unwrap();
    let mut out = Vec::new();
    export.read_to_end(&mut out).await.unwrap();
    assert_eq!(out.len(), 8 << 20);
    let missing = host.image_export("sr1", "nope").await;
    assert!(matches!(missing, Err(HostError::NoSuchImage(_))));
    // The connection still answers after the streams.
    assert_eq!(host.guests().await, vec![]);
}

#[tokio::test]
async fn reconnects_after_the_node_restarts() {
    let (tmp, _ca, node, sim, host) = enrolled().await;
    host.sr_attach("sr1", "/srv/sr1").await.unwrap();
    node.task.abort();
    let _ = node.task.await;
    let mut waited = 0;
    while host.is_connected() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert!(!host.is_connected());
    let down = host.storage_info("sr1");
    let restarted = start_node(&tmp.path().join("node"), sim, Some(node.addr)).await;
    assert!(
        restarted.secret.is_none(),
        "an enrolled node makes no new secret"
    );
    // A call made while the node was down waits for the reconnection.
    down.await.unwrap();
    assert!(host.is_connected());
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_the_secret_works_once() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&tmp.path().join("engine")).unwrap();
    let node = start_node(&tmp.path().join("node"), sim(), None).await;
    let addr = node.addr.to_string();
    let secret = node.secret.unwrap();
    let secret_file = tmp.path().join("node/enrol-secret");
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let wrong = enrol(&addr, &ca, "0123456789abcdef0123456789abcdef", NODE).await;
    assert!(matches!(wrong, Err(NodeError::Refused(_))), "{wrong:?}");
    enrol(&addr, &ca, &secret, NODE).await.unwrap();
    assert!(!secret_file.exists(), "the secret is forgotten");
    let again = enrol(&addr, &ca, &secret, NODE).await;
    assert!(again.is_err(), "{again:?}");
    RemoteHost::connect_with(&addr, &ca, NODE, quick())
        .await
        .unwrap();
}

#[tokio::test]
async fn too_many_wrong_secrets_lock_enrolment() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(&tmp.path().join("engine")).unwrap();
    let node = start_node(&tmp.path().join("node"), sim(), None).await;
    let addr = node.addr.to_string();
    for _ in 0..drover_node::identity::MAX_FAILURES {
        let wrong = enrol(&addr, &ca, "not-the-secret-at-all", NODE).await;
        assert!(matches!(wrong, Err(NodeError::Refused(_))), "{wrong:?}");
    }
    let right = enrol(&addr, &ca, &node.secret.unwrap(), NODE).await;
    assert!(right.is_err(), "{right:?}");
}

#[tokio::test]
async fn unauthenticated_clients_are_refused() {
    let (tmp, ca, node, _sim, _host) = enrolled().await;
    let addr = node.addr.to_string();

    // Plain TCP: a request frame gets no answer.
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let frame = drover_node::wire::encode(&drover_node::wire::Frame::Request {
        id: 1,
        call: drover_node::wire::Call::Guests,
    })
    .unwrap();
    tcp.write_all(&(frame.len() as u32).to_be_bytes())
        .await
        .unwrap();
    tcp.write_all(&frame).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap();
    assert!(
        !matches!(n, Ok(k) if k > 0 && buf[..k].starts_with(&(frame.len() as u32).to_be_bytes()))
    );

    // TLS without a client certificate: the enrolment client is all the node can be reached with.
    let no_cert = enrol(&addr, &ca, "0123456789abcdef0123456789abcdef", NODE).await;
    assert!(no_cert.is_err(), "{no_cert:?}");

    // A client certificate from another CA.
    let other = Ca::load_or_create(&tmp.path().join("other")).unwrap();
    let foreign = RemoteHost::connect_with(&addr, &other, NODE, quick()).await;
    assert!(foreign.is_err(), "{foreign:?}");

    // Another identity than the one expected.
    let wrong_name = RemoteHost::connect_with(&addr, &ca, "another-node", quick()).await;
    assert!(
        matches!(wrong_name, Err(NodeError::Tls(_))),
        "{wrong_name:?}"
    );
}

/// Connects with a client certificate of our choosing, trusting the real CA, and asks for the
/// guests: true if the node answered.
async fn answered_with(addr: &str, ca: &Path, cert: &Path, key: &Path) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_file(cert).unwrap()],
            PrivateKeyDer::from_pem_file(key).unwrap(),
        )
        .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(NODE).unwrap();
    let Ok(mut tls) = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    else {
        return false;
    };
    let frame = drover_node::wire::encode(&drover_node::wire::Frame::Request {
        id: 1,
        call: drover_node::wire::Call::Guests,
    })
    .unwrap();
    let mut msg = (frame.len() as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&frame);
    if tls.write_all(&msg).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut buf)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn only_the_engine_certificate_is_accepted() {
    let (tmp, _ca, node, _sim, _host) = enrolled().await;
    let addr = node.addr.to_string();
    let engine = tmp.path().join("engine");
    let ca_pem = engine.join("ca-cert.pem");
    assert!(
        answered_with(
            &addr,
            &ca_pem,
            &engine.join("engine-cert.pem"),
            &engine.join("engine-key.pem")
        )
        .await
    );
    let other = tmp.path().join("other");
    Ca::load_or_create(&other).unwrap();
    assert!(
        !answered_with(
            &addr,
            &ca_pem,
            &other.join("engine-cert.pem"),
            &other.join("engine-key.pem")
        )
        .await
    );
    // A node's own certificate (issued by the same CA for server use) cannot act as the engine.
    let n = tmp.path().join("node");
    assert!(
        !answered_with(
            &addr,
            &ca_pem,
            &n.join("node-cert.pem"),
            &n.join("node-key.pem")
        )
        .await
    );
}
