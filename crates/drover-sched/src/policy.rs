//! Scheduling policies: which filters run, which weights score with what factor, which load
//! balancer runs, and the parameters. The five built-in policies carry oVirt's names and ids so
//! that the oVirt facade can serve `/schedulingpolicies` from [`Policy::builtins`].
//!
//! A policy's behaviour follows from its units alone: the power saver acts when the balancer is
//! [`BalanceUnit::PowerSaving`], the cluster is in maintenance when
//! [`FilterUnit::ClusterInMaintenance`] is among the filters.

use crate::params::PolicyParams;
use crate::units::{BalanceUnit, FilterUnit, WeightUnit};

/// A scheduling policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its id (oVirt's GUID for the built-in ones).
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its filters, in order; the mandatory filters run before them without being listed.
    pub filters: Vec<FilterUnit>,
    /// Its weights with their factors.
    pub weights: Vec<(WeightUnit, u32)>,
    /// Its load balancer.
    pub balancer: BalanceUnit,
    /// Its parameters.
    pub params: PolicyParams,
    /// Whether it is one of the built-in policies, which cannot be edited.
    pub locked: bool,
}

/// The built-in policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// `none`: spread by CPU and memory at placement, no balancing. oVirt's default.
    None,
    /// `evenly_distributed`: spread by CPU and memory, and relieve over-utilised hosts.
    EvenlyDistributed,
    /// `vm_evenly_distributed`: spread the guest count.
    VmEvenlyDistributed,
    /// `power_saving`: pack guests, drain under-utilised hosts, switch idle hosts off.
    PowerSaving,
    /// `cluster_maintenance`: like `none`, but only highly available VMs start.
    ClusterMaintenance,
}

impl PolicyKind {
    /// Every built-in policy, in the order the API lists them.
    pub const ALL: &'static [PolicyKind] = &[
        PolicyKind::None,
        PolicyKind::EvenlyDistributed,
        PolicyKind::VmEvenlyDistributed,
        PolicyKind::PowerSaving,
        PolicyKind::ClusterMaintenance,
    ];

    /// The policy's id (oVirt's).
    pub fn id(self) -> &'static str {
        match self {
            PolicyKind::None => "b4ed2332-a7ac-4d5f-9596-99a439cb2812",
            PolicyKind::EvenlyDistributed => "20d25257-b4bd-4589-92a6-c4c5c5d3fd1a",
            PolicyKind::VmEvenlyDistributed => "8d5d7bec-68de-4a67-b53e-0ac54686d579",
            PolicyKind::PowerSaving => "5a2b0939-7d46-4b73-a469-e9c2c7fc6a53",
            PolicyKind::ClusterMaintenance => "7677771e-5eab-422e-83fa-dc04080d21b7",
        }
    }

    /// The policy's name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::None => "none",
            PolicyKind::EvenlyDistributed => "evenly_distributed",
            PolicyKind::VmEvenlyDistributed => "vm_evenly_distributed",
            PolicyKind::PowerSaving => "power_saving",
            PolicyKind::ClusterMaintenance => "cluster_maintenance",
        }
    }

    /// The built-in policy with this name.
    pub fn from_name(name: &str) -> Option<PolicyKind> {
        PolicyKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    fn description(self) -> &'static str {
        match self {
            PolicyKind::None => "Spreads guests by CPU load and free memory when they start; never migrates",
            PolicyKind::EvenlyDistributed => {
                "Spreads guests by CPU load and free memory, and migrates guests off over-utilised hosts"
            }
            PolicyKind::VmEvenlyDistributed => "Spreads the number of guests evenly over the hosts",
            PolicyKind::PowerSaving => {
                "Packs guests onto few hosts, drains under-utilised hosts and switches idle ones off"
            }
            PolicyKind::ClusterMaintenance => {
                "Only highly available VMs start while the cluster is in maintenance"
            }
        }
    }
}

const BASE_FILTERS: [FilterUnit; 5] = [
    FilterUnit::Cpu,
    FilterUnit::Memory,
    FilterUnit::Migration,
    FilterUnit::VmAffinityGroups,
    FilterUnit::Network,
];

