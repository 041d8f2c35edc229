use drover_sched::{
    place, AffinityGroup, FilterUnit, HostStatus, InputError, PlaceError, Policy, Purpose, Reason,
    VmId,
};

use crate::common::{cluster, host, id, running, vm, GIB};

fn no_host(err: PlaceError) -> drover_sched::NoHost {
    match err {
        PlaceError::NoHost(n) => n,
        other => panic!("expected NoHost, got {other:?}"),
    }
}

#[test]
fn memory_filter_counts_committed_and_reserved_memory() {
    let mut small = host("a", 8, 8);
    small.memory_reserved_mib = GIB;
    let c = cluster(
        Policy::none(),
        vec![small, host("b", 8, 16)],
        vec![running("x", "a", 1, 4)],
    );
    let p = place(&c, &vm("new", 1, 4), &Purpose::Start).unwrap();
    assert_eq!(p.host, id("b"));
    assert_eq!(p.scores.len(), 1);
    let err = no_host(place(&c, &vm("big", 1, 20), &Purpose::Start).unwrap_err());
    assert_eq!(
        err.rejections[0].reason,
        Reason::NotEnoughMemory {
            free_mib: 3 * GIB,
            needed_mib: 20 * GIB
        }
    );
    assert_eq!(err.rejections[0].reason.unit(), FilterUnit::Memory);
}

#[test]
fn memory_filter_applies_overcommit() {
    let mut c = cluster(Policy::none(), vec![host("a", 8, 8)], vec![]);
    assert!(place(&c, &vm("v", 1, 10), &Purpose::Start).is_err());
    c.memory_overcommit_percent = 150;
    assert_eq!(
        place(&c, &vm("v", 1, 10), &Purpose::Start).unwrap().host,
        id("a")
    );
}

#[test]
fn cpu_filter_needs_as_many_cpus_as_vcpus() {
    let c = cluster(
        Policy::none(),
        vec![host("a", 2, 64), host("b", 4, 64)],
        vec![],
    );
    assert_eq!(
        place(&c, &vm("v", 4, 1), &Purpose::Start).unwrap().host,
        id("b")
    );
    let err = no_host(place(&c, &vm("v", 8, 1), &Purpose::Start).unwrap_err());
    assert_eq!(
        err.rejections[0].reason,
        Reason::TooFewCpus { cpus: 2, vcpus: 8 }
    );
}

#[test]
fn network_filter_reports_missing_networks() {
    let mut a = host("a", 4, 16);
    a.networks = vec!["mgmt".into()];
    let mut b = host("b", 4, 16);
    b.networks = vec!["mgmt".into(), "storage".into()];
    let c = cluster(Policy::none(), vec![a, b], vec![]);
    let mut v = vm("v", 1, 1);
    v.required_networks = vec!["mgmt".into(), "storage".into()];
    let p = place(&c, &v, &Purpose::Start).unwrap();
    assert_eq!(p.host, id("b"));
    v.required_networks.push("dmz".into());
    let err = no_host(place(&c, &v, &Purpose::Start).unwrap_err());
    assert_eq!(
        err.rejections[0].reason,
        Reason::MissingNetworks(vec!["storage".into(), "dmz".into()])
    );
    assert_eq!(
        err.rejections[1].reason,
        Reason::MissingNetworks(vec!["dmz".into()])
    );
}

#[test]
fn host_status_filter_keeps_only_up_hosts() {
    let statuses = [
        HostStatus::Maintenance,
        HostStatus::PreparingForMaintenance,
        HostStatus::Down,
        HostStatus::NonResponsive,
        HostStatus::PoweredOff,
    ];
    let mut hosts = Vec::new();
    for (i, s) in statuses.iter().enumerate() {
        let mut h = host(&format!("h{i}"), 4, 16);
        h.status = *s;
        hosts.push(h);
    }
    hosts.push(host("up", 4, 16));
    let c = cluster(Policy::none(), hosts.clone(), vec![]);
    assert_eq!(
        place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap().host,
        id("up")
    );
    hosts.pop();
    let c = cluster(Policy::none(), hosts, vec![]);
    let err = no_host(place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap_err());
    let got: Vec<Reason> = err.rejections.into_iter().map(|r| r.reason).collect();
    let want: Vec<Reason> = statuses.iter().map(|s| Reason::HostNotUp(*s)).collect();
    assert_eq!(got, want);
}

#[test]
fn pin_to_host_keeps_only_pinned_hosts() {
    let c = cluster(
        Policy::none(),
        vec![host("a", 4, 16), host("b", 4, 16), host("c", 4, 16)],
        vec![],
    );
    let mut v = vm("v", 1, 1);
    v.pinned_to = vec![id("c")];
    let p = place(&c, &v, &Purpose::Start).unwrap();
    assert_eq!(p.host, id("c"));
    assert_eq!(p.scores.len(), 1);
    v.pinned_to = vec![id("zz")];
    let err = no_host(place(&c, &v, &Purpose::Start).unwrap_err());
    assert!(err
        .rejections
        .iter()
        .all(|r| r.reason == Reason::NotPinnedHere));
}

