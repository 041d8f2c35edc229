//! High availability: the order HA VMs restart in, and where the HA VMs of a fenced host go.

use crate::error::{InputError, PlaceError};
use crate::model::{Cluster, HostId, HostStatus, Purpose, VmId, VmState};
use crate::planner::Planner;

/// The HA VMs among `vms` in restart order: highest `ha_priority` first, then by id.
pub fn ha_restart_order(vms: &[VmState]) -> Vec<VmId> {
    let mut ha: Vec<&VmState> = vms.iter().filter(|vm| vm.ha).collect();
    ha.sort_by(|a, b| {
        b.ha_priority
            .cmp(&a.ha_priority)
            .then_with(|| a.id.cmp(&b.id))
    });
    ha.into_iter().map(|vm| vm.id.clone()).collect()
}

/// Where the guests of a fenced host go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaPlan {
    /// HA VMs to start, in restart order, each with its host.
    pub restarts: Vec<(VmId, HostId)>,
    /// HA VMs no host can take now, in restart order, with why.
    pub unplaceable: Vec<(VmId, PlaceError)>,
    /// The fenced host's other VMs, which are only marked down, in id order.
    pub not_restarted: Vec<VmId>,
}

/// Plans the restart of the HA VMs that ran on `failed_host`, which must be fenced first: the
/// host counts as down and its guests as stopped; each HA VM in [`ha_restart_order`] is placed
/// as a start by the policy, and the memory and load it takes are counted before the next one
/// is placed.
pub fn plan_ha_restarts(cluster: &Cluster, failed_host: &HostId) -> Result<HaPlan, InputError> {
    let mut p = Planner::new(cluster)?;
    let failed = p.host_index(failed_host)?;
    p.set_status(failed, HostStatus::Down);
    let victims: Vec<VmState> = p
        .vms_by_host()
        .swap_remove(failed)
        .into_iter()
        .map(|v| p.vms[v].clone())
        .collect();
    for vm in &victims {
        p.release(&vm.id);
    }
    let mut plan = HaPlan {
        not_restarted: victims
            .iter()
            .filter(|vm| !vm.ha)
            .map(|vm| vm.id.clone())
            .collect(),
        ..HaPlan::default()
    };
    for id in ha_restart_order(&victims) {
        let Some(vm) = victims.iter().find(|vm| vm.id == id) else {
            continue;
        };
        let mut vm = vm.clone();
        vm.host = None;
        vm.cpu_load_percent = None;
        match p.place(&vm, &Purpose::Start) {
            Ok(placement) => {
                p.commit(&vm, &placement.host)?;
                plan.restarts.push((id, placement.host));
            }
            Err(e) => plan.unplaceable.push((id, e)),
        }
    }
    Ok(plan)
}
