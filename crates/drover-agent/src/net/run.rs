//! Running iproute2 (and other network tools) inside the agent's namespace, and reading its JSON.

use std::net::Ipv4Addr;
use std::sync::Arc;

use async_trait::async_trait;
use drover_host::HostError;
use serde::Deserialize;

/// Runs network tools; a fake stands in for it in unit tests.
#[async_trait]
pub(crate) trait Runner: Send + Sync {
    /// Runs `program` with `args` in the agent's namespace: its stdout, or its stderr if it fails.
    async fn run(&self, program: &str, args: &[&str]) -> Result<String, String>;
}

/// The real tools, in the namespace `netns` (or the agent's own).
pub(crate) struct System {
    /// The namespace's name under `/run/netns`.
    pub(crate) netns: Option<String>,
}

#[async_trait]
impl Runner for System {
    async fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let mut cmd = match &self.netns {
            None => tokio::process::Command::new(program),
            Some(ns) if program == "ip" || program == "bridge" => {
                let mut c = tokio::process::Command::new(program);
                c.args(["-n", ns]);
                c
            }
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
        };
        let out = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(if err.is_empty() {
                format!("{program} {} failed ({})", args.join(" "), out.status)
            } else {
                err
            })
        }
    }
}

/// A network interface as `ip -j -d addr show` describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Link {
    /// Its name.
    pub(crate) ifname: String,
    /// Interface flags (`UP`, `LOWER_UP`, ...).
    #[serde(default)]
    pub(crate) flags: Vec<String>,
    /// MTU.
    pub(crate) mtu: u32,
    /// The bridge or bond it is a port of.
    pub(crate) master: Option<String>,
    /// `ether`, `loopback`, `none`, ...
    #[serde(default)]
    pub(crate) link_type: String,
    /// MAC.
    #[serde(default)]
    pub(crate) address: String,
    /// The alias, Drover's mark.
    pub(crate) ifalias: Option<String>,
    /// Its kind and details.
    pub(crate) linkinfo: Option<LinkInfo>,
    /// Its addresses.
    #[serde(default)]
    pub(crate) addr_info: Vec<AddrInfo>,
    /// Counters (with `-s`).
    pub(crate) stats64: Option<Stats64>,
}

/// The kind of a link.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LinkInfo {
    /// `bridge`, `veth`, `vxlan`, `tun`, ...; absent for hardware.
    pub(crate) info_kind: Option<String>,
}

/// One address of a link.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AddrInfo {
    /// `inet` or `inet6`.
    pub(crate) family: String,
    /// The address.
    pub(crate) local: String,
    /// Its prefix length.
    pub(crate) prefixlen: u8,
    /// `global`, `link`, `host`.
    #[serde(default)]
    pub(crate) scope: String,
}

/// Byte counters of a link.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Stats64 {
    /// Received.
    pub(crate) rx: Counter,
    /// Sent.
    pub(crate) tx: Counter,
}

/// One direction's counters.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Counter {
    /// Bytes.
    pub(crate) bytes: u64,
}

/// A route as `ip -j route show` describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Route {
    /// Destination (`default`, `10.0.0.0/24`, ...).
    pub(crate) dst: String,
    /// Route type, absent for unicast.
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    /// Routing table, absent for `main`.
    pub(crate) table: Option<String>,
    /// Device.
    pub(crate) dev: Option<String>,
    /// Next hop.
    pub(crate) gateway: Option<String>,
}

impl Link {
    /// The device kind (`bridge`, `veth`, ...), empty for hardware.
    pub(crate) fn kind(&self) -> &str {
        self.linkinfo
            .as_ref()
            .and_then(|i| i.info_kind.as_deref())
            .unwrap_or("")
    }

    /// Whether it carries the alias `owner`.
    pub(crate) fn ours(&self, owner: &str) -> bool {
        self.ifalias.as_deref() == Some(owner)
    }

    /// Whether it is administratively up.
    pub(crate) fn up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }

    /// Whether it has a carrier.
    pub(crate) fn carrier(&self) -> bool {
        self.flags.iter().any(|f| f == "LOWER_UP")
    }

    /// Its IPv4 addresses with prefix lengths.
    pub(crate) fn ipv4(&self) -> Vec<(Ipv4Addr, u8)> {
        self.addr_info
            .iter()
            .filter(|a| a.family == "inet")
            .filter_map(|a| Some((a.local.parse().ok()?, a.prefixlen)))
            .collect()
    }

    /// Whether it has addresses of global scope (the host's own traffic).
    pub(crate) fn has_global_address(&self) -> bool {
        self.addr_info.iter().any(|a| a.scope == "global")
    }
}

