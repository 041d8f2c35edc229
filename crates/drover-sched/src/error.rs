//! The scheduler's errors.

use std::fmt;

use crate::filters::NoHost;
use crate::model::{HostId, VmId};

/// The cluster given to the scheduler does not hold together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Two hosts have this id.
    DuplicateHost(HostId),
    /// Two VMs have this id.
    DuplicateVm(VmId),
    /// A VM runs on, or is sent to, a host the cluster does not have.
    UnknownHost(HostId),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::DuplicateHost(h) => write!(f, "host {h} is listed twice"),
            InputError::DuplicateVm(v) => write!(f, "VM {v} is listed twice"),
            InputError::UnknownHost(h) => write!(f, "host {h} is not in the cluster"),
        }
    }
}

impl std::error::Error for InputError {}

/// No host was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    /// Every host was filtered out; the reasons are per host.
    NoHost(NoHost),
    /// The VM may not be live-migrated.
    NotMigratable(VmId),
    /// The cluster does not hold together.
    Input(InputError),
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceError::NoHost(n) => n.fmt(f),
            PlaceError::NotMigratable(vm) => write!(f, "VM {vm} may not be migrated"),
            PlaceError::Input(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PlaceError {}

impl From<InputError> for PlaceError {
    fn from(e: InputError) -> Self {
        PlaceError::Input(e)
    }
}

impl From<NoHost> for PlaceError {
    fn from(e: NoHost) -> Self {
        PlaceError::NoHost(e)
    }
}
