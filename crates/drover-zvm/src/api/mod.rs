//! The backend: the calls of z/VM Cloud Connector's `SDKAPI` (the names and arguments the
//! socket protocol carries and the REST layer sends on), carried out on Drover's inventory.
//!
//! A guest is a VM whose name is its userid, a disk pool is an SR, a minidisk is a VDI with its
//! virtual device number on the VBD, a vswitch is a network, an image is a VDI of the image
//! repository SR. Every change enters the core through [`Engine::call`] with the connector's
//! caller; z/VM's own facts (vdevs, grants, image metadata) live in `other_config` keys with
//! the `zvm_` prefix, so XenAPI clients see and keep them.

mod args;
mod cfgdrive;
mod disk;
mod guest;
mod host;
mod image;
mod nic;
mod volume;
mod vswitch;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use drover_core::{Caller, CoreError, Engine, Obj, Op, Reply, VbdAction};
use drover_model::Value;
use serde_json::{Map, Value as Json};

use crate::error::{Module, ZvmError, ZvmResult};
pub use args::{py_bool, Args};

/// Settings of the connector.
#[derive(Debug, Clone)]
pub struct ZvmConfig {
    /// Where imported images are staged and exported ones are written from, and where
    /// `PUT /files` keeps uploads.
    pub work_dir: PathBuf,
    /// The disk pool (`ECKD:name` or `FBA:name`) of disks that name none; `None` uses the
    /// pool's default SR.
    pub default_pool: Option<String>,
    /// The userid the connector itself runs under, as `host_get_info` reports it.
    pub zcc_userid: String,
    /// Deploys and captures that may run at once.
    pub max_concurrent_deploy_capture: usize,
}

/// The backend of the REST layer and the socket protocol.
pub struct Backend {
    engine: Arc<Engine>,
    caller: Caller,
    config: ZvmConfig,
    disk_copies: tokio::sync::Semaphore,
}

/// What a module's `dispatch` answers: the call's result, or the call back when the module
/// has no call of that name.
type Dispatched<'a> = Result<ZvmResult, Call<'a>>;

impl Backend {
    /// A backend over `engine`, acting through a service session of the core.
    pub fn new(engine: Arc<Engine>, config: ZvmConfig) -> Result<Backend, CoreError> {
        let caller = engine.service_session("z/VM Cloud Connector")?;
        std::fs::create_dir_all(&config.work_dir)
            .map_err(|e| CoreError::Internal(format!("{}: {e}", config.work_dir.display())))?;
        Ok(Backend {
            disk_copies: tokio::sync::Semaphore::new(config.max_concurrent_deploy_capture),
            engine,
            caller,
            config,
        })
    }

    /// The connector's settings.
    pub fn config(&self) -> &ZvmConfig {
        &self.config
    }

    /// Runs the call `api` with positional `args` and keyword `kwargs`.
    pub async fn call(&self, api: &str, args: Vec<Json>, kwargs: Map<String, Json>) -> ZvmResult {
        let call = Call { api, args, kwargs };
        let call = match guest::dispatch(self, call).await {
            Ok(done) => return done,
            Err(call) => call,
        };
        let call = match disk::dispatch(self, call).await {
            Ok(done) => return done,
            Err(call) => call,
        };
        let call = match nic::dispatch(self, call).await {
            Ok(done) => return done,
            Err(call) => call,
        };
        let call = match vswitch::dispatch(self, call).await {
            Ok(done) => return done,
            Err(call) => call,
        };
        let call = match image::dispatch(self, call).await {
            Ok(done) => return done,
            Err(call) => call,
        };
        let call = match host::dispatch(self, call).await {
            Ok(done) => return done,
            Err(call) => call,
        };
        match volume::dispatch(self, call).await {
            Ok(done) => done,
            Err(_) => Err(ZvmError::ApiName(api.to_string())),
        }
    }

    /// Runs an operation of the core as the connector's caller.
    async fn op(&self, module: Module, op: Op) -> ZvmResult<Reply> {
        self.engine
            .call(&self.caller, op)
            .await
            .map_err(|e| core_error(module, e))
    }

    /// Runs an operation that answers with a reference.
    async fn op_ref(&self, module: Module, op: Op) -> ZvmResult<String> {
        match self.op(module, op).await? {
            Reply::Ref(r) => Ok(r.to_string()),
            other => Err(ZvmError::internal(
                module,
                format!("unexpected reply {other:?}"),
            )),
        }
    }

    /// Sets one field of an object.
    async fn set(
        &self,
        module: Module,
        class: &str,
        r: &str,
        field: &str,
        value: Value,
    ) -> ZvmResult<()> {
        self.op(
            module,
            Op::SetField {
                class: class.into(),
                r: r.into(),
                field: field.into(),
                value,
            },
        )
        .await
        .map(|_| ())
    }

    /// Sets (or with `None` removes) one `other_config` key of an object.
    async fn set_other(
        &self,
        module: Module,
        class: &str,
        r: &str,
        key: &str,
        value: Option<&str>,
    ) -> ZvmResult<()> {
        self.set_others(module, class, r, &[(key, value)]).await
    }

