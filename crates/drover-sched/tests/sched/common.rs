//! Helpers shared by the scheduler's tests.

use drover_sched::{Cluster, HostId, HostState, Policy, VmState};

pub const GIB: u64 = 1024;

pub fn host(id: &str, cpus: u32, memory_gib: u64) -> HostState {
    HostState::new(id, cpus, memory_gib * GIB)
}

pub fn vm(id: &str, vcpus: u32, memory_gib: u64) -> VmState {
    VmState::new(id, vcpus, memory_gib * GIB)
}

pub fn running(id: &str, on: &str, vcpus: u32, memory_gib: u64) -> VmState {
    let mut v = vm(id, vcpus, memory_gib);
    v.host = Some(HostId::from(on));
    v
}

pub fn cluster(policy: Policy, hosts: Vec<HostState>, vms: Vec<VmState>) -> Cluster {
    let mut c = Cluster::new(policy);
    c.hosts = hosts;
    c.vms = vms;
    c
}

pub fn id(s: &str) -> HostId {
    HostId::from(s)
}
