//! Creating and destroying objects through their constructors, with each class's own rules.

use drover_host::ImageFormat;
use drover_model::{Qualifier, Schema, Value, NULL_REF};
use rand::Rng;

use crate::db::Ref;
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::{validate, Ctx};

/// Classes clients may not create or destroy directly: the engine owns them.
const ENGINE_OWNED: &[&str] = &[
    "session",
    "task",
    "event",
    "host",
    "pool",
    "host_cpu",
    "host_metrics",
    "SM",
];

/// A random locally administered unicast MAC address.
pub fn random_mac() -> String {
    let mut b: [u8; 6] = rand::rng().random();
    b[0] = (b[0] & 0xfe) | 0x02;
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether a MAC address is six colon-separated hex pairs.
pub fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Engine {
    /// Creates a VLAN on a physical PIF and its untagged PIF on `network`.
    pub(crate) fn vlan_create(&self, pif: &str, tag: i64, network: &str) -> Result<Ref> {
        if !(0..=4094).contains(&tag) {
            return Err(CoreError::VlanTagInvalid(tag.to_string()));
        }
        self.write(|t| {
            let tagged = t.must("PIF", pif)?.clone();
            t.must("network", network)?;
            if tagged.int("VLAN") >= 0 && !tagged.bool("physical") {
                return Err(CoreError::PifIsVlan(pif.into()));
            }
            let exists = tagged
                .refs("VLAN_slave_of")
                .iter()
                .filter_map(|v| t.get("VLAN", v))
                .any(|v| v.int("tag") == tag);
            if exists {
                return Err(CoreError::PifVlanExists(pif.into()));
            }
            let metrics = t.create("PIF_metrics", vec![])?;
            let untagged = t.create(
                "PIF",
                vec![
                    ("device", Value::str(tagged.str("device"))),
                    ("host", tagged.get("host").clone()),
                    ("network", Value::str(network)),
                    ("MAC", tagged.get("MAC").clone()),
                    ("MTU", tagged.get("MTU").clone()),
                    ("VLAN", Value::Int(tag)),
                    ("physical", Value::Bool(false)),
                    ("metrics", Value::str(&*metrics)),
                ],
            )?;
            let vlan = t.create(
                "VLAN",
                vec![
                    ("tagged_PIF", Value::str(pif)),
                    ("untagged_PIF", Value::str(&*untagged)),
                    ("tag", Value::Int(tag)),
                ],
            )?;
            t.set("PIF", &untagged, "VLAN_master_of", Value::str(&*vlan))?;
            Ok(vlan)
        })
    }

    pub(crate) async fn create_object(
        &self,
        class: &str,
        fields: Vec<(String, Value)>,
    ) -> Result<Ref> {
        let k = Schema::get()
            .class(class)
            .ok_or_else(|| CoreError::Internal(format!("no class {class}")))?;
        if ENGINE_OWNED.contains(&class) {
            return Err(CoreError::OperationNotAllowed(format!(
                "{class} objects are made by the engine"
            )));
        }
        let mut values: Vec<(String, Value)> = Vec::new();
        for (name, v) in fields {
            let f = k.field(&name).ok_or_else(|| CoreError::NoSuchField {
                class: class.into(),
                field: name.clone(),
            })?;
            if f.qualifier == Qualifier::RoRuntime {
                continue;
            }
            validate(&name, &f.ty, &v)?;
            values.push((name, v));
        }
        let given = values.clone();
        let get = |name: &str| {
            given
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        match class {
            "VDI" => {
                let sr = get("SR")
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let size = get("virtual_size").and_then(|v| v.as_int()).unwrap_or(0);
                let name = get("name_label")
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let kind = get("type")
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| "user".into());
                let vdi = self
                    .new_vdi(&sr, &name, size, &kind, ImageFormat::Qcow2)
                    .await?;
                let rest: Vec<(String, Value)> = values
                    .into_iter()
                    .filter(|(n, _)| {
                        !["SR", "virtual_size", "name_label", "type"].contains(&n.as_str())
                    })
                    .collect();
                let applied = self.write(|t| {
                    for (n, v) in rest {
                        t.set("VDI", &vdi, &n, v)?;
                    }
                    Ok(())
                });
                if let Err(e) = applied {
                    self.forget_vdi(&vdi).await;
                    return Err(e);
                }
                Ok(vdi)
            }
            _ => self.write(|t| {
                if class == "VBD" {
                    let vm = get("VM")
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    let vm_obj = t.must("VM", &vm)?.clone();
                    let device = get("userdevice")
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    let empty = get("empty").and_then(|v| v.as_bool()).unwrap_or(false);
                    let vdi = get("VDI")
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or(NULL_REF.into());
                    if !empty {
                        t.must("VDI", &vdi)?;
                    }
                    let taken = vm_obj
                        .refs("VBDs")
                        .iter()
                        .filter_map(|b| t.get("VBD", b))
                        .any(|b| b.str("userdevice") == device);
                    if taken && device != "autodetect" {
                        return Err(CoreError::DeviceAlreadyExists(device));
                    }
                }
                if class == "VIF" {
                    let vm = get("VM")
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    t.must("VM", &vm)?;
                    let network = get("network")
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    t.must("network", &network)?;
                    let mac = get("MAC")
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    if mac.is_empty() {
                        values.retain(|(n, _)| n != "MAC");
                        values.push(("MAC".into(), Value::str(random_mac())));
                        values.push(("MAC_autogenerated".into(), Value::Bool(true)));
                    } else if !valid_mac(&mac) {
                        return Err(CoreError::InvalidValue {
                            field: "MAC".into(),
                            value: mac,
                        });
                    }
                }
                let mut vals: Vec<(&str, Value)> = values
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.clone()))
                    .collect();
                match class {
                    "VM" => {
                        vals.push(("metrics", Value::str(&*t.create("VM_metrics", vec![])?)));
                        vals.push(("power_state", Value::str("Halted")));
                        vals.push(("domid", Value::Int(-1)));
                    }
                    "VBD" => vals.push(("metrics", Value::str(&*t.create("VBD_metrics", vec![])?))),
                    "VIF" => vals.push(("metrics", Value::str(&*t.create("VIF_metrics", vec![])?))),
                    "network" => {
                        let n = t.db().all("network").count();
                        if !vals.iter().any(|(f, v)| {
                            *f == "bridge" && v.as_str().is_some_and(|s| !s.is_empty())
                        }) {
                            vals.push(("bridge", Value::str(format!("xapi{n}"))));
                        }
                    }
                    _ => {}
                }
                let r = t.create(class, vals)?;
                if class == "VM" {
                    crate::vm::refresh_allowed(t, &r)?;
                }
                Ok(r)
            }),
        }
    }

    pub(crate) async fn destroy_object(&self, ctx: &Ctx<'_>, class: &str, r: &str) -> Result<()> {
        if ENGINE_OWNED.contains(&class) && class != "task" {
            return Err(CoreError::OperationNotAllowed(format!(
                "{class} objects are removed by the engine"
            )));
        }
        match class {
            "VM" => self
                .vm_action(ctx, r, crate::vm::VmAction::Destroy)
                .await
                .map(|_| ()),
            "VDI" => self.destroy_vdi(r).await,
            "SR" => self.sr_forget(r, true).await,
            "PBD" => {
                if self.get(class, r)?.bool("currently_attached") {
                    return Err(CoreError::OperationNotAllowed(format!(
                        "PBD {r} is plugged; unplug it first"
                    )));
                }
                self.write(|t| t.destroy(class, r))
            }
            "VLAN" => self.write(|t| {
                let untagged = t.must("VLAN", r)?.str("untagged_PIF").to_string();
                if t.get("PIF", &untagged).is_some() {
                    let m = t.must("PIF", &untagged)?.str("metrics").to_string();
                    if t.get("PIF_metrics", &m).is_some() {
                        t.destroy("PIF_metrics", &m)?;
                    }
                    t.destroy("PIF", &untagged)?;
                }
                t.destroy("VLAN", r)
            }),
            "task" => {
                self.get("task", r)?;
                self.cancels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(r);
                self.write(|t| t.destroy("task", r))
            }
            "VBD" | "VIF" => {
                let obj = self.get(class, r)?;
                if obj.bool("currently_attached") {
                    return Err(CoreError::OperationNotAllowed(format!(
                        "{class} {r} is attached to a running VM"
                    )));
                }
                self.write(|t| {
                    let m = t.must(class, r)?.str("metrics").to_string();
                    let mclass = format!("{class}_metrics");
                    if t.get(&mclass, &m).is_some() {
                        t.destroy(&mclass, &m)?;
                    }
                    t.destroy(class, r)
                })
            }
            "network" => {
                let obj = self.get(class, r)?;
                if let Some(vif) = obj.refs("VIFs").first() {
                    if self
                        .get("VIF", vif)
                        .is_ok_and(|v| v.bool("currently_attached"))
                    {
                        return Err(CoreError::OperationNotAllowed(format!(
                            "network {r} has VIFs in use"
                        )));
                    }
                }
                self.write(|t| t.destroy(class, r))
            }
            _ => self.write(|t| t.destroy(class, r)),
        }
    }
}
