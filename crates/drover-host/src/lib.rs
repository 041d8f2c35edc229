//! The host-driver interface.
//!
//! The engine reaches a host only through [`HostDriver`]: starting and stopping guests, reading
//! metrics, and creating disk images. A host can be simulated ([`sim::SimHost`]), local or remote;
//! the engine cannot tell the difference.

pub mod sim;

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
#[derive(Debug, Clone, Copy, Default)]
pub struct HostMetrics {
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Free memory in bytes.
    pub memory_free: u64,
    /// Utilisation of each physical CPU, 0..1.
    pub cpu_utilisation: f64,
}

/// Power state of a guest as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestState {
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Suspended to a saved image.
    Suspended,
}

/// Everything a host needs to run a guest.
#[derive(Debug, Clone, Default)]
pub struct GuestSpec {
    /// The VM's uuid, the guest's identity on the host.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// Virtual CPUs at start.
    pub vcpus: u32,
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
}

/// A disk attached to a guest.
#[derive(Debug, Clone, Default)]
pub struct DiskSpec {
    /// Device position (`0`, `1`, ... or `xvda`).
    pub device: String,
    /// The disk image's id on the host; empty for an empty CD drive.
    pub image: String,
    /// Read-only.
    pub read_only: bool,
    /// A CD drive rather than a disk.
    pub cdrom: bool,
}

/// Live figures of one guest.
#[derive(Debug, Clone, Default)]
pub struct GuestMetrics {
    /// Memory the guest has, in bytes.
    pub memory_actual: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Utilisation of each virtual CPU, 0..1.
    pub vcpu_utilisation: Vec<f64>,
}

/// Something that happened to a guest without the engine asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEvent {
    /// The guest stopped (powered off, crashed or was killed).
    Exited {
        /// The VM's uuid.
        uuid: String,
        /// Why, in words.
        reason: String,
    },
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
    /// Anything else the host reports.
    #[error("host failure: {0}")]
    Failed(String),
}

/// A disk image on a host's storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// Size the guest sees, bytes.
    pub virtual_size: u64,
    /// Bytes the image takes on the storage.
    pub physical_utilisation: u64,
}

/// Storage figures of a storage repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    /// Saves the guest's memory into the image `state_image` and stops it.
    async fn suspend(&self, uuid: &str, state_image: &str) -> Result<(), HostError>;
    /// Restores a suspended guest from `state_image`, paused if asked.
    async fn resume(
        &self,
        spec: &GuestSpec,
        state_image: &str,
        paused: bool,
    ) -> Result<(), HostError>;
    /// Changes the memory target of a running guest.
    async fn set_memory(&self, uuid: &str, bytes: u64) -> Result<(), HostError>;
    /// Changes the number of virtual CPUs of a running guest.
    async fn set_vcpus(&self, uuid: &str, count: u32) -> Result<(), HostError>;
    /// Live figures of a guest.
    async fn guest_metrics(&self, uuid: &str) -> Result<GuestMetrics, HostError>;
    /// Subscribes to guest events.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<GuestEvent>;

    /// Attaches the storage repository `sr` found at `location` (a directory, for real hosts).
    async fn sr_attach(&self, sr: &str, location: &str) -> Result<StorageInfo, HostError>;
    /// Capacity and use of the storage repository `sr`.
    async fn storage_info(&self, sr: &str) -> Result<StorageInfo, HostError>;
    /// Creates an empty image of `size` bytes.
    async fn image_create(&self, sr: &str, image: &str, size: u64) -> Result<ImageInfo, HostError>;
    /// Deletes an image.
    async fn image_destroy(&self, sr: &str, image: &str) -> Result<(), HostError>;
    /// Makes `dst` a thin clone of `src` (sharing its data until written).
    async fn image_clone(&self, sr: &str, src: &str, dst: &str) -> Result<ImageInfo, HostError>;
    /// Makes `dst` a full, independent copy of `src` on `dst_sr`.
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
}
