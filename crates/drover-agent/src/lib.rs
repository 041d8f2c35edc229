//! Drover's host agent: the [`HostDriver`] of a real host.
//!
//! Every running guest is one QEMU process, driven over its QMP socket, with a pidfile, a serial
//! console (socket, plus a bounded log on disk), a VNC socket and a virtio-serial channel to the
//! guest's agent. QEMU processes outlive the agent: a new agent re-attaches to them through their
//! pidfiles and sockets. Disks are image files in storage-repository directories (see
//! [`storage`](crate::storage)). Guests move live between hosts over QEMU's migration stream
//! (see the `migrate` module).

mod accel;
mod cmdline;
mod guest;
mod hostinfo;
mod image;
mod migrate;
mod net;
mod storage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use drover_host::{
    BondSpec, ByteSource, ConsoleKind, DiskSpec, GuestEvent, GuestMetrics, GuestSpec, GuestState,
    HostDriver, HostError, HostInfo, HostMetrics, ImageFormat, ImageInfo, Ip6Config, IpConfig,
    MigrationStats, NetCapabilities, NetworkSpec, NicSpec, PifCounters, PifInfo, StorageInfo,
    Stream,
};
use tokio::sync::broadcast;

pub use accel::Accel;
pub use cmdline::AGENT_PORT;
use cmdline::{Disk, Paths};
use guest::{Guest, Incoming, Launch, Registry};
use migrate::Stage;

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM if a probe shows guests run under it, else TCG.
    Auto,
    /// This one.
    Fixed(Accel),
}

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Directory of the agent's state (guests, relative SR paths).
    pub data_dir: PathBuf,
    /// The QEMU system emulator.
    pub qemu: PathBuf,
    /// Accelerator choice.
    pub accel: AccelChoice,
    /// A kernel the accelerator probe may boot.
    pub probe_kernel: Option<PathBuf>,
    /// How long a clean shutdown may take.
    pub shutdown_timeout: Duration,
    /// Memory kept free beyond each guest's own (QEMU's overhead).
    pub guest_overhead: u64,
    /// The network namespace (a name under `/run/netns`) the host's networks, DHCP services
    /// and guests live in; `None` for the agent's own.
    pub netns: Option<String>,
    /// Bytes per second a live migration may send; `None` for as fast as the network goes.
    pub migration_bandwidth: Option<u64>,
}

impl AgentConfig {
    /// The defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            data_dir: data_dir.into(),
            qemu: PathBuf::from("qemu-system-x86_64"),
            accel: AccelChoice::Auto,
            probe_kernel: None,
            shutdown_timeout: Duration::from_secs(60),
            guest_overhead: 64 << 20,
            netns: None,
            migration_bandwidth: None,
        }
    }
}

/// Where `qemu-system-x86_64` is, if it is installed.
pub fn find_qemu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
}

/// The host agent driving QEMU.
pub struct QemuHost {
    config: AgentConfig,
    accel: Accel,
    info: HostInfo,
    run_dir: PathBuf,
    srs: Mutex<HashMap<String, PathBuf>>,
    guests: Registry,
    events: broadcast::Sender<GuestEvent>,
    meter: hostinfo::Meter,
    net: Arc<net::Net>,
}

/// A short directory for sockets (their paths must stay under 108 bytes), one per data dir.
fn run_dir_for(data_dir: &Path) -> PathBuf {
    let canon = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let hash = canon
        .to_string_lossy()
        .bytes()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
    let base = if nix::unistd::access("/run", nix::unistd::AccessFlags::W_OK).is_ok() {
        PathBuf::from("/run/drover")
    } else {
        std::env::temp_dir().join("drover-run")
    };
    base.join(format!("{:08x}", hash as u32))
}

