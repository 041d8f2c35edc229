//! The weights: each scores the hosts that passed the filters, mostly stretched over
//! 1..=[`MAX_WEIGHT`]; a host's total is the sum of score × factor and the lowest total wins,
//! as in oVirt. All arithmetic is integer, so equal inputs give equal decisions.

use crate::planner::{Ctx, HostSlot};
use crate::policy::Policy;
use crate::units::WeightUnit;

/// The worst score a stretched weight gives (oVirt's `MaxSchedulerWeight`).
pub const MAX_WEIGHT: u64 = 1000;

/// Total weighted score of each candidate host, in `candidates` order.
pub(crate) fn totals(
    policy: &Policy,
    ctx: &Ctx<'_>,
    hosts: &[HostSlot],
    candidates: &[usize],
) -> Vec<u64> {
    let mut totals = vec![0u64; candidates.len()];
    for &(unit, factor) in &policy.weights {
        let scores = score(unit, policy, ctx, hosts, candidates);
        for (t, s) in totals.iter_mut().zip(scores) {
            *t = t.saturating_add(s.saturating_mul(u64::from(factor)));
        }
    }
    totals
}

/// The scores weight `unit` gives the candidates, in `candidates` order.
pub(crate) fn score(
    unit: WeightUnit,
    policy: &Policy,
    ctx: &Ctx<'_>,
    hosts: &[HostSlot],
    candidates: &[usize],
) -> Vec<u64> {
    match unit {
        WeightUnit::CpuEvenDistribution => cpu_even(policy, ctx, hosts, candidates),
        WeightUnit::CpuPowerSaving => cpu_power_saving(policy, ctx, hosts, candidates),
        WeightUnit::MemoryEvenDistribution => memory_even(ctx, hosts, candidates),
        WeightUnit::MemoryPowerSaving => memory_power_saving(policy, ctx, hosts, candidates),
        WeightUnit::EvenGuestDistribution => even_guest(policy, hosts, candidates),
        WeightUnit::HaReservation => ha_reservation(ctx, hosts, candidates),
        WeightUnit::VmAffinityGroups => affinity(ctx, candidates),
    }
}

/// Maps raw values linearly onto 1..=MAX_WEIGHT (lowest raw to 1); all 1 when they are equal.
pub(crate) fn stretch(raw: &[i64]) -> Vec<u64> {
    let (Some(&min), Some(&max)) = (raw.iter().min(), raw.iter().max()) else {
        return Vec::new();
    };
    if min == max {
        return vec![1; raw.len()];
    }
    let span = i128::from(max) - i128::from(min);
    let top = i128::from(MAX_WEIGHT - 1);
    raw.iter()
        .map(|&v| {
            let off = i128::from(v) - i128::from(min);
            let scaled = (2 * off * top + span) / (2 * span);
            u64::try_from(1 + scaled).unwrap_or(MAX_WEIGHT)
        })
        .collect()
}

/// CPU load after the VM arrives, hundredths of a percent.
fn load_after(ctx: &Ctx<'_>, ix: usize, h: &HostSlot) -> i64 {
    let units = u128::from(h.load.saturating_add(ctx.added_load(ix))) * 100;
    i64::try_from(units / u128::from(h.cpus.max(1))).unwrap_or(i64::MAX)
}

/// Less CPU load after the VM arrives scores better; a host pushed to the
/// `VCpuToPhysicalCpuRatio` limit is penalised.
fn cpu_even(policy: &Policy, ctx: &Ctx<'_>, hosts: &[HostSlot], candidates: &[usize]) -> Vec<u64> {
    let ratio = u128::from(policy.params.vcpu_ratio_centi());
    let raw: Vec<i64> = candidates
        .iter()
        .map(|&ix| {
            let h = &hosts[ix];
            let load = load_after(ctx, ix, h);
            let vcpus = u128::from(h.vcpus.saturating_add(ctx.added_vcpus(ix)));
            if ratio > 0 && vcpus * 100 >= ratio * u128::from(h.cpus.max(1)) {
                load.saturating_mul(1000)
            } else {
                load
            }
        })
        .collect();
    stretch(&raw)
}

