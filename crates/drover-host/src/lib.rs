//! The host-driver interface.
//!
//! The engine reaches a host only through [`HostDriver`]: starting and stopping guests, reading
//! metrics, and creating disk images. A host can be simulated ([`sim::SimHost`]), local or remote;
//! the engine cannot tell the difference.

pub mod net;
pub mod sim;

pub use net::*;

use std::collections::BTreeMap;

use async_trait::async_trait;

/// What a host says about itself.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// Number of physical CPUs.
    pub cpu_count: u32,
    /// CPU model name.
    pub cpu_model: String,
    /// CPU speed in MHz.
    pub cpu_speed_mhz: u32,
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Driver name (`sim`, `qemu`).
    pub driver: &'static str,
}

/// Live figures of a host.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct HostMetrics {
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Free memory in bytes.
    pub memory_free: u64,
    /// Utilisation of each physical CPU, by CPU number, 0..1.
    pub cpu_utilisation: Vec<f64>,
}

/// Power state of a guest as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GuestState {
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Suspended to a saved image.
    Suspended,
}

/// Everything a host needs to run a guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuestSpec {
    /// The VM's uuid, the guest's identity on the host.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Virtual CPUs at start.
    pub vcpus: u32,
    /// The most virtual CPUs the guest may have while it runs (0: as many as at start).
    #[serde(default)]
    pub vcpus_max: u32,
    /// Memory in bytes.
    pub memory: u64,
    /// Direct-boot kernel path, if any.
    pub kernel: String,
    /// Direct-boot initrd path, if any.
    pub ramdisk: String,
    /// Kernel command line.
    pub args: String,
    /// HVM boot policy (`BIOS order` or empty).
    pub boot_policy: String,
    /// Boot device order (`c`, `d`, `n`, ...).
    pub boot_order: String,
    /// Disks, in device order.
    pub disks: Vec<DiskSpec>,
    /// Network interfaces, in device order.
    #[serde(default)]
    pub nics: Vec<NicSpec>,
}

/// A disk attached to a guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskSpec {
    /// Device position (`0`, `1`, ... or `xvda`).
    pub device: String,
    /// The storage repository holding the image; empty for an empty CD drive.
    pub sr: String,
    /// The image's location in its SR; empty for an empty CD drive.
    pub image: String,
    /// Read-only.
    pub read_only: bool,
    /// A CD drive rather than a disk.
    pub cdrom: bool,
}

/// Live figures of one guest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GuestMetrics {
    /// Memory the guest has, in bytes.
    pub memory_actual: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Utilisation of each virtual CPU, 0..1.
    pub vcpu_utilisation: Vec<f64>,
    /// CPU time the guest's virtual CPUs have used since it started, microseconds.
    pub cpu_time_us: u64,
    /// Throughput of each disk, by device position.
    pub disks: Vec<DiskIo>,
    /// Traffic of each network interface, by device position.
    pub nics: Vec<NicIo>,
    /// What the guest's own agent last reported, if it runs one.
    pub agent: Option<AgentReport>,
}

/// Throughput of one guest disk since the previous reading.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiskIo {
    /// Device position.
    pub device: String,
    /// KiB read per second.
    pub read_kbs: f64,
    /// KiB written per second.
    pub write_kbs: f64,
}

/// A report of the agent running inside a guest.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentReport {
    /// Operating system facts (`name`, `distro`, `uname`, `kernel`, ...).
    pub os_version: BTreeMap<String, String>,
    /// Memory figures in KiB (`total`, `free`, ...).
    pub memory: BTreeMap<String, String>,
    /// Addresses by `<NIC device position>/ip` (`0/ip`, `0/ipv4/1`, ...); the driver maps the
    /// guest's interfaces to NIC positions by MAC.
    pub networks: BTreeMap<String, String>,
    /// Disks the guest sees.
    pub disks: BTreeMap<String, String>,
    /// Anything else it said.
    pub other: BTreeMap<String, String>,
}

/// Which console of a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConsoleKind {
    /// The serial console (text).
    Serial,
    /// The graphical console (RFB/VNC).
    Vnc,
}

/// A byte stream to and from a guest console or an image upload.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// A byte source, such as an HTTP upload.
pub type ByteSource = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// The format of a disk image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ImageFormat {
    /// qcow2, growing as written, able to share a backing image.
    Qcow2,
    /// A plain file of bytes.
    Raw,
}

