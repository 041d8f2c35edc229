//! A simulated host for scale tests and machines without QEMU.
//!
//! It models what a host does — guest states, memory accounting, whole new disks with thin clones
//! and full copies, storage capacity, network bridges with their uplinks, DHCP reservations and
//! guest NICs, bonds, interfaces and devices that are not Drover's, and the kernel's network
//! capabilities — and refuses what it does not model. Every operation can be given a
//! duration so that long-running behaviour (task progress, cancellation) is observable.
//!
//! Live migration moves no bytes: the simulated hosts of one process reach each other through
//! `LISTENERS`, where a destination's URI waits for the state of the guest sent to it. An SR
//! attached at an absolute path (a shared directory) has the same images on every simulated
//! host of the process that attaches it, as shared storage does.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{broadcast, Notify};

use crate::{
    BondSpec, ByteSource, ConsoleKind, DiskSpec, GuestEvent, GuestMetrics, GuestSpec, GuestState,
    HostDriver, HostError, HostInfo, HostMetrics, ImageFormat, ImageInfo, Ip6Config, IpConfig,
    MigrationStats, NetCapabilities, NetworkSpec, NicIo, NicSpec, PifCounters, PifInfo,
    StorageInfo, Stream, Uplink,
};

/// How the simulated host is sized.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Host name.
    pub hostname: String,
    /// Physical CPUs.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory: u64,
    /// Capacity of each storage repository, bytes.
    pub sr_capacity: u64,
    /// How long each guest or image operation takes.
    pub op_delay: Duration,
    /// Where the simulated disks are remembered across restarts, if anywhere.
    pub state_file: Option<PathBuf>,
    /// What the simulated kernel can do for networks.
    pub net: NetCapabilities,
    /// The host's network interfaces.
    pub pifs: Vec<PifInfo>,
    /// Names of other network devices the host has that Drover did not make.
    pub foreign_devices: Vec<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hostname: "sim-host".into(),
            cpus: 8,
            memory: 256 << 30,
            sr_capacity: 4 << 40,
            op_delay: Duration::ZERO,
            state_file: None,
            net: NetCapabilities {
                bridge: true,
                vlan_8021q: true,
                vlan_filtering: true,
                bonding: true,
                vxlan: true,
            },
            pifs: vec![PifInfo {
                device: "eth0".into(),
                mac: "02:00:00:00:00:01".into(),
                mtu: 1500,
                carrier: true,
                speed: 1000,
                duplex: true,
                driver: "sim".into(),
                pci_bus_path: "0000:00:03.0".into(),
                ipv4: vec!["127.0.0.1/8".into()],
                default_route: true,
                gateway: String::new(),
            }],
            foreign_devices: Vec::new(),
        }
    }
}

/// Memory the simulated hypervisor keeps for itself.
const HOST_OVERHEAD: u64 = 512 << 20;

struct Guest {
    state: GuestState,
    memory: u64,
    vcpus: u32,
    started: Instant,
    nics: HashMap<String, NicSpec>,
    stage: Stage,
    /// Set while a send is in progress; notified to cancel it.
    sending: Option<Arc<Notify>>,
}

/// Where a simulated guest stands in a live migration.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// An ordinary guest of this host.
    Settled,
    /// Waiting for its state at this URI.
    Incoming(String),
    /// Sent to another host, waiting to be released.
    Sent,
}

impl Guest {
    /// The guest's state in words, migration included.
    fn state_name(&self) -> &'static str {
        match self.stage {
            Stage::Incoming(_) => "incoming",
            Stage::Sent => "migrated",
            Stage::Settled if self.sending.is_some() => "migrating",
            Stage::Settled => state_name(self.state),
        }
    }

    /// Refuses ordinary operations on a guest that is not (or no longer) this host's.
    fn settled(&self, uuid: &str) -> Result<(), HostError> {
        if self.stage != Stage::Settled {
            return Err(HostError::BadState {
                uuid: uuid.into(),
                expected: "running",
                actual: self.state_name(),
            });
        }
        Ok(())
    }
}

/// A send in progress: it ends however its future ends, also when the caller stops waiting.
struct Sending<'a> {
    host: &'a SimHost,
    uuid: &'a str,
    cancel: Arc<Notify>,
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.host.state().guests.get_mut(self.uuid) {
            if g.sending
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &self.cancel))
            {
                g.sending = None;
            }
        }
    }
}

/// The URIs simulated destinations listen on, each with the state of the guest sent to it once
/// a send completes: the simulated network between the simulated hosts of one process.
static LISTENERS: Mutex<BTreeMap<String, Option<GuestState>>> = Mutex::new(BTreeMap::new());
/// Numbers the URIs, so that every receive gets its own.
static NEXT_URI: AtomicU64 = AtomicU64::new(1);

fn listeners() -> std::sync::MutexGuard<'static, BTreeMap<String, Option<GuestState>>> {
    LISTENERS.lock().unwrap_or_else(|e| e.into_inner())
}

struct Image {
    virtual_size: u64,
    physical: u64,
}

impl Image {
    fn info(&self, location: &str) -> ImageInfo {
        ImageInfo {
            location: location.into(),
            virtual_size: self.virtual_size,
            physical_utilisation: self.physical,
        }
    }
}

/// An SR's images; the SRs of one location (a shared directory) share them across the
/// simulated hosts of the process.
type Images = Arc<Mutex<HashMap<String, Image>>>;

/// A shared SR's images as the registry holds them: alive while some host has the SR.
type WeakImages = std::sync::Weak<Mutex<HashMap<String, Image>>>;

#[derive(Default)]
struct Sr {
    images: Images,
}

impl Sr {
    fn images(&self) -> std::sync::MutexGuard<'_, HashMap<String, Image>> {
        self.images.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The images of shared SRs by location: every simulated host that attaches a shared
/// directory (an absolute path) sees the same images, as real hosts do.
static SHARED_SRS: Mutex<BTreeMap<String, WeakImages>> = Mutex::new(BTreeMap::new());

/// The images at a shared location, made (with `seed`'s images) if no host has it.
fn shared_images(location: &str, seed: &Images) -> Images {
    let mut shared = SHARED_SRS.lock().unwrap_or_else(|e| e.into_inner());
    shared.retain(|_, w| w.strong_count() > 0);
    if let Some(images) = shared.get(location).and_then(std::sync::Weak::upgrade) {
        return images;
    }
    shared.insert(location.to_string(), Arc::downgrade(seed));
    seed.clone()
}

#[derive(Default)]
struct State {
    /// The host stopped answering heartbeats (a test's way to make it fail).
    unresponsive: bool,
    guests: HashMap<String, Guest>,
    suspended: HashMap<String, u64>,
    srs: HashMap<String, Sr>,
    networks: HashMap<String, NetworkSpec>,
    bonds: HashMap<String, BondSpec>,
    addresses: HashMap<String, IpConfig>,
    addresses6: HashMap<String, Ip6Config>,
    pifs: Vec<PifInfo>,
}

/// The simulated host.
pub struct SimHost {
    config: SimConfig,
    state: Mutex<State>,
    events: broadcast::Sender<GuestEvent>,
    born: Instant,
}

impl SimHost {
    /// A simulated host of the given size.
    pub fn new(config: SimConfig) -> SimHost {
        let mut state = State::default();
        if let Some(saved) = config
            .state_file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
        {
            let disks: HashMap<String, HashMap<String, (u64, u64)>> =
                serde_json::from_slice(&saved).unwrap_or_default();
            for (sr, images) in disks {
                let images = images
                    .into_iter()
                    .map(|(k, (v, p))| {
                        (
                            k,
                            Image {
                                virtual_size: v,
                                physical: p,
                            },
                        )
                    })
                    .collect();
                state.srs.insert(
                    sr,
                    Sr {
                        images: Arc::new(Mutex::new(images)),
                    },
                );
            }
        }
        state.pifs = config.pifs.clone();
        SimHost {
            config,
            state: Mutex::new(state),
            events: broadcast::channel(1024).0,
            born: Instant::now(),
        }
    }

