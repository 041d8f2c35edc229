//! Request validation of the REST layer, as `zvmsdk.sdkwsgi` 1.6.3 does it with JSON Schema
//! Draft 4 (`jsonschema` 4.x): the same schemas, the same first error, the same `errmsg` text.
//!
//! Body errors read `ValidationError: Validation error: Invalid input for field/attribute
//! <last path element>. Value: <str(value)>. <jsonschema message>`; errors on the top-level
//! object carry the bare message; query and path errors say `query parameters` instead of
//! `field/attribute`.

mod draft4;
mod pattern;
mod pyrepr;
mod schemas;
mod types;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use draft4::{first_error, Failure, Node};

/// One request-body schema of the REST layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// `POST /guests`.
    GuestCreate,
    /// Action `start`.
    Start,
    /// Action `stop`.
    Stop,
    /// Action `softstop`.
    Softstop,
    /// Action `register_vm` (unknown members allowed).
    RegisterVm,
    /// Action `deregister_vm`.
    DeregisterVm,
    /// Action `live_migrate_vm`.
    LiveMigrateVm,
    /// Actions `resize_cpus` and `live_resize_cpus`.
    ResizeCpus,
    /// Actions `resize_mem` and `live_resize_mem`.
    ResizeMem,
    /// Action `grow_root_volume`.
    GrowRootVolume,
    /// Action `deploy`.
    Deploy,
    /// Action `capture`.
    Capture,
    /// Actions the reference does not validate (`pause`, `unpause`, `reboot`, `reset`,
    /// `get_console_output`): every body passes.
    Unvalidated,
    /// `POST /guests/{userid}/nic`.
    CreateNic,
    /// `PUT /guests/{userid}/nic/{vdev}` (couple and uncouple).
    NicCoupleUncouple,
    /// `POST /guests/{userid}/interface`.
    CreateNetworkInterface,
    /// `DELETE /guests/{userid}/interface`.
    DeleteNetworkInterface,
    /// `POST /guests/{userid}/disks`.
    CreateDisks,
    /// `DELETE /guests/{userid}/disks`.
    DeleteDisks,
    /// `PUT /guests/{userid}/disks`.
    ConfigMinidisks,
    /// `POST /images` (import).
    ImageCreate,
    /// `PUT /images/{name}` (export).
    ImageExport,
    /// `POST /vswitches`.
    VswitchCreate,
    /// `PUT /vswitches/{name}`.
    VswitchUpdate,
    /// `POST /guests/volumes`.
    VolumeAttach,
    /// `DELETE /guests/volumes`.
    VolumeDetach,
    /// `PUT /volumes/fcp/{fcp_id}`.
    SetFcpUsage,
    /// `POST /volumes/fcptemplates`.
    CreateFcpTemplate,
    /// `PUT /volumes/fcptemplates/{template_id}`: the reference first sets the body's
    /// `fcp_template_id` to the path's template id, so callers must do so before validating.
    EditFcpTemplate,
}

impl Schema {
    /// The schema of `POST /guests/{userid}/action` for an action name, if the action exists.
    pub fn for_action(action: &str) -> Option<Schema> {
        Some(match action {
            "start" => Schema::Start,
            "stop" => Schema::Stop,
            "softstop" => Schema::Softstop,
            "register_vm" => Schema::RegisterVm,
            "deregister_vm" => Schema::DeregisterVm,
            "live_migrate_vm" => Schema::LiveMigrateVm,
            "resize_cpus" | "live_resize_cpus" => Schema::ResizeCpus,
            "resize_mem" | "live_resize_mem" => Schema::ResizeMem,
            "grow_root_volume" => Schema::GrowRootVolume,
            "deploy" => Schema::Deploy,
            "capture" => Schema::Capture,
            "pause" | "unpause" | "reboot" | "reset" | "get_console_output" => Schema::Unvalidated,
            _ => return None,
        })
    }

    /// The schema tree; `None` for [`Schema::Unvalidated`].
    fn node(self) -> Option<&'static Node> {
        use schemas::*;
        Some(match self {
            Schema::GuestCreate => &GUEST_CREATE,
            Schema::Start => &START,
            Schema::Stop | Schema::Softstop => &STOP,
            Schema::RegisterVm => &REGISTER_VM,
            Schema::DeregisterVm => &DEREGISTER_VM,
            Schema::LiveMigrateVm => &LIVE_MIGRATE_VM,
            Schema::ResizeCpus => &RESIZE_CPUS,
            Schema::ResizeMem => &RESIZE_MEM,
            Schema::GrowRootVolume => &GROW_ROOT_VOLUME,
            Schema::Deploy => &DEPLOY,
            Schema::Capture => &CAPTURE,
            Schema::Unvalidated => return None,
            Schema::CreateNic => &CREATE_NIC,
            Schema::NicCoupleUncouple => &NIC_COUPLE_UNCOUPLE,
            Schema::CreateNetworkInterface => &CREATE_NETWORK_INTERFACE,
            Schema::DeleteNetworkInterface => &DELETE_NETWORK_INTERFACE,
            Schema::CreateDisks => &CREATE_DISKS,
            Schema::DeleteDisks => &DELETE_DISKS,
            Schema::ConfigMinidisks => &CONFIG_MINIDISKS,
            Schema::ImageCreate => &IMAGE_CREATE,
            Schema::ImageExport => &IMAGE_EXPORT,
            Schema::VswitchCreate => &VSWITCH_CREATE,
            Schema::VswitchUpdate => &VSWITCH_UPDATE,
            Schema::VolumeAttach | Schema::VolumeDetach => &VOLUME_ATTACH,
            Schema::SetFcpUsage => &SET_FCP_USAGE,
            Schema::CreateFcpTemplate => &CREATE_FCP_TEMPLATE,
            Schema::EditFcpTemplate => &EDIT_FCP_TEMPLATE,
        })
    }

    /// Whether this is the schema of an action, whose `action` member the reference removes
    /// before validating.
    fn is_action(self) -> bool {
        matches!(
            self,
            Schema::Start
                | Schema::Stop
                | Schema::Softstop
                | Schema::RegisterVm
                | Schema::DeregisterVm
                | Schema::LiveMigrateVm
                | Schema::ResizeCpus
                | Schema::ResizeMem
                | Schema::GrowRootVolume
                | Schema::Deploy
                | Schema::Capture
                | Schema::Unvalidated
        )
    }
}

