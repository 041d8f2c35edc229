//! The config drive: what the original punches to a guest's reader (network configuration,
//! the minidisks to format and mount, transport files) as an ISO 9660 image labelled
//! `config-2` in a CD drive of the guest's VM.
//!
//! The image (a VDI with `other_config:config_drive=true`, made by the core) holds
//! `drover/network.env` (`NIC_COUNT`, then `NIC<i>_MAC`, `NIC<i>_IP`, `NIC<i>_PREFIX`,
//! `NIC<i>_GATEWAY` for each NIC with a static address, by virtual device number),
//! `drover/disks.env` (`DISK_COUNT`, then `DISK<i>_VDEV`, `DISK<i>_FORMAT`, `DISK<i>_MNT` for
//! each minidisk with a mount point), `openstack/latest/network_data.json` and
//! `meta_data.json` in OpenStack's config drive shapes, and `transportfiles/<name>`, a copy of
//! the file `VM.other_config:zvm_transportfiles` names. Its CD drive is a read-only VBD
//! (`other_config:zvm_config_drive=true`) at the first free position from 3.
//!
//! Each change rebuilds the image in place: a running guest's medium is ejected and inserted
//! again, so it can read the new one (it is not told to). A CD drive cannot be hot-plugged: a
//! guest that runs when its first drive is made gets it at its next start. A guest without a
//! drive gets none while there is nothing to say.

use std::net::Ipv4Addr;
use std::path::Path;

use drover_core::{Obj, Op, VbdAction};
use drover_model::Value;
use serde_json::{json, Value as Json};

use super::guest::is_on;
use super::nic::cidr_prefix;
use super::{core_error, Backend, NewVbd, VBD_POSITIONS};
use crate::error::{Module, ZvmError, ZvmResult};

/// The module config drive errors are raised by (the original's deploy).
const G: Module = Module::Guest;
/// The volume label guests look for.
const LABEL: &str = "config-2";
/// The VBD `other_config` key marking the config drive's CD drive.
const DRIVE: &str = "zvm_config_drive";
/// The lowest VBD position of the drive (the ones below are the first minidisks').
const FIRST_POSITION: u32 = 3;

/// Held while a config drive is rebuilt, so that a guest gets one drive.
static DRIVE_CHANGES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A NIC's static configuration, as the drive states it.
#[derive(Debug, Clone, PartialEq)]
struct NicConfig {
    vdev: String,
    mac: String,
    ip: String,
    prefix: Option<u8>,
    gateway: Option<String>,
    dns: Vec<String>,
}

/// A minidisk the guest formats and mounts.
#[derive(Debug, Clone, PartialEq)]
struct DiskConfig {
    vdev: String,
    format: String,
    mount: String,
}

/// `drover/network.env`.
fn network_env(nics: &[NicConfig]) -> String {
    let mut out = format!("NIC_COUNT={}\n", nics.len());
    for (i, n) in nics.iter().enumerate() {
        out.push_str(&format!("NIC{i}_MAC={}\nNIC{i}_IP={}\n", n.mac, n.ip));
        if let Some(p) = n.prefix {
            out.push_str(&format!("NIC{i}_PREFIX={p}\n"));
        }
        if let Some(g) = &n.gateway {
            out.push_str(&format!("NIC{i}_GATEWAY={g}\n"));
        }
    }
    out
}

/// `drover/disks.env`.
fn disks_env(disks: &[DiskConfig]) -> String {
    let mut out = format!("DISK_COUNT={}\n", disks.len());
    for (i, d) in disks.iter().enumerate() {
        out.push_str(&format!(
            "DISK{i}_VDEV={}\nDISK{i}_FORMAT={}\nDISK{i}_MNT={}\n",
            d.vdev, d.format, d.mount
        ));
    }
    out
}

