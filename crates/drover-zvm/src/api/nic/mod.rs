//! NICs: a z/VM NIC of a guest is a VIF of its VM.
//!
//! - Its virtual device number is `VIF.other_config:zvm_vdev` (four lower-case hex digits, as
//!   the original answers them); a NIC occupies `vdev` to `vdev+2`, like a QDIO adapter's
//!   three devices. A guest's first NIC is `1000`, each further one three above the highest.
//!   Its identifier (the `port` of the original's switch table) is `zvm_nic_id`. A VIF made
//!   through XenAPI has no `zvm_vdev`: it shows as `1000 + 3 × its device position` when that
//!   is free, else three above the highest other NIC.
//! - A NIC is coupled when its VIF is on a vswitch's network (see `vswitch.rs`); `zvm_vswitch`
//!   and `zvm_vlan` record the couple. The core keeps every VIF of a VM that may start on a
//!   network, so an uncoupled NIC sits on the internal network `zvm-uncoupled`
//!   (`other_config:zvm_internal=true`: no uplink, no DHCP, never listed as a vswitch), made on
//!   first use: the guest sees a NIC that reaches no one, as on z/VM.
//! - `active` makes a change on the running guest as well: a NIC is hot-plugged, hot-unplugged
//!   or plugged when coupled. Without it a new NIC of a running guest appears at its next
//!   start. Drover has one record of a NIC, not a directory entry plus a live device, so
//!   coupling moves a plugged NIC at once whatever `active` says, and a NIC being deleted is
//!   unplugged first.
//! - Grants are checked on active couples only (`409/20/409/10`): the documented flow couples
//!   before it grants. Nothing checks them again when a guest starts or a grant is revoked.
//! - A guest has at most 7 NICs (the core's VIF device positions 0 to 6). OSA devices are not
//!   modelled: none is ever free to dedicate.
//! - `guest_create_network_interface` records a NIC's static IPv4 configuration on its VIF
//!   (`zvm_ip`, `zvm_cidr`, `zvm_gateway`, `zvm_dns`, and `VIF.configure_ipv4`) and rebuilds the
//!   guest's config drive (`cfgdrive.rs`), which is how the guest learns it.
//!
//! `interface.rs` holds the network interface calls (static configuration), `stats.rs` the NIC
//! table and the NICs' counters.

mod interface;
mod stats;

use std::sync::Arc;

use drover_core::{valid_mac, NetOp, Obj, Op};
use drover_model::Value;
use serde_json::{json, Value as Json};

use super::args::{opt, req, Args, Param};
use super::disk::parse_vdev;
use super::guest::{is_on, with};
use super::vswitch::{grants, vswitch_name_of};
use super::{Backend, Call, Dispatched};
use crate::error::{Module, ZvmError, ZvmResult};
pub(super) use interface::cidr_prefix;

/// The module NIC errors are raised by.
const N: Module = Module::Network;
/// The first NIC's virtual device number (the original's `default_nic_vdev`).
const FIRST_VDEV: u32 = 0x1000;
/// Device numbers a NIC occupies.
const NIC_DEVICES: u32 = 3;
/// VIF device positions a VM has (the core's `0` to `6`).
const VIF_POSITIONS: u32 = 7;
/// The name of the network of NICs coupled to no vswitch.
const UNCOUPLED: &str = "zvm-uncoupled";