#[test]
fn affinity_filter_enforces_positive_and_negative_groups() {
    let mut c = cluster(
        Policy::none(),
        vec![host("a", 4, 16), host("b", 4, 16), host("c", 4, 16)],
        vec![running("db", "b", 1, 1), running("web", "c", 1, 1)],
    );
    c.affinity = vec![
        AffinityGroup {
            name: "together".into(),
            vms: vec![VmId::from("db"), VmId::from("app")],
            positive: true,
            enforcing: true,
        },
        AffinityGroup {
            name: "apart".into(),
            vms: vec![VmId::from("web"), VmId::from("web2")],
            positive: false,
            enforcing: true,
        },
    ];
    let p = place(&c, &vm("app", 1, 1), &Purpose::Start).unwrap();
    assert_eq!(p.host, id("b"));
    assert_eq!(p.scores.len(), 1);
    let p = place(&c, &vm("web2", 1, 1), &Purpose::Start).unwrap();
    assert_eq!(p.scores.len(), 2);
    assert!(p.scores.iter().all(|s| s.host != id("c")));
    // The positive group's member cannot leave its partner's host.
    let app = running("app", "b", 1, 1);
    c.vms.push(app.clone());
    let err = no_host(place(&c, &app, &Purpose::Migrate { from: id("b") }).unwrap_err());
    assert_eq!(
        err.rejections[0].reason,
        Reason::AffinityTogether {
            group: "together".into()
        }
    );
    assert_eq!(err.rejections[1].reason, Reason::SourceHost);
}

#[test]
fn migration_filter_excludes_the_source_and_unmigratable_vms_fail() {
    let c = cluster(
        Policy::none(),
        vec![host("a", 4, 16), host("b", 4, 16)],
        vec![running("v", "a", 1, 1)],
    );
    let mut v = running("v", "a", 1, 1);
    let p = place(&c, &v, &Purpose::Migrate { from: id("a") }).unwrap();
    assert_eq!(p.host, id("b"));
    assert_eq!(p.scores.len(), 1);
    v.migratable = false;
    assert_eq!(
        place(&c, &v, &Purpose::Migrate { from: id("a") }),
        Err(PlaceError::NotMigratable(VmId::from("v")))
    );
}

#[test]
fn cluster_in_maintenance_starts_only_ha_vms_and_allows_migrations() {
    let c = cluster(
        Policy::cluster_maintenance(),
        vec![host("a", 4, 16), host("b", 4, 16)],
        vec![running("r", "a", 1, 1)],
    );
    let err = no_host(place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap_err());
    assert_eq!(err.rejections.len(), 2);
    assert!(err
        .rejections
        .iter()
        .all(|r| r.reason == Reason::ClusterInMaintenance));
    let mut ha = vm("ha", 1, 1);
    ha.ha = true;
    assert!(place(&c, &ha, &Purpose::Start).is_ok());
    let p = place(
        &c,
        &running("r", "a", 1, 1),
        &Purpose::Migrate { from: id("a") },
    )
    .unwrap();
    assert_eq!(p.host, id("b"));
}

#[test]
fn reasons_name_the_first_filter_per_host_in_host_order() {
    let mut down = host("c", 1, 1);
    down.status = HostStatus::Down;
    let c = cluster(
        Policy::none(),
        vec![down, host("b", 1, 64), host("a", 8, 1)],
        vec![],
    );
    let err = no_host(place(&c, &vm("v", 2, 4), &Purpose::Start).unwrap_err());
    let units: Vec<(String, FilterUnit)> = err
        .rejections
        .iter()
        .map(|r| (r.host.to_string(), r.reason.unit()))
        .collect();
    assert_eq!(
        units,
        vec![
            ("a".into(), FilterUnit::Memory),
            ("b".into(), FilterUnit::Cpu),
            ("c".into(), FilterUnit::HostStatus)
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains("host a was filtered out by Memory: 1024 MiB free, the VM needs 4096 MiB"),
        "{text}"
    );
    assert!(
        text.contains("host c was filtered out by HostStatus: the host is down"),
        "{text}"
    );
}

#[test]
fn an_empty_cluster_has_no_host() {
    let c = cluster(Policy::none(), vec![], vec![]);
    let err = no_host(place(&c, &vm("v", 1, 1), &Purpose::Start).unwrap_err());
    assert!(err.rejections.is_empty());
    assert!(err.to_string().contains("no hosts"));
}

#[test]
fn inconsistent_clusters_are_typed_errors() {
    let c = cluster(
        Policy::none(),
        vec![host("a", 1, 1), host("a", 1, 1)],
        vec![],
    );
    assert_eq!(
        place(&c, &vm("v", 1, 1), &Purpose::Start),
        Err(PlaceError::Input(InputError::DuplicateHost(id("a"))))
    );
    let c = cluster(
        Policy::none(),
        vec![host("a", 1, 1)],
        vec![vm("v", 1, 1), vm("v", 1, 1)],
    );
    assert!(matches!(
        place(&c, &vm("w", 1, 1), &Purpose::Start),
        Err(PlaceError::Input(InputError::DuplicateVm(_)))
    ));
    let c = cluster(
        Policy::none(),
        vec![host("a", 1, 1)],
        vec![running("v", "gone", 1, 1)],
    );
    assert_eq!(
        place(&c, &vm("w", 1, 1), &Purpose::Start),
        Err(PlaceError::Input(InputError::UnknownHost(id("gone"))))
    );
}

#[test]
fn degenerate_values_do_not_panic() {
    let mut zero = host("z", 0, 0);
    zero.cpu_load_percent = 500;
    zero.memory_reserved_mib = u64::MAX;
    let mut huge = host("h", u32::MAX, 0);
    huge.memory_total_mib = u64::MAX;
    huge.cpu_load_percent = u32::MAX;
    let mut c = cluster(Policy::none(), vec![zero, huge], vec![]);
    c.memory_overcommit_percent = u32::MAX;
    let mut v = vm("v", 0, 0);
    v.cpu_load_percent = Some(u32::MAX);
    for policy in Policy::builtins() {
        c.policy = policy;
        let _ = place(&c, &v, &Purpose::Start);
        let _ = drover_sched::balance(&c, u64::MAX);
        let _ = drover_sched::power_saving(&c);
    }
}