impl QemuHost {
    /// Sets up the agent: chooses the accelerator and re-attaches to running guests.
    pub async fn open(config: AgentConfig) -> Result<QemuHost, HostError> {
        std::fs::create_dir_all(config.data_dir.join("guests"))
            .map_err(|e| HostError::Failed(format!("{}: {e}", config.data_dir.display())))?;
        let accel = match config.accel {
            AccelChoice::Fixed(a) => a,
            AccelChoice::Auto => {
                let cache = if nix::unistd::geteuid().is_root() {
                    PathBuf::from("/var/cache/drover/accel-probe")
                } else {
                    config.data_dir.join("accel-probe")
                };
                accel::probe(&config.qemu, config.probe_kernel.as_deref(), &cache).await
            }
        };
        let run_dir = run_dir_for(&config.data_dir);
        let owner = format!(
            "drover:{}",
            run_dir.file_name().unwrap_or_default().to_string_lossy()
        );
        let net = net::Net::open(config.netns.clone(), config.data_dir.join("net"), owner).await?;
        let host = QemuHost {
            run_dir,
            net: Arc::new(net),
            config,
            accel,
            info: hostinfo::info(),
            srs: Mutex::new(HashMap::new()),
            guests: Arc::new(Mutex::new(HashMap::new())),
            events: broadcast::channel(1024).0,
            meter: hostinfo::Meter::default(),
        };
        host.meter.read();
        host.reattach().await;
        Ok(host)
    }

    /// The accelerator guests run under.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    async fn reattach(&self) {
        let Ok(entries) = std::fs::read_dir(self.config.data_dir.join("guests")) else {
            return;
        };
        for e in entries.flatten() {
            let uuid = e.file_name().to_string_lossy().into_owned();
            let paths = self.paths(&uuid);
            if !paths.spec().exists() {
                continue;
            }
            match Guest::reattach(paths, self.net.clone(), &self.guests, &self.events).await {
                Some(g) => tracing::info!(uuid, pid = g.pid, "re-attached to a running guest"),
                None => tracing::info!(uuid, "guest stopped while the agent was away"),
            }
        }
    }

    fn paths(&self, uuid: &str) -> Paths {
        Paths {
            dir: self.config.data_dir.join("guests").join(uuid),
            run: self.run_dir.join(uuid),
        }
    }

    /// The guest `uuid` in whatever stage of a migration.
    fn any_guest(&self, uuid: &str) -> Result<Arc<Guest>, HostError> {
        self.guests
            .lock()
            .expect("registry lock")
            .get(uuid)
            .cloned()
            .ok_or_else(|| HostError::NoSuchGuest(uuid.into()))
    }

    /// The guest `uuid`, refused while it is not (or no longer) this host's.
    fn guest(&self, uuid: &str) -> Result<Arc<Guest>, HostError> {
        let g = self.any_guest(uuid)?;
        if let Some(actual) = g.stage().name() {
            return Err(HostError::BadState {
                uuid: uuid.into(),
                expected: "running",
                actual,
            });
        }
        Ok(g)
    }

    /// The running guest that writes the image file `path`, if any.
    pub(crate) fn image_user(&self, path: &Path) -> Option<Arc<Guest>> {
        self.guests
            .lock()
            .expect("registry lock")
            .values()
            .find(|g| g.writes(path))
            .cloned()
    }

    fn resolve(&self, disk: &DiskSpec) -> Result<Disk, HostError> {
        if disk.image.is_empty() {
            if !disk.cdrom {
                return Err(HostError::NoSuchImage(format!("disk {}", disk.device)));
            }
            return Ok(Disk {
                spec: disk.clone(),
                file: None,
            });
        }
        let path = self.image_path(&disk.sr, &disk.image)?;
        let format = storage::image_format(&path)?;
        if !disk.read_only && !disk.cdrom && self.image_user(&path).is_some() {
            return Err(HostError::ImageInUse(disk.image.clone()));
        }
        Ok(Disk {
            spec: disk.clone(),
            file: Some((path, format)),
        })
    }

    fn check_boot_files(spec: &GuestSpec) -> Result<(), HostError> {
        for (what, path) in [("kernel", &spec.kernel), ("ramdisk", &spec.ramdisk)] {
            if !path.is_empty() && std::fs::File::open(path).is_err() {
                return Err(HostError::MissingFile {
                    what,
                    path: path.clone(),
                });
            }
        }
        Ok(())
    }

    fn check_memory(&self, bytes: u64) -> Result<(), HostError> {
        let needed = bytes + self.config.guest_overhead;
        let available = hostinfo::memory_available();
        if needed > available {
            return Err(HostError::NotEnoughMemory { needed, available });
        }
        Ok(())
    }

    async fn launch(
        &self,
        spec: &GuestSpec,
        paused: bool,
        incoming: Option<Incoming>,
    ) -> Result<Arc<Guest>, HostError> {
        if self.any_guest(&spec.uuid).is_ok() {
            return Err(HostError::GuestExists(spec.uuid.clone()));
        }
        Self::check_boot_files(spec)?;
        self.check_memory(spec.memory)?;
        let mut spec = spec.clone();
        for nic in &mut spec.nics {
            nic.mtu = self.net.fit_mtu(&nic.bridge, nic.mtu).await;
        }
        let spec = &spec;
        let disks = spec
            .disks
            .iter()
            .map(|d| self.resolve(d))
            .collect::<Result<Vec<_>, _>>()?;
        Guest::launch(
            Launch {
                qemu: &self.config.qemu,
                accel: self.accel,
                spec,
                disks,
                paths: self.paths(&spec.uuid),
                paused,
                incoming,
                net: self.net.clone(),
            },
            &self.guests,
            &self.events,
        )
        .await
    }
}