/// Something that happened to a guest without the engine asking.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GuestEvent {
    /// The guest stopped (powered off, crashed or was killed).
    Exited {
        /// The VM's uuid.
        uuid: String,
        /// Why, in words.
        reason: String,
    },
}

/// Figures of a finished live migration, as the source measured them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MigrationStats {
    /// How long the guest was stopped at the switch-over, milliseconds.
    pub downtime_ms: u64,
    /// How long the whole migration took, milliseconds.
    pub total_ms: u64,
    /// Bytes of guest memory sent.
    pub transferred_bytes: u64,
}

/// Errors of a host driver.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The host does not have this guest.
    #[error("no guest {0} on this host")]
    NoSuchGuest(String),
    /// The guest is already running here.
    #[error("guest {0} is already present on this host")]
    GuestExists(String),
    /// The guest is not in a state that allows the request.
    #[error("guest {uuid} is {actual}, the request needs {expected}")]
    BadState {
        /// The VM's uuid.
        uuid: String,
        /// What the request needs.
        expected: &'static str,
        /// What it is.
        actual: &'static str,
    },
    /// Not enough free memory.
    #[error("host needs {needed} bytes of free memory, has {available}")]
    NotEnoughMemory {
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// No such disk image.
    #[error("no disk image {0}")]
    NoSuchImage(String),
    /// The storage is full.
    #[error("storage full: {requested} bytes requested, {available} available")]
    StorageFull {
        /// Bytes requested.
        requested: u64,
        /// Bytes available.
        available: u64,
    },
    /// The guest did not stop in time.
    #[error("guest {0} did not shut down in time")]
    ShutdownTimeout(String),
    /// A running guest uses the image in a way that forbids the request.
    #[error("disk image {0} is in use by a running guest")]
    ImageInUse(String),
    /// The image's contents are not a disk image of the expected format.
    #[error("bad disk image {image}: {reason}")]
    BadImage {
        /// The image.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// The storage repository is not attached on this host, or its directory is gone.
    #[error("storage repository {sr} is unavailable: {reason}")]
    SrUnavailable {
        /// The SR.
        sr: String,
        /// Why.
        reason: String,
    },
    /// A file the guest needs (kernel, ramdisk) is missing.
    #[error("{what} {path} does not exist or cannot be read")]
    MissingFile {
        /// Which file (`kernel`, `ramdisk`).
        what: &'static str,
        /// Its path.
        path: String,
    },
    /// The host cannot do this at all.
    #[error("{0}")]
    Unsupported(String),
    /// A network device of this name exists and Drover did not make it.
    #[error("network device {0} exists and is not Drover's")]
    DeviceTaken(String),
    /// No network interface of this name on the host.
    #[error("no network interface {0} on this host")]
    NoSuchDevice(String),
    /// The interface carries the host's own traffic (addresses or the default route); Drover
    /// leaves it alone.
    #[error("network interface {0} carries the host's own addresses or routes")]
    DeviceInUse(String),
    /// Setting up a network device failed.
    #[error("configuring {device} failed: {reason}")]
    NetConfig {
        /// The device.
        device: String,
        /// What went wrong.
        reason: String,
    },
    /// A live migration failed; the guest runs on the source as before.
    #[error("live migration failed: {0}")]
    MigrationFailed(String),
    /// A live migration was cancelled; the guest runs on the source as before.
    #[error("live migration cancelled")]
    MigrationCancelled,
    /// Anything else the host reports.
    #[error("host failure: {0}")]
    Failed(String),
}

/// Checks the arguments of [`HostDriver::image_from_files`] as every host does: the label is
/// 1 to 32 printable ASCII characters, and every path is relative, made of non-empty components
/// other than `.` and `..`, without NUL or `\\`, and named once.
pub fn check_image_files(
    name: &str,
    label: &str,
    files: &[(String, Vec<u8>)],
) -> Result<(), HostError> {
    let bad = |reason: String| HostError::BadImage {
        image: name.into(),
        reason,
    };
    if label.is_empty() || label.len() > 32 || !label.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad(format!(
            "volume label {label:?} must be 1 to 32 printable ASCII characters"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (path, _) in files {
        if path.is_empty() || path.starts_with('/') {
            return Err(bad(format!(
                "file path {path:?} must be relative and non-empty"
            )));
        }
        if path.contains('\0') || path.contains('\\') {
            return Err(bad(format!("file path {path:?} has a NUL or backslash")));
        }
        if path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(bad(format!(
                "file path {path:?} has an empty, `.` or `..` component"
            )));
        }
        if !seen.insert(path.as_str()) {
            return Err(bad(format!("file path {path:?} is given twice")));
        }
    }
    // A file cannot also be a directory of another file.
    for (path, _) in files {
        let dir = format!("{path}/");
        if seen
            .range(dir.as_str()..)
            .next()
            .is_some_and(|p| p.starts_with(&dir))
        {
            return Err(bad(format!("file path {path:?} is also a directory")));
        }
    }
    Ok(())
}

/// Checks the `listen_ip` of [`HostDriver::migrate_receive`] as every host does: an IPv4 or
/// IPv6 address that is neither a wildcard nor multicast, so that a source can reach the URI
/// made of it.
pub fn check_listen_ip(listen_ip: &str) -> Result<std::net::IpAddr, HostError> {
    match listen_ip.parse::<std::net::IpAddr>() {
        Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() => Ok(ip),
        _ => Err(HostError::Failed(format!(
            "{listen_ip:?} is not an address of this host to listen on"
        ))),
    }
}

/// A disk image on a host's storage.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageInfo {
    /// Where the image is within its SR (the VDI's `location`).
    pub location: String,
    /// Size the guest sees, bytes.
    pub virtual_size: u64,
    /// Bytes the image takes on the storage.
    pub physical_utilisation: u64,
}

/// Storage figures of a storage repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StorageInfo {
    /// Capacity in bytes.
    pub physical_size: u64,
    /// Bytes in use.
    pub physical_utilisation: u64,
}

