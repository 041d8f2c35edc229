use drover_sched::{place, AffinityGroup, HostState, Planner, Policy, Purpose, VmId, WeightUnit};

use crate::common::{cluster, host, id, running, vm, GIB};

fn loaded(id: &str, cpus: u32, mem_gib: u64, load: u32) -> HostState {
    let mut h = host(id, cpus, mem_gib);
    h.cpu_load_percent = load;
    h
}

#[test]
fn none_policy_prefers_the_least_loaded_cpu() {
    let c = cluster(
        Policy::none(),
        vec![
            loaded("a", 8, 64, 60),
            loaded("b", 8, 64, 10),
            loaded("c", 8, 64, 30),
        ],
        vec![],
    );
    let p = place(&c, &vm("v", 2, 4), &Purpose::Start).unwrap();
    assert_eq!(p.host, id("b"));
    // CPU (factor 2) is stretched over 1..=1000; memory, HA and affinity are equal.
    let scores: Vec<u64> = p.scores.iter().map(|s| s.score).collect();
    assert_eq!(scores[0] - scores[1], 2 * 999);
    assert!(scores[2] > scores[1] && scores[2] < scores[0]);
}

#[test]
fn even_distribution_prefers_more_free_memory_when_cpu_is_equal() {
    let c = cluster(
        Policy::evenly_distributed(),
        vec![host("a", 8, 64), host("b", 8, 64)],
        vec![running("x", "a", 1, 32)],
    );
    assert_eq!(
        place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap().host,
        id("b")
    );
}

#[test]
fn vm_evenly_distributed_prefers_fewer_guests_and_counts_the_spm() {
    let mut a = host("a", 8, 64);
    a.spm = true;
    let c = cluster(
        Policy::vm_evenly_distributed(),
        vec![a, host("b", 8, 64)],
        vec![running("x", "b", 1, 1), running("y", "b", 1, 1)],
    );
    // a: 0 guests + SpmVmGrace 5 = 5 slots; b: 2.
    let p = place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap();
    assert_eq!(p.host, id("b"));
    assert_eq!(p.scores[0].score, 5 * 2 + 1 + 1);
    assert_eq!(p.scores[1].score, 2 * 2 + 1 + 1);
}

#[test]
fn power_saving_prefers_the_busiest_host_under_high_utilization() {
    let c = cluster(
        Policy::power_saving(),
        vec![
            loaded("a", 8, 64, 10),
            loaded("b", 8, 64, 60),
            loaded("c", 8, 64, 90),
        ],
        vec![],
    );
    let p = place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap();
    assert_eq!(p.host, id("b"));
}

#[test]
fn power_saving_prefers_less_free_memory() {
    let c = cluster(
        Policy::power_saving(),
        vec![host("a", 8, 64), host("b", 8, 64)],
        vec![running("x", "b", 1, 40)],
    );
    let mut v = vm("v", 1, 1);
    v.cpu_load_percent = Some(0);
    assert_eq!(place(&c, &v, &Purpose::Start).unwrap().host, id("b"));
}

#[test]
fn power_saving_memory_weight_avoids_hosts_left_under_the_over_utilised_limit() {
    let mut policy = Policy::power_saving();
    policy.weights = vec![(WeightUnit::MemoryPowerSaving, 1)];
    policy.params.max_free_memory_for_over_utilized = Some(8 * GIB);
    let c = cluster(
        policy,
        vec![host("a", 8, 64), host("b", 8, 64)],
        vec![running("x", "b", 1, 54)],
    );
    // b would keep 9 GiB free: fine, packs there. With a 4 GiB VM it keeps 6 GiB: too little.
    assert_eq!(
        place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap().host,
        id("b")
    );
    assert_eq!(
        place(&c, &vm("v", 1, 4), &Purpose::Start).unwrap().host,
        id("a")
    );
}

#[test]
fn ha_reservation_spreads_ha_vms() {
    let mut x = running("x", "a", 1, 1);
    x.ha = true;
    let c = cluster(
        Policy::none(),
        vec![host("a", 8, 64), host("b", 8, 64)],
        vec![x, running("y", "b", 1, 1), running("z", "b", 1, 1)],
    );
    let mut policy_only_ha = c.clone();
    policy_only_ha.policy.weights = vec![(WeightUnit::HaReservation, 1)];
    let mut ha = vm("ha", 1, 1);
    ha.ha = true;
    assert_eq!(
        place(&policy_only_ha, &ha, &Purpose::Start).unwrap().host,
        id("b")
    );
    // A non-HA VM scores 1 everywhere: the tie goes to the lowest id.
    assert_eq!(
        place(&policy_only_ha, &vm("n", 1, 1), &Purpose::Start)
            .unwrap()
            .host,
        id("a")
    );
}

