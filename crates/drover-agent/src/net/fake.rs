//! A stand-in for iproute2 in unit tests: a small model of links that records every command.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use drover_host::NetCapabilities;
use serde_json::json;

use super::run::Runner;
use super::Net;

/// A link of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FakeLink {
    kind: String,
    up: bool,
    mtu: u32,
    mac: String,
    master: Option<String>,
    alias: Option<String>,
    addrs: Vec<String>,
}

/// The model, its command log and the command made to fail.
pub(crate) struct Fake {
    links: Mutex<BTreeMap<String, FakeLink>>,
    log: Mutex<Vec<String>>,
    fail: Mutex<Option<String>>,
    dir: tempfile::TempDir,
}

impl Fake {
    /// A fake host with `caps` and a [`Net`] (owner `drover:test`) on it.
    pub(crate) fn net(caps: NetCapabilities) -> (Arc<Fake>, Net) {
        let fake = Arc::new(Fake {
            links: Mutex::default(),
            log: Mutex::default(),
            fail: Mutex::default(),
            dir: tempfile::tempdir().unwrap(),
        });
        let dir = fake.dir.path().join("net");
        let net = Net::new(None, dir, "drover:test".into(), caps, fake.clone()).unwrap();
        (fake, net)
    }

    /// A fake host with bonding and two free interfaces, `eth1` and `eth2`.
    pub(crate) fn bonding() -> (Arc<Fake>, Net) {
        let (fake, net) = Fake::net(NetCapabilities {
            bridge: true,
            bonding: true,
            ..NetCapabilities::default()
        });
        fake.add("eth1", "", None);
        fake.add("eth2", "", None);
        (fake, net)
    }

    /// Adds an up hardware interface with address `cidr` (if not empty) and `master`.
    pub(crate) fn add(&self, name: &str, cidr: &str, master: Option<&str>) {
        let mut links = self.links.lock().unwrap();
        let mac = format!("52:54:00:00:00:{:02x}", links.len() + 1);
        links.insert(
            name.into(),
            FakeLink {
                kind: String::new(),
                up: true,
                mtu: 1500,
                mac,
                master: master.map(String::from),
                alias: None,
                addrs: [cidr]
                    .into_iter()
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect(),
            },
        );
    }

    /// Makes the command `line` fail from now on.
    pub(crate) fn fail_on(&self, line: &str) {
        *self.fail.lock().unwrap() = Some(line.into());
    }

    /// Every command so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The commands so far that change something (not the JSON reads).
    pub(crate) fn changes(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| !l.contains(" -j "))
            .collect()
    }

    /// Forgets the commands so far.
    pub(crate) fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// The links now.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, FakeLink> {
        self.links.lock().unwrap().clone()
    }

    /// The master of `name`.
    pub(crate) fn master(&self, name: &str) -> Option<String> {
        self.links.lock().unwrap().get(name)?.master.clone()
    }

    fn json(name: &str, l: &FakeLink) -> serde_json::Value {
        let mut flags = vec!["BROADCAST", "MULTICAST"];
        if l.up {
            flags.extend(["UP", "LOWER_UP"]);
        }
        let addrs: Vec<_> = l
            .addrs
            .iter()
            .map(|c| {
                let (a, p) = c.split_once('/').unwrap();
                let family = if a.contains(':') { "inet6" } else { "inet" };
                let scope = if a.starts_with("fe80:") { "link" } else { "global" };
                json!({"family": family, "local": a, "prefixlen": p.parse::<u8>().unwrap(), "scope": scope})
            })
            .collect();
        json!({
            "ifname": name, "flags": flags, "mtu": l.mtu, "master": l.master,
            "link_type": "ether", "address": l.mac, "ifalias": l.alias,
            "linkinfo": if l.kind.is_empty() { None } else { Some(json!({"info_kind": l.kind})) },
            "addr_info": addrs,
        })
    }

    fn read(&self, args: &[&str]) -> Result<String, String> {
        let links = self.links.lock().unwrap();
        match args {
            ["-j", "-d", "addr", "show", "dev", name] => links
                .get(*name)
                .map(|l| json!([Fake::json(name, l)]).to_string())
                .ok_or_else(|| format!("Device \"{name}\" does not exist.")),
            ["-j", "-d", "addr", "show"] => Ok(serde_json::Value::Array(
                links.iter().map(|(n, l)| Fake::json(n, l)).collect(),
            )
            .to_string()),
            _ => Ok("[]".into()),
        }
    }

    fn change(&self, args: &[&str]) {
        let mut links = self.links.lock().unwrap();
        let args = match args {
            ["-6" | "-4", rest @ ..] => rest,
            _ => args,
        };
        match args {
            ["link", "add", "name", name, "type", kind, ..]
            | ["link", "add", "link", _, "name", name, "type", kind, ..] => {
                let mac = format!("52:54:00:00:01:{:02x}", links.len());
                links.insert(
                    name.to_string(),
                    FakeLink {
                        kind: kind.to_string(),
                        up: false,
                        mtu: 1500,
                        mac,
                        master: None,
                        alias: None,
                        addrs: Vec::new(),
                    },
                );
            }
            ["link", "del", "dev", name] => {
                links.remove(*name);
                for l in links.values_mut() {
                    if l.master.as_deref() == Some(*name) {
                        l.master = None;
                    }
                }
            }
            ["link", "set", "dev", name, rest @ ..] => {
                let l = links.get_mut(*name).unwrap();
                let mut it = rest.iter();
                while let Some(word) = it.next() {
                    match *word {
                        "up" => l.up = true,
                        "down" => l.up = false,
                        "nomaster" => l.master = None,
                        "master" => l.master = it.next().map(|s| s.to_string()),
                        "mtu" => l.mtu = it.next().unwrap().parse().unwrap(),
                        "address" => l.mac = it.next().unwrap().to_string(),
                        "alias" => l.alias = it.next().map(|s| s.to_string()),
                        other => panic!("fake ip: unknown link attribute {other}"),
                    }
                }
            }
            ["addr", "add", cidr, "dev", name] => {
                links.get_mut(*name).unwrap().addrs.push(cidr.to_string());
            }
            ["addr", "del", cidr, "dev", name] => {
                links.get_mut(*name).unwrap().addrs.retain(|a| a != cidr);
            }
            _ => {}
        }
    }
}

#[async_trait]
impl Runner for Fake {
    async fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let line = format!("{program} {}", args.join(" "));
        self.log.lock().unwrap().push(line.clone());
        if self.fail.lock().unwrap().as_deref() == Some(line.as_str()) {
            return Err(format!("fake failure of {line}"));
        }
        match (program, args.first()) {
            ("ip", Some(&"-j")) | ("bridge", Some(&"-j")) => self.read(args),
            ("ip", _) => {
                self.change(args);
                Ok(String::new())
            }
            _ => Ok(String::new()),
        }
    }
}