impl Route {
    /// Whether the route is one somebody set up, not one the kernel makes for every link.
    pub(crate) fn is_held(&self) -> bool {
        self.table.as_deref() != Some("local")
            && !matches!(
                self.kind.as_deref(),
                Some("local" | "broadcast" | "multicast" | "anycast")
            )
            && !self.dst.starts_with("fe80:")
    }
}

/// Typed access to iproute2 through a [`Runner`].
#[derive(Clone)]
pub(crate) struct Ip {
    runner: Arc<dyn Runner>,
}

impl Ip {
    /// Uses `runner`.
    pub(crate) fn new(runner: Arc<dyn Runner>) -> Ip {
        Ip { runner }
    }

    /// Runs `program` with `args`; a failure is a [`HostError::NetConfig`] of `device`.
    pub(crate) async fn tool(
        &self,
        device: &str,
        program: &str,
        args: &[&str],
    ) -> Result<String, HostError> {
        self.runner
            .run(program, args)
            .await
            .map_err(|reason| HostError::NetConfig {
                device: device.into(),
                reason,
            })
    }

    /// Runs `ip args` on `device`.
    pub(crate) async fn cmd(&self, device: &str, args: &[&str]) -> Result<(), HostError> {
        self.tool(device, "ip", args).await.map(drop)
    }

    /// Runs `ip link set dev DEVICE args`.
    pub(crate) async fn set(&self, device: &str, args: &[&str]) -> Result<(), HostError> {
        let mut all = vec!["link", "set", "dev", device];
        all.extend_from_slice(args);
        self.cmd(device, &all).await
    }

    /// The link `name` with its addresses, if it exists.
    pub(crate) async fn link(&self, name: &str) -> Result<Option<Link>, HostError> {
        match self
            .runner
            .run("ip", &["-j", "-d", "addr", "show", "dev", name])
            .await
        {
            Ok(out) => Ok(parse::<Vec<Link>>(name, &out)?.into_iter().next()),
            Err(e) if e.contains("does not exist") => Ok(None),
            Err(reason) => Err(HostError::NetConfig {
                device: name.into(),
                reason,
            }),
        }
    }

    /// The link `name`, which must exist.
    pub(crate) async fn existing(&self, name: &str) -> Result<Link, HostError> {
        self.link(name)
            .await?
            .ok_or_else(|| HostError::NoSuchDevice(name.into()))
    }

    /// Every link with its addresses.
    pub(crate) async fn links(&self) -> Result<Vec<Link>, HostError> {
        let out = self
            .tool("links", "ip", &["-j", "-d", "addr", "show"])
            .await?;
        parse("links", &out)
    }

    /// The routes of every table through `device` (both families).
    pub(crate) async fn routes(&self, device: &str) -> Result<Vec<Route>, HostError> {
        let out = self
            .tool(
                device,
                "ip",
                &["-j", "route", "show", "table", "all", "dev", device],
            )
            .await?;
        parse(device, &out)
    }

    /// The IPv4 default routes of the main table.
    pub(crate) async fn default_routes(&self) -> Result<Vec<Route>, HostError> {
        let out = self
            .tool("routes", "ip", &["-j", "-4", "route", "show", "default"])
            .await?;
        parse("routes", &out)
    }

    /// Counters and flags of `device`.
    pub(crate) async fn stats(&self, device: &str) -> Result<Link, HostError> {
        match self
            .runner
            .run("ip", &["-j", "-s", "link", "show", "dev", device])
            .await
        {
            Ok(out) => parse::<Vec<Link>>(device, &out)?
                .into_iter()
                .next()
                .ok_or_else(|| HostError::NoSuchDevice(device.into())),
            Err(e) if e.contains("does not exist") => Err(HostError::NoSuchDevice(device.into())),
            Err(reason) => Err(HostError::NetConfig {
                device: device.into(),
                reason,
            }),
        }
    }
}

/// Parses iproute2's JSON output.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    device: &str,
    out: &str,
) -> Result<T, HostError> {
    let text = if out.trim().is_empty() { "[]" } else { out };
    serde_json::from_str(text).map_err(|e| HostError::NetConfig {
        device: device.into(),
        reason: format!("unreadable iproute2 output: {e}"),
    })
}
