//! Linux bonds of host interfaces: made from members that carry nothing of the host's, undone
//! step by step when a step fails, and the members given back as they were when destroyed.

use drover_host::{check_device_name, BondMode, BondSpec, HostError, NetCapabilities};
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
    Ok(())
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
    ip.cmd(
        name,
        &[
            "link",
            "add",
            "name",
            name,
            "type",
            "bond",
            "mode",
            linux_mode(spec.mode),
            "miimon",
            "100",
        ],
    )
    .await?;
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