/// More CPU load after the VM arrives scores better; a host already over `HighUtilization`
/// scores worst.
fn cpu_power_saving(
    policy: &Policy,
    ctx: &Ctx<'_>,
    hosts: &[HostSlot],
    candidates: &[usize],
) -> Vec<u64> {
    let high = u64::from(policy.params.high_utilization());
    let over = |ix: usize| hosts[ix].load_percent() > high;
    let raw: Vec<i64> = candidates
        .iter()
        .filter(|&&ix| !over(ix))
        .map(|&ix| -load_after(ctx, ix, &hosts[ix]))
        .collect();
    let mut stretched = stretch(&raw).into_iter();
    candidates
        .iter()
        .map(|&ix| {
            if over(ix) {
                MAX_WEIGHT
            } else {
                stretched.next().unwrap_or(MAX_WEIGHT)
            }
        })
        .collect()
}

/// Memory free after the VM arrives.
fn free_after(ctx: &Ctx<'_>, ix: usize, h: &HostSlot) -> u64 {
    h.free().saturating_sub(ctx.added_memory(ix))
}

/// More free memory after the VM arrives scores better, relative to the host with the most.
fn memory_even(ctx: &Ctx<'_>, hosts: &[HostSlot], candidates: &[usize]) -> Vec<u64> {
    let max = candidates
        .iter()
        .map(|&ix| hosts[ix].free())
        .max()
        .unwrap_or(0);
    if max <= 1 {
        return vec![1; candidates.len()];
    }
    let top = u128::from(MAX_WEIGHT - 1);
    candidates
        .iter()
        .map(|&ix| {
            let free = u128::from(free_after(ctx, ix, &hosts[ix]).max(1));
            let part = ((free - 1) * top * 2 + u128::from(max - 1)) / (2 * u128::from(max - 1));
            MAX_WEIGHT
                .saturating_sub(u64::try_from(part).unwrap_or(MAX_WEIGHT))
                .max(1)
        })
        .collect()
}

/// Less free memory after the VM arrives scores better; a host left under
/// `MaxFreeMemoryForOverUtilized` counts as if it had a lot free, so it scores badly.
fn memory_power_saving(
    policy: &Policy,
    ctx: &Ctx<'_>,
    hosts: &[HostSlot],
    candidates: &[usize],
) -> Vec<u64> {
    let low = policy.params.max_free_memory_for_over_utilized.unwrap_or(0);
    let high = policy
        .params
        .min_free_memory_for_under_utilized
        .unwrap_or(u64::MAX);
    let most = candidates
        .iter()
        .map(|&ix| hosts[ix].free())
        .max()
        .unwrap_or(0);
    let max = u128::from(most) * 11 / 10;
    if max == 0 {
        return vec![1; candidates.len()];
    }
    candidates
        .iter()
        .map(|&ix| {
            let mut free = u128::from(free_after(ctx, ix, &hosts[ix]));
            if free < u128::from(low) {
                free = max.min(u128::from(high) + (u128::from(low) - free));
            }
            let part = free.min(max) * u128::from(MAX_WEIGHT - 1) / max;
            u64::try_from(part).unwrap_or(MAX_WEIGHT - 1) + 1
        })
        .collect()
}

/// Guests on the host (the storage-pool manager counts `SpmVmGrace` more); not stretched.
pub(crate) fn occupied_slots(policy: &Policy, h: &HostSlot) -> u64 {
    let grace = if h.spm {
        policy.params.spm_vm_grace()
    } else {
        0
    };
    u64::from(h.vms) + u64::from(grace)
}

fn even_guest(policy: &Policy, hosts: &[HostSlot], candidates: &[usize]) -> Vec<u64> {
    candidates
        .iter()
        .map(|&ix| occupied_slots(policy, &hosts[ix]))
        .collect()
}

/// For an HA VM, fewer HA guests on the host score better; other VMs score 1 everywhere.
fn ha_reservation(ctx: &Ctx<'_>, hosts: &[HostSlot], candidates: &[usize]) -> Vec<u64> {
    if !ctx.vm.ha {
        return vec![1; candidates.len()];
    }
    let raw: Vec<i64> = candidates
        .iter()
        .map(|&ix| i64::from(hosts[ix].ha_vms))
        .collect();
    stretch(&raw)
}

/// Fewer broken soft affinity preferences score better.
fn affinity(ctx: &Ctx<'_>, candidates: &[usize]) -> Vec<u64> {
    if ctx.soft_together.is_empty() && ctx.soft_apart.is_empty() {
        return vec![1; candidates.len()];
    }
    let raw: Vec<i64> = candidates
        .iter()
        .map(|&ix| {
            let apart = ctx
                .soft_together
                .iter()
                .filter(|p| !p.contains(&ix))
                .count();
            let together = ctx.soft_apart.iter().filter(|p| p.contains(&ix)).count();
            i64::try_from(apart + together).unwrap_or(i64::MAX)
        })
        .collect();
    stretch(&raw)
}
