//! Networks that hand out addresses: the range in their `other_config` (`ip_begin`, `ip_end`,
//! `netmask`) and the address reserved for each VIF.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use drover_model::Value;

use crate::db::{Obj, View};
use crate::error::{CoreError, Result};
use crate::txn::Txn;

/// The VIF `other_config` key holding the VIF's reserved address; the engine owns it.
pub(crate) const RESERVED_IP: &str = "dhcp_reserved_ip";

/// The addresses of a network that hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    /// The host end of the bridge (`ip_begin`).
    pub host: Ipv4Addr,
    /// The netmask.
    pub netmask: Ipv4Addr,
    /// The first address leased to guests.
    pub first: Ipv4Addr,
    /// The last address leased to guests (`ip_end`).
    pub last: Ipv4Addr,
}

impl Range {
    /// The prefix length of the netmask.
    pub fn prefix(&self) -> u8 {
        u32::from(self.netmask).count_ones() as u8
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }

    fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }
}

/// The prefix length of a netmask, if it is one (contiguous ones).
pub(crate) fn prefix_of(netmask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(netmask);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then(|| bits.leading_ones() as u8)
}

/// The netmask of a prefix length.
pub(crate) fn netmask_of(prefix: u8) -> Ipv4Addr {
    match prefix {
        0 => Ipv4Addr::UNSPECIFIED,
        p => Ipv4Addr::from(u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

/// Whether an address can be a host's or a guest's own.
fn usable(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast())
}

/// The address range of a network's `other_config`, if it hands out addresses: `ip_begin`,
/// `ip_end` and `netmask` together, in one subnet, `ip_begin` below `ip_end`. Anything else is
/// `INVALID_VALUE` naming the key.
pub(crate) fn range(other_config: &Value) -> Result<Option<Range>> {
    let get = |k: &str| other_config.map_get(k).and_then(|v| v.as_str());
    let (begin, end, mask) = (get("ip_begin"), get("ip_end"), get("netmask"));
    if begin.is_none() && end.is_none() && mask.is_none() {
        return Ok(None);
    }
    let invalid = |key: &str, value: Option<&str>| CoreError::InvalidValue {
        field: key.into(),
        value: value.unwrap_or_default().into(),
    };
    let parse = |key: &str, value: Option<&str>| -> Result<Ipv4Addr> {
        value
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| invalid(key, value))
    };
    let host = parse("ip_begin", begin)?;
    let last = parse("ip_end", end)?;
    let netmask = parse("netmask", mask)?;
    let prefix = prefix_of(netmask)
        .filter(|p| (1..=30).contains(p))
        .ok_or_else(|| invalid("netmask", mask))?;
    let bits = u32::from(netmask_of(prefix));
    let subnet = u32::from(host) & bits;
    let broadcast = subnet | !bits;
    if !usable(host) || u32::from(host) == subnet || u32::from(host) == broadcast {
        return Err(invalid("ip_begin", begin));
    }
    if u32::from(last) & bits != subnet || last <= host || u32::from(last) == broadcast {
        return Err(invalid("ip_end", end));
    }
    Ok(Some(Range {
        host,
        netmask,
        first: Ipv4Addr::from(u32::from(host) + 1),
        last,
    }))
}

/// The address reserved for a VIF, if any.
pub(crate) fn reserved(vif: &Obj) -> Option<Ipv4Addr> {
    vif.get("other_config")
        .map_get(RESERVED_IP)?
        .as_str()?
        .parse()
        .ok()
}

/// Whether the VIF belongs to a snapshot (whose VIFs hold no address).
fn of_snapshot(v: &impl View, vif: &Obj) -> bool {
    v.obj("VM", vif.str("VM"))
        .is_some_and(|vm| vm.bool("is_a_snapshot"))
}

/// Gives every VIF of the network (except snapshots') an address of its range, keeping the
/// reservations still valid and taking the lowest free address for the others; removes them
/// all when the network hands out no addresses. Keeps `network.assigned_ips` in step.
pub(crate) fn reconcile(t: &mut Txn, network: &str) -> Result<()> {
    let net = t.must("network", network)?.clone();
    let range = range(net.get("other_config"))?;
    let vifs: Vec<Obj> = t
        .members(&net, "VIFs", "VIF")
        .into_iter()
        .cloned()
        .collect();
    let wants: Vec<bool> = vifs
        .iter()
        .map(|v| range.is_some() && !of_snapshot(&*t, v))
        .collect();
    let mut taken = BTreeSet::new();
    let mut kept: Vec<Option<Ipv4Addr>> = Vec::new();
    for (vif, wants) in vifs.iter().zip(&wants) {
        let keep = reserved(vif)
            .filter(|ip| *wants && range.is_some_and(|r| r.contains(*ip)))
            .filter(|ip| taken.insert(*ip));
        kept.push(keep);
    }
    let mut assigned = Vec::new();
    for ((vif, wants), keep) in vifs.iter().zip(wants).zip(kept) {
        let ip = match (keep, range.filter(|_| wants)) {
            (Some(ip), _) => Some(ip),
            (None, Some(r)) => {
                let ip = r
                    .addresses()
                    .find(|ip| !taken.contains(ip))
                    .ok_or_else(|| CoreError::NetworkAddressesExhausted(network.into()))?;
                taken.insert(ip);
                Some(ip)
            }
            (None, None) => None,
        };
        set_reserved(t, &vif.r, ip)?;
        if let Some(ip) = ip {
            assigned.push((Value::str(&*vif.r), Value::str(ip.to_string())));
        }
    }
    let assigned = Value::Map(assigned);
    if *net.get("assigned_ips") != assigned {
        t.set("network", network, "assigned_ips", assigned)?;
    }
    Ok(())
}

/// Sets or removes a VIF's reservation, touching the record only if it changes.
pub(crate) fn set_reserved(t: &mut Txn, vif: &str, ip: Option<Ipv4Addr>) -> Result<()> {
    let current = t
        .must("VIF", vif)?
        .get("other_config")
        .map_get(RESERVED_IP)
        .cloned();
    let wanted = ip.map(|ip| Value::str(ip.to_string()));
    if current == wanted {
        return Ok(());
    }
    t.update("VIF", vif, "other_config", |m| match wanted {
        Some(v) => {
            m.map_insert(Value::str(RESERVED_IP), v);
        }
        None => m.map_remove(&Value::str(RESERVED_IP)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Value {
        Value::string_map(pairs.iter().copied())
    }

    #[test]
    fn ranges_need_all_three_keys_in_one_subnet() {
        assert_eq!(range(&config(&[("k", "v")])).unwrap(), None);
        let r = range(&config(&[
            ("ip_begin", "10.1.0.1"),
            ("ip_end", "10.1.0.20"),
            ("netmask", "255.255.255.0"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(r.host, Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(r.first, Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(r.prefix(), 24);
        let bad = |pairs: &[(&str, &str)], key: &str| {
            let e = range(&config(pairs)).unwrap_err();
            assert!(
                matches!(&e, CoreError::InvalidValue { field, .. } if field == key),
                "{pairs:?}: {e:?}"
            );
        };
        bad(&[("ip_begin", "10.1.0.1")], "ip_end");
        bad(
            &[
                ("ip_begin", "10.1.0.1"),
                ("ip_end", "10.2.0.9"),
                ("netmask", "255.255.255.0"),
            ],
            "ip_end",
        );
        bad(
            &[
                ("ip_begin", "10.1.0.9"),
                ("ip_end", "10.1.0.2"),
                ("netmask", "255.255.255.0"),
            ],
            "ip_end",
        );
        bad(
            &[
                ("ip_begin", "10.1.0.1"),
                ("ip_end", "10.1.0.9"),
                ("netmask", "255.0.255.0"),
            ],
            "netmask",
        );
        bad(
            &[
                ("ip_begin", "10.1.0.0"),
                ("ip_end", "10.1.0.9"),
                ("netmask", "255.255.255.0"),
            ],
            "ip_begin",
        );
        bad(
            &[
                ("ip_begin", "nonsense"),
                ("ip_end", "10.1.0.9"),
                ("netmask", "255.255.255.0"),
            ],
            "ip_begin",
        );
    }

    #[test]
    fn netmasks_and_prefixes() {
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 240, 0)), Some(20));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(netmask_of(20), Ipv4Addr::new(255, 255, 240, 0));
        assert_eq!(netmask_of(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(netmask_of(32), Ipv4Addr::BROADCAST);
    }
}
