use drover_sched::{power_saving, Cluster, HostState, HostStatus, Migration, Policy, PowerPlan};

use crate::common::{cluster, host, id, running};

fn pm_host(id: &str, load: u32) -> HostState {
    let mut h = host(id, 8, 64);
    h.cpu_load_percent = load;
    h.power_management = true;
    h
}

fn power_policy(reserve: u32) -> Policy {
    let mut p = Policy::power_saving();
    p.params.hosts_in_reserve = Some(reserve);
    p.params.enable_automatic_host_power_management = Some(true);
    p
}

fn packed_cluster(reserve: u32) -> Cluster {
    cluster(
        power_policy(reserve),
        vec![
            pm_host("a", 5),
            pm_host("b", 50),
            pm_host("c", 0),
            pm_host("d", 0),
            pm_host("e", 0),
        ],
        vec![
            running("small", "a", 1, 2),
            running("big1", "b", 2, 8),
            running("big2", "b", 2, 8),
        ],
    )
}

#[test]
fn drains_under_utilised_hosts_onto_busier_ones() {
    let plan = power_saving(&packed_cluster(3)).unwrap();
    assert_eq!(
        plan.migrations,
        vec![Migration {
            vm: "small".into(),
            from: id("a"),
            to: id("b")
        }]
    );
}

#[test]
fn switches_off_empty_hosts_beyond_the_reserve() {
    let plan = power_saving(&packed_cluster(1)).unwrap();
    assert_eq!(plan.power_off, vec![id("d"), id("e")]);
    assert!(plan.power_on.is_empty());
    // Only hosts with power management that do not hold the SPM role.
    let mut c = packed_cluster(0);
    c.hosts[4].power_management = false;
    c.hosts[3].spm = true;
    assert_eq!(power_saving(&c).unwrap().power_off, vec![id("c")]);
}

#[test]
fn keeps_the_reserve_up() {
    let plan = power_saving(&packed_cluster(3)).unwrap();
    assert!(plan.power_off.is_empty() && plan.power_on.is_empty());
}

#[test]
fn switches_hosts_on_when_the_reserve_is_short() {
    let mut c = packed_cluster(3);
    c.hosts[3].status = HostStatus::PoweredOff;
    c.hosts[4].status = HostStatus::PoweredOff;
    let plan = power_saving(&c).unwrap();
    assert_eq!(plan.power_on, vec![id("d"), id("e")]);
    assert!(plan.power_off.is_empty());
}

#[test]
fn switches_one_host_on_when_every_up_host_is_over_utilised() {
    let mut c = cluster(
        power_policy(0),
        vec![
            pm_host("a", 95),
            pm_host("b", 90),
            pm_host("c", 0),
            pm_host("d", 0),
        ],
        vec![running("x", "a", 1, 1), running("y", "b", 1, 1)],
    );
    c.hosts[2].status = HostStatus::PoweredOff;
    c.hosts[3].status = HostStatus::PoweredOff;
    assert_eq!(power_saving(&c).unwrap().power_on, vec![id("c")]);
    c.hosts[3].power_management = false;
    c.hosts[2].power_management = false;
    assert!(power_saving(&c).unwrap().power_on.is_empty());
}

#[test]
fn host_power_needs_automatic_power_management() {
    let mut c = packed_cluster(0);
    c.policy.params.enable_automatic_host_power_management = None;
    let plan = power_saving(&c).unwrap();
    assert!(plan.power_off.is_empty());
    assert_eq!(plan.migrations.len(), 1);
}

#[test]
fn other_policies_save_no_power() {
    let mut c = packed_cluster(0);
    for policy in [
        Policy::none(),
        Policy::evenly_distributed(),
        Policy::vm_evenly_distributed(),
    ] {
        c.policy = policy;
        c.policy.params.enable_automatic_host_power_management = Some(true);
        assert_eq!(power_saving(&c).unwrap(), PowerPlan::default());
    }
}

#[test]
fn hosts_do_not_swap_guests_in_one_round() {
    let c = cluster(
        power_policy(5),
        vec![pm_host("a", 5), pm_host("b", 5), pm_host("c", 10)],
        vec![
            running("x", "a", 1, 1),
            running("y", "b", 1, 1),
            running("z", "c", 1, 1),
        ],
    );
    let plan = power_saving(&c).unwrap();
    for m in &plan.migrations {
        assert!(plan.migrations.iter().all(|n| n.from != m.to));
    }
    assert_eq!(plan.migrations.len(), 2);
    assert!(plan.migrations.iter().all(|m| m.to == id("c")));
}
