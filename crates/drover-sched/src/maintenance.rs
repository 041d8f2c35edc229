//! Evacuation of a host on its way to maintenance.

use crate::error::{InputError, PlaceError};
use crate::model::{Cluster, HostId, HostStatus, Migration, Purpose, VmId};
use crate::planner::Planner;

/// Where the guests of a host going to maintenance go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evacuation {
    /// Migrations, in the order they were planned.
    pub migrations: Vec<Migration>,
    /// Guests that cannot move, with why; while there are any, the host stays
    /// preparing for maintenance.
    pub stuck: Vec<(VmId, PlaceError)>,
}

impl Evacuation {
    /// Whether every guest can move, so that the host reaches maintenance.
    pub fn complete(&self) -> bool {
        self.stuck.is_empty()
    }
}

/// Plans moving every guest off `host`: the host takes no new guests; HA VMs go first (by
/// priority), then the larger ones, each placed by the policy as a migration and counted on
/// its target before the next is placed.
pub fn evacuate(cluster: &Cluster, host: &HostId) -> Result<Evacuation, InputError> {
    let mut p = Planner::new(cluster)?;
    let src = p.host_index(host)?;
    p.set_status(src, HostStatus::PreparingForMaintenance);
    let mut guests = p.vms_by_host().swap_remove(src);
    guests.sort_by(|&a, &b| {
        let (a, b) = (&p.vms[a], &p.vms[b]);
        (b.ha, b.ha_priority, b.memory_mib)
            .cmp(&(a.ha, a.ha_priority, a.memory_mib))
            .then_with(|| a.id.cmp(&b.id))
    });
    let purpose = Purpose::Migrate { from: host.clone() };
    let mut out = Evacuation::default();
    for v in guests {
        let vm = p.vms[v].clone();
        match p.place(&vm, &purpose) {
            Ok(placement) => {
                p.commit(&vm, &placement.host)?;
                out.migrations.push(Migration {
                    vm: vm.id,
                    from: host.clone(),
                    to: placement.host,
                });
            }
            Err(e) => out.stuck.push((vm.id, e)),
        }
    }
    Ok(out)
}
