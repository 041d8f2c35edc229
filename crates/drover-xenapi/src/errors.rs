//! The one table from core errors to XenAPI error codes and parameters.

use axum::http::StatusCode;
use drover_core::CoreError;

/// The HTTP status of a core error on the plain HTTP handlers (consoles, uploads).
pub fn http_status(e: &CoreError) -> StatusCode {
    use CoreError as E;
    match e {
        E::SessionInvalid(_) | E::AuthenticationFailed => StatusCode::UNAUTHORIZED,
        E::PermissionDenied { .. } => StatusCode::FORBIDDEN,
        E::HandleInvalid { .. } | E::UuidInvalid { .. } => StatusCode::NOT_FOUND,
        E::InvalidValue { .. } | E::FieldType(_) | E::ImportFailed(_) | E::BadImage { .. } => {
            StatusCode::BAD_REQUEST
        }
        E::VdiInUse { .. }
        | E::VmBadPowerState { .. }
        | E::OtherOperationInProgress { .. }
        | E::OperationNotAllowed(_)
        | E::SrNotAttached(_) => StatusCode::CONFLICT,
        E::MacInvalid(_)
        | E::InvalidIpAddress(_)
        | E::InvalidCidrAddress(_)
        | E::VlanTagInvalid(_) => StatusCode::BAD_REQUEST,
        E::SrFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `[code, params...]` of a core error.
pub fn describe(e: &CoreError) -> Vec<String> {
    use CoreError as E;
    let v = |code: &str, params: &[&str]| -> Vec<String> {
        std::iter::once(code.to_string())
            .chain(params.iter().map(|p| p.to_string()))
            .collect()
    };
    let refs = |code: &str, list: &[String]| -> Vec<String> {
        std::iter::once(code.to_string())
            .chain(list.iter().cloned())
            .collect()
    };
    match e {
        E::SessionInvalid(s) => v("SESSION_INVALID", &[s]),
        E::AuthenticationFailed => v("SESSION_AUTHENTICATION_FAILED", &[]),
        E::PermissionDenied { permission, reason } => {
            v("RBAC_PERMISSION_DENIED", &[permission, reason])
        }
        E::HandleInvalid { class, handle } => v("HANDLE_INVALID", &[class, handle]),
        E::UuidInvalid { class, uuid } => v("UUID_INVALID", &[class, uuid]),
        E::NoSuchField { field, .. } => v("FIELD_TYPE_ERROR", &[field]),
        E::FieldType(f) => v("FIELD_TYPE_ERROR", &[f]),
        E::InvalidValue { field, value } => v("INVALID_VALUE", &[field, value]),
        E::MapDuplicateKey {
            class,
            field,
            uuid,
            key,
        } => v("MAP_DUPLICATE_KEY", &[class, field, uuid, key]),
        E::VmBadPowerState {
            vm,
            expected,
            actual,
        } => v("VM_BAD_POWER_STATE", &[vm, expected, actual]),
        E::VmIsTemplate { vm, op } => v("VM_IS_TEMPLATE", &[vm, op]),
        E::CannotDeleteDefaultTemplate(vm) => v("VM_CANNOT_DELETE_DEFAULT_TEMPLATE", &[vm]),
        E::OtherOperationInProgress {
            class,
            handle,
            op,
            task,
        } => v("OTHER_OPERATION_IN_PROGRESS", &[class, handle, op, task]),
        E::OperationNotAllowed(r) => v("OPERATION_NOT_ALLOWED", &[r]),
        E::HostDisabled(h) => v("HOST_DISABLED", &[h]),
        E::HostOffline(h) => v("HOST_OFFLINE", &[h]),
        E::HostHasResidentVms { host, vm } => v("HOST_IN_USE", &[host, "VM", vm]),
        E::JoiningHostConnectionFailed(_) => v("JOINING_HOST_CONNECTION_FAILED", &[]),
        E::PowerManagementFailed { reason, .. } => v("INTERNAL_ERROR", &[reason]),
        E::VmRequiresSr { vm, sr } => v("VM_REQUIRES_SR", &[vm, sr]),
        E::CannotEvacuateHost(why) => v("CANNOT_EVACUATE_HOST", &[why]),
        E::NoHostsAvailable { .. } => v("NO_HOSTS_AVAILABLE", &[]),
        E::VmMigrateFailed {
            vm,
            from,
            destination,
            reason,
        } => v("VM_MIGRATE_FAILED", &[vm, from, destination, reason]),
        E::VdiInUse { vdi, op } => v("VDI_IN_USE", &[vdi, op]),
        E::VdiLocationMissing { sr, location } => v("VDI_LOCATION_MISSING", &[sr, location]),
        E::BadImage { reason, .. } => v("VDI_IO_ERROR", &[reason]),
        E::ImportFailed(m) => v("IMPORT_ERROR", &[m]),
        E::SrNotAttached(sr) => v("SR_NOT_ATTACHED", &[sr]),
        E::SrBackendFailure { reason, .. } => v("SR_BACKEND_FAILURE", &["", reason, ""]),
        E::SrUnknownDriver(d) => v("SR_UNKNOWN_DRIVER", &[d]),
        E::SrNotEmpty => v("SR_NOT_EMPTY", &[]),
        E::SrUuidExists(u) => v("SR_UUID_EXISTS", &[u]),
        E::MissingFile { what, path } => v("DOMAIN_BUILDER_ERROR", &[what, "ENOENT", path]),
        E::DeviceAlreadyAttached(vbd) => v("DEVICE_ALREADY_ATTACHED", &[vbd]),
        E::DeviceAlreadyDetached(vbd) => v("DEVICE_ALREADY_DETACHED", &[vbd]),
        E::VbdNotUnpluggable(vbd) => v("VBD_NOT_UNPLUGGABLE", &[vbd]),
        E::VbdNotEmpty(vbd) => v("VBD_NOT_EMPTY", &[vbd]),
        E::VbdIsEmpty(vbd) => v("VBD_IS_EMPTY", &[vbd]),
        E::VbdNotRemovableMedia(vbd) => v("VBD_NOT_REMOVABLE_MEDIA", &[vbd]),
        E::SrFull { requested, maximum } => {
            v("SR_FULL", &[&requested.to_string(), &maximum.to_string()])
        }
        E::HostNotEnoughFreeMemory { needed, available } => v(
            "HOST_NOT_ENOUGH_FREE_MEMORY",
            &[&needed.to_string(), &available.to_string()],
        ),
        E::MemoryConstraint(c) => v("MEMORY_CONSTRAINT_VIOLATION", &[c]),
        E::VmNoVcpus(vm) => v("VM_NO_VCPUS", &[vm]),
        E::VmTooManyVcpus(vm) => v("VM_TOO_MANY_VCPUS", &[vm]),
        E::DeviceAlreadyExists(d) => v("DEVICE_ALREADY_EXISTS", &[d]),
        E::VmNotResidentHere { vm, host } => v("VM_NOT_RESIDENT_HERE", &[vm, host]),
        E::VmHasNoSuspendVdi(vm) => v("VM_HAS_NO_SUSPEND_VDI", &[vm]),
        E::VmShutdownTimeout { vm, timeout } => v("VM_SHUTDOWN_TIMEOUT", &[vm, timeout]),
        E::VlanTagInvalid(t) => v("VLAN_TAG_INVALID", &[t]),
        E::VlanInUse { device, tag } => v("VLAN_IN_USE", &[device, tag]),
        E::BridgeNameExists(b) => v("BRIDGE_NAME_EXISTS", &[b]),
        E::BridgeNotAvailable(b) => v("BRIDGE_NOT_AVAILABLE", &[b]),
        E::VmRequiresNetwork { vm, network } => v("VM_REQUIRES_NETWORK", &[vm, network]),
        E::MacInvalid(m) => v("MAC_INVALID", &[m]),
        E::MacStillExists(m) => v("MAC_STILL_EXISTS", &[m]),
        E::NetworkContainsVif(vifs) => refs("NETWORK_CONTAINS_VIF", vifs),
        E::NetworkContainsPif(pifs) => refs("NETWORK_CONTAINS_PIF", pifs),
        E::NetworkAlreadyConnected { network, pif } => {
            v("NETWORK_ALREADY_CONNECTED", &[network, pif])
        }
        E::NetworkAddressesExhausted(_) => v("OPERATION_NOT_ALLOWED", &[&e.to_string()]),
        E::PifDeviceNotFound(_) => v("PIF_DEVICE_NOT_FOUND", &[]),
        E::PifConfigurationError { pif, msg } => v("PIF_CONFIGURATION_ERROR", &[pif, msg]),
        E::PifIsManagementInterface(p) => v("PIF_IS_MANAGEMENT_INTERFACE", &[p]),
        E::PifIsPhysical(p) => v("PIF_IS_PHYSICAL", &[p]),
        E::PifIsNotPhysical(p) => v("PIF_IS_NOT_PHYSICAL", &[p]),
        E::PifAlreadyBonded(p) => v("PIF_ALREADY_BONDED", &[p]),
        E::CannotPlugBondSlave(p) => v("CANNOT_PLUG_BOND_SLAVE", &[p]),
        E::CannotAddVlanToBondSlave(p) => v("CANNOT_ADD_VLAN_TO_BOND_SLAVE", &[p]),
        E::PifVlanStillExists(p) => v("PIF_VLAN_STILL_EXISTS", &[p]),
        E::PifDoesNotAllowUnplug(p) => v("PIF_DOES_NOT_ALLOW_UNPLUG", &[p]),
        E::PifBondNeedsMoreMembers => v("PIF_BOND_NEEDS_MORE_MEMBERS", &[]),
        E::PifCannotBondCrossHost => v("PIF_CANNOT_BOND_CROSS_HOST", &[]),
        E::InvalidIpAddress(p) => v("INVALID_IP_ADDRESS_SPECIFIED", &[p]),
        E::PifVlanExists(p) => v("PIF_VLAN_EXISTS", &[p]),
        E::InvalidCidrAddress(p) => v("INVALID_CIDR_ADDRESS_SPECIFIED", &[p]),
        E::DuplicatePifDeviceName(d) => v("DUPLICATE_PIF_DEVICE_NAME", &[d]),
        E::NoInterfaceWithDeviceAndMac { device, mac } => v(
            "COULD_NOT_FIND_NETWORK_INTERFACE_WITH_SPECIFIED_DEVICE_NAME_AND_MAC_ADDRESS",
            &[device, mac],
        ),
        E::CannotChangePifProperties(p) => v("CANNOT_CHANGE_PIF_PROPERTIES", &[p]),
        E::PifUnmanaged(p) => v("PIF_UNMANAGED", &[p]),
        E::PifIsVlan(p) => v("PIF_IS_VLAN", &[p]),
        E::ProvisionOnlyOnTemplate => v("PROVISION_ONLY_ALLOWED_ON_TEMPLATE", &[]),
        E::TaskCancelled(t) => v("TASK_CANCELLED", &[t]),
        E::EventTokenInvalid(t) => v("EVENT_FROM_TOKEN_PARSE_FAILURE", &[t]),
        E::SessionNotRegistered(s) => v("SESSION_NOT_REGISTERED", &[s]),
        E::EventsLost => v("EVENTS_LOST", &[]),
        E::ChangePasswordRejected(m) => v("CHANGE_PASSWORD_REJECTED", &[m]),
        E::Host(h) => v("INTERNAL_ERROR", &[&format!("host: {h}")]),
        E::Store(s) => v("INTERNAL_ERROR", &[&format!("store: {s}")]),
        E::Internal(m) => v("INTERNAL_ERROR", &[m]),
    }
}
