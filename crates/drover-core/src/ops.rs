//! The one entry path: every request of every facade becomes an [`Op`] carried with its
//! [`Caller`]; permission checks, task tracking and events happen here and nowhere else.

use std::sync::Arc;

use drover_model::{Qualifier, Schema, Type, Value};
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::db::{Obj, Ref};
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::events::EventBatch;
use crate::network::NetOp;
use crate::sr::{PbdAction, SrAction};
use crate::storage::{VbdAction, VdiAction};
use crate::txn::{new_ref, Txn};
use crate::vm::VmAction;

/// Everything the engine can be asked to do.
#[derive(Debug, Clone)]
pub enum Op {
    /// References of every object of a class.
    GetAll {
        /// Class.
        class: String,
    },
    /// Every object of a class.
    GetAllRecords {
        /// Class.
        class: String,
    },
    /// One object.
    GetRecord {
        /// Class.
        class: String,
        /// Reference.
        r: String,
    },
    /// The object with a uuid.
    GetByUuid {
        /// Class.
        class: String,
        /// Uuid.
        uuid: String,
    },
    /// Objects with a name label.
    GetByNameLabel {
        /// Class.
        class: String,
        /// Label.
        label: String,
    },
    /// One field of an object.
    GetField {
        /// Class.
        class: String,
        /// Reference.
        r: String,
        /// Field.
        field: String,
    },
    /// Enrols the host agent at `address` (`HOST:PORT`) with its one-time enrolment secret
    /// and adds it to the pool.
    PoolJoin {
        /// Where the host agent listens.
        address: String,
        /// Its one-time enrolment secret.
        secret: String,
    },
    /// Sets a read/write field.
    SetField {
        /// Class.
        class: String,
        /// Reference.
        r: String,
        /// Field.
        field: String,
        /// New value.
        value: Value,
    },
    /// Adds a key to a read/write map field.
    MapAdd {
        /// Class.
        class: String,
        /// Reference.
        r: String,
        /// Field.
        field: String,
        /// Key.
        key: Value,
        /// Value.
        value: Value,
    },
    /// Removes a key from a read/write map field.
    MapRemove {
        /// Class.
        class: String,
        /// Reference.
        r: String,
        /// Field.
        field: String,
        /// Key.
        key: Value,
    },
    /// Adds a member to a read/write set field.
    SetAdd {
        /// Class.
        class: String,
        /// Reference.
        r: String,
        /// Field.
        field: String,
        /// Member.
        value: Value,
    },
    /// Removes a member from a read/write set field.
    SetRemove {
        /// Class.
        class: String,
        /// Reference.
        r: String,
        /// Field.
        field: String,
        /// Member.
        value: Value,
    },
    /// Creates an object from constructor fields.
    Create {
        /// Class.
        class: String,
        /// Field values given.
        fields: Vec<(String, Value)>,
    },
    /// Destroys an object.
    Destroy {
        /// Class.
        class: String,
        /// Reference.
        r: String,
    },
    /// A VM operation.
    Vm {
        /// The VM.
        vm: String,
        /// What to do.
        action: VmAction,
    },
    /// A network, VIF, PIF, VLAN or bond operation.
    Net(NetOp),
    /// A host operation.
    Host {
        /// The host.
        host: String,
        /// What to do.
        action: crate::host::HostAction,
    },
    /// A VDI operation.
    Vdi {
        /// The VDI.
        vdi: String,
        /// What to do.
        action: VdiAction,
    },
    /// A VBD operation.
    Vbd {
        /// The VBD.
        vbd: String,
        /// What to do.
        action: VbdAction,
    },
    /// An SR operation.
    Sr {
        /// The SR.
        sr: String,
        /// What to do.
        action: SrAction,
    },
    /// A PBD operation.
    Pbd {
        /// The PBD.
        pbd: String,
        /// What to do.
        action: PbdAction,
    },
    /// Creates a task for work the client tracks itself.
    TaskCreate {
        /// Its name.
        label: String,
        /// Its description.
        description: String,
    },
    /// Cancels a task.
    TaskCancel {
        /// The task.
        task: String,
    },
    /// Changes since a token, waiting up to `timeout` seconds for one.
    EventFrom {
        /// Classes (`*`, `vm`, `vm/<ref>`).
        classes: Vec<String>,
        /// Token of the last call, or empty.
        token: String,
        /// Seconds to wait.
        timeout: f64,
    },
    /// Registers the session for events of classes.
    EventRegister {
        /// Classes.
        classes: Vec<String>,
    },
    /// Unregisters classes.
    EventUnregister {
        /// Classes.
        classes: Vec<String>,
    },
    /// Waits for the next events of the registered classes.
    EventNext,
    /// The newest event id.
    EventCurrentId,
    /// Announces an object as modified.
    EventInject {
        /// Class.
        class: String,
        /// Reference.
        r: String,
    },
}

