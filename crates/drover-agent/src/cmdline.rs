//! The QEMU command line of a guest.
//!
//! Every device has a fixed id and PCI slot derived from the guest's configuration, so a guest
//! started with a disk and one that got the same disk hot-plugged have the same machine — which is
//! what restoring a suspended guest needs.

use std::path::{Path, PathBuf};

use drover_host::{DiskSpec, GuestSpec, HostError, NicSpec};

use crate::Accel;

/// Port name of the guest agent's virtio-serial channel.
pub const AGENT_PORT: &str = "org.drover.guest.0";

/// First PCI slot of virtio disks; disk `n` is in slot `DISK_SLOT + n`.
const DISK_SLOT: u32 = 0x10;
/// Disk positions that have a PCI slot.
pub(crate) const MAX_DISKS: u32 = 15;
/// First PCI slot of virtio NICs; NIC `n` is in slot `NIC_SLOT + n`.
const NIC_SLOT: u32 = 0x8;
/// NIC positions that have a PCI slot.
pub(crate) const MAX_NICS: u32 = 8;

/// Files and sockets of one guest.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// Directory of what must survive a restart of the agent (spec, pidfile, console log).
    pub dir: PathBuf,
    /// Directory of the guest's sockets (short paths).
    pub run: PathBuf,
}

impl Paths {
    pub fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }
    pub fn disks(&self) -> PathBuf {
        self.dir.join("disks.json")
    }
    /// Where the guest stands in a live migration, while it is in one (see `migrate`).
    pub fn migration(&self) -> PathBuf {
        self.dir.join("migration")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn qemu_log(&self) -> PathBuf {
        self.dir.join("qemu.log")
    }
    pub fn qmp(&self) -> PathBuf {
        self.run.join("qmp.sock")
    }
    pub fn console(&self) -> PathBuf {
        self.run.join("console.sock")
    }
    pub fn vnc(&self) -> PathBuf {
        self.run.join("vnc.sock")
    }
    pub fn agent(&self) -> PathBuf {
        self.run.join("agent.sock")
    }
}

/// A disk resolved to its file.
#[derive(Debug, Clone)]
pub(crate) struct Disk {
    pub spec: DiskSpec,
    /// The image file; `None` for an empty CD drive.
    pub file: Option<(PathBuf, &'static str)>,
}

/// The position number of a device name (`0`, `1`, `xvdb`, `hdc`, ...).
pub(crate) fn position(device: &str) -> Result<u32, HostError> {
    if let Ok(n) = device.parse::<u32>() {
        return Ok(n);
    }
    let last = device.chars().last().filter(|c| c.is_ascii_lowercase());
    match last {
        Some(c) if device.len() >= 3 => Ok(c as u32 - 'a' as u32),
        _ => Err(HostError::Failed(format!("bad device position {device:?}"))),
    }
}

/// QEMU's id of the device at a position.
pub(crate) fn device_id(disk: &DiskSpec) -> Result<String, HostError> {
    let n = position(&disk.device)?;
    Ok(if disk.cdrom {
        format!("cd{n}")
    } else {
        format!("disk{n}")
    })
}

fn quote(s: &Path) -> String {
    s.to_string_lossy().replace(',', ",,")
}

/// `-blockdev` arguments of a disk's file; the top node is named `node`.
pub(crate) fn blockdev(node: &str, file: &Path, format: &str, read_only: bool) -> Vec<String> {
    let ro = if read_only { ",read-only=on" } else { "" };
    vec![
        "-blockdev".into(),
        format!(
            "driver=file,filename={},node-name={node}-f,discard=unmap{ro}",
            quote(file)
        ),
        "-blockdev".into(),
        format!("driver={format},file={node}-f,node-name={node}{ro}"),
    ]
}

/// The `device_add` arguments (QMP) of a disk plugged into slot `position`.
pub(crate) fn disk_device(id: &str, node: &str, n: u32, bootindex: Option<u32>) -> String {
    let boot = bootindex
        .map(|b| format!(",bootindex={b}"))
        .unwrap_or_default();
    format!(
        "virtio-blk-pci,id={id},drive={node},bus=pci.0,addr={:#x}{boot}",
        DISK_SLOT + n
    )
}

/// The position of a NIC; refused when it has no PCI slot or the MAC is not six hex pairs
/// (it goes into QEMU's option strings).
pub(crate) fn nic_position(nic: &NicSpec) -> Result<u32, HostError> {
    let n = nic
        .device
        .parse::<u32>()
        .map_err(|_| HostError::Failed(format!("bad NIC position {:?}", nic.device)))?;
    if n >= MAX_NICS {
        return Err(HostError::Failed(format!(
            "NIC position {n} is beyond the last ({})",
            MAX_NICS - 1
        )));
    }
    let pairs: Vec<&str> = nic.mac.split(':').collect();
    let mac_ok = pairs.len() == 6
        && pairs
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !mac_ok {
        return Err(HostError::Failed(format!("bad MAC {:?}", nic.mac)));
    }
    Ok(n)
}

/// QEMU's ids of the NIC at position `n`: its netdev and its device.
pub(crate) fn nic_ids(n: u32) -> (String, String) {
    (format!("net{n}"), format!("nic{n}"))
}

/// The tap device of the NIC at position `n` of the guest whose sockets are in `run` (stable
/// for the guest of one agent, so two agents sharing a namespace never clash): `dv`, 8 hex
/// digits of a hash, `.` and the position, at most 15 bytes.
pub(crate) fn tap_name(run: &Path, n: u32) -> String {
    let hash = run.to_string_lossy().bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    });
    format!("dv{hash:08x}.{n}")
}

