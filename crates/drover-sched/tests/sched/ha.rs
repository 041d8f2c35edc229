use drover_sched::{
    evacuate, ha_restart_order, plan_ha_restarts, InputError, PlaceError, Policy, Reason, VmId,
    VmState,
};

use crate::common::{cluster, host, id, running, vm};

fn ha(id: &str, on: &str, priority: i32, memory_gib: u64) -> VmState {
    let mut v = running(id, on, 1, memory_gib);
    v.ha = true;
    v.ha_priority = priority;
    v
}

fn ids(v: &[VmId]) -> Vec<&str> {
    v.iter().map(VmId::as_str).collect()
}

#[test]
fn restart_order_is_priority_then_id_and_ha_only() {
    let vms = vec![
        ha("b", "h", 1, 1),
        vm("plain", 1, 1),
        ha("a", "h", 1, 1),
        ha("z", "h", 100, 1),
        ha("m", "h", -5, 1),
    ];
    assert_eq!(ids(&ha_restart_order(&vms)), ["z", "a", "b", "m"]);
}

#[test]
fn restarts_place_ha_vms_in_priority_order_counting_memory() {
    let c = cluster(
        Policy::none(),
        vec![host("dead", 8, 64), host("s1", 8, 10), host("s2", 8, 6)],
        vec![
            ha("low", "dead", 1, 8),
            ha("high", "dead", 10, 8),
            ha("mid", "dead", 5, 4),
            running("plain", "dead", 1, 1),
            running("other", "s2", 1, 1),
        ],
    );
    let plan = plan_ha_restarts(&c, &id("dead")).unwrap();
    let restarts: Vec<(&str, &str)> = plan
        .restarts
        .iter()
        .map(|(v, h)| (v.as_str(), h.as_str()))
        .collect();
    // high takes s1 (8 of 10 GiB), mid then fits only on s2, low fits nowhere.
    assert_eq!(restarts, [("high", "s1"), ("mid", "s2")]);
    assert_eq!(plan.unplaceable.len(), 1);
    assert_eq!(plan.unplaceable[0].0.as_str(), "low");
    let PlaceError::NoHost(no) = &plan.unplaceable[0].1 else {
        panic!("expected NoHost");
    };
    assert_eq!(
        no.rejections[0].reason,
        Reason::HostNotUp(drover_sched::HostStatus::Down)
    );
    assert_eq!(ids(&plan.not_restarted), ["plain"]);
}

#[test]
fn restarts_happen_even_in_cluster_maintenance() {
    let c = cluster(
        Policy::cluster_maintenance(),
        vec![host("dead", 8, 64), host("s", 8, 64)],
        vec![ha("h", "dead", 0, 1)],
    );
    let plan = plan_ha_restarts(&c, &id("dead")).unwrap();
    assert_eq!(plan.restarts, vec![(VmId::from("h"), id("s"))]);
    assert_eq!(
        plan_ha_restarts(&c, &id("nope")),
        Err(InputError::UnknownHost(id("nope")))
    );
}

#[test]
fn evacuation_moves_every_guest_it_can() {
    let c = cluster(
        Policy::none(),
        vec![host("a", 8, 64), host("b", 8, 16), host("c", 8, 16)],
        vec![
            running("v1", "a", 1, 4),
            ha("v2", "a", 3, 4),
            running("v3", "a", 1, 8),
            running("other", "b", 1, 8),
        ],
    );
    let e = evacuate(&c, &id("a")).unwrap();
    assert!(e.complete());
    let moves: Vec<(&str, &str)> = e
        .migrations
        .iter()
        .map(|m| (m.vm.as_str(), m.to.as_str()))
        .collect();
    // HA first, then the biggest; each counted on its target.
    assert_eq!(moves, [("v2", "c"), ("v3", "b"), ("v1", "c")]);
    assert!(e.migrations.iter().all(|m| m.from == id("a")));
}

#[test]
fn guests_that_cannot_move_keep_the_host_preparing() {
    let mut pinned = running("pinned", "a", 1, 1);
    pinned.migratable = false;
    let c = cluster(
        Policy::none(),
        vec![host("a", 8, 64), host("b", 8, 8)],
        vec![
            pinned,
            running("huge", "a", 1, 32),
            running("ok", "a", 1, 1),
        ],
    );
    let e = evacuate(&c, &id("a")).unwrap();
    assert!(!e.complete());
    assert_eq!(e.migrations.len(), 1);
    assert_eq!(e.migrations[0].vm.as_str(), "ok");
    assert_eq!(e.stuck.len(), 2);
    assert_eq!(e.stuck[0].0.as_str(), "huge");
    let PlaceError::NoHost(no) = &e.stuck[0].1 else {
        panic!("expected NoHost");
    };
    let reasons: Vec<&Reason> = no.rejections.iter().map(|r| &r.reason).collect();
    assert!(matches!(reasons[0], Reason::HostNotUp(_)));
    assert!(matches!(reasons[1], Reason::NotEnoughMemory { .. }));
    assert_eq!(
        e.stuck[1],
        (
            VmId::from("pinned"),
            PlaceError::NotMigratable(VmId::from("pinned"))
        )
    );
}
