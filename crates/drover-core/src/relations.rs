//! Bound fields: a reference field on one class and the set field that mirrors it on the other.

/// `(class, ref field, target class, set field on the target)`.
pub const BOUND: &[(&str, &str, &str, &str)] = &[
    ("VBD", "VM", "VM", "VBDs"),
    ("VBD", "VDI", "VDI", "VBDs"),
    ("VIF", "VM", "VM", "VIFs"),
    ("VIF", "network", "network", "VIFs"),
    ("PIF", "host", "host", "PIFs"),
    ("PIF", "network", "network", "PIFs"),
    ("PIF", "bond_slave_of", "Bond", "slaves"),
    ("Bond", "master", "PIF", "bond_master_of"),
    ("VLAN", "tagged_PIF", "PIF", "VLAN_slave_of"),
    ("PBD", "host", "host", "PBDs"),
    ("PBD", "SR", "SR", "PBDs"),
    ("VDI", "SR", "SR", "VDIs"),
    ("VDI", "snapshot_of", "VDI", "snapshots"),
    ("crashdump", "VM", "VM", "crash_dumps"),
    ("crashdump", "VDI", "VDI", "crash_dumps"),
    ("VTPM", "VM", "VM", "VTPMs"),
    ("console", "VM", "VM", "consoles"),
    ("VM", "resident_on", "host", "resident_VMs"),
    ("VM", "snapshot_of", "VM", "snapshots"),
    ("VM", "parent", "VM", "children"),
    ("host_cpu", "host", "host", "host_CPUs"),
    ("host_crashdump", "host", "host", "crashdumps"),
    ("host_patch", "host", "host", "patches"),
    ("host_patch", "pool_patch", "pool_patch", "host_patches"),
    ("task", "subtask_of", "task", "subtasks"),
];

/// The set field mirroring `class.field`, if bound.
pub fn mirror_of(class: &str, field: &str) -> Option<(&'static str, &'static str)> {
    BOUND
        .iter()
        .find(|(c, f, _, _)| *c == class && *f == field)
        .map(|(_, _, tc, tf)| (*tc, *tf))
}

/// The bound reference fields of a class.
pub fn bound_fields(class: &str) -> impl Iterator<Item = &'static str> + '_ {
    BOUND
        .iter()
        .filter(move |(c, ..)| *c == class)
        .map(|(_, f, ..)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_model::{Schema, Type};

    #[test]
    fn every_bound_pair_exists_in_the_schema() {
        let s = Schema::get();
        for (c, f, tc, tf) in BOUND {
            let field = s
                .class(c)
                .and_then(|k| k.field(f))
                .unwrap_or_else(|| panic!("{c}.{f}"));
            assert_eq!(field.ty, Type::Ref((*tc).into()), "{c}.{f}");
            let set = s
                .class(tc)
                .and_then(|k| k.field(tf))
                .unwrap_or_else(|| panic!("{tc}.{tf}"));
            assert_eq!(
                set.ty,
                Type::Set(Box::new(Type::Ref((*c).into()))),
                "{tc}.{tf}"
            );
        }
    }
}