/// The `-netdev` argument of the NIC at position `n`: a tap QEMU makes itself, no scripts.
pub(crate) fn nic_netdev(tap: &str, n: u32) -> String {
    format!(
        "tap,id={},ifname={tap},script=no,downscript=no",
        nic_ids(n).0
    )
}

/// The MTU of a NIC (Ethernet's 1500 when the spec leaves it at 0).
pub(crate) fn nic_mtu(nic: &NicSpec) -> u32 {
    if nic.mtu == 0 {
        1500
    } else {
        nic.mtu
    }
}

/// The device of the NIC at position `n` (as `-device` takes it and `device_add` splits it).
pub(crate) fn nic_device(nic: &NicSpec, n: u32, bootindex: Option<u32>) -> String {
    let (netdev, id) = nic_ids(n);
    let mtu = match nic_mtu(nic) {
        1500 => String::new(),
        mtu => format!(",host_mtu={mtu}"),
    };
    let boot = bootindex
        .map(|b| format!(",bootindex={b}"))
        .unwrap_or_default();
    format!(
        "virtio-net-pci,id={id},netdev={netdev},mac={},bus=pci.0,addr={:#x}{mtu}{boot}",
        nic.mac,
        NIC_SLOT + n
    )
}

/// Turns `driver,key=value,...` into `device_add` arguments.
pub(crate) fn device_args(dev: &str) -> serde_json::Value {
    let mut args = serde_json::Map::new();
    for kv in dev.split(',') {
        match kv.split_once('=') {
            Some((k, v)) => args.insert(k.into(), serde_json::Value::String(v.into())),
            None => args.insert("driver".into(), serde_json::Value::String(kv.into())),
        };
    }
    serde_json::Value::Object(args)
}

/// The most virtual CPUs a guest may have.
pub(crate) fn max_vcpus(spec: &GuestSpec) -> u32 {
    spec.vcpus_max.max(spec.vcpus).max(1)
}

/// QEMU's id of virtual CPU `k` (the first, `0`, is built in).
pub(crate) fn cpu_id(k: u32) -> String {
    format!("cpu{k}")
}

/// The `-device` argument of virtual CPU `k`.
pub(crate) fn cpu_device(k: u32) -> String {
    format!(
        "{CPU_TYPE},id={},socket-id=0,core-id={k},thread-id=0",
        cpu_id(k)
    )
}

