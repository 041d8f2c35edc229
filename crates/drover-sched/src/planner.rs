//! The planner: a cluster indexed for scheduling, which keeps account of the placements it is
//! told about so that a sequence of decisions (HA restarts, an evacuation, a balancing round,
//! starting many VMs) sees the effect of the earlier ones.

use std::collections::HashMap;

use crate::error::{InputError, PlaceError};
use crate::filters::{self, NoHost, Rejection};
use crate::model::{AffinityGroup, Cluster, HostId, HostState, HostStatus, Purpose, VmId, VmState};
use crate::params::VCPU_CONSUMPTION_PERCENT;
use crate::policy::Policy;
use crate::units::FilterUnit;
use crate::weights;

/// A host as the planner accounts it.
#[derive(Debug, Clone)]
pub(crate) struct HostSlot {
    pub id: HostId,
    pub status: HostStatus,
    pub cpus: u32,
    /// CPU load in percent × CPUs (a VM at 50% of 2 vCPUs adds 100).
    pub load: u64,
    pub over_since: Option<u64>,
    /// Memory guests may be given in all, MiB.
    pub capacity: u64,
    /// Memory given to guests, MiB.
    pub committed: u64,
    pub vms: u32,
    pub ha_vms: u32,
    pub vcpus: u64,
    pub networks: Vec<String>,
    pub power_management: bool,
    pub spm: bool,
}

impl HostSlot {
    fn new(h: &HostState, overcommit_percent: u32) -> Self {
        let scaled = u128::from(h.memory_total_mib) * u128::from(overcommit_percent) / 100;
        let scaled = u64::try_from(scaled).unwrap_or(u64::MAX);
        HostSlot {
            id: h.id.clone(),
            status: h.status,
            cpus: h.cpus,
            load: u64::from(h.cpu_load_percent.min(100)) * u64::from(h.cpus),
            over_since: h.cpu_over_commit_since,
            capacity: scaled.saturating_sub(h.memory_reserved_mib),
            committed: 0,
            vms: 0,
            ha_vms: 0,
            vcpus: 0,
            networks: h.networks.clone(),
            power_management: h.power_management,
            spm: h.spm,
        }
    }

    /// CPU load in percent of the host.
    pub fn load_percent(&self) -> u64 {
        self.load / u64::from(self.cpus.max(1))
    }

    /// Memory still free for guests, MiB.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.committed)
    }

    pub fn is_up(&self) -> bool {
        self.status == HostStatus::Up
    }
}

/// What the planner counts on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostUsage {
    /// Guests on it.
    pub vms: u32,
    /// Highly available guests on it.
    pub ha_vms: u32,
    /// vCPUs of its guests.
    pub vcpus: u64,
    /// Memory given to its guests, MiB.
    pub committed_mib: u64,
    /// Memory guests may be given in all (physical × over-commitment − reserved), MiB.
    pub capacity_mib: u64,
    /// CPU load in percent, measured plus what the planner moved.
    pub cpu_load_percent: u64,
}

/// A host's total score for a VM (lower is better).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostScore {
    /// The host.
    pub host: HostId,
    /// Its weighted total.
    pub score: u64,
}

/// The host chosen for a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The chosen host: lowest score, ties to the lowest host id.
    pub host: HostId,
    /// Every host that passed the filters with its score, in host id order.
    pub scores: Vec<HostScore>,
}

/// The load a VM brings, in percent × vCPUs.
pub(crate) fn vm_load(vm: &VmState) -> u64 {
    u64::from(
        vm.cpu_load_percent
            .unwrap_or(VCPU_CONSUMPTION_PERCENT)
            .min(100),
    ) * u64::from(vm.vcpus)
}

/// Everything the filters and weights need about one decision.
pub(crate) struct Ctx<'a> {
    pub vm: &'a VmState,
    pub purpose: &'a Purpose,
    /// The host the VM runs on now, if the planner knows it.
    pub current: Option<usize>,
    pub vm_load: u64,
    /// Hard positive groups: (group, hosts its other running members are on).
    pub hard_together: Vec<(&'a AffinityGroup, Vec<usize>)>,
    /// Hard negative groups: (group, hosts its other running members are on).
    pub hard_apart: Vec<(&'a AffinityGroup, Vec<usize>)>,
    /// Soft positive groups with running members: their hosts.
    pub soft_together: Vec<Vec<usize>>,
    /// Soft negative groups: the hosts of their running members.
    pub soft_apart: Vec<Vec<usize>>,
}

impl Ctx<'_> {
    /// Memory the VM adds to host `ix` (none where it already runs).
    pub fn added_memory(&self, ix: usize) -> u64 {
        if self.current == Some(ix) {
            0
        } else {
            self.vm.memory_mib
        }
    }

    /// CPU load the VM adds to host `ix`.
    pub fn added_load(&self, ix: usize) -> u64 {
        if self.current == Some(ix) {
            0
        } else {
            self.vm_load
        }
    }

    /// vCPUs the VM adds to host `ix`.
    pub fn added_vcpus(&self, ix: usize) -> u64 {
        if self.current == Some(ix) {
            0
        } else {
            u64::from(self.vm.vcpus)
        }
    }
}