/// Held while NICs and vswitches change, so that a guest's virtual device numbers and the
/// network of uncoupled NICs are chosen once.
pub(super) static NET_CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the NIC calls.
pub(super) async fn dispatch<'a>(b: &Backend, call: Call<'a>) -> Dispatched<'a> {
    Ok(match call.api {
        "guest_create_nic" => {
            const P: &[Param] = &[
                req("userid"),
                opt("vdev"),
                opt("nic_id"),
                opt("mac_addr"),
                opt("active"),
            ];
            with(call, "guest_create_nic", P, |a| async move {
                let userid = a.userid("userid")?;
                let want = NicRequest {
                    vdev: a.opt_str("vdev")?,
                    nic_id: a.opt_str("nic_id")?,
                    mac: a.opt_str("mac_addr")?,
                };
                let active = a.bool("active")?;
                let _held = NET_CHANGES.lock().await;
                let (vdev, _) = b.create_nic(&userid, &want, active).await?;
                Ok(json!(vdev))
            })
            .await
        }
        "guest_delete_nic" => {
            const P: &[Param] = &[req("userid"), req("vdev"), opt("active")];
            with(call, "guest_delete_nic", P, |a| async move {
                let (userid, vdev, active) = nic_call(&a, "vdev")?;
                let vm = b.guest(&userid)?;
                let configured = {
                    let _held = NET_CHANGES.lock().await;
                    b.delete_nic(&userid, &vdev, active).await?
                };
                if configured {
                    b.refresh_config_drive(&vm.r).await?;
                }
                Ok(Json::Null)
            })
            .await
        }
        "guest_nic_couple_to_vswitch" => {
            const P: &[Param] = &[
                req("userid"),
                req("nic_vdev"),
                req("vswitch_name"),
                opt("active"),
                ("vlan_id", Some(|| json!(-1))),
            ];
            with(call, "guest_nic_couple_to_vswitch", P, |a| async move {
                let userid = a.userid("userid")?;
                let vdev = a.str("nic_vdev")?;
                let vswitch = a.str("vswitch_name")?;
                let active = a.bool("active")?;
                let vlan = match a.get("vlan_id") {
                    Json::Null => -1,
                    _ => a.int("vlan_id")?,
                };
                let _held = NET_CHANGES.lock().await;
                b.couple(&userid, &vdev, &vswitch, active, vlan).await?;
                Ok(Json::Null)
            })
            .await
        }
        "guest_nic_uncouple_from_vswitch" => {
            const P: &[Param] = &[req("userid"), req("nic_vdev"), opt("active")];
            with(call, "guest_nic_uncouple_from_vswitch", P, |a| async move {
                let (userid, vdev, active) = nic_call(&a, "nic_vdev")?;
                let _held = NET_CHANGES.lock().await;
                b.uncouple(&userid, &vdev, active).await?;
                Ok(Json::Null)
            })
            .await
        }
        "guest_create_network_interface" => {
            const P: &[Param] = &[
                req("userid"),
                req("os_version"),
                req("guest_networks"),
                opt("active"),
            ];
            with(call, "guest_create_network_interface", P, |a| {
                b.create_network_interface(a)
            })
            .await
        }
        "guest_delete_network_interface" => {
            const P: &[Param] = &[req("userid"), req("os_version"), req("vdev"), opt("active")];
            with(call, "guest_delete_network_interface", P, |a| {
                b.delete_network_interface(a)
            })
            .await
        }
        "guests_get_nic_info" => {
            const P: &[Param] = &[opt("userid"), opt("nic_id"), opt("vswitch")];
            with(call, "guests_get_nic_info", P, |a| async move {
                let userid = a.opt_str("userid")?;
                let nic_id = a.opt_str("nic_id")?;
                let vswitch = a.opt_str("vswitch")?;
                Ok(b.nic_table(userid.as_deref(), nic_id.as_deref(), vswitch.as_deref()))
            })
            .await
        }
        "guest_inspect_vnics" => {
            with(
                call,
                "guest_inspect_vnics",
                &[req("userid_list")],
                |a| async move { b.inspect_vnics(&a) },
            )
            .await
        }
        _ => return Err(call),
    })
}

/// One z/VM NIC of a guest.
pub(super) struct NicInfo {
    /// Its virtual device number, `1000` (lower-case hex).
    pub vdev: String,
    /// The VIF.
    pub vif: String,
    /// Its MAC address (lower-case).
    pub mac: String,
    /// The vswitch it is coupled to (upper-case), if any.
    pub vswitch: Option<String>,
    /// Whether it is coupled to a vswitch.
    pub coupled: bool,
    /// Its IPv4 address: the static one given to the connector, else one the guest has.
    pub ip: Option<String>,
}

/// A NIC with what the NIC calls need besides [`NicInfo`].
pub(super) struct Nic {
    /// Its virtual device number.
    pub number: u32,
    /// What guests and the config drive see of it.
    pub info: NicInfo,
    /// Its identifier, if one was given.
    pub nic_id: Option<String>,
    /// The network its VIF is on.
    pub network: String,
    /// Whether it is plugged into the running guest.
    pub attached: bool,
}

/// What `guest_create_nic` is asked for.
struct NicRequest {
    vdev: Option<String>,
    nic_id: Option<String>,
    mac: Option<String>,
}

/// The arguments of a call on one NIC: the guest, the NIC's vdev (argument `vdev`), `active`.
fn nic_call(a: &Args, vdev: &str) -> ZvmResult<(String, String, bool)> {
    Ok((a.userid("userid")?, a.str(vdev)?, a.bool("active")?))
}

