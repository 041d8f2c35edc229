//! The routes of the 1.6.3 REST layer: which methods each path takes, and how a request
//! becomes a backend call (its name, arguments, schema and status mapper).

use serde_json::{json, Map, Value as Json};

use super::reply::Mapper;
use crate::api::py_bool;
use crate::validate::{Query, Schema};

/// A path of the REST layer, with its variable parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/`.
    Version,
    /// `/guests`.
    Guests,
    /// `/guests/stats`.
    GuestStats,
    /// `/guests/interfacestats`.
    GuestInterfaceStats,
    /// `/guests/nics`.
    GuestNics,
    /// `/guests/volumes`.
    GuestVolumes,
    /// `/guests/{userid}`.
    Guest(String),
    /// `/guests/{userid}/action`.
    GuestAction(String),
    /// `/guests/{userid}/{power_state_real|info|user_direct|adapters|power_state}`.
    GuestGet(String, &'static str),
    /// `/guests/{userid}/nic`.
    GuestNic(String),
    /// `/guests/{userid}/nic/{vdev}`.
    GuestNicVdev(String, String),
    /// `/guests/{userid}/interface`.
    GuestInterface(String),
    /// `/guests/{userid}/disks`.
    GuestDisks(String),
    /// `/volumes/conn/{userid}`.
    VolumeConnector(String),
    /// `/volumes/fcptemplates`.
    FcpTemplates,
    /// `/volumes/fcptemplates/detail`.
    FcpTemplatesDetail,
    /// `/volumes/fcptemplates/{id}`.
    FcpTemplate(String),
    /// `/volumes/fcp/{fcp}`.
    Fcp(String),
    /// `/volumes/volume_refresh_bootmap`.
    RefreshBootmap,
    /// `/host`.
    Host,
    /// `/host/{guests|diskpool|diskpool_volumes|volume|ssi}`.
    HostGet(&'static str),
    /// `/images`.
    Images,
    /// `/images/{name}`.
    Image(String),
    /// `/images/{name}/root_disk_size`.
    ImageRootDiskSize(String),
    /// `/files`.
    Files,
    /// `/token`.
    Token,
    /// `/vswitches`.
    Vswitches,
    /// `/vswitches/{name}`.
    Vswitch(String),
    /// `/smapi-healthy`.
    Healthy,
}

impl Route {
    /// The route of a path, if the REST layer has one.
    pub fn parse(path: &str) -> Option<Route> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let s = |i: usize| segs[i].to_string();
        Some(match segs.as_slice() {
            [""] => Route::Version,
            ["guests"] => Route::Guests,
            ["guests", "stats"] => Route::GuestStats,
            ["guests", "interfacestats"] => Route::GuestInterfaceStats,
            ["guests", "nics"] => Route::GuestNics,
            ["guests", "volumes"] => Route::GuestVolumes,
            ["guests", u] if !u.is_empty() => Route::Guest(s(1)),
            ["guests", _, "action"] => Route::GuestAction(s(1)),
            ["guests", _, what] => {
                let what = [
                    "power_state_real",
                    "info",
                    "user_direct",
                    "adapters",
                    "power_state",
                ]
                .into_iter()
                .find(|w| w == what);
                match (what, segs[2]) {
                    (Some(w), _) => Route::GuestGet(s(1), w),
                    (None, "nic") => Route::GuestNic(s(1)),
                    (None, "interface") => Route::GuestInterface(s(1)),
                    (None, "disks") => Route::GuestDisks(s(1)),
                    _ => return None,
                }
            }
            ["guests", _, "nic", v] if !v.is_empty() => Route::GuestNicVdev(s(1), s(3)),
            ["volumes", "conn", u] if !u.is_empty() => Route::VolumeConnector(s(2)),
            ["volumes", "fcptemplates"] => Route::FcpTemplates,
            ["volumes", "fcptemplates", "detail"] => Route::FcpTemplatesDetail,
            ["volumes", "fcptemplates", t] if !t.is_empty() => Route::FcpTemplate(s(2)),
            ["volumes", "fcp", f] if !f.is_empty() => Route::Fcp(s(2)),
            ["volumes", "volume_refresh_bootmap"] => Route::RefreshBootmap,
            ["host"] => Route::Host,
            ["host", what] => Route::HostGet(
                ["guests", "diskpool", "diskpool_volumes", "volume", "ssi"]
                    .into_iter()
                    .find(|w| w == what)?,
            ),
            ["images"] => Route::Images,
            ["images", n] if !n.is_empty() => Route::Image(s(1)),
            ["images", _, "root_disk_size"] => Route::ImageRootDiskSize(s(1)),
            ["files"] => Route::Files,
            ["token"] => Route::Token,
            ["vswitches"] => Route::Vswitches,
            ["vswitches", n] if !n.is_empty() => Route::Vswitch(s(1)),
            ["smapi-healthy"] => Route::Healthy,
            _ => return None,
        })
    }

    /// The methods the route takes, in the order the `Allow` header lists them.
    pub fn methods(&self) -> &'static [&'static str] {
        use Route::*;
        match self {
            Version | GuestStats | GuestInterfaceStats | GuestNics | GuestGet(..)
            | VolumeConnector(_) | FcpTemplatesDetail | Host | HostGet(_)
            | ImageRootDiskSize(_) | Healthy => &["GET"],
            Guests | Images | FcpTemplates => &["POST", "GET"],
            GuestVolumes => &["POST", "DELETE"],
            Guest(_) => &["DELETE", "GET"],
            GuestAction(_) | GuestNic(_) | Token => &["POST"],
            GuestNicVdev(..) => &["DELETE", "PUT"],
            GuestInterface(_) => &["POST", "DELETE"],
            GuestDisks(_) => &["POST", "DELETE", "PUT"],
            FcpTemplate(_) | Image(_) => &["DELETE", "PUT"],
            Fcp(_) => &["GET", "PUT"],
            RefreshBootmap => &["PUT"],
            Files => &["PUT", "POST"],
            Vswitches => &["GET", "POST"],
            Vswitch(_) => &["GET", "DELETE", "PUT"],
        }
    }
}

