//! From a XenAPI method name and its parameters to a core operation, and back.

use std::sync::Arc;

use drover_core::{
    CoreError, Engine, HostAction, NetOp, Op, PbdAction, Reply, SrAction, SrSpec, TaskRender,
    VbdAction, VdiAction, VmAction,
};
use drover_model::{Message, Schema, Type, Value};
use drover_rpcwire::WireValue;

use crate::convert::{self, Enc};
use crate::errors::describe;
use crate::where_expr;

/// A XenAPI failure: code and parameters.
pub type Failure = Vec<String>;

fn fail(code: &str, params: &[&str]) -> Failure {
    std::iter::once(code.to_string())
        .chain(params.iter().map(|p| p.to_string()))
        .collect()
}

/// Splits `Class.method`, `Class_method` or `Async.Class.method`.
fn split(method: &str) -> Option<(bool, &'static str, String)> {
    let (is_async, rest) = match method.strip_prefix("Async.") {
        Some(r) => (true, r),
        None => (false, method),
    };
    let schema = Schema::get();
    if let Some((c, m)) = rest.split_once('.') {
        let class = schema.classes().iter().find(|k| *k.name == *c)?;
        return Some((is_async, &*class.name, m.to_string()));
    }
    // Class_method: the longest class name that prefixes it.
    let class = schema
        .classes()
        .iter()
        .filter(|k| {
            rest.len() > k.name.len() + 1
                && rest.starts_with(&*k.name)
                && rest.as_bytes()[k.name.len()] == b'_'
        })
        .max_by_key(|k| k.name.len())?;
    Some((
        is_async,
        &*class.name,
        rest[class.name.len() + 1..].to_string(),
    ))
}

/// Messages xapi serves that the datamodel does not list.
fn extra_arity(message: &str) -> Option<usize> {
    match message {
        "get_all_records_where" | "get_all_where" => Some(2),
        _ => None,
    }
}

struct Args<'a> {
    method: &'a str,
    params: &'a [WireValue],
    msg: Option<&'a Message>,
}

/// What a missing optional parameter reads as.
static ABSENT: WireValue = WireValue::Nil;

impl Args<'_> {
    fn raw(&self, i: usize) -> &WireValue {
        self.params.get(i).unwrap_or(&ABSENT)
    }

    fn typed(&self, i: usize) -> Result<Value, Failure> {
        let (name, ty) = match self.msg.and_then(|m| m.params.get(i)) {
            Some((n, t)) => (n.to_string(), t.clone()),
            None => (format!("param{i}"), Type::String),
        };
        let ty = match ty {
            Type::Record(_) | Type::Opaque(_) | Type::Void => Type::String,
            t => t,
        };
        convert::from_wire(self.raw(i), &ty).map_err(|_| fail("FIELD_TYPE_ERROR", &[&name]))
    }

    fn str(&self, i: usize) -> Result<String, Failure> {
        match self.raw(i) {
            WireValue::Str(s) => Ok(s.clone()),
            _ => Err(fail("FIELD_TYPE_ERROR", &[&self.param_name(i)])),
        }
    }

    fn bool(&self, i: usize) -> Result<bool, Failure> {
        convert::from_wire(self.raw(i), &Type::Bool)
            .ok()
            .and_then(|v| v.as_bool())
            .ok_or_else(|| fail("FIELD_TYPE_ERROR", &[&self.param_name(i)]))
    }

    fn int(&self, i: usize) -> Result<i64, Failure> {
        convert::from_wire(self.raw(i), &Type::Int)
            .ok()
            .and_then(|v| v.as_int())
            .ok_or_else(|| fail("FIELD_TYPE_ERROR", &[&self.param_name(i)]))
    }

    fn float(&self, i: usize) -> Result<f64, Failure> {
        match convert::from_wire(self.raw(i), &Type::Float) {
            Ok(Value::Float(f)) => Ok(f),
            _ => Err(fail("FIELD_TYPE_ERROR", &[&self.param_name(i)])),
        }
    }

    fn strings(&self, i: usize) -> Result<Vec<String>, Failure> {
        match self.raw(i) {
            WireValue::Array(items) => items
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .ok_or_else(|| fail("FIELD_TYPE_ERROR", &[&self.param_name(i)]))
                })
                .collect(),
            _ => Err(fail("FIELD_TYPE_ERROR", &[&self.param_name(i)])),
        }
    }

    /// A string map parameter; absent optional ones are empty.
    fn string_map(&self, i: usize) -> Result<Vec<(String, String)>, Failure> {
        if matches!(self.raw(i), WireValue::Nil) {
            return Ok(Vec::new());
        }
        match self.typed(i)? {
            Value::Map(pairs) => Ok(pairs
                .into_iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()),
            _ => Err(fail("FIELD_TYPE_ERROR", &[&self.param_name(i)])),
        }
    }

    fn param_name(&self, i: usize) -> String {
        self.msg
            .and_then(|m| m.params.get(i))
            .map(|(n, _)| n.to_string())
            .unwrap_or_else(|| format!("param{i}"))
    }
}

