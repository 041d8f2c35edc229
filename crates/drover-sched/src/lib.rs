//! Drover's scheduler: where VMs run.
//!
//! Pure functions over plain data ([`Cluster`]): no I/O, no clock, no engine types. The core
//! fills a [`Cluster`] from its inventory and carries out what comes back.
//!
//! * Placement ([`place`], [`Planner`]): the policy's filters drop the hosts a VM cannot run
//!   on (each with its [`Reason`]), its weights score the rest and the lowest total wins, ties
//!   to the lowest host id — oVirt's model, with oVirt's unit names ([`units`]).
//! * Load balancing ([`balance`]): one round, at most one migration off each over-utilised host.
//! * Power saving ([`power_saving`]): drain under-utilised hosts, switch idle hosts off and on.
//! * High availability ([`ha_restart_order`], [`plan_ha_restarts`]) and maintenance
//!   ([`evacuate`]).
//! * Policies ([`Policy`]): the five built-in ones (`none`, `evenly_distributed`,
//!   `vm_evenly_distributed`, `power_saving`, `cluster_maintenance`) with oVirt's ids, units,
//!   factors and parameters ([`PolicyParams`]).
//!
//! Every decision is deterministic: the same cluster gives the same answer.
//!
//! The placement benchmark prints decisions per second at 100 and 1,000 hosts:
//! `cargo bench -p drover-sched --bench placement`.

mod balance;
mod error;
mod filters;
mod ha;
mod maintenance;
mod model;
mod params;
mod planner;
mod policy;
mod power;
pub mod units;
mod weights;

pub use balance::balance;
pub use error::{InputError, PlaceError};
pub use filters::{NoHost, Reason, Rejection};
pub use ha::{ha_restart_order, plan_ha_restarts, HaPlan};
pub use maintenance::{evacuate, Evacuation};
pub use model::{
    AffinityGroup, Cluster, HostId, HostState, HostStatus, Migration, Purpose, VmId, VmState,
};
pub use params::{
    Param, ParamError, PolicyParams, UTILIZATION_THRESHOLD_PERCENT, VCPU_CONSUMPTION_PERCENT,
};
pub use planner::{HostScore, HostUsage, Placement, Planner};
pub use policy::{Policy, PolicyKind};
pub use power::{power_saving, PowerPlan};
pub use units::{all_units, BalanceUnit, FilterUnit, UnitInfo, UnitType, WeightUnit};
pub use weights::MAX_WEIGHT;

/// Chooses a host for `vm` in `cluster`: to start it, or to migrate it away from the host it
/// runs on.
pub fn place(cluster: &Cluster, vm: &VmState, purpose: &Purpose) -> Result<Placement, PlaceError> {
    Planner::new(cluster)?.place(vm, purpose)
}