impl Policy {
    /// The built-in policy `kind`, with oVirt's units (those Drover implements), factors and
    /// parameters.
    pub fn builtin(kind: PolicyKind) -> Policy {
        let mut filters = Vec::new();
        if kind == PolicyKind::ClusterMaintenance {
            filters.push(FilterUnit::ClusterInMaintenance);
        }
        filters.extend(BASE_FILTERS);
        let mut weights = match kind {
            PolicyKind::PowerSaving => vec![
                (WeightUnit::CpuPowerSaving, 2),
                (WeightUnit::MemoryPowerSaving, 1),
            ],
            PolicyKind::VmEvenlyDistributed => vec![(WeightUnit::EvenGuestDistribution, 2)],
            _ => vec![
                (WeightUnit::CpuEvenDistribution, 2),
                (WeightUnit::MemoryEvenDistribution, 1),
            ],
        };
        weights.push((WeightUnit::HaReservation, 1));
        weights.push((WeightUnit::VmAffinityGroups, 1));
        let balancer = match kind {
            PolicyKind::None | PolicyKind::ClusterMaintenance => BalanceUnit::None,
            PolicyKind::EvenlyDistributed => BalanceUnit::EvenDistribution,
            PolicyKind::VmEvenlyDistributed => BalanceUnit::EvenGuestDistribution,
            PolicyKind::PowerSaving => BalanceUnit::PowerSaving,
        };
        let mut params = PolicyParams {
            cpu_over_commit_duration_minutes: Some(2),
            high_utilization: Some(80),
            ..PolicyParams::default()
        };
        match kind {
            PolicyKind::None | PolicyKind::ClusterMaintenance => {}
            PolicyKind::EvenlyDistributed => {
                params.he_spares_count = Some(0);
                params.vcpu_to_physical_cpu_ratio_centi = Some(0);
            }
            PolicyKind::PowerSaving => {
                params.he_spares_count = Some(0);
                params.low_utilization = Some(20);
            }
            PolicyKind::VmEvenlyDistributed => {
                params.he_spares_count = Some(0);
                params.high_vm_count = Some(10);
                params.migration_threshold = Some(5);
                params.spm_vm_grace = Some(5);
            }
        }
        Policy {
            id: kind.id().to_owned(),
            name: kind.name().to_owned(),
            description: kind.description().to_owned(),
            filters,
            weights,
            balancer,
            params,
            locked: true,
        }
    }

    /// The `none` policy.
    pub fn none() -> Policy {
        Policy::builtin(PolicyKind::None)
    }

    /// The `evenly_distributed` policy.
    pub fn evenly_distributed() -> Policy {
        Policy::builtin(PolicyKind::EvenlyDistributed)
    }

    /// The `vm_evenly_distributed` policy.
    pub fn vm_evenly_distributed() -> Policy {
        Policy::builtin(PolicyKind::VmEvenlyDistributed)
    }

    /// The `power_saving` policy.
    pub fn power_saving() -> Policy {
        Policy::builtin(PolicyKind::PowerSaving)
    }

    /// The `cluster_maintenance` policy.
    pub fn cluster_maintenance() -> Policy {
        Policy::builtin(PolicyKind::ClusterMaintenance)
    }

    /// Every built-in policy.
    pub fn builtins() -> Vec<Policy> {
        PolicyKind::ALL
            .iter()
            .map(|&k| Policy::builtin(k))
            .collect()
    }

    /// The filters that run, in order: the mandatory ones, then the policy's own (a mandatory
    /// filter listed in the policy runs once).
    pub fn effective_filters(&self) -> Vec<FilterUnit> {
        let mut out: Vec<FilterUnit> = FilterUnit::ALL
            .iter()
            .copied()
            .filter(|f| f.info().mandatory)
            .collect();
        for f in &self.filters {
            if !out.contains(f) {
                out.push(*f);
            }
        }
        out
    }

    /// Whether the cluster is in maintenance under this policy.
    pub fn cluster_in_maintenance(&self) -> bool {
        self.filters.contains(&FilterUnit::ClusterInMaintenance)
    }
}

impl Default for Policy {
    /// oVirt's default policy, `none`.
    fn default() -> Self {
        Policy::none()
    }
}