/// A cluster indexed for scheduling. See [`crate::place`] for a single decision.
#[derive(Debug, Clone)]
pub struct Planner {
    pub(crate) policy: Policy,
    filters: Vec<FilterUnit>,
    /// Hosts in id order, so that index order is id order.
    pub(crate) hosts: Vec<HostSlot>,
    host_ix: HashMap<HostId, usize>,
    pub(crate) vms: Vec<VmState>,
    pub(crate) vm_host: Vec<Option<usize>>,
    vm_ix: HashMap<VmId, usize>,
    groups: Vec<AffinityGroup>,
    vm_groups: HashMap<VmId, Vec<usize>>,
}

impl Planner {
    /// Indexes `cluster`.
    pub fn new(cluster: &Cluster) -> Result<Planner, InputError> {
        let mut order: Vec<&HostState> = cluster.hosts.iter().collect();
        order.sort_by(|a, b| a.id.cmp(&b.id));
        let mut hosts = Vec::with_capacity(order.len());
        let mut host_ix = HashMap::with_capacity(order.len());
        for h in order {
            if host_ix.insert(h.id.clone(), hosts.len()).is_some() {
                return Err(InputError::DuplicateHost(h.id.clone()));
            }
            hosts.push(HostSlot::new(h, cluster.memory_overcommit_percent));
        }
        let mut planner = Planner {
            policy: cluster.policy.clone(),
            filters: cluster.policy.effective_filters(),
            hosts,
            host_ix,
            vms: Vec::with_capacity(cluster.vms.len()),
            vm_host: Vec::with_capacity(cluster.vms.len()),
            vm_ix: HashMap::with_capacity(cluster.vms.len()),
            groups: cluster.affinity.clone(),
            vm_groups: HashMap::new(),
        };
        for vm in &cluster.vms {
            if planner.vm_ix.contains_key(&vm.id) {
                return Err(InputError::DuplicateVm(vm.id.clone()));
            }
            let host = match &vm.host {
                Some(h) => Some(planner.host_index(h)?),
                None => None,
            };
            planner.vm_ix.insert(vm.id.clone(), planner.vms.len());
            planner.vms.push(vm.clone());
            planner.vm_host.push(None);
            if let Some(ix) = host {
                planner.attach(planner.vms.len() - 1, ix, false);
            }
        }
        for (g, group) in planner.groups.iter().enumerate() {
            for member in &group.vms {
                let list = planner.vm_groups.entry(member.clone()).or_default();
                if !list.contains(&g) {
                    list.push(g);
                }
            }
        }
        Ok(planner)
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub(crate) fn host_index(&self, id: &HostId) -> Result<usize, InputError> {
        self.host_ix
            .get(id)
            .copied()
            .ok_or_else(|| InputError::UnknownHost(id.clone()))
    }

    pub(crate) fn vm_index(&self, id: &VmId) -> Option<usize> {
        self.vm_ix.get(id).copied()
    }

    /// What the planner counts on `host`, if the cluster has it.
    pub fn usage(&self, host: &HostId) -> Option<HostUsage> {
        let h = &self.hosts[self.host_ix.get(host).copied()?];
        Some(HostUsage {
            vms: h.vms,
            ha_vms: h.ha_vms,
            vcpus: h.vcpus,
            committed_mib: h.committed,
            capacity_mib: h.capacity,
            cpu_load_percent: h.load_percent(),
        })
    }

    /// The host the planner has `vm` on.
    pub fn host_of(&self, vm: &VmId) -> Option<&HostId> {
        let ix = self.vm_host[self.vm_index(vm)?]?;
        Some(&self.hosts[ix].id)
    }

    /// Chooses a host for `vm` by the policy's filters and weights.
    pub fn place(&self, vm: &VmState, purpose: &Purpose) -> Result<Placement, PlaceError> {
        self.place_where(vm, purpose, &|_, _| true)
    }

    /// Like [`Planner::place`], among the hosts `allow` accepts only (others are skipped
    /// without a reason).
    pub(crate) fn place_where(
        &self,
        vm: &VmState,
        purpose: &Purpose,
        allow: &dyn Fn(usize, &HostSlot) -> bool,
    ) -> Result<Placement, PlaceError> {
        if matches!(purpose, Purpose::Migrate { .. }) && !vm.migratable {
            return Err(PlaceError::NotMigratable(vm.id.clone()));
        }
        let ctx = self.context(vm, purpose);
        let mut candidates = Vec::new();
        let mut rejections = Vec::new();
        for (ix, host) in self.hosts.iter().enumerate() {
            if !allow(ix, host) {
                continue;
            }
            match self
                .filters
                .iter()
                .try_for_each(|&unit| filters::check(unit, &ctx, ix, host))
            {
                Ok(()) => candidates.push(ix),
                Err(reason) => rejections.push(Rejection {
                    host: host.id.clone(),
                    reason,
                }),
            }
        }
        if candidates.is_empty() {
            return Err(PlaceError::NoHost(NoHost {
                vm: vm.id.clone(),
                rejections,
            }));
        }
        let totals = weights::totals(&self.policy, &ctx, &self.hosts, &candidates);
        let mut best = 0;
        for (i, &t) in totals.iter().enumerate() {
            if t < totals[best] {
                best = i;
            }
        }
        Ok(Placement {
            host: self.hosts[candidates[best]].id.clone(),
            scores: candidates
                .iter()
                .zip(&totals)
                .map(|(&ix, &score)| HostScore {
                    host: self.hosts[ix].id.clone(),
                    score,
                })
                .collect(),
        })
    }

    fn context<'a>(&'a self, vm: &'a VmState, purpose: &'a Purpose) -> Ctx<'a> {
        let current = match (self.vm_index(&vm.id), purpose) {
            (Some(v), _) => self.vm_host[v],
            (None, Purpose::Migrate { from }) => self.host_ix.get(from).copied(),
            (None, Purpose::Start) => None,
        };
        let mut ctx = Ctx {
            vm,
            purpose,
            current,
            vm_load: vm_load(vm),
            hard_together: Vec::new(),
            hard_apart: Vec::new(),
            soft_together: Vec::new(),
            soft_apart: Vec::new(),
        };
        for &g in self.vm_groups.get(&vm.id).map(Vec::as_slice).unwrap_or(&[]) {
            let group = &self.groups[g];
            let mut peers: Vec<usize> = group
                .vms
                .iter()
                .filter(|id| **id != vm.id)
                .filter_map(|id| self.vm_index(id).and_then(|v| self.vm_host[v]))
                .collect();
            peers.sort_unstable();
            peers.dedup();
            match (group.enforcing, group.positive) {
                (true, true) => ctx.hard_together.push((group, peers)),
                (true, false) => ctx.hard_apart.push((group, peers)),
                (false, true) if !peers.is_empty() => ctx.soft_together.push(peers),
                (false, true) => {}
                (false, false) => ctx.soft_apart.push(peers),
            }
        }
        ctx
    }

    /// Records that `vm` runs on `host` from now on (started there or migrated there); later
    /// decisions count it there.
    pub fn commit(&mut self, vm: &VmState, host: &HostId) -> Result<(), InputError> {
        let to = self.host_index(host)?;
        let v = match self.vm_index(&vm.id) {
            Some(v) => {
                self.detach(v);
                self.vms[v] = vm.clone();
                v
            }
            None => {
                self.vm_ix.insert(vm.id.clone(), self.vms.len());
                self.vms.push(vm.clone());
                self.vm_host.push(None);
                self.vms.len() - 1
            }
        };
        self.attach(v, to, true);
        Ok(())
    }

    /// Records that `vm` no longer runs anywhere.
    pub fn release(&mut self, vm: &VmId) {
        if let Some(v) = self.vm_index(vm) {
            self.detach(v);
        }
    }

    /// Puts VM `v` on host `to`; `moved` adds its load (a measured host load already holds
    /// the load of the guests it reports).
    fn attach(&mut self, v: usize, to: usize, moved: bool) {
        let vm = &mut self.vms[v];
        vm.host = Some(self.hosts[to].id.clone());
        let h = &mut self.hosts[to];
        h.committed = h.committed.saturating_add(vm.memory_mib);
        h.vms = h.vms.saturating_add(1);
        h.ha_vms = h.ha_vms.saturating_add(u32::from(vm.ha));
        h.vcpus = h.vcpus.saturating_add(u64::from(vm.vcpus));
        if moved {
            h.load = h.load.saturating_add(vm_load(vm));
        }
        self.vm_host[v] = Some(to);
    }

    fn detach(&mut self, v: usize) {
        let vm = &mut self.vms[v];
        vm.host = None;
        if let Some(from) = self.vm_host[v].take() {
            let h = &mut self.hosts[from];
            h.committed = h.committed.saturating_sub(vm.memory_mib);
            h.vms = h.vms.saturating_sub(1);
            h.ha_vms = h.ha_vms.saturating_sub(u32::from(vm.ha));
            h.vcpus = h.vcpus.saturating_sub(u64::from(vm.vcpus));
            h.load = h.load.saturating_sub(vm_load(vm));
        }
    }

    /// Sets a host's status in the plan (a fenced host goes down).
    pub(crate) fn set_status(&mut self, ix: usize, status: HostStatus) {
        self.hosts[ix].status = status;
    }

    /// The VMs the planner has on each host, each list in VM id order.
    pub(crate) fn vms_by_host(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.hosts.len()];
        for (v, host) in self.vm_host.iter().enumerate() {
            if let Some(ix) = host {
                out[*ix].push(v);
            }
        }
        for list in &mut out {
            list.sort_by(|&a, &b| self.vms[a].id.cmp(&self.vms[b].id));
        }
        out
    }
}
