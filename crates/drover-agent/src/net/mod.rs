//! Host networking: bridges, their uplink ports (a device, an 802.1Q sub-interface or VXLAN),
//! bonds, a dnsmasq DHCP service per network, and the host's interfaces.
//!
//! Everything runs inside the agent's network namespace when it has one. Every device Drover
//! makes carries an alias naming this agent, so it never touches a device it did not make.
//! State lives under the net directory: `networks/<bridge>/` (what the network took and made,
//! its DHCP service's files) and `bonds/<name>.json` (the members' state before).

mod bond;
mod bridge;
mod caps;
mod client;
mod dhcp;
#[cfg(test)]
mod fake;
mod pif;
mod proc;
mod prune;
mod run;
mod state;
#[cfg(test)]
mod tests;
mod uplink;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use drover_host::{
    BondSpec, HostError, Ip6Config, IpConfig, NetCapabilities, NetworkSpec, PifCounters, PifInfo,
};

use run::{Ip, Runner, System};

/// The agent's networking.
pub(crate) struct Net {
    /// The network namespace everything runs in (`/run/netns/<name>`), if not the agent's own.
    pub(crate) netns: Option<String>,
    /// Where per-network state lives (DHCP configuration, leases, pidfiles).
    pub(crate) dir: PathBuf,
    /// The alias marking devices as this agent's.
    pub(crate) owner: String,
    /// What the kernel can do.
    caps: NetCapabilities,
    /// iproute2 in the namespace.
    ip: Ip,
    /// Serialises changes, so that two never interleave.
    lock: tokio::sync::Mutex<()>,
}

impl Net {
    /// Sets up networking for an agent whose state is in `dir`, marking devices with `owner`.
    pub(crate) async fn open(
        netns: Option<String>,
        dir: PathBuf,
        owner: String,
    ) -> Result<Net, HostError> {
        let caps = caps::probe().await;
        let runner = Arc::new(System {
            netns: netns.clone(),
        });
        Net::new(netns, dir, owner, caps, runner)
    }

    /// Networking through `runner` on a kernel that can do `caps`.
    fn new(
        netns: Option<String>,
        dir: PathBuf,
        owner: String,
        caps: NetCapabilities,
        runner: Arc<dyn Runner>,
    ) -> Result<Net, HostError> {
        for sub in ["networks", "bonds"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| HostError::Failed(format!("{}: {e}", path.display())))?;
        }
        Ok(Net {
            netns,
            dir,
            owner,
            caps,
            ip: Ip::new(runner),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The state directory of the network whose bridge is `bridge`.
    fn network_dir(&self, bridge: &str) -> PathBuf {
        self.dir.join("networks").join(bridge)
    }

    /// The state file of the bond `name`.
    fn bond_file(&self, name: &str) -> PathBuf {
        self.dir.join("bonds").join(format!("{name}.json"))
    }

    /// What the kernel can do (probed once at open, in a throwaway namespace).
    pub(crate) fn capabilities(&self) -> NetCapabilities {
        self.caps
    }

    /// See [`drover_host::HostDriver::network_ensure`].
    pub(crate) async fn ensure(&self, spec: &NetworkSpec) -> Result<(), HostError> {
        bridge::validate(spec, self.caps)?;
        let _guard = self.lock.lock().await;
        bridge::ensure(self, spec).await
    }

    /// See [`drover_host::HostDriver::network_remove`].
    pub(crate) async fn remove(&self, bridge: &str) -> Result<(), HostError> {
        drover_host::check_device_name(bridge)?;
        let _guard = self.lock.lock().await;
        bridge::remove(self, bridge).await
    }

    /// See [`drover_host::HostDriver::network_prune`].
    pub(crate) async fn prune(&self, keep: &[String]) -> Result<(), HostError> {
        let _guard = self.lock.lock().await;
        prune::prune(self, keep).await
    }

    /// See [`drover_host::HostDriver::pif_scan`].
    pub(crate) async fn scan(&self) -> Result<Vec<PifInfo>, HostError> {
        pif::scan(&self.ip, &self.owner).await
    }

    /// See [`drover_host::HostDriver::pif_counters`].
    pub(crate) async fn counters(&self, device: &str) -> Result<PifCounters, HostError> {
        drover_host::check_device_name(device)?;
        pif::counters(&self.ip, device).await
    }

    /// See [`drover_host::HostDriver::pif_configure_ip`].
    pub(crate) async fn configure_ip(
        &self,
        bridge: &str,
        config: &IpConfig,
    ) -> Result<(), HostError> {
        drover_host::check_device_name(bridge)?;
        let _guard = self.lock.lock().await;
        client::configure(self, bridge, config).await
    }

    /// See [`drover_host::HostDriver::pif_configure_ipv6`].
    pub(crate) async fn configure_ipv6(
        &self,
        bridge: &str,
        config: &Ip6Config,
    ) -> Result<(), HostError> {
        drover_host::check_device_name(bridge)?;
        let _guard = self.lock.lock().await;
        client::configure6(self, bridge, config).await
    }

    /// See [`drover_host::HostDriver::bond_create`].
    pub(crate) async fn bond_create(&self, spec: &BondSpec) -> Result<(), HostError> {
        bond::check_supported(self.caps)?;
        let _guard = self.lock.lock().await;
        bond::create(self, spec).await
    }

    /// See [`drover_host::HostDriver::bond_destroy`].
    pub(crate) async fn bond_destroy(&self, name: &str) -> Result<(), HostError> {
        bond::check_supported(self.caps)?;
        let _guard = self.lock.lock().await;
        bond::destroy(self, name).await
    }

    /// Makes the tap `port` (made by QEMU) a port of `bridge` with `mtu`, marks it as Drover's
    /// and brings it up.
    pub(crate) async fn attach_port(
        &self,
        port: &str,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), HostError> {
        let _guard = self.lock.lock().await;
        bridge::attach_port(self, port, bridge, mtu).await
    }

    /// The MTU a guest NIC on `bridge` can use: `mtu` (0 meaning 1500), but no more than the
    /// bridge carries (a bridge over VXLAN carries less than its network's MTU).
    pub(crate) async fn fit_mtu(&self, bridge: &str, mtu: u32) -> u32 {
        let mtu = if mtu == 0 { 1500 } else { mtu };
        match self.ip.link(bridge).await {
            Ok(Some(b)) if b.mtu > 0 => mtu.min(b.mtu),
            _ => mtu,
        }
    }

    /// Addresses the DHCP service of `bridge` leased, by lower-case MAC.
    pub(crate) fn leases(&self, bridge: &str) -> Vec<(String, Ipv4Addr)> {
        if drover_host::check_device_name(bridge).is_err() {
            return Vec::new();
        }
        dhcp::leases(&self.network_dir(bridge))
    }

    /// Makes a child process run in the agent's network namespace. It works by rewriting `cmd`
    /// to be started through `nsenter` (keeping its pid), carrying over only the program,
    /// arguments, environment and working directory: call it right after `Command::new`, before
    /// setting stdio, process group or kill-on-drop. Without a namespace it does nothing.
    pub(crate) fn enter(&self, cmd: &mut tokio::process::Command) -> Result<(), HostError> {
        proc::enter(self.netns.as_deref(), cmd)
    }
}
