//! The host's interfaces that can carry guest traffic (`PIF.scan`), and their counters.

use std::collections::HashMap;

use drover_host::{HostError, PifCounters, PifInfo};

use super::run::Ip;

/// Prints `device speed duplex driver device-path` (tab-separated) from sysfs for each argument.
/// It runs inside the namespace (`ip netns exec` mounts the namespace's own sysfs).
const SYSFS: &str = r#"for d; do
s=/sys/class/net/$d
drv=$(readlink "$s/device/driver" 2>/dev/null)
printf '%s\t%s\t%s\t%s\t%s\n' "$d" "$(cat "$s/speed" 2>/dev/null)" "$(cat "$s/duplex" 2>/dev/null)" "${drv##*/}" "$(readlink -f "$s/device" 2>/dev/null)"
done"#;

/// What sysfs tells about an interface.
#[derive(Default)]
struct Sys {
    speed: u32,
    duplex: bool,
    driver: String,
    pci: String,
}

/// Reads sysfs facts of `devices`; unreadable facts stay empty.
async fn sysfs(ip: &Ip, devices: &[String]) -> HashMap<String, Sys> {
    let mut args = vec!["-c", SYSFS, "sh"];
    args.extend(devices.iter().map(String::as_str));
    let out = ip.tool("sysfs", "sh", &args).await.unwrap_or_default();
    out.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let [dev, speed, duplex, driver, path] = f[..] else {
                return None;
            };
            let sys = Sys {
                speed: speed.parse::<i64>().ok().filter(|s| *s > 0).unwrap_or(0) as u32,
                duplex: duplex == "full",
                driver: driver.to_string(),
                pci: path
                    .rsplit('/')
                    .find(|c| is_pci_address(c))
                    .unwrap_or("")
                    .to_string(),
            };
            Some((dev.to_string(), sys))
        })
        .collect()
}

/// Whether `s` is a PCI address, `0000:00:03.0`.
fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && s.chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10].contains(&i) || c.is_ascii_hexdigit())
}

/// The interfaces of the namespace that could carry guest traffic: Ethernet hardware and veth
/// ends, not Drover's own devices (marked with `owner`).
pub(crate) async fn scan(ip: &Ip, owner: &str) -> Result<Vec<PifInfo>, HostError> {
    let links: Vec<_> = ip
        .links()
        .await?
        .into_iter()
        .filter(|l| l.link_type == "ether" && !l.ours(owner) && matches!(l.kind(), "" | "veth"))
        .collect();
    let defaults = ip.default_routes().await?;
    let names: Vec<String> = links.iter().map(|l| l.ifname.clone()).collect();
    let mut sys = sysfs(ip, &names).await;
    Ok(links
        .into_iter()
        .map(|l| {
            let s = sys.remove(&l.ifname).unwrap_or_default();
            let default = defaults
                .iter()
                .find(|r| r.dev.as_deref() == Some(l.ifname.as_str()));
            PifInfo {
                mac: l.address.clone(),
                mtu: l.mtu,
                carrier: l.carrier(),
                speed: s.speed,
                duplex: s.duplex,
                driver: if s.driver.is_empty() {
                    l.kind().to_string()
                } else {
                    s.driver
                },
                pci_bus_path: s.pci,
                ipv4: l.ipv4().iter().map(|(a, p)| format!("{a}/{p}")).collect(),
                default_route: default.is_some(),
                gateway: default.and_then(|r| r.gateway.clone()).unwrap_or_default(),
                device: l.ifname,
            }
        })
        .collect())
}

/// Byte counters and carrier of `device`.
pub(crate) async fn counters(ip: &Ip, device: &str) -> Result<PifCounters, HostError> {
    let l = ip.stats(device).await?;
    let (rx_bytes, tx_bytes) = l
        .stats64
        .as_ref()
        .map(|s| (s.rx.bytes, s.tx.bytes))
        .unwrap_or_default();
    Ok(PifCounters {
        rx_bytes,
        tx_bytes,
        carrier: l.carrier(),
    })
}

#[cfg(test)]
mod tests {
    use super::is_pci_address;

    #[test]
    fn knows_pci_addresses() {
        assert!(is_pci_address("0000:00:03.0"));
        assert!(!is_pci_address("virtio2"));
        assert!(!is_pci_address("pci0000:00"));
    }
}
