//! The policy units: filters, weights and load balancers, with oVirt's names and ids so that
//! the oVirt facade can serve `/schedulingpolicyunits` from [`all_units`].
//!
//! Ids and names are oVirt's (clients look units up by them); `HostStatus` is Drover's own
//! unit (oVirt drops hosts that are not up before its filters run). Mandatory filters run in
//! every policy and are not listed in policies, as in oVirt.

use std::fmt;

use crate::params::Param;

/// What kind of unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitType {
    /// Removes hosts a VM cannot run on.
    Filter,
    /// Scores the remaining hosts; the lowest total wins.
    Weight,
    /// Proposes migrations in the periodic balancing round.
    LoadBalancing,
}

impl UnitType {
    /// The type as oVirt's API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitType::Filter => "filter",
            UnitType::Weight => "weight",
            UnitType::LoadBalancing => "load_balancing",
        }
    }
}

/// What the API tells about a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitInfo {
    /// The unit's id (oVirt's GUID).
    pub id: &'static str,
    /// The unit's name (oVirt's; a filter and a weight may share one).
    pub name: &'static str,
    /// Its type.
    pub unit_type: UnitType,
    /// What it does.
    pub description: &'static str,
    /// The policy parameters it reads.
    pub parameters: &'static [Param],
    /// Whether it runs in every policy without being listed.
    pub mandatory: bool,
}

/// A filter unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterUnit {
    /// The host is up (not in or preparing for maintenance, not down). Mandatory.
    HostStatus,
    /// The VM is pinned to the host, or not pinned. Mandatory.
    PinToHost,
    /// The cluster is in maintenance: only HA VMs start; running VMs may migrate.
    ClusterInMaintenance,
    /// The host has at least as many CPUs as the VM has vCPUs.
    Cpu,
    /// The host has room for the VM's memory, over-commitment included.
    Memory,
    /// A migration does not go to the host the VM runs on.
    Migration,
    /// Enforcing affinity groups: together on one host, or apart.
    VmAffinityGroups,
    /// The host has every network the VM needs.
    Network,
}

/// A weight unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightUnit {
    /// Less loaded CPUs score better (spreads load).
    CpuEvenDistribution,
    /// More loaded CPUs score better, unless over `HighUtilization` (packs load).
    CpuPowerSaving,
    /// More free memory scores better (spreads memory).
    MemoryEvenDistribution,
    /// Less free memory scores better, unless under `MaxFreeMemoryForOverUtilized` (packs memory).
    MemoryPowerSaving,
    /// Fewer guests score better (spreads the guest count).
    EvenGuestDistribution,
    /// For HA VMs, fewer HA guests score better (spreads HA VMs).
    HaReservation,
    /// Non-enforcing affinity groups: fewer broken preferences score better.
    VmAffinityGroups,
}

/// A load-balancing unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BalanceUnit {
    /// Never migrates anything.
    None,
    /// Moves guests off hosts whose CPU load (or lack of free memory) is over the thresholds.
    EvenDistribution,
    /// Moves guests off the hosts with the most guests when the spread is too wide.
    EvenGuestDistribution,
    /// Like `EvenDistribution`, and the power saver drains under-utilised hosts.
    PowerSaving,
}

const FILTERS: [FilterUnit; 8] = [
    FilterUnit::HostStatus,
    FilterUnit::PinToHost,
    FilterUnit::ClusterInMaintenance,
    FilterUnit::Cpu,
    FilterUnit::Memory,
    FilterUnit::Migration,
    FilterUnit::VmAffinityGroups,
    FilterUnit::Network,
];

const WEIGHTS: [WeightUnit; 7] = [
    WeightUnit::CpuEvenDistribution,
    WeightUnit::CpuPowerSaving,
    WeightUnit::MemoryEvenDistribution,
    WeightUnit::MemoryPowerSaving,
    WeightUnit::EvenGuestDistribution,
    WeightUnit::HaReservation,
    WeightUnit::VmAffinityGroups,
];

const BALANCERS: [BalanceUnit; 4] = [
    BalanceUnit::None,
    BalanceUnit::EvenDistribution,
    BalanceUnit::EvenGuestDistribution,
    BalanceUnit::PowerSaving,
];

const fn unit(
    id: &'static str,
    name: &'static str,
    unit_type: UnitType,
    description: &'static str,
    parameters: &'static [Param],
) -> UnitInfo {
    UnitInfo {
        id,
        name,
        unit_type,
        description,
        parameters,
        mandatory: false,
    }
}

