//! VIFs: a VM's network interfaces, with MACs unique in the pool, device positions 0-6, an
//! address on networks that hand them out, and hot plug into running guests.

use drover_host::NicSpec;
use drover_model::Value;
use rand::Rng;

use super::dhcp::{self, RESERVED_IP};
use super::distinct;
use super::reconcile::NicMove;
use crate::db::{Db, Obj, Ref, View};
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::FieldChange;
use crate::txn::{new_ref, Txn};

/// How many device positions a VM's VIFs have (`0` to `6`).
pub(crate) const POSITIONS: u32 = 7;

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

/// Checks a MAC given for a guest NIC: well-formed, unicast and not zero (`MAC_INVALID`).
pub(crate) fn check_mac(mac: &str) -> Result<()> {
    let unicast = valid_mac(mac)
        && u8::from_str_radix(&mac[..2], 16).is_ok_and(|b| b & 1 == 0)
        && mac.split(':').any(|p| p != "00");
    if unicast {
        Ok(())
    } else {
        Err(CoreError::MacInvalid(mac.into()))
    }
}

fn mac_in_use(db: &Db, mac: &str) -> bool {
    db.all("VIF")
        .any(|v| v.str("MAC").eq_ignore_ascii_case(mac))
}

/// Fails with `VM_BAD_POWER_STATE` unless the VM runs or is paused.
fn require_live(vm: &Obj) -> Result<()> {
    match vm.str("power_state") {
        "Running" | "Paused" => Ok(()),
        other => Err(CoreError::VmBadPowerState {
            vm: vm.r.to_string(),
            expected: "running".into(),
            actual: other.to_lowercase(),
        }),
    }
}

/// The guest NIC of a VIF: its position, MAC, and its network's bridge and MTU.
pub(crate) fn nic_spec(v: &impl View, vif: &Obj) -> Result<NicSpec> {
    let net = v
        .obj("network", vif.str("network"))
        .ok_or_else(|| CoreError::VmRequiresNetwork {
            vm: vif.str("VM").into(),
            network: vif.str("network").into(),
        })?;
    Ok(NicSpec {
        device: vif.str("device").into(),
        mac: vif.str("MAC").to_ascii_lowercase(),
        bridge: net.str("bridge").into(),
        mtu: net.int("MTU").max(0) as u32,
    })
}

/// The NICs a guest of `vm` gets, by device position: all its VIFs, or when `attached_only`
/// (resuming a suspended guest) those it had when it was suspended.
pub(crate) fn guest_nics(
    v: &impl View,
    vm: &Obj,
    attached_only: bool,
) -> Result<Vec<(Ref, NicSpec)>> {
    let mut nics = v
        .members(vm, "VIFs", "VIF")
        .into_iter()
        .filter(|vif| !attached_only || vif.bool("currently_attached"))
        .map(|vif| Ok((vif.r.clone(), nic_spec(v, vif)?)))
        .collect::<Result<Vec<_>>>()?;
    nics.sort_by_key(|(_, n)| n.device.parse::<u32>().unwrap_or(u32::MAX));
    Ok(nics)
}

/// Marks VIFs plugged or unplugged; an unplugged VIF has no addresses, unless they are the
/// static configuration recorded by `VIF.configure_ipv4`.
pub(crate) fn mark(t: &mut Txn, vifs: &[Ref], attached: bool) -> Result<()> {
    for vif in vifs {
        let Some((addresses, mode)) = t.get("VIF", vif).map(|v| {
            (
                v.get("ipv4_addresses").clone(),
                v.str("ipv4_configuration_mode").to_string(),
            )
        }) else {
            continue;
        };
        t.set("VIF", vif, "currently_attached", Value::Bool(attached))?;
        if !attached && addresses != Value::empty_set() && mode != "Static" {
            t.set("VIF", vif, "ipv4_addresses", Value::empty_set())?;
        }
        refresh_allowed(t, vif)?;
    }
    Ok(())
}

/// Whether a VIF is a NIC of a running or paused guest now (plugged, its VM `vm` live).
fn in_guest(vif: &Obj, vm: Option<&Obj>) -> bool {
    vif.bool("currently_attached")
        && vm.is_some_and(|vm| matches!(vm.str("power_state"), "Running" | "Paused"))
}

