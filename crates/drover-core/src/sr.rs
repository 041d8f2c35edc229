//! Storage repositories: creating, introducing, forgetting and destroying SRs, plugging their
//! PBDs, and scanning them for images.

use std::sync::Arc;

use drover_host::HostDriver;
use drover_model::{Value, NULL_REF};

use crate::db::{Obj, Ref};
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::{Ctx, Reply};
use crate::storage::{image_location, unlink_vdi};
use crate::txn::{new_ref, new_uuid, Txn};

/// What a new SR is.
#[derive(Debug, Clone, Default)]
pub struct SrSpec {
    /// Its uuid; a fresh one when empty.
    pub uuid: String,
    /// Name.
    pub name_label: String,
    /// Description.
    pub name_description: String,
    /// Driver type (`local`, `shared`, `iso`).
    pub kind: String,
    /// Content type (`user`, `iso`, ...); empty for the type's own.
    pub content_type: String,
    /// Whether every host may attach it.
    pub shared: bool,
    /// Driver parameters.
    pub sm_config: Vec<(String, String)>,
}

/// An SR operation.
#[derive(Debug, Clone)]
pub enum SrAction {
    /// Reconciles the SR's VDIs with its images and refreshes its sizes.
    Scan,
    /// SR types the host supports.
    GetSupportedTypes,
    /// Creates an SR on a host's storage and plugs it.
    Create {
        /// The host.
        host: String,
        /// Where the storage is (`path` or `location`).
        device_config: Vec<(String, String)>,
        /// The SR.
        spec: SrSpec,
    },
    /// Records an SR whose storage exists, without plugging it.
    Introduce {
        /// The SR.
        spec: SrSpec,
    },
    /// Unplugs the SR and drops its records, leaving its storage alone.
    Forget,
}

impl SrAction {
    /// The datamodel message name.
    pub fn message(&self) -> &'static str {
        match self {
            SrAction::Scan => "scan",
            SrAction::GetSupportedTypes => "get_supported_types",
            SrAction::Create { .. } => "create",
            SrAction::Introduce { .. } => "introduce",
            SrAction::Forget => "forget",
        }
    }
}

/// A PBD operation.
#[derive(Debug, Clone)]
pub enum PbdAction {
    /// Attaches the SR on the PBD's host.
    Plug,
    /// Detaches it.
    Unplug,
}

impl PbdAction {
    /// The datamodel message name.
    pub fn message(&self) -> &'static str {
        match self {
            PbdAction::Plug => "plug",
            PbdAction::Unplug => "unplug",
        }
    }
}

/// Where a PBD's storage is: `device_config:path`, or `location`.
pub(crate) fn pbd_location(pbd: &Obj) -> String {
    let config = pbd.get("device_config");
    ["path", "location"]
        .iter()
        .find_map(|k| config.map_get(k).and_then(|v| v.as_str()))
        .unwrap_or("")
        .to_string()
}

/// The last component of an image's location.
fn file_name(location: &str) -> &str {
    location.rsplit('/').next().unwrap_or(location)
}

/// The SR record of a spec, under `r`.
fn create_sr_record(t: &mut Txn, r: Ref, spec: &SrSpec) -> Result<Ref> {
    let content = match (spec.content_type.as_str(), spec.kind.as_str()) {
        ("", "iso") => "iso",
        ("", _) => "user",
        (given, _) => given,
    };
    let sr = t.create_with_ref(
        "SR",
        r,
        vec![
            ("name_label", Value::str(&spec.name_label)),
            ("name_description", Value::str(&spec.name_description)),
            ("type", Value::str(&spec.kind)),
            ("content_type", Value::str(content)),
            ("shared", Value::Bool(spec.shared || spec.kind == "shared")),
            (
                "sm_config",
                Value::string_map(spec.sm_config.iter().cloned()),
            ),
        ],
    )?;
    if !spec.uuid.is_empty() {
        t.set("SR", &sr, "uuid", Value::str(&spec.uuid))?;
    }
    Ok(sr)
}

impl Engine {
    pub(crate) async fn sr_action(
        &self,
        _ctx: &Ctx<'_>,
        sr: &str,
        action: SrAction,
    ) -> Result<Reply> {
        match action {
            SrAction::Scan => {
                self.get("SR", sr)?;
                self.scan_sr(sr).await?;
                Ok(Reply::Void)
            }
            SrAction::GetSupportedTypes => {
                Ok(Reply::Value(Value::Set(self.read(|db| {
                    db.all("SM").map(|sm| Value::str(sm.str("type"))).collect()
                }))))
            }
            SrAction::Create {
                host,
                device_config,
                spec,
            } => self
                .sr_create(&host, device_config, spec)
                .await
                .map(Reply::Ref),
            SrAction::Introduce { spec } => self.sr_introduce(spec).map(Reply::Ref),
            SrAction::Forget => self.sr_forget(sr, false).await.map(|_| Reply::Void),
        }
    }

