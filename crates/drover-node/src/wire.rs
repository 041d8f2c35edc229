//! Frames and messages of the node protocol.
//!
//! Every frame is a 4-byte big-endian length followed by a postcard-encoded [`Frame`] (or an
//! enrolment message), at most [`MAX_FRAME`] bytes. Postcard is a compact, non-self-describing
//! serde format with a documented, stable (1.x) wire format and no `unsafe` in its decoder; the
//! message types are not recursive, so decoding depth is bounded by the types themselves, and
//! collection lengths cannot make the decoder allocate more than the frame holds.

use drover_host::{
    BondSpec, ConsoleKind, DiskSpec, GuestEvent, GuestMetrics, GuestSpec, GuestState, HostError,
    HostInfo, HostMetrics, ImageFormat, ImageInfo, Ip6Config, IpConfig, NetCapabilities,
    NetworkSpec, NicSpec, PifCounters, PifInfo, StorageInfo,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame either side sends or accepts, in bytes.
pub const MAX_FRAME: usize = 16 << 20;
/// Bytes of stream data carried by one [`Frame::Data`].
pub const CHUNK: usize = 64 << 10;
/// Chunks a stream's sender may have in flight before the receiver grants more credit.
pub const WINDOW: u32 = 16;

/// The codec of the node protocol: length-prefixed frames of at most [`MAX_FRAME`] bytes.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Encodes a message.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(msg)
}

/// Decodes a message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// One frame on an established (mutually authenticated) connection.
#[derive(Debug, Serialize, Deserialize)]
pub enum Frame {
    /// Engine to node: call a driver method; `id` is unique on the connection and names the
    /// byte stream the call opens, if any.
    Request {
        /// Request id.
        id: u64,
        /// The call.
        call: Call,
    },
    /// Node to engine: the answer to request `id`.
    Response {
        /// Request id.
        id: u64,
        /// The answer.
        result: Result<Reply, WireError>,
    },
    /// Node to engine: a guest event.
    Event(GuestEvent),
    /// Either way: bytes of stream `stream`.
    Data {
        /// Stream (request) id.
        stream: u64,
        /// The bytes, at most [`CHUNK`].
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Either way: the sender's side of stream `stream` ended cleanly.
    End {
        /// Stream id.
        stream: u64,
    },
    /// Either way: the sender's side of stream `stream` failed.
    Abort {
        /// Stream id.
        stream: u64,
        /// Why.
        reason: String,
    },
    /// Either way: the receiver consumed `chunks` chunks of stream `stream`; the sender may
    /// send that many more.
    Credit {
        /// Stream id.
        stream: u64,
        /// Chunks granted.
        chunks: u32,
    },
}

/// A [`drover_host::HostDriver`] method and its arguments.
#[allow(missing_docs)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    Info,
    Metrics,
    Guests,
    Start {
        spec: GuestSpec,
        paused: bool,
    },
    Shutdown {
        uuid: String,
        hard: bool,
    },
    Reboot {
        uuid: String,
        hard: bool,
    },
    Pause {
        uuid: String,
    },
    Unpause {
        uuid: String,
    },
    Suspend {
        uuid: String,
        sr: String,
        state_image: String,
    },
    Resume {
        spec: GuestSpec,
        sr: String,
        state_image: String,
        paused: bool,
    },
    DiskAttach {
        uuid: String,
        disk: DiskSpec,
    },
    DiskDetach {
        uuid: String,
        device: String,
    },
    MediaChange {
        uuid: String,
        device: String,
        media: Option<(String, String)>,
    },
    ConsoleLog {
        uuid: String,
    },
    ConsoleOpen {
        uuid: String,
        kind: ConsoleKind,
    },
    SetMemory {
        uuid: String,
        bytes: u64,
    },
    SetVcpus {
        uuid: String,
        count: u32,
    },
    GuestMetrics {
        uuid: String,
    },
    NicAttach {
        uuid: String,
        nic: NicSpec,
    },
    NicDetach {
        uuid: String,
        device: String,
    },
    NicMove {
        uuid: String,
        device: String,
        bridge: String,
        mtu: u32,
    },
    SrAttach {
        sr: String,
        location: String,
    },
    SrDetach {
        sr: String,
    },
    SrScan {
        sr: String,
    },
    StorageInfo {
        sr: String,
    },
    ImageCreate {
        sr: String,
        name: String,
        size: u64,
        format: WireFormat,
    },
    ImageDestroy {
        sr: String,
        image: String,
    },
    ImageClone {
        sr: String,
        src: String,
        dst: String,
    },
    ImageCopy {
        sr: String,
        src: String,
        dst_sr: String,
        dst: String,
    },
    ImageResize {
        sr: String,
        image: String,
        size: u64,
    },
    ImageInfo {
        sr: String,
        image: String,
    },
    /// The image's bytes follow as stream data from the engine.
    ImageImport {
        sr: String,
        image: String,
        format: String,
    },
    ImageFromFiles {
        sr: String,
        name: String,
        label: String,
        files: Vec<(String, Vec<u8>)>,
    },
    ImageExport {
        sr: String,
        image: String,
    },
    NetCapabilities,
    NetworkEnsure {
        spec: NetworkSpec,
    },
    NetworkRemove {
        bridge: String,
    },
    NetworkPrune {
        keep: Vec<String>,
    },
    PifScan,
    PifCounters {
        device: String,
    },
    PifConfigureIp {
        bridge: String,
        config: IpConfig,
    },
    PifConfigureIpv6 {
        bridge: String,
        config: Ip6Config,
    },
    BondCreate {
        spec: BondSpec,
    },
    BondDestroy {
        name: String,
    },
}