/// A host as the engine sees it.
#[async_trait]
pub trait HostDriver: Send + Sync {
    /// What the host is.
    fn info(&self) -> HostInfo;
    /// Current host figures.
    async fn metrics(&self) -> HostMetrics;
    /// Guests present on the host with their states, for reconciliation after a restart.
    async fn guests(&self) -> Vec<(String, GuestState)>;
    /// Answers while the host serves requests: the engine's heartbeat.
    async fn ping(&self) -> Result<(), HostError>;
    /// Starts a guest, paused if asked.
    async fn start(&self, spec: &GuestSpec, paused: bool) -> Result<(), HostError>;
    /// Asks the guest to power off (ACPI) and waits for it, or stops it at once when `hard`.
    async fn shutdown(&self, uuid: &str, hard: bool) -> Result<(), HostError>;
    /// Reboots the guest, cleanly or by reset.
    async fn reboot(&self, uuid: &str, hard: bool) -> Result<(), HostError>;
    /// Pauses the guest's virtual CPUs.
    async fn pause(&self, uuid: &str) -> Result<(), HostError>;
    /// Resumes the guest's virtual CPUs.
    async fn unpause(&self, uuid: &str) -> Result<(), HostError>;
    /// Saves the guest's memory into the image `state_image` on `sr` and stops it.
    async fn suspend(&self, uuid: &str, sr: &str, state_image: &str) -> Result<(), HostError>;
    /// Restores a suspended guest from `state_image` on `sr`, paused if asked.
    async fn resume(
        &self,
        spec: &GuestSpec,
        sr: &str,
        state_image: &str,
        paused: bool,
    ) -> Result<(), HostError>;
    /// Plugs a disk into a running guest.
    async fn disk_attach(&self, uuid: &str, disk: &DiskSpec) -> Result<(), HostError>;
    /// Unplugs the disk at `device` from a running guest; waits until the guest lets it go.
    async fn disk_detach(&self, uuid: &str, device: &str) -> Result<(), HostError>;
    /// Puts media into (`Some`) or ejects it from (`None`) the CD drive at `device`.
    async fn media_change(
        &self,
        uuid: &str,
        device: &str,
        media: Option<(&str, &str)>,
    ) -> Result<(), HostError>;
    /// The console output kept so far.
    async fn console_log(&self, uuid: &str) -> Result<Vec<u8>, HostError>;
    /// Opens an interactive stream to a console of a running guest.
    async fn console_open(
        &self,
        uuid: &str,
        kind: ConsoleKind,
    ) -> Result<Box<dyn Stream>, HostError>;
    /// Changes the memory target of a running guest.
    async fn set_memory(&self, uuid: &str, bytes: u64) -> Result<(), HostError>;
    /// Changes the number of virtual CPUs of a running guest.
    async fn set_vcpus(&self, uuid: &str, count: u32) -> Result<(), HostError>;
    /// Live figures of a guest.
    async fn guest_metrics(&self, uuid: &str) -> Result<GuestMetrics, HostError>;
    /// Plugs a network interface into a running guest, as a port of its bridge.
    async fn nic_attach(&self, uuid: &str, nic: &NicSpec) -> Result<(), HostError>;
    /// Unplugs the network interface at `device` from a running guest.
    async fn nic_detach(&self, uuid: &str, device: &str) -> Result<(), HostError>;
    /// Moves the network interface at `device` of a running or paused guest to another
    /// bridge, with the MTU of its new network, without the guest seeing an unplug: its host end
    /// becomes a port of `bridge` and leaves its old one. The guest keeps the move across a
    /// re-attach of the host and in what it is suspended with.
    async fn nic_move(
        &self,
        uuid: &str,
        device: &str,
        bridge: &str,
        mtu: u32,
    ) -> Result<(), HostError>;
    /// Subscribes to guest events.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<GuestEvent>;