/// What a call answers: a value, or whole records that the server may stream.
pub enum Answer {
    /// A value.
    Tree(WireValue),
    /// Records keyed by reference (`get_all_records` and its `_where` form).
    Records(Vec<Arc<drover_core::Obj>>),
}

impl Answer {
    /// The answer as one value.
    pub fn into_tree(self, enc: Enc) -> WireValue {
        match self {
            Answer::Tree(v) => v,
            Answer::Records(objs) => convert::records(&objs, enc),
        }
    }
}

/// Runs one XenAPI call.
pub async fn call(
    engine: &Arc<Engine>,
    method: &str,
    params: &[WireValue],
    enc: Enc,
) -> Result<Answer, Failure> {
    let unknown = || fail("MESSAGE_METHOD_UNKNOWN", &[method]);
    if matches!(
        method,
        "session.login_with_password"
            | "session.slave_local_login_with_password"
            | "session_login_with_password"
    ) {
        if !(2..=4).contains(&params.len()) {
            return Err(fail(
                "MESSAGE_PARAMETER_COUNT_MISMATCH",
                &[method, "4", &params.len().to_string()],
            ));
        }
        let s = |i: usize| params.get(i).and_then(|v| v.as_str()).map(String::from);
        let (user, pw) = match (s(0), s(1)) {
            (Some(u), Some(p)) => (u, p),
            (None, _) => return Err(fail("FIELD_TYPE_ERROR", &["uname"])),
            (_, None) => return Err(fail("FIELD_TYPE_ERROR", &["pwd"])),
        };
        let originator = s(3).unwrap_or_default();
        let r = engine
            .login(&user, &pw, &originator)
            .await
            .map_err(|e| describe(&e))?;
        return Ok(Answer::Tree(WireValue::Str(r.to_string())));
    }
    let (is_async, class, message) = split(method).ok_or_else(unknown)?;
    let msg = Schema::get()
        .class(class)
        .and_then(|c| c.messages.get(message.as_str()));
    let (required, expected) = match (msg, extra_arity(&message)) {
        (Some(m), _) => (m.required, m.params.len()),
        (None, Some(n)) => (n, n),
        (None, None) => return Err(unknown()),
    };
    if params.len() < required || params.len() > expected {
        return Err(fail(
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            &[method, &expected.to_string(), &params.len().to_string()],
        ));
    }
    let session = params
        .first()
        .and_then(|v| v.as_str())
        .ok_or_else(|| fail("SESSION_INVALID", &[""]))?;
    let caller = engine.authenticate(session).map_err(|e| describe(&e))?;
    let args = Args {
        method,
        params,
        msg,
    };
    let (op, result_ty) = to_op(class, &message, &args)?;
    let op = match op {
        Routed::Op(op) => op,
        Routed::Session(what) => {
            return session_call(engine, &caller, what, &args)
                .await
                .map(Answer::Tree)
        }
        Routed::Where(expr, records) => {
            let expr =
                where_expr::parse(&expr).map_err(|e| fail("INVALID_VALUE", &["expr", &e]))?;
            let reply = engine
                .call(
                    &caller,
                    Op::GetAllRecords {
                        class: class.into(),
                    },
                )
                .await
                .map_err(|e| describe(&e))?;
            let Reply::Records(objs) = reply else {
                return Err(fail("INTERNAL_ERROR", &["records expected"]));
            };
            let hits = objs.iter().filter(|o| expr.eval(o));
            return Ok(if records {
                Answer::Records(hits.cloned().collect())
            } else {
                Answer::Tree(WireValue::Array(
                    hits.map(|o| WireValue::Str(o.r.to_string())).collect(),
                ))
            });
        }
    };
    if is_async {
        if matches!(class, "session" | "task" | "event")
            || is_field_op(class, &message)
            || msg.is_some_and(|m| m.implicit && !matches!(message.as_str(), "create" | "destroy"))
        {
            return Err(unknown());
        }
        let render = Arc::new(AsyncRender { ty: result_ty });
        let task = engine
            .submit(&caller, op, &format!("Async.{class}.{message}"), render)
            .await
            .map_err(|e| describe(&e))?;
        return Ok(Answer::Tree(WireValue::Str(task.to_string())));
    }
    let reply = engine.call(&caller, op).await.map_err(|e| describe(&e))?;
    Ok(match reply {
        Reply::Records(objs) => Answer::Records(objs),
        other => Answer::Tree(render(&other, &result_ty, enc)),
    })
}

