//! What the connector reports of NICs: the switch table rows (`guests_get_nic_info`) and the
//! counters of coupled NICs (`guest_inspect_vnics`).

use drover_core::Obj;
use serde_json::{json, Map, Value as Json};

use crate::api::args::Args;
use crate::api::Backend;
use crate::error::ZvmResult;

/// A cumulative counter the monitor keeps in `VIF_metrics.other_config`.
fn counter(metrics: Option<&Obj>, key: &str) -> i64 {
    metrics
        .and_then(|m| m.other(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Backend {
    /// `guests_get_nic_info`: the original's switch table rows, filtered (ignoring case).
    pub(super) fn nic_table(
        &self,
        userid: Option<&str>,
        nic_id: Option<&str>,
        vswitch: Option<&str>,
    ) -> Json {
        let matches = |want: Option<&str>, have: Option<&str>| {
            want.is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        let mut rows = Vec::new();
        for (uid, vm) in self.guests() {
            if !matches(userid, Some(&uid)) {
                continue;
            }
            for nic in self.nic_list(&vm) {
                if !matches(nic_id, nic.nic_id.as_deref())
                    || !matches(vswitch, nic.info.vswitch.as_deref())
                {
                    continue;
                }
                rows.push(json!({
                    "userid": uid,
                    "interface": nic.info.vdev,
                    "switch": nic.info.vswitch,
                    "port": nic.nic_id,
                    "comments": null,
                }));
            }
        }
        Json::Array(rows)
    }

    /// `guest_inspect_vnics`: the coupled NICs of the running guests among those asked for
    /// (a guest without one is left out, as z/VM's vswitch statistics do not name it).
    /// `nic_rx`/`nic_tx` and the error counts are the guest NIC's cumulative byte and error
    /// counters as the monitor last read them (`VIF_metrics.other_config`); the host does not
    /// count frames or discards per NIC, so those are 0.
    pub(super) fn inspect_vnics(&self, a: &Args) -> ZvmResult {
        let mut out = Map::new();
        for vm in self.running_guests(a.userid_list("userid_list")?) {
            let mut entries = Vec::new();
            for nic in self.nic_list(&vm) {
                let Some(vswitch) = &nic.info.vswitch else {
                    continue;
                };
                let metrics = self.engine.read(|db| {
                    db.get("VIF", &nic.info.vif)
                        .and_then(|v| db.get("VIF_metrics", v.str("metrics")))
                        .cloned()
                });
                entries.push(json!({
                    "vswitch_name": vswitch,
                    "nic_vdev": nic.info.vdev.to_uppercase(),
                    "nic_fr_rx": 0,
                    "nic_fr_tx": 0,
                    "nic_fr_rx_dsc": 0,
                    "nic_fr_tx_dsc": 0,
                    "nic_fr_rx_err": counter(metrics.as_deref(), "rx_errors"),
                    "nic_fr_tx_err": counter(metrics.as_deref(), "tx_errors"),
                    "nic_rx": counter(metrics.as_deref(), "rx_bytes"),
                    "nic_tx": counter(metrics.as_deref(), "tx_bytes"),
                }));
            }
            if !entries.is_empty() {
                out.insert(vm.str("name_label").to_uppercase(), Json::Array(entries));
            }
        }
        Ok(Json::Object(out))
    }
}