    /// Remembers the simulated disks, as a real host's storage would.
    fn save(&self, st: &State) {
        let Some(path) = &self.config.state_file else {
            return;
        };
        let disks: HashMap<&String, HashMap<String, (u64, u64)>> = st
            .srs
            .iter()
            .map(|(sr, s)| {
                (
                    sr,
                    s.images()
                        .iter()
                        .map(|(k, i)| (k.clone(), (i.virtual_size, i.physical)))
                        .collect(),
                )
            })
            .collect();
        let tmp = path.with_extension("tmp");
        let written = serde_json::to_vec(&disks)
            .map_err(std::io::Error::other)
            .and_then(|data| std::fs::write(&tmp, data))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            eprintln!("simulated host: cannot save {}: {e}", path.display());
        }
    }

    /// Makes the host stop answering heartbeats ([`HostDriver::ping`]), or answer again.
    pub fn set_unresponsive(&self, unresponsive: bool) {
        self.state().unresponsive = unresponsive;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The networks the host has now, by bridge.
    pub fn networks(&self) -> HashMap<String, NetworkSpec> {
        self.state().networks.clone()
    }

    /// The bonds the host has now, by name.
    pub fn bonds(&self) -> HashMap<String, BondSpec> {
        self.state().bonds.clone()
    }

    /// The address configuration of a bridge, if one was set.
    pub fn bridge_address(&self, bridge: &str) -> Option<IpConfig> {
        self.state().addresses.get(bridge).cloned()
    }

    /// The IPv6 configuration of a bridge, if one was set.
    pub fn bridge_address6(&self, bridge: &str) -> Option<Ip6Config> {
        self.state().addresses6.get(bridge).cloned()
    }

    /// The NICs of a guest, by device position.
    pub fn guest_nics(&self, uuid: &str) -> Vec<NicSpec> {
        let st = self.state();
        let mut nics: Vec<NicSpec> = st
            .guests
            .get(uuid)
            .map(|g| g.nics.values().cloned().collect())
            .unwrap_or_default();
        nics.sort_by(|a, b| a.device.cmp(&b.device));
        nics
    }

    /// Adds a network interface to the host, as if a card were put in.
    pub fn add_interface(&self, pif: PifInfo) {
        self.state().pifs.push(pif);
    }

    /// Whether a device of this name exists that Drover did not make.
    fn foreign(&self, st: &State, name: &str) -> bool {
        self.config.foreign_devices.iter().any(|d| d == name)
            || st.pifs.iter().any(|p| p.device == name)
    }

    async fn work(&self) {
        if !self.config.op_delay.is_zero() {
            tokio::time::sleep(self.config.op_delay).await;
        }
    }

    fn used_memory(st: &State) -> u64 {
        HOST_OVERHEAD + st.guests.values().map(|g| g.memory).sum::<u64>()
    }

    fn reserve(&self, st: &State, needed: u64) -> Result<(), HostError> {
        let available = self.config.memory.saturating_sub(Self::used_memory(st));
        if needed > available {
            return Err(HostError::NotEnoughMemory { needed, available });
        }
        Ok(())
    }

    /// Checks that a guest can be put on the host: a new uuid, enough memory, known disks.
    fn check_start(&self, spec: &GuestSpec) -> Result<(), HostError> {
        let st = self.state();
        if st.guests.contains_key(&spec.uuid) {
            return Err(HostError::GuestExists(spec.uuid.clone()));
        }
        self.reserve(&st, spec.memory)?;
        for d in &spec.disks {
            if d.image.is_empty() {
                continue;
            }
            if !st.srs.values().any(|sr| sr.images().contains_key(&d.image)) {
                return Err(HostError::NoSuchImage(d.image.clone()));
            }
        }
        Ok(())
    }

    /// Puts a built guest on the host, checking memory again: it may have gone meanwhile.
    fn admit(
        &self,
        st: &mut State,
        spec: &GuestSpec,
        paused: bool,
        stage: Stage,
    ) -> Result<(), HostError> {
        if st.guests.contains_key(&spec.uuid) {
            return Err(HostError::GuestExists(spec.uuid.clone()));
        }
        if let Some(n) = spec
            .nics
            .iter()
            .find(|n| !st.networks.contains_key(&n.bridge))
        {
            return Err(HostError::NoSuchDevice(n.bridge.clone()));
        }
        self.reserve(st, spec.memory)?;
        let state = if paused {
            GuestState::Paused
        } else {
            GuestState::Running
        };
        let guest = Guest {
            state,
            memory: spec.memory,
            vcpus: spec.vcpus.max(1),
            started: Instant::now(),
            nics: spec
                .nics
                .iter()
                .map(|n| (n.device.clone(), n.clone()))
                .collect(),
            stage,
            sending: None,
        };
        st.guests.insert(spec.uuid.clone(), guest);
        Ok(())
    }

    fn sr_used(sr: &Sr) -> u64 {
        sr.images().values().map(|i| i.physical).sum()
    }

    fn with_guest<T>(
        &self,
        uuid: &str,
        f: impl FnOnce(&mut Guest) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        let mut st = self.state();
        let g = st
            .guests
            .get_mut(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        g.settled(uuid)?;
        f(g)
    }

    fn sr_mut<'a>(st: &'a mut State, sr: &str) -> Result<&'a mut Sr, HostError> {
        st.srs
            .get_mut(sr)
            .ok_or_else(|| HostError::Failed(format!("storage repository {sr} is not attached")))
    }

    fn grow(&self, sr: &mut Sr, extra: u64) -> Result<(), HostError> {
        let available = self.config.sr_capacity.saturating_sub(Self::sr_used(sr));
        if extra > available {
            return Err(HostError::StorageFull {
                requested: extra,
                available,
            });
        }
        Ok(())
    }
}

fn state_name(s: GuestState) -> &'static str {
    match s {
        GuestState::Running => "running",
        GuestState::Paused => "paused",
        GuestState::Suspended => "suspended",
    }
}

fn expect(g: &Guest, uuid: &str, want: GuestState) -> Result<(), HostError> {
    if g.state != want {
        return Err(HostError::BadState {
            uuid: uuid.into(),
            expected: state_name(want),
            actual: state_name(g.state),
        });
    }
    Ok(())
}

