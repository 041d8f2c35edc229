//! The filters: each removes the hosts a VM cannot run on, with the reason.
//!
//! Filters run in the policy's order (mandatory ones first); a host is reported against the
//! first filter that drops it, like oVirt's "filtered out by <unit>".

use std::fmt;

use crate::model::{HostId, HostStatus, Purpose, VmId};
use crate::planner::{Ctx, HostSlot};
use crate::units::FilterUnit;

/// Why a filter dropped a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `HostStatus`: the host is not up.
    HostNotUp(HostStatus),
    /// `PinToHost`: the VM is pinned to other hosts.
    NotPinnedHere,
    /// `ClusterInMaintenance`: only highly available VMs start.
    ClusterInMaintenance,
    /// `CPU`: fewer CPUs than the VM's vCPUs.
    TooFewCpus {
        /// The host's CPUs.
        cpus: u32,
        /// The VM's vCPUs.
        vcpus: u32,
    },
    /// `Memory`: not enough memory left for guests.
    NotEnoughMemory {
        /// Memory still free for guests, MiB.
        free_mib: u64,
        /// The VM's memory, MiB.
        needed_mib: u64,
    },
    /// `Migration`: the host the VM migrates away from.
    SourceHost,
    /// `VmAffinityGroups`: the group's other members run elsewhere.
    AffinityTogether {
        /// The group.
        group: String,
    },
    /// `VmAffinityGroups`: another member of the group runs here.
    AffinityApart {
        /// The group.
        group: String,
    },
    /// `Network`: networks the VM needs that the host lacks.
    MissingNetworks(Vec<String>),
}

impl Reason {
    /// The filter that gave this reason.
    pub fn unit(&self) -> FilterUnit {
        match self {
            Reason::HostNotUp(_) => FilterUnit::HostStatus,
            Reason::NotPinnedHere => FilterUnit::PinToHost,
            Reason::ClusterInMaintenance => FilterUnit::ClusterInMaintenance,
            Reason::TooFewCpus { .. } => FilterUnit::Cpu,
            Reason::NotEnoughMemory { .. } => FilterUnit::Memory,
            Reason::SourceHost => FilterUnit::Migration,
            Reason::AffinityTogether { .. } | Reason::AffinityApart { .. } => {
                FilterUnit::VmAffinityGroups
            }
            Reason::MissingNetworks(_) => FilterUnit::Network,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "filtered out by {}: ", self.unit())?;
        match self {
            Reason::HostNotUp(s) => write!(f, "the host is {s}"),
            Reason::NotPinnedHere => f.write_str("the VM is pinned to other hosts"),
            Reason::ClusterInMaintenance => {
                f.write_str("the cluster is in maintenance and the VM is not highly available")
            }
            Reason::TooFewCpus { cpus, vcpus } => {
                write!(f, "the host has {cpus} CPUs, the VM needs {vcpus}")
            }
            Reason::NotEnoughMemory {
                free_mib,
                needed_mib,
            } => write!(f, "{free_mib} MiB free, the VM needs {needed_mib} MiB"),
            Reason::SourceHost => f.write_str("the VM runs on this host"),
            Reason::AffinityTogether { group } => write!(
                f,
                "affinity group {group} keeps the VM with members running elsewhere"
            ),
            Reason::AffinityApart { group } => {
                write!(
                    f,
                    "affinity group {group} keeps the VM away from a member running here"
                )
            }
            Reason::MissingNetworks(nets) => write!(f, "missing networks {}", nets.join(", ")),
        }
    }
}

/// One host a filter dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The host.
    pub host: HostId,
    /// Why.
    pub reason: Reason,
}

/// No host passed the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoHost {
    /// The VM.
    pub vm: VmId,
    /// Every host considered, in host id order, with the first filter that dropped it.
    pub rejections: Vec<Rejection>,
}

impl fmt::Display for NoHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no host can run VM {}", self.vm)?;
        if self.rejections.is_empty() {
            return f.write_str(": the cluster has no hosts");
        }
        for (i, r) in self.rejections.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}host {} was {}", r.host, r.reason)?;
        }
        Ok(())
    }
}

/// Runs filter `unit` on host `ix`.
pub(crate) fn check(
    unit: FilterUnit,
    ctx: &Ctx<'_>,
    ix: usize,
    host: &HostSlot,
) -> Result<(), Reason> {
    match unit {
        FilterUnit::HostStatus => host_status(host),
        FilterUnit::PinToHost => pin_to_host(ctx, host),
        FilterUnit::ClusterInMaintenance => cluster_in_maintenance(ctx),
        FilterUnit::Cpu => cpu(ctx, host),
        FilterUnit::Memory => memory(ctx, ix, host),
        FilterUnit::Migration => migration(ctx, host),
        FilterUnit::VmAffinityGroups => affinity(ctx, ix),
        FilterUnit::Network => network(ctx, host),
    }
}

fn host_status(host: &HostSlot) -> Result<(), Reason> {
    if host.is_up() {
        Ok(())
    } else {
        Err(Reason::HostNotUp(host.status))
    }
}

fn pin_to_host(ctx: &Ctx<'_>, host: &HostSlot) -> Result<(), Reason> {
    if ctx.vm.pinned_to.is_empty() || ctx.vm.pinned_to.contains(&host.id) {
        Ok(())
    } else {
        Err(Reason::NotPinnedHere)
    }
}

/// Highly available VMs start; running VMs may migrate; nothing else starts.
fn cluster_in_maintenance(ctx: &Ctx<'_>) -> Result<(), Reason> {
    if ctx.vm.ha || matches!(ctx.purpose, Purpose::Migrate { .. }) {
        Ok(())
    } else {
        Err(Reason::ClusterInMaintenance)
    }
}

fn cpu(ctx: &Ctx<'_>, host: &HostSlot) -> Result<(), Reason> {
    if host.cpus >= ctx.vm.vcpus {
        Ok(())
    } else {
        Err(Reason::TooFewCpus {
            cpus: host.cpus,
            vcpus: ctx.vm.vcpus,
        })
    }
}

fn memory(ctx: &Ctx<'_>, ix: usize, host: &HostSlot) -> Result<(), Reason> {
    let needed = ctx.added_memory(ix);
    if host.free() >= needed {
        Ok(())
    } else {
        Err(Reason::NotEnoughMemory {
            free_mib: host.free(),
            needed_mib: needed,
        })
    }
}

fn migration(ctx: &Ctx<'_>, host: &HostSlot) -> Result<(), Reason> {
    match ctx.purpose {
        Purpose::Migrate { from } if *from == host.id => Err(Reason::SourceHost),
        _ => Ok(()),
    }
}

fn affinity(ctx: &Ctx<'_>, ix: usize) -> Result<(), Reason> {
    for (group, peers) in &ctx.hard_together {
        if peers.iter().any(|&p| p != ix) {
            return Err(Reason::AffinityTogether {
                group: group.name.clone(),
            });
        }
    }
    for (group, peers) in &ctx.hard_apart {
        if peers.contains(&ix) {
            return Err(Reason::AffinityApart {
                group: group.name.clone(),
            });
        }
    }
    Ok(())
}

fn network(ctx: &Ctx<'_>, host: &HostSlot) -> Result<(), Reason> {
    let missing: Vec<String> = ctx
        .vm
        .required_networks
        .iter()
        .filter(|n| !host.networks.contains(n))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Reason::MissingNetworks(missing))
    }
}
