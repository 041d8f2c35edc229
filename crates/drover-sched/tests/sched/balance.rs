use drover_sched::{balance, Cluster, HostState, Migration, Policy, VmState};

use crate::common::{cluster, host, id, running, GIB};

fn busy(id: &str, load: u32, since: Option<u64>) -> HostState {
    let mut h = host(id, 8, 64);
    h.cpu_load_percent = load;
    h.cpu_over_commit_since = since;
    h
}

fn guest(id: &str, on: &str, vcpus: u32, load: u32) -> VmState {
    let mut v = running(id, on, vcpus, 2);
    v.cpu_load_percent = Some(load);
    v
}

fn overloaded(policy: Policy) -> Cluster {
    cluster(
        policy,
        vec![
            busy("a", 90, Some(0)),
            busy("b", 10, None),
            busy("c", 50, None),
        ],
        vec![
            guest("x", "a", 2, 80),
            guest("y", "a", 1, 10),
            guest("z", "a", 4, 90),
        ],
    )
}

fn mig(vm: &str, from: &str, to: &str) -> Migration {
    Migration {
        vm: vm.into(),
        from: id(from),
        to: id(to),
    }
}

#[test]
fn none_never_migrates() {
    assert_eq!(
        balance(&overloaded(Policy::none()), 10_000).unwrap(),
        vec![]
    );
    assert_eq!(
        balance(&overloaded(Policy::cluster_maintenance()), 10_000).unwrap(),
        vec![]
    );
}

#[test]
fn even_distribution_moves_the_lightest_guest_off_an_over_utilised_host() {
    let got = balance(&overloaded(Policy::evenly_distributed()), 300).unwrap();
    assert_eq!(got, vec![mig("y", "a", "b")]);
}

#[test]
fn a_host_must_stay_over_high_utilization_for_the_duration() {
    let c = overloaded(Policy::evenly_distributed());
    assert_eq!(balance(&c, 119).unwrap(), vec![]);
    assert_eq!(balance(&c, 120).unwrap().len(), 1);
    let mut c = c;
    c.hosts[0].cpu_over_commit_since = None;
    assert_eq!(balance(&c, 10_000).unwrap(), vec![]);
}

#[test]
fn one_migration_per_over_utilised_host_per_round() {
    let mut c = overloaded(Policy::evenly_distributed());
    c.hosts.push(busy("d", 95, Some(0)));
    c.hosts.push(busy("e", 5, None));
    c.vms.push(guest("w1", "d", 1, 50));
    c.vms.push(guest("w2", "d", 1, 40));
    let got = balance(&c, 600).unwrap();
    // d is the most loaded, so it goes first and takes the least loaded destination.
    assert_eq!(got, vec![mig("w2", "d", "e"), mig("y", "a", "b")]);
}

#[test]
fn no_migration_when_no_host_would_stay_under_the_limits() {
    let mut c = overloaded(Policy::evenly_distributed());
    c.hosts[1].cpu_load_percent = 70;
    c.hosts[2].cpu_load_percent = 70;
    assert_eq!(balance(&c, 600).unwrap(), vec![]);
}

#[test]
fn unmigratable_guests_stay() {
    let mut c = overloaded(Policy::evenly_distributed());
    c.vms[1].migratable = false;
    assert_eq!(balance(&c, 600).unwrap(), vec![mig("x", "a", "b")]);
}

#[test]
fn even_distribution_relieves_hosts_short_of_memory() {
    let mut policy = Policy::evenly_distributed();
    policy.params.max_free_memory_for_over_utilized = Some(4 * GIB);
    let mut a = host("a", 8, 16);
    a.cpu_load_percent = 10;
    let c = cluster(
        policy,
        vec![a, host("b", 8, 64)],
        vec![running("m1", "a", 1, 7), running("m2", "a", 1, 7)],
    );
    assert_eq!(balance(&c, 0).unwrap(), vec![mig("m1", "a", "b")]);
}

#[test]
fn vm_evenly_distributed_moves_one_guest_off_the_busiest_hosts() {
    let mut vms = Vec::new();
    for (h, n) in [("a", 12), ("b", 2), ("c", 9)] {
        for i in 0..n {
            vms.push(running(&format!("{h}{i:02}"), h, 1, 1));
        }
    }
    let c = cluster(
        Policy::vm_evenly_distributed(),
        vec![host("a", 8, 64), host("b", 8, 64), host("c", 8, 64)],
        vms.clone(),
    );
    assert_eq!(balance(&c, 0).unwrap(), vec![mig("a00", "a", "b")]);
    // Under HighVmCount nothing moves.
    vms.retain(|v| !matches!(v.id.as_str(), "a09" | "a10" | "a11"));
    let c = cluster(
        Policy::vm_evenly_distributed(),
        vec![host("a", 8, 64), host("b", 8, 64), host("c", 8, 64)],
        vms,
    );
    assert_eq!(balance(&c, 0).unwrap(), vec![]);
}