/// A request turned into a backend call.
#[derive(Debug)]
pub struct Prepared {
    /// The call.
    pub api: &'static str,
    /// Positional arguments.
    pub args: Vec<Json>,
    /// Keyword arguments.
    pub kwargs: Map<String, Json>,
    /// How its result becomes a status.
    pub mapper: Mapper,
}

/// What a request needs checked before it becomes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing.
    None,
    /// The JSON body against a schema.
    Body(Schema),
    /// The query string against a schema.
    Query(Query),
    /// A userid of the path.
    PathUserid,
    /// An FCP device number of the path.
    PathFcp,
}

/// A route and method whose request has a JSON body to read.
pub fn reads_body(route: &Route, method: &str) -> bool {
    use Route::*;
    match (route, method) {
        (Token, _) | (Files, "PUT") => false,
        (_, "POST" | "PUT") => true,
        (GuestNicVdev(..) | GuestInterface(_) | GuestDisks(_) | GuestVolumes, "DELETE") => true,
        (VolumeConnector(_), "GET") => true,
        _ => false,
    }
}

fn kw(pairs: Vec<(&str, Json)>) -> Map<String, Json> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn field(body: &Json, path: &[&str]) -> Json {
    let mut v = body;
    for p in path {
        match v.get(p) {
            Some(x) => v = x,
            None => return Json::Null,
        }
    }
    v.clone()
}

fn or(v: Json, default: Json) -> Json {
    if v.is_null() {
        default
    } else {
        v
    }
}

/// The first value of a query parameter.
fn q(query: &[(String, String)], key: &str) -> Json {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| json!(v))
        .unwrap_or(Json::Null)
}

