//! 1,000 hosts and 10,000 VMs: every VM placed, no host over its memory, the policy's
//! distribution property holds, and one balancing round stays within its rules.

use std::collections::HashSet;
use std::time::Instant;

use drover_sched::{balance, Cluster, HostState, Planner, Policy, Purpose, VmState};

use crate::common::{cluster, GIB};

const HOSTS: usize = 1_000;
const VMS: usize = 10_000;

/// A fixed pseudo-random sequence (64-bit LCG), so the test is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn hosts() -> Vec<HostState> {
    (0..HOSTS)
        .map(|i| {
            let mut h = HostState::new(format!("host-{i:04}"), 32, 256 * GIB);
            h.networks = vec!["ovirtmgmt".into(), "storage".into()];
            h.power_management = true;
            h
        })
        .collect()
}

fn vms() -> Vec<VmState> {
    let mut rng = Lcg(8);
    (0..VMS)
        .map(|i| {
            let mut v = VmState::new(
                format!("vm-{i:05}"),
                1 + (rng.next() % 4) as u32,
                (1 + rng.next() % 8) * GIB,
            );
            v.required_networks = vec!["ovirtmgmt".into()];
            v
        })
        .collect()
}

/// Places every VM in turn, committing each decision; returns the planner.
fn place_all(policy: Policy) -> (Planner, Cluster) {
    let c = cluster(policy, hosts(), vms());
    let mut planner = Planner::new(&c).unwrap();
    for vm in &c.vms {
        let p = planner
            .place(vm, &Purpose::Start)
            .unwrap_or_else(|e| panic!("{}: {e}", vm.id));
        planner.commit(vm, &p.host).unwrap();
    }
    (planner, c)
}

fn check_no_overcommit(planner: &Planner, c: &Cluster) {
    for h in &c.hosts {
        let u = planner.usage(&h.id).unwrap();
        assert!(
            u.committed_mib <= u.capacity_mib,
            "{} over its memory",
            h.id
        );
        assert!(
            u.cpu_load_percent <= 100,
            "{} at {}%",
            h.id,
            u.cpu_load_percent
        );
    }
}

#[test]
fn scale_evenly_distributed_spreads_and_balances() {
    let start = Instant::now();
    let (planner, c) = place_all(Policy::evenly_distributed());
    let placed = start.elapsed();
    check_no_overcommit(&planner, &c);
    let usage: Vec<_> = c
        .hosts
        .iter()
        .map(|h| planner.usage(&h.id).unwrap())
        .collect();
    let loads: Vec<u64> = usage.iter().map(|u| u.cpu_load_percent).collect();
    let counts: Vec<u32> = usage.iter().map(|u| u.vms).collect();
    let (lo, hi) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
    let (cmin, cmax) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert_eq!(counts.iter().map(|&n| n as usize).sum::<usize>(), VMS);
    // Every host is used and CPU load is level to within one VM's worth.
    assert!(hi - lo <= 2, "CPU load spread {lo}..{hi}%");
    assert!(*cmin >= 5 && *cmax <= 20, "guest counts {cmin}..{cmax}");

    // One balancing round with ten hosts over HighUtilization for long enough.
    let mut running = c.clone();
    for (h, u) in running.hosts.iter_mut().zip(&usage) {
        h.cpu_load_percent = u32::try_from(u.cpu_load_percent).unwrap();
    }
    for vm in &mut running.vms {
        vm.host = planner.host_of(&vm.id).cloned();
    }
    let hot: Vec<_> = (0..10).map(|i| running.hosts[i * 97].id.clone()).collect();
    for h in &mut running.hosts {
        if hot.contains(&h.id) {
            h.cpu_load_percent = 95;
            h.cpu_over_commit_since = Some(0);
        }
    }
    let round = Instant::now();
    let moves = balance(&running, 3_600).unwrap();
    let balanced = round.elapsed();
    assert_eq!(moves.len(), hot.len());
    let sources: HashSet<_> = moves.iter().map(|m| m.from.clone()).collect();
    assert_eq!(sources.len(), hot.len());
    for m in &moves {
        assert!(hot.contains(&m.from));
        assert!(!hot.contains(&m.to));
        let vm = running.vms.iter().find(|v| v.id == m.vm).unwrap();
        assert_eq!(vm.host.as_ref(), Some(&m.from));
    }
    eprintln!("evenly_distributed: placed {VMS} VMs on {HOSTS} hosts in {placed:?}; balance round {balanced:?}");
}

#[test]
fn scale_power_saving_packs() {
    let start = Instant::now();
    let (planner, c) = place_all(Policy::power_saving());
    let placed = start.elapsed();
    check_no_overcommit(&planner, &c);
    let used = c
        .hosts
        .iter()
        .filter(|h| planner.usage(&h.id).unwrap().vms > 0)
        .count();
    let memory: u64 = c.vms.iter().map(|v| v.memory_mib).sum();
    let capacity = 256 * GIB;
    let lower_bound = memory.div_ceil(capacity) as usize;
    assert!(
        used <= lower_bound + lower_bound / 20 + 1,
        "{used} hosts used, at least {lower_bound} needed"
    );
    // Packed hosts are the lowest ids: the rest stay empty for the power saver.
    assert!(c.hosts[used..]
        .iter()
        .all(|h| planner.usage(&h.id).unwrap().vms == 0));
    eprintln!("power_saving: placed {VMS} VMs on {used} of {HOSTS} hosts (bound {lower_bound}) in {placed:?}");
}
