//! Frames and messages of the node protocol.
//!
//! Every frame is a 4-byte big-endian length followed by a postcard-encoded [`Frame`] (or an
//! enrolment message), at most [`MAX_FRAME`] bytes. Postcard is a compact, non-self-describing
//! serde format with a documented, stable (1.x) wire format and no `unsafe` in its decoder; the
//! message types are not recursive, so decoding depth is bounded by the types themselves, and
//! collection lengths cannot make the decoder allocate more than the frame holds.

use drover_host::{
    BondSpec, ConsoleKind, DiskSpec, GuestEvent, GuestMetrics, GuestSpec, GuestState, HostError,
    HostInfo, HostMetrics, ImageFormat, ImageInfo, Ip6Config, IpConfig, MigrationStats,
    NetCapabilities, NetworkSpec, NicSpec, PifCounters, PifInfo, StorageInfo,
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
    Ping,
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
    MigrateReceive {
        spec: GuestSpec,
        listen_ip: String,
    },
    MigrateSend {
        uuid: String,
        uri: String,
        max_downtime_ms: u64,
    },
    MigrateCancel {
        uuid: String,
    },
    MigrateIncomingFinish {
        uuid: String,
        commit: bool,
    },
    MigrateRelease {
        uuid: String,
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
                | Call::MigrateReceive { .. }
                | Call::MigrateSend { .. }
                | Call::MigrateIncomingFinish { .. }
                | Call::MigrateRelease { .. }
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
    Uri(String),
    Migrated(MigrationStats),
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
    MigrationFailed(String),
    MigrationCancelled,
}

/// Guest states named in [`HostError::BadState`].
const STATES: &[&str] = &[
    "running",
    "paused",
    "suspended",
    "halted",
    "incoming",
    "migrating",
    "migrated",
    "switching over",
];
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
            H::MigrationFailed(s) => WireError::MigrationFailed(s.clone()),
            H::MigrationCancelled => WireError::MigrationCancelled,
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
            W::MigrationFailed(s) => HostError::MigrationFailed(s),
            W::MigrationCancelled => HostError::MigrationCancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use tokio_util::bytes::{BufMut, Bytes, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;

    /// One of every [`HostError`] variant. The match has no wildcard, so a new variant does not
    /// compile until it is listed here.
    fn every_host_error() -> Vec<HostError> {
        let all = vec![
            HostError::NoSuchGuest("vm-1".into()),
            HostError::GuestExists("vm-2".into()),
            HostError::BadState {
                uuid: "vm-3".into(),
                expected: "running",
                actual: "paused",
            },
            HostError::NotEnoughMemory {
                needed: u64::MAX,
                available: 1,
            },
            HostError::NoSuchImage("disk0.qcow2".into()),
            HostError::StorageFull {
                requested: 1 << 40,
                available: 0,
            },
            HostError::ShutdownTimeout("vm-4".into()),
            HostError::ImageInUse("disk1.qcow2".into()),
            HostError::BadImage {
                image: "disk2".into(),
                reason: "not qcow2 — ünïcode too".into(),
            },
            HostError::SrUnavailable {
                sr: "sr1".into(),
                reason: "not attached".into(),
            },
            HostError::MissingFile {
                what: "ramdisk",
                path: "/boot/initrd.img".into(),
            },
            HostError::Unsupported("no consoles".into()),
            HostError::DeviceTaken("br0".into()),
            HostError::NoSuchDevice("eth9".into()),
            HostError::DeviceInUse("eth0".into()),
            HostError::NetConfig {
                device: "drbr0".into(),
                reason: "EPERM".into(),
            },
            HostError::Failed(String::new()),
            HostError::MigrationFailed("connection refused".into()),
            HostError::MigrationCancelled,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for e in &all {
            use HostError as H;
            let name = match e {
                H::NoSuchGuest(_) => "NoSuchGuest",
                H::GuestExists(_) => "GuestExists",
                H::BadState { .. } => "BadState",
                H::NotEnoughMemory { .. } => "NotEnoughMemory",
                H::NoSuchImage(_) => "NoSuchImage",
                H::StorageFull { .. } => "StorageFull",
                H::ShutdownTimeout(_) => "ShutdownTimeout",
                H::ImageInUse(_) => "ImageInUse",
                H::BadImage { .. } => "BadImage",
                H::SrUnavailable { .. } => "SrUnavailable",
                H::MissingFile { .. } => "MissingFile",
                H::Unsupported(_) => "Unsupported",
                H::DeviceTaken(_) => "DeviceTaken",
                H::NoSuchDevice(_) => "NoSuchDevice",
                H::DeviceInUse(_) => "DeviceInUse",
                H::NetConfig { .. } => "NetConfig",
                H::Failed(_) => "Failed",
                H::MigrationFailed(_) => "MigrationFailed",
                H::MigrationCancelled => "MigrationCancelled",
            };
            seen.insert(name);
        }
        assert_eq!(seen.len(), 19, "every variant once: {seen:?}");
        assert_eq!(all.len(), 19);
        all
    }

    /// `e` as the node sends it and the engine reads it: in a response frame, through the codec.
    fn across_the_wire(e: &HostError) -> HostError {
        let frame = Frame::Response {
            id: 77,
            result: Err(WireError::from(e)),
        };
        let mut buf = BytesMut::new();
        codec()
            .encode(Bytes::from(encode(&frame).unwrap()), &mut buf)
            .unwrap();
        let bytes = codec().decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        match decode::<Frame>(&bytes).unwrap() {
            Frame::Response {
                id: 77,
                result: Err(w),
            } => w.into(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_host_error_survives_the_wire() {
        for e in every_host_error() {
            let back = across_the_wire(&e);
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
            assert_eq!(back.to_string(), e.to_string());
        }
        // Every guest state and file name the drivers use keeps its static string.
        for s in STATES {
            let e = HostError::BadState {
                uuid: "u".into(),
                expected: s,
                actual: s,
            };
            assert_eq!(format!("{:?}", across_the_wire(&e)), format!("{e:?}"));
        }
        for f in FILES {
            let e = HostError::MissingFile {
                what: f,
                path: "p".into(),
            };
            assert_eq!(format!("{:?}", across_the_wire(&e)), format!("{e:?}"));
        }
    }

    #[test]
    fn unknown_static_strings_from_the_peer_map_onto_fixed_ones() {
        let w = WireError::BadState {
            uuid: "u".into(),
            expected: "x".repeat(1000),
            actual: "paused".into(),
        };
        assert!(matches!(
            HostError::from(w),
            HostError::BadState {
                expected: "other",
                actual: "paused",
                ..
            }
        ));
        let w = WireError::MissingFile {
            what: "firmware".into(),
            path: "/x".into(),
        };
        assert!(matches!(
            HostError::from(w),
            HostError::MissingFile { what: "file", .. }
        ));
        let info = WireHostInfo {
            hostname: "h".into(),
            cpu_count: 1,
            cpu_model: "m".into(),
            cpu_speed_mhz: 1,
            memory_total: 1,
            driver: "xen".into(),
        };
        assert_eq!(HostInfo::from(info.clone()).driver, "remote");
        let qemu = WireHostInfo {
            driver: "qemu".into(),
            ..info
        };
        assert_eq!(HostInfo::from(qemu).driver, "qemu");
    }

    #[test]
    fn a_frame_over_the_bound_is_refused_without_allocating_it() {
        // A header announcing one byte more than the bound, and a little data.
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u32(MAX_FRAME as u32 + 1);
        buf.put_slice(b"tiny");
        let err = codec().decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(buf.capacity() < 1024, "{} bytes reserved", buf.capacity());

        // The largest header there is.
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u32(u32::MAX);
        assert!(codec().decode(&mut buf).is_err());
        assert!(buf.capacity() < 1024, "{} bytes reserved", buf.capacity());

        // A frame at the bound is fine; one byte over is not sent either.
        let mut out = BytesMut::new();
        codec()
            .encode(Bytes::from(vec![0u8; MAX_FRAME]), &mut out)
            .unwrap();
        assert_eq!(out.len(), 4 + MAX_FRAME);
        let mut c = codec();
        assert_eq!(c.decode(&mut out).unwrap().unwrap().len(), MAX_FRAME);
        let mut out = BytesMut::new();
        assert!(codec()
            .encode(Bytes::from(vec![0u8; MAX_FRAME + 1]), &mut out)
            .is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn lengths_inside_a_frame_cannot_claim_more_than_it_holds() {
        // `Data` (variant 3), stream 1, then a byte string claiming u64::MAX / 2 bytes.
        let mut bytes = vec![3, 1];
        let mut n = u64::MAX / 2;
        while n >= 0x80 {
            bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        bytes.push(n as u8);
        bytes.extend_from_slice(b"abc");
        assert!(decode::<Frame>(&bytes).is_err());

        // `Request` with `NetworkPrune` (variant 38) whose list claims 2^32 strings.
        let mut bytes = encode(&Frame::Request {
            id: 1,
            call: Call::NetworkPrune { keep: vec![] },
        })
        .unwrap();
        assert_eq!(bytes.pop(), Some(0), "the empty list's length is last");
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        let err = decode::<Frame>(&bytes).unwrap_err();
        assert_eq!(err, postcard::Error::DeserializeUnexpectedEnd);
    }

    /// Frames of every shape, encoded.
    fn samples() -> Vec<Vec<u8>> {
        let spec = GuestSpec {
            uuid: "vm".into(),
            disks: vec![DiskSpec::default()],
            nics: vec![NicSpec::default()],
            ..GuestSpec::default()
        };
        let frames = vec![
            Frame::Request {
                id: u64::MAX,
                call: Call::Start { spec, paused: true },
            },
            Frame::Request {
                id: 2,
                call: Call::ImageFromFiles {
                    sr: "sr".into(),
                    name: "cfg".into(),
                    label: "config-2".into(),
                    files: vec![("a/b".into(), vec![1, 2, 3])],
                },
            },
            Frame::Request {
                id: 3,
                call: Call::MediaChange {
                    uuid: "vm".into(),
                    device: "3".into(),
                    media: Some(("sr".into(), "iso".into())),
                },
            },
            Frame::Response {
                id: 4,
                result: Ok(Reply::Guests(vec![("vm".into(), GuestState::Paused)])),
            },
            Frame::Response {
                id: 5,
                result: Err(WireError::Failed("no".into())),
            },
            Frame::Event(GuestEvent::Exited {
                uuid: "vm".into(),
                reason: "crashed".into(),
            }),
            Frame::Data {
                stream: 6,
                bytes: vec![9; 300],
            },
            Frame::End { stream: 7 },
            Frame::Abort {
                stream: 8,
                reason: "why".into(),
            },
            Frame::Credit {
                stream: 9,
                chunks: WINDOW,
            },
        ];
        frames.iter().map(|f| encode(f).unwrap()).collect()
    }

    #[test]
    fn garbage_gives_a_typed_error_never_a_panic() {
        // Every strict prefix of a valid frame is refused.
        for bytes in samples() {
            assert!(decode::<Frame>(&bytes).is_ok());
            for cut in 0..bytes.len() {
                let r = decode::<Frame>(&bytes[..cut]);
                assert!(r.is_err(), "{cut} of {} bytes: {r:?}", bytes.len());
            }
        }
        // Unknown variants and malformed fields are errors of their own.
        assert!(decode::<Frame>(&[0x7f]).is_err());
        assert!(decode::<Frame>(&[0xff; 16]).is_err());
        // `Request`, id 1, `Start` (variant 4) ... `paused` as 2: not a bool.
        let mut start = samples().remove(0);
        *start.last_mut().unwrap() = 2;
        assert_eq!(
            decode::<Frame>(&start).unwrap_err(),
            postcard::Error::DeserializeBadBool
        );
        // `Abort` with a reason that is not UTF-8.
        assert_eq!(
            decode::<Frame>(&[5, 1, 2, 0xc3, 0x28]).unwrap_err(),
            postcard::Error::DeserializeBadUtf8
        );

        // Random bytes and random corruptions of valid frames: any answer but a panic. The
        // codec's errors are I/O errors, the decoder's postcard errors.
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x0d20_7e12);
        let samples = samples();
        let mut refused = 0;
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                let len = rng.random_range(0..64);
                (0..len).map(|_| rng.random()).collect()
            } else {
                let mut b = samples[round % samples.len()].clone();
                for _ in 0..rng.random_range(1..4) {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
                b
            };
            let framed: Result<Frame, postcard::Error> = decode(&bytes);
            refused += usize::from(framed.is_err());
            let _: Result<Call, postcard::Error> = decode(&bytes);
            let _: Result<Reply, postcard::Error> = decode(&bytes);
            let mut buf = BytesMut::from(&bytes[..]);
            let mut c = codec();
            while let Ok(Some(f)) = c.decode(&mut buf) {
                let _: Result<Frame, postcard::Error> = decode(&f);
            }
        }
        assert!(refused > 1_000, "only {refused} refused");
    }
}