/// Whether NICs at `a` and `b` share a device number.
fn overlaps(a: u32, b: u32) -> bool {
    a.abs_diff(b) < NIC_DEVICES
}

/// `Guest '<userid>' is not in active status.`, raised by the network module.
fn not_active(userid: &str) -> ZvmError {
    ZvmError::Conflict {
        module: N,
        rs: 1,
        msg: format!("Guest '{userid}' is not in active status."),
    }
}

/// The virtual device number of a new NIC: `given` if no NIC overlaps it, else the first NIC's
/// or three above the highest.
fn next_vdev(userid: &str, nics: &[Nic], given: Option<&str>) -> ZvmResult<u32> {
    let number = match given {
        Some(v) => {
            let n = parse_vdev(v).ok_or_else(|| {
                ZvmError::ArgFormat(format!("Virtual device number {v} is not valid"))
            })?;
            if nics.iter().any(|nic| overlaps(n, nic.number)) {
                return Err(ZvmError::Conflict {
                    module: N,
                    rs: 6,
                    msg: format!(
                        "Failed to create nic {v} for guest {userid}, error: The specified \
                         virtual device number {v} has already been used."
                    ),
                });
            }
            n
        }
        None => nics
            .iter()
            .map(|nic| nic.number + NIC_DEVICES)
            .max()
            .unwrap_or(FIRST_VDEV),
    };
    if number + NIC_DEVICES - 1 > 0xffff {
        return Err(ZvmError::ArgFormat(format!(
            "Virtual device number {number:x} is not valid"
        )));
    }
    Ok(number)
}

impl Backend {
    /// A guest's NICs, by virtual device number.
    pub(super) fn nics(&self, vm: &Obj) -> Vec<NicInfo> {
        self.nic_list(vm).into_iter().map(|n| n.info).collect()
    }

    /// The VIF of a guest whose MAC address (without `:`) ends with `tail`, ignoring case.
    pub(super) fn vif_by_mac_tail(&self, vm: &Obj, tail: &str) -> Option<String> {
        let tail = tail.replace(':', "").to_ascii_lowercase();
        if tail.is_empty() {
            return None;
        }
        self.nic_list(vm)
            .into_iter()
            .find(|n| n.info.mac.replace(':', "").ends_with(&tail))
            .map(|n| n.info.vif)
    }

    /// A guest's NICs with their details, by virtual device number.
    pub(super) fn nic_list(&self, vm: &Obj) -> Vec<Nic> {
        let vifs: Vec<(Arc<Obj>, Option<Arc<Obj>>)> = self.engine.read(|db| {
            vm.refs("VIFs")
                .iter()
                .filter_map(|r| db.get("VIF", r))
                .map(|v| (v.clone(), db.get("network", v.str("network")).cloned()))
                .collect()
        });
        let mut out = Vec::new();
        let mut unnumbered = Vec::new();
        for (vif, net) in vifs {
            match vif.other("zvm_vdev").and_then(parse_vdev) {
                Some(n) => out.push(nic(n, &vif, net.as_deref())),
                None => unnumbered.push((vif, net)),
            }
        }
        let position = |v: &Obj| v.str("device").parse::<u32>().unwrap_or(VIF_POSITIONS);
        unnumbered.sort_by_key(|(v, _)| position(v));
        for (vif, net) in unnumbered {
            let preferred = FIRST_VDEV + NIC_DEVICES * position(&vif);
            let number = if out.iter().any(|n| overlaps(n.number, preferred)) {
                out.iter()
                    .map(|n| n.number + NIC_DEVICES)
                    .max()
                    .unwrap_or(FIRST_VDEV)
            } else {
                preferred
            };
            out.push(nic(number, &vif, net.as_deref()));
        }
        out.sort_by_key(|n| n.number);
        out
    }

    /// The network of NICs coupled to no vswitch, made on first use. The caller holds
    /// [`NET_CHANGES`].
    async fn uncoupled_network(&self) -> ZvmResult<String> {
        let found = self.engine.read(|db| {
            db.all("network")
                .filter(|n| {
                    n.str("name_label") == UNCOUPLED && n.other("zvm_internal") == Some("true")
                })
                .map(|n| n.r.to_string())
                .min()
        });
        if let Some(r) = found {
            return Ok(r);
        }
        self.op_ref(
            N,
            Op::Create {
                class: "network".into(),
                fields: vec![
                    ("name_label".into(), Value::str(UNCOUPLED)),
                    (
                        "name_description".into(),
                        Value::str("NICs of z/VM guests coupled to no vswitch"),
                    ),
                    (
                        "other_config".into(),
                        Value::string_map([("zvm_internal", "true")]),
                    ),
                ],
            },
        )
        .await
    }