/// Bytes a simulated image occupies: metadata only until the guest writes.
const IMAGE_METADATA: u64 = 192 << 10;
/// Sector size of an ISO 9660 image.
const ISO_SECTOR: u64 = 2048;
/// Bytes of an ISO 9660 image besides its files' data (system area, volume descriptors, path
/// tables, directories), as `mkisofs -R -J` makes it for a few files.
const ISO_OVERHEAD: u64 = 352 << 10;

#[async_trait]
impl HostDriver for SimHost {
    fn info(&self) -> HostInfo {
        HostInfo {
            hostname: self.config.hostname.clone(),
            cpu_count: self.config.cpus,
            cpu_model: "Drover simulated CPU".into(),
            cpu_speed_mhz: 2400,
            memory_total: self.config.memory,
            driver: "sim",
        }
    }

    async fn metrics(&self) -> HostMetrics {
        let st = self.state();
        let running = st
            .guests
            .values()
            .filter(|g| g.stage == Stage::Settled && g.state == GuestState::Running)
            .count() as f64;
        let wobble = (self.born.elapsed().as_secs_f64() / 7.0).sin().abs() * 0.05;
        HostMetrics {
            memory_total: self.config.memory,
            memory_free: self.config.memory.saturating_sub(Self::used_memory(&st)),
            cpu_utilisation: vec![
                (0.01 + running * 0.02 / self.config.cpus as f64 + wobble)
                    .min(1.0);
                self.config.cpus as usize
            ],
        }
    }

    async fn ping(&self) -> Result<(), HostError> {
        if self.state().unresponsive {
            return Err(HostError::Failed(
                "the simulated host does not answer".into(),
            ));
        }
        Ok(())
    }

    async fn guests(&self) -> Vec<(String, GuestState)> {
        let st = self.state();
        st.guests
            .iter()
            .filter(|(_, g)| g.stage == Stage::Settled)
            .map(|(u, g)| (u.clone(), g.state))
            .chain(
                st.suspended
                    .keys()
                    .map(|u| (u.clone(), GuestState::Suspended)),
            )
            .collect()
    }

    async fn start(&self, spec: &GuestSpec, paused: bool) -> Result<(), HostError> {
        self.check_start(spec)?;
        self.work().await;
        let mut st = self.state();
        self.admit(&mut st, spec, paused, Stage::Settled)
    }