/// Whether a message reads or writes one field (never run as a task).
fn is_field_op(class: &str, message: &str) -> bool {
    let Some(k) = Schema::get().class(class) else {
        return false;
    };
    ["get_", "set_", "add_to_", "remove_from_", "add_", "remove_"]
        .iter()
        .any(|p| {
            message
                .strip_prefix(p)
                .is_some_and(|f| k.field(f).is_some())
        })
}

/// Constructor parameters that are not a record: each named like a field of the class.
fn constructor_params(k: &drover_model::Class, a: &Args) -> Result<Vec<(String, Value)>, Failure> {
    let Some(msg) = a.msg else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, (name, _)) in msg.params.iter().enumerate().skip(1) {
        if i >= a.params.len() {
            break;
        }
        if let Some(f) = k.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)) {
            out.push((f.name.to_string(), a.typed(i)?));
        }
    }
    Ok(out)
}

enum SessionCall {
    Logout,
    ChangePassword,
}

enum Routed {
    Op(Op),
    Session(SessionCall),
    Where(String, bool),
}

fn host_op(a: &Args, action: HostAction) -> Result<Op, Failure> {
    Ok(Op::Host {
        host: ref_arg(a, 1)?,
        action,
    })
}

fn ref_arg(args: &Args, i: usize) -> Result<String, Failure> {
    args.str(i)
}

/// A string parameter that may be left out (empty then).
fn opt_str(args: &Args, i: usize) -> Result<String, Failure> {
    match args.raw(i) {
        WireValue::Nil => Ok(String::new()),
        _ => args.str(i),
    }
}

