//! Linux bonds of host interfaces: made from members that carry nothing of the host's, undone
//! step by step when a step fails, and the members given back as they were when destroyed.

use drover_host::{
    check_device_name, BondHashing, BondMode, BondOptions, BondSpec, HostError, NetCapabilities,
};
use serde::{Deserialize, Serialize};

use super::dhcp::valid_mac;
use super::state::{self, check_free, restore, Prior, Undo};
use super::Net;

/// What a bond took, kept in `bonds/<name>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct BondState {
    /// The members as they were before.
    members: Vec<Prior>,
}

/// Refuses bonds on a kernel without bonding, before anything is touched.
pub(crate) fn check_supported(caps: NetCapabilities) -> Result<(), HostError> {
    if caps.bonding {
        Ok(())
    } else {
        Err(HostError::Unsupported(
            "this host's kernel has no bonding (module bonding)".into(),
        ))
    }
}

/// The Linux bonding mode of `mode`.
fn linux_mode(mode: BondMode) -> &'static str {
    match mode {
        BondMode::BalanceSlb => "balance-alb",
        BondMode::ActiveBackup => "active-backup",
        BondMode::Lacp => "802.3ad",
    }
}

/// The `ip link add ... type bond` options of `spec` after its mode: the link check every
/// 100 ms, the delays, and for an 802.3ad bond its hashing, LACP rate and aggregation key.
fn link_options(spec: &BondSpec) -> Vec<String> {
    let o = &spec.options;
    let mut out: Vec<String> = vec!["miimon".into(), "100".into()];
    let mut add = |k: &str, v: String| {
        out.push(k.into());
        out.push(v);
    };
    if let Some(d) = o.updelay {
        add("updelay", d.to_string());
    }
    if let Some(d) = o.downdelay {
        add("downdelay", d.to_string());
    }
    if spec.mode == BondMode::Lacp {
        if let Some(h) = o.hashing {
            let policy = match h {
                BondHashing::SrcMac => "layer2",
                BondHashing::TcpudpPorts => "layer3+4",
            };
            add("xmit_hash_policy", policy.into());
        }
        if let Some(fast) = o.lacp_fast {
            add("lacp_rate", if fast { "fast" } else { "slow" }.into());
        }
        if let Some(k) = o.lacp_key {
            add("ad_user_port_key", k.to_string());
        }
    }
    out
}

/// Checks that the options of `spec` are ones the kernel takes.
fn validate_options(spec: &BondSpec) -> Result<(), HostError> {
    let BondOptions {
        updelay,
        downdelay,
        hashing,
        lacp_fast,
        lacp_key,
        ..
    } = &spec.options;
    let bad = |reason: String| HostError::NetConfig {
        device: spec.name.clone(),
        reason,
    };
    for (name, d) in [("updelay", updelay), ("downdelay", downdelay)] {
        if d.is_some_and(|d| d > i32::MAX as u32) {
            return Err(bad(format!("{name} is out of range")));
        }
    }
    let lacp_options = hashing.is_some() || lacp_fast.is_some() || lacp_key.is_some();
    if lacp_options && spec.mode != BondMode::Lacp {
        return Err(bad("LACP options need an LACP (802.3ad) bond".into()));
    }
    if lacp_key.is_some_and(|k| k > 1023) {
        return Err(bad("the LACP aggregation key is within 0-1023".into()));
    }
    Ok(())
}

/// Refuses GRO settings where `ethtool` is missing, before anything is touched.
async fn check_ethtool(net: &Net, spec: &BondSpec) -> Result<(), HostError> {
    if spec.options.gro.is_none() {
        return Ok(());
    }
    match net.ip.tool(&spec.name, "ethtool", &["--version"]).await {
        Ok(_) => Ok(()),
        Err(_) => Err(HostError::Unsupported(
            "setting GRO needs ethtool, which is not installed on this host".into(),
        )),
    }
}

/// Checks `spec` itself.
fn validate(spec: &BondSpec) -> Result<(), HostError> {
    check_device_name(&spec.name)?;
    let bad = |reason: String| HostError::NetConfig {
        device: spec.name.clone(),
        reason,
    };
    if spec.members.len() < 2 {
        return Err(bad("a bond needs at least two members".into()));
    }
    for (i, m) in spec.members.iter().enumerate() {
        check_device_name(m)?;
        if *m == spec.name || spec.members[..i].contains(m) {
            return Err(bad(format!("member {m} is named twice")));
        }
    }
    if !spec.mac.is_empty() && !valid_mac(&spec.mac) {
        return Err(bad(format!("malformed MAC {:?}", spec.mac)));
    }
    if !(68..=65535).contains(&spec.mtu) {
        return Err(bad(format!("MTU {} is not within 68-65535", spec.mtu)));
    }
    validate_options(spec)
}

