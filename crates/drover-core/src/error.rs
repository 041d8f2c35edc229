//! The core's errors. Each API facade maps them to its own codes at the edge.

use drover_host::HostError;
use drover_store::StoreError;

/// Why an operation on the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The session is unknown, logged out or expired.
    #[error("session {0} is not valid")]
    SessionInvalid(String),
    /// Wrong user name or password.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The caller's role does not allow the operation.
    #[error("permission {permission} denied: {reason}")]
    PermissionDenied {
        /// The permission needed (`Class.message`).
        permission: String,
        /// Why.
        reason: String,
    },
    /// A reference names no object of the class.
    #[error("{class} handle {handle} is invalid")]
    HandleInvalid {
        /// Class expected.
        class: String,
        /// The reference given.
        handle: String,
    },
    /// No object of the class has this uuid.
    #[error("no {class} with uuid {uuid}")]
    UuidInvalid {
        /// Class looked in.
        class: String,
        /// The uuid given.
        uuid: String,
    },
    /// The class has no such field.
    #[error("{class} has no field {field}")]
    NoSuchField {
        /// Class.
        class: String,
        /// Field name.
        field: String,
    },
    /// A value does not fit the field or parameter.
    #[error("field {0} has the wrong type")]
    FieldType(String),
    /// A value is of the right type but not acceptable.
    #[error("invalid value {value} for {field}")]
    InvalidValue {
        /// Field or parameter.
        field: String,
        /// The value given.
        value: String,
    },
    /// A map key added twice where keys must be new.
    #[error("duplicate key {key} in {field}")]
    MapDuplicateKey {
        /// Class.
        class: String,
        /// Field.
        field: String,
        /// Object uuid.
        uuid: String,
        /// The key.
        key: String,
    },
    /// The VM is not in the power state the operation needs.
    #[error("VM {vm} is {actual}, needs {expected}")]
    VmBadPowerState {
        /// VM reference.
        vm: String,
        /// Expected state, lower-case.
        expected: String,
        /// Actual state, lower-case.
        actual: String,
    },
    /// The operation is not valid on a template.
    #[error("VM {vm} is a template; {op} not allowed")]
    VmIsTemplate {
        /// VM reference.
        vm: String,
        /// Operation.
        op: String,
    },
    /// A default template cannot be destroyed.
    #[error("default template {0} cannot be deleted")]
    CannotDeleteDefaultTemplate(String),
    /// Another operation runs on the object.
    #[error("{class} {handle} is busy with {op}")]
    OtherOperationInProgress {
        /// Class.
        class: String,
        /// Reference.
        handle: String,
        /// The running operation.
        op: String,
        /// Its task.
        task: String,
    },
    /// The operation is not allowed now.
    #[error("operation not allowed: {0}")]
    OperationNotAllowed(String),
    /// The VDI is in use.
    #[error("VDI {vdi} is in use ({op})")]
    VdiInUse {
        /// VDI reference.
        vdi: String,
        /// Operation refused.
        op: String,
    },
    /// The storage behind a VDI has no image at its location.
    #[error("no image {location} in SR {sr}")]
    VdiLocationMissing {
        /// SR reference (empty when unknown).
        sr: String,
        /// The image's location.
        location: String,
    },
    /// A disk image's contents are unusable.
    #[error("VDI {vdi} is unusable: {reason}")]
    BadImage {
        /// VDI reference, or the image's location when no VDI has it.
        vdi: String,
        /// What is wrong.
        reason: String,
    },
    /// An upload could not be imported into a VDI.
    #[error("import failed: {0}")]
    ImportFailed(String),
    /// The SR is not attached to this host.
    #[error("SR {0} is not attached")]
    SrNotAttached(String),
    /// The host could not reach an SR's storage.
    #[error("SR {sr} is unavailable: {reason}")]
    SrBackendFailure {
        /// SR reference.
        sr: String,
        /// Why.
        reason: String,
    },
    /// No storage driver of this type.
    #[error("unknown SR type {0}")]
    SrUnknownDriver(String),
    /// The SR still holds VDIs.
    #[error("the SR is not empty")]
    SrNotEmpty,
    /// An SR with this uuid exists already.
    #[error("an SR with uuid {0} exists")]
    SrUuidExists(String),
    /// A file a guest needs to boot is missing.
    #[error("{what} {path} does not exist or cannot be read")]
    MissingFile {
        /// Which file (`kernel`, `ramdisk`).
        what: String,
        /// Its path.
        path: String,
    },
    /// The device (VBD, VIF) is plugged already.
    #[error("device {0} is already attached")]
    DeviceAlreadyAttached(String),
    /// The device (VBD, VIF) is not plugged.
    #[error("device {0} is not attached")]
    DeviceAlreadyDetached(String),
    /// The VBD may not be unplugged while its VM runs.
    #[error("VBD {0} is not unpluggable")]
    VbdNotUnpluggable(String),
    /// The CD drive holds media already.
    #[error("VBD {0} is not empty")]
    VbdNotEmpty(String),
    /// The CD drive is empty.
    #[error("VBD {0} is empty")]
    VbdIsEmpty(String),
    /// Only CD drives take and give up media.
    #[error("VBD {0} has no removable media")]
    VbdNotRemovableMedia(String),
    /// The SR is full.
    #[error("SR full: {requested} bytes requested, {maximum} maximum")]
    SrFull {
        /// Bytes requested.
        requested: u64,
        /// Bytes the SR can still hold.
        maximum: u64,
    },
    /// The host has not enough free memory.
    #[error("host needs {needed} bytes free, has {available}")]
    HostNotEnoughFreeMemory {
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// The memory settings violate `static_min <= dynamic_min <= dynamic_max <= static_max`.
    #[error("memory constraint violated: {0}")]
    MemoryConstraint(String),
    /// The VM has no VCPUs.
    #[error("VM {0} has no VCPUs")]
    VmNoVcpus(String),
    /// Too many VCPUs.
    #[error("VM {0} has too many VCPUs")]
    VmTooManyVcpus(String),
    /// A VBD device position is taken.
    #[error("device {0} already exists")]
    DeviceAlreadyExists(String),
    /// The VM is not resident on the host.
    #[error("VM {vm} is not resident on {host}")]
    VmNotResidentHere {
        /// VM reference.
        vm: String,
        /// Host reference.
        host: String,
    },
    /// The VM has no suspend image.
    #[error("VM {0} has no suspend VDI")]
    VmHasNoSuspendVdi(String),
    /// The guest did not shut down in time.
    #[error("VM {vm} did not shut down within {timeout}s")]
    VmShutdownTimeout {
        /// VM reference.
        vm: String,
        /// Seconds waited.
        timeout: String,
    },
    /// A VLAN tag outside 1-4094.
    #[error("VLAN tag {0} is invalid")]
    VlanTagInvalid(String),
    /// The VLAN's network has VIFs plugged into running guests.
    #[error("VLAN {tag} on {device} is in use")]
    VlanInUse {
        /// The tagged interface.
        device: String,
        /// The tag.
        tag: String,
    },
    /// A network already has this bridge name, or a host has a device of that name that is not
    /// Drover's.
    #[error("bridge {0} exists")]
    BridgeNameExists(String),
    /// The host lacks a bridge a VM needs.
    #[error("bridge {0} is not available on the host")]
    BridgeNotAvailable(String),
    /// A VIF of the VM is on no network.
    #[error("VM {vm} needs network {network}")]
    VmRequiresNetwork {
        /// VM reference.
        vm: String,
        /// The network (the null reference when the VIF's network is gone).
        network: String,
    },
    /// A MAC address is malformed, multicast or zero.
    #[error("MAC {0} is invalid")]
    MacInvalid(String),
    /// Another VIF in the pool has this MAC.
    #[error("MAC {0} is in use")]
    MacStillExists(String),
    /// The network has VIFs plugged into running guests.
    #[error("the network has attached VIFs")]
    NetworkContainsVif(Vec<String>),
    /// The network has PIFs.
    #[error("the network has PIFs")]
    NetworkContainsPif(Vec<String>),
    /// The network already has a PIF on the host.
    #[error("network {network} is already connected through PIF {pif}")]
    NetworkAlreadyConnected {
        /// The network.
        network: String,
        /// The PIF it has.
        pif: String,
    },
    /// The address range of a network that hands out addresses is used up.
    #[error("network {0} has no free address left in its range")]
    NetworkAddressesExhausted(String),
    /// No host interface of this name.
    #[error("no network interface {0}")]
    PifDeviceNotFound(String),
    /// Configuring a host interface failed.
    #[error("configuring PIF {pif} failed: {msg}")]
    PifConfigurationError {
        /// The PIF (empty when none is known).
        pif: String,
        /// What went wrong.
        msg: String,
    },
    /// The PIF is the host's management interface, which Drover never changes.
    #[error("PIF {0} is the management interface")]
    PifIsManagementInterface(String),
    /// A physical PIF cannot be destroyed.
    #[error("PIF {0} is physical")]
    PifIsPhysical(String),
    /// The operation needs a physical PIF.
    #[error("PIF {0} is not physical")]
    PifIsNotPhysical(String),
    /// The PIF is a bond member.
    #[error("PIF {0} is bonded")]
    PifAlreadyBonded(String),
    /// A bond member cannot be plugged on its own.
    #[error("PIF {0} is a bond member and cannot be plugged")]
    CannotPlugBondSlave(String),
    /// A bond member cannot carry VLANs.
    #[error("PIF {0} is a bond member and cannot have a VLAN")]
    CannotAddVlanToBondSlave(String),
    /// VLANs still use the PIF.
    #[error("PIF {0} still has VLANs")]
    PifVlanStillExists(String),
    /// The PIF is marked as not to be unplugged.
    #[error("PIF {0} does not allow unplug")]
    PifDoesNotAllowUnplug(String),
    /// A bond needs two members or more.
    #[error("a bond needs at least two members")]
    PifBondNeedsMoreMembers,
    /// Bond members must be on one host.
    #[error("bond members must be on one host")]
    PifCannotBondCrossHost,
    /// A parameter is not an IPv4 address (or netmask) where one is needed.
    #[error("{0} is not a valid IP address")]
    InvalidIpAddress(String),
    /// A parameter is not an address with a prefix length (`<addr>/<prefix>`).
    #[error("{0} is not a valid CIDR address")]
    InvalidCidrAddress(String),
    /// The host already has a PIF for this interface.
    #[error("a PIF for device {0} already exists")]
    DuplicatePifDeviceName(String),
    /// The host's interface of this name has another MAC.
    #[error("no network interface {device} with MAC {mac}")]
    NoInterfaceWithDeviceAndMac {
        /// The interface's name.
        device: String,
        /// The MAC asked for.
        mac: String,
    },
    /// The PIF has no properties to change (a bond member or a VLAN).
    #[error("the properties of PIF {0} cannot be changed")]
    CannotChangePifProperties(String),
    /// The PIF was introduced as not managed.
    #[error("PIF {0} is not managed")]
    PifUnmanaged(String),
    /// The PIF already carries a VLAN with this tag.
    #[error("PIF {0} already has a VLAN with that tag")]
    PifVlanExists(String),
    /// The PIF is itself a VLAN.
    #[error("PIF {0} is a VLAN interface")]
    PifIsVlan(String),
    /// Provisioning applies to templates only.
    #[error("provision is only allowed on a template")]
    ProvisionOnlyOnTemplate,
    /// The task was cancelled.
    #[error("task {0} cancelled")]
    TaskCancelled(String),
    /// The event token is malformed.
    #[error("event token {0} is malformed")]
    EventTokenInvalid(String),
    /// event.next without event.register.
    #[error("session {0} is not registered for events")]
    SessionNotRegistered(String),
    /// Events were dropped because the caller fell too far behind.
    #[error("events lost")]
    EventsLost,
    /// The new password is not acceptable.
    #[error("password change rejected: {0}")]
    ChangePasswordRejected(String),
    /// The host reported a failure.
    #[error(transparent)]
    Host(HostError),
    /// The store failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The host is disabled (in maintenance) and accepts no new guests.
    #[error("host {0} is disabled")]
    HostDisabled(String),
    /// The engine has no connection to the host now.
    #[error("host {0} is offline")]
    HostOffline(String),
    /// The host still runs guests.
    #[error("host {host} still runs VM {vm}")]
    HostHasResidentVms {
        /// The host.
        host: String,
        /// One of its guests.
        vm: String,
    },
    /// Enrolling or reaching a joining host failed.
    #[error("cannot join the host: {0}")]
    JoiningHostConnectionFailed(String),
    /// No host of the pool can run the VM now.
    #[error("no host can run VM {vm}: {reason}")]
    NoHostsAvailable {
        /// The VM.
        vm: String,
        /// Why each host was refused.
        reason: String,
    },
    /// A host the VM would run on cannot reach one of its disks' SRs.
    #[error("VM {vm} needs SR {sr}, which the host cannot reach")]
    VmRequiresSr {
        /// The VM.
        vm: String,
        /// The SR.
        sr: String,
    },
    /// Some guests of the host cannot be moved away.
    #[error("cannot evacuate the host: {0}")]
    CannotEvacuateHost(String),
    /// The host's power-management agent failed.
    #[error("power management of host {host} failed: {reason}")]
    PowerManagementFailed {
        /// The host.
        host: String,
        /// What the agent said.
        reason: String,
    },
    /// A live migration failed; the guest keeps running where it was.
    #[error("migration of VM {vm} failed: {reason}")]
    VmMigrateFailed {
        /// The VM.
        vm: String,
        /// The source host.
        from: String,
        /// The destination host.
        destination: String,
        /// What went wrong.
        reason: String,
    },
    /// An internal invariant failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for core results.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl From<HostError> for CoreError {
    /// Host failures that XenAPI names precisely become those errors; the rest stay host errors.
    fn from(e: HostError) -> CoreError {
        match e {
            HostError::NotEnoughMemory { needed, available } => {
                CoreError::HostNotEnoughFreeMemory { needed, available }
            }
            HostError::StorageFull {
                requested,
                available,
            } => CoreError::SrFull {
                requested,
                maximum: available,
            },
            HostError::ImageInUse(image) => CoreError::VdiInUse {
                vdi: image,
                op: String::new(),
            },
            HostError::NoSuchImage(location) => CoreError::VdiLocationMissing {
                sr: String::new(),
                location,
            },
            HostError::BadImage { image, reason } => CoreError::BadImage { vdi: image, reason },
            HostError::SrUnavailable { sr, reason } => CoreError::SrBackendFailure { sr, reason },
            HostError::MissingFile { what, path } => CoreError::MissingFile {
                what: what.into(),
                path,
            },
            HostError::Unsupported(why) => CoreError::OperationNotAllowed(why),
            HostError::DeviceTaken(name) => CoreError::BridgeNameExists(name),
            HostError::NoSuchDevice(device) => CoreError::PifDeviceNotFound(device),
            e @ HostError::DeviceInUse(_) => CoreError::PifConfigurationError {
                pif: String::new(),
                msg: e.to_string(),
            },
            e @ HostError::NetConfig { .. } => CoreError::PifConfigurationError {
                pif: String::new(),
                msg: e.to_string(),
            },
            other => CoreError::Host(other),
        }
    }
}

impl CoreError {
    /// A handle-invalid error.
    pub fn handle(class: &str, r: &str) -> CoreError {
        CoreError::HandleInvalid {
            class: class.into(),
            handle: r.into(),
        }
    }
}
