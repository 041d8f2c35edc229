//! Drover's domain core.
//!
//! It owns the inventory's objects (the XenAPI datamodel of `drover-model`), the VM power state
//! machine, tasks, events, identities and permissions, the audit log, and persistence through
//! `drover-store`.
//! It reaches hosts only through `drover-host`'s driver interface. API facades translate their
//! wire formats into [`Op`]s and enter through [`Engine::call`] or [`Engine::submit`]; the core
//! knows no wire format.

mod audit;
mod auth;
mod balancer;
mod bootstrap;
mod clone;
mod configdrive;
mod console;
pub mod db;
mod engine;
mod error;
mod events;
mod fence;
mod fleet;
mod ha;
mod host;
mod migrate;
mod monitor;
mod network;
mod objects;
mod ops;
mod placement;
mod relations;
mod remove;
mod sr;
mod storage;
mod tasks;
mod templates;
pub mod txn;
mod vm;

pub use audit::codes as audit_codes;
pub use audit::{AuditEntry, Severity, DEFAULT_AUDIT_RETENTION};
pub use auth::{AccountInfo, Caller, SUPERUSER_ROLE};
pub use balancer::DEFAULT_BALANCE_PERIOD;
pub use db::{Obj, Ref};
pub use engine::{now, Engine, EngineConfig};
pub use error::{CoreError, Result};
pub use events::{Event, EventBatch};
pub use fence::{PowerAction, PowerManager, PowerState};
pub use fleet::{HostConnector, NODE_KEY, STATE_KEY};
pub use ha::{HEARTBEAT_PERIOD, MISSES};
pub use host::HostAction;
pub use migrate::{DEFAULT_MAX_DOWNTIME_MS, DOWNTIME_KEY, TOTAL_KEY};
pub use network::vif::{random_mac, valid_mac};
pub use network::NetOp;
pub use ops::{CallOpts, Ctx, Op, Reply, TaskRender};
pub use placement::POLICY_KEY;
pub use sr::{PbdAction, SrAction, SrSpec};
pub use storage::{VbdAction, VdiAction};
pub use vm::VmAction;
