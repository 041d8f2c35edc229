//! The scheduler's inputs and the moves it proposes: plain data, filled in by the caller.
//!
//! Memory is in MiB, CPU load in percent, times in seconds on a clock of the caller's choice
//! (the same clock for [`HostState::cpu_over_commit_since`] and the `now` given to
//! [`crate::balance`]).

use std::fmt;
use std::sync::Arc;

use crate::policy::Policy;

/// A host's identifier (the caller's choice: a UUID, a reference). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(Arc<str>);

/// A VM's identifier (the caller's choice: a UUID, a reference). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmId(Arc<str>);

macro_rules! id_impls {
    ($t:ident) => {
        impl $t {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $t {
            fn from(s: &str) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<String> for $t {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_impls!(HostId);
id_impls!(VmId);

/// Where a host stands, as far as scheduling is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostStatus {
    /// Running and answering: the only status that accepts guests.
    Up,
    /// In maintenance: no guests, none accepted.
    Maintenance,
    /// Being evacuated on the way to maintenance: accepts no new guests.
    PreparingForMaintenance,
    /// Down (stopped, crashed or fenced).
    Down,
    /// Not answering heartbeats; its guests' fate is unknown until it is fenced.
    NonResponsive,
    /// Switched off by the power saver; it can be switched on again through power management.
    PoweredOff,
}

impl fmt::Display for HostStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostStatus::Up => "up",
            HostStatus::Maintenance => "maintenance",
            HostStatus::PreparingForMaintenance => "preparing_for_maintenance",
            HostStatus::Down => "down",
            HostStatus::NonResponsive => "non_responsive",
            HostStatus::PoweredOff => "powered_off",
        })
    }
}

/// One host of the cluster. The guests it runs are the [`VmState`]s whose `host` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// The host's identifier.
    pub id: HostId,
    /// Its status.
    pub status: HostStatus,
    /// Physical CPUs (cores, or threads if the cluster counts threads as cores).
    pub cpus: u32,
    /// Measured CPU load of the whole host, in percent (0–100) of all its CPUs.
    pub cpu_load_percent: u32,
    /// Since when the host's load has been at or above the policy's `HighUtilization`, if it is.
    pub cpu_over_commit_since: Option<u64>,
    /// Physical memory, MiB.
    pub memory_total_mib: u64,
    /// Memory kept for the host itself and never given to guests, MiB.
    pub memory_reserved_mib: u64,
    /// The logical networks the host is attached to.
    pub networks: Vec<String>,
    /// Whether the host can be switched off and on through a power-management agent.
    pub power_management: bool,
    /// Whether the host holds the storage-pool manager role (counted as `SpmVmGrace` extra
    /// guests by the guest-count policy).
    pub spm: bool,
}

impl HostState {
    /// An up host with no load, no reserved memory, no networks and no power management.
    pub fn new(id: impl Into<HostId>, cpus: u32, memory_total_mib: u64) -> Self {
        Self {
            id: id.into(),
            status: HostStatus::Up,
            cpus,
            cpu_load_percent: 0,
            cpu_over_commit_since: None,
            memory_total_mib,
            memory_reserved_mib: 0,
            networks: Vec::new(),
            power_management: false,
            spm: false,
        }
    }
}

/// One VM of the cluster, running or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmState {
    /// The VM's identifier.
    pub id: VmId,
    /// The host it runs on, if it runs.
    pub host: Option<HostId>,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory it is given, MiB.
    pub memory_mib: u64,
    /// Logical networks its NICs are on; a host must have all of them.
    pub required_networks: Vec<String>,
    /// Hosts it may run on; empty means any host.
    pub pinned_to: Vec<HostId>,
    /// Whether it may be live-migrated.
    pub migratable: bool,
    /// Whether it is highly available (restarted elsewhere when its host is fenced).
    pub ha: bool,
    /// HA restart priority: higher restarts first.
    pub ha_priority: i32,
    /// Measured CPU load in percent of its own vCPUs; `None` when not known (a VM not
    /// running yet counts as `VcpuConsumptionPercentage` per vCPU).
    pub cpu_load_percent: Option<u32>,
}

impl VmState {
    /// A stopped, migratable, non-HA VM with no networks and no pinning.
    pub fn new(id: impl Into<VmId>, vcpus: u32, memory_mib: u64) -> Self {
        Self {
            id: id.into(),
            host: None,
            vcpus,
            memory_mib,
            required_networks: Vec::new(),
            pinned_to: Vec::new(),
            migratable: true,
            ha: false,
            ha_priority: 0,
            cpu_load_percent: None,
        }
    }
}

/// An affinity group: VMs that should (or must) run together, or apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityGroup {
    /// The group's name, used in rejection reasons.
    pub name: String,
    /// Its members.
    pub vms: Vec<VmId>,
    /// `true`: members run on one host; `false`: members run on different hosts.
    pub positive: bool,
    /// `true`: a hard rule (the `VmAffinityGroups` filter); `false`: a preference (the
    /// `VmAffinityGroups` weight).
    pub enforcing: bool,
}

/// A cluster as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Its scheduling policy.
    pub policy: Policy,
    /// Memory over-commitment in percent of physical memory (oVirt's cluster
    /// `memory_policy.over_commit.percent`; 100 means none).
    pub memory_overcommit_percent: u32,
    /// Its hosts.
    pub hosts: Vec<HostState>,
    /// Its VMs.
    pub vms: Vec<VmState>,
    /// Its affinity groups.
    pub affinity: Vec<AffinityGroup>,
}

impl Cluster {
    /// An empty cluster under `policy`, without memory over-commitment.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            memory_overcommit_percent: 100,
            hosts: Vec::new(),
            vms: Vec::new(),
            affinity: Vec::new(),
        }
    }
}

/// Why a host is being chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Starting a VM that does not run.
    Start,
    /// Live-migrating a running VM away from `from`.
    Migrate {
        /// The host it runs on now.
        from: HostId,
    },
}

/// A live migration the scheduler proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The VM to move.
    pub vm: VmId,
    /// The host it runs on.
    pub from: HostId,
    /// The host to move it to.
    pub to: HostId,
}
