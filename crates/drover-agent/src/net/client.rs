//! The IPv4 configuration of a bridge of Drover's: none, a static address, or an address from a
//! DHCP client (busybox `udhcpc`, whose hook script only sets the address, never routes or DNS);
//! and its IPv6 configuration: none, a static address, or SLAAC from router advertisements.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use drover_host::{HostError, Ip6Config, IpConfig};

use super::{bridge, proc, Net};

/// Where Debian's busybox may be.
const BUSYBOX: [&str; 2] = ["/usr/bin/busybox", "/bin/busybox"];

/// The client's hook: keeps the leased address (remembered next to the script) on the interface.
const SCRIPT: &str = r#"#!/bin/sh
f="$(dirname "$0")/udhcpc.address"
old=$(cat "$f" 2>/dev/null)
case "$1" in
deconfig)
    [ -n "$old" ] && ip addr del "$old" dev "$interface"
    rm -f "$f" ;;
bound|renew)
    new="$ip/$mask"
    if [ "$new" != "$old" ]; then
        [ -n "$old" ] && ip addr del "$old" dev "$interface"
        ip addr add "$new" dev "$interface" && echo "$new" > "$f"
    fi ;;
esac
exit 0
"#;

/// The client's files in a network's state directory.
const FILES: [&str; 4] = [
    "udhcpc.pid",
    "udhcpc.script",
    "udhcpc.address",
    "udhcpc.log",
];

/// Sets the IPv4 configuration of Drover's bridge `bridge`. The address of the network's own
/// DHCP service stays.
pub(crate) async fn configure(net: &Net, bridge: &str, config: &IpConfig) -> Result<(), HostError> {
    if let IpConfig::Static { prefix, .. } = config {
        if *prefix > 32 {
            return Err(HostError::NetConfig {
                device: bridge.into(),
                reason: format!("prefix length {prefix} is not within 0-32"),
            });
        }
    }
    let b = net.ip.existing(bridge).await?;
    if !b.ours(&net.owner) || b.kind() != "bridge" {
        return Err(HostError::DeviceTaken(bridge.into()));
    }
    let busybox = match config {
        IpConfig::Dhcp => Some(busybox()?),
        _ => None,
    };
    let dir = net.network_dir(bridge);
    stop(&dir).await;
    let service = bridge::service_address(net, bridge)?;
    for (a, p) in net.ip.existing(bridge).await?.ipv4() {
        let cidr = format!("{a}/{p}");
        if service.as_ref() != Some(&cidr) {
            net.ip
                .cmd(bridge, &["addr", "del", &cidr, "dev", bridge])
                .await?;
        }
    }
    match (config, busybox) {
        (IpConfig::Static { address, prefix }, _) => {
            let cidr = format!("{address}/{prefix}");
            net.ip
                .cmd(bridge, &["addr", "add", &cidr, "dev", bridge])
                .await
        }
        (IpConfig::Dhcp, Some(busybox)) => start(net, bridge, &dir, &busybox).await,
        _ => Ok(()),
    }
}

/// Sets the IPv6 configuration of Drover's bridge `bridge` through its own sysctls (never the
/// host's defaults or another interface's) and `ip -6 addr`. Its link-local address stays; a
/// router's advertisements are followed with `Autoconf` only, and add no default route of
/// theirs elsewhere: the setting is the bridge's.
pub(crate) async fn configure6(
    net: &Net,
    bridge: &str,
    config: &Ip6Config,
) -> Result<(), HostError> {
    if let Ip6Config::Static { prefix, .. } = config {
        if !(1..=128).contains(prefix) {
            return Err(HostError::NetConfig {
                device: bridge.into(),
                reason: format!("prefix length {prefix} is not within 1-128"),
            });
        }
    }
    let b = net.ip.existing(bridge).await?;
    if !b.ours(&net.owner) || b.kind() != "bridge" {
        return Err(HostError::DeviceTaken(bridge.into()));
    }
    let sysctl = |key: &str, value: &str| {
        let setting = format!("net/ipv6/conf/{bridge}/{key}={value}");
        async move { net.ip.tool(bridge, "sysctl", &["-q", "-w", &setting]).await }
    };
    let autoconf = if matches!(config, Ip6Config::Autoconf) {
        "1"
    } else {
        "0"
    };
    if !matches!(config, Ip6Config::None) {
        sysctl("disable_ipv6", "0").await?;
    }
    sysctl("accept_ra", autoconf).await?;
    sysctl("autoconf", autoconf).await?;
    let want = match config {
        Ip6Config::Static { address, prefix } => Some(format!("{address}/{prefix}")),
        _ => None,
    };
    let mut has = false;
    for a in b
        .addr_info
        .iter()
        .filter(|a| a.family == "inet6" && a.scope == "global")
    {
        let cidr = format!("{}/{}", a.local, a.prefixlen);
        if want.as_ref() == Some(&cidr) {
            has = true;
        } else {
            net.ip
                .cmd(bridge, &["-6", "addr", "del", &cidr, "dev", bridge])
                .await?;
        }
    }
    match want {
        Some(cidr) if !has => {
            net.ip
                .cmd(bridge, &["-6", "addr", "add", &cidr, "dev", bridge])
                .await
        }
        _ => Ok(()),
    }
}