const fn mandatory(info: UnitInfo) -> UnitInfo {
    UnitInfo {
        mandatory: true,
        ..info
    }
}

impl FilterUnit {
    /// Every filter unit, mandatory ones first.
    pub const ALL: &'static [FilterUnit] = &FILTERS;

    /// What the API tells about it.
    pub fn info(self) -> &'static UnitInfo {
        use UnitType::Filter;
        const HOST_STATUS: UnitInfo = mandatory(unit(
            "06689066-c804-4601-9e73-b027c6b10996",
            "HostStatus",
            Filter,
            "Keeps only hosts that are up: not down, not answering, in maintenance or on the way there",
            &[],
        ));
        const PIN_TO_HOST: UnitInfo = mandatory(unit(
            "12262ab6-9690-4bc3-a2b3-35573b172d54",
            "PinToHost",
            Filter,
            "Keeps only the hosts a VM is pinned to, when it is pinned",
            &[],
        ));
        const CLUSTER_IN_MAINTENANCE: UnitInfo = unit(
            "0bd8fef9-bcb4-4250-9998-410f01608d9b",
            "ClusterInMaintenance",
            Filter,
            "While the cluster is in maintenance, only highly available VMs may start",
            &[],
        );
        const CPU: UnitInfo = unit(
            "6d636bf6-a35c-4f9d-b68d-0731f720cddc",
            "CPU",
            Filter,
            "Drops hosts with fewer physical CPUs than the VM has virtual ones",
            &[],
        );
        const MEMORY: UnitInfo = unit(
            "c9ddbb34-0e1d-4061-a8d7-b0893fa80932",
            "Memory",
            Filter,
            "Drops hosts without room for the VM's memory, counting the cluster's over-commitment",
            &[],
        );
        const MIGRATION: UnitInfo = unit(
            "e659c871-0bf1-4ccc-b748-f28f5d08ddda",
            "Migration",
            Filter,
            "Drops the host a migrating VM runs on",
            &[],
        );
        const AFFINITY: UnitInfo = unit(
            "84e6ddee-ab0d-42dd-82f0-c297779db566",
            "VmAffinityGroups",
            Filter,
            "Hard affinity groups: members must share one host (positive) or never share one (negative)",
            &[],
        );
        const NETWORK: UnitInfo = unit(
            "72163d1c-9468-4480-99d9-0888664eb143",
            "Network",
            Filter,
            "Drops hosts lacking a network the VM's NICs are on",
            &[],
        );
        match self {
            FilterUnit::HostStatus => &HOST_STATUS,
            FilterUnit::PinToHost => &PIN_TO_HOST,
            FilterUnit::ClusterInMaintenance => &CLUSTER_IN_MAINTENANCE,
            FilterUnit::Cpu => &CPU,
            FilterUnit::Memory => &MEMORY,
            FilterUnit::Migration => &MIGRATION,
            FilterUnit::VmAffinityGroups => &AFFINITY,
            FilterUnit::Network => &NETWORK,
        }
    }
}

impl WeightUnit {
    /// Every weight unit.
    pub const ALL: &'static [WeightUnit] = &WEIGHTS;

    /// What the API tells about it.
    pub fn info(self) -> &'static UnitInfo {
        use UnitType::Weight;
        const CPU_EVEN: UnitInfo = unit(
            "7db4ab05-81ab-42e8-868a-aee2df483edb",
            "OptimalForCpuEvenDistribution",
            Weight,
            "Prefers hosts whose CPUs are less loaded, so load spreads out",
            &[Param::VcpuToPhysicalCpuRatio],
        );
        const CPU_POWER: UnitInfo = unit(
            "736999d0-1023-46a4-9a75-1316ed50e15b",
            "OptimalForCpuPowerSaving",
            Weight,
            "Prefers hosts whose CPUs are more loaded, short of HighUtilization, so load packs together",
            &[Param::HighUtilization],
        );
        const MEM_EVEN: UnitInfo = unit(
            "4134247a-9c58-4b9a-8593-530bb9e37c59",
            "OptimalForMemoryEvenDistribution",
            Weight,
            "Prefers hosts with more memory to spare, so memory use spreads out",
            &[],
        );
        const MEM_POWER: UnitInfo = unit(
            "9dfe6086-646d-43b8-8eef-4d94de8472c8",
            "OptimalForMemoryPowerSaving",
            Weight,
            "Prefers hosts with less memory to spare, short of the over-utilised limit, so memory use packs together",
            &[
                Param::MaxFreeMemoryForOverUtilized,
                Param::MinFreeMemoryForUnderUtilized,
            ],
        );
        const GUEST_EVEN: UnitInfo = unit(
            "3ba8c988-f779-42c0-90ce-caa8243edee7",
            "OptimalForEvenGuestDistribution",
            Weight,
            "Prefers hosts running fewer guests",
            &[Param::SpmVmGrace],
        );
        const HA: UnitInfo = unit(
            "7f262d70-6cac-11e3-981f-0800200c9a66",
            "OptimalForHaReservation",
            Weight,
            "For highly available VMs, prefers hosts running fewer highly available guests",
            &[],
        );
        const AFFINITY: UnitInfo = unit(
            "84e6ddee-ab0d-42dd-82f0-c297779db567",
            "VmAffinityGroups",
            Weight,
            "Soft affinity groups: prefers hosts that keep members together (positive) or apart (negative)",
            &[],
        );
        match self {
            WeightUnit::CpuEvenDistribution => &CPU_EVEN,
            WeightUnit::CpuPowerSaving => &CPU_POWER,
            WeightUnit::MemoryEvenDistribution => &MEM_EVEN,
            WeightUnit::MemoryPowerSaving => &MEM_POWER,
            WeightUnit::EvenGuestDistribution => &GUEST_EVEN,
            WeightUnit::HaReservation => &HA,
            WeightUnit::VmAffinityGroups => &AFFINITY,
        }
    }
}

