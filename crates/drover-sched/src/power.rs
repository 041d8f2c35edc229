//! The power saver: under a policy whose balancer is `OptimalForPowerSaving`, it concentrates
//! guests off under-utilised hosts and switches empty hosts off (and on again) through power
//! management.

use crate::balance::move_one;
use crate::error::InputError;
use crate::model::{Cluster, HostId, HostStatus, Migration};
use crate::planner::{HostSlot, Planner};
use crate::units::BalanceUnit;

/// What the power saver proposes for one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerPlan {
    /// Guests to move off under-utilised hosts, at most one per host.
    pub migrations: Vec<Migration>,
    /// Empty hosts to switch off, in id order.
    pub power_off: Vec<HostId>,
    /// Switched-off hosts to switch on, in id order.
    pub power_on: Vec<HostId>,
}

/// One power-saver round over `cluster`; an empty plan unless the policy's balancer is
/// `OptimalForPowerSaving`.
///
/// * Draining: a host is under-utilised when it runs guests and its CPU load is under
///   `LowUtilization` (or, when `MinFreeMemoryForUnderUtilized` is set, more memory than that
///   is free). The least busy go first; each moves one guest (least CPU load first) to a busier
///   host, chosen by the policy's weights, that runs guests, has not sent one this round and
///   stays under `HighUtilization`. A host that receives does not send in the same round.
/// * Power, only with `EnableAutomaticHostPowerManagement`: when more than `HostsInReserve`
///   up hosts run no guest, the excess is switched off (highest ids first, only hosts with
///   power management that are not the storage-pool manager); when fewer than
///   `HostsInReserve` are empty, or every up host is over-utilised, switched-off hosts with
///   power management are switched on (lowest ids first; at least one when over-utilised).
pub fn power_saving(cluster: &Cluster) -> Result<PowerPlan, InputError> {
    let mut p = Planner::new(cluster)?;
    if p.policy.balancer != BalanceUnit::PowerSaving {
        return Ok(PowerPlan::default());
    }
    let empty: Vec<usize> = (0..p.hosts.len())
        .filter(|&ix| p.hosts[ix].is_up() && p.hosts[ix].vms == 0)
        .collect();
    let migrations = drain(&mut p);
    let mut plan = PowerPlan {
        migrations,
        ..PowerPlan::default()
    };
    if p.policy.params.automatic_power_management() {
        switch(&p, &empty, &mut plan);
    }
    Ok(plan)
}

fn under_utilised(p: &Planner, h: &HostSlot) -> bool {
    let params = &p.policy.params;
    let cpu = h.load_percent() < u64::from(params.low_utilization());
    let memory = params
        .min_free_memory_for_under_utilized
        .is_some_and(|limit| h.free() > limit);
    h.is_up() && h.vms > 0 && (cpu || memory)
}

fn drain(p: &mut Planner) -> Vec<Migration> {
    let params = p.policy.params.clone();
    let high = u64::from(params.high_utilization());
    let mem_low = params.max_free_memory_for_over_utilized;
    let mut sources: Vec<usize> = (0..p.hosts.len())
        .filter(|&ix| under_utilised(p, &p.hosts[ix]))
        .collect();
    sources.sort_by_key(|&ix| (p.hosts[ix].vms, p.hosts[ix].load));
    let mut sent = vec![false; p.hosts.len()];
    let mut received = vec![false; p.hosts.len()];
    let mut guests = p.vms_by_host();
    let mut out = Vec::new();
    for src in sources {
        if received[src] {
            continue;
        }
        let (src_vms, src_load) = (p.hosts[src].vms, p.hosts[src].load_percent());
        let allow = |ix: usize, h: &HostSlot| {
            let busier = (h.vms, h.load_percent()) >= (src_vms, src_load);
            !sent[ix] && h.vms > 0 && busier
        };
        let list = std::mem::take(&mut guests[src]);
        if let Some(m) = move_one(p, src, list, high, mem_low, &allow) {
            if let Ok(to) = p.host_index(&m.to) {
                received[to] = true;
            }
            sent[src] = true;
            out.push(m);
        }
    }
    out
}

fn switch(p: &Planner, empty: &[usize], plan: &mut PowerPlan) {
    let reserve = usize::try_from(p.policy.params.hosts_in_reserve()).unwrap_or(usize::MAX);
    if empty.len() > reserve {
        let mut off: Vec<HostId> = empty
            .iter()
            .rev()
            .map(|&ix| &p.hosts[ix])
            .filter(|h| h.power_management && !h.spm)
            .take(empty.len() - reserve)
            .map(|h| h.id.clone())
            .collect();
        off.reverse();
        plan.power_off = off;
        return;
    }
    let up: Vec<&HostSlot> = p.hosts.iter().filter(|h| h.is_up()).collect();
    let all_over = !up.is_empty()
        && up.iter().all(|h| {
            let cpu = h.load_percent() >= u64::from(p.policy.params.high_utilization());
            let mem = p
                .policy
                .params
                .max_free_memory_for_over_utilized
                .is_some_and(|l| h.free() < l);
            cpu || mem
        });
    let mut wanted = reserve - empty.len();
    if all_over {
        wanted = wanted.max(1);
    }
    plan.power_on = p
        .hosts
        .iter()
        .filter(|h| h.status == HostStatus::PoweredOff && h.power_management)
        .take(wanted)
        .map(|h| h.id.clone())
        .collect();
}