/// The checks and the call of a request; `Err` carries a message for a 400 the REST layer
/// answers itself (as `text/html`).
pub fn prepare(
    route: &Route,
    method: &str,
    body: &Json,
    query: &[(String, String)],
) -> Result<(Check, Option<Prepared>), String> {
    use Mapper::*;
    use Route::*;
    let call = |api, args: Vec<Json>, kwargs: Map<String, Json>, mapper| {
        Some(Prepared {
            api,
            args,
            kwargs,
            mapper,
        })
    };
    let b = |path: &[&str]| field(body, path);
    Ok(match (route, method) {
        (Guests, "POST") => {
            let g = b(&["guest"]);
            let mut kwargs = Map::new();
            for k in [
                "disk_list",
                "user_profile",
                "max_cpu",
                "max_mem",
                "ipl_from",
                "ipl_param",
                "ipl_loadparam",
                "dedicate_vdevs",
                "loaddev",
                "account",
                "cschedule",
                "cshare",
                "rdomain",
                "pcif",
            ] {
                if let Some(v) = g.get(k) {
                    kwargs.insert(k.into(), v.clone());
                }
            }
            (
                Check::Body(Schema::GuestCreate),
                call(
                    "guest_create",
                    vec![
                        b(&["guest", "userid"]),
                        b(&["guest", "vcpus"]),
                        b(&["guest", "memory"]),
                    ],
                    kwargs,
                    AlreadyExists,
                ),
            )
        }
        (Guests, "GET") => (
            Check::None,
            call("guest_list", vec![], Map::new(), Always200),
        ),
        (GuestStats | GuestInterfaceStats, "GET") => {
            let list: Vec<Json> = match q(query, "userid") {
                Json::String(s) => s.split(',').map(|u| json!(u.trim())).collect(),
                _ => vec![],
            };
            let api = if *route == GuestStats {
                "guest_inspect_stats"
            } else {
                "guest_inspect_vnics"
            };
            let schema = if *route == GuestStats {
                Query::GuestStats
            } else {
                Query::GuestInterfaceStats
            };
            (
                Check::Query(schema),
                call(api, vec![Json::Array(list)], Map::new(), NotFound),
            )
        }
        (GuestNics, "GET") => (
            Check::None,
            call(
                "guests_get_nic_info",
                vec![],
                kw(vec![
                    ("userid", q(query, "userid")),
                    ("nic_id", q(query, "nic_id")),
                    ("vswitch", q(query, "vswitch")),
                ]),
                NotFound,
            ),
        ),
        (GuestVolumes, "POST" | "DELETE") => {
            let attach = method == "POST";
            (
                Check::Body(if attach {
                    Schema::VolumeAttach
                } else {
                    Schema::VolumeDetach
                }),
                call(
                    if attach {
                        "volume_attach"
                    } else {
                        "volume_detach"
                    },
                    vec![b(&["info", "connection"])],
                    Map::new(),
                    Plain,
                ),
            )
        }
        (Guest(u), "GET") => (
            Check::PathUserid,
            call(
                "guest_get_definition_info",
                vec![json!(u)],
                Map::new(),
                NotFound,
            ),
        ),
        (Guest(u), "DELETE") => (
            Check::None,
            call("guest_delete", vec![json!(u)], Map::new(), Plain),
        ),
        (GuestAction(u), "POST") => action(u, body)?,
        (GuestGet(u, what), "GET") => {
            let api = match *what {
                "power_state_real" => "guest_get_power_state_real",
                "info" => "guest_get_info",
                "user_direct" => "guest_get_user_direct",
                "adapters" => "guest_get_adapters_info",
                _ => "guest_get_power_state",
            };
            (
                Check::PathUserid,
                call(api, vec![json!(u)], Map::new(), NotFound),
            )
        }
        (GuestNic(u), "POST") => (
            Check::Body(Schema::CreateNic),
            call(
                "guest_create_nic",
                vec![json!(u)],
                kw(vec![
                    ("vdev", b(&["nic", "vdev"])),
                    ("nic_id", b(&["nic", "nic_id"])),
                    ("mac_addr", b(&["nic", "mac_addr"])),
                    (
                        "active",
                        json!(py_bool(&b(&["nic", "active"])).unwrap_or(false)),
                    ),
                ]),
                Plain,
            ),
        ),
        (GuestNicVdev(u, v), "DELETE") => (
            Check::None,
            call(
                "guest_delete_nic",
                vec![json!(u), json!(v)],
                kw(vec![(
                    "active",
                    json!(py_bool(&b(&["active"])).unwrap_or(false)),
                )]),
                Plain,
            ),
        ),
        (GuestNicVdev(u, v), "PUT") => {
            let active = json!(py_bool(&b(&["info", "active"])).unwrap_or(false));
            let couple = py_bool(&b(&["info", "couple"])).unwrap_or(false);
            let prepared = if couple && b(&["info"]).get("vswitch").is_none() {
                None // the original's `info['vswitch']`: an unhandled error
            } else if couple {
                call(
                    "guest_nic_couple_to_vswitch",
                    vec![json!(u), json!(v), b(&["info", "vswitch"])],
                    kw(vec![
                        ("active", active),
                        ("vlan_id", or(b(&["info", "vlan_id"]), json!(-1))),
                    ]),
                    Plain,
                )
            } else {
                call(
                    "guest_nic_uncouple_from_vswitch",
                    vec![json!(u), json!(v)],
                    kw(vec![("active", active)]),
                    Plain,
                )
            };
            (Check::Body(Schema::NicCoupleUncouple), prepared)
        }
        (GuestInterface(u), "POST") => (
            Check::Body(Schema::CreateNetworkInterface),
            call(
                "guest_create_network_interface",
                vec![json!(u)],
                kw(vec![
                    ("os_version", b(&["interface", "os_version"])),
                    ("guest_networks", b(&["interface", "guest_networks"])),
                    (
                        "active",
                        json!(py_bool(&b(&["interface", "active"])).unwrap_or(false)),
                    ),
                ]),
                Plain,
            ),
        ),
        (GuestInterface(u), "DELETE") => (
            Check::Body(Schema::DeleteNetworkInterface),
            call(
                "guest_delete_network_interface",
                vec![
                    json!(u),
                    b(&["interface", "os_version"]),
                    b(&["interface", "vdev"]),
                ],
                kw(vec![(
                    "active",
                    json!(py_bool(&b(&["interface", "active"])).unwrap_or(false)),
                )]),
                Plain,
            ),
        ),
        (GuestDisks(u), "POST") => (
            Check::Body(Schema::CreateDisks),
            call(
                "guest_create_disks",
                vec![json!(u), b(&["disk_info", "disk_list"])],
                Map::new(),
                Plain,
            ),
        ),
        (GuestDisks(u), "DELETE") => (
            Check::Body(Schema::DeleteDisks),
            call(
                "guest_delete_disks",
                vec![json!(u), b(&["vdev_info", "vdev_list"])],
                Map::new(),
                Plain,
            ),
        ),
        (GuestDisks(u), "PUT") => (
            Check::Body(Schema::ConfigMinidisks),
            call(
                "guest_config_minidisks",
                vec![json!(u), b(&["disk_info", "disk_list"])],
                Map::new(),
                Plain,
            ),
        ),
        // The original reads `body['info']['reserve']` before it checks the path's userid:
        // without it, an unhandled error.
        (VolumeConnector(_), "GET")
            if !body
                .get("info")
                .is_some_and(|i| i.is_object() && i.get("reserve").is_some()) =>
        {
            (Check::None, None)
        }
        (VolumeConnector(u), "GET") => (
            Check::PathUserid,
            call(
                "get_volume_connector",
                vec![
                    json!(u),
                    b(&["info", "reserve"]),
                    b(&["info", "fcp_template_id"]),
                    b(&["info", "storage_provider"]),
                ],
                Map::new(),
                Plain,
            ),
        ),
        (FcpTemplates, "GET") => (
            Check::Query(Query::FcpTemplates),
            call(
                "get_fcp_templates",
                vec![
                    q(query, "template_id_list"),
                    q(query, "assigner_id"),
                    q(query, "storage_providers"),
                    q(query, "host_default"),
                ],
                Map::new(),
                NotFound,
            ),
        ),
        (FcpTemplates, "POST") => {
            let host_default = py_bool(&b(&["host_default"])).unwrap_or(false);
            (
                Check::Body(Schema::CreateFcpTemplate),
                call(
                    "create_fcp_template",
                    vec![b(&["name"])],
                    kw(vec![
                        ("description", or(b(&["description"]), json!(""))),
                        ("fcp_devices", or(b(&["fcp_devices"]), json!(""))),
                        ("host_default", json!(host_default)),
                        ("default_sp_list", or(b(&["storage_providers"]), json!([]))),
                        ("min_fcp_paths_count", b(&["min_fcp_paths_count"])),
                    ]),
                    Plain,
                ),
            )
        }
        (FcpTemplatesDetail, "GET") => {
            let flag = |k: &str, d: bool| {
                json!(match q(query, k) {
                    Json::String(s) => py_bool(&json!(s)).unwrap_or(d),
                    _ => d,
                })
            };
            (
                Check::Query(Query::FcpTemplatesDetail),
                call(
                    "get_fcp_templates_details",
                    vec![q(query, "template_id_list")],
                    kw(vec![
                        ("raw", flag("raw", false)),
                        ("statistics", flag("statistics", true)),
                        ("sync_with_zvm", flag("sync_with_zvm", false)),
                    ]),
                    NotFound,
                ),
            )
        }
        (FcpTemplate(t), "DELETE") => (
            Check::None,
            call("delete_fcp_template", vec![json!(t)], Map::new(), NotFound),
        ),
        (FcpTemplate(t), "PUT") => {
            let host_default = match b(&["host_default"]) {
                Json::Null => Json::Null,
                v => json!(py_bool(&v).unwrap_or(false)),
            };
            (
                Check::Body(Schema::EditFcpTemplate),
                call(
                    "edit_fcp_template",
                    vec![json!(t)],
                    kw(vec![
                        ("name", b(&["name"])),
                        ("description", b(&["description"])),
                        ("fcp_devices", b(&["fcp_devices"])),
                        ("host_default", host_default),
                        ("default_sp_list", b(&["storage_providers"])),
                        ("min_fcp_paths_count", b(&["min_fcp_paths_count"])),
                    ]),
                    Plain,
                ),
            )
        }
        (Fcp(f), "GET") => (
            Check::PathFcp,
            call("get_fcp_usage", vec![json!(f)], Map::new(), NotFound),
        ),
        (Fcp(f), "PUT") => (
            Check::Body(Schema::SetFcpUsage),
            call(
                "set_fcp_usage",
                vec![
                    json!(f),
                    b(&["info", "userid"]),
                    b(&["info", "reserved"]),
                    b(&["info", "connections"]),
                    match b(&["info", "fcp_template_id"]) {
                        Json::Null => json!(""),
                        Json::String(s) if s.is_empty() => json!(""),
                        v => v,
                    },
                ],
                Map::new(),
                Always200,
            ),
        ),
        (RefreshBootmap, "PUT") => (
            Check::None,
            call(
                "volume_refresh_bootmap",
                [
                    "fcpchannel",
                    "wwpn",
                    "lun",
                    "wwid",
                    "transportfiles",
                    "guest_networks",
                    "fcp_template_id",
                ]
                .iter()
                .map(|k| b(&["info", k]))
                .collect(),
                Map::new(),
                Plain,
            ),
        ),
        (Host, "GET") => (
            Check::None,
            call("host_get_info", vec![], Map::new(), Plain),
        ),
        (HostGet(what), "GET") => match *what {
            "guests" => (
                Check::None,
                call("host_get_guest_list", vec![], Map::new(), Plain),
            ),
            "diskpool" => (
                Check::Query(Query::HostDiskpool),
                call(
                    "host_diskpool_get_info",
                    vec![],
                    kw(vec![("disk_pool", q(query, "poolname"))]),
                    NotFound,
                ),
            ),
            "diskpool_volumes" => (
                Check::Query(Query::HostDiskpoolVolumes),
                call(
                    "host_get_diskpool_volumes",
                    vec![],
                    kw(vec![("disk_pool", q(query, "poolname"))]),
                    Plain,
                ),
            ),
            "volume" => (
                Check::Query(Query::HostVolume),
                call(
                    "host_get_volume_info",
                    vec![],
                    kw(vec![("volume", q(query, "volumename"))]),
                    Plain,
                ),
            ),
            _ => (
                Check::None,
                call("host_get_ssi_info", vec![], Map::new(), Plain),
            ),
        },
        (Images, "POST") => (
            Check::Body(Schema::ImageCreate),
            call(
                "image_import",
                vec![
                    b(&["image", "image_name"]),
                    b(&["image", "url"]),
                    b(&["image", "image_meta"]),
                    b(&["image", "remote_host"]),
                ],
                Map::new(),
                AlreadyExists,
            ),
        ),
        (Images, "GET") => (
            Check::Query(Query::ImageQuery),
            call(
                "image_query",
                vec![q(query, "imagename")],
                Map::new(),
                NotFound,
            ),
        ),
        (Image(n), "DELETE") => (
            Check::None,
            call("image_delete", vec![json!(n)], Map::new(), Plain),
        ),
        (Image(n), "PUT") => (
            Check::Body(Schema::ImageExport),
            call(
                "image_export",
                vec![
                    json!(n),
                    b(&["location", "dest_url"]),
                    b(&["location", "remote_host"]),
                ],
                Map::new(),
                NotFound,
            ),
        ),
        (ImageRootDiskSize(n), "GET") => (
            Check::None,
            call(
                "image_get_root_disk_size",
                vec![json!(n)],
                Map::new(),
                Plain,
            ),
        ),
        (Vswitches, "GET") => (
            Check::None,
            call("vswitch_get_list", vec![], Map::new(), Plain),
        ),
        (Vswitches, "POST") => {
            let v = |k: &str, d: Json| or(b(&["vswitch", k]), d);
            (
                Check::Body(Schema::VswitchCreate),
                call(
                    "vswitch_create",
                    vec![b(&["vswitch", "name"])],
                    kw(vec![
                        ("rdev", b(&["vswitch", "rdev"])),
                        ("controller", v("controller", json!("*"))),
                        ("connection", v("connection", json!("CONNECT"))),
                        ("network_type", v("network_type", json!("ETHERNET"))),
                        ("router", v("router", json!("NONROUTER"))),
                        ("vid", v("vid", json!("UNAWARE"))),
                        ("port_type", v("port_type", json!("ACCESS"))),
                        ("gvrp", v("gvrp", json!("GVRP"))),
                        ("queue_mem", v("queue_mem", json!(8))),
                        ("native_vid", v("native_vid", json!(1))),
                        ("persist", v("persist", json!(true))),
                    ]),
                    AlreadyExists,
                ),
            )
        }
        (Vswitch(n), "GET") => (
            Check::None,
            call("vswitch_query", vec![json!(n)], Map::new(), NotFound),
        ),
        (Vswitch(n), "DELETE") => (
            Check::None,
            call("vswitch_delete", vec![json!(n)], Map::new(), Plain),
        ),
        (Vswitch(n), "PUT") => {
            let vsw = b(&["vswitch"]);
            let prepared = if let Some(u) = vsw.get("grant_userid") {
                call(
                    "vswitch_grant_user",
                    vec![json!(n), u.clone()],
                    Map::new(),
                    NotFound,
                )
            } else if let Some(u) = vsw.get("revoke_userid") {
                call(
                    "vswitch_revoke_user",
                    vec![json!(n), u.clone()],
                    Map::new(),
                    NotFound,
                )
            } else if let Some(v) = vsw.get("user_vlan_id") {
                call(
                    "vswitch_set_vlan_id_for_user",
                    vec![json!(n), field(v, &["userid"]), field(v, &["vlanid"])],
                    Map::new(),
                    NotFound,
                )
            } else {
                None
            };
            (Check::Body(Schema::VswitchUpdate), prepared)
        }
        _ => (Check::None, None),
    })
}