impl BalanceUnit {
    /// Every load-balancing unit.
    pub const ALL: &'static [BalanceUnit] = &BALANCERS;

    /// What the API tells about it.
    pub fn info(self) -> &'static UnitInfo {
        use UnitType::LoadBalancing;
        const NONE: UnitInfo = unit(
            "38440000-8cf0-14bd-c43e-10b96e4ef00a",
            "None",
            LoadBalancing,
            "Does not balance",
            &[],
        );
        const EVEN: UnitInfo = unit(
            "7db4ab05-81ab-42e8-868a-aee2df483ed2",
            "OptimalForEvenDistribution",
            LoadBalancing,
            "Migrates guests off hosts whose CPU load stays over HighUtilization, or whose free memory is under MaxFreeMemoryForOverUtilized",
            &[
                Param::HighUtilization,
                Param::CpuOverCommitDurationMinutes,
                Param::MaxFreeMemoryForOverUtilized,
                Param::MinFreeMemoryForUnderUtilized,
            ],
        );
        const GUEST_EVEN: UnitInfo = unit(
            "d58c8e32-44e1-418f-9222-52cd887bf9e0",
            "OptimalForEvenGuestDistribution",
            LoadBalancing,
            "Migrates guests off the busiest hosts once they run HighVmCount guests and MigrationThreshold more than another host",
            &[Param::HighVmCount, Param::MigrationThreshold, Param::SpmVmGrace],
        );
        const POWER: UnitInfo = unit(
            "736999d0-1023-46a4-9a75-1316ed50e151",
            "OptimalForPowerSaving",
            LoadBalancing,
            "Keeps hosts' CPU load between LowUtilization and HighUtilization: relieves over-utilised hosts, drains under-utilised ones and switches idle hosts off beyond HostsInReserve",
            &[
                Param::HighUtilization,
                Param::LowUtilization,
                Param::CpuOverCommitDurationMinutes,
                Param::MaxFreeMemoryForOverUtilized,
                Param::MinFreeMemoryForUnderUtilized,
                Param::HostsInReserve,
                Param::EnableAutomaticHostPowerManagement,
            ],
        );
        match self {
            BalanceUnit::None => &NONE,
            BalanceUnit::EvenDistribution => &EVEN,
            BalanceUnit::EvenGuestDistribution => &GUEST_EVEN,
            BalanceUnit::PowerSaving => &POWER,
        }
    }
}

impl fmt::Display for FilterUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().name)
    }
}

impl fmt::Display for WeightUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().name)
    }
}

impl fmt::Display for BalanceUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().name)
    }
}

/// The unit table: every filter, weight and load balancer, in that order.
pub fn all_units() -> Vec<&'static UnitInfo> {
    FilterUnit::ALL
        .iter()
        .map(|u| u.info())
        .chain(WeightUnit::ALL.iter().map(|u| u.info()))
        .chain(BalanceUnit::ALL.iter().map(|u| u.info()))
        .collect()
}

/// The unit with this id, if there is one.
pub fn unit_by_id(id: &str) -> Option<&'static UnitInfo> {
    all_units().into_iter().find(|u| u.id == id)
}
