//! VLANs: a tagged PIF carries a network's traffic with a tag, through an 802.1Q
//! sub-interface or VXLAN (see `spec.rs`), from the network's untagged PIF.

use drover_model::{Value, NULL_REF};

use super::spec::pif_on;
use crate::db::{Ref, View};
use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::txn::new_ref;

impl Engine {
    /// `VLAN.create`: a tag of 1-4094 (`VLAN_TAG_INVALID`) on a PIF that is no VLAN
    /// (`PIF_IS_VLAN`) or bond member and has no VLAN of that tag yet (`PIF_VLAN_EXISTS`), for
    /// a network not yet connected on the host (`NETWORK_ALREADY_CONNECTED`). The network's
    /// bridge takes its uplink on the host before anything is recorded. Answers the VLAN and
    /// its untagged PIF.
    pub(crate) async fn vlan_create(
        &self,
        pif: &str,
        tag: i64,
        network: &str,
    ) -> Result<(Ref, Ref)> {
        if !(1..=4094).contains(&tag) {
            return Err(CoreError::VlanTagInvalid(tag.to_string()));
        }
        let tagged = self.get("PIF", pif)?;
        self.check_host(tagged.str("host"))?;
        let (vlan, untagged) = (new_ref(), new_ref());
        self.net_change(&[Ref::from(network)], |t| {
            let tagged = t.must("PIF", pif)?.clone();
            let net = t.must("network", network)?.clone();
            if tagged.str("VLAN_master_of") != NULL_REF {
                return Err(CoreError::PifIsVlan(pif.into()));
            }
            if tagged.str("bond_slave_of") != NULL_REF {
                return Err(CoreError::CannotAddVlanToBondSlave(pif.into()));
            }
            if t.members(&tagged, "VLAN_slave_of", "VLAN")
                .iter()
                .any(|v| v.int("tag") == tag)
            {
                return Err(CoreError::PifVlanExists(pif.into()));
            }
            if let Some(other) = pif_on(&*t, &net, tagged.str("host")) {
                return Err(CoreError::NetworkAlreadyConnected {
                    network: network.into(),
                    pif: other.r.to_string(),
                });
            }
            let metrics = t.create("PIF_metrics", vec![])?;
            t.create_with_ref(
                "PIF",
                untagged.clone(),
                vec![
                    ("device", tagged.get("device").clone()),
                    ("host", tagged.get("host").clone()),
                    ("network", Value::str(network)),
                    ("MAC", tagged.get("MAC").clone()),
                    ("MTU", net.get("MTU").clone()),
                    ("VLAN", Value::Int(tag)),
                    ("physical", Value::Bool(false)),
                    ("currently_attached", Value::Bool(true)),
                    ("ip_configuration_mode", Value::str("None")),
                    ("metrics", Value::str(&*metrics)),
                    ("managed", Value::Bool(true)),
                ],
            )?;
            t.create_with_ref(
                "VLAN",
                vlan.clone(),
                vec![
                    ("tagged_PIF", Value::str(pif)),
                    ("untagged_PIF", Value::str(&*untagged)),
                    ("tag", Value::Int(tag)),
                ],
            )?;
            t.set("PIF", &untagged, "VLAN_master_of", Value::str(&*vlan))?;
            Ok((vlan.clone(), untagged.clone()))
        })
        .await
    }

    /// `VLAN.destroy`: refused while VIFs on its network are plugged (`VLAN_IN_USE`); the
    /// network's bridge loses its uplink, then the VLAN and its untagged PIF go.
    pub(crate) async fn vlan_destroy(&self, vlan: &str) -> Result<()> {
        let v = self.get("VLAN", vlan)?;
        let network = self
            .get("PIF", v.str("untagged_PIF"))
            .map(|p| Ref::from(p.str("network")))
            .unwrap_or_else(|_| Ref::from(NULL_REF));
        self.net_change(std::slice::from_ref(&network), |t| {
            let v = t.must("VLAN", vlan)?.clone();
            let untagged = v.str("untagged_PIF");
            if let Some(net) = t.get("network", &network).cloned() {
                if t.members(&net, "VIFs", "VIF")
                    .iter()
                    .any(|vif| vif.bool("currently_attached"))
                {
                    let device = t
                        .get("PIF", v.str("tagged_PIF"))
                        .map(|p| p.str("device").to_string())
                        .unwrap_or_default();
                    return Err(CoreError::VlanInUse {
                        device,
                        tag: v.int("tag").to_string(),
                    });
                }
            }
            if let Some(p) = t.get("PIF", untagged).cloned() {
                if t.get("PIF_metrics", p.str("metrics")).is_some() {
                    t.destroy("PIF_metrics", p.str("metrics"))?;
                }
                t.destroy("PIF", untagged)?;
            }
            t.destroy("VLAN", vlan)
        })
        .await
    }
}