    /// Destination side of a live migration: launches guest `spec` waiting for its state on a
    /// TCP port of `listen_ip` (an address of this host, not a wildcard) and returns the URI the
    /// source sends to (`tcp:IP:PORT`). Memory and disks are checked as for [`start`](Self::start).
    ///
    /// Until [`migrate_incoming_finish`](Self::migrate_incoming_finish) the guest is present (a
    /// `start` of the same uuid fails with [`HostError::GuestExists`]) but is not yet this
    /// host's: [`guests`](Self::guests) does not list it, ordinary operations on it are refused
    /// with [`HostError::BadState`] (`incoming`), and its end emits no [`GuestEvent::Exited`]
    /// (a waiting guest whose send fails or is cancelled may end by itself).
    async fn migrate_receive(&self, spec: &GuestSpec, listen_ip: &str)
        -> Result<String, HostError>;
    /// Source side: sends running (or paused) guest `uuid` to `uri`, from the destination's
    /// [`migrate_receive`](Self::migrate_receive), bounding the final pause to
    /// `max_downtime_ms`. Returns once the destination has the whole state: the guest is then
    /// stopped here with its disks released, and until [`migrate_release`](Self::migrate_release)
    /// it is neither listed by [`guests`](Self::guests) nor open to ordinary operations
    /// ([`HostError::BadState`], `migrated`); the destination runs it from then on, paused if it
    /// was paused here. Between this answer and the two finishing calls no host lists the guest.
    ///
    /// On failure ([`HostError::MigrationFailed`]) or a [`migrate_cancel`](Self::migrate_cancel)
    /// ([`HostError::MigrationCancelled`]) the guest keeps running here as before. Guest code
    /// never runs on both hosts: the destination starts it only after the source has stopped it
    /// and released its disks, and a cancel that comes after that point is refused.
    async fn migrate_send(
        &self,
        uuid: &str,
        uri: &str,
        max_downtime_ms: u64,
    ) -> Result<MigrationStats, HostError>;
    /// Asks the outgoing migration of `uuid` in progress to stop; its `migrate_send` then fails
    /// with [`HostError::MigrationCancelled`]. [`HostError::NoSuchGuest`] without the guest;
    /// [`HostError::BadState`] when no send is in progress, or when it is switching over (too
    /// late: the send ends by itself, and may well succeed). Either way the outcome is what
    /// `migrate_send` answers, so a caller keeps waiting for it rather than dropping it.
    async fn migrate_cancel(&self, uuid: &str) -> Result<(), HostError>;
    /// Destination side, after the source's `migrate_send` returned: `commit = true` makes the
    /// received guest this host's (from then on it behaves exactly like a guest started here:
    /// listed, events, re-attach after the agent restarts, consoles, metrics, shutdown...),
    /// failing with [`HostError::MigrationFailed`] if its state did not arrive; a guest already
    /// committed is left as it is. `commit = false` stops the waiting or received guest and
    /// forgets it, with no [`GuestEvent::Exited`]; a guest that already ended is no error.
    async fn migrate_incoming_finish(&self, uuid: &str, commit: bool) -> Result<(), HostError>;
    /// Source side, after a successful `migrate_send`: ends the stopped guest here and forgets
    /// it, with no [`GuestEvent::Exited`].
    async fn migrate_release(&self, uuid: &str) -> Result<(), HostError>;

