//! Audit entries in words and objects: how an object is named ("disk root of VM web1") and
//! which objects an operation involves.

use drover_model::Type;

use crate::db::{Db, Obj, View};

/// What kind of VM record an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A VM.
    Vm,
    /// A template.
    Template,
    /// A snapshot.
    Snapshot,
}

/// The kind of a VM record (a missing one counts as a VM).
pub(super) fn kind(vm: Option<&Obj>) -> Kind {
    match vm {
        Some(v) if v.bool("is_a_snapshot") => Kind::Snapshot,
        Some(v) if v.bool("is_a_template") => Kind::Template,
        _ => Kind::Vm,
    }
}

/// Adds an object and, `depth` levels down, the objects its reference fields name (a disk's
/// VM, VDI and SR) to `subjects`, once each.
pub(super) fn involve(
    db: &Db,
    class: &str,
    r: &str,
    subjects: &mut Vec<(String, String)>,
    depth: u8,
) {
    let Some(o) = db.obj(class, r) else {
        return;
    };
    let entry = (o.class.name.to_string(), o.uuid().to_string());
    if !subjects.contains(&entry) {
        subjects.push(entry);
    }
    if depth == 0 {
        return;
    }
    const RELATED: &[&str] = &[
        "VM",
        "VDI",
        "SR",
        "host",
        "network",
        "resident_on",
        "snapshot_of",
        "master",
        "tagged_PIF",
    ];
    for f in &o.class.fields {
        if let (true, Type::Ref(target)) = (RELATED.contains(&&*f.name), &f.ty) {
            involve(db, target, o.str(&f.name), subjects, depth - 1);
        }
    }
}

/// An object in words: "VM web1", "disk root of VM web1", "snapshot s1 of VM web1".
pub(super) fn describe(db: &Db, class: &str, r: &str) -> String {
    let Some(o) = db.obj(class, r) else {
        return format!("{} {r}", noun(class));
    };
    let of_vm = |what: String| format!("{what} of {}", describe(db, "VM", o.str("VM")));
    match class {
        "VM" => match kind(Some(o)) {
            Kind::Snapshot => format!(
                "snapshot {} of {}",
                label(o),
                describe(db, "VM", o.str("snapshot_of"))
            ),
            Kind::Template => format!("template {}", label(o)),
            Kind::Vm => format!("VM {}", label(o)),
        },
        "VBD" if o.str("type") == "CD" => of_vm(format!("CD drive {}", o.str("userdevice"))),
        "VBD" => match db.obj("VDI", o.str("VDI")) {
            Some(vdi) => of_vm(format!("disk {}", label(vdi))),
            None => of_vm(format!("disk drive {}", o.str("userdevice"))),
        },
        "VIF" => of_vm(format!("interface {}", o.str("device"))),
        "PIF" => format!(
            "interface {} of {}",
            o.str("device"),
            describe(db, "host", o.str("host"))
        ),
        "PBD" => format!(
            "{} on {}",
            describe(db, "SR", o.str("SR")),
            describe(db, "host", o.str("host"))
        ),
        "VLAN" => format!("VLAN {}", o.int("tag")),
        _ => format!("{} {}", noun(class), label(o)),
    }
}

/// A class in words.
pub(super) fn noun(class: &str) -> &str {
    match class {
        "VDI" => "disk",
        "SR" => "storage repository",
        "Bond" => "bond",
        "task" => "task",
        other => other,
    }
}

/// An object's name, or its uuid when it has none.
fn label(o: &Obj) -> &str {
    match o.class.field("name_label").map(|_| o.str("name_label")) {
        Some(name) if !name.is_empty() => name,
        _ => o.uuid(),
    }
}

/// A message from a template: each `{name}` becomes its value, and the text starts with a
/// capital. Only the template's own placeholders are replaced, never text from values.
pub(super) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after
            .find('}')
            .and_then(|end| values.iter().find(|(k, _)| *k == &after[..end]))
        {
            Some((k, v)) => {
                out.push_str(v);
                rest = &after[k.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let mut chars = out.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn templates_fill_their_own_placeholders_only() {
        assert_eq!(
            fill(
                "{what} was started by {user}.",
                &[("what", "VM {user}"), ("user", "admin")]
            ),
            "VM {user} was started by admin."
        );
        assert_eq!(
            fill(
                "{new} of {what}",
                &[("new", "snapshot s"), ("what", "VM a")]
            ),
            "Snapshot s of VM a"
        );
        assert_eq!(fill("{odd} text", &[]), "{odd} text");
    }
}