/// Debian's busybox, which has `udhcpc`.
fn busybox() -> Result<PathBuf, HostError> {
    BUSYBOX
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            HostError::Unsupported(
                "a DHCP client needs busybox (udhcpc), which is not installed on this host".into(),
            )
        })
}

/// Starts the DHCP client for `bridge`; it keeps running, also after the agent stops.
async fn start(net: &Net, bridge: &str, dir: &Path, busybox: &Path) -> Result<(), HostError> {
    let io = |e: std::io::Error| HostError::Failed(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let script = dir.join("udhcpc.script");
    std::fs::write(&script, SCRIPT).map_err(io)?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    let pidfile = dir.join("udhcpc.pid");
    let log = std::fs::File::create(dir.join("udhcpc.log")).map_err(io)?;
    let mut cmd = tokio::process::Command::new(busybox);
    net.enter(&mut cmd)?;
    let child = cmd
        .args(["udhcpc", "-f", "-i", bridge, "-p"])
        .arg(&pidfile)
        .arg("-s")
        .arg(&script)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| HostError::NetConfig {
            device: bridge.into(),
            reason: format!("cannot run {} udhcpc: {e}", busybox.display()),
        })?;
    if let Some(pid) = child.id() {
        std::fs::write(&pidfile, format!("{pid}\n")).map_err(io)?;
    }
    Ok(())
}

/// Stops the DHCP client whose files are in `dir`, if it runs, and deletes its files.
pub(crate) async fn stop(dir: &Path) {
    let pidfile = dir.join("udhcpc.pid");
    if let Some((pid, _)) = proc::adopt(&pidfile, &pidfile.display().to_string()) {
        proc::stop(pid).await;
    }
    for f in FILES {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use drover_host::{HostError, Ip6Config, NetCapabilities};

    use super::super::fake::Fake;

    #[tokio::test]
    async fn ipv6_is_set_on_drovers_bridges_only() {
        let (fake, net) = Fake::net(NetCapabilities::default());
        fake.add("eth1", "2001:db8::5/64", None);
        let stat = Ip6Config::Static {
            address: "2001:db8:1::2".parse::<Ipv6Addr>().unwrap(),
            prefix: 64,
        };
        assert!(matches!(
            net.configure_ipv6("eth1", &stat).await,
            Err(HostError::DeviceTaken(d)) if d == "eth1"
        ));
        assert!(matches!(
            net.configure_ipv6("xenbr9", &stat).await,
            Err(HostError::NoSuchDevice(_))
        ));
        assert!(fake.changes().is_empty(), "{:?}", fake.changes());
        net.ip
            .cmd(
                "xenbr1",
                &["link", "add", "name", "xenbr1", "type", "bridge"],
            )
            .await
            .unwrap();
        net.ip
            .set("xenbr1", &["alias", "drover:test"])
            .await
            .unwrap();
        fake.clear();
        net.configure_ipv6("xenbr1", &stat).await.unwrap();
        net.configure_ipv6("xenbr1", &stat).await.unwrap();
        let sysctls = [
            "sysctl -q -w net/ipv6/conf/xenbr1/disable_ipv6=0",
            "sysctl -q -w net/ipv6/conf/xenbr1/accept_ra=0",
            "sysctl -q -w net/ipv6/conf/xenbr1/autoconf=0",
        ];
        let mut once = sysctls.to_vec();
        once.push("ip -6 addr add 2001:db8:1::2/64 dev xenbr1");
        let twice: Vec<&str> = once.iter().chain(sysctls.iter()).copied().collect();
        assert_eq!(fake.changes(), twice, "the second time changes no address");
        fake.clear();
        net.configure_ipv6("xenbr1", &Ip6Config::Autoconf)
            .await
            .unwrap();
        assert_eq!(
            fake.changes(),
            [
                "sysctl -q -w net/ipv6/conf/xenbr1/disable_ipv6=0",
                "sysctl -q -w net/ipv6/conf/xenbr1/accept_ra=1",
                "sysctl -q -w net/ipv6/conf/xenbr1/autoconf=1",
                "ip -6 addr del 2001:db8:1::2/64 dev xenbr1",
            ]
        );
        fake.clear();
        net.configure_ipv6("xenbr1", &Ip6Config::None)
            .await
            .unwrap();
        assert_eq!(
            fake.changes(),
            [
                "sysctl -q -w net/ipv6/conf/xenbr1/accept_ra=0",
                "sysctl -q -w net/ipv6/conf/xenbr1/autoconf=0",
            ]
        );
        let bad = Ip6Config::Static {
            address: Ipv6Addr::LOCALHOST,
            prefix: 129,
        };
        assert!(matches!(
            net.configure_ipv6("xenbr1", &bad).await,
            Err(HostError::NetConfig { .. })
        ));
        let eth1 = &fake.snapshot()["eth1"];
        assert_eq!(format!("{eth1:?}").matches("2001:db8::5/64").count(), 1);
    }
}