    /// Attaches the storage repository `sr` found at `location` (a directory, for real hosts).
    async fn sr_attach(&self, sr: &str, location: &str) -> Result<StorageInfo, HostError>;
    /// Forgets the storage repository `sr` (its files stay).
    async fn sr_detach(&self, sr: &str) -> Result<(), HostError>;
    /// Every image in the storage repository, including files placed there by hand.
    async fn sr_scan(&self, sr: &str) -> Result<Vec<ImageInfo>, HostError>;
    /// Capacity and use of the storage repository `sr`.
    async fn storage_info(&self, sr: &str) -> Result<StorageInfo, HostError>;
    /// Creates an empty image of `size` bytes named after `name`; the answer says where it is.
    async fn image_create(
        &self,
        sr: &str,
        name: &str,
        size: u64,
        format: ImageFormat,
    ) -> Result<ImageInfo, HostError>;
    /// Deletes an image.
    async fn image_destroy(&self, sr: &str, image: &str) -> Result<(), HostError>;
    /// Makes a thin clone `dst` of `src` (sharing its data until written), even while a
    /// running guest writes to `src`.
    async fn image_clone(&self, sr: &str, src: &str, dst: &str) -> Result<ImageInfo, HostError>;
    /// Makes a full, independent copy `dst` of `src` on `dst_sr`.
    async fn image_copy(
        &self,
        sr: &str,
        src: &str,
        dst_sr: &str,
        dst: &str,
    ) -> Result<ImageInfo, HostError>;
    /// Grows an image to `size` bytes.
    async fn image_resize(&self, sr: &str, image: &str, size: u64) -> Result<ImageInfo, HostError>;
    /// Figures of an image.
    async fn image_info(&self, sr: &str, image: &str) -> Result<ImageInfo, HostError>;
    /// Replaces the contents of `image` with `data`, given in `format` (`raw`, `qcow2`);
    /// the image keeps its own format and must be large enough.
    async fn image_import(
        &self,
        sr: &str,
        image: &str,
        format: &str,
        data: ByteSource,
    ) -> Result<ImageInfo, HostError>;
    /// Makes a read-only ISO 9660 image (Rock Ridge and Joliet names) named after `name` in
    /// `sr`, with volume label `label`, holding `files` (relative paths with `/` separators,
    /// contents); the answer says where it is. Used for config drives. An image of that name
    /// is replaced atomically (a guest that has the old one in a CD drive keeps reading it);
    /// bad paths or labels are refused as [`HostError::BadImage`] (see [`check_image_files`]).
    async fn image_from_files(
        &self,
        sr: &str,
        name: &str,
        label: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<ImageInfo, HostError>;
    /// The guest-visible contents of an image as raw bytes (a qcow2 image is converted),
    /// streamed. Refused ([`HostError::ImageInUse`]) while a running guest writes the image.
    async fn image_export(&self, sr: &str, image: &str) -> Result<ByteSource, HostError>;

    /// What the host's kernel can do for networks.
    async fn net_capabilities(&self) -> NetCapabilities;
    /// Makes the network's bridge, uplink port and DHCP service as `spec` says, or brings
    /// existing ones in line with it. A device of the bridge's name that Drover did not make is
    /// refused ([`HostError::DeviceTaken`]); on failure nothing new is left behind.
    async fn network_ensure(&self, spec: &NetworkSpec) -> Result<(), HostError>;
    /// Removes a network's bridge, uplink port, DHCP service and lease file.
    async fn network_remove(&self, bridge: &str) -> Result<(), HostError>;
    /// Removes every bridge, port, bond and DHCP service Drover made on this host, except the
    /// networks whose bridges are in `keep` and the bonds in `keep`.
    async fn network_prune(&self, keep: &[String]) -> Result<(), HostError>;
    /// The host's network interfaces that can carry guest traffic (not Drover's own devices).
    async fn pif_scan(&self) -> Result<Vec<PifInfo>, HostError>;
    /// Counters of a host interface.
    async fn pif_counters(&self, device: &str) -> Result<PifCounters, HostError>;
    /// Sets the IPv4 configuration of a bridge Drover made.
    async fn pif_configure_ip(&self, bridge: &str, config: &IpConfig) -> Result<(), HostError>;
    /// Sets the IPv6 configuration of Drover's bridge `bridge` (its link-local address stays).
    async fn pif_configure_ipv6(&self, bridge: &str, config: &Ip6Config) -> Result<(), HostError>;
    /// Makes a bond of host interfaces.
    async fn bond_create(&self, spec: &BondSpec) -> Result<(), HostError>;
    /// Removes a bond Drover made, giving its members back as they were.
    async fn bond_destroy(&self, name: &str) -> Result<(), HostError>;
}