/// The netmask of a prefix length.
fn netmask(prefix: u8) -> Ipv4Addr {
    match prefix {
        0 => Ipv4Addr::UNSPECIFIED,
        p => Ipv4Addr::from(u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

/// `openstack/latest/network_data.json`.
fn network_data(nics: &[NicConfig]) -> Json {
    let links: Vec<Json> = nics
        .iter()
        .map(|n| json!({"id": format!("nic{}", n.vdev), "type": "phy", "ethernet_mac_address": n.mac}))
        .collect();
    let networks: Vec<Json> = nics
        .iter()
        .map(|n| {
            let routes: Vec<Json> = n
                .gateway
                .iter()
                .map(|g| json!({"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": g}))
                .collect();
            json!({
                "id": format!("network{}", n.vdev),
                "type": "ipv4",
                "link": format!("nic{}", n.vdev),
                "ip_address": n.ip,
                "netmask": netmask(n.prefix.unwrap_or(32)).to_string(),
                "routes": routes,
            })
        })
        .collect();
    let mut dns: Vec<&String> = Vec::new();
    for d in nics.iter().flat_map(|n| &n.dns) {
        if !dns.contains(&d) {
            dns.push(d);
        }
    }
    let services: Vec<Json> = dns
        .iter()
        .map(|d| json!({"type": "dns", "address": d}))
        .collect();
    json!({"links": links, "networks": networks, "services": services})
}

impl Backend {
    /// Rebuilds the config drive of VM `vm` from the inventory, making it (and its CD drive)
    /// when there is something to say.
    pub(super) async fn refresh_config_drive(&self, vm: &str) -> ZvmResult<()> {
        let _held = DRIVE_CHANGES.lock().await;
        let obj = self.obj(G, "VM", vm)?;
        let (files, says) = self.drive_files(&obj).await?;
        let drive = self.engine.read(|db| {
            obj.refs("VBDs")
                .iter()
                .filter_map(|r| db.get("VBD", r))
                .find(|b| b.other(DRIVE) == Some("true"))
                .cloned()
        });
        let name = format!("{} config drive", obj.str("name_label").to_uppercase());
        let Some(vbd) = drive else {
            if !says {
                return Ok(());
            }
            let sr = self.drive_sr(&obj, None)?;
            let position = self.drive_position(&obj)?;
            let vdi = self.make_drive(&sr, &name, files, None).await?;
            if let Err(e) = self.add_drive(vm, &vdi, position).await {
                let _ = self.destroy(G, "VDI", &vdi).await;
                return Err(e);
            }
            return Ok(());
        };
        let current = self.engine.read(|db| {
            (!vbd.bool("empty"))
                .then(|| db.get("VDI", vbd.str("VDI")))
                .flatten()
                .cloned()
        });
        let sr = self.drive_sr(&obj, current.as_deref())?;
        let replace = current.as_ref().map(|v| v.r.to_string());
        if is_on(&obj) && !vbd.bool("currently_attached") {
            // A drive made while the guest ran: the guest has no such device to change media
            // in, so the record is made again with the new medium for its next start.
            let position: u32 = vbd.str("userdevice").parse().unwrap_or(FIRST_POSITION);
            self.destroy(G, "VBD", &vbd.r).await?;
            let vdi = match self.make_drive(&sr, &name, files, replace.as_deref()).await {
                Ok(vdi) => vdi,
                Err(e) => {
                    if let Some(old) = &replace {
                        let _ = self.add_drive(vm, old, position).await;
                    }
                    return Err(e);
                }
            };
            return self.add_drive(vm, &vdi, position).await;
        }
        let vbd = vbd.r.to_string();
        if replace.is_some() {
            self.op(
                G,
                Op::Vbd {
                    vbd: vbd.clone(),
                    action: VbdAction::Eject,
                },
            )
            .await?;
        }
        match self.make_drive(&sr, &name, files, replace.as_deref()).await {
            Ok(vdi) => {
                self.op(
                    G,
                    Op::Vbd {
                        vbd,
                        action: VbdAction::Insert { vdi },
                    },
                )
                .await?;
                Ok(())
            }
            Err(e) => {
                if let Some(old) = replace {
                    let back = VbdAction::Insert { vdi: old };
                    let _ = self.op(G, Op::Vbd { vbd, action: back }).await;
                }
                Err(e)
            }
        }
    }

    /// The files of a guest's config drive, and whether they say anything of the guest's own
    /// (a static address, a disk to mount, a transport file).
    async fn drive_files(&self, vm: &Obj) -> ZvmResult<(Vec<(String, Vec<u8>)>, bool)> {
        let userid = vm.str("name_label").to_uppercase();
        let nics: Vec<NicConfig> = self
            .nic_list(vm)
            .into_iter()
            .filter_map(|n| {
                let vif = self.engine.get("VIF", &n.info.vif).ok()?;
                let ip = vif.other("zvm_ip")?.to_string();
                Some(NicConfig {
                    vdev: n.info.vdev,
                    mac: n.info.mac,
                    ip,
                    prefix: vif.other("zvm_cidr").and_then(cidr_prefix),
                    gateway: vif.other("zvm_gateway").map(String::from),
                    dns: vif
                        .other("zvm_dns")
                        .unwrap_or_default()
                        .split(',')
                        .filter(|d| !d.is_empty())
                        .map(String::from)
                        .collect(),
                })
            })
            .collect();
        let disks: Vec<DiskConfig> = self
            .minidisks(vm)
            .into_iter()
            .filter_map(|d| {
                let vdi = self.engine.get("VDI", &d.vdi).ok()?;
                Some(DiskConfig {
                    mount: vdi.other("zvm_mntdir")?.to_string(),
                    format: vdi.other("zvm_format").unwrap_or("none").to_string(),
                    vdev: d.vdev,
                })
            })
            .collect();
        let hostname = vm
            .other("zvm_hostname")
            .map(String::from)
            .unwrap_or_else(|| userid.to_lowercase());
        let meta = json!({"uuid": vm.uuid(), "name": userid, "hostname": hostname});
        let mut files = vec![
            (
                "drover/network.env".to_string(),
                network_env(&nics).into_bytes(),
            ),
            (
                "drover/disks.env".to_string(),
                disks_env(&disks).into_bytes(),
            ),
            (
                "openstack/latest/network_data.json".to_string(),
                network_data(&nics).to_string().into_bytes(),
            ),
            (
                "openstack/latest/meta_data.json".to_string(),
                meta.to_string().into_bytes(),
            ),
        ];
        let mut says = !nics.is_empty() || !disks.is_empty();
        if let Some(path) = vm.other("zvm_transportfiles").filter(|p| !p.is_empty()) {
            let failed = |why: String| ZvmError::Failed {
                module: G,
                rs: 4,
                msg: format!(
                    "Failed to deploy image to userid: '{userid}', copy configure drive failed: \
                     {why}"
                ),
            };
            let base = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| failed(format!("{path} names no file")))?;
            let data = tokio::fs::read(path)
                .await
                .map_err(|e| failed(format!("{path}: {e}")))?;
            files.push((format!("transportfiles/{base}"), data));
            says = true;
        }
        Ok((files, says))
    }

    /// The SR of a guest's config drive: its current image's, else its first minidisk's, else
    /// the default disk pool's.
    fn drive_sr(&self, vm: &Obj, current: Option<&Obj>) -> ZvmResult<String> {
        if let Some(vdi) = current {
            return Ok(vdi.str("SR").to_string());
        }
        let disk_sr = self.minidisks(vm).into_iter().find_map(|d| {
            self.engine
                .get("VDI", &d.vdi)
                .ok()
                .map(|v| v.str("SR").to_string())
        });
        match disk_sr {
            Some(sr) => Ok(sr),
            None => Ok(self.pool(None)?.sr.r.to_string()),
        }
    }

    /// The first VBD position from [`FIRST_POSITION`] the VM does not use.
    fn drive_position(&self, vm: &Obj) -> ZvmResult<u32> {
        self.free_device_position(vm, "VBD", FIRST_POSITION..VBD_POSITIONS)
            .ok_or_else(|| {
                ZvmError::internal(G, "the guest has no free position for its config drive")
            })
    }

    /// The config drive image: a new VDI, or new contents for `replace`.
    async fn make_drive(
        &self,
        sr: &str,
        name: &str,
        files: Vec<(String, Vec<u8>)>,
        replace: Option<&str>,
    ) -> ZvmResult<String> {
        self.engine
            .vdi_from_files(&self.caller, sr, name, LABEL, files, replace)
            .await
            .map(|r| r.to_string())
            .map_err(|e| core_error(G, e))
    }

    /// The read-only CD drive holding the config drive `vdi`.
    async fn add_drive(&self, vm: &str, vdi: &str, position: u32) -> ZvmResult<()> {
        let drive = NewVbd {
            vm,
            vdi,
            userdevice: &position.to_string(),
            bootable: false,
            cd: true,
            read_only: true,
            other_config: Value::string_map([(DRIVE, "true")]),
        };
        self.create_vbd(G, drive).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configured NIC whose MAC ends with its vdev's last digits.
    fn nic(vdev: &str, ip: &str, prefix: Option<u8>, gateway: Option<&str>) -> NicConfig {
        NicConfig {
            vdev: vdev.into(),
            mac: format!("02:00:00:12:34:{}", &vdev[2..]),
            ip: ip.into(),
            prefix,
            gateway: gateway.map(String::from),
            dns: vec!["9.0.2.1".into()],
        }
    }

    #[test]
    fn network_env_names_each_configured_nic() {
        let nics = [
            nic("1000", "192.168.95.10", Some(24), Some("192.168.95.1")),
            nic("1003", "10.1.0.5", None, None),
        ];
        assert_eq!(
            network_env(&nics),
            "NIC_COUNT=2\n\
             NIC0_MAC=02:00:00:12:34:00\nNIC0_IP=192.168.95.10\nNIC0_PREFIX=24\n\
             NIC0_GATEWAY=192.168.95.1\n\
             NIC1_MAC=02:00:00:12:34:03\nNIC1_IP=10.1.0.5\n"
        );
        assert_eq!(network_env(&[]), "NIC_COUNT=0\n");
        let data = network_data(&nics);
        assert_eq!(data["networks"][0]["netmask"], "255.255.255.0");
        assert_eq!(data["networks"][1]["netmask"], "255.255.255.255");
        assert_eq!(data["networks"][0]["routes"][0]["gateway"], "192.168.95.1");
        assert_eq!(
            data["services"],
            json!([{"type": "dns", "address": "9.0.2.1"}])
        );
    }

    #[test]
    fn disks_env_names_each_mounted_disk() {
        let disks = [DiskConfig {
            vdev: "0101".into(),
            format: "ext3".into(),
            mount: "/mnt/0101".into(),
        }];
        assert_eq!(
            disks_env(&disks),
            "DISK_COUNT=1\nDISK0_VDEV=0101\nDISK0_FORMAT=ext3\nDISK0_MNT=/mnt/0101\n"
        );
    }
}