impl Call {
    /// Whether the call may take long (guest shutdown, image copies, streams), and so gets the
    /// long timeout.
    pub fn is_long(&self) -> bool {
        matches!(
            self,
            Call::Shutdown { .. }
                | Call::Reboot { .. }
                | Call::Suspend { .. }
                | Call::Resume { .. }
                | Call::DiskDetach { .. }
                | Call::ImageCopy { .. }
                | Call::ImageClone { .. }
                | Call::ImageResize { .. }
                | Call::ImageImport { .. }
                | Call::ImageFromFiles { .. }
                | Call::ImageExport { .. }
                | Call::NetworkEnsure { .. }
                | Call::NetworkPrune { .. }
        )
    }
}

/// The answer of a [`Call`].
#[allow(missing_docs)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Unit,
    Info(WireHostInfo),
    Metrics(HostMetrics),
    Guests(Vec<(String, GuestState)>),
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The byte stream named by the request id is open.
    Stream,
    GuestMetrics(GuestMetrics),
    StorageInfo(StorageInfo),
    Images(Vec<ImageInfo>),
    Image(ImageInfo),
    NetCapabilities(NetCapabilities),
    Pifs(Vec<PifInfo>),
    PifCounters(PifCounters),
}

/// [`ImageFormat`] on the wire.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum WireFormat {
    Qcow2,
    Raw,
}

impl From<ImageFormat> for WireFormat {
    fn from(f: ImageFormat) -> Self {
        match f {
            ImageFormat::Qcow2 => WireFormat::Qcow2,
            ImageFormat::Raw => WireFormat::Raw,
        }
    }
}

impl From<WireFormat> for ImageFormat {
    fn from(f: WireFormat) -> Self {
        match f {
            WireFormat::Qcow2 => ImageFormat::Qcow2,
            WireFormat::Raw => ImageFormat::Raw,
        }
    }
}

/// [`HostInfo`] on the wire (its driver name is an owned string).
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireHostInfo {
    pub hostname: String,
    pub cpu_count: u32,
    pub cpu_model: String,
    pub cpu_speed_mhz: u32,
    pub memory_total: u64,
    pub driver: String,
}

impl From<HostInfo> for WireHostInfo {
    fn from(i: HostInfo) -> Self {
        WireHostInfo {
            hostname: i.hostname,
            cpu_count: i.cpu_count,
            cpu_model: i.cpu_model,
            cpu_speed_mhz: i.cpu_speed_mhz,
            memory_total: i.memory_total,
            driver: i.driver.into(),
        }
    }
}

impl From<WireHostInfo> for HostInfo {
    fn from(i: WireHostInfo) -> Self {
        HostInfo {
            hostname: i.hostname,
            cpu_count: i.cpu_count,
            cpu_model: i.cpu_model,
            cpu_speed_mhz: i.cpu_speed_mhz,
            memory_total: i.memory_total,
            driver: intern(&i.driver, &["sim", "qemu"], "remote"),
        }
    }
}

