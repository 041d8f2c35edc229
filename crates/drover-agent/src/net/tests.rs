//! Networking against the real kernel, inside network namespaces the tests make (run as root):
//! DHCP end to end, guest ports, a bridge's own address, entering the namespace.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use drover_host::{DhcpSpec, HostError, Ip6Config, IpConfig, NetworkSpec, Reservation};

use super::Net;

/// A network namespace of the test's own, deleted (with its processes) when dropped.
struct Ns(String);

impl Ns {
    fn new() -> Ns {
        static N: AtomicUsize = AtomicUsize::new(0);
        assert!(
            nix::unistd::geteuid().is_root(),
            "the network tests need root (they make network namespaces)"
        );
        let name = format!(
            "drover-u-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Ns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n NS args`, which must succeed.
    fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.0];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Runs `args` inside the namespace.
    fn exec(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .expect("ip runs")
    }

    /// The link `name` as JSON, if it exists.
    fn link(&self, name: &str) -> Option<serde_json::Value> {
        let out = std::process::Command::new("ip")
            .args(["-n", &self.0, "-j", "-d", "addr", "show", "dev", name])
            .output()
            .expect("ip runs");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v.get(0).cloned()
    }

    async fn net(&self, dir: &std::path::Path) -> Net {
        Net::open(Some(self.0.clone()), dir.join("net"), "drover:unit".into())
            .await
            .expect("net opens")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Ok(out) = std::process::Command::new("ip")
            .args(["netns", "pids", &self.0])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Runs a command that must succeed; its stdout.
fn sh(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ipv4(link: &serde_json::Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn dhcp(net: u8, reservations: Vec<Reservation>) -> DhcpSpec {
    let a = |host: u8| Ipv4Addr::new(10, 77, net, host);
    DhcpSpec {
        host_address: a(1),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        range_start: a(100),
        range_end: a(150),
        reservations,
    }
}

fn pid_of(dir: &std::path::Path, bridge: &str) -> i32 {
    let file = dir.join("net/networks").join(bridge).join("dnsmasq.pid");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .parse()
        .unwrap()
}

fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(") ").unwrap().1.starts_with('Z'))
}

/// Connects the veth end `port` of `agent`'s bridge `bridge` to `iface` in `other`.
fn cable(agent: &Ns, bridge: &str, port: &str, other: &Ns, iface: &str, mac: &str) {
    agent.ip(&[
        "link", "add", port, "type", "veth", "peer", "name", iface, "netns", &other.0,
    ]);
    agent.ip(&["link", "set", port, "master", bridge, "up"]);
    other.ip(&["link", "set", iface, "address", mac, "up"]);
}

/// Asks for an address on `iface` in `ns` with busybox udhcpc; the address leased.
fn udhcpc(ns: &Ns, iface: &str) -> String {
    let out = ns.exec(&[
        "busybox",
        "udhcpc",
        "-i",
        iface,
        "-q",
        "-n",
        "-t",
        "10",
        "-T",
        "1",
        "-s",
        "/bin/true",
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.split("lease of ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no lease: {text}"))
        .to_string()
}

#[tokio::test]
async fn dhcp_serves_reservations_and_goes_without_a_trace() {
    let (agent, client) = (Ns::new(), Ns::new());
    let tmp = tempfile::tempdir().unwrap();
    let net = agent.net(tmp.path()).await;
    let mac = "52:54:00:12:34:56";
    let mut spec = NetworkSpec {
        bridge: "drt0".into(),
        mtu: 1500,
        uplink: None,
        dhcp: Some(dhcp(
            0,
            vec![Reservation {
                mac: mac.to_uppercase(),
                ip: Ipv4Addr::new(10, 77, 0, 42),
            }],
        )),
    };
    net.ensure(&spec).await.unwrap();
    let br = agent.link("drt0").unwrap();
    assert_eq!(ipv4(&br), ["10.77.0.1/24"]);
    let fwd = agent.exec(&["sysctl", "-n", "net/ipv4/conf/drt0/forwarding"]);
    assert_eq!(String::from_utf8_lossy(&fwd.stdout).trim(), "0");
    let pid = pid_of(tmp.path(), "drt0");
    assert!(running(pid));

    cable(&agent, "drt0", "cv0", &client, "cv1", mac);
    assert_eq!(udhcpc(&client, "cv1"), "10.77.0.42");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !net
        .leases("drt0")
        .contains(&(mac.to_string(), Ipv4Addr::new(10, 77, 0, 42)))
    {
        assert!(
            Instant::now() < deadline,
            "no lease: {:?}",
            net.leases("drt0")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Only the reservations change: the same dnsmasq re-reads them.
    spec.dhcp.as_mut().unwrap().reservations[0].ip = Ipv4Addr::new(10, 77, 0, 43);
    net.ensure(&spec).await.unwrap();
    assert_eq!(pid_of(tmp.path(), "drt0"), pid);
    let hosts = std::fs::read_to_string(tmp.path().join("net/networks/drt0/hosts")).unwrap();
    assert_eq!(hosts, format!("{mac},10.77.0.43\n"));
    assert_eq!(udhcpc(&client, "cv1"), "10.77.0.43");
    // A new address: a new dnsmasq.
    let mut moved = dhcp(1, Vec::new());
    moved.reservations = spec.dhcp.as_ref().unwrap().reservations.clone();
    moved.reservations[0].ip = Ipv4Addr::new(10, 77, 1, 43);
    spec.dhcp = Some(moved);
    net.ensure(&spec).await.unwrap();
    let pid2 = pid_of(tmp.path(), "drt0");
    assert!(pid2 != pid && running(pid2) && !running(pid));
    assert_eq!(ipv4(&agent.link("drt0").unwrap()), ["10.77.1.1/24"]);
    assert_eq!(udhcpc(&client, "cv1"), "10.77.1.43");

    // Without DHCP in the spec: no service, no address, no files.
    spec.dhcp = None;
    net.ensure(&spec).await.unwrap();
    assert!(!running(pid2));
    assert!(ipv4(&agent.link("drt0").unwrap()).is_empty());
    let dir = tmp.path().join("net/networks/drt0");
    for f in ["dnsmasq.pid", "leases", "hosts"] {
        assert!(!dir.join(f).exists(), "{f} left");
    }

    spec.dhcp = Some(dhcp(0, Vec::new()));
    net.ensure(&spec).await.unwrap();
    let pid3 = pid_of(tmp.path(), "drt0");
    net.remove("drt0").await.unwrap();
    assert!(!running(pid3));
    assert!(agent.link("drt0").is_none());
    assert!(!dir.exists());
    assert!(agent.link("cv0").is_some(), "the test's own veth stays");
    net.remove("drt0").await.unwrap();
}

#[tokio::test]
async fn a_second_agent_adopts_the_running_dnsmasq() {
    let agent = Ns::new();
    let tmp = tempfile::tempdir().unwrap();
    let spec = NetworkSpec {
        bridge: "drt1".into(),
        mtu: 1500,
        uplink: None,
        dhcp: Some(dhcp(2, Vec::new())),
    };
    agent.net(tmp.path()).await.ensure(&spec).await.unwrap();
    let pid = pid_of(tmp.path(), "drt1");
    let again = agent.net(tmp.path()).await;
    again.ensure(&spec).await.unwrap();
    assert_eq!(pid_of(tmp.path(), "drt1"), pid);
    again.prune(&[]).await.unwrap();
    assert!(!running(pid));
    assert!(agent.link("drt1").is_none());
}

#[tokio::test]
async fn guest_ports_join_the_bridge() {
    let agent = Ns::new();
    let tmp = tempfile::tempdir().unwrap();
    let net = agent.net(tmp.path()).await;
    let spec = NetworkSpec {
        bridge: "drt2".into(),
        mtu: 9000,
        uplink: None,
        dhcp: None,
    };
    net.ensure(&spec).await.unwrap();
    agent.ip(&["tuntap", "add", "mode", "tap", "name", "tp0"]);
    net.attach_port("tp0", "drt2", 9000).await.unwrap();
    let tp = agent.link("tp0").unwrap();
    assert_eq!(tp["master"], "drt2");
    assert_eq!(tp["mtu"], 9000);
    assert_eq!(tp["ifalias"], "drover:unit");
    assert!(tp["flags"].as_array().unwrap().iter().any(|f| f == "UP"));

    agent.ip(&["link", "add", "ve0", "type", "veth", "peer", "name", "ve1"]);
    assert!(matches!(
        net.attach_port("ve0", "drt2", 1500).await,
        Err(HostError::DeviceTaken(d)) if d == "ve0"
    ));
    assert!(agent.link("ve0").unwrap()["master"].is_null());
    assert!(matches!(
        net.attach_port("tp9", "drt2", 1500).await,
        Err(HostError::NoSuchDevice(_))
    ));

    net.remove("drt2").await.unwrap();
    assert!(
        agent.link("tp0").is_some(),
        "guest taps are QEMU's to delete"
    );
    assert!(agent.link("tp0").unwrap()["master"].is_null());
}

#[tokio::test]
async fn a_bridge_takes_its_address_statically_or_by_dhcp() {
    let (agent, server) = (Ns::new(), Ns::new());
    let (tmp, tmp_server) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let net = agent.net(tmp.path()).await;
    let spec = NetworkSpec {
        bridge: "drt3".into(),
        mtu: 1500,
        uplink: None,
        dhcp: None,
    };
    net.ensure(&spec).await.unwrap();
    let static_ip = IpConfig::Static {
        address: Ipv4Addr::new(10, 79, 0, 7),
        prefix: 16,
    };
    net.configure_ip("drt3", &static_ip).await.unwrap();
    assert_eq!(ipv4(&agent.link("drt3").unwrap()), ["10.79.0.7/16"]);
    net.configure_ip("drt3", &IpConfig::None).await.unwrap();
    assert!(ipv4(&agent.link("drt3").unwrap()).is_empty());

    // A DHCP server on the other side of a cable: another agent's network.
    let serving = server.net(tmp_server.path()).await;
    serving
        .ensure(&NetworkSpec {
            bridge: "srv0".into(),
            mtu: 1500,
            uplink: None,
            dhcp: Some(dhcp(3, Vec::new())),
        })
        .await
        .unwrap();
    cable(&server, "srv0", "sv0", &agent, "sv1", "52:54:00:00:33:01");
    agent.ip(&["link", "set", "sv1", "master", "drt3"]);
    net.configure_ip("drt3", &IpConfig::Dhcp).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let addrs = ipv4(&agent.link("drt3").unwrap());
        if addrs.iter().any(|a| a.starts_with("10.77.3.")) {
            break;
        }
        assert!(Instant::now() < deadline, "no DHCP address: {addrs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = tmp.path().join("net/networks/drt3/udhcpc.pid");
    let pid: i32 = std::fs::read_to_string(&client)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    net.configure_ip("drt3", &static_ip).await.unwrap();
    assert!(!running(pid), "the DHCP client stops");
    assert_eq!(ipv4(&agent.link("drt3").unwrap()), ["10.79.0.7/16"]);

    agent.ip(&["link", "add", "own0", "type", "bridge"]);
    assert!(matches!(
        net.configure_ip("own0", &static_ip).await,
        Err(HostError::DeviceTaken(_))
    ));
    assert!(matches!(
        net.configure_ip("nope0", &static_ip).await,
        Err(HostError::NoSuchDevice(_))
    ));
    assert!(ipv4(&agent.link("own0").unwrap()).is_empty());
    net.remove("drt3").await.unwrap();
    serving.remove("srv0").await.unwrap();
}

#[tokio::test]
async fn entered_processes_run_in_the_namespace_under_their_own_pid() {
    let agent = Ns::new();
    agent.ip(&["link", "add", "marker0", "type", "bridge"]);
    let tmp = tempfile::tempdir().unwrap();
    let net = agent.net(tmp.path()).await;
    let mut cmd = tokio::process::Command::new("ip");
    net.enter(&mut cmd).unwrap();
    let out = cmd.args(["-br", "link"]).output().await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("marker0"));

    let mut cmd = tokio::process::Command::new("sleep");
    net.enter(&mut cmd).unwrap();
    let mut child = cmd.arg("30").kill_on_drop(true).spawn().unwrap();
    let pid = child.id().unwrap() as i32;
    let deadline = Instant::now() + Duration::from_secs(5);
    while super::proc::cmdline(pid) != ["sleep", "30"] {
        assert!(Instant::now() < deadline, "{:?}", super::proc::cmdline(pid));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.unwrap();

    let gone = Net::open(
        Some("drover-no-such-ns".into()),
        tmp.path().join("n2"),
        "x".into(),
    )
    .await
    .unwrap();
    let e = gone
        .enter(&mut tokio::process::Command::new("true"))
        .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[tokio::test]
async fn a_bridge_takes_ipv6_statically_or_by_autoconf() {
    let agent = Ns::new();
    let tmp = tempfile::tempdir().unwrap();
    let net = agent.net(tmp.path()).await;
    net.ensure(&NetworkSpec {
        bridge: "drt6".into(),
        mtu: 1500,
        uplink: None,
        dhcp: None,
    })
    .await
    .unwrap();
    let global = |agent: &Ns| -> Vec<String> {
        agent.link("drt6").unwrap()["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["family"] == "inet6" && a["scope"] == "global")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect()
    };
    let sysctl = |key: &str| {
        let out = agent.exec(&["sysctl", "-n", &format!("net/ipv6/conf/drt6/{key}")]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let static_ip = Ip6Config::Static {
        address: "fd00:79::7".parse().unwrap(),
        prefix: 64,
    };
    net.configure_ipv6("drt6", &static_ip).await.unwrap();
    assert_eq!(global(&agent), ["fd00:79::7/64"]);
    assert_eq!(
        (sysctl("accept_ra"), sysctl("autoconf")),
        ("0".into(), "0".into())
    );
    net.configure_ipv6("drt6", &Ip6Config::Autoconf)
        .await
        .unwrap();
    assert!(global(&agent).is_empty());
    assert_eq!(
        (sysctl("accept_ra"), sysctl("autoconf")),
        ("1".into(), "1".into())
    );
    net.configure_ipv6("drt6", &Ip6Config::None).await.unwrap();
    assert_eq!(sysctl("accept_ra"), "0");
    let before = agent.exec(&["sysctl", "-n", "net/ipv6/conf/default/accept_ra"]);
    agent.ip(&["link", "add", "own6", "type", "bridge"]);
    assert!(matches!(
        net.configure_ipv6("own6", &static_ip).await,
        Err(HostError::DeviceTaken(_))
    ));
    let after = agent.exec(&["sysctl", "-n", "net/ipv6/conf/default/accept_ra"]);
    assert_eq!(before.stdout, after.stdout, "the host's defaults stay");
}