    /// Puts a VIF on the network of uncoupled NICs and forgets its couple. The caller holds
    /// [`NET_CHANGES`].
    pub(super) async fn uncouple_vif(&self, vif: &str) -> ZvmResult<()> {
        let network = self.uncoupled_network().await?;
        self.op(
            N,
            Op::Net(NetOp::VifMove {
                vif: vif.into(),
                network,
            }),
        )
        .await?;
        self.set_others(N, "VIF", vif, &[("zvm_vswitch", None), ("zvm_vlan", None)])
            .await
    }

    /// `guest_create_nic`: a VIF on the network of uncoupled NICs with its virtual device
    /// number, hot-plugged when `active`; answers the vdev and the VIF. The caller holds
    /// [`NET_CHANGES`].
    async fn create_nic(
        &self,
        userid: &str,
        want: &NicRequest,
        active: bool,
    ) -> ZvmResult<(String, String)> {
        let vm = self.guest(userid)?;
        if want.mac.as_deref().is_some_and(|m| !valid_mac(m)) {
            return Err(ZvmError::ArgFormat(
                "Invalid mac address, format should be xx:xx:xx:xx:xx:xx, and x is a \
                 hexadecimal digit"
                    .into(),
            ));
        }
        let number = next_vdev(userid, &self.nic_list(&vm), want.vdev.as_deref())?;
        let vdev = format!("{number:04x}");
        if active && !is_on(&vm) {
            return Err(not_active(userid));
        }
        let position = self
            .free_device_position(&vm, "VIF", 0..VIF_POSITIONS)
            .ok_or_else(|| ZvmError::Conflict {
                module: N,
                rs: 6,
                msg: format!(
                    "Failed to create nic {vdev} for guest {userid}, error: the guest has \
                     {VIF_POSITIONS} NICs, the most it can have"
                ),
            })?;
        let network = self.uncoupled_network().await?;
        let mut config = vec![("zvm_vdev", vdev.as_str())];
        if let Some(id) = &want.nic_id {
            config.push(("zvm_nic_id", id));
        }
        let vif = self
            .op_ref(
                N,
                Op::Create {
                    class: "VIF".into(),
                    fields: vec![
                        ("VM".into(), Value::str(&*vm.r)),
                        ("network".into(), Value::str(network)),
                        ("device".into(), Value::str(position.to_string())),
                        (
                            "MAC".into(),
                            Value::str(want.mac.as_deref().unwrap_or_default().to_lowercase()),
                        ),
                        ("other_config".into(), Value::string_map(config)),
                    ],
                },
            )
            .await?;
        if active {
            let plugged = self
                .op(N, Op::Net(NetOp::VifPlug { vif: vif.clone() }))
                .await;
            if let Err(e) = plugged {
                let _ = self.destroy(N, "VIF", &vif).await;
                return Err(e);
            }
        }
        Ok((vdev, vif))
    }

    /// `guest_delete_nic`: unplugs and destroys the NIC's VIF; an unknown vdev is no error.
    /// Answers whether the NIC had a static configuration (the config drive names it). The
    /// caller holds [`NET_CHANGES`].
    async fn delete_nic(&self, userid: &str, vdev: &str, active: bool) -> ZvmResult<bool> {
        let vm = self.guest(userid)?;
        if active && !is_on(&vm) {
            return Err(not_active(userid));
        }
        let number = parse_vdev(vdev).ok_or_else(|| {
            ZvmError::ArgFormat(format!("Virtual device number {vdev} is not valid"))
        })?;
        let Some(nic) = self.nic_list(&vm).into_iter().find(|n| n.number == number) else {
            return Ok(false);
        };
        let configured = self.obj(N, "VIF", &nic.info.vif)?.other("zvm_ip").is_some();
        if nic.attached {
            self.op(
                N,
                Op::Net(NetOp::VifUnplug {
                    vif: nic.info.vif.clone(),
                    force: false,
                }),
            )
            .await?;
        }
        self.destroy(N, "VIF", &nic.info.vif).await?;
        Ok(configured)
    }

