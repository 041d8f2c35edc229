//! Periodic load balancing: one round proposes at most one migration off each over-utilised
//! host, chosen by the same filters and weights as placement. Nothing moves under a policy
//! whose balancer is `None`. Draining under-utilised hosts is the power saver's part
//! ([`crate::power_saving`]).

use crate::error::InputError;
use crate::model::{Cluster, Migration, Purpose};
use crate::planner::{vm_load, HostSlot, Planner};
use crate::units::BalanceUnit;
use crate::weights::occupied_slots;

/// One balancing round over `cluster` at time `now` (seconds, the clock of
/// [`crate::HostState::cpu_over_commit_since`]).
///
/// * `OptimalForEvenDistribution` and `OptimalForPowerSaving`: a host is over-utilised when
///   its CPU load has been at or over `HighUtilization` for `CpuOverCommitDurationMinutes`, or
///   (when `MaxFreeMemoryForOverUtilized` is set) when less memory than that is free and it
///   runs two guests or more. The guest with the least CPU load that can go moves to a host
///   that stays under `HighUtilization` (and, for even distribution, is under
///   `min(80% of HighUtilization, HighUtilization − 10)` now).
/// * `OptimalForEvenGuestDistribution`: when the busiest hosts run `HighVmCount` guests or
///   more, each moves one guest to a host running at least `MigrationThreshold` fewer.
pub fn balance(cluster: &Cluster, now: u64) -> Result<Vec<Migration>, InputError> {
    let mut planner = Planner::new(cluster)?;
    Ok(balance_round(&mut planner, now))
}

pub(crate) fn balance_round(p: &mut Planner, now: u64) -> Vec<Migration> {
    match p.policy.balancer {
        BalanceUnit::None => Vec::new(),
        BalanceUnit::EvenDistribution | BalanceUnit::PowerSaving => relieve_over_utilised(p, now),
        BalanceUnit::EvenGuestDistribution => spread_guests(p),
    }
}

/// Whether host `h` is CPU over-utilised at `now`.
pub(crate) fn cpu_over_utilised(p: &Planner, h: &HostSlot, now: u64) -> bool {
    let params = &p.policy.params;
    h.is_up()
        && h.vms > 0
        && h.load_percent() >= u64::from(params.high_utilization())
        && h.over_since.is_some_and(|since| {
            now.saturating_sub(since) >= params.cpu_over_commit_duration_secs()
        })
}

fn relieve_over_utilised(p: &mut Planner, now: u64) -> Vec<Migration> {
    let params = p.policy.params.clone();
    let high = u64::from(params.high_utilization());
    let mem_low = params.max_free_memory_for_over_utilized;
    let mut cpu_sources: Vec<usize> = (0..p.hosts.len())
        .filter(|&ix| cpu_over_utilised(p, &p.hosts[ix], now))
        .collect();
    cpu_sources.sort_by(|&a, &b| p.hosts[b].load_percent().cmp(&p.hosts[a].load_percent()));
    let mem_sources: Vec<usize> = match mem_low {
        Some(limit) => (0..p.hosts.len())
            .filter(|&ix| {
                let h = &p.hosts[ix];
                h.is_up() && h.vms > 1 && h.free() < limit && !cpu_sources.contains(&ix)
            })
            .collect(),
        None => Vec::new(),
    };
    let mut is_source = vec![false; p.hosts.len()];
    for &ix in cpu_sources.iter().chain(&mem_sources) {
        is_source[ix] = true;
    }
    let cpu_dest_limit = match p.policy.balancer {
        BalanceUnit::EvenDistribution => u64::from(params.destination_utilization()),
        _ => high,
    };
    let under_free = params.min_free_memory_for_under_utilized.unwrap_or(0);
    let mut guests = p.vms_by_host();
    let mut out = Vec::new();
    for src in cpu_sources {
        let allow = |ix: usize, h: &HostSlot| !is_source[ix] && h.load_percent() < cpu_dest_limit;
        let list = std::mem::take(&mut guests[src]);
        if let Some(m) = move_one(p, src, list, high, mem_low, &allow) {
            out.push(m);
        }
    }
    for src in mem_sources {
        let allow = |ix: usize, h: &HostSlot| !is_source[ix] && h.free() > under_free;
        let list = std::mem::take(&mut guests[src]);
        if let Some(m) = move_one(p, src, list, high, mem_low, &allow) {
            out.push(m);
        }
    }
    out
}

fn spread_guests(p: &mut Planner) -> Vec<Migration> {
    let params = p.policy.params.clone();
    let slots = |p: &Planner, ix: usize| occupied_slots(&p.policy, &p.hosts[ix]);
    let up: Vec<usize> = (0..p.hosts.len())
        .filter(|&ix| p.hosts[ix].is_up())
        .collect();
    let Some(worst) = up.iter().map(|&ix| slots(p, ix)).max() else {
        return Vec::new();
    };
    if worst < u64::from(params.high_vm_count()) {
        return Vec::new();
    }
    let threshold = u64::from(params.migration_threshold());
    let sources: Vec<usize> = up
        .iter()
        .copied()
        .filter(|&ix| slots(p, ix) >= worst)
        .collect();
    let mut guests = p.vms_by_host();
    let mut out = Vec::new();
    for &src in &sources {
        let list = std::mem::take(&mut guests[src]);
        let policy = p.policy.clone();
        let allow = |ix: usize, h: &HostSlot| {
            !sources.contains(&ix) && worst.saturating_sub(occupied_slots(&policy, h)) >= threshold
        };
        if let Some(m) = move_one(p, src, list, u64::MAX, None, &allow) {
            out.push(m);
        }
    }
    out
}

/// Moves the first of `guests`, the guests of host `src` (least CPU load first, then least memory, then id)
/// that can go to a host `allow` accepts and that stays under `high` CPU load and, if set,
/// keeps `mem_low` MiB free; records the move in the planner.
pub(crate) fn move_one(
    p: &mut Planner,
    src: usize,
    mut guests: Vec<usize>,
    high: u64,
    mem_low: Option<u64>,
    allow: &dyn Fn(usize, &HostSlot) -> bool,
) -> Option<Migration> {
    guests.retain(|&v| p.vms[v].migratable);
    guests.sort_by_key(|&v| (vm_load(&p.vms[v]), p.vms[v].memory_mib));
    let from = p.hosts[src].id.clone();
    let purpose = Purpose::Migrate { from: from.clone() };
    for v in guests {
        let vm = p.vms[v].clone();
        let fits = |ix: usize, h: &HostSlot| {
            let load = u128::from(h.load.saturating_add(vm_load(&vm)));
            let stays_under = load < u128::from(high) * u128::from(h.cpus.max(1));
            let keeps_free = mem_low.is_none_or(|l| h.free().saturating_sub(vm.memory_mib) >= l);
            ix != src && allow(ix, h) && stays_under && keeps_free
        };
        if let Ok(placement) = p.place_where(&vm, &purpose, &fits) {
            if p.commit(&vm, &placement.host).is_ok() {
                return Some(Migration {
                    vm: vm.id.clone(),
                    from,
                    to: placement.host,
                });
            }
        }
    }
    None
}