fn to_op(class: &'static str, message: &str, a: &Args) -> Result<(Routed, Type), Failure> {
    let c = class.to_string();
    let result = a.msg.map(|m| m.result.clone()).unwrap_or(Type::Void);
    let k = Schema::get()
        .class(class)
        .ok_or_else(|| fail("MESSAGE_METHOD_UNKNOWN", &[a.method]))?;
    let op = match (class, message) {
        ("session", "logout") => return Ok((Routed::Session(SessionCall::Logout), result)),
        ("session", "change_password") => {
            return Ok((Routed::Session(SessionCall::ChangePassword), result))
        }
        (_, "get_all_records_where") => return Ok((Routed::Where(a.str(1)?, true), result)),
        (_, "get_all_where") => return Ok((Routed::Where(a.str(1)?, false), result)),
        (_, "get_all") => Op::GetAll { class: c },
        (_, "get_all_records") => Op::GetAllRecords { class: c },
        (_, "get_record") => Op::GetRecord {
            class: c,
            r: ref_arg(a, 1)?,
        },
        (_, "get_by_uuid") => Op::GetByUuid {
            class: c,
            uuid: a.str(1)?,
        },
        (_, "get_by_name_label") => Op::GetByNameLabel {
            class: c,
            label: a.str(1)?,
        },
        ("VLAN", "create") => Op::Net(NetOp::VlanCreate {
            pif: a.str(1)?,
            tag: a.int(2)?,
            network: a.str(3)?,
        }),
        ("PIF", "create_VLAN") => Op::Net(NetOp::PifCreateVlan {
            device: a.str(1)?,
            network: a.str(2)?,
            host: a.str(3)?,
            tag: a.int(4)?,
        }),
        // Drover's pool.join is sent to the pool's engine: it enrols the host agent at
        // `master_address` (HOST:PORT) with its one-time secret as `master_password`.
        ("pool", "join") | ("pool", "join_force") => Op::PoolJoin {
            address: a.str(1)?,
            secret: a.str(3)?,
        },
        ("pool", "eject") => host_op(a, HostAction::Eject)?,
        ("pool", "create_VLAN") => Op::Net(NetOp::PoolCreateVlan {
            device: a.str(1)?,
            network: a.str(2)?,
            tag: a.int(3)?,
        }),
        ("pool", "create_VLAN_from_PIF") => Op::Net(NetOp::PoolCreateVlanFromPif {
            pif: a.str(1)?,
            network: a.str(2)?,
            tag: a.int(3)?,
        }),
        ("Bond", "create") => Op::Net(NetOp::BondCreate {
            network: a.str(1)?,
            members: a.strings(2)?,
            mac: a.str(3)?,
            mode: a.str(4)?,
            properties: a.string_map(5)?,
        }),
        ("VIF", "plug") => Op::Net(NetOp::VifPlug {
            vif: ref_arg(a, 1)?,
        }),
        ("VIF", "unplug" | "unplug_force") => Op::Net(NetOp::VifUnplug {
            vif: ref_arg(a, 1)?,
            force: message == "unplug_force",
        }),
        ("VIF", "move") => Op::Net(NetOp::VifMove {
            vif: ref_arg(a, 1)?,
            network: ref_arg(a, 2)?,
        }),
        ("VIF", "configure_ipv4" | "configure_ipv6") => Op::Net(NetOp::VifConfigureIp {
            vif: ref_arg(a, 1)?,
            ipv6: message == "configure_ipv6",
            mode: a.str(2)?,
            address: opt_str(a, 3)?,
            gateway: opt_str(a, 4)?,
        }),
        ("PIF", "plug") => Op::Net(NetOp::PifPlug {
            pif: ref_arg(a, 1)?,
        }),
        ("PIF", "unplug") => Op::Net(NetOp::PifUnplug {
            pif: ref_arg(a, 1)?,
        }),
        ("PIF", "forget") => Op::Net(NetOp::PifForget {
            pif: ref_arg(a, 1)?,
        }),
        ("PIF", "scan") => Op::Net(NetOp::PifScan { host: a.str(1)? }),
        ("PIF", "introduce") => Op::Net(NetOp::PifIntroduce {
            host: a.str(1)?,
            mac: a.str(2)?,
            device: a.str(3)?,
            managed: match a.raw(4) {
                WireValue::Nil => true,
                _ => a.bool(4)?,
            },
        }),
        ("PIF", "reconfigure_ipv6") => Op::Net(NetOp::PifReconfigureIpv6 {
            pif: ref_arg(a, 1)?,
            mode: a.str(2)?,
            ipv6: a.str(3)?,
            gateway: a.str(4)?,
            dns: a.str(5)?,
        }),
        ("PIF", "set_property") => Op::Net(NetOp::PifSetProperty {
            pif: ref_arg(a, 1)?,
            name: a.str(2)?,
            value: a.str(3)?,
        }),
        ("Bond", "set_property") => Op::Net(NetOp::BondSetProperty {
            bond: ref_arg(a, 1)?,
            name: a.str(2)?,
            value: a.str(3)?,
        }),
        ("PIF", "reconfigure_ip") => Op::Net(NetOp::PifReconfigureIp {
            pif: ref_arg(a, 1)?,
            mode: a.str(2)?,
            ip: a.str(3)?,
            netmask: a.str(4)?,
            gateway: a.str(5)?,
            dns: a.str(6)?,
        }),
        ("SR", "create") => Op::Sr {
            sr: String::new(),
            action: SrAction::Create {
                host: a.str(1)?,
                device_config: a.string_map(2)?,
                spec: SrSpec {
                    name_label: a.str(4)?,
                    name_description: a.str(5)?,
                    kind: a.str(6)?,
                    content_type: a.str(7)?,
                    shared: a.bool(8)?,
                    sm_config: a.string_map(9)?,
                    ..SrSpec::default()
                },
            },
        },
        ("SR", "introduce") => Op::Sr {
            sr: String::new(),
            action: SrAction::Introduce {
                spec: SrSpec {
                    uuid: a.str(1)?,
                    name_label: a.str(2)?,
                    name_description: a.str(3)?,
                    kind: a.str(4)?,
                    content_type: a.str(5)?,
                    shared: a.bool(6)?,
                    sm_config: a.string_map(7)?,
                },
            },
        },
        ("task", "create") => Op::TaskCreate {
            label: a.str(1)?,
            description: a.str(2)?,
        },
        (_, "create") => {
            let fields = match a.msg.and_then(|m| m.params.get(1)).map(|(_, t)| t) {
                Some(Type::Record(_)) => convert::record_from_wire(a.raw(1), class)
                    .map_err(|f| fail("FIELD_TYPE_ERROR", &[&f]))?,
                _ => constructor_params(k, a)?,
            };
            Op::Create { class: c, fields }
        }
        (_, "destroy") => Op::Destroy {
            class: c,
            r: ref_arg(a, 1)?,
        },
        ("task", "cancel") => Op::TaskCancel {
            task: ref_arg(a, 1)?,
        },
        ("event", "from") => Op::EventFrom {
            classes: a.strings(1)?,
            token: a.str(2)?,
            timeout: a.float(3)?,
        },
        ("event", "register") => Op::EventRegister {
            classes: a.strings(1)?,
        },
        ("event", "unregister") => Op::EventUnregister {
            classes: a.strings(1)?,
        },
        ("event", "next") => Op::EventNext,
        ("event", "get_current_id") => Op::EventCurrentId,
        ("event", "inject") => Op::EventInject {
            class: a.str(1)?,
            r: a.str(2)?,
        },
        ("VM", m) if vm_action(m, a)?.is_some() => Op::Vm {
            vm: ref_arg(a, 1)?,
            action: vm_action(m, a)?.expect("checked"),
        },
        ("VDI", "clone") => Op::Vdi {
            vdi: ref_arg(a, 1)?,
            action: VdiAction::Clone,
        },
        ("VDI", "snapshot") => Op::Vdi {
            vdi: ref_arg(a, 1)?,
            action: VdiAction::Snapshot,
        },
        ("VDI", "copy") => Op::Vdi {
            vdi: ref_arg(a, 1)?,
            action: VdiAction::Copy { sr: a.str(2)? },
        },
        ("VDI", "resize") => Op::Vdi {
            vdi: ref_arg(a, 1)?,
            action: VdiAction::Resize { size: a.int(2)? },
        },
        ("VBD", "plug") => Op::Vbd {
            vbd: ref_arg(a, 1)?,
            action: VbdAction::Plug,
        },
        ("VBD", "unplug") => Op::Vbd {
            vbd: ref_arg(a, 1)?,
            action: VbdAction::Unplug,
        },
        ("VBD", "insert") => Op::Vbd {
            vbd: ref_arg(a, 1)?,
            action: VbdAction::Insert { vdi: a.str(2)? },
        },
        ("VBD", "eject") => Op::Vbd {
            vbd: ref_arg(a, 1)?,
            action: VbdAction::Eject,
        },
        ("host", "compute_free_memory") => host_op(a, HostAction::ComputeFreeMemory)?,
        ("host", "get_servertime") => host_op(a, HostAction::GetServertime)?,
        ("host", "get_server_localtime") => host_op(a, HostAction::GetServerLocaltime)?,
        ("host", "get_management_interface") => host_op(a, HostAction::GetManagementInterface)?,
        ("host", "disable") => host_op(a, HostAction::Disable)?,
        ("host", "enable") => host_op(a, HostAction::Enable)?,
        ("host", "evacuate") => host_op(a, HostAction::Evacuate)?,
        ("host", "power_on") => host_op(a, HostAction::PowerOn)?,
        ("host", "set_power_on_mode") => host_op(
            a,
            HostAction::SetPowerOnMode {
                mode: a.str(2)?,
                config: a.string_map(3)?,
            },
        )?,
        ("SR", "scan") => Op::Sr {
            sr: ref_arg(a, 1)?,
            action: SrAction::Scan,
        },
        ("SR", "forget") => Op::Sr {
            sr: ref_arg(a, 1)?,
            action: SrAction::Forget,
        },
        ("PBD", "plug") => Op::Pbd {
            pbd: ref_arg(a, 1)?,
            action: PbdAction::Plug,
        },
        ("PBD", "unplug") => Op::Pbd {
            pbd: ref_arg(a, 1)?,
            action: PbdAction::Unplug,
        },
        ("SR", "get_supported_types") => Op::Sr {
            sr: String::new(),
            action: SrAction::GetSupportedTypes,
        },
        (_, m) => {
            if a.msg.is_none() {
                return Err(fail("MESSAGE_METHOD_UNKNOWN", &[a.method]));
            }
            let r = ref_arg(a, 1)?;
            let field_op = |prefix: &str| {
                m.strip_prefix(prefix)
                    .filter(|f| k.field(f).is_some())
                    .map(String::from)
            };
            if let Some(field) = field_op("get_") {
                Op::GetField { class: c, r, field }
            } else if let Some(field) = field_op("set_") {
                Op::SetField {
                    class: c,
                    r,
                    value: a.typed(2)?,
                    field,
                }
            } else if let Some(field) = field_op("add_to_") {
                Op::MapAdd {
                    class: c,
                    r,
                    key: a.typed(2)?,
                    value: a.typed(3)?,
                    field,
                }
            } else if let Some(field) = field_op("remove_from_") {
                Op::MapRemove {
                    class: c,
                    r,
                    key: a.typed(2)?,
                    field,
                }
            } else if let Some(field) = field_op("add_") {
                Op::SetAdd {
                    class: c,
                    r,
                    value: a.typed(2)?,
                    field,
                }
            } else if let Some(field) = field_op("remove_") {
                Op::SetRemove {
                    class: c,
                    r,
                    value: a.typed(2)?,
                    field,
                }
            } else {
                return Err(fail("MESSAGE_METHOD_UNKNOWN", &[a.method]));
            }
        }
    };
    Ok((Routed::Op(op), result))
}