/// What an operation returns.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Nothing.
    Void,
    /// A value (typed by the operation's result type).
    Value(Value),
    /// A reference.
    Ref(Ref),
    /// References.
    Refs(Vec<Ref>),
    /// One object.
    Record(Arc<Obj>),
    /// Objects.
    Records(Vec<Arc<Obj>>),
    /// Events.
    Events(EventBatch),
}

/// Turns results into what a facade shows in a task record.
pub trait TaskRender: Send + Sync {
    /// The task's `result` text for a successful reply.
    fn result(&self, reply: &Reply) -> String;
    /// The task's `error_info` for a failure.
    fn error(&self, error: &CoreError) -> Vec<String>;
}

/// The context an operation runs in: its caller, the task it belongs to, and cancellation.
pub struct Ctx<'a> {
    /// Who asked.
    pub caller: &'a Caller,
    /// The task this operation runs as (a real task object for asynchronous calls).
    pub task: Ref,
    pub(crate) cancel: CancellationToken,
    tracked: bool,
    started: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl Ctx<'_> {
    /// A part of this operation run as an operation of its own (a migration of an
    /// evacuation): the same caller, its own identity, cancelled with this one.
    pub(crate) fn child(&self) -> Ctx<'_> {
        Ctx {
            caller: self.caller,
            task: new_ref(),
            cancel: self.cancel.child_token(),
            tracked: false,
            started: std::sync::Mutex::new(None),
        }
    }

    /// Tells a waiting `submit` that the operation has marked its objects busy, so the caller
    /// sees `current_operations` as soon as it has the task.
    pub(crate) fn started(&self) {
        if let Some(tx) = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = tx.send(());
        }
    }

    /// Fails with `TASK_CANCELLED` if the task was cancelled.
    pub fn checkpoint(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(CoreError::TaskCancelled(self.task.to_string()))
        } else {
            Ok(())
        }
    }

    /// Reports progress (0..1) on the task, if there is one.
    pub fn progress(&self, engine: &Engine, p: f64) {
        if self.tracked {
            let _ = engine.write_volatile(|t| {
                if t.get("task", &self.task).is_some() {
                    t.set("task", &self.task, "progress", Value::Float(p))?;
                }
                Ok(())
            });
        }
    }
}

impl Op {
    /// The datamodel message whose roles decide who may run this.
    pub fn permission(&self) -> (String, String) {
        let (c, m) = match self {
            Op::GetAll { class } => (class.as_str(), "get_all".to_string()),
            Op::GetAllRecords { class } => (class.as_str(), "get_all_records".into()),
            Op::GetRecord { class, .. } => (class.as_str(), "get_record".into()),
            Op::GetByUuid { class, .. } => (class.as_str(), "get_by_uuid".into()),
            Op::GetByNameLabel { class, .. } => (class.as_str(), "get_by_name_label".into()),
            Op::GetField { class, field, .. } => (class.as_str(), format!("get_{field}")),
            Op::SetField { class, field, .. } => (class.as_str(), format!("set_{field}")),
            Op::MapAdd { class, field, .. } => (class.as_str(), format!("add_to_{field}")),
            Op::SetAdd { class, field, .. } => (class.as_str(), format!("add_{field}")),
            Op::MapRemove { class, field, .. } => (class.as_str(), format!("remove_from_{field}")),
            Op::SetRemove { class, field, .. } => (class.as_str(), format!("remove_{field}")),
            Op::Create { class, .. } => (class.as_str(), "create".into()),
            Op::Destroy { class, .. } => (class.as_str(), "destroy".into()),
            Op::Net(op) => {
                let (c, m) = op.message();
                (c, m.into())
            }
            Op::Vm { action, .. } => ("VM", action.message().into()),
            Op::Host {
                action: crate::host::HostAction::Eject,
                ..
            } => ("pool", "eject".into()),
            Op::Host { action, .. } => ("host", action.message().into()),
            Op::PoolJoin { .. } => ("pool", "join".into()),
            Op::Vdi { action, .. } => ("VDI", action.message().into()),
            Op::Vbd { action, .. } => ("VBD", action.message().into()),
            Op::Sr { action, .. } => ("SR", action.message().into()),
            Op::Pbd { action, .. } => ("PBD", action.message().into()),
            Op::TaskCreate { .. } => ("task", "create".into()),
            Op::TaskCancel { .. } => ("task", "cancel".into()),
            Op::EventFrom { .. } => ("event", "from".into()),
            Op::EventRegister { .. } => ("event", "register".into()),
            Op::EventUnregister { .. } => ("event", "unregister".into()),
            Op::EventNext => ("event", "next".into()),
            Op::EventCurrentId => ("event", "get_current_id".into()),
            Op::EventInject { .. } => ("event", "inject".into()),
        };
        (c.to_string(), m)
    }
}