/// Whether `text` is an address of the family with a prefix length (`10.0.0.5/24`,
/// `fd00::5/64`).
fn valid_cidr(ipv6: bool, text: &str) -> bool {
    let Some((address, prefix)) = text.split_once('/') else {
        return false;
    };
    let most = if ipv6 { 128 } else { 32 };
    let prefix_ok = !prefix.is_empty()
        && prefix.len() <= 3
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && prefix.parse::<u32>().is_ok_and(|p| p <= most);
    prefix_ok && valid_ip(ipv6, address)
}

/// Whether `text` is an address of the family.
fn valid_ip(ipv6: bool, text: &str) -> bool {
    if ipv6 {
        text.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        text.parse::<std::net::Ipv4Addr>().is_ok()
    }
}

/// Checks the arguments of `VIF.configure_ipv4`/`configure_ipv6` as xapi does: a mode of the
/// family's enum (`INVALID_VALUE`), and for `Static` an address with a prefix length
/// (`INVALID_CIDR_ADDRESS_SPECIFIED`) and an empty or valid gateway
/// (`INVALID_IP_ADDRESS_SPECIFIED`). Other modes take the address and gateway as given.
fn check_ip_configuration(ipv6: bool, mode: &str, address: &str, gateway: &str) -> Result<()> {
    let modes: &[&str] = if ipv6 {
        &["None", "Static", "Autoconf"]
    } else {
        &["None", "Static", "DHCP"]
    };
    if !modes.contains(&mode) {
        return Err(CoreError::InvalidValue {
            field: "mode".into(),
            value: mode.into(),
        });
    }
    if mode == "Static" {
        if !valid_cidr(ipv6, address) {
            return Err(CoreError::InvalidCidrAddress("address".into()));
        }
        if !gateway.is_empty() && !valid_ip(ipv6, gateway) {
            return Err(CoreError::InvalidIpAddress("gateway".into()));
        }
    }
    Ok(())
}

/// Recomputes a VIF's `allowed_operations`: `plug` or `unplug` while its VM runs or is paused.
pub(crate) fn refresh_allowed(t: &mut Txn, vif: &str) -> Result<()> {
    let o = t.must("VIF", vif)?;
    let live = t
        .get("VM", o.str("VM"))
        .is_some_and(|vm| matches!(vm.str("power_state"), "Running" | "Paused"));
    let allowed = match (live, o.bool("currently_attached")) {
        (false, _) => Value::empty_set(),
        (true, true) => Value::Set(vec![Value::str("unplug")]),
        (true, false) => Value::Set(vec![Value::str("plug")]),
    };
    if *o.get("allowed_operations") != allowed {
        t.set("VIF", vif, "allowed_operations", allowed)?;
    }
    Ok(())
}

impl Engine {
    /// `count` new MACs, unique in the pool and among themselves.
    pub(crate) fn fresh_macs(&self, count: usize) -> Vec<String> {
        self.read(|db| {
            let mut out: Vec<String> = Vec::new();
            while out.len() < count {
                let mac = random_mac();
                if !mac_in_use(db, &mac) && !out.contains(&mac) {
                    out.push(mac);
                }
            }
            out
        })
    }