fn vm_action(m: &str, a: &Args) -> Result<Option<VmAction>, Failure> {
    Ok(Some(match m {
        "start" => VmAction::Start {
            paused: a.bool(2)?,
            force: a.bool(3)?,
        },
        "start_on" => VmAction::StartOn {
            host: a.str(2)?,
            paused: a.bool(3)?,
            force: a.bool(4)?,
        },
        "pool_migrate" => VmAction::PoolMigrate {
            host: Some(a.str(2)?),
        },
        "pause" => VmAction::Pause,
        "unpause" => VmAction::Unpause,
        "clean_shutdown" => VmAction::CleanShutdown,
        "hard_shutdown" => VmAction::HardShutdown,
        "clean_reboot" => VmAction::CleanReboot,
        "hard_reboot" => VmAction::HardReboot,
        "suspend" => VmAction::Suspend,
        "resume" => VmAction::Resume {
            paused: a.bool(2)?,
            force: a.bool(3)?,
        },
        "resume_on" => VmAction::ResumeOn {
            host: a.str(2)?,
            paused: a.bool(3)?,
            force: a.bool(4)?,
        },
        "clone" => VmAction::Clone { name: a.str(2)? },
        "copy" => VmAction::Copy {
            name: a.str(2)?,
            sr: a.str(3)?,
        },
        "snapshot" => VmAction::Snapshot { name: a.str(2)? },
        "revert" => VmAction::Revert,
        "provision" => VmAction::Provision,
        "set_memory_limits" => VmAction::SetMemoryLimits {
            static_min: a.int(2)?,
            static_max: a.int(3)?,
            dynamic_min: a.int(4)?,
            dynamic_max: a.int(5)?,
        },
        "set_memory_dynamic_range" => VmAction::SetMemoryDynamicRange {
            min: a.int(2)?,
            max: a.int(3)?,
        },
        "set_memory_static_range" => VmAction::SetMemoryStaticRange {
            min: a.int(2)?,
            max: a.int(3)?,
        },
        "set_memory" => VmAction::SetMemory { value: a.int(2)? },
        "set_VCPUs_number_live" => VmAction::SetVcpusNumberLive { n: a.int(2)? },
        "set_VCPUs_max" => VmAction::SetVcpusMax { n: a.int(2)? },
        "set_VCPUs_at_startup" => VmAction::SetVcpusAtStartup { n: a.int(2)? },
        "get_boot_record" => VmAction::GetBootRecord,
        "assert_operation_valid" => VmAction::AssertOperationValid { op: a.str(2)? },
        "update_allowed_operations" => VmAction::UpdateAllowedOperations,
        "power_state_reset" => VmAction::PowerStateReset,
        "get_allowed_VBD_devices" => VmAction::GetAllowedVbdDevices,
        "get_allowed_VIF_devices" => VmAction::GetAllowedVifDevices,
        "get_possible_hosts" => VmAction::GetPossibleHosts,
        "assert_can_boot_here" => VmAction::AssertCanBootHere { host: a.str(2)? },
        _ => return Ok(None),
    }))
}