/// Options of a call beyond the operation itself.
#[derive(Debug, Clone, Default)]
pub struct CallOpts {
    /// The client's id for this request, carried into audit entries and the task it makes.
    pub correlation_id: Option<String>,
}

impl Engine {
    /// Runs an operation synchronously for a caller.
    pub async fn call(self: &Arc<Self>, caller: &Caller, op: Op) -> Result<Reply> {
        self.call_with(caller, op, CallOpts::default()).await
    }

    /// Runs an operation synchronously for a caller, with options; an operation that changes
    /// something is recorded in the audit log when it ends.
    pub async fn call_with(
        self: &Arc<Self>,
        caller: &Caller,
        op: Op,
        opts: CallOpts,
    ) -> Result<Reply> {
        let (class, message) = op.permission();
        self.check_permission(caller, &class, &message)?;
        let plan = self.read(|db| crate::audit::plan(db, &op));
        let ctx = Ctx {
            caller,
            task: new_ref(),
            cancel: CancellationToken::new(),
            tracked: false,
            started: std::sync::Mutex::new(None),
        };
        let outcome = self.execute(&ctx, op).await;
        if let Some(plan) = plan {
            self.audit_outcome(caller, plan, &outcome, opts.correlation_id, None);
        }
        outcome
    }

    /// Runs an operation as a task and returns the task's reference as soon as the operation
    /// has marked the objects it works on (or has finished).
    pub async fn submit(
        self: &Arc<Self>,
        caller: &Caller,
        op: Op,
        label: &str,
        render: Arc<dyn TaskRender>,
    ) -> Result<Ref> {
        self.submit_with(caller, op, label, render, CallOpts::default())
            .await
    }

