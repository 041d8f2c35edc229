//! Placement decisions per second at 100 and 1,000 hosts.
//!
//! Run: `cargo bench -p drover-sched --bench placement` (release profile). Each host runs ten
//! guests; the figure counts `Planner::place` calls (filters, weights and the per-host scores
//! of every decision), without committing them, 5,000 committed one after the other, and one-shot `place` calls
//! that index the cluster first.

use std::hint::black_box;
use std::time::{Duration, Instant};

use drover_sched::{place, Cluster, HostState, Planner, Policy, Purpose, VmState};

const GIB: u64 = 1024;

/// Decisions committed one after the other (they all fit, even on 100 hosts).
const COMMITTED: usize = 5_000;

fn cluster(hosts: usize, policy: Policy) -> Cluster {
    let mut c = Cluster::new(policy);
    for i in 0..hosts {
        let mut h = HostState::new(format!("host-{i:04}"), 64, 1024 * GIB);
        h.cpu_load_percent = (i % 50) as u32;
        h.networks = vec!["ovirtmgmt".into()];
        c.hosts.push(h);
        for j in 0..10 {
            let mut v = VmState::new(
                format!("vm-{i:04}-{j}"),
                1 + (j % 4),
                (1 + u64::from(j % 8)) * GIB,
            );
            v.host = Some(c.hosts[i].id.clone());
            v.cpu_load_percent = Some(20);
            c.vms.push(v);
        }
    }
    c
}

fn new_vm(n: usize) -> VmState {
    let mut v = VmState::new(
        format!("new-{n}"),
        1 + (n % 4) as u32,
        (1 + (n % 8) as u64) * GIB,
    );
    v.required_networks = vec!["ovirtmgmt".into()];
    v
}

/// Runs `step` for at least `budget`, returns decisions per second.
fn rate(budget: Duration, mut step: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        for _ in 0..16 {
            step(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_secs(2);
    println!(
        "{:<20} {:>6} {:>16} {:>16} {:>16}",
        "policy", "hosts", "place/s", "place+commit/s", "one-shot/s"
    );
    for policy in [Policy::evenly_distributed(), Policy::power_saving()] {
        for hosts in [100, 1_000] {
            let c = cluster(hosts, policy.clone());
            let planner = Planner::new(&c).expect("cluster");
            let read_only = rate(budget, |n| {
                black_box(planner.place(&new_vm(n), &Purpose::Start).ok());
            });
            let mut committing = planner.clone();
            let start = Instant::now();
            for n in 0..COMMITTED {
                let vm = new_vm(n);
                let p = committing.place(&vm, &Purpose::Start).expect("room");
                black_box(committing.commit(&vm, &p.host).ok());
            }
            let with_commit = COMMITTED as f64 / start.elapsed().as_secs_f64();
            let one_shot = rate(budget, |n| {
                black_box(place(&c, &new_vm(n), &Purpose::Start).ok());
            });
            println!(
                "{:<20} {:>6} {:>16.0} {:>16.0} {:>16.0}",
                policy.name, hosts, read_only, with_commit, one_shot
            );
        }
    }
}