async fn session_call(
    engine: &Arc<Engine>,
    caller: &drover_core::Caller,
    what: SessionCall,
    a: &Args<'_>,
) -> Result<WireValue, Failure> {
    match what {
        SessionCall::Logout => engine.logout(caller).map_err(|e| describe(&e))?,
        SessionCall::ChangePassword => {
            let (old, new) = (a.str(1)?, a.str(2)?);
            engine
                .change_password(caller, &old, &new)
                .await
                .map_err(|e| describe(&e))?
        }
    }
    Ok(WireValue::Str(String::new()))
}

/// A reply as the wire shows it, given the message's result type.
pub fn render(reply: &Reply, ty: &Type, enc: Enc) -> WireValue {
    match reply {
        Reply::Void => WireValue::Str(String::new()),
        Reply::Value(v) => convert::to_wire(v, enc),
        Reply::Ref(r) => WireValue::Str(r.to_string()),
        Reply::Refs(rs) => {
            WireValue::Array(rs.iter().map(|r| WireValue::Str(r.to_string())).collect())
        }
        Reply::Record(o) => convert::record(o, enc),
        Reply::Records(os) => convert::records(os, enc),
        Reply::Events(b) => match ty {
            Type::Set(_) => convert::events(b, enc),
            _ => convert::batch(b, enc),
        },
    }
}

/// How asynchronous results are kept in task records: an XML-RPC `<value>` fragment.
struct AsyncRender {
    ty: Type,
}

impl TaskRender for AsyncRender {
    fn result(&self, reply: &Reply) -> String {
        let value = render(reply, &self.ty, Enc::Xml);
        if matches!(value, WireValue::Str(ref s) if s.is_empty()) {
            return String::new();
        }
        let mut out = Vec::new();
        drover_rpcwire::xmlrpc::write_response(&mut out, &value);
        let text = String::from_utf8_lossy(&out);
        let start = text.find("<value>").unwrap_or(0);
        let end = text
            .rfind("</value>")
            .map(|e| e + "</value>".len())
            .unwrap_or(text.len());
        text[start..end].to_string()
    }

    fn error(&self, error: &CoreError) -> Vec<String> {
        describe(error)
    }
}
