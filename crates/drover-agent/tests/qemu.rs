//! The agent against real QEMU guests: the tiny guest built by `guest/build-tiny-guest.sh`
//! (in `guest/out`, or `$DROVER_TINY_GUEST`). These tests fail, loudly, without QEMU or the guest.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use drover_agent::QemuHost;
use drover_host::{
    DhcpSpec, DiskSpec, GuestEvent, GuestMetrics, GuestSpec, GuestState, HostDriver, HostError,
    ImageFormat, ImageInfo, NetworkSpec, NicSpec, Reservation,
};

mod common;

use common::guest::{console_wait, host, host_in, runtime, spec, uptime, Reaper};
use common::Netns;

impl Netns {
    /// Names of the devices `ip link show SELECTOR...` lists in the namespace.
    fn links(&self, selector: &[&str]) -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(["-n", &self.0, "-o", "link", "show"])
            .args(selector)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_string())
            .collect()
    }

    /// Waits until `ip link show SELECTOR...` lists `count` devices.
    async fn wait_links(&self, selector: &[&str], count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let links = self.links(selector);
            if links.len() == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{selector:?} in {}: {links:?}, not {count}",
                self.0
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[test]
fn a_guest_lives_its_whole_life() {
    let data = tempfile::tempdir().unwrap();
    let _reaper = Reaper(data.path());
    // The first agent's runtime ends as a killed agent process would: its tasks and sockets go.
    let (s, d, disk, clone, extra) = runtime().block_on(first_agent(data.path()));
    runtime().block_on(second_agent(data.path(), s, d, disk, clone, extra));
}

async fn first_agent(
    data: &std::path::Path,
) -> (GuestSpec, DiskSpec, ImageInfo, ImageInfo, ImageInfo) {
    let h = host(data).await;
    h.sr_attach("sr", "sr").await.unwrap();
    let disk = h
        .image_create("sr", "d1", 64 << 20, ImageFormat::Qcow2)
        .await
        .unwrap();
    assert_eq!(disk.location, "d1.qcow2");
    let mut events = h.subscribe();
    let d = DiskSpec {
        device: "1".into(),
        sr: "sr".into(),
        image: disk.location.clone(),
        ..DiskSpec::default()
    };
    let marker = format!("m{}", std::process::id());
    let s = spec(
        "a1",
        &format!("marker={marker} drover.data=D1"),
        vec![d.clone()],
    );
    h.start(&s, false).await.unwrap();
    assert!(matches!(
        h.start(&s, false).await,
        Err(HostError::GuestExists(_))
    ));
    console_wait(&h, "a1", 0, &format!("marker={marker}")).await;
    let mem = console_wait(&h, "a1", 0, "mem_kb=").await;
    assert!(mem.contains("mem_kb="), "{mem}");
    console_wait(&h, "a1", 0, "wrote=D1").await;
    assert_eq!(
        h.guests().await,
        vec![("a1".to_string(), GuestState::Running)]
    );

    // Pause and unpause.
    h.pause("a1").await.unwrap();
    assert_eq!(h.guests().await[0].1, GuestState::Paused);
    h.unpause("a1").await.unwrap();

    // Two writers on one image are refused.
    let other = spec("a2", "", vec![d.clone()]);
    assert!(matches!(
        h.start(&other, false).await,
        Err(HostError::ImageInUse(_))
    ));
    assert!(matches!(
        h.image_destroy("sr", &disk.location).await,
        Err(HostError::ImageInUse(_))
    ));

    // Hot plug and unplug.
    let extra = h
        .image_create("sr", "d2", 32 << 20, ImageFormat::Qcow2)
        .await
        .unwrap();
    let before = h.console_log("a1").await.unwrap().len();
    let d2 = DiskSpec {
        device: "2".into(),
        sr: "sr".into(),
        image: extra.location.clone(),
        ..DiskSpec::default()
    };
    h.disk_attach("a1", &d2).await.unwrap();
    let line = console_wait(&h, "a1", before, "disks=").await;
    assert!(line.contains(":65536"), "{line}");
    let before = h.console_log("a1").await.unwrap().len();
    h.disk_detach("a1", "2").await.unwrap();
    let line = console_wait(&h, "a1", before, "disks=").await;
    assert!(!line.contains(":65536"), "{line}");

    // A live thin clone while the guest writes its disk.
    let clone = h.image_clone("sr", &disk.location, "c1").await.unwrap();
    assert_eq!(clone.virtual_size, 64 << 20);

    // Suspend and resume: the same boot continues.
    let first = console_wait(&h, "a1", 0, "uptime=").await;
    let state = h
        .image_create("sr", "s1", 200 << 20, ImageFormat::Raw)
        .await
        .unwrap();
    h.suspend("a1", "sr", &state.location).await.unwrap();
    assert!(h.guests().await.is_empty());
    let before = h.console_log("a1").await.unwrap().len();
    h.resume(&s, "sr", &state.location, false).await.unwrap();
    let later = console_wait(&h, "a1", before, "uptime=").await;
    assert!(uptime(&later) > uptime(&first), "{first} then {later}");
    assert_eq!(
        later.split("boot_id=").nth(1),
        first.split("boot_id=").nth(1),
        "a resumed guest keeps its boot"
    );
    h.image_destroy("sr", &state.location).await.unwrap();
    assert!(events.try_recv().is_err());
    (s, d, disk, clone, extra)
}

async fn second_agent(
    data: &std::path::Path,
    s: GuestSpec,
    d: DiskSpec,
    disk: ImageInfo,
    clone: ImageInfo,
    extra: ImageInfo,
) {
    // A new agent re-attaches to the running guest.
    let h = host(data).await;
    h.sr_attach("sr", "sr").await.unwrap();
    assert_eq!(
        h.guests().await,
        vec![("a1".to_string(), GuestState::Running)]
    );
    // It still knows the guest's disks: one writer only, and live clones still work.
    let other = spec("a2", "", vec![d.clone()]);
    assert!(matches!(
        h.start(&other, false).await,
        Err(HostError::ImageInUse(_))
    ));
    let clone2 = h.image_clone("sr", &disk.location, "c2").await.unwrap();
    h.image_destroy("sr", &clone2.location).await.unwrap();
    let m = h.guest_metrics("a1").await.unwrap();
    assert_eq!(m.vcpus, 1);
    assert!(m.memory_actual > 0);

    // Clean shutdown through ACPI; no event for a stop the agent was asked for.
    let mut events = h.subscribe();
    h.shutdown("a1", false).await.unwrap();
    assert!(h.guests().await.is_empty());
    assert!(events.try_recv().is_err());

    // The data the guest wrote is on the disk.
    assert_eq!(s.disks.len(), 1);
    let s = spec("a1", "", vec![d.clone()]);
    h.start(&s, false).await.unwrap();
    console_wait(&h, "a1", 0, "data=D1").await;
    h.shutdown("a1", true).await.unwrap();
    h.image_destroy("sr", &clone.location).await.unwrap();
    h.image_destroy("sr", &disk.location).await.unwrap();
    h.image_destroy("sr", &extra.location).await.unwrap();
    let left: Vec<_> = std::fs::read_dir(data.join("sr"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "files left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_leaves_nothing_behind() {
    let data = tempfile::tempdir().unwrap();
    let _reaper = Reaper(data.path());
    let h = host(data.path()).await;
    let mut s = spec("b1", "", vec![]);
    s.kernel = "/nonexistent/vmlinuz".into();
    assert!(matches!(
        h.start(&s, false).await,
        Err(HostError::MissingFile { what: "kernel", .. })
    ));
    let mut s = spec("b1", "", vec![]);
    s.args = String::new();
    s.memory = 1 << 50;
    assert!(matches!(
        h.start(&s, false).await,
        Err(HostError::NotEnoughMemory { .. })
    ));
    h.sr_attach("sr", "sr").await.unwrap();
    let mut bad = b"QFI\xfb".to_vec();
    bad.extend(std::iter::repeat_n(0x5a, 4096));
    std::fs::write(data.path().join("sr/bad.qcow2"), bad).unwrap();
    let s = spec(
        "b1",
        "",
        vec![DiskSpec {
            device: "0".into(),
            sr: "sr".into(),
            image: "bad.qcow2".into(),
            ..DiskSpec::default()
        }],
    );
    let err = h.start(&s, false).await.unwrap_err();
    assert!(
        err.to_string().contains("qemu") || matches!(err, HostError::BadImage { .. }),
        "{err}"
    );
    assert!(h.guests().await.is_empty());
    assert!(!data.path().join("guests/b1/qemu.pid").exists());
    assert!(matches!(
        h.image_create("sr", "huge", 1 << 60, ImageFormat::Qcow2)
            .await,
        Err(HostError::StorageFull { .. })
    ));
    // A guest that dies is reported.
    let s = spec("b2", "", vec![]);
    let mut events = h.subscribe();
    h.start(&s, false).await.unwrap();
    let pid: i32 = std::fs::read_to_string(data.path().join("guests/b2/qemu.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix_kill(pid);
    let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, GuestEvent::Exited { ref uuid, .. } if uuid == "b2"),
        "{ev:?}"
    );
    assert!(h.guests().await.is_empty());
}

fn nix_kill(pid: i32) {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
}

const BRIDGE: &str = "tbr0";
const BRIDGE2: &str = "tbr1";
const MAC0: &str = "52:54:00:d0:00:01";
/// Upper case on purpose: the guest reports lower case.
const MAC1: &str = "52:54:00:D0:00:02";
const IP0: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 10);
const IP1: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 11);

fn nic(device: &str, mac: &str) -> NicSpec {
    NicSpec {
        device: device.into(),
        mac: mac.into(),
        bridge: BRIDGE.into(),
        mtu: 1500,
    }
}

/// Polls the guest's metrics until `ok` holds for them.
async fn metrics_until(
    h: &QemuHost,
    uuid: &str,
    what: &str,
    ok: impl Fn(&GuestMetrics) -> bool,
) -> GuestMetrics {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = h.guest_metrics(uuid).await.unwrap();
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "no {what} in {m:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn a_guest_on_a_network_gets_its_address_and_plugs_nics() {
    let data = tempfile::tempdir().unwrap();
    let ns = Netns::new();
    let _reaper = Reaper(data.path());
    // The first agent's runtime ends as a killed agent process would; the second re-attaches.
    let s = runtime().block_on(net_first_agent(data.path(), &ns));
    runtime().block_on(net_second_agent(data.path(), &ns, s));
}

async fn net_first_agent(data: &std::path::Path, ns: &Netns) -> GuestSpec {
    let h = host_in(data, Some(ns)).await;
    h.network_ensure(&NetworkSpec {
        bridge: BRIDGE.into(),
        mtu: 1500,
        uplink: None,
        dhcp: Some(DhcpSpec {
            host_address: Ipv4Addr::new(10, 99, 0, 1),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            range_start: Ipv4Addr::new(10, 99, 0, 100),
            range_end: Ipv4Addr::new(10, 99, 0, 150),
            reservations: vec![
                Reservation {
                    mac: MAC0.into(),
                    ip: IP0,
                },
                Reservation {
                    mac: MAC1.into(),
                    ip: IP1,
                },
            ],
        }),
    })
    .await
    .unwrap();
    // A NIC on a bridge that is not there: the guest does not start and leaves nothing.
    let mut s = spec("n1", "", vec![]);
    s.nics = vec![NicSpec {
        bridge: "nosuchbr".into(),
        ..nic("0", MAC0)
    }];
    assert!(h.start(&s, false).await.is_err());
    assert!(h.guests().await.is_empty());
    assert!(!data.join("guests/n1/qemu.pid").exists());
    ns.wait_links(&["type", "tun"], 0).await;

    s.nics = vec![nic("0", MAC0)];
    h.start(&s, false).await.unwrap();
    ns.wait_links(&["master", BRIDGE], 1).await;

    // The reserved address, on the console, from the guest agent and in the lease.
    console_wait(&h, "n1", 0, &format!("nic=eth0 mac={MAC0}")).await;
    console_wait(&h, "n1", 0, &format!("ip=eth0:{IP0}")).await;
    let m = metrics_until(&h, "n1", "address of NIC 0", |m| {
        m.agent
            .as_ref()
            .is_some_and(|a| a.networks.get("0/ip") == Some(&IP0.to_string()))
            && m.nics.first().is_some_and(|n| n.leased_ipv4 == [IP0])
    })
    .await;
    assert_eq!(m.nics.len(), 1);
    assert_eq!(m.nics[0].device, "0");
    assert!(
        m.nics[0].tx_bytes > 0,
        "the guest sent DHCP requests: {m:?}"
    );

    // A position that is taken or has no slot is refused, and nothing is left of the attempt.
    assert!(h.nic_attach("n1", &nic("0", MAC1)).await.is_err());
    assert!(h.nic_attach("n1", &nic("8", MAC1)).await.is_err());
    let elsewhere = NicSpec {
        bridge: "nosuchbr".into(),
        ..nic("1", MAC1)
    };
    assert!(h.nic_attach("n1", &elsewhere).await.is_err());
    ns.wait_links(&["type", "tun"], 1).await;

    // Hot plug: the guest sees the NIC and gets its address.
    let before = h.console_log("n1").await.unwrap().len();
    h.nic_attach("n1", &nic("1", MAC1)).await.unwrap();
    console_wait(
        &h,
        "n1",
        before,
        &format!("nic=eth1 mac={}", MAC1.to_lowercase()),
    )
    .await;
    console_wait(&h, "n1", before, &format!("ip=eth1:{IP1}")).await;
    ns.wait_links(&["master", BRIDGE], 2).await;
    metrics_until(&h, "n1", "address of NIC 1", |m| {
        m.agent
            .as_ref()
            .is_some_and(|a| a.networks.get("1/ip") == Some(&IP1.to_string()))
    })
    .await;

    // A live move: NIC 0's tap becomes a port of another bridge, recorded for a re-attach.
    h.network_ensure(&NetworkSpec {
        bridge: BRIDGE2.into(),
        mtu: 1500,
        uplink: None,
        dhcp: None,
    })
    .await
    .unwrap();
    h.nic_move("n1", "0", BRIDGE2, 1500).await.unwrap();
    ns.wait_links(&["master", BRIDGE2], 1).await;
    ns.wait_links(&["master", BRIDGE], 1).await;
    assert!(h.nic_move("n1", "0", "nosuchbr", 1500).await.is_err());
    assert!(h.nic_move("n1", "5", BRIDGE, 1500).await.is_err());
    ns.wait_links(&["master", BRIDGE2], 1).await;
    let saved = std::fs::read_to_string(data.join("guests/n1/spec.json")).unwrap();
    assert!(saved.contains(BRIDGE2), "{saved}");
    s
}

async fn net_second_agent(data: &std::path::Path, ns: &Netns, s: GuestSpec) {
    let h = host_in(data, Some(ns)).await;
    assert_eq!(
        h.guests().await,
        vec![("n1".to_string(), GuestState::Running)]
    );
    // The new agent knows the hot-plugged NIC.
    let m = metrics_until(&h, "n1", "both NICs", |m| m.nics.len() == 2).await;
    assert_eq!(m.nics[1].device, "1");
    assert_eq!(m.nics[1].leased_ipv4, [IP1]);

    // The moved NIC goes back to its first bridge.
    ns.wait_links(&["master", BRIDGE2], 1).await;
    h.nic_move("n1", "0", BRIDGE, 1500).await.unwrap();
    ns.wait_links(&["master", BRIDGE], 2).await;
    ns.wait_links(&["master", BRIDGE2], 0).await;
    h.network_remove(BRIDGE2).await.unwrap();

    // Unplug: the guest loses the NIC and its tap goes.
    let before = h.console_log("n1").await.unwrap().len();
    h.nic_detach("n1", "1").await.unwrap();
    console_wait(&h, "n1", before, "nic=eth1 removed").await;
    ns.wait_links(&["master", BRIDGE], 1).await;
    ns.wait_links(&["type", "tun"], 1).await;
    assert!(h.nic_detach("n1", "1").await.is_err());

    // Suspend and resume: the tap comes back as a port of the bridge, the boot continues.
    h.sr_attach("sr", "sr").await.unwrap();
    let state = h
        .image_create("sr", "s1", 200 << 20, ImageFormat::Raw)
        .await
        .unwrap();
    let first = console_wait(&h, "n1", 0, "uptime=").await;
    h.suspend("n1", "sr", &state.location).await.unwrap();
    ns.wait_links(&["type", "tun"], 0).await;
    let before = h.console_log("n1").await.unwrap().len();
    h.resume(&s, "sr", &state.location, false).await.unwrap();
    ns.wait_links(&["master", BRIDGE], 1).await;
    let later = console_wait(&h, "n1", before, "uptime=").await;
    assert_eq!(
        later.split("boot_id=").nth(1),
        first.split("boot_id=").nth(1),
        "a resumed guest keeps its boot"
    );
    metrics_until(&h, "n1", "address after resume", |m| {
        m.agent
            .as_ref()
            .is_some_and(|a| a.networks.get("0/ip") == Some(&IP0.to_string()))
    })
    .await;

    // Once the guest stops, no tap is left; then the network goes.
    h.shutdown("n1", true).await.unwrap();
    ns.wait_links(&["type", "tun"], 0).await;
    h.image_destroy("sr", &state.location).await.unwrap();
    h.network_remove(BRIDGE).await.unwrap();
    ns.wait_links(&[BRIDGE], 0).await;
}

const STATIC_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_reads_its_config_drive_and_takes_its_static_address() {
    let data = tempfile::tempdir().unwrap();
    let ns = Netns::new();
    let _reaper = Reaper(data.path());
    let h = host_in(data.path(), Some(&ns)).await;
    h.sr_attach("sr", "sr").await.unwrap();
    // DHCP on the network would give NIC 0 an address from the range if the guest asked.
    h.network_ensure(&NetworkSpec {
        bridge: BRIDGE.into(),
        mtu: 1500,
        uplink: None,
        dhcp: Some(DhcpSpec {
            host_address: Ipv4Addr::new(10, 99, 0, 1),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            range_start: Ipv4Addr::new(10, 99, 0, 100),
            range_end: Ipv4Addr::new(10, 99, 0, 150),
            reservations: vec![Reservation {
                mac: MAC1.into(),
                ip: IP1,
            }],
        }),
    })
    .await
    .unwrap();
    // NIC 0 is static (its MAC in upper case); NIC 1 is not in the file and keeps DHCP.
    let env = format!(
        "NIC_COUNT=1\nNIC0_MAC={}\nNIC0_IP={STATIC_IP}\nNIC0_PREFIX=24\nNIC0_GATEWAY=10.99.0.1\n",
        MAC0.to_uppercase()
    );
    let user_data = b"#cloud-config\nhostname: t\n".to_vec();
    let iso = h
        .image_from_files(
            "sr",
            "config",
            "config-2",
            &[
                ("drover/network.env".into(), env.clone().into_bytes()),
                ("openstack/latest/user_data".into(), user_data.clone()),
            ],
        )
        .await
        .unwrap();
    let mut s = spec(
        "cd1",
        "",
        vec![DiskSpec {
            device: "3".into(),
            sr: "sr".into(),
            image: iso.location.clone(),
            read_only: true,
            cdrom: true,
        }],
    );
    s.nics = vec![nic("0", MAC0), nic("1", MAC1)];
    h.start(&s, false).await.unwrap();

    console_wait(
        &h,
        "cd1",
        0,
        &format!(
            "DROVER-GUEST configdrive file=drover/network.env size={}",
            env.len()
        ),
    )
    .await;
    console_wait(
        &h,
        "cd1",
        0,
        &format!(
            "DROVER-GUEST configdrive file=openstack/latest/user_data size={}",
            user_data.len()
        ),
    )
    .await;
    console_wait(
        &h,
        "cd1",
        0,
        &format!("DROVER-GUEST static if=eth0 ip={STATIC_IP}/24"),
    )
    .await;
    console_wait(&h, "cd1", 0, "DROVER-GUEST configdrive done").await;
    console_wait(&h, "cd1", 0, &format!("nic=eth0 mac={MAC0}")).await;
    console_wait(&h, "cd1", 0, &format!("ip=eth1:{IP1}")).await;

    // The host reaches the guest at its static address (busybox-static's ping), and the guest
    // agent reports it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "busybox", "ping", "-c", "1", "-W", "1",
        ])
        .arg(STATIC_IP.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "no answer from {STATIC_IP}");
    }
    metrics_until(&h, "cd1", "the static address of NIC 0", |m| {
        m.agent
            .as_ref()
            .is_some_and(|a| a.networks.get("0/ip") == Some(&STATIC_IP.to_string()))
    })
    .await;

    // No DHCP on the static NIC: no lease, no address from the range.
    let log = String::from_utf8_lossy(&h.console_log("cd1").await.unwrap()).into_owned();
    assert!(!log.contains("ip=eth0:"), "eth0 ran DHCP:\n{log}");
    let m = h.guest_metrics("cd1").await.unwrap();
    assert!(m.nics[0].leased_ipv4.is_empty(), "{m:?}");

    h.shutdown("cd1", true).await.unwrap();
    h.image_destroy("sr", &iso.location).await.unwrap();
    h.network_remove(BRIDGE).await.unwrap();
}
