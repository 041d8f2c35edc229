use std::collections::HashSet;

use drover_sched::{
    all_units, units::unit_by_id, BalanceUnit, FilterUnit, Param, ParamError, Policy, PolicyKind,
    PolicyParams, UnitType, WeightUnit,
};

#[test]
fn builtin_policies_carry_ovirt_names_ids_units_and_parameters() {
    let names: Vec<String> = Policy::builtins().into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "none",
            "evenly_distributed",
            "vm_evenly_distributed",
            "power_saving",
            "cluster_maintenance"
        ]
    );
    let none = Policy::none();
    assert_eq!(none.id, "b4ed2332-a7ac-4d5f-9596-99a439cb2812");
    assert_eq!(none.balancer, BalanceUnit::None);
    assert_eq!(
        none.weights,
        vec![
            (WeightUnit::CpuEvenDistribution, 2),
            (WeightUnit::MemoryEvenDistribution, 1),
            (WeightUnit::HaReservation, 1),
            (WeightUnit::VmAffinityGroups, 1)
        ]
    );
    assert_eq!(
        none.params.properties(),
        vec![
            (Param::HighUtilization, "80".to_string()),
            (Param::CpuOverCommitDurationMinutes, "2".to_string())
        ]
    );
    let ps = Policy::power_saving();
    assert_eq!(ps.balancer, BalanceUnit::PowerSaving);
    assert_eq!(ps.weights[0], (WeightUnit::CpuPowerSaving, 2));
    assert_eq!(ps.params.low_utilization(), 20);
    let vm_even = Policy::vm_evenly_distributed();
    assert_eq!(vm_even.balancer, BalanceUnit::EvenGuestDistribution);
    assert_eq!(
        (
            vm_even.params.high_vm_count(),
            vm_even.params.migration_threshold(),
            vm_even.params.spm_vm_grace()
        ),
        (10, 5, 5)
    );
    let maint = Policy::cluster_maintenance();
    assert!(maint.cluster_in_maintenance());
    assert_eq!(maint.filters[0], FilterUnit::ClusterInMaintenance);
    assert!(!Policy::evenly_distributed().cluster_in_maintenance());
    assert_eq!(Policy::default(), Policy::none());
    for kind in PolicyKind::ALL {
        assert_eq!(PolicyKind::from_name(kind.name()), Some(*kind));
        assert_eq!(Policy::builtin(*kind).id, kind.id());
        assert!(Policy::builtin(*kind).locked);
    }
}

#[test]
fn mandatory_filters_run_first_and_once() {
    let mut p = Policy::none();
    p.filters.insert(0, FilterUnit::PinToHost);
    let f = p.effective_filters();
    assert_eq!(&f[..2], &[FilterUnit::HostStatus, FilterUnit::PinToHost]);
    assert_eq!(f.iter().filter(|u| **u == FilterUnit::PinToHost).count(), 1);
}

#[test]
fn the_unit_table_lists_every_unit_once_with_its_type() {
    let units = all_units();
    assert_eq!(
        units.len(),
        FilterUnit::ALL.len() + WeightUnit::ALL.len() + BalanceUnit::ALL.len()
    );
    let ids: HashSet<&str> = units.iter().map(|u| u.id).collect();
    assert_eq!(ids.len(), units.len());
    for u in &units {
        assert!(!u.description.is_empty());
        assert_eq!(unit_by_id(u.id), Some(*u));
    }
    assert_eq!(FilterUnit::Memory.info().unit_type, UnitType::Filter);
    assert_eq!(
        FilterUnit::Memory.info().id,
        "c9ddbb34-0e1d-4061-a8d7-b0893fa80932"
    );
    assert_eq!(WeightUnit::VmAffinityGroups.info().name, "VmAffinityGroups");
    assert_eq!(
        WeightUnit::VmAffinityGroups.info().unit_type.as_str(),
        "weight"
    );
    assert_eq!(
        BalanceUnit::PowerSaving.to_string(),
        "OptimalForPowerSaving"
    );
    assert!(FilterUnit::HostStatus.info().mandatory && FilterUnit::PinToHost.info().mandatory);
    assert!(!FilterUnit::Memory.info().mandatory);
    // Every policy uses known units only and every parameter a unit reads has a name.
    for p in Policy::builtins() {
        for (param, _) in p.params.properties() {
            assert_eq!(Param::from_name(param.name()), Some(param));
        }
    }
}

#[test]
fn parameters_follow_ovirt_value_rules() {
    let mut p = PolicyParams::default();
    assert_eq!(p.high_utilization(), 75);
    assert!(!p.automatic_power_management());
    p.set("HighUtilization", "90").unwrap();
    p.set("HostsInReserve", "2").unwrap();
    p.set("EnableAutomaticHostPowerManagement", "true").unwrap();
    p.set("MaxFreeMemoryForOverUtilized", "2048").unwrap();
    p.set("VCpuToPhysicalCpuRatio", "1.5").unwrap();
    assert_eq!(p.high_utilization(), 90);
    assert_eq!(p.hosts_in_reserve(), 2);
    assert!(p.automatic_power_management());
    assert_eq!(
        p.get(Param::VcpuToPhysicalCpuRatio).as_deref(),
        Some("1.50")
    );
    assert_eq!(p.destination_utilization(), 72);
    for (name, value) in [
        ("HighUtilization", "100"),
        ("HighUtilization", "49"),
        ("HighUtilization", "080"),
        ("LowUtilization", "50"),
        ("MigrationThreshold", "1"),
        ("CpuOverCommitDurationMinutes", "0"),
        ("EnableAutomaticHostPowerManagement", "yes"),
        ("VCpuToPhysicalCpuRatio", "3"),
        ("VCpuToPhysicalCpuRatio", "1."),
        ("HostsInReserve", "-1"),
        ("HostsInReserve", ""),
    ] {
        assert!(
            matches!(p.set(name, value), Err(ParamError::Invalid { .. })),
            "{name}={value}"
        );
    }
    assert_eq!(
        p.set("Bogus", "1"),
        Err(ParamError::Unknown("Bogus".into()))
    );
    let text = p.set("HighUtilization", "1").unwrap_err().to_string();
    assert!(text.contains("HighUtilization"), "{text}");
}