    /// `guest_nic_couple_to_vswitch`: moves the NIC's VIF to the vswitch's network (live when
    /// plugged), plugging it when `active`. A NIC already on that vswitch is left as it is.
    /// The caller holds [`NET_CHANGES`].
    async fn couple(
        &self,
        userid: &str,
        vdev: &str,
        vswitch: &str,
        active: bool,
        vlan: i64,
    ) -> ZvmResult<()> {
        let vm = self.guest(userid)?;
        if !(-1..=4094).contains(&vlan) {
            return Err(ZvmError::ArgFormat(format!(
                "vlan_id {vlan} should be -1 (none) or 1 to 4094"
            )));
        }
        let nic = parse_vdev(vdev)
            .and_then(|n| self.nic_list(&vm).into_iter().find(|nic| nic.number == n))
            .ok_or_else(|| ZvmError::NotExist {
                module: N,
                what: format!("User {userid} with nic {vdev}"),
            })?;
        let net = self.vswitch(vswitch).ok_or_else(|| ZvmError::NotExist {
            module: N,
            what: format!("Vswitch {vswitch}"),
        })?;
        if nic.network == *net.r {
            return Ok(());
        }
        let name = vswitch_name_of(&net).unwrap_or_else(|| vswitch.to_uppercase());
        if active {
            if !is_on(&vm) {
                return Err(not_active(userid));
            }
            if !grants(&net).iter().any(|g| g == userid) {
                return Err(ZvmError::Conflict {
                    module: N,
                    rs: 10,
                    msg: format!(
                        "Failed to couple nic {vdev} of guest {userid} with vswitch {name}, \
                         error: {userid} is not authorized to couple to vswitch {name}"
                    ),
                });
            }
        }
        let vif = nic.info.vif;
        self.op(
            N,
            Op::Net(NetOp::VifMove {
                vif: vif.clone(),
                network: net.r.to_string(),
            }),
        )
        .await?;
        if active && !nic.attached {
            self.op(N, Op::Net(NetOp::VifPlug { vif: vif.clone() }))
                .await?;
        }
        let vlan = (vlan >= 0).then(|| vlan.to_string());
        self.set_others(
            N,
            "VIF",
            &vif,
            &[("zvm_vswitch", Some(&name)), ("zvm_vlan", vlan.as_deref())],
        )
        .await
    }

    /// `guest_nic_uncouple_from_vswitch`. The caller holds [`NET_CHANGES`].
    async fn uncouple(&self, userid: &str, vdev: &str, active: bool) -> ZvmResult<()> {
        let vm = self.guest(userid)?;
        if active && !is_on(&vm) {
            return Err(not_active(userid));
        }
        let nic = parse_vdev(vdev)
            .and_then(|n| self.nic_list(&vm).into_iter().find(|nic| nic.number == n))
            .ok_or_else(|| ZvmError::NotExist {
                module: N,
                what: format!("Guest device {vdev}"),
            })?;
        self.uncouple_vif(&nic.info.vif).await
    }
}

/// The NIC of a VIF numbered `number`, on network `net`.
fn nic(number: u32, vif: &Obj, net: Option<&Obj>) -> Nic {
    let vswitch = net.and_then(vswitch_name_of);
    let ip = vif.other("zvm_ip").map(String::from).or_else(|| {
        vif.get("ipv4_addresses")
            .as_set()
            .and_then(|s| s.first())
            .and_then(|a| a.as_str())
            .map(|a| a.split('/').next().unwrap_or(a).to_string())
    });
    Nic {
        number,
        info: NicInfo {
            vdev: format!("{number:04x}"),
            vif: vif.r.to_string(),
            mac: vif.str("MAC").to_ascii_lowercase(),
            coupled: vswitch.is_some(),
            vswitch,
            ip,
        },
        nic_id: vif.other("zvm_nic_id").map(String::from),
        network: vif.str("network").to_string(),
        attached: vif.bool("currently_attached"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_numbers_leave_three_devices_each() {
        assert!(overlaps(0x1000, 0x1002));
        assert!(overlaps(0x1002, 0x1000));
        assert!(!overlaps(0x1000, 0x1003));
        assert_eq!(next_vdev("U", &[], None).unwrap(), 0x1000);
        assert!(next_vdev("U", &[], Some("fffe")).is_err());
        assert!(next_vdev("U", &[], Some("12345")).is_err());
    }
}
