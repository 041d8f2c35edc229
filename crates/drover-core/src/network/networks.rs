//! `network` objects: creation with their bridge, destruction, and changes of their MTU and
//! `other_config` (address range, overlay).

use drover_model::Value;

use super::dhcp;
use super::spec::check_network;
use crate::db::{Ref, View};
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::ops::FieldChange;
use crate::txn::new_ref;

/// The first of `prefix0`, `prefix1`, ... not in `taken`.
pub(crate) fn free_name(prefix: &str, taken: &[String]) -> String {
    let mut n = 0u64;
    loop {
        let name = format!("{prefix}{n}");
        if !taken.contains(&name) {
            return name;
        }
        n += 1;
    }
}

impl Engine {
    /// `network.create`: the record and its bridge on the host, or neither. The bridge is
    /// `xapi<N>` unless named; a name another network has, or a device of that name that is not
    /// Drover's, is `BRIDGE_NAME_EXISTS`.
    pub(crate) async fn network_create(&self, values: Vec<(String, Value)>) -> Result<Ref> {
        let given = values
            .iter()
            .find(|(n, _)| n == "bridge")
            .and_then(|(_, v)| v.as_str())
            .filter(|b| !b.is_empty())
            .map(String::from);
        if let Some(b) = &given {
            drover_host::check_device_name(b).map_err(|_| CoreError::InvalidValue {
                field: "bridge".into(),
                value: b.clone(),
            })?;
        }
        let r = new_ref();
        self.net_change(std::slice::from_ref(&r), |t| {
            let taken: Vec<String> = t
                .db()
                .all("network")
                .map(|n| n.str("bridge").to_string())
                .collect();
            let bridge = match &given {
                Some(b) if taken.contains(b) => return Err(CoreError::BridgeNameExists(b.clone())),
                Some(b) => b.clone(),
                None => free_name("xapi", &taken),
            };
            let mut fields: Vec<(&str, Value)> = values
                .iter()
                .filter(|(n, _)| n != "bridge")
                .map(|(n, v)| (n.as_str(), v.clone()))
                .collect();
            fields.push(("bridge", Value::str(bridge)));
            t.create_with_ref("network", r.clone(), fields)?;
            check_network(t.must("network", &r)?)?;
            Ok(r.clone())
        })
        .await
    }

    /// `network.destroy`: refused while VIFs on it are plugged (`NETWORK_CONTAINS_VIF`) or PIFs
    /// connect it (`NETWORK_CONTAINS_PIF`); the bridge goes from the host, then the record.
    /// Unplugged VIFs stay, on no network.
    pub(crate) async fn network_destroy(&self, r: &str) -> Result<()> {
        self.get("network", r)?;
        self.net_change(&[r.into()], |t| {
            let net = t.must("network", r)?.clone();
            let attached: Vec<String> = t
                .members(&net, "VIFs", "VIF")
                .iter()
                .filter(|v| v.bool("currently_attached"))
                .map(|v| v.r.to_string())
                .collect();
            if !attached.is_empty() {
                return Err(CoreError::NetworkContainsVif(attached));
            }
            let pifs: Vec<String> = net.refs("PIFs").iter().map(|p| p.to_string()).collect();
            if !pifs.is_empty() {
                return Err(CoreError::NetworkContainsPif(pifs));
            }
            for vif in net.refs("VIFs") {
                if t.get("VIF", &vif).is_some() {
                    dhcp::set_reserved(t, &vif, None)?;
                }
            }
            t.destroy("network", r)
        })
        .await
    }

    /// A change of a network's `MTU` or `other_config` through the generic setters: checked,
    /// made on the host, then recorded; VIFs get addresses of a new range.
    pub(crate) async fn network_field_change(
        &self,
        r: &str,
        field: &str,
        change: &FieldChange,
    ) -> Result<()> {
        self.get("network", r)?;
        self.net_change(&[r.into()], |t| {
            change.apply(t, "network", r, field)?;
            check_network(t.must("network", r)?)?;
            dhcp::reconcile(t, r)
        })
        .await
    }
}