    /// Sets (`Some`) or removes (`None`) several `other_config` keys of an object at once.
    async fn set_others(
        &self,
        module: Module,
        class: &str,
        r: &str,
        changes: &[(&str, Option<&str>)],
    ) -> ZvmResult<()> {
        let obj = self.obj(module, class, r)?;
        match obj.map_with("other_config", changes) {
            Some(map) => self.set(module, class, r, "other_config", map).await,
            None => Ok(()),
        }
    }

    /// Destroys an object.
    async fn destroy(&self, module: Module, class: &str, r: &str) -> ZvmResult<()> {
        self.op(
            module,
            Op::Destroy {
                class: class.into(),
                r: r.into(),
            },
        )
        .await
        .map(|_| ())
    }

    /// Unplugs a VBD from its VM when plugged there and the VM is logged on, then destroys it.
    async fn remove_vbd(&self, module: Module, vm: &Obj, vbd: &Obj) -> ZvmResult<()> {
        if vbd.bool("currently_attached") && guest::is_on(vm) {
            self.op(
                module,
                Op::Vbd {
                    vbd: vbd.r.to_string(),
                    action: VbdAction::Unplug,
                },
            )
            .await?;
        }
        self.destroy(module, "VBD", &vbd.r).await
    }

    /// Makes a VBD; answers its reference.
    async fn create_vbd(&self, module: Module, v: NewVbd<'_>) -> ZvmResult<String> {
        self.op_ref(
            module,
            Op::Create {
                class: "VBD".into(),
                fields: vec![
                    ("VM".into(), Value::str(v.vm)),
                    ("VDI".into(), Value::str(v.vdi)),
                    ("userdevice".into(), Value::str(v.userdevice)),
                    ("bootable".into(), Value::Bool(v.bootable)),
                    (
                        "mode".into(),
                        Value::str(if v.read_only { "RO" } else { "RW" }),
                    ),
                    ("type".into(), Value::str(if v.cd { "CD" } else { "Disk" })),
                    ("empty".into(), Value::Bool(false)),
                    ("other_config".into(), v.other_config),
                ],
            },
        )
        .await
    }

    /// The lowest of `positions` that no device of the VM takes: a VBD's `userdevice` for
    /// `class` `VBD`, a VIF's `device` for `VIF`.
    fn free_device_position(&self, vm: &Obj, class: &str, positions: Range<u32>) -> Option<u32> {
        let (refs, field) = match class {
            "VIF" => ("VIFs", "device"),
            _ => ("VBDs", "userdevice"),
        };
        let used: Vec<String> = self.engine.read(|db| {
            vm.refs(refs)
                .iter()
                .filter_map(|r| db.get(class, r))
                .map(|d| d.str(field).to_string())
                .collect()
        });
        positions
            .into_iter()
            .find(|p| !used.contains(&p.to_string()))
    }

    /// The guests of `userids` that exist and are logged on, in that order.
    fn running_guests(&self, userids: Vec<String>) -> Vec<Arc<Obj>> {
        userids
            .iter()
            .filter_map(|u| self.guest(u).ok())
            .filter(|vm| guest::is_on(vm))
            .collect()
    }

    /// An object of the inventory.
    fn obj(&self, module: Module, class: &str, r: &str) -> ZvmResult<Arc<Obj>> {
        self.engine.get(class, r).map_err(|e| core_error(module, e))
    }
}

/// VBD positions a VM has (`userdevice` `0` to `15`).
const VBD_POSITIONS: u32 = 16;

/// A VBD to make: a disk or CD drive of a VM, holding a VDI.
struct NewVbd<'a> {
    /// The VM.
    vm: &'a str,
    /// The VDI.
    vdi: &'a str,
    /// Its position.
    userdevice: &'a str,
    /// Whether the VM boots from it.
    bootable: bool,
    /// A CD drive (`type` `CD`), else a disk.
    cd: bool,
    /// Read-only (`mode` `RO`), else read-write.
    read_only: bool,
    /// Its `other_config` (a map).
    other_config: Value,
}

/// One call on its way to the module that handles it.
pub(crate) struct Call<'a> {
    api: &'a str,
    args: Vec<Json>,
    kwargs: Map<String, Json>,
}

impl Call<'_> {
    /// Binds the call's arguments to `params`.
    fn bind(self, api: &'static str, params: &[args::Param]) -> ZvmResult<Args> {
        Args::bind(api, params, self.args, self.kwargs)
    }
}

/// The core's errors as the connector's: missing objects are 404s of the module, refusals
/// because of a state are conflicts, the rest are the module's failures.
fn core_error(module: Module, e: CoreError) -> ZvmError {
    match e {
        CoreError::VmBadPowerState { .. } | CoreError::OtherOperationInProgress { .. } => {
            ZvmError::Conflict {
                module,
                rs: 1,
                msg: e.to_string(),
            }
        }
        CoreError::HandleInvalid { .. } | CoreError::UuidInvalid { .. } => ZvmError::NotExist {
            module,
            what: e.to_string(),
        },
        CoreError::Internal(_) | CoreError::Store(_) => ZvmError::internal(module, e.to_string()),
        e => ZvmError::Failed {
            module,
            rs: 1,
            msg: e.to_string(),
        },
    }
}
