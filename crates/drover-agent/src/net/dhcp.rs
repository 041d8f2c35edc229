//! One dnsmasq per network, serving DHCP only (no DNS, no router), with a reservation per guest
//! MAC. It outlives the agent, like guests do, and is found again through its pidfile.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;

use drover_host::{DhcpSpec, HostError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::proc;

/// Debian's dnsmasq (package `dnsmasq-base`).
pub(crate) const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// How long a lease lasts.
const LEASE_TIME: &str = "1h";

/// The files of a network's DHCP service in its state directory `dir`.
const FILES: [&str; 4] = ["dnsmasq.pid", "leases", "hosts", "dnsmasq.log"];

/// The prefix length of a contiguous netmask.
pub(crate) fn prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    (bits.leading_ones() == bits.count_ones()).then_some(bits.count_ones() as u8)
}

/// Whether `mac` is six colon-separated hex bytes.
pub(crate) fn valid_mac(mac: &str) -> bool {
    mac.len() == 17
        && mac.split(':').count() == 6
        && mac
            .split(':')
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// Checks that `spec` describes one subnet; returns its prefix length.
pub(crate) fn validate(bridge: &str, spec: &DhcpSpec) -> Result<u8, HostError> {
    let bad = |reason: String| HostError::NetConfig {
        device: bridge.into(),
        reason,
    };
    let prefix = prefix(spec.netmask)
        .filter(|p| (8..=30).contains(p))
        .ok_or_else(|| bad(format!("netmask {} is not usable for DHCP", spec.netmask)))?;
    let mask = u32::from(spec.netmask);
    let net = u32::from(spec.host_address) & mask;
    let inside = |a: Ipv4Addr| {
        let a = u32::from(a);
        a & mask == net && a != net && a != net | !mask
    };
    for a in [spec.host_address, spec.range_start, spec.range_end] {
        if !inside(a) {
            return Err(bad(format!(
                "{a} is not a host address of {}/{prefix}",
                Ipv4Addr::from(net)
            )));
        }
    }
    if spec.range_start > spec.range_end {
        return Err(bad(format!(
            "the range {}-{} is empty",
            spec.range_start, spec.range_end
        )));
    }
    for r in &spec.reservations {
        if !valid_mac(&r.mac) {
            return Err(bad(format!("malformed MAC {:?}", r.mac)));
        }
        if !inside(r.ip) || r.ip == spec.host_address {
            return Err(bad(format!("reserved address {} is not usable", r.ip)));
        }
    }
    Ok(prefix)
}

/// Fails clearly when dnsmasq is not installed.
pub(crate) fn check_installed(bridge: &str) -> Result<(), HostError> {
    if Path::new(DNSMASQ).is_file() {
        Ok(())
    } else {
        Err(HostError::NetConfig {
            device: bridge.into(),
            reason: format!(
                "DHCP needs dnsmasq ({DNSMASQ}, Debian package dnsmasq-base), which is not installed"
            ),
        })
    }
}

/// The command line of the service of `bridge` with state in `dir`.
fn command_line(bridge: &str, dir: &Path, spec: &DhcpSpec) -> Vec<String> {
    let file = |name: &str| dir.join(name).display().to_string();
    vec![
        DNSMASQ.into(),
        "--conf-file=/dev/null".into(),
        "--port=0".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--bind-interfaces".into(),
        format!("--interface={bridge}"),
        "--except-interface=lo".into(),
        format!(
            "--dhcp-range={},{},{},{LEASE_TIME}",
            spec.range_start, spec.range_end, spec.netmask
        ),
        "--dhcp-authoritative".into(),
        "--dhcp-option=3".into(),
        "--dhcp-option=6".into(),
        format!("--dhcp-leasefile={}", file("leases")),
        format!("--dhcp-hostsfile={}", file("hosts")),
        format!("--pid-file={}", file("dnsmasq.pid")),
        format!("--log-facility={}", file("dnsmasq.log")),
        "--user=root".into(),
    ]
}

/// The reservations, one `MAC,IP` line each.
fn hosts(spec: &DhcpSpec) -> String {
    spec.reservations
        .iter()
        .map(|r| format!("{},{}\n", r.mac.to_ascii_lowercase(), r.ip))
        .collect()
}

/// The running service with state in `dir`, with its command line.
fn running(dir: &Path) -> Option<(i32, Vec<String>)> {
    let pidfile = dir.join("dnsmasq.pid");
    proc::adopt(&pidfile, &format!("--pid-file={}", pidfile.display()))
        .filter(|(_, args)| args.first().is_some_and(|a| a.ends_with("dnsmasq")))
}

/// Brings the service of `bridge` in line with `spec`: starts it, has it re-read changed
/// reservations, or restarts it when `restart` or its command line differs. Returns whether it
/// started a new process.
pub(crate) async fn ensure(
    netns: Option<&str>,
    bridge: &str,
    dir: &Path,
    spec: &DhcpSpec,
    restart: bool,
) -> Result<bool, HostError> {
    let io = |e: std::io::Error| HostError::Failed(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let hosts_path = dir.join("hosts");
    let new_hosts = hosts(spec);
    let hosts_changed = std::fs::read_to_string(&hosts_path).ok().as_deref() != Some(&new_hosts);
    if hosts_changed {
        std::fs::write(&hosts_path, &new_hosts).map_err(io)?;
    }
    let wanted = command_line(bridge, dir, spec);
    let lease_file = dir.join("leases");
    let leases = std::fs::read_to_string(&lease_file).unwrap_or_default();
    let kept = without_conflicts(&leases, spec);
    let purge = kept != leases;
    match running(dir) {
        Some((pid, args)) if !restart && !purge && args == wanted => {
            if hosts_changed {
                kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|e| HostError::NetConfig {
                    device: bridge.into(),
                    reason: format!("cannot signal dnsmasq {pid}: {e}"),
                })?;
            }
            return Ok(false);
        }
        Some((pid, _)) => proc::stop(pid).await,
        None => {}
    }
    if purge {
        std::fs::write(&lease_file, kept).map_err(io)?;
    }
    start(netns, bridge, &wanted).await?;
    Ok(true)
}

/// The lease file `leases` without the leases of reserved addresses held by other MACs (such as
/// the address of a destroyed VIF, now reserved for a new one): dnsmasq would keep honouring
/// them, so they are dropped while it is stopped. (A reserved MAC holding another address needs
/// no help: dnsmasq moves it on its next renewal.)
fn without_conflicts(leases: &str, spec: &DhcpSpec) -> String {
    leases
        .lines()
        .filter(|line| {
            let mut f = line.split_whitespace();
            let (Some(mac), Some(ip)) = (f.nth(1), f.next()) else {
                return true;
            };
            let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                return true;
            };
            !spec
                .reservations
                .iter()
                .any(|r| r.ip == ip && !r.mac.eq_ignore_ascii_case(mac))
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Starts dnsmasq with `args`; it reports a bad configuration before it goes to the background.
async fn start(netns: Option<&str>, bridge: &str, args: &[String]) -> Result<(), HostError> {
    check_installed(bridge)?;
    let mut cmd = tokio::process::Command::new(&args[0]);
    proc::enter(netns, &mut cmd)?;
    let out = cmd
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .output()
        .await
        .map_err(|e| HostError::NetConfig {
            device: bridge.into(),
            reason: format!("cannot run {DNSMASQ}: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HostError::NetConfig {
            device: bridge.into(),
            reason: format!(
                "dnsmasq did not start ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// Stops the service with state in `dir` and deletes its files (leases included).
pub(crate) async fn stop(dir: &Path) {
    if let Some((pid, _)) = running(dir) {
        proc::stop(pid).await;
    }
    for f in FILES {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

/// The current leases in the lease file of the service with state in `dir`, by lower-case MAC.
pub(crate) fn leases(dir: &Path) -> Vec<(String, Ipv4Addr)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    std::fs::read_to_string(dir.join("leases"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let expiry: u64 = f.next()?.parse().ok()?;
            let mac = f.next()?.to_ascii_lowercase();
            let ip: Ipv4Addr = f.next()?.parse().ok()?;
            (expiry == 0 || expiry >= now).then_some((mac, ip))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_host::Reservation;

    fn spec() -> DhcpSpec {
        DhcpSpec {
            host_address: "10.1.0.1".parse().unwrap(),
            netmask: "255.255.255.0".parse().unwrap(),
            range_start: "10.1.0.100".parse().unwrap(),
            range_end: "10.1.0.200".parse().unwrap(),
            reservations: vec![Reservation {
                mac: "52:54:00:AA:bb:01".into(),
                ip: "10.1.0.5".parse().unwrap(),
            }],
        }
    }

    #[test]
    fn validates_one_subnet() {
        assert_eq!(validate("br", &spec()).unwrap(), 24);
        let mut s = spec();
        s.netmask = "255.0.255.0".parse().unwrap();
        assert!(validate("br", &s).is_err());
        let mut s = spec();
        s.range_end = "10.1.1.5".parse().unwrap();
        assert!(validate("br", &s).is_err());
        let mut s = spec();
        s.range_start = "10.1.0.201".parse().unwrap();
        assert!(validate("br", &s).is_err());
        let mut s = spec();
        s.reservations[0].mac = "52:54:00:aa:bb:01\n--dhcp-option=3,1.2.3.4".into();
        assert!(validate("br", &s).is_err());
        let mut s = spec();
        s.reservations[0].ip = s.host_address;
        assert!(validate("br", &s).is_err());
    }

    #[test]
    fn serves_dhcp_only() {
        let args = command_line("drbr0", Path::new("/var/n/drbr0"), &spec());
        assert_eq!(args[0], DNSMASQ);
        for a in [
            "--port=0",
            "--interface=drbr0",
            "--dhcp-range=10.1.0.100,10.1.0.200,255.255.255.0,1h",
            "--dhcp-option=3",
            "--dhcp-option=6",
            "--pid-file=/var/n/drbr0/dnsmasq.pid",
            "--dhcp-hostsfile=/var/n/drbr0/hosts",
        ] {
            assert!(args.iter().any(|x| x == a), "{a} missing from {args:?}");
        }
        assert_eq!(hosts(&spec()), "52:54:00:aa:bb:01,10.1.0.5\n");
    }

    #[test]
    fn drops_leases_that_contradict_reservations() {
        let leases = "1 52:54:00:aa:bb:01 10.1.0.5 a *\n\
                      1 52:54:00:aa:bb:02 10.1.0.6 b *\n\
                      1 52:54:00:aa:bb:09 10.1.0.150 c *\n";
        let mut s = spec();
        assert_eq!(without_conflicts(leases, &s), leases);
        s.reservations = vec![
            Reservation {
                mac: "52:54:00:aa:bb:03".into(),
                ip: "10.1.0.5".parse().unwrap(),
            },
            Reservation {
                mac: "52:54:00:AA:BB:02".into(),
                ip: "10.1.0.7".parse().unwrap(),
            },
        ];
        assert_eq!(
            without_conflicts(leases, &s),
            "1 52:54:00:aa:bb:02 10.1.0.6 b *\n\
             1 52:54:00:aa:bb:09 10.1.0.150 c *\n"
        );
    }

    #[test]
    fn reads_current_leases() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("leases"),
            "0 52:54:00:AA:00:01 10.1.0.5 vm1 *\n1 52:54:00:aa:00:02 10.1.0.6 * *\n4102444800 52:54:00:aa:00:03 10.1.0.7 * 01:52\nbad line\n",
        )
        .unwrap();
        assert_eq!(
            leases(dir.path()),
            vec![
                ("52:54:00:aa:00:01".to_string(), "10.1.0.5".parse().unwrap()),
                ("52:54:00:aa:00:03".to_string(), "10.1.0.7".parse().unwrap()),
            ]
        );
    }
}