    pub(crate) async fn pbd_action(&self, pbd: &str, action: PbdAction) -> Result<Reply> {
        let obj = self.get("PBD", pbd)?;
        self.check_host(obj.str("host"))?;
        let sr = obj.str("SR").to_string();
        match action {
            PbdAction::Plug => {
                if !obj.bool("currently_attached") {
                    self.driver(obj.str("host"))?
                        .sr_attach(&sr, &pbd_location(&obj))
                        .await
                        .map_err(|e| CoreError::SrBackendFailure {
                            sr: sr.clone(),
                            reason: e.to_string(),
                        })?;
                    self.write(|t| t.set("PBD", pbd, "currently_attached", Value::Bool(true)))?;
                }
                self.refresh_sr(&sr).await;
            }
            PbdAction::Unplug => {
                if obj.bool("currently_attached") {
                    self.refuse_if_in_use(&sr, "unplug")?;
                    self.driver(obj.str("host"))?
                        .sr_detach(&sr)
                        .await
                        .map_err(|e| self.host_error(e, "unplug"))?;
                    self.write(|t| t.set("PBD", pbd, "currently_attached", Value::Bool(false)))?;
                }
            }
        }
        Ok(Reply::Void)
    }

    fn check_sr_type(&self, kind: &str) -> Result<()> {
        if self.read(|db| db.all("SM").any(|sm| sm.str("type") == kind)) {
            Ok(())
        } else {
            Err(CoreError::SrUnknownDriver(kind.into()))
        }
    }

