use std::collections::HashSet;

use crate::search::{object_type, object_types, FieldKind, DATA_CENTERS, POOLS, STORAGE, VMS};

#[test]
fn object_types_are_found_by_any_alias_in_any_case() {
    let cases = [
        ("Vms", "Vms"),
        ("vm", "Vms"),
        ("VMS", "Vms"),
        ("host", "Hosts"),
        ("Templates", "Templates"),
        ("events", "Events"),
        ("Users", "Users"),
        ("groups", "Groups"),
        ("Clusters", "Clusters"),
        ("DataCenter", "DataCenter"),
        ("datacenters", "DataCenter"),
        ("Storage", "Storage"),
        ("StorageDomains", "Storage"),
        ("disks", "Disks"),
        ("Networks", "Networks"),
        ("VnicProfiles", "VnicProfiles"),
        ("vmpools", "Pools"),
        ("Pools", "Pools"),
        ("jobs", "Jobs"),
        ("nics", "Nics"),
    ];
    for (name, canonical) in cases {
        assert_eq!(object_type(name).map(|t| t.name), Some(canonical), "{name}");
    }
    assert_eq!(object_type("bogus"), None);
    assert_eq!(object_type(""), None);
    assert!(std::ptr::eq(
        object_type("datacenter").unwrap(),
        &DATA_CENTERS
    ));
    assert!(std::ptr::eq(
        object_type("storagedomains").unwrap(),
        &STORAGE
    ));
    assert!(std::ptr::eq(object_type("vmpools").unwrap(), &POOLS));
}

#[test]
fn tables_are_consistent() {
    let mut names = HashSet::new();
    for t in object_types() {
        assert!(t.field("id").is_some(), "{} lacks id", t.name);
        let mut fields = HashSet::new();
        for f in t.fields {
            assert_eq!(f.name, f.name.to_lowercase(), "{}.{}", t.name, f.name);
            assert!(fields.insert(f.name), "{}.{} twice", t.name, f.name);
            if let FieldKind::Enum(values) = f.kind {
                assert!(!values.is_empty());
                assert!(values.iter().all(|v| *v == v.to_lowercase()));
            }
        }
        for join in t.joins {
            let other = object_type(join).unwrap_or_else(|| panic!("{} joins {join}", t.name));
            assert_eq!(other.name, *join);
        }
        let own: HashSet<String> = t
            .aliases
            .iter()
            .chain([&t.name])
            .map(|a| a.to_lowercase())
            .collect();
        for alias in own {
            assert_eq!(object_type(&alias).map(|o| o.name), Some(t.name));
            assert!(names.insert(alias.clone()), "{alias} is ambiguous");
        }
    }
}

#[test]
fn vm_fields_follow_ovirt() {
    for name in [
        "address",
        "cluster",
        "creationdate",
        "memory",
        "name",
        "status",
        "tag",
        "vcpus",
    ] {
        assert!(VMS.field(name).is_some(), "{name}");
    }
    assert!(VMS.field("STATUS").is_some());
    assert!(
        matches!(VMS.field("status").map(|f| f.kind), Some(FieldKind::Enum(v)) if v.contains(&"wait_for_launch"))
    );
    assert_eq!(VMS.field("memory").map(|f| f.kind), Some(FieldKind::Number));
    assert!(VMS.joins_with("Hosts"));
    assert!(!VMS.joins_with("Clusters"));
}
