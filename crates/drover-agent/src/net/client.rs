//! The IPv4 configuration of a bridge of Drover's: none, a static address, or an address from a
//! DHCP client (busybox `udhcpc`, whose hook script only sets the address, never routes or DNS).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use drover_host::{HostError, IpConfig};

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