    /// Attaches a new SR on the host, then records it with its PBD; nothing is left if either
    /// fails. Its existing images become VDIs.
    async fn sr_create(
        &self,
        host: &str,
        device_config: Vec<(String, String)>,
        spec: SrSpec,
    ) -> Result<Ref> {
        self.check_host(host)?;
        self.check_sr_type(&spec.kind)?;
        let location = ["path", "location"]
            .iter()
            .find_map(|k| device_config.iter().find(|(n, _)| n == k))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CoreError::InvalidValue {
                field: "device_config:path".into(),
                value: String::new(),
            })?;
        let r = new_ref();
        // A shared SR is attached on every connected host, each with its PBD.
        let shared = spec.shared || spec.kind == "shared";
        let mut hosts: Vec<(Ref, Arc<dyn HostDriver>)> =
            vec![(Ref::from(host), self.driver(host)?)];
        if shared {
            hosts.extend(self.connected().into_iter().filter(|(h, _)| **h != *host));
        }
        let mut attached: Vec<(Ref, Arc<dyn HostDriver>)> = Vec::new();
        let mut size = 0;
        for (h, driver) in hosts {
            match driver.sr_attach(&r, &location).await {
                Ok(info) => {
                    size = size.max(info.physical_size);
                    attached.push((h, driver));
                }
                Err(e) => {
                    for (_, d) in &attached {
                        let _ = d.sr_detach(&r).await;
                    }
                    return Err(CoreError::SrBackendFailure {
                        sr: r.to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        let made = self.write(|t| {
            let sr = create_sr_record(t, r.clone(), &spec)?;
            t.set("SR", &sr, "physical_size", Value::Int(size as i64))?;
            for (h, _) in &attached {
                t.create(
                    "PBD",
                    vec![
                        ("host", Value::str(&**h)),
                        ("SR", Value::str(&*sr)),
                        (
                            "device_config",
                            Value::string_map(device_config.iter().cloned()),
                        ),
                        ("currently_attached", Value::Bool(true)),
                    ],
                )?;
            }
            Ok(sr)
        });
        if let Err(e) = made {
            for (_, d) in &attached {
                if let Err(d) = d.sr_detach(&r).await {
                    tracing::warn!(sr = %r, error = %d, "could not detach a storage repository");
                }
            }
            return Err(e);
        }
        if let Err(e) = self.scan_sr(&r).await {
            tracing::warn!(sr = %r, error = %e, "could not scan a new storage repository");
        }
        Ok(r)
    }

    fn sr_introduce(&self, spec: SrSpec) -> Result<Ref> {
        self.check_sr_type(&spec.kind)?;
        self.write(|t| {
            let taken = !spec.uuid.is_empty()
                && t.db()
                    .table("SR")
                    .is_some_and(|tb| tb.by_uuid(&spec.uuid).is_some());
            if taken {
                return Err(CoreError::SrUuidExists(spec.uuid.clone()));
            }
            create_sr_record(t, new_ref(), &spec)
        })
    }

    fn refuse_if_in_use(&self, sr: &str, op: &str) -> Result<()> {
        let vdis = self.get("SR", sr)?.refs("VDIs");
        match vdis.iter().find(|v| self.vdi_in_use(v)) {
            Some(vdi) => Err(CoreError::VdiInUse {
                vdi: vdi.to_string(),
                op: op.into(),
            }),
            None => Ok(()),
        }
    }

    /// Detaches an SR and drops its records (its VDIs, PBDs and the pool's references to it);
    /// with `destroy`, refuses an SR that still holds VDIs, except an ISO library's.
    pub(crate) async fn sr_forget(&self, sr: &str, destroy: bool) -> Result<()> {
        let obj = self.get("SR", sr)?;
        let op = if destroy { "destroy" } else { "forget" };
        if destroy && obj.str("content_type") != "iso" && !obj.refs("VDIs").is_empty() {
            return Err(CoreError::SrNotEmpty);
        }
        self.refuse_if_in_use(sr, op)?;
        for host in self.sr_hosts(sr) {
            self.driver(&host)?
                .sr_detach(sr)
                .await
                .map_err(|e| self.host_error(e, op))?;
        }
        self.write(|t| {
            let obj = t.must("SR", sr)?.clone();
            for vdi in obj.refs("VDIs") {
                if t.get("VDI", &vdi).is_some() {
                    unlink_vdi(t, &vdi)?;
                }
            }
            for pbd in obj.refs("PBDs") {
                if t.get("PBD", &pbd).is_some() {
                    t.destroy("PBD", &pbd)?;
                }
            }
            let pools: Vec<Ref> = t.db().all("pool").map(|p| p.r.clone()).collect();
            for pool in pools {
                for field in ["default_SR", "suspend_image_SR", "crash_dump_SR"] {
                    if t.must("pool", &pool)?.str(field) == sr {
                        t.set("pool", &pool, field, Value::str(NULL_REF))?;
                    }
                }
            }
            t.destroy("SR", sr)
        })
    }

    /// Reconciles an SR's VDIs with the images the host finds: new images become VDIs, VDIs
    /// whose image is gone go (unless a VM that is not halted uses them), and figures refresh.
    pub(crate) async fn scan_sr(&self, sr: &str) -> Result<()> {
        self.require_attached(sr)?;
        let images = self
            .sr_driver(sr)?
            .sr_scan(sr)
            .await
            .map_err(|e| self.host_error(e, "scan"))?;
        let gone: Vec<Ref> = self.read(|db| {
            db.get("SR", sr)
                .map(|o| o.refs("VDIs"))
                .unwrap_or_default()
                .into_iter()
                .filter(|v| {
                    db.get("VDI", v)
                        .is_some_and(|v| !images.iter().any(|i| i.location == image_location(v)))
                })
                .collect()
        });
        let (kept, dropped): (Vec<Ref>, Vec<Ref>) =
            gone.into_iter().partition(|v| self.vdi_in_use(v));
        for vdi in &kept {
            tracing::warn!(vdi = %vdi, sr, "the image of a VDI in use is gone");
        }
        self.write(|t| {
            let obj = t.must("SR", sr)?.clone();
            let iso = obj.str("content_type") == "iso";
            for vdi in &dropped {
                if t.get("VDI", vdi).is_some() {
                    unlink_vdi(t, vdi)?;
                }
            }
            for vdi in &kept {
                if t.get("VDI", vdi).is_some() {
                    t.set("VDI", vdi, "missing", Value::Bool(true))?;
                }
            }
            let known: Vec<(Ref, String)> = obj
                .refs("VDIs")
                .iter()
                .filter_map(|v| t.get("VDI", v))
                .map(|v| (v.r.clone(), image_location(v)))
                .collect();
            for image in &images {
                let figures = [
                    ("virtual_size", Value::Int(image.virtual_size as i64)),
                    (
                        "physical_utilisation",
                        Value::Int(image.physical_utilisation as i64),
                    ),
                ];
                match known.iter().find(|(_, l)| *l == image.location) {
                    Some((vdi, _)) => {
                        for (f, v) in figures.into_iter().chain([("missing", Value::Bool(false))]) {
                            if *t.must("VDI", vdi)?.get(f) != v {
                                t.set("VDI", vdi, f, v)?;
                            }
                        }
                    }
                    None => {
                        let mut fields = vec![
                            ("uuid", Value::str(new_uuid())),
                            ("name_label", Value::str(file_name(&image.location))),
                            ("SR", Value::str(sr)),
                            ("location", Value::str(&image.location)),
                            ("type", Value::str("user")),
                            ("read_only", Value::Bool(iso)),
                            ("managed", Value::Bool(true)),
                        ];
                        fields.extend(figures);
                        t.create("VDI", fields)?;
                    }
                }
            }
            Ok(())
        })?;
        self.refresh_sr(sr).await;
        Ok(())
    }
}