/// Makes the bond of `spec`; an identical bond of Drover's is fine.
pub(crate) async fn create(net: &Net, spec: &BondSpec) -> Result<(), HostError> {
    validate(spec)?;
    let path = net.bond_file(&spec.name);
    if let Some(l) = net.ip.link(&spec.name).await? {
        if !l.ours(&net.owner) {
            return Err(HostError::DeviceTaken(spec.name.clone()));
        }
        let st: Option<BondState> = state::load(&path)?;
        let same = l.kind() == "bond"
            && st.is_some_and(|s| s.members.iter().map(|p| &p.device).eq(spec.members.iter()));
        return if same {
            Ok(())
        } else {
            Err(HostError::NetConfig {
                device: spec.name.clone(),
                reason: "Drover has a different device of this name".into(),
            })
        };
    }
    check_ethtool(net, spec).await?;
    let mut members = Vec::new();
    for m in &spec.members {
        members.push(Prior::of(&check_free(&net.ip, m, &net.owner).await?));
    }
    state::save(
        &path,
        &BondState {
            members: members.clone(),
        },
    )?;
    let mut undo = Undo::default();
    if let Err(e) = make(net, spec, members, &mut undo).await {
        undo.rollback(&net.ip).await;
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(())
}

/// The kernel steps making a bond, recording in `undo` how to take each back.
async fn make(
    net: &Net,
    spec: &BondSpec,
    members: Vec<Prior>,
    undo: &mut Undo,
) -> Result<(), HostError> {
    let (ip, name) = (&net.ip, spec.name.as_str());
    let options = link_options(spec);
    let mut add = vec![
        "link",
        "add",
        "name",
        name,
        "type",
        "bond",
        "mode",
        linux_mode(spec.mode),
    ];
    add.extend(options.iter().map(String::as_str));
    ip.cmd(name, &add).await?;
    undo.made(name);
    ip.set(name, &["alias", &net.owner]).await?;
    for prior in members {
        let m = prior.device.clone();
        undo.took(prior);
        ip.set(&m, &["down"]).await?;
        ip.set(&m, &["master", name]).await?;
    }
    if !spec.mac.is_empty() {
        ip.set(name, &["address", &spec.mac.to_ascii_lowercase()])
            .await?;
    }
    ip.set(name, &["mtu", &spec.mtu.to_string()]).await?;
    if let Some(gro) = spec.options.gro {
        let on = if gro { "on" } else { "off" };
        ip.tool(name, "ethtool", &["-K", name, "gro", on]).await?;
    }
    ip.set(name, &["up"]).await
}

/// Removes Drover's bond `name`, giving its members back.
pub(crate) async fn destroy(net: &Net, name: &str) -> Result<(), HostError> {
    check_device_name(name)?;
    match net.ip.link(name).await? {
        None if !net.bond_file(name).exists() => Err(HostError::NoSuchDevice(name.into())),
        Some(l) if !l.ours(&net.owner) || l.kind() != "bond" => {
            Err(HostError::DeviceTaken(name.into()))
        }
        Some(l) if l.master.is_some() => Err(HostError::DeviceInUse(name.into())),
        _ => teardown(net, name).await,
    }
}

/// Deletes the bond `name` (if it exists, it is Drover's) and gives its members back.
pub(crate) async fn teardown(net: &Net, name: &str) -> Result<(), HostError> {
    let path = net.bond_file(name);
    let st: Option<BondState> = state::load(&path)?;
    if net.ip.link(name).await?.is_some() {
        net.ip.cmd(name, &["link", "del", "dev", name]).await?;
    }
    for prior in st.iter().flat_map(|s| &s.members) {
        restore(&net.ip, prior).await?;
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(HostError::Failed(format!("{}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::Fake;
    use super::*;

    fn spec() -> BondSpec {
        BondSpec {
            name: "bond0".into(),
            members: vec!["eth1".into(), "eth2".into()],
            mode: BondMode::ActiveBackup,
            mac: "52:54:00:00:00:aa".into(),
            mtu: 9000,
            options: BondOptions::default(),
        }
    }

    const STEPS: [&str; 9] = [
        "ip link add name bond0 type bond mode active-backup miimon 100",
        "ip link set dev bond0 alias drover:test",
        "ip link set dev eth1 down",
        "ip link set dev eth1 master bond0",
        "ip link set dev eth2 down",
        "ip link set dev eth2 master bond0",
        "ip link set dev bond0 address 52:54:00:00:00:aa",
        "ip link set dev bond0 mtu 9000",
        "ip link set dev bond0 up",
    ];

    #[tokio::test]
    async fn refused_without_bonding_before_touching_anything() {
        let (fake, net) = Fake::net(NetCapabilities::default());
        let e = net.bond_create(&spec()).await.unwrap_err();
        assert!(
            matches!(&e, HostError::Unsupported(m) if m.contains("bonding")),
            "{e}"
        );
        assert!(net.bond_destroy("bond0").await.is_err());
        assert!(fake.log().is_empty(), "{:?}", fake.log());
    }

    #[tokio::test]
    async fn makes_the_bond_step_by_step_and_gives_members_back() {
        let (fake, net) = Fake::bonding();
        let before = fake.snapshot();
        net.bond_create(&spec()).await.unwrap();
        assert_eq!(fake.changes(), STEPS);
        assert_eq!(fake.master("eth1").as_deref(), Some("bond0"));
        net.bond_create(&spec()).await.unwrap();
        assert_eq!(fake.changes().len(), 9, "a second create changes nothing");
        fake.clear();
        net.bond_destroy("bond0").await.unwrap();
        assert_eq!(fake.changes()[0], "ip link del dev bond0");
        assert_eq!(fake.snapshot(), before);
        assert!(!net.bond_file("bond0").exists());
        assert!(matches!(
            net.bond_destroy("bond0").await,
            Err(HostError::NoSuchDevice(_))
        ));
    }

    #[tokio::test]
    async fn a_failing_step_takes_back_every_earlier_one() {
        for (k, step) in STEPS.iter().enumerate() {
            let (fake, net) = Fake::bonding();
            let before = fake.snapshot();
            fake.fail_on(step);
            let e = net.bond_create(&spec()).await.unwrap_err();
            assert!(matches!(e, HostError::NetConfig { .. }), "step {k}: {e}");
            assert_eq!(fake.changes()[..=k], STEPS[..=k], "step {k}");
            assert_eq!(fake.snapshot(), before, "step {k} left the host changed");
            assert!(!net.bond_file("bond0").exists(), "step {k}");
        }
    }

    #[tokio::test]
    async fn lacp_options_delays_and_gro_are_set_on_create() {
        let (fake, net) = Fake::bonding();
        let mut s = spec();
        s.mode = BondMode::Lacp;
        s.options = BondOptions {
            updelay: Some(31000),
            downdelay: Some(200),
            hashing: Some(BondHashing::SrcMac),
            lacp_fast: Some(true),
            lacp_key: Some(7),
            gro: Some(false),
        };
        net.bond_create(&s).await.unwrap();
        let changes = fake.changes();
        assert_eq!(
            changes[0], "ethtool --version",
            "ethtool is looked for first"
        );
        assert_eq!(
            changes[1],
            "ip link add name bond0 type bond mode 802.3ad miimon 100 updelay 31000 \
             downdelay 200 xmit_hash_policy layer2 lacp_rate fast ad_user_port_key 7"
        );
        assert_eq!(changes[changes.len() - 2], "ethtool -K bond0 gro off");
        assert_eq!(changes.last().unwrap(), "ip link set dev bond0 up");

        let (fake, net) = Fake::bonding();
        s.mode = BondMode::ActiveBackup;
        s.options.gro = None;
        assert!(
            matches!(net.bond_create(&s).await, Err(HostError::NetConfig { reason, .. })
                if reason.contains("LACP")),
            "LACP options on an active-backup bond"
        );
        s.options = BondOptions {
            updelay: Some(100),
            ..BondOptions::default()
        };
        net.bond_create(&s).await.unwrap();
        assert_eq!(
            fake.changes()[0],
            "ip link add name bond0 type bond mode active-backup miimon 100 updelay 100"
        );
    }

    #[tokio::test]
    async fn gro_without_ethtool_is_refused_before_touching_anything() {
        let (fake, net) = Fake::bonding();
        fake.fail_on("ethtool --version");
        let before = fake.snapshot();
        let mut s = spec();
        s.options.gro = Some(true);
        let e = net.bond_create(&s).await.unwrap_err();
        assert!(
            matches!(&e, HostError::Unsupported(m) if m.contains("ethtool")),
            "{e}"
        );
        assert_eq!(fake.changes(), ["ethtool --version"]);
        assert_eq!(fake.snapshot(), before);
        assert!(!net.bond_file("bond0").exists());
    }

    #[tokio::test]
    async fn members_must_be_free() {
        let (fake, net) = Fake::bonding();
        fake.add("eth3", "", Some("br9"));
        let mut s = spec();
        s.members[1] = "eth3".into();
        assert!(matches!(
            net.bond_create(&s).await,
            Err(HostError::DeviceInUse(d)) if d == "eth3"
        ));
        s.members[1] = "eth9".into();
        assert!(matches!(
            net.bond_create(&s).await,
            Err(HostError::NoSuchDevice(d)) if d == "eth9"
        ));
        s.members[1] = "eth1".into();
        assert!(net.bond_create(&s).await.is_err(), "a member named twice");
        fake.add("bond0", "", None);
        assert!(matches!(
            net.bond_create(&spec()).await,
            Err(HostError::DeviceTaken(d)) if d == "bond0"
        ));
        assert!(fake.changes().is_empty());
    }
}