#[async_trait]
impl HostDriver for QemuHost {
    fn info(&self) -> HostInfo {
        self.info.clone()
    }

    async fn metrics(&self) -> HostMetrics {
        self.meter.read()
    }

    async fn ping(&self) -> Result<(), HostError> {
        Ok(())
    }

    async fn guests(&self) -> Vec<(String, GuestState)> {
        let all: Vec<Arc<Guest>> = self
            .guests
            .lock()
            .expect("registry lock")
            .values()
            .cloned()
            .collect();
        let mut out = Vec::new();
        for g in all.into_iter().filter(|g| g.stage() == Stage::Settled) {
            let state = match g.status().await.as_deref() {
                Ok("running") => GuestState::Running,
                Ok(_) => GuestState::Paused,
                Err(_) => continue,
            };
            out.push((g.uuid.clone(), state));
        }
        out
    }

    async fn start(&self, spec: &GuestSpec, paused: bool) -> Result<(), HostError> {
        self.launch(spec, paused, None).await.map(|_| ())
    }

    async fn shutdown(&self, uuid: &str, hard: bool) -> Result<(), HostError> {
        let g = self.guest(uuid)?;
        if hard {
            g.kill().await;
            Ok(())
        } else {
            g.powerdown(self.config.shutdown_timeout).await
        }
    }

    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), HostError> {
        let g = self.guest(uuid)?;
        if hard {
            return g.reset().await;
        }
        // A clean reboot is a clean power-off and a fresh start of the same machine.
        let spec = g.spec();
        g.powerdown(self.config.shutdown_timeout).await?;
        self.launch(&spec, false, None).await.map(|_| ())
    }

    async fn pause(&self, uuid: &str) -> Result<(), HostError> {
        self.guest(uuid)?.set_running(false).await
    }

    async fn unpause(&self, uuid: &str) -> Result<(), HostError> {
        self.guest(uuid)?.set_running(true).await
    }

    async fn suspend(&self, uuid: &str, sr: &str, state_image: &str) -> Result<(), HostError> {
        let g = self.guest(uuid)?;
        let file = self.image_path(sr, state_image)?;
        g.save(&file).await
    }

    async fn resume(
        &self,
        spec: &GuestSpec,
        sr: &str,
        state_image: &str,
        paused: bool,
    ) -> Result<(), HostError> {
        let file = self.image_path(sr, state_image)?;
        self.launch(spec, paused, Some(Incoming::File(file)))
            .await
            .map(|_| ())
    }

    async fn disk_attach(&self, uuid: &str, disk: &DiskSpec) -> Result<(), HostError> {
        let g = self.guest(uuid)?;
        if disk.cdrom {
            return Err(HostError::Unsupported(
                "CD drives cannot be plugged into a running guest; insert media instead".into(),
            ));
        }
        let d = self.resolve(disk)?;
        let (path, format) = d
            .file
            .ok_or_else(|| HostError::NoSuchImage(disk.image.clone()))?;
        g.plug(disk, &path, format).await
    }

    async fn disk_detach(&self, uuid: &str, device: &str) -> Result<(), HostError> {
        self.guest(uuid)?.unplug(device).await
    }

    async fn media_change(
        &self,
        uuid: &str,
        device: &str,
        media: Option<(&str, &str)>,
    ) -> Result<(), HostError> {
        let g = self.guest(uuid)?;
        match media {
            Some((sr, image)) => {
                let path = self.image_path(sr, image)?;
                let spec = DiskSpec {
                    device: device.into(),
                    sr: sr.into(),
                    image: image.into(),
                    read_only: true,
                    cdrom: true,
                };
                g.change_media(device, Some((&path, &spec))).await
            }
            None => g.change_media(device, None).await,
        }
    }

    async fn console_log(&self, uuid: &str) -> Result<Vec<u8>, HostError> {
        let log = self.paths(uuid).console_log();
        std::fs::read(&log).map_err(|_| HostError::NoSuchGuest(uuid.into()))
    }

    async fn console_open(
        &self,
        uuid: &str,
        kind: ConsoleKind,
    ) -> Result<Box<dyn Stream>, HostError> {
        let g = self.guest(uuid)?;
        let sock = match kind {
            ConsoleKind::Serial => g.paths.console(),
            ConsoleKind::Vnc => g.paths.vnc(),
        };
        let stream = tokio::net::UnixStream::connect(&sock)
            .await
            .map_err(|e| HostError::Failed(format!("console of {uuid}: {e}")))?;
        Ok(Box::new(stream))
    }

    async fn set_memory(&self, uuid: &str, bytes: u64) -> Result<(), HostError> {
        self.guest(uuid)?.balloon(bytes).await
    }

    async fn set_vcpus(&self, uuid: &str, count: u32) -> Result<(), HostError> {
        self.guest(uuid)?.set_vcpus(count).await
    }

    async fn guest_metrics(&self, uuid: &str) -> Result<GuestMetrics, HostError> {
        self.guest(uuid)?.metrics().await
    }

    async fn nic_attach(&self, uuid: &str, nic: &NicSpec) -> Result<(), HostError> {
        let g = self.guest(uuid)?;
        let mut nic = nic.clone();
        nic.mtu = self.net.fit_mtu(&nic.bridge, nic.mtu).await;
        g.nic_attach(&nic).await
    }

    async fn nic_detach(&self, uuid: &str, device: &str) -> Result<(), HostError> {
        self.guest(uuid)?.nic_detach(device).await
    }

    async fn nic_move(
        &self,
        uuid: &str,
        device: &str,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), HostError> {
        let g = self.guest(uuid)?;
        let mtu = self.net.fit_mtu(bridge, mtu).await;
        g.nic_move(device, bridge, mtu).await
    }

    fn subscribe(&self) -> broadcast::Receiver<GuestEvent> {
        self.events.subscribe()
    }

    async fn migrate_receive(
        &self,
        spec: &GuestSpec,
        listen_ip: &str,
    ) -> Result<String, HostError> {
        let ip = drover_host::check_listen_ip(listen_ip)?;
        let g = self.launch(spec, false, Some(Incoming::Live)).await?;
        match g.listen(ip).await {
            Ok(uri) => Ok(uri),
            Err(e) => {
                g.kill().await;
                Err(e)
            }
        }
    }

    async fn migrate_send(
        &self,
        uuid: &str,
        uri: &str,
        max_downtime_ms: u64,
    ) -> Result<MigrationStats, HostError> {
        let g = self.guest(uuid)?;
        migrate::check_uri(uri)?;
        // The send goes on to its end even if the caller stops waiting: left alone, QEMU would
        // wait before its switch-over for good, with the guest stopped.
        let (uri, bandwidth) = (uri.to_string(), self.config.migration_bandwidth);
        tokio::spawn(async move { g.send(&uri, max_downtime_ms, bandwidth).await })
            .await
            .map_err(|e| HostError::Failed(format!("the send of guest {uuid} stopped: {e}")))?
    }

    async fn migrate_cancel(&self, uuid: &str) -> Result<(), HostError> {
        self.any_guest(uuid)?.cancel_send().await
    }

    async fn migrate_incoming_finish(&self, uuid: &str, commit: bool) -> Result<(), HostError> {
        let g = match self.any_guest(uuid) {
            Ok(g) => g,
            // A waiting QEMU whose send failed ends by itself.
            Err(_) if !commit => return Ok(()),
            Err(e) => return Err(e),
        };
        match (g.stage(), commit) {
            (Stage::Settled, true) => Ok(()),
            (Stage::Incoming, true) => {
                g.arrived().await?;
                g.set_stage(Stage::Settled);
                Ok(())
            }
            (Stage::Incoming, false) => {
                g.kill().await;
                Ok(())
            }
            _ => Err(HostError::BadState {
                uuid: uuid.into(),
                expected: "incoming",
                actual: g.state_name().await,
            }),
        }
    }

    async fn migrate_release(&self, uuid: &str) -> Result<(), HostError> {
        let g = self.any_guest(uuid)?;
        if g.stage() != Stage::Sent {
            return Err(HostError::BadState {
                uuid: uuid.into(),
                expected: "migrated",
                actual: g.state_name().await,
            });
        }
        g.kill().await;
        Ok(())
    }

    async fn sr_attach(&self, sr: &str, location: &str) -> Result<StorageInfo, HostError> {
        self.attach_sr(sr, location)
    }

    async fn sr_detach(&self, sr: &str) -> Result<(), HostError> {
        self.srs.lock().expect("srs lock").remove(sr);
        Ok(())
    }

    async fn sr_scan(&self, sr: &str) -> Result<Vec<ImageInfo>, HostError> {
        self.scan(sr)
    }

    async fn storage_info(&self, sr: &str) -> Result<StorageInfo, HostError> {
        self.sr_figures(sr)
    }

    async fn image_create(
        &self,
        sr: &str,
        name: &str,
        size: u64,
        format: ImageFormat,
    ) -> Result<ImageInfo, HostError> {
        self.create_image(sr, name, size, format).await
    }

    async fn image_destroy(&self, sr: &str, image: &str) -> Result<(), HostError> {
        self.destroy_image(sr, image).await
    }

    async fn image_clone(&self, sr: &str, src: &str, dst: &str) -> Result<ImageInfo, HostError> {
        self.clone_image(sr, src, dst).await
    }

    async fn image_copy(
        &self,
        sr: &str,
        src: &str,
        dst_sr: &str,
        dst: &str,
    ) -> Result<ImageInfo, HostError> {
        self.copy_image(sr, src, dst_sr, dst).await
    }

    async fn image_resize(&self, sr: &str, image: &str, size: u64) -> Result<ImageInfo, HostError> {
        self.resize_image(sr, image, size).await
    }

    async fn image_info(&self, sr: &str, image: &str) -> Result<ImageInfo, HostError> {
        self.image_figures(sr, image)
    }

    async fn image_import(
        &self,
        sr: &str,
        image: &str,
        format: &str,
        data: ByteSource,
    ) -> Result<ImageInfo, HostError> {
        self.import_image(sr, image, format, data).await
    }

    async fn image_from_files(
        &self,
        sr: &str,
        name: &str,
        label: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<ImageInfo, HostError> {
        self.iso_image(sr, name, label, files).await
    }

    async fn image_export(&self, sr: &str, image: &str) -> Result<ByteSource, HostError> {
        self.export_image(sr, image).await
    }

    async fn net_capabilities(&self) -> NetCapabilities {
        self.net.capabilities()
    }

    async fn network_ensure(&self, spec: &NetworkSpec) -> Result<(), HostError> {
        self.net.ensure(spec).await
    }

    async fn network_remove(&self, bridge: &str) -> Result<(), HostError> {
        self.net.remove(bridge).await
    }

    async fn network_prune(&self, keep: &[String]) -> Result<(), HostError> {
        self.net.prune(keep).await
    }

    async fn pif_scan(&self) -> Result<Vec<PifInfo>, HostError> {
        self.net.scan().await
    }

    async fn pif_counters(&self, device: &str) -> Result<PifCounters, HostError> {
        self.net.counters(device).await
    }

    async fn pif_configure_ip(&self, bridge: &str, config: &IpConfig) -> Result<(), HostError> {
        self.net.configure_ip(bridge, config).await
    }

    async fn pif_configure_ipv6(&self, bridge: &str, config: &Ip6Config) -> Result<(), HostError> {
        self.net.configure_ipv6(bridge, config).await
    }

    async fn bond_create(&self, spec: &BondSpec) -> Result<(), HostError> {
        self.net.bond_create(spec).await
    }

    async fn bond_destroy(&self, name: &str) -> Result<(), HostError> {
        self.net.bond_destroy(name).await
    }
}
