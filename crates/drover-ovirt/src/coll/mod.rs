//! The collections of the API, one module each.

pub mod clusters;
pub mod datacenters;
pub mod diskattachments;
pub mod disks;
pub mod events;
pub mod fenceagents;
pub mod hosts;
pub mod jobs;
pub mod networks;
pub mod nics;
pub mod operatingsystems;
pub mod permissions;
pub mod roles;
pub mod root;
pub mod schedulingpolicies;
pub mod snapshots;
pub mod storagedomains;
pub mod tags;
pub mod templates;
pub mod users;
pub mod vmdevices;
pub mod vmpools;
pub mod vms;
pub mod vnicprofiles;