/// `POST /guests/{userid}/action`.
fn action(u: &str, body: &Json) -> Result<(Check, Option<Prepared>), String> {
    use Mapper::Action;
    // As the original: `if len(body) == 0 or 'action' not in body` → 400, then
    // `getattr(action, body['action'])`; what Python cannot do there is an unhandled error.
    const MISSING: &str = "action not exist or is empty";
    let unhandled = Ok((Check::None, None));
    let name = match body {
        Json::Object(m) => match m.get("action") {
            None => return Err(MISSING.into()),
            Some(Json::String(a)) => a.as_str(),
            Some(_) => return unhandled,
        },
        Json::Array(items) if items.contains(&json!("action")) => return unhandled,
        Json::String(text) if text.contains("action") => return unhandled,
        Json::Array(_) | Json::String(_) => return Err(MISSING.into()),
        _ => return unhandled,
    };
    let schema = Schema::for_action(name).ok_or_else(|| format!("action {name} is invalid"))?;
    let b = |k: &str| field(body, &[k]);
    let user = json!(u);
    let (api, args, kwargs): (&'static str, Vec<Json>, Map<String, Json>) = match name {
        "start" => (
            "guest_start",
            vec![user, or(b("timeout"), json!(0))],
            Map::new(),
        ),
        "stop" | "softstop" => (
            if name == "stop" {
                "guest_stop"
            } else {
                "guest_softstop"
            },
            vec![user],
            kw(vec![
                ("timeout", b("timeout")),
                ("poll_interval", b("poll_interval")),
            ]),
        ),
        "pause" => ("guest_pause", vec![user], Map::new()),
        "unpause" => ("guest_unpause", vec![user], Map::new()),
        "reboot" => ("guest_reboot", vec![user], Map::new()),
        "reset" => ("guest_reset", vec![user], Map::new()),
        "get_console_output" => ("guest_get_console_output", vec![user], Map::new()),
        "register_vm" => (
            "guest_register",
            vec![user, b("meta"), b("net_set"), b("port_macs")],
            Map::new(),
        ),
        "deregister_vm" => ("guest_deregister", vec![user], Map::new()),
        "live_migrate_vm" => (
            "guest_live_migrate",
            vec![
                user,
                or(b("dest_zcc_userid"), json!("")),
                b("destination"),
                b("parms"),
                or(b("operation"), json!({})),
            ],
            Map::new(),
        ),
        "live_resize_cpus" => (
            "guest_live_resize_cpus",
            vec![user, b("cpu_cnt")],
            Map::new(),
        ),
        "resize_cpus" => ("guest_resize_cpus", vec![user, b("cpu_cnt")], Map::new()),
        "live_resize_mem" => ("guest_live_resize_mem", vec![user, b("size")], Map::new()),
        "resize_mem" => ("guest_resize_mem", vec![user, b("size")], Map::new()),
        "grow_root_volume" => (
            "guest_grow_root_volume",
            vec![user, b("os_version")],
            Map::new(),
        ),
        "capture" => (
            "guest_capture",
            vec![user, b("image")],
            kw(vec![
                ("capture_type", or(b("capture_type"), json!("rootonly"))),
                ("compress_level", or(b("compress_level"), json!(6))),
            ]),
        ),
        "deploy" => (
            "guest_deploy",
            vec![user, b("image")],
            kw(vec![
                ("transportfiles", b("transportfiles")),
                ("remotehost", b("remotehost")),
                ("vdev", b("vdev")),
                ("hostname", b("hostname")),
                ("skipdiskcopy", or(b("skipdiskcopy"), json!(false))),
            ]),
        ),
        other => return Err(format!("action {other} is invalid")),
    };
    Ok((
        Check::Body(schema),
        Some(Prepared {
            api,
            args,
            kwargs,
            mapper: Action,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_to_routes() {
        assert_eq!(Route::parse("/"), Some(Route::Version));
        assert_eq!(Route::parse("/guests/stats"), Some(Route::GuestStats));
        assert_eq!(Route::parse("/guests/U1"), Some(Route::Guest("U1".into())));
        assert_eq!(
            Route::parse("/guests/U1/nic/1000"),
            Some(Route::GuestNicVdev("U1".into(), "1000".into()))
        );
        assert_eq!(Route::parse("/guests/U1/bogus"), None);
        assert_eq!(Route::parse("/notfound"), None);
        assert_eq!(Route::Guest("x".into()).methods(), &["DELETE", "GET"]);
    }
}