#[test]
fn soft_affinity_prefers_keeping_groups_together_or_apart() {
    let mut c = cluster(
        Policy::none(),
        vec![host("a", 8, 64), host("b", 8, 64)],
        vec![running("p1", "b", 1, 1), running("n1", "a", 1, 1)],
    );
    c.policy.weights = vec![(WeightUnit::VmAffinityGroups, 1)];
    c.affinity = vec![
        AffinityGroup {
            name: "pos".into(),
            vms: vec![VmId::from("p1"), VmId::from("p2")],
            positive: true,
            enforcing: false,
        },
        AffinityGroup {
            name: "neg".into(),
            vms: vec![VmId::from("n1"), VmId::from("n2")],
            positive: false,
            enforcing: false,
        },
    ];
    assert_eq!(
        place(&c, &vm("p2", 1, 1), &Purpose::Start).unwrap().host,
        id("b")
    );
    assert_eq!(
        place(&c, &vm("n2", 1, 1), &Purpose::Start).unwrap().host,
        id("b")
    );
    // Soft groups filter nothing.
    assert_eq!(
        place(&c, &vm("p2", 1, 1), &Purpose::Start)
            .unwrap()
            .scores
            .len(),
        2
    );
}

#[test]
fn ties_go_to_the_lowest_host_id_whatever_the_input_order() {
    let hosts = vec![host("c", 8, 64), host("a", 8, 64), host("b", 8, 64)];
    for policy in Policy::builtins() {
        let mut ha = vm("v", 1, 1);
        ha.ha = true;
        let c = cluster(policy, hosts.clone(), vec![]);
        let p = place(&c, &ha, &Purpose::Start).unwrap();
        assert_eq!(p.host, id("a"));
        let order: Vec<String> = p.scores.iter().map(|s| s.host.to_string()).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }
}

#[test]
fn factors_multiply_scores() {
    let mut c = cluster(
        Policy::none(),
        vec![loaded("a", 8, 64, 50), loaded("b", 8, 64, 0)],
        vec![],
    );
    c.policy.weights = vec![(WeightUnit::CpuEvenDistribution, 7)];
    let p = place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap();
    assert_eq!(p.scores[0].score, 7000);
    assert_eq!(p.scores[1].score, 7);
}

#[test]
fn the_vcpu_ratio_penalises_hosts_at_the_limit() {
    let mut c = cluster(
        Policy::evenly_distributed(),
        vec![loaded("a", 4, 64, 0), loaded("b", 4, 64, 40)],
        vec![running("x", "a", 4, 1)],
    );
    c.hosts[0].cpu_load_percent = 0;
    c.policy.weights = vec![(WeightUnit::CpuEvenDistribution, 1)];
    assert_eq!(
        place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap().host,
        id("a")
    );
    c.policy
        .params
        .set("VCpuToPhysicalCpuRatio", "1.2")
        .unwrap();
    assert_eq!(
        place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap().host,
        id("b")
    );
}

#[test]
fn the_planner_counts_what_it_commits() {
    let c = cluster(
        Policy::none(),
        vec![host("a", 8, 16), host("b", 8, 16)],
        vec![],
    );
    let mut planner = Planner::new(&c).unwrap();
    let mut hosts = Vec::new();
    for i in 0..4 {
        let v = vm(&format!("v{i}"), 2, 4);
        let p = planner.place(&v, &Purpose::Start).unwrap();
        planner.commit(&v, &p.host).unwrap();
        hosts.push(p.host.to_string());
    }
    assert_eq!(hosts, ["a", "b", "a", "b"]);
    let usage = planner.usage(&id("a")).unwrap();
    assert_eq!(
        (usage.vms, usage.committed_mib, usage.vcpus),
        (2, 8 * GIB, 4)
    );
    assert_eq!(usage.cpu_load_percent, 5);
    assert!(planner.place(&vm("big", 1, 9), &Purpose::Start).is_err());
    planner.release(&VmId::from("v0"));
    assert_eq!(planner.usage(&id("a")).unwrap().vms, 1);
    assert_eq!(planner.host_of(&VmId::from("v1")), Some(&id("b")));
}