/// [`HostError`] on the wire: the same variants, with owned strings.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireError {
    NoSuchGuest(String),
    GuestExists(String),
    BadState {
        uuid: String,
        expected: String,
        actual: String,
    },
    NotEnoughMemory {
        needed: u64,
        available: u64,
    },
    NoSuchImage(String),
    StorageFull {
        requested: u64,
        available: u64,
    },
    ShutdownTimeout(String),
    ImageInUse(String),
    BadImage {
        image: String,
        reason: String,
    },
    SrUnavailable {
        sr: String,
        reason: String,
    },
    MissingFile {
        what: String,
        path: String,
    },
    Unsupported(String),
    DeviceTaken(String),
    NoSuchDevice(String),
    DeviceInUse(String),
    NetConfig {
        device: String,
        reason: String,
    },
    Failed(String),
}

/// Guest states named in [`HostError::BadState`].
const STATES: &[&str] = &["running", "paused", "suspended", "halted"];
/// Files named in [`HostError::MissingFile`].
const FILES: &[&str] = &["kernel", "ramdisk"];

/// The static string among `known` equal to `s`, else `other`: strings from the network are
/// mapped onto a fixed set rather than leaked.
fn intern(s: &str, known: &[&'static str], other: &'static str) -> &'static str {
    known.iter().copied().find(|k| *k == s).unwrap_or(other)
}

impl From<&HostError> for WireError {
    fn from(e: &HostError) -> Self {
        use HostError as H;
        match e {
            H::NoSuchGuest(s) => WireError::NoSuchGuest(s.clone()),
            H::GuestExists(s) => WireError::GuestExists(s.clone()),
            H::BadState {
                uuid,
                expected,
                actual,
            } => WireError::BadState {
                uuid: uuid.clone(),
                expected: (*expected).into(),
                actual: (*actual).into(),
            },
            H::NotEnoughMemory { needed, available } => WireError::NotEnoughMemory {
                needed: *needed,
                available: *available,
            },
            H::NoSuchImage(s) => WireError::NoSuchImage(s.clone()),
            H::StorageFull {
                requested,
                available,
            } => WireError::StorageFull {
                requested: *requested,
                available: *available,
            },
            H::ShutdownTimeout(s) => WireError::ShutdownTimeout(s.clone()),
            H::ImageInUse(s) => WireError::ImageInUse(s.clone()),
            H::BadImage { image, reason } => WireError::BadImage {
                image: image.clone(),
                reason: reason.clone(),
            },
            H::SrUnavailable { sr, reason } => WireError::SrUnavailable {
                sr: sr.clone(),
                reason: reason.clone(),
            },
            H::MissingFile { what, path } => WireError::MissingFile {
                what: (*what).into(),
                path: path.clone(),
            },
            H::Unsupported(s) => WireError::Unsupported(s.clone()),
            H::DeviceTaken(s) => WireError::DeviceTaken(s.clone()),
            H::NoSuchDevice(s) => WireError::NoSuchDevice(s.clone()),
            H::DeviceInUse(s) => WireError::DeviceInUse(s.clone()),
            H::NetConfig { device, reason } => WireError::NetConfig {
                device: device.clone(),
                reason: reason.clone(),
            },
            H::Failed(s) => WireError::Failed(s.clone()),
        }
    }
}

impl From<WireError> for HostError {
    fn from(e: WireError) -> Self {
        use WireError as W;
        match e {
            W::NoSuchGuest(s) => HostError::NoSuchGuest(s),
            W::GuestExists(s) => HostError::GuestExists(s),
            W::BadState {
                uuid,
                expected,
                actual,
            } => HostError::BadState {
                uuid,
                expected: intern(&expected, STATES, "other"),
                actual: intern(&actual, STATES, "other"),
            },
            W::NotEnoughMemory { needed, available } => {
                HostError::NotEnoughMemory { needed, available }
            }
            W::NoSuchImage(s) => HostError::NoSuchImage(s),
            W::StorageFull {
                requested,
                available,
            } => HostError::StorageFull {
                requested,
                available,
            },
            W::ShutdownTimeout(s) => HostError::ShutdownTimeout(s),
            W::ImageInUse(s) => HostError::ImageInUse(s),
            W::BadImage { image, reason } => HostError::BadImage { image, reason },
            W::SrUnavailable { sr, reason } => HostError::SrUnavailable { sr, reason },
            W::MissingFile { what, path } => HostError::MissingFile {
                what: intern(&what, FILES, "file"),
                path,
            },
            W::Unsupported(s) => HostError::Unsupported(s),
            W::DeviceTaken(s) => HostError::DeviceTaken(s),
            W::NoSuchDevice(s) => HostError::NoSuchDevice(s),
            W::DeviceInUse(s) => HostError::DeviceInUse(s),
            W::NetConfig { device, reason } => HostError::NetConfig { device, reason },
            W::Failed(s) => HostError::Failed(s),
        }
    }
}