    /// [`Engine::submit`] with options: the task keeps the correlation id in its
    /// `other_config` key `correlation_id`; an operation that changes something is recorded in
    /// the audit log when it ends, before the task does.
    pub async fn submit_with(
        self: &Arc<Self>,
        caller: &Caller,
        op: Op,
        label: &str,
        render: Arc<dyn TaskRender>,
        opts: CallOpts,
    ) -> Result<Ref> {
        let (class, message) = op.permission();
        self.check_permission(caller, &class, &message)?;
        let (task, cancel) = self.create_task(caller, label, opts.correlation_id.as_deref())?;
        let engine = self.clone();
        let caller = caller.clone();
        let running = task.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let ctx = Ctx {
                caller: &caller,
                task: running.clone(),
                cancel,
                tracked: true,
                started: std::sync::Mutex::new(Some(tx)),
            };
            let plan = engine.read(|db| crate::audit::plan(db, &op));
            let outcome = engine.execute(&ctx, op).await;
            if let Some(plan) = plan {
                engine.audit_outcome(&caller, plan, &outcome, opts.correlation_id, Some(&running));
            }
            engine.complete_task(&running, outcome, render.as_ref());
            ctx.started();
        });
        let _ = rx.await;
        Ok(task)
    }

    async fn execute(self: &Arc<Self>, ctx: &Ctx<'_>, op: Op) -> Result<Reply> {
        match op {
            Op::GetAll { class } => {
                self.read(|db| Ok(Reply::Refs(db.all(&class).map(|o| o.r.clone()).collect())))
            }
            Op::GetAllRecords { class } => {
                self.read(|db| Ok(Reply::Records(db.all(&class).cloned().collect())))
            }
            Op::GetRecord { class, r } => Ok(Reply::Record(self.get(&class, &r)?)),
            Op::GetByUuid { class, uuid } => self.read(|db| {
                db.table(&class)
                    .and_then(|t| t.by_uuid(&uuid))
                    .map(|r| Reply::Ref(r.clone()))
                    .ok_or(CoreError::UuidInvalid { class, uuid })
            }),
            Op::GetByNameLabel { class, label } => self.read(|db| {
                Ok(Reply::Refs(
                    db.all(&class)
                        .filter(|o| o.str("name_label") == label)
                        .map(|o| o.r.clone())
                        .collect(),
                ))
            }),
            Op::GetField { class, r, field } => {
                let obj = self.get(&class, &r)?;
                let i = obj
                    .class
                    .field_index(&field)
                    .ok_or(CoreError::NoSuchField { class, field })?;
                Ok(Reply::Value(obj.fields[i].clone()))
            }
            Op::SetField {
                class,
                r,
                field,
                value,
            } => {
                self.change_field(&class, &r, &field, FieldChange::Set(value))
                    .await
            }
            Op::MapAdd {
                class,
                r,
                field,
                key,
                value,
            } => {
                self.change_field(&class, &r, &field, FieldChange::MapAdd(key, value))
                    .await
            }
            Op::MapRemove {
                class,
                r,
                field,
                key,
            } => {
                self.change_field(&class, &r, &field, FieldChange::MapRemove(key))
                    .await
            }
            Op::SetAdd {
                class,
                r,
                field,
                value,
            } => {
                self.change_field(&class, &r, &field, FieldChange::SetAdd(value))
                    .await
            }
            Op::SetRemove {
                class,
                r,
                field,
                value,
            } => {
                self.change_field(&class, &r, &field, FieldChange::SetRemove(value))
                    .await
            }
            Op::Create { class, fields } => {
                self.create_object(&class, fields).await.map(Reply::Ref)
            }
            Op::Net(op) => self.net_op(op).await,
            Op::Destroy { class, r } => {
                self.destroy_object(ctx, &class, &r).await?;
                Ok(Reply::Void)
            }
            Op::Vm { vm, action } => self.vm_action(ctx, &vm, action).await,
            Op::Host { host, action } => self.host_action(ctx, &host, action).await,
            Op::PoolJoin { address, secret } => {
                self.join_host(&address, &secret).await.map(Reply::Ref)
            }
            Op::Vdi { vdi, action } => self.vdi_action(ctx, &vdi, action).await,
            Op::Vbd { vbd, action } => self.vbd_action(ctx, &vbd, action).await,
            Op::Sr { sr, action } => self.sr_action(ctx, &sr, action).await,
            Op::Pbd { pbd, action } => self.pbd_action(&pbd, action).await,
            Op::TaskCreate { label, description } => {
                let (task, _) = self.create_task(ctx.caller, &label, None)?;
                self.write(|t| t.set("task", &task, "name_description", Value::str(description)))?;
                Ok(Reply::Ref(task))
            }
            Op::TaskCancel { task } => {
                self.cancel_task(&task)?;
                Ok(Reply::Void)
            }
            Op::EventFrom {
                classes,
                token,
                timeout,
            } => self
                .event_from(&classes, &token, timeout)
                .await
                .map(Reply::Events),
            Op::EventRegister { classes } => {
                self.event_register(ctx.caller, classes);
                Ok(Reply::Void)
            }
            Op::EventUnregister { classes } => {
                self.event_unregister(ctx.caller, &classes);
                Ok(Reply::Void)
            }
            Op::EventNext => self.event_next(ctx.caller).await.map(Reply::Events),
            Op::EventCurrentId => Ok(Reply::Value(Value::Int(self.read(|db| db.gen) as i64))),
            Op::EventInject { class, r } => {
                self.write(|t| {
                    t.must(&class, &r)?;
                    t.update(&class, &r, "uuid", |_| {})
                })?;
                Ok(Reply::Value(Value::str(self.read(|db| db.gen).to_string())))
            }
        }
    }

    /// A field clients may write: read/write, or given an explicit setter by the datamodel.
    fn check_rw(&self, class: &str, field: &str) -> Result<&'static drover_model::Field> {
        let k = Schema::get().class(class);
        let f = k
            .and_then(|c| c.field(field))
            .ok_or_else(|| CoreError::NoSuchField {
                class: class.into(),
                field: field.into(),
            })?;
        let has_writer = k.is_some_and(|c| {
            ["set_", "add_to_", "remove_from_", "add_", "remove_"]
                .iter()
                .any(|p| c.messages.contains_key(format!("{p}{field}").as_str()))
        });
        if f.qualifier != Qualifier::Rw && !has_writer {
            return Err(CoreError::OperationNotAllowed(format!(
                "{class}.{field} is read-only"
            )));
        }
        Ok(f)
    }

    /// Changes a field through the generic setters; fields that stand for something on a host
    /// (a network's MTU and address range, a bond's mode) or that the engine owns in part (a
    /// VIF's reserved address) take their own path.
    async fn change_field(
        &self,
        class: &str,
        r: &str,
        field: &str,
        change: FieldChange,
    ) -> Result<Reply> {
        let f = self.check_rw(class, field)?;
        if let FieldChange::Set(value) = &change {
            validate(field, &f.ty, value)?;
        }
        match (class, field, change) {
            ("VM", _, FieldChange::Set(value)) if field.starts_with("memory_") => {
                self.vm_set_memory_field(r, field, value)?
            }
            ("network", "MTU" | "other_config", change) => {
                self.network_field_change(r, field, &change).await?
            }
            ("VIF", "other_config", change) => self.vif_other_config_change(r, &change)?,
            ("Bond", "mode", change) => self.bond_mode_change(r, &change).await?,
            (_, _, change) => self.write(|t| change.apply(t, class, r, field))?,
        }
        Ok(Reply::Void)
    }
}