/// Checks a JSON request body; Err carries the complete `errmsg` text exactly as the reference
/// server puts it in its 400 answer (e.g. "ValidationError: Validation error: Invalid input for
/// field/attribute userid. Value: TOOLONGUSERID. 'TOOLONGUSERID' is too long").
///
/// Action bodies may still hold their `action` member; it is ignored as the reference pops it.
pub fn body(schema: Schema, body: &Value) -> Result<(), String> {
    let Some(node) = schema.node() else {
        return Ok(());
    };
    let stripped;
    let body = match body {
        Value::Object(map) if schema.is_action() && map.contains_key("action") => {
            let mut map = map.clone();
            map.shift_remove("action");
            stripped = Value::Object(map);
            &stripped
        }
        other => other,
    };
    check(node, body, "field/attribute")
}

/// One query-string schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `GET /guests/stats?userid=a,b`.
    GuestStats,
    /// `GET /guests/interfacestats?userid=a,b`.
    GuestInterfaceStats,
    /// `GET /host/diskpool?poolname=`.
    HostDiskpool,
    /// `GET /host/diskpool_volumes?poolname=`.
    HostDiskpoolVolumes,
    /// `GET /host/volume?volumename=`.
    HostVolume,
    /// `GET /images?imagename=` (unknown parameters allowed).
    ImageQuery,
    /// `GET /volumes/fcptemplates?template_id_list=&assigner_id=&host_default=&storage_providers=`.
    FcpTemplates,
    /// `GET /volumes/fcptemplates/detail?template_id_list=&raw=&statistics=&sync_with_zvm=`.
    FcpTemplatesDetail,
}

impl Query {
    fn node(self) -> &'static Node {
        use schemas::*;
        match self {
            Query::GuestStats | Query::GuestInterfaceStats => &USERID_LIST_ARRAY_QUERY,
            Query::HostDiskpool | Query::HostDiskpoolVolumes => &DISKPOOL,
            Query::HostVolume => &HOST_VOLUME,
            Query::ImageQuery => &IMAGE_QUERY,
            Query::FcpTemplates => &GET_FCP_TEMPLATES,
            Query::FcpTemplatesDetail => &GET_FCP_TEMPLATES_DETAILS,
        }
    }
}

/// Checks query parameters (decoded, in request order, repeated keys possible, blank values
/// kept); Err is the full errmsg. Like the reference, each key's values form a list.
pub fn query(schema: Query, params: &[(String, String)]) -> Result<(), String> {
    let mut lists = Map::new();
    for (key, value) in params {
        let list = lists
            .entry(key.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = list {
            items.push(Value::String(value.clone()));
        }
    }
    check(schema.node(), &Value::Object(lists), "query parameters")
}

/// Checks a userid taken from a URL path on the routes where the reference checks it (the GET
/// routes `/guests/{userid}`, `.../info`, `.../power_state`, `.../power_state_real`,
/// `.../user_direct`, `.../adapters` and `/volumes/conn/{userid}`); Err is the full errmsg.
pub fn path_userid(userid: &str) -> Result<(), String> {
    path_argument(&schemas::USERID_LIST_QUERY, "userid", userid)
}

/// Checks the FCP device number of `GET /volumes/fcp/{fcp_id}` as the reference does (four hex
/// digits); Err is the full errmsg.
pub fn path_fcp_id(fcp_id: &str) -> Result<(), String> {
    path_argument(&schemas::GET_FCP_USAGE, "fcp_id", fcp_id)
}

/// Renders a JSON value the way Python's `str()` renders the decoded object (dicts with
/// single-quoted keys, True/False/None, lists, ints, floats like Python).
pub fn py_str(v: &Value) -> String {
    pyrepr::str_of(v)
}

/// Routes with path arguments validate those (as strings) instead of the query string.
fn path_argument(node: &Node, name: &str, value: &str) -> Result<(), String> {
    let mut args = Map::new();
    args.insert(name.to_owned(), Value::String(value.to_owned()));
    check(node, &Value::Object(args), "query parameters")
}

fn check(node: &Node, value: &Value, kind: &str) -> Result<(), String> {
    match first_error(node, value) {
        None => Ok(()),
        Some(failure) => Err(errmsg(&failure, kind)),
    }
}

fn errmsg(failure: &Failure<'_>, kind: &str) -> String {
    let detail = match failure.last {
        Some(last) => format!(
            "Invalid input for {kind} {last}. Value: {}. {}",
            py_str(failure.instance),
            failure.message
        ),
        None => failure.message.clone(),
    };
    format!("ValidationError: Validation error: {detail}")
}