    async fn shutdown(&self, uuid: &str, _hard: bool) -> Result<(), HostError> {
        self.with_guest(uuid, |_| Ok(()))?;
        self.work().await;
        self.state()
            .guests
            .remove(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        let _ = self.events.send(GuestEvent::Exited {
            uuid: uuid.into(),
            reason: "shutdown".into(),
        });
        Ok(())
    }

    async fn reboot(&self, uuid: &str, _hard: bool) -> Result<(), HostError> {
        self.with_guest(uuid, |_| Ok(()))?;
        self.work().await;
        self.with_guest(uuid, |g| {
            g.state = GuestState::Running;
            g.started = Instant::now();
            Ok(())
        })
    }

    async fn pause(&self, uuid: &str) -> Result<(), HostError> {
        self.with_guest(uuid, |g| expect(g, uuid, GuestState::Running))?;
        self.work().await;
        self.with_guest(uuid, |g| {
            g.state = GuestState::Paused;
            Ok(())
        })
    }

    async fn unpause(&self, uuid: &str) -> Result<(), HostError> {
        self.with_guest(uuid, |g| expect(g, uuid, GuestState::Paused))?;
        self.work().await;
        self.with_guest(uuid, |g| {
            g.state = GuestState::Running;
            Ok(())
        })
    }

    async fn suspend(&self, uuid: &str, _sr: &str, state_image: &str) -> Result<(), HostError> {
        let memory = self.with_guest(uuid, |g| Ok(g.memory))?;
        {
            let mut st = self.state();
            let sr = st
                .srs
                .values_mut()
                .find(|sr| sr.images().contains_key(state_image))
                .ok_or_else(|| HostError::NoSuchImage(state_image.into()))?;
            let mut images = sr.images();
            let img = images.get_mut(state_image).expect("found above");
            img.physical = img.physical.max(memory);
        }
        self.work().await;
        let mut st = self.state();
        st.guests
            .remove(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        st.suspended.insert(uuid.into(), memory);
        Ok(())
    }

    async fn resume(
        &self,
        spec: &GuestSpec,
        _sr: &str,
        state_image: &str,
        paused: bool,
    ) -> Result<(), HostError> {
        {
            let st = self.state();
            if !st
                .srs
                .values()
                .any(|sr| sr.images().contains_key(state_image))
            {
                return Err(HostError::NoSuchImage(state_image.into()));
            }
            self.reserve(&st, spec.memory)?;
        }
        self.work().await;
        let mut st = self.state();
        self.admit(&mut st, spec, paused, Stage::Settled)?;
        st.suspended.remove(&spec.uuid);
        Ok(())
    }

    async fn disk_attach(&self, uuid: &str, _disk: &DiskSpec) -> Result<(), HostError> {
        self.with_guest(uuid, |g| expect(g, uuid, GuestState::Running))?;
        self.work().await;
        Ok(())
    }

    async fn disk_detach(&self, uuid: &str, _device: &str) -> Result<(), HostError> {
        self.with_guest(uuid, |g| expect(g, uuid, GuestState::Running))?;
        self.work().await;
        Ok(())
    }

    async fn media_change(
        &self,
        uuid: &str,
        _device: &str,
        _media: Option<(&str, &str)>,
    ) -> Result<(), HostError> {
        self.with_guest(uuid, |_| Ok(()))
    }

    async fn console_log(&self, _uuid: &str) -> Result<Vec<u8>, HostError> {
        Err(HostError::Unsupported(
            "the simulated host has no guest consoles".into(),
        ))
    }

    async fn console_open(
        &self,
        _uuid: &str,
        _kind: ConsoleKind,
    ) -> Result<Box<dyn Stream>, HostError> {
        Err(HostError::Unsupported(
            "the simulated host has no guest consoles".into(),
        ))
    }

    async fn set_memory(&self, uuid: &str, bytes: u64) -> Result<(), HostError> {
        let mut st = self.state();
        let g = st
            .guests
            .get(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        g.settled(uuid)?;
        let current = g.memory;
        if bytes > current {
            self.reserve(&st, bytes - current)?;
        }
        st.guests.get_mut(uuid).expect("checked").memory = bytes;
        Ok(())
    }

    async fn set_vcpus(&self, uuid: &str, count: u32) -> Result<(), HostError> {
        if count == 0 || count > self.config.cpus * 4 {
            return Err(HostError::Failed(format!(
                "cannot run {count} virtual CPUs"
            )));
        }
        self.with_guest(uuid, |g| {
            g.vcpus = count;
            Ok(())
        })
    }

    async fn guest_metrics(&self, uuid: &str) -> Result<GuestMetrics, HostError> {
        self.with_guest(uuid, |g| {
            let busy = if g.state == GuestState::Running {
                0.02 + (g.started.elapsed().as_secs_f64() / 5.0).sin().abs() * 0.1
            } else {
                0.0
            };
            Ok(GuestMetrics {
                memory_actual: g.memory,
                vcpus: g.vcpus,
                vcpu_utilisation: vec![busy; g.vcpus as usize],
                cpu_time_us: (g.started.elapsed().as_micros() as u64 / 20) * g.vcpus as u64,
                ..GuestMetrics::default()
            })
        })
        .map(|mut m| {
            let st = self.state();
            if let Some(g) = st.guests.get(uuid) {
                m.nics = g
                    .nics
                    .values()
                    .map(|n| NicIo {
                        device: n.device.clone(),
                        leased_ipv4: st
                            .networks
                            .get(&n.bridge)
                            .and_then(|net| net.dhcp.as_ref())
                            .into_iter()
                            .flat_map(|d| &d.reservations)
                            .filter(|r| r.mac.eq_ignore_ascii_case(&n.mac))
                            .map(|r| r.ip)
                            .collect(),
                        ..NicIo::default()
                    })
                    .collect();
            }
            m
        })
    }

    async fn nic_attach(&self, uuid: &str, nic: &NicSpec) -> Result<(), HostError> {
        self.with_guest(uuid, |_| Ok(()))?;
        self.work().await;
        let mut st = self.state();
        if !st.networks.contains_key(&nic.bridge) {
            return Err(HostError::NoSuchDevice(nic.bridge.clone()));
        }
        let g = st
            .guests
            .get_mut(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        if g.nics.contains_key(&nic.device) {
            return Err(HostError::Failed(format!(
                "guest {uuid} already has a NIC at {}",
                nic.device
            )));
        }
        g.nics.insert(nic.device.clone(), nic.clone());
        Ok(())
    }

    async fn nic_detach(&self, uuid: &str, device: &str) -> Result<(), HostError> {
        self.with_guest(uuid, |_| Ok(()))?;
        self.work().await;
        let mut st = self.state();
        let g = st
            .guests
            .get_mut(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        g.nics
            .remove(device)
            .map(|_| ())
            .ok_or_else(|| HostError::Failed(format!("guest {uuid} has no NIC at {device}")))
    }

    async fn nic_move(
        &self,
        uuid: &str,
        device: &str,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), HostError> {
        self.with_guest(uuid, |_| Ok(()))?;
        self.work().await;
        let mut st = self.state();
        if !st.networks.contains_key(bridge) {
            return Err(HostError::NoSuchDevice(bridge.into()));
        }
        let g = st
            .guests
            .get_mut(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        let nic = g
            .nics
            .get_mut(device)
            .ok_or_else(|| HostError::Failed(format!("guest {uuid} has no NIC at {device}")))?;
        nic.bridge = bridge.into();
        nic.mtu = mtu;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<GuestEvent> {
        self.events.subscribe()
    }

    async fn migrate_receive(
        &self,
        spec: &GuestSpec,
        listen_ip: &str,
    ) -> Result<String, HostError> {
        crate::check_listen_ip(listen_ip)?;
        self.check_start(spec)?;
        self.work().await;
        let uri = format!(
            "sim:{}:{}",
            spec.uuid,
            NEXT_URI.fetch_add(1, Ordering::Relaxed)
        );
        let mut st = self.state();
        self.admit(&mut st, spec, false, Stage::Incoming(uri.clone()))?;
        listeners().insert(uri.clone(), None);
        Ok(uri)
    }

    async fn migrate_send(
        &self,
        uuid: &str,
        uri: &str,
        _max_downtime_ms: u64,
    ) -> Result<MigrationStats, HostError> {
        let cancel = Arc::new(Notify::new());
        let (paused, memory) = {
            let mut st = self.state();
            let g = st
                .guests
                .get_mut(uuid)
                .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
            g.settled(uuid)?;
            if g.sending.is_some() {
                return Err(HostError::BadState {
                    uuid: uuid.into(),
                    expected: "running",
                    actual: "migrating",
                });
            }
            if !listeners().contains_key(uri) {
                return Err(HostError::MigrationFailed(format!(
                    "nothing listens at {uri}"
                )));
            }
            g.sending = Some(cancel.clone());
            (g.state == GuestState::Paused, g.memory)
        };
        // Declared before the state is locked below, so dropped after it.
        let _sending = Sending {
            host: self,
            uuid,
            cancel: cancel.clone(),
        };
        let started = Instant::now();
        let cancelled = tokio::select! {
            biased;
            _ = cancel.notified() => true,
            _ = self.work() => false,
        };
        let mut st = self.state();
        let g = st
            .guests
            .get_mut(uuid)
            .filter(|g| g.sending.as_ref().is_some_and(|c| Arc::ptr_eq(c, &cancel)));
        let Some(g) = g else {
            return Err(HostError::MigrationFailed(format!(
                "guest {uuid} stopped during the send"
            )));
        };
        if cancelled {
            return Err(HostError::MigrationCancelled);
        }
        // The destination may have given up meanwhile.
        match listeners().get_mut(uri) {
            Some(slot) => *slot = Some(g.state),
            None => {
                return Err(HostError::MigrationFailed(format!(
                    "{uri} stopped listening"
                )))
            }
        }
        g.stage = Stage::Sent;
        Ok(MigrationStats {
            downtime_ms: u64::from(!paused),
            total_ms: started.elapsed().as_millis() as u64,
            transferred_bytes: memory,
        })
    }

    async fn migrate_cancel(&self, uuid: &str) -> Result<(), HostError> {
        let st = self.state();
        let g = st
            .guests
            .get(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        match &g.sending {
            Some(cancel) => {
                cancel.notify_one();
                Ok(())
            }
            None => Err(HostError::BadState {
                uuid: uuid.into(),
                expected: "migrating",
                actual: g.state_name(),
            }),
        }
    }

    async fn migrate_incoming_finish(&self, uuid: &str, commit: bool) -> Result<(), HostError> {
        let mut st = self.state();
        let Some(g) = st.guests.get_mut(uuid) else {
            // A guest that already ended needs no abort.
            return if commit {
                Err(HostError::NoSuchGuest(uuid.into()))
            } else {
                Ok(())
            };
        };
        let uri = match &g.stage {
            Stage::Incoming(uri) => uri.clone(),
            Stage::Settled if commit => return Ok(()),
            _ => {
                return Err(HostError::BadState {
                    uuid: uuid.into(),
                    expected: "incoming",
                    actual: g.state_name(),
                })
            }
        };
        let mut listening = listeners();
        if !commit {
            listening.remove(&uri);
            st.guests.remove(uuid);
            return Ok(());
        }
        let Some(Some(state)) = listening.get(&uri).copied() else {
            return Err(HostError::MigrationFailed(format!(
                "the state of guest {uuid} has not arrived"
            )));
        };
        listening.remove(&uri);
        g.state = state;
        g.stage = Stage::Settled;
        Ok(())
    }

    async fn migrate_release(&self, uuid: &str) -> Result<(), HostError> {
        let mut st = self.state();
        let g = st
            .guests
            .get(uuid)
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))?;
        if g.stage != Stage::Sent {
            return Err(HostError::BadState {
                uuid: uuid.into(),
                expected: "migrated",
                actual: g.state_name(),
            });
        }
        st.guests.remove(uuid);
        Ok(())
    }

    async fn sr_attach(&self, sr: &str, location: &str) -> Result<StorageInfo, HostError> {
        let mut st = self.state();
        let sr = st.srs.entry(sr.to_string()).or_default();
        if location.starts_with('/') {
            let shared = shared_images(location, &sr.images);
            if !Arc::ptr_eq(&shared, &sr.images) {
                let mine: Vec<(String, Image)> = sr.images().drain().collect();
                shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(mine);
                sr.images = shared;
            }
        }
        Ok(StorageInfo {
            physical_size: self.config.sr_capacity,
            physical_utilisation: Self::sr_used(sr),
        })
    }

    async fn sr_detach(&self, sr: &str) -> Result<(), HostError> {
        self.state().srs.remove(sr);
        Ok(())
    }

    async fn sr_scan(&self, sr: &str) -> Result<Vec<ImageInfo>, HostError> {
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        let infos = sr.images().iter().map(|(k, img)| img.info(k)).collect();
        Ok(infos)
    }

    async fn storage_info(&self, sr: &str) -> Result<StorageInfo, HostError> {
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        Ok(StorageInfo {
            physical_size: self.config.sr_capacity,
            physical_utilisation: Self::sr_used(sr),
        })
    }

    async fn image_create(
        &self,
        sr: &str,
        image: &str,
        size: u64,
        _format: ImageFormat,
    ) -> Result<ImageInfo, HostError> {
        self.work().await;
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        if sr.images().contains_key(image) {
            return Err(HostError::Failed(format!("image {image} exists")));
        }
        // New disks are allocated whole (as on a thick SR); clones and snapshots stay thin.
        let physical = size.max(IMAGE_METADATA);
        self.grow(sr, physical)?;
        let img = Image {
            virtual_size: size,
            physical,
        };
        let info = img.info(image);
        sr.images().insert(image.into(), img);
        self.save(&st);
        Ok(info)
    }

    async fn image_destroy(&self, sr: &str, image: &str) -> Result<(), HostError> {
        self.work().await;
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        sr.images()
            .remove(image)
            .ok_or_else(|| HostError::NoSuchImage(image.into()))?;
        self.save(&st);
        Ok(())
    }

    async fn image_clone(&self, sr: &str, src: &str, dst: &str) -> Result<ImageInfo, HostError> {
        self.work().await;
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        let size = sr
            .images()
            .get(src)
            .ok_or_else(|| HostError::NoSuchImage(src.into()))?
            .virtual_size;
        self.grow(sr, IMAGE_METADATA)?;
        sr.images().insert(
            dst.into(),
            Image {
                virtual_size: size,
                physical: IMAGE_METADATA,
            },
        );
        self.save(&st);
        Ok(ImageInfo {
            location: dst.into(),
            virtual_size: size,
            physical_utilisation: IMAGE_METADATA,
        })
    }

    async fn image_copy(
        &self,
        sr: &str,
        src: &str,
        dst_sr: &str,
        dst: &str,
    ) -> Result<ImageInfo, HostError> {
        let (size, used) = {
            let mut st = self.state();
            let from = Self::sr_mut(&mut st, sr)?;
            let images = from.images();
            let img = images
                .get(src)
                .ok_or_else(|| HostError::NoSuchImage(src.into()))?;
            (img.virtual_size, img.physical)
        };
        self.work().await;
        let mut st = self.state();
        let to = Self::sr_mut(&mut st, dst_sr)?;
        self.grow(to, used)?;
        to.images().insert(
            dst.into(),
            Image {
                virtual_size: size,
                physical: used,
            },
        );
        self.save(&st);
        Ok(ImageInfo {
            location: dst.into(),
            virtual_size: size,
            physical_utilisation: used,
        })
    }

    async fn image_resize(&self, sr: &str, image: &str, size: u64) -> Result<ImageInfo, HostError> {
        self.work().await;
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        let info = {
            let mut images = sr.images();
            let img = images
                .get_mut(image)
                .ok_or_else(|| HostError::NoSuchImage(image.into()))?;
            if size < img.virtual_size {
                return Err(HostError::Failed(
                    "shrinking a disk image is not supported".into(),
                ));
            }
            img.virtual_size = size;
            img.info(image)
        };
        self.save(&st);
        Ok(info)
    }

    async fn image_info(&self, sr: &str, image: &str) -> Result<ImageInfo, HostError> {
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        let images = sr.images();
        let img = images
            .get(image)
            .ok_or_else(|| HostError::NoSuchImage(image.into()))?;
        Ok(img.info(image))
    }

    async fn image_import(
        &self,
        sr: &str,
        image: &str,
        format: &str,
        mut data: ByteSource,
    ) -> Result<ImageInfo, HostError> {
        if format != "raw" {
            return Err(HostError::BadImage {
                image: image.into(),
                reason: format!("the simulated host imports raw images only, not {format}"),
            });
        }
        let size = self.image_info(sr, image).await?.virtual_size;
        let received = tokio::io::copy(&mut data, &mut tokio::io::sink())
            .await
            .map_err(|e| HostError::Failed(format!("reading the upload: {e}")))?;
        if received > size {
            return Err(HostError::BadImage {
                image: image.into(),
                reason: format!("{received} bytes do not fit a {size}-byte disk"),
            });
        }
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        let info = {
            let mut images = sr.images();
            let img = images
                .get_mut(image)
                .ok_or_else(|| HostError::NoSuchImage(image.into()))?;
            img.physical = img.physical.max(received);
            img.info(image)
        };
        self.save(&st);
        Ok(info)
    }

    async fn image_from_files(
        &self,
        sr: &str,
        name: &str,
        label: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<ImageInfo, HostError> {
        crate::check_image_files(name, label, files)?;
        // An ISO 9660 image: fixed descriptors and directories, then each file in whole
        // 2 KiB sectors.
        let size = ISO_OVERHEAD
            + files
                .iter()
                .map(|(_, data)| (data.len() as u64).div_ceil(ISO_SECTOR) * ISO_SECTOR)
                .sum::<u64>();
        self.work().await;
        let mut st = self.state();
        let sr = Self::sr_mut(&mut st, sr)?;
        // The new image replaces an old one of that name, so only the difference must fit.
        let old = sr.images().get(name).map_or(0, |i| i.physical);
        self.grow(sr, size.saturating_sub(old))?;
        let img = Image {
            virtual_size: size,
            physical: size,
        };
        let info = img.info(name);
        sr.images().insert(name.into(), img);
        self.save(&st);
        Ok(info)
    }

    async fn image_export(&self, sr: &str, image: &str) -> Result<ByteSource, HostError> {
        // The simulated host keeps no contents: an image reads as zeros.
        let size = self.image_info(sr, image).await?.virtual_size;
        self.work().await;
        Ok(Box::new(tokio::io::AsyncReadExt::take(
            tokio::io::repeat(0),
            size,
        )))
    }

    async fn net_capabilities(&self) -> NetCapabilities {
        self.config.net
    }

    async fn network_ensure(&self, spec: &NetworkSpec) -> Result<(), HostError> {
        crate::net::check_device_name(&spec.bridge)?;
        if !(68..=65535).contains(&spec.mtu) {
            return Err(HostError::NetConfig {
                device: spec.bridge.clone(),
                reason: format!("MTU {} is out of range", spec.mtu),
            });
        }
        let mut st = self.state();
        if self.foreign(&st, &spec.bridge) || st.bonds.contains_key(&spec.bridge) {
            return Err(HostError::DeviceTaken(spec.bridge.clone()));
        }
        let known = |st: &State, dev: &str| {
            st.pifs.iter().any(|p| p.device == dev)
                || st.bonds.contains_key(dev)
                || st.networks.contains_key(dev)
        };
        match &spec.uplink {
            None => {}
            Some(Uplink::Device(dev)) => {
                if !known(&st, dev) || st.networks.contains_key(dev) {
                    return Err(HostError::NoSuchDevice(dev.clone()));
                }
                let own = st
                    .pifs
                    .iter()
                    .any(|p| &p.device == dev && (!p.ipv4.is_empty() || p.default_route));
                let taken = st.networks.values().any(|n| {
                    n.bridge != spec.bridge && n.uplink == Some(Uplink::Device(dev.clone()))
                }) || st.bonds.values().any(|b| b.members.contains(dev));
                if own || taken {
                    return Err(HostError::DeviceInUse(dev.clone()));
                }
            }
            Some(Uplink::Vlan { .. }) if !self.config.net.vlan_8021q => {
                return Err(HostError::Unsupported(
                    "this host's kernel has no 802.1Q VLAN devices".into(),
                ))
            }
            Some(Uplink::Vxlan { .. }) if !self.config.net.vxlan => {
                return Err(HostError::Unsupported(
                    "this host's kernel has no VXLAN devices".into(),
                ))
            }
            Some(Uplink::Vlan { device, .. } | Uplink::Vxlan { device, .. })
                if !known(&st, device) =>
            {
                return Err(HostError::NoSuchDevice(device.clone()))
            }
            Some(_) => {}
        }
        st.networks.insert(spec.bridge.clone(), spec.clone());
        Ok(())
    }

    async fn network_remove(&self, bridge: &str) -> Result<(), HostError> {
        let mut st = self.state();
        if st
            .guests
            .values()
            .any(|g| g.nics.values().any(|n| n.bridge == bridge))
        {
            return Err(HostError::Failed(format!(
                "bridge {bridge} still has guest ports"
            )));
        }
        st.networks.remove(bridge);
        st.addresses.remove(bridge);
        st.addresses6.remove(bridge);
        Ok(())
    }

    async fn network_prune(&self, keep: &[String]) -> Result<(), HostError> {
        let mut st = self.state();
        st.networks.retain(|b, _| keep.contains(b));
        st.bonds.retain(|b, _| keep.contains(b));
        let State {
            networks,
            addresses,
            addresses6,
            ..
        } = &mut *st;
        addresses.retain(|b, _| networks.contains_key(b));
        addresses6.retain(|b, _| networks.contains_key(b));
        Ok(())
    }

    async fn pif_scan(&self) -> Result<Vec<PifInfo>, HostError> {
        Ok(self.state().pifs.clone())
    }

    async fn pif_counters(&self, device: &str) -> Result<PifCounters, HostError> {
        let st = self.state();
        let known = st.pifs.iter().any(|p| p.device == device)
            || st.bonds.contains_key(device)
            || st.networks.contains_key(device);
        if !known {
            return Err(HostError::NoSuchDevice(device.into()));
        }
        Ok(PifCounters {
            carrier: true,
            ..PifCounters::default()
        })
    }

    async fn pif_configure_ip(&self, bridge: &str, config: &IpConfig) -> Result<(), HostError> {
        let mut st = self.state();
        if !st.networks.contains_key(bridge) {
            return Err(HostError::NoSuchDevice(bridge.into()));
        }
        st.addresses.insert(bridge.into(), config.clone());
        Ok(())
    }

    async fn pif_configure_ipv6(&self, bridge: &str, config: &Ip6Config) -> Result<(), HostError> {
        if let Ip6Config::Static { prefix, .. } = config {
            if !(1..=128).contains(prefix) {
                return Err(HostError::NetConfig {
                    device: bridge.into(),
                    reason: format!("prefix length {prefix} is not within 1-128"),
                });
            }
        }
        let mut st = self.state();
        if !st.networks.contains_key(bridge) {
            return Err(HostError::NoSuchDevice(bridge.into()));
        }
        st.addresses6.insert(bridge.into(), config.clone());
        Ok(())
    }

    async fn bond_create(&self, spec: &BondSpec) -> Result<(), HostError> {
        if !self.config.net.bonding {
            return Err(HostError::Unsupported(
                "this host's kernel has no bonding".into(),
            ));
        }
        crate::net::check_device_name(&spec.name)?;
        let mut st = self.state();
        if st.bonds.contains_key(&spec.name)
            || st.networks.contains_key(&spec.name)
            || self.foreign(&st, &spec.name)
        {
            return Err(HostError::DeviceTaken(spec.name.clone()));
        }
        for m in &spec.members {
            let Some(p) = st.pifs.iter().find(|p| &p.device == m) else {
                return Err(HostError::NoSuchDevice(m.clone()));
            };
            let port = st
                .networks
                .values()
                .any(|n| n.uplink == Some(Uplink::Device(m.clone())));
            if !p.ipv4.is_empty()
                || p.default_route
                || port
                || st.bonds.values().any(|b| b.members.contains(m))
            {
                return Err(HostError::DeviceInUse(m.clone()));
            }
        }
        st.bonds.insert(spec.name.clone(), spec.clone());
        Ok(())
    }

    async fn bond_destroy(&self, name: &str) -> Result<(), HostError> {
        let mut st = self.state();
        if st
            .networks
            .values()
            .any(|n| n.uplink == Some(Uplink::Device(name.into())))
        {
            return Err(HostError::DeviceInUse(name.into()));
        }
        st.bonds
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| HostError::NoSuchDevice(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uuid: &str, memory: u64) -> GuestSpec {
        GuestSpec {
            uuid: uuid.into(),
            memory,
            vcpus: 1,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn hosts_see_the_same_images_on_a_shared_directory_only() {
        let (a, b) = (
            SimHost::new(SimConfig::default()),
            SimHost::new(SimConfig::default()),
        );
        let dir = "/simulated/shared-images-test";
        a.sr_attach("shared-a", dir).await.unwrap();
        a.image_create("shared-a", "d1", 1 << 20, ImageFormat::Qcow2)
            .await
            .unwrap();
        b.sr_attach("shared-b", dir).await.unwrap();
        assert_eq!(
            b.image_info("shared-b", "d1").await.unwrap().virtual_size,
            1 << 20
        );
        b.image_destroy("shared-b", "d1").await.unwrap();
        assert!(
            a.image_info("shared-a", "d1").await.is_err(),
            "gone for both"
        );
        a.sr_attach("local", "sr-local").await.unwrap();
        b.sr_attach("local", "sr-local").await.unwrap();
        a.image_create("local", "d2", 1 << 20, ImageFormat::Qcow2)
            .await
            .unwrap();
        assert!(
            b.image_info("local", "d2").await.is_err(),
            "local storage is each host's own"
        );
    }

    #[tokio::test]
    async fn accounts_memory_and_refuses_when_exhausted() {
        let host = SimHost::new(SimConfig {
            memory: (1 << 30) + HOST_OVERHEAD,
            ..Default::default()
        });
        host.start(&spec("a", 768 << 20), false).await.unwrap();
        let err = host.start(&spec("b", 512 << 20), false).await.unwrap_err();
        assert!(
            matches!(err, HostError::NotEnoughMemory { needed, available } if needed == 512 << 20 && available == 256 << 20)
        );
        host.shutdown("a", true).await.unwrap();
        host.start(&spec("b", 512 << 20), false).await.unwrap();
        assert_eq!(host.metrics().await.memory_free, 512 << 20);
    }

    #[tokio::test]
    async fn transitions_follow_the_guest_state() {
        let host = SimHost::new(SimConfig::default());
        host.start(&spec("a", 1 << 20), true).await.unwrap();
        assert!(matches!(
            host.pause("a").await,
            Err(HostError::BadState { .. })
        ));
        host.unpause("a").await.unwrap();
        host.pause("a").await.unwrap();
        assert!(matches!(
            host.shutdown("zz", true).await,
            Err(HostError::NoSuchGuest(_))
        ));
        let mut events = host.subscribe();
        host.shutdown("a", false).await.unwrap();
        assert_eq!(
            events.recv().await.unwrap(),
            GuestEvent::Exited {
                uuid: "a".into(),
                reason: "shutdown".into()
            }
        );
        assert!(host.guests().await.is_empty());
    }

    #[tokio::test]
    async fn a_guest_migrates_between_simulated_hosts() {
        let a = SimHost::new(SimConfig::default());
        let b = SimHost::new(SimConfig::default());
        let free = b.metrics().await.memory_free;
        let (mut events_a, mut events_b) = (a.subscribe(), b.subscribe());
        a.start(&spec("g", 1 << 30), false).await.unwrap();
        let uri = b
            .migrate_receive(&spec("g", 1 << 30), "10.0.0.2")
            .await
            .unwrap();
        assert!(uri.starts_with("sim:g:"), "{uri}");
        // The incoming guest holds its memory but is not the destination's yet.
        assert_eq!(b.metrics().await.memory_free, free - (1 << 30));
        assert!(b.guests().await.is_empty());
        assert!(matches!(
            b.start(&spec("g", 1), false).await,
            Err(HostError::GuestExists(_))
        ));
        assert!(matches!(
            b.pause("g").await,
            Err(HostError::BadState {
                actual: "incoming",
                ..
            })
        ));
        assert!(matches!(
            b.migrate_incoming_finish("g", true).await,
            Err(HostError::MigrationFailed(_))
        ));

        let stats = a.migrate_send("g", &uri, 100).await.unwrap();
        assert_eq!(stats.transferred_bytes, 1 << 30);
        assert!(stats.downtime_ms <= 1);
        assert!(a.guests().await.is_empty(), "a sent guest is not listed");
        assert!(matches!(
            a.shutdown("g", true).await,
            Err(HostError::BadState {
                actual: "migrated",
                ..
            })
        ));
        assert!(matches!(
            a.migrate_incoming_finish("g", false).await,
            Err(HostError::BadState { .. })
        ));
        b.migrate_incoming_finish("g", true).await.unwrap();
        b.migrate_incoming_finish("g", true).await.unwrap();
        assert_eq!(b.guests().await, vec![("g".into(), GuestState::Running)]);
        assert!(matches!(
            b.migrate_incoming_finish("g", false).await,
            Err(HostError::BadState { .. })
        ));
        assert!(matches!(
            b.migrate_release("g").await,
            Err(HostError::BadState { .. })
        ));
        a.migrate_release("g").await.unwrap();
        assert!(matches!(
            a.migrate_release("g").await,
            Err(HostError::NoSuchGuest(_))
        ));
        assert_eq!(
            a.metrics().await.memory_free,
            a.config.memory - HOST_OVERHEAD
        );
        assert!(events_a.try_recv().is_err());
        assert!(events_b.try_recv().is_err());

        // A paused guest arrives paused.
        b.pause("g").await.unwrap();
        let uri = a.migrate_receive(&spec("g", 1 << 30), "::1").await.unwrap();
        b.migrate_send("g", &uri, 100).await.unwrap();
        a.migrate_incoming_finish("g", true).await.unwrap();
        b.migrate_release("g").await.unwrap();
        assert_eq!(a.guests().await, vec![("g".into(), GuestState::Paused)]);
    }

    #[tokio::test]
    async fn a_failed_or_cancelled_send_leaves_the_guest_running() {
        let a = Arc::new(SimHost::new(SimConfig {
            op_delay: Duration::from_millis(200),
            ..SimConfig::default()
        }));
        let b = SimHost::new(SimConfig {
            memory: (1 << 30) + HOST_OVERHEAD,
            ..SimConfig::default()
        });
        a.start(&spec("g", 512 << 20), false).await.unwrap();
        for bad in ["0.0.0.0", "::", "host", "224.0.0.1"] {
            assert!(matches!(
                b.migrate_receive(&spec("g", 1), bad).await,
                Err(HostError::Failed(_))
            ));
        }
        assert!(matches!(
            b.migrate_receive(&spec("g", 2 << 30), "10.0.0.2").await,
            Err(HostError::NotEnoughMemory { .. })
        ));
        assert!(matches!(
            a.migrate_send("g", "sim:g:0", 100).await,
            Err(HostError::MigrationFailed(_))
        ));
        assert!(matches!(
            a.migrate_cancel("g").await,
            Err(HostError::BadState {
                actual: "running",
                ..
            })
        ));
        assert!(matches!(
            a.migrate_cancel("x").await,
            Err(HostError::NoSuchGuest(_))
        ));

        let uri = b
            .migrate_receive(&spec("g", 512 << 20), "10.0.0.2")
            .await
            .unwrap();
        let send = tokio::spawn({
            let (a, uri) = (a.clone(), uri.clone());
            async move { a.migrate_send("g", &uri, 100).await }
        });
        while a.migrate_cancel("g").await.is_err() {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            send.await.unwrap(),
            Err(HostError::MigrationCancelled)
        ));
        assert_eq!(a.guests().await, vec![("g".into(), GuestState::Running)]);
        b.migrate_incoming_finish("g", false).await.unwrap();
        b.migrate_incoming_finish("g", false).await.unwrap();
        assert!(b.guests().await.is_empty());
        assert_eq!(b.metrics().await.memory_free, 1 << 30);

        // A send whose caller stops waiting is over.
        let uri = b
            .migrate_receive(&spec("g", 512 << 20), "10.0.0.2")
            .await
            .unwrap();
        let abandoned =
            tokio::time::timeout(Duration::from_millis(50), a.migrate_send("g", &uri, 100));
        assert!(abandoned.await.is_err());
        assert!(matches!(
            a.migrate_cancel("g").await,
            Err(HostError::BadState {
                actual: "running",
                ..
            })
        ));
        b.migrate_incoming_finish("g", false).await.unwrap();

        // The destination gives up while the send is in progress.
        let uri = b
            .migrate_receive(&spec("g", 512 << 20), "10.0.0.2")
            .await
            .unwrap();
        let send = tokio::spawn({
            let a = a.clone();
            async move { a.migrate_send("g", &uri, 100).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.migrate_incoming_finish("g", false).await.unwrap();
        assert!(matches!(
            send.await.unwrap(),
            Err(HostError::MigrationFailed(_))
        ));
        assert_eq!(a.guests().await, vec![("g".into(), GuestState::Running)]);
    }

    #[tokio::test]
    async fn networks_refuse_foreign_names_and_the_hosts_own_interfaces() {
        let host = SimHost::new(SimConfig {
            foreign_devices: vec!["docker0".into()],
            net: NetCapabilities {
                bonding: false,
                ..SimConfig::default().net
            },
            ..SimConfig::default()
        });
        let net = |bridge: &str, uplink: Option<Uplink>| NetworkSpec {
            bridge: bridge.into(),
            mtu: 1500,
            uplink,
            dhcp: None,
        };
        for taken in ["docker0", "eth0"] {
            assert!(matches!(
                host.network_ensure(&net(taken, None)).await,
                Err(HostError::DeviceTaken(d)) if d == taken
            ));
        }
        assert!(matches!(
            host.network_ensure(&net("br0", Some(Uplink::Device("eth0".into()))))
                .await,
            Err(HostError::DeviceInUse(d)) if d == "eth0"
        ));
        assert!(matches!(
            host.network_ensure(&net("br0", Some(Uplink::Device("eth9".into()))))
                .await,
            Err(HostError::NoSuchDevice(d)) if d == "eth9"
        ));
        host.network_ensure(&net("br0", None)).await.unwrap();
        host.start(
            &GuestSpec {
                nics: vec![NicSpec {
                    device: "0".into(),
                    mac: "02:00:00:00:00:09".into(),
                    bridge: "br0".into(),
                    mtu: 1500,
                }],
                ..spec("a", 1 << 20)
            },
            true,
        )
        .await
        .unwrap();
        assert!(host.network_remove("br0").await.is_err(), "a guest's port");
        assert!(matches!(
            host.nic_move("a", "0", "br1", 9000).await,
            Err(HostError::NoSuchDevice(d)) if d == "br1"
        ));
        host.network_ensure(&net("br1", None)).await.unwrap();
        assert!(host.nic_move("a", "5", "br1", 1500).await.is_err());
        host.nic_move("a", "0", "br1", 9000).await.unwrap();
        assert_eq!(
            (
                host.guest_nics("a")[0].bridge.as_str(),
                host.guest_nics("a")[0].mtu
            ),
            ("br1", 9000)
        );
        host.network_remove("br0").await.unwrap();
        assert!(host.network_remove("br1").await.is_err(), "a guest's port");
        host.nic_move("a", "0", "br0", 1500).await.unwrap_err();
        host.network_ensure(&net("br0", None)).await.unwrap();
        host.nic_move("a", "0", "br0", 1500).await.unwrap();
        host.network_remove("br1").await.unwrap();
        host.nic_detach("a", "0").await.unwrap();
        host.network_remove("br0").await.unwrap();
        assert!(host.networks().is_empty());
        let bond = BondSpec {
            name: "bond0".into(),
            members: vec!["eth1".into(), "eth2".into()],
            mode: crate::BondMode::Lacp,
            mac: String::new(),
            mtu: 1500,
            options: Default::default(),
        };
        assert!(matches!(
            host.bond_create(&bond).await,
            Err(HostError::Unsupported(_))
        ));
    }

    #[tokio::test]
    async fn images_are_thin_or_full_and_storage_fills() {
        let capacity = 3 * IMAGE_METADATA - 1;
        let host = SimHost::new(SimConfig {
            sr_capacity: capacity,
            ..Default::default()
        });
        assert!(
            host.image_create("sr", "x", 1 << 20, ImageFormat::Qcow2)
                .await
                .is_err(),
            "unattached SR refused"
        );
        host.sr_attach("sr", "").await.unwrap();
        let err = host
            .image_create("sr", "huge", 10 << 30, ImageFormat::Qcow2)
            .await;
        assert!(
            matches!(err, Err(HostError::StorageFull { requested, available }) if requested == 10 << 30 && available == capacity),
            "{err:?}"
        );
        host.image_create("sr", "base", IMAGE_METADATA, ImageFormat::Qcow2)
            .await
            .unwrap();
        let clone = host.image_clone("sr", "base", "c1").await.unwrap();
        assert_eq!(clone.virtual_size, IMAGE_METADATA);
        assert_eq!(clone.physical_utilisation, IMAGE_METADATA);
        let err = host.image_create("sr", "many", 1, ImageFormat::Qcow2).await;
        assert!(matches!(err, Err(HostError::StorageFull { .. })), "{err:?}");
    }

    #[tokio::test]
    async fn iso_images_are_accounted_replaced_and_export_as_zeros() {
        let host = SimHost::new(SimConfig {
            sr_capacity: 2 * ISO_OVERHEAD + 3 * ISO_SECTOR,
            ..Default::default()
        });
        host.sr_attach("sr", "").await.unwrap();
        let files = vec![
            ("drover/network.env".to_string(), b"NIC_COUNT=0\n".to_vec()),
            ("a/b".to_string(), vec![1; 2049]),
        ];
        let info = host
            .image_from_files("sr", "cfg", "config-2", &files)
            .await
            .unwrap();
        assert_eq!(info.location, "cfg");
        assert_eq!(info.virtual_size, ISO_OVERHEAD + 3 * ISO_SECTOR);
        assert_eq!(info.physical_utilisation, info.virtual_size);
        // Replacing it needs only the difference.
        let info = host
            .image_from_files("sr", "cfg", "config-2", &files[..1])
            .await
            .unwrap();
        assert_eq!(info.virtual_size, ISO_OVERHEAD + ISO_SECTOR);
        assert_eq!(host.sr_scan("sr").await.unwrap(), vec![info.clone()]);
        let err = host
            .image_from_files("sr", "other", "config-2", &files)
            .await;
        assert!(matches!(err, Err(HostError::StorageFull { .. })), "{err:?}");
        for bad in ["/abs", "a/../b", "a//b", ""] {
            let err = host
                .image_from_files("sr", "bad", "config-2", &[(bad.into(), vec![])])
                .await;
            assert!(
                matches!(err, Err(HostError::BadImage { .. })),
                "{bad:?}: {err:?}"
            );
        }
        let mut out = Vec::new();
        let mut src = host.image_export("sr", "cfg").await.unwrap();
        tokio::io::AsyncReadExt::read_to_end(&mut src, &mut out)
            .await
            .unwrap();
        assert_eq!(out.len() as u64, info.virtual_size);
        assert!(out.iter().all(|b| *b == 0));
        assert!(matches!(
            host.image_export("sr", "none").await,
            Err(HostError::NoSuchImage(_))
        ));
    }
}