    /// `VIF.create`: a free position 0-6 (`DEVICE_ALREADY_EXISTS`), a well-formed MAC unique
    /// in the pool (`MAC_INVALID`, `MAC_STILL_EXISTS`) or a generated one, the network's MTU
    /// unless given, and an address on a network that hands them out, whose DHCP service
    /// learns the reservation before the VIF is recorded.
    pub(crate) async fn vif_create(&self, values: Vec<(String, Value)>) -> Result<Ref> {
        let text = |name: &str| {
            values
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let (vm, network, device, given_mac) =
            (text("VM"), text("network"), text("device"), text("MAC"));
        let mtu = values
            .iter()
            .find(|(n, _)| n == "MTU")
            .and_then(|(_, v)| v.as_int())
            .filter(|m| *m > 0);
        let generated = if given_mac.is_empty() {
            self.fresh_macs(1).pop()
        } else {
            check_mac(&given_mac)?;
            None
        };
        let r = new_ref();
        self.net_change(&[Ref::from(network.as_str())], |t| {
            let vm_obj = t.must("VM", &vm)?.clone();
            let net = t.must("network", &network)?.clone();
            let position = device.parse::<u32>().ok().filter(|p| *p < POSITIONS);
            if position.map(|p| p.to_string()).as_deref() != Some(device.as_str()) {
                return Err(CoreError::InvalidValue {
                    field: "device".into(),
                    value: device.clone(),
                });
            }
            if t.members(&vm_obj, "VIFs", "VIF")
                .iter()
                .any(|v| v.str("device") == device)
            {
                return Err(CoreError::DeviceAlreadyExists(device.clone()));
            }
            let mac = match &generated {
                Some(mac) => mac.clone(),
                None if mac_in_use(t.db(), &given_mac) => {
                    return Err(CoreError::MacStillExists(given_mac.clone()))
                }
                None => given_mac.clone(),
            };
            let mut fields: Vec<(&str, Value)> = values
                .iter()
                .filter(|(n, _)| {
                    !matches!(
                        n.as_str(),
                        "MAC" | "MTU" | "currently_attached" | "other_config"
                    )
                })
                .map(|(n, v)| (n.as_str(), v.clone()))
                .collect();
            let mut other_config = values
                .iter()
                .find(|(n, _)| n == "other_config")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(Value::empty_map);
            other_config.map_remove(&Value::str(RESERVED_IP));
            let metrics = t.create("VIF_metrics", vec![])?;
            fields.extend([
                ("MAC", Value::str(mac)),
                ("MAC_autogenerated", Value::Bool(generated.is_some())),
                ("MTU", Value::Int(mtu.unwrap_or_else(|| net.int("MTU")))),
                ("other_config", other_config),
                ("metrics", Value::str(&*metrics)),
            ]);
            t.create_with_ref("VIF", r.clone(), fields)?;
            dhcp::reconcile(t, &network)?;
            refresh_allowed(t, &r)?;
            Ok(r.clone())
        })
        .await
    }

    /// `VIF.destroy`: refused while plugged; its address goes back to the range.
    pub(crate) async fn vif_destroy(&self, r: &str) -> Result<()> {
        let obj = self.get("VIF", r)?;
        let network = Ref::from(obj.str("network"));
        self.net_change(std::slice::from_ref(&network), |t| {
            let vif = t.must("VIF", r)?.clone();
            if vif.bool("currently_attached") {
                return Err(CoreError::OperationNotAllowed(format!(
                    "VIF {r} is attached to a running VM"
                )));
            }
            if t.get("VIF_metrics", vif.str("metrics")).is_some() {
                t.destroy("VIF_metrics", vif.str("metrics"))?;
            }
            t.destroy("VIF", r)?;
            if t.get("network", &network).is_some() {
                dhcp::reconcile(t, &network)?;
            }
            Ok(())
        })
        .await
    }

    /// `VIF.plug`: hot-plugs the NIC into the VM's running or paused guest.
    pub(crate) async fn vif_plug(&self, r: &str) -> Result<()> {
        let _held = self.net_lock.lock().await;
        let vif = self.get("VIF", r)?;
        let vm = self.get("VM", vif.str("VM"))?;
        require_live(&vm)?;
        if vif.bool("currently_attached") {
            return Err(CoreError::DeviceAlreadyAttached(r.into()));
        }
        let nic = self.read(|db| nic_spec(db, &vif))?;
        let (_, host) = self.resident(&vm)?;
        host.nic_attach(vm.uuid(), &nic)
            .await
            .map_err(|e| self.host_error(e, "plug"))?;
        let recorded = self.write(|t| {
            require_live(t.must("VM", &vm.r)?)?;
            mark(t, &[Ref::from(r)], true)
        });
        if let Err(e) = recorded {
            if let Err(undo) = host.nic_detach(vm.uuid(), &nic.device).await {
                tracing::warn!(vif = r, error = %undo, "could not unplug a NIC again");
            }
            return Err(e);
        }
        Ok(())
    }

    /// `VIF.unplug` and `VIF.unplug_force`: hot-unplugs the NIC from the VM's guest.
    pub(crate) async fn vif_unplug(&self, r: &str) -> Result<()> {
        let _held = self.net_lock.lock().await;
        let vif = self.get("VIF", r)?;
        if !vif.bool("currently_attached") {
            return Err(CoreError::DeviceAlreadyDetached(r.into()));
        }
        let vm = self.get("VM", vif.str("VM"))?;
        require_live(&vm)?;
        self.resident(&vm)?
            .1
            .nic_detach(vm.uuid(), vif.str("device"))
            .await
            .map_err(|e| self.host_error(e, "unplug"))?;
        self.write(|t| mark(t, &[Ref::from(r)], false))
    }

    /// `VIF.move`: puts the VIF on another network. Its address reservation goes from the old
    /// network's DHCP service and it gets one on the new network if that hands out addresses.
    /// The NIC of a running or paused guest moves live: its host end becomes a port of the new
    /// network's bridge, the guest sees no unplug. The same network is a no-op; on any failure
    /// the host and the inventory stay as they were.
    pub(crate) async fn vif_move(&self, r: &str, network: &str) -> Result<()> {
        let vif = self.get("VIF", r)?;
        let new = self.get("network", network)?;
        let old = Ref::from(vif.str("network"));
        if &*old == network {
            return Ok(());
        }
        let vm = self.get("VM", vif.str("VM"))?;
        let live = in_guest(&vif, Some(&vm));
        let moves = if live {
            let from = self.read(|db| nic_spec(db, &vif))?;
            vec![NicMove {
                uuid: vm.uuid().into(),
                device: from.device,
                from: (from.bridge, from.mtu),
                to: (new.str("bridge").into(), new.int("MTU").max(0) as u32),
            }]
        } else {
            Vec::new()
        };
        let nets = distinct([old.clone(), Ref::from(network)]);
        self.net_change_moving(&nets, &moves, |t| {
            let vif = t.must("VIF", r)?.clone();
            let net = t.must("network", network)?;
            if vif.str("network") != &*old
                || in_guest(&vif, t.get("VM", vif.str("VM"))) != live
                || (live && net.str("bridge") != new.str("bridge"))
            {
                return Err(CoreError::OperationNotAllowed(format!(
                    "VIF {r} or its VM changed while it was being moved"
                )));
            }
            t.set("VIF", r, "network", Value::str(network))?;
            if t.get("network", &old).is_some() {
                dhcp::reconcile(t, &old)?;
            }
            dhcp::reconcile(t, network)?;
            Ok(())
        })
        .await
    }

    /// `VIF.configure_ipv4` and `VIF.configure_ipv6`: records the configuration the guest's
    /// own tools should apply (mode, the address as the one element of `ipv*_addresses`, the
    /// gateway). Drover's hosts do not apply it inside the guest.
    pub(crate) fn vif_configure_ip(
        &self,
        r: &str,
        ipv6: bool,
        mode: &str,
        address: &str,
        gateway: &str,
    ) -> Result<()> {
        self.get("VIF", r)?;
        check_ip_configuration(ipv6, mode, address, gateway)?;
        let family = if ipv6 { "ipv6" } else { "ipv4" };
        let addresses = if address.is_empty() {
            Value::empty_set()
        } else {
            Value::Set(vec![Value::str(address)])
        };
        self.write(|t| {
            t.must("VIF", r)?;
            for (field, value) in [
                ("configuration_mode", Value::str(mode)),
                ("addresses", addresses.clone()),
                ("gateway", Value::str(gateway)),
            ] {
                let field = format!("{family}_{field}");
                if *t.must("VIF", r)?.get(&field) != value {
                    t.set("VIF", r, &field, value)?;
                }
            }
            Ok(())
        })
    }

    /// A change of `VIF.other_config` through the generic setters; the reserved address stays
    /// as the engine set it.
    pub(crate) fn vif_other_config_change(&self, r: &str, change: &FieldChange) -> Result<()> {
        self.write(|t| {
            let kept = t
                .must("VIF", r)?
                .get("other_config")
                .map_get(RESERVED_IP)
                .cloned();
            change.apply(t, "VIF", r, "other_config")?;
            t.update("VIF", r, "other_config", |m| {
                m.map_remove(&Value::str(RESERVED_IP));
                if let Some(ip) = kept {
                    m.map_insert(Value::str(RESERVED_IP), ip);
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_unicast_and_well_formed() {
        for _ in 0..100 {
            let m = random_mac();
            assert!(check_mac(&m).is_ok(), "{m}");
        }
        assert!(check_mac("02:00:00:00:00:01").is_ok());
        assert!(check_mac("AA:bb:cc:dd:ee:f0").is_ok());
        for bad in [
            "",
            "02:00:00:00:00",
            "02-00-00-00-00-01",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "zz:00:00:00:00:01",
            "002:00:00:00:00:1",
        ] {
            assert!(
                matches!(check_mac(bad), Err(CoreError::MacInvalid(m)) if m == bad),
                "{bad}"
            );
        }
    }
}