/// QEMU's CPU model of guests (its default for the `pc` machine).
pub(crate) const CPU_TYPE: &str = "qemu64-x86_64-cpu";

/// IDE position of CD drive number `k` (the first is the secondary master).
fn cd_slot(k: usize) -> Result<(&'static str, u32), HostError> {
    [("ide.1", 0), ("ide.1", 1), ("ide.0", 1)]
        .get(k)
        .copied()
        .ok_or_else(|| HostError::Failed("at most three CD drives".into()))
}

/// The full argument list (without the program) of a guest: waiting for its state
/// (`-incoming defer`) when `incoming`, with its CPUs stopped (`-S`) when `paused`.
pub(crate) fn build(
    spec: &GuestSpec,
    disks: &[Disk],
    paths: &Paths,
    accel: Accel,
    incoming: bool,
    paused: bool,
) -> Result<Vec<String>, HostError> {
    let mib = (spec.memory >> 20).max(16);
    let vcpus = spec.vcpus.max(1);
    let mut a: Vec<String> = vec![
        "-name".into(),
        format!("guest={},debug-threads=on", spec.uuid),
        "-machine".into(),
        "pc".into(),
        "-accel".into(),
        accel.qemu_arg().into(),
        "-m".into(),
        format!("{mib}M"),
        "-smp".into(),
        format!(
            "1,sockets=1,cores={max},threads=1,maxcpus={max}",
            max = max_vcpus(spec)
        ),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-vga".into(),
        "std".into(),
        "-vnc".into(),
        format!("unix:{}", paths.vnc().display()),
        "-chardev".into(),
        format!(
            "socket,id=qmp,path={},server=on,wait=off",
            quote(&paths.qmp())
        ),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
        "-chardev".into(),
        format!(
            "socket,id=serial0,path={},server=on,wait=off,logfile={},logappend=on",
            quote(&paths.console()),
            quote(&paths.console_log())
        ),
        "-serial".into(),
        "chardev:serial0".into(),
        "-device".into(),
        "virtio-serial-pci,id=vser0,bus=pci.0,addr=0x5".into(),
        "-chardev".into(),
        format!(
            "socket,id=agent0,path={},server=on,wait=off",
            quote(&paths.agent())
        ),
        "-device".into(),
        format!("virtserialport,bus=vser0.0,chardev=agent0,name={AGENT_PORT},id=agent0port"),
        "-device".into(),
        "virtio-balloon-pci,id=balloon0,bus=pci.0,addr=0x6".into(),
        "-pidfile".into(),
        paths.pidfile().to_string_lossy().into_owned(),
    ];
    // CPUs beyond the first are devices, as hot-plugged ones are: a guest whose count changed
    // while it ran is restored onto the same machine.
    for k in 1..vcpus.min(max_vcpus(spec)) {
        a.extend(["-device".into(), cpu_device(k)]);
    }
    if uuid::Uuid::parse_str(&spec.uuid).is_ok() {
        a.extend(["-uuid".into(), spec.uuid.clone()]);
    }
    let direct = !spec.kernel.is_empty();
    if direct {
        a.extend(["-kernel".into(), spec.kernel.clone()]);
        if !spec.ramdisk.is_empty() {
            a.extend(["-initrd".into(), spec.ramdisk.clone()]);
        }
        a.extend(["-append".into(), spec.args.clone()]);
    }
    // Boot order by device class: c = first disk, d = first CD drive, n = network.
    let order = if spec.boot_order.is_empty() {
        "cd"
    } else {
        &spec.boot_order
    };
    let boot_index = |class: char| (!direct).then(|| order.find(class).map(|i| i as u32 + 1));
    let mut first_disk = true;
    let mut first_cd = true;
    let mut cds = 0;
    for d in disks {
        let id = device_id(&d.spec)?;
        let n = position(&d.spec.device)?;
        if d.spec.cdrom {
            let (bus, unit) = cd_slot(cds)?;
            cds += 1;
            let boot = if first_cd {
                boot_index('d').flatten()
            } else {
                None
            };
            first_cd = false;
            let boot = boot.map(|b| format!(",bootindex={b}")).unwrap_or_default();
            match &d.file {
                Some((file, format)) => {
                    a.extend(blockdev(&id, file, format, true));
                    a.extend([
                        "-device".into(),
                        format!("ide-cd,id={id},drive={id},bus={bus},unit={unit}{boot}"),
                    ]);
                }
                None => a.extend([
                    "-device".into(),
                    format!("ide-cd,id={id},bus={bus},unit={unit}{boot}"),
                ]),
            }
            continue;
        }
        if n >= MAX_DISKS {
            return Err(HostError::Failed(format!(
                "disk position {n} is beyond the last ({})",
                MAX_DISKS - 1
            )));
        }
        let Some((file, format)) = &d.file else {
            continue;
        };
        let boot = if first_disk {
            boot_index('c').flatten()
        } else {
            None
        };
        first_disk = false;
        a.extend(blockdev(&format!("{id}-0"), file, format, d.spec.read_only));
        a.extend([
            "-device".into(),
            disk_device(&id, &format!("{id}-0"), n, boot),
        ]);
    }
    let mut first_nic = true;
    for nic in &spec.nics {
        let n = nic_position(nic)?;
        let boot = if first_nic {
            boot_index('n').flatten()
        } else {
            None
        };
        first_nic = false;
        a.extend([
            "-netdev".into(),
            nic_netdev(&tap_name(&paths.run, n), n),
            "-device".into(),
            nic_device(nic, n, boot),
        ]);
    }
    if incoming {
        a.extend(["-incoming".into(), "defer".into()]);
    }
    if paused {
        a.push("-S".into());
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Paths {
        Paths {
            dir: "/d".into(),
            run: "/r".into(),
        }
    }

    #[test]
    fn device_positions() {
        assert_eq!(position("0").unwrap(), 0);
        assert_eq!(position("xvdb").unwrap(), 1);
        assert_eq!(position("hdc").unwrap(), 2);
        assert!(position("x").is_err());
    }

    #[test]
    fn direct_boot_with_a_disk_and_an_empty_cd() {
        let spec = GuestSpec {
            uuid: "u".into(),
            vcpus: 2,
            memory: 96 << 20,
            kernel: "/k".into(),
            ramdisk: "/i".into(),
            args: "console=ttyS0".into(),
            ..GuestSpec::default()
        };
        let disks = vec![
            Disk {
                spec: DiskSpec {
                    device: "1".into(),
                    image: "a.qcow2".into(),
                    sr: "s".into(),
                    ..DiskSpec::default()
                },
                file: Some(("/sr/a.qcow2".into(), "qcow2")),
            },
            Disk {
                spec: DiskSpec {
                    device: "3".into(),
                    cdrom: true,
                    ..DiskSpec::default()
                },
                file: None,
            },
        ];
        let a = build(&spec, &disks, &paths(), Accel::Tcg, false, true).unwrap();
        let s = a.join(" ");
        assert!(
            s.contains("-kernel /k -initrd /i -append console=ttyS0"),
            "{s}"
        );
        assert!(
            s.contains("-m 96M -smp 1,sockets=1,cores=2,threads=1,maxcpus=2"),
            "{s}"
        );
        assert!(
            s.contains("-device qemu64-x86_64-cpu,id=cpu1,socket-id=0,core-id=1,thread-id=0"),
            "{s}"
        );
        assert!(
            s.contains("virtio-blk-pci,id=disk1,drive=disk1-0,bus=pci.0,addr=0x11"),
            "{s}"
        );
        assert!(s.contains("ide-cd,id=cd3,bus=ide.1,unit=0"), "{s}");
        assert!(!s.contains("bootindex"), "{s}");
        assert!(s.ends_with("-S"));
    }

    #[test]
    fn boot_order_becomes_boot_indexes() {
        let spec = GuestSpec {
            uuid: "u".into(),
            memory: 64 << 20,
            boot_policy: "BIOS order".into(),
            boot_order: "dc".into(),
            ..GuestSpec::default()
        };
        let disks = vec![
            Disk {
                spec: DiskSpec {
                    device: "0".into(),
                    ..DiskSpec::default()
                },
                file: Some(("/sr/a".into(), "raw")),
            },
            Disk {
                spec: DiskSpec {
                    device: "3".into(),
                    cdrom: true,
                    ..DiskSpec::default()
                },
                file: Some(("/iso/x.iso".into(), "raw")),
            },
        ];
        let s = build(&spec, &disks, &paths(), Accel::Tcg, true, true)
            .unwrap()
            .join(" ");
        assert!(s.contains("addr=0x10,bootindex=2"), "{s}");
        assert!(
            s.contains("ide-cd,id=cd3,drive=cd3,bus=ide.1,unit=0,bootindex=1"),
            "{s}"
        );
        assert!(s.ends_with("-incoming defer -S"), "{s}");
        // A live migration's destination: QEMU starts the guest itself once its state is in.
        let s = build(&spec, &disks, &paths(), Accel::Tcg, true, false)
            .unwrap()
            .join(" ");
        assert!(s.ends_with("-incoming defer"), "{s}");
    }

    fn nic(device: &str, mac: &str, mtu: u32) -> NicSpec {
        NicSpec {
            device: device.into(),
            mac: mac.into(),
            bridge: "br0".into(),
            mtu,
        }
    }

    #[test]
    fn nics_get_taps_fixed_slots_and_the_network_boot_index() {
        let spec = GuestSpec {
            uuid: "u".into(),
            memory: 64 << 20,
            boot_order: "nc".into(),
            nics: vec![
                nic("0", "52:54:00:00:00:01", 1500),
                nic("3", "52:54:00:00:00:02", 9000),
            ],
            ..GuestSpec::default()
        };
        let p = paths();
        let tap0 = tap_name(&p.run, 0);
        assert!(tap0.starts_with("dv") && tap0.ends_with(".0") && tap0.len() <= 15);
        assert_eq!(tap0, tap_name(&p.run, 0), "stable");
        assert_ne!(tap0, tap_name(Path::new("/r2"), 0), "per guest");
        let s = build(&spec, &[], &p, Accel::Tcg, false, false)
            .unwrap()
            .join(" ");
        assert!(
            s.contains(&format!(
                "-netdev tap,id=net0,ifname={tap0},script=no,downscript=no -device \
                 virtio-net-pci,id=nic0,netdev=net0,mac=52:54:00:00:00:01,bus=pci.0,addr=0x8,\
                 bootindex=1"
            )),
            "{s}"
        );
        assert!(
            s.contains(&format!("ifname={},script=no", tap_name(&p.run, 3))),
            "{s}"
        );
        assert!(
            s.contains(
                "id=nic3,netdev=net3,mac=52:54:00:00:00:02,bus=pci.0,addr=0xb,host_mtu=9000"
            ),
            "{s}"
        );
        assert!(!s.contains("vhost"), "{s}");

        // Direct boot has no boot indexes; a position without a slot or a malformed MAC is refused.
        let mut direct = spec.clone();
        direct.kernel = "/k".into();
        let s = build(&direct, &[], &p, Accel::Tcg, false, false)
            .unwrap()
            .join(" ");
        assert!(!s.contains("bootindex"), "{s}");
        let mut far = spec.clone();
        far.nics.push(nic("8", "52:54:00:00:00:03", 1500));
        assert!(build(&far, &[], &p, Accel::Tcg, false, false).is_err());
        let mut odd = spec;
        odd.nics.push(nic("4", "52:54:00:00:00:03,romfile=x", 1500));
        assert!(build(&odd, &[], &p, Accel::Tcg, false, false).is_err());
    }

    #[test]
    fn device_strings_become_device_add_arguments() {
        let args = device_args(&nic_device(&nic("2", "52:54:00:00:00:09", 1500), 2, None));
        assert_eq!(
            args,
            serde_json::json!({
                "driver": "virtio-net-pci", "id": "nic2", "netdev": "net2",
                "mac": "52:54:00:00:00:09", "bus": "pci.0", "addr": "0xa",
            })
        );
    }
}