/// A change of one field through the generic setters.
#[derive(Debug, Clone)]
pub(crate) enum FieldChange {
    /// `set_<field>`.
    Set(Value),
    /// `add_to_<field>` of a map: the key must be new.
    MapAdd(Value, Value),
    /// `remove_from_<field>` of a map.
    MapRemove(Value),
    /// `add_<field>` of a set.
    SetAdd(Value),
    /// `remove_<field>` of a set.
    SetRemove(Value),
}

impl FieldChange {
    /// Applies the change to `class` object `r` in a transaction.
    pub(crate) fn apply(&self, t: &mut Txn, class: &str, r: &str, field: &str) -> Result<()> {
        match self {
            FieldChange::Set(v) => t.set(class, r, field, v.clone()),
            FieldChange::MapAdd(key, value) => {
                let obj = t.must(class, r)?;
                if obj
                    .get(field)
                    .as_map()
                    .is_some_and(|m| m.iter().any(|(k, _)| k == key))
                {
                    return Err(CoreError::MapDuplicateKey {
                        class: class.into(),
                        field: field.into(),
                        uuid: obj.uuid().to_string(),
                        key: key.as_str().unwrap_or_default().to_string(),
                    });
                }
                t.update(class, r, field, |m| {
                    m.map_insert(key.clone(), value.clone());
                })
            }
            FieldChange::MapRemove(key) => t.update(class, r, field, |m| m.map_remove(key)),
            FieldChange::SetAdd(v) => t.update(class, r, field, |s| s.set_add(v.clone())),
            FieldChange::SetRemove(v) => t.update(class, r, field, |s| s.set_remove(v)),
        }
    }
}

/// Checks that a value fits a type, including enum membership and reference syntax.
pub fn validate(field: &str, ty: &Type, v: &Value) -> Result<()> {
    let ok = match (ty, v) {
        (Type::String, Value::Str(_)) => true,
        (Type::Ref(_), Value::Str(s)) => s.starts_with("OpaqueRef:") || s.is_empty(),
        (Type::Enum(e), Value::Str(s)) => {
            let values = Schema::get().enums.get(&**e);
            if !values.is_some_and(|vals| vals.iter().any(|x| **x == **s)) {
                return Err(CoreError::InvalidValue {
                    field: field.into(),
                    value: s.clone(),
                });
            }
            true
        }
        (Type::Int, Value::Int(_))
        | (Type::Float, Value::Float(_))
        | (Type::Bool, Value::Bool(_)) => true,
        (Type::DateTime, Value::DateTime(_)) => true,
        (Type::Set(inner), Value::Set(items)) => {
            items.iter().try_for_each(|i| validate(field, inner, i))?;
            true
        }
        (Type::Map(k, vt), Value::Map(pairs)) => {
            pairs.iter().try_for_each(|(a, b)| {
                validate(field, k, a).and_then(|_| validate(field, vt, b))
            })?;
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(CoreError::FieldType(field.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_map_edits_check_the_datamodel_messages() {
        let tag = |add: bool| {
            let (class, r, field, value) =
                ("VM".into(), "r".into(), "tags".into(), Value::str("t"));
            if add {
                Op::SetAdd {
                    class,
                    r,
                    field,
                    value,
                }
            } else {
                Op::SetRemove {
                    class,
                    r,
                    field,
                    value,
                }
            }
        };
        assert_eq!(tag(true).permission(), ("VM".into(), "add_tags".into()));
        assert_eq!(tag(false).permission(), ("VM".into(), "remove_tags".into()));
        let map = Op::MapAdd {
            class: "VM".into(),
            r: "r".into(),
            field: "other_config".into(),
            key: Value::str("k"),
            value: Value::str("v"),
        };
        assert_eq!(
            map.permission(),
            ("VM".into(), "add_to_other_config".into())
        );
        let schema = drover_model::Schema::get();
        let vm = schema.class("VM").unwrap();
        assert!(vm.messages.contains_key("add_tags"));
    }
}
