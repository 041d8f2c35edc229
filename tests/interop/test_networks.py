"""Networks on real guests: `drover serve --host-driver qemu --netns NS` in a world of its own (see
networld.py: a network namespace NS with the uplinks eth0 (management, 192.0.2.2/24), eth1 and eth2,
whose other ends live in a second namespace), the tiny guest under QEMU, and the real XenAPI client.

What is checked: networks are bridges in NS with a dnsmasq each, VIFs are taps on them, guests get
their reserved addresses by DHCP and reach each other, a guest on another VLAN of the same uplink
cannot reach them, VIFs hot-plug and unplug, PIFs are scanned/plugged/unplugged, VLANs are tagged
networks, bonds are refused where the kernel has no bonding, every bad input gives its XenAPI error
and changes nothing, and once everything is destroyed nothing of it is left in NS or on the host.

Addresses used by the guests (inside NS only):
  network A (VLAN 10 of eth0)  10.77.0.1 - 10.77.0.60,   /24 (host end 10.77.0.1)
  network B (VLAN 20 of eth0)  10.77.0.129 - 10.77.0.190, /25 (host end 10.77.0.129)
  network H (internal, for hot plug) 10.78.0.1 - 10.78.0.60, /24
B lies inside A's /24 so that "same subnet" is what a guest of B sees once it routes A's /24 on-link
(it does: see test_guest_on_another_vlan_cannot_reach_them). B is a /25 so that NS itself can still
answer B's guests on B's bridge (with two identical /24s on two bridges the host's replies would
all leave through one of them).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pathlib
import re
import subprocess
import time

import pytest
import XenAPI

import networld
import xapitest
from networld import NULL, diff_state, dnsmasqs_of, guest_run, lease_files, processes_mentioning, wait_console
from xapitest import MiB, unique

REPO = pathlib.Path(__file__).resolve().parents[2]
GUEST = pathlib.Path(os.environ.get("DROVER_TINY_GUEST", REPO / "guest" / "out"))

NET_A = {"ip_begin": "10.77.0.1", "ip_end": "10.77.0.60", "netmask": "255.255.255.0"}
NET_B = {"ip_begin": "10.77.0.129", "ip_end": "10.77.0.190", "netmask": "255.255.255.128"}
NET_H = {"ip_begin": "10.78.0.1", "ip_end": "10.78.0.60", "netmask": "255.255.255.0"}
TAG_A, TAG_B = 10, 20
# Over VXLAN (this kernel has no 802.1Q) a frame carries 50 bytes of overlay headers: networks
# joined to a 1500-byte uplink that way are made with room for them.
VLAN_MTU = "1450"
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


# ---------------------------------------------------------------------------------------------
# the world and the engine


@pytest.fixture(scope="module")
def world():
    try:
        w = networld.NetWorld().create()
    except networld.NetWorldError as e:
        pytest.fail(f"cannot build the network test world: {e}", pytrace=False)
    # What the uplinks looked like before Drover ever saw them.
    w.pristine = w.state()
    yield w
    w.destroy()
    assert not w.exists


@pytest.fixture(scope="module")
def nengine(request, world, drover_bin, _engines_root):
    from conftest import _finish_engine, _make_engine

    assert (GUEST / "vmlinuz").is_file() and (GUEST / "initrd.img").is_file(), (
        f"the tiny guest is not built in {GUEST}: run guest/build-tiny-guest.sh {GUEST}")
    help_text = subprocess.run([str(drover_bin), "serve", "--help"], capture_output=True, text=True).stdout
    assert "--netns" in help_text, f"{drover_bin} has no `serve --netns` option: rebuild it"
    failed_before = request.session.testsfailed
    eng = _make_engine(drover_bin, _engines_root,
                       ["--tiny-guest", str(GUEST), "--shutdown-timeout-secs", "20", "--netns", world.ns],
                       driver="qemu")
    # NS as Drover found it after its first start (its own bridges for the PIFs' networks, if any).
    world.baseline = world.state()
    yield eng
    try:
        if eng.alive:
            _tear_down_objects(eng.session().xenapi)
    finally:
        _finish_engine(eng, request.session.testsfailed > failed_before)
        # Whatever is still running for this engine (its guests and DHCP servers) goes by pid.
        for pid in processes_mentioning(str(eng.data_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def _tear_down_objects(x):
    """Best effort: stop and destroy every VM, VLAN and network the tests made."""
    for ref, r in x.VM.get_all_records().items():
        if r["is_a_template"] or r["is_control_domain"]:
            continue
        with contextlib.suppress(XenAPI.Failure):
            if r["power_state"] != "Halted":
                x.VM.hard_shutdown(ref)
        with contextlib.suppress(XenAPI.Failure):
            x.VM.destroy(ref)
    for ref in x.VLAN.get_all():
        with contextlib.suppress(XenAPI.Failure):
            x.VLAN.destroy(ref)
    for ref, r in x.network.get_all_records().items():
        if not r["PIFs"]:
            with contextlib.suppress(XenAPI.Failure):
                x.network.destroy(ref)


@pytest.fixture(scope="module")
def nsession(nengine):
    s = nengine.session()
    yield s
    with contextlib.suppress(Exception):
        if nengine.alive:
            s.xenapi.session.logout()


@pytest.fixture(scope="module")
def nx(nsession):
    return nsession.xenapi


@pytest.fixture(scope="module")
def sid(nsession):
    return nsession._session


# ---------------------------------------------------------------------------------------------
# helpers


def pif_by_device(x, device, vlan="-1"):
    found = [ref for ref, r in x.PIF.get_all_records().items() if r["device"] == device and str(r["VLAN"]) == vlan]
    assert len(found) == 1, f"PIF {device} (VLAN {vlan}): {found}"
    return found[0]


def new_network(x, other_config=None, mtu="1500", name=None, **extra):
    rec = {"name_label": name or unique("net"), "name_description": "network test", "MTU": mtu,
           "other_config": dict(other_config or {}), "tags": []}
    rec.update(extra)
    return x.network.create(rec)


def host_caps(x):
    oc = x.host.get_other_config(xapitest.the_host(x))
    return {k: str(oc.get(k, "")).lower() for k in ("net_vlan_8021q", "net_vlan_filtering", "net_bonding", "net_vxlan")}


def tiny_vm(x, name=None):
    """A halted clone of `Tiny Linux` without any NIC (the test gives it its own)."""
    tpl = xapitest.template(x, "Tiny Linux")
    vm = x.VM.clone(tpl, name or unique("nettiny"))
    x.VM.provision(vm)
    x.VM.set_is_a_template(vm, False)
    x.VM.set_memory_limits(vm, str(96 * MiB), str(96 * MiB), str(96 * MiB), str(96 * MiB))
    for vif in x.VM.get_VIFs(vm):
        x.VIF.destroy(vif)
    return vm


def new_vif(x, vm, network, device="0", mac=""):
    return x.VIF.create(xapitest.vif_record(vm, network, device, MAC=mac, MTU=x.network.get_MTU(network)))


def reserved_ip(x, vif):
    ip = x.VIF.get_other_config(vif).get("dhcp_reserved_ip", "")
    assert ip, f"VIF {vif} has no other_config:dhcp_reserved_ip: {x.VIF.get_other_config(vif)}"
    return ip


def in_range(ip, cfg):
    a = ipaddress.IPv4Address
    return a(cfg["ip_begin"]) < a(ip) <= a(cfg["ip_end"])


def addr_only(a):
    return a.split("/", 1)[0]


def qemu_pid(eng, x, vm):
    return int((eng.data_dir / "guests" / x.VM.get_uuid(vm) / "qemu.pid").read_text())


def records(x):
    """The network-related inventory, to check that a refused call made nothing."""
    return {cls: sorted(getattr(x, cls).get_all()) for cls in ("network", "VIF", "VLAN", "PIF", "Bond")}


@contextlib.contextmanager
def nothing_changes(world, x, eng):
    """The block (a refused call) leaves the inventory, NS and the engine's DHCP servers as they were."""
    recs, state, dhcp = records(x), world.state(), sorted(dnsmasqs_of(eng.data_dir))
    yield
    assert records(x) == recs, "a refused call left records behind"
    problems = diff_state(state, world.state())
    assert not problems, "a refused call changed the host:\n  " + "\n  ".join(problems)
    assert sorted(dnsmasqs_of(eng.data_dir)) == dhcp, "a refused call started or stopped a DHCP server"


def guest_networks(x, vm):
    """The guest metrics' `networks` map, empty until the guest's first report."""
    gm = x.VM.get_guest_metrics(vm)
    return {} if gm == NULL else x.VM_guest_metrics.get_networks(gm)


def wait_for(pred, timeout=30.0, what="condition", poll=0.2):
    return xapitest.wait_until(pred, timeout=timeout, poll=poll, what=what)


def ping_from(x, vm, sid, addr, count=3):
    """Pings `addr` from the guest's console; returns (ok, output)."""
    rc, out = guest_run(x, vm, sid, f"ping -c {count} -W 2 {addr}", timeout=20 + 3 * count)
    return rc == 0, out


# ---------------------------------------------------------------------------------------------
# shared objects: networks A and B as VLANs 10 and 20 of eth0, and three running guests


class Lan:
    pass


@pytest.fixture(scope="module")
def lan(nx):
    lan = Lan()
    lan.eth0 = pif_by_device(nx, "eth0")
    lan.a = new_network(nx, NET_A, mtu=VLAN_MTU, name="net-A")
    lan.vlan_a = nx.VLAN.create(lan.eth0, str(TAG_A), lan.a)
    lan.b = new_network(nx, NET_B, mtu=VLAN_MTU, name="net-B")
    lan.vlan_b = nx.VLAN.create(lan.eth0, str(TAG_B), lan.b)
    lan.bridge_a = nx.network.get_bridge(lan.a)
    lan.bridge_b = nx.network.get_bridge(lan.b)
    return lan


class Guest:
    def __init__(self, name, vm, vif, ip):
        self.name, self.vm, self.vif, self.ip = name, vm, vif, ip

    def __repr__(self):
        return f"<{self.name} {self.ip}>"


@pytest.fixture(scope="module")
def guests(nx, sid, lan):
    """A1 and A2 on network A, C on network B: started, each with its DHCP address on eth0."""
    made = {}
    for name, net in (("A1", lan.a), ("A2", lan.a), ("C", lan.b)):
        vm = tiny_vm(nx, f"net-{name}")
        vif = new_vif(nx, vm, net)
        made[name] = Guest(name, vm, vif, reserved_ip(nx, vif))
    for g in made.values():
        nx.VM.start(g.vm, False, False)
    for g in made.values():
        m = wait_console(nx, g.vm, sid, r"DROVER-GUEST ip=eth0:(\S+)", timeout=90)
        g.console_ip = m.group(1)
    return made


# ---------------------------------------------------------------------------------------------
# host, PIFs, capabilities


def test_drover_leaves_the_uplinks_alone_at_start(world, nengine):
    """Starting Drover in NS changes none of NS's interfaces (it may add bridges of its own)."""
    before, after = world.pristine["links"], world.baseline["links"]
    for name in before:
        assert after.get(name) == before[name], f"{name} changed at start: {before[name]} -> {after.get(name)}"
    lost = [r for r in world.pristine["routes"] if r not in world.baseline["routes"]]
    assert not lost, f"routes gone at start: {lost}"
    for name in set(after) - set(before):
        assert after[name]["kind"] == "bridge" and (after[name]["alias"] or "").startswith("drover"), (
            f"Drover made {name} at start: {after[name]}")


def test_host_reports_what_the_kernel_can_do(nx):
    caps = host_caps(nx)
    for k, v in caps.items():
        assert v in ("true", "false"), f"host other_config:{k} = {v!r}"
    for key, option in (("net_vlan_8021q", "CONFIG_VLAN_8021Q"), ("net_vxlan", "CONFIG_VXLAN"),
                        ("net_bonding", "CONFIG_BONDING"), ("net_vlan_filtering", "CONFIG_BRIDGE_VLAN_FILTERING")):
        has = networld.kernel_has(option)
        if has is not None:
            assert caps[key] == ("true" if has else "false"), f"{key} = {caps[key]} but the kernel has {option}={has}"
    # This project's machines have VXLAN but neither 802.1Q nor bonding (Debian's kernels have them).
    assert caps["net_vxlan"] == "true" or caps["net_vlan_8021q"] == "true", caps


def test_pif_scan_finds_the_namespace_interfaces(world, nx):
    host = xapitest.the_host(nx)
    nx.PIF.scan(host)
    nx.PIF.scan(host)  # twice: no duplicates
    pifs = {r["device"]: (ref, r) for ref, r in nx.PIF.get_all_records().items() if str(r["VLAN"]) == "-1"}
    assert {"eth0", "eth1", "eth2"} <= set(pifs), sorted(pifs)
    assert "lo" not in pifs
    devices = [r["device"] for r in nx.PIF.get_all_records().values() if str(r["VLAN"]) == "-1"]
    assert len(devices) == len(set(devices)), f"PIF.scan made duplicates: {devices}"
    links = world.links()
    for dev in ("eth0", "eth1", "eth2"):
        ref, r = pifs[dev]
        assert r["MAC"].lower() == links[dev]["address"], (dev, r["MAC"], links[dev]["address"])
        assert int(r["MTU"]) == links[dev]["mtu"]
        assert r["physical"] is True
        assert r["host"] == host
        assert r["network"] != NULL and dev in [nx.PIF.get_device(p) for p in nx.network.get_PIFs(r["network"])]
        assert nx.PIF.get_metrics(ref) != NULL
    mgmt = pifs["eth0"][1]
    assert mgmt["management"] is True, "eth0 holds the default route: it is the management PIF"
    assert mgmt["IP"] == world.eth0_ip and mgmt["netmask"] == "255.255.255.0", mgmt
    assert mgmt["gateway"] == world.gateway, mgmt
    assert not pifs["eth1"][1]["management"] and not pifs["eth2"][1]["management"]


def test_management_pif_cannot_be_reconfigured(world, nengine, nx):
    eth0 = pif_by_device(nx, "eth0")
    with nothing_changes(world, nx, nengine):
        with xapitest.failure_code("PIF_IS_MANAGEMENT_INTERFACE"):
            nx.PIF.reconfigure_ip(eth0, "Static", "192.0.2.99", "255.255.255.0", world.gateway, "")
        with xapitest.failure_code("PIF_IS_MANAGEMENT_INTERFACE"):
            nx.PIF.reconfigure_ip(eth0, "None", "", "", "", "")
    assert nx.PIF.get_IP(eth0) == world.eth0_ip


def test_pif_plug_makes_eth1_the_uplink_and_unplug_gives_it_back(world, nengine, nx):
    eth1 = pif_by_device(nx, "eth1")
    net = nx.PIF.get_network(eth1)
    pristine = world.pristine["links"]["eth1"]
    if nx.PIF.get_currently_attached(eth1):
        nx.PIF.unplug(eth1)
    assert world.state()["links"]["eth1"] == pristine
    nx.PIF.plug(eth1)
    assert nx.PIF.get_currently_attached(eth1)
    bridge = nx.network.get_bridge(net)
    assert bridge, "eth1's network has no bridge name"
    links = world.links()
    assert links.get(bridge, {}).get("_kind") == "bridge", f"no bridge {bridge} in {world.ns}"
    assert links["eth1"].get("master") == bridge, f"eth1 is not a port of {bridge}: {links['eth1']}"
    assert "UP" in links[bridge]["flags"]
    # The bridge's address through PIF.reconfigure_ip, then traffic through eth1 to its other end
    # (which the test addresses in its own peer namespace).
    world.ip("addr", "add", "198.51.100.1/24", "dev", "w1", ns=world.peer)
    try:
        nx.PIF.reconfigure_ip(eth1, "Static", "198.51.100.2", "255.255.255.0", "", "")
        assert nx.PIF.get_IP(eth1) == "198.51.100.2"
        assert nx.PIF.get_ip_configuration_mode(eth1) == "Static"
        assert "198.51.100.2/24" in world.link(bridge)["_ipv4"]
        assert world.link("eth1")["_ipv4"] == [], "the address belongs on the bridge, not on its port"
        assert world.ping("198.51.100.1"), "no traffic through the bridge's uplink eth1"
        nx.PIF.reconfigure_ip(eth1, "None", "", "", "", "")
        assert world.link(bridge)["_ipv4"] == []
        assert nx.PIF.get_ip_configuration_mode(eth1) == "None"
    finally:
        world.ip("addr", "del", "198.51.100.1/24", "dev", "w1", ns=world.peer, check=False)
    nx.PIF.unplug(eth1)
    assert not nx.PIF.get_currently_attached(eth1)
    assert world.state()["links"]["eth1"] == pristine, "PIF.unplug did not give eth1 back as it was"
    # The management PIF is never unplugged or enslaved.
    eth0 = pif_by_device(nx, "eth0")
    with nothing_changes(world, nx, nengine):
        with pytest.raises(XenAPI.Failure) as e:
            nx.PIF.unplug(eth0)
    assert e.value.details[0] in ("PIF_IS_MANAGEMENT_INTERFACE", "PIF_DOES_NOT_ALLOW_UNPLUG"), e.value.details


def test_bond_create_is_a_linux_bond_or_a_clear_refusal(world, nengine, nx):
    eth1, eth2 = pif_by_device(nx, "eth1"), pif_by_device(nx, "eth2")
    net = new_network(nx, name="bond-net")
    try:
        if host_caps(nx)["net_bonding"] == "true":
            bond = nx.Bond.create(net, [eth1, eth2], "", "active-backup", {})
            master = nx.Bond.get_master(bond)
            dev = nx.PIF.get_device(master)
            links = world.links()
            assert links[dev]["_kind"] == "bond"
            assert links["eth1"].get("master") == dev and links["eth2"].get("master") == dev
            nx.Bond.destroy(bond)
            assert dev not in world.links()
            for d in ("eth1", "eth2"):
                assert world.state()["links"][d] == world.pristine["links"][d]
        else:
            with nothing_changes(world, nx, nengine):
                with pytest.raises(XenAPI.Failure) as e:
                    nx.Bond.create(net, [eth1, eth2], "", "active-backup", {})
            text = " ".join(e.value.details).lower()
            assert "bond" in text, f"the refusal does not say why: {e.value.details}"
            assert nx.Bond.get_all() == []
            assert nx.PIF.get_bond_slave_of(eth1) == NULL and nx.PIF.get_bond_slave_of(eth2) == NULL
            assert nx.network.get_PIFs(net) == []
    finally:
        nx.network.destroy(net)


# ---------------------------------------------------------------------------------------------
# networks, VLANs, VIFs


def test_network_create_makes_a_bridge_with_its_mtu_and_a_dhcp_server(world, nengine, nx):
    cfg = {"ip_begin": "10.79.0.1", "ip_end": "10.79.0.30", "netmask": "255.255.255.0"}
    dhcp_before = set(dnsmasqs_of(nengine.data_dir))
    t0 = time.monotonic()
    net = new_network(nx, cfg, mtu="1400", name="dhcp-net")
    created_in = time.monotonic() - t0
    bridge = nx.network.get_bridge(net)
    assert bridge and len(bridge) <= 15, bridge
    link = world.link(bridge)
    assert link is not None, f"network.create returned but there is no {bridge} in {world.ns}"
    assert link["_kind"] == "bridge"
    assert link["mtu"] == 1400
    assert "UP" in link["flags"]
    assert (link.get("ifalias") or "").startswith("drover:"), f"{bridge} does not carry Drover's alias: {link}"
    assert link["_ipv4"] == ["10.79.0.1/24"], link["_ipv4"]
    servers = set(dnsmasqs_of(nengine.data_dir))
    ours = servers - dhcp_before
    assert len(ours) == 1, f"expected one new dnsmasq for {bridge}, found {sorted(ours)} (before: {sorted(dhcp_before)})"
    (pid,) = ours
    assert networld.proc_netns_inode(pid) == world.ns_inode(), "the DHCP server does not run in NS"
    # DHCP only: something listens on port 67 in NS, nothing on 53 (no DNS).
    ports = {int(l.split()[1].rsplit(":", 1)[1], 16)
             for f in ("/proc/net/udp", "/proc/net/tcp") for l in world.exec("cat", f).stdout.splitlines()[1:]}
    assert 67 in ports and 53 not in ports, sorted(ports)
    print(f"network.create with DHCP: {created_in * 1000:.0f} ms")
    # Nothing of it in the root namespace.
    assert link["ifalias"] not in {l.get("ifalias") for l in networld.root_links()}
    nx.network.destroy(net)
    assert bridge not in world.links(), f"{bridge} is still there after network.destroy"
    wait_for(lambda: pid not in dnsmasqs_of(nengine.data_dir), 10, "its dnsmasq to go")
    # A network without addresses to hand out has a bridge without address and no DHCP server.
    plain = new_network(nx, name="plain-net")
    pbridge = nx.network.get_bridge(plain)
    assert world.link(pbridge)["_kind"] == "bridge"
    assert world.link(pbridge)["_ipv4"] == []
    assert set(dnsmasqs_of(nengine.data_dir)) == dhcp_before
    nx.network.destroy(plain)
    assert pbridge not in world.links()


def test_vlan_networks_are_tagged_through_8021q_or_vxlan(world, nx, lan):
    caps = host_caps(nx)
    for vlan, tag, net, bridge in ((lan.vlan_a, TAG_A, lan.a, lan.bridge_a), (lan.vlan_b, TAG_B, lan.b, lan.bridge_b)):
        rec = nx.VLAN.get_record(vlan)
        assert int(rec["tag"]) == tag
        assert rec["tagged_PIF"] == lan.eth0
        untagged = rec["untagged_PIF"]
        assert nx.PIF.get_network(untagged) == net
        assert int(nx.PIF.get_VLAN(untagged)) == tag
        assert nx.PIF.get_device(untagged) == "eth0"
        assert vlan in nx.PIF.get_VLAN_slave_of(lan.eth0)
        assert nx.PIF.get_VLAN_master_of(untagged) == vlan
        links = world.links()
        assert links[bridge]["_kind"] == "bridge"
        ports = [links[p] for p in world.ports(bridge)]
        if caps["net_vlan_8021q"] == "true":
            tagged = [p for p in ports if p["_kind"] == "vlan"]
            assert len(tagged) == 1, ports
            assert tagged[0]["linkinfo"]["info_data"]["id"] == tag
            assert tagged[0].get("link") == "eth0"
        else:
            vx = [p for p in ports if p["_kind"] == "vxlan"]
            assert len(vx) == 1, f"no VXLAN port on {bridge}: {[p['ifname'] for p in ports]}"
            data = vx[0]["linkinfo"]["info_data"]
            assert data["id"] == tag, data
            assert data.get("link") == "eth0", data
            assert (vx[0].get("ifalias") or "").startswith("drover:")
    # The uplink itself is left alone: eth0 is nobody's port and keeps its address.
    eth0 = world.link("eth0")
    assert eth0.get("master") is None and eth0["_ipv4"] == [f"{world.eth0_ip}/24"]


def test_vlan_of_the_uplinks_mtu_works_or_is_refused_clearly(world, nengine, nx, lan):
    """A 1500-byte VLAN over a 1500-byte uplink: 802.1Q carries it; VXLAN cannot without losing big
    frames (50 bytes of overlay headers), so VLAN.create must either make it work (no frame the
    bridge takes too big for the overlay) or say why (the MTU) -- never fail half-way with a kernel
    message -- and leave nothing behind."""
    net = new_network(nx, mtu="1500", name="big-vlan")
    bridge = nx.network.get_bridge(net)
    try:
        before = world.state()
        try:
            vlan = nx.VLAN.create(lan.eth0, "30", net)
        except XenAPI.Failure as e:
            assert host_caps(nx)["net_vlan_8021q"] != "true", f"802.1Q carries this VLAN, yet: {e.details}"
            text = " ".join(e.details)
            assert "mtu" in text.lower(), f"refused without saying why (the MTU): {e.details}"
            assert "RTNETLINK" not in text, f"a raw kernel message instead of a clear error: {e.details}"
            problems = diff_state(before, world.state())
            assert not problems, "the refused VLAN.create changed the host:\n  " + "\n  ".join(problems)
            assert not [v for v in nx.VLAN.get_all() if nx.VLAN.get_tag(v) == "30"]
            assert not [p for p in nx.PIF.get_all() if nx.PIF.get_VLAN(p) == "30"]
        else:
            links = world.links()
            if host_caps(nx)["net_vlan_8021q"] == "true":
                port = [links[p] for p in world.ports(bridge) if links[p]["_kind"] == "vlan"]
                assert len(port) == 1 and port[0]["mtu"] == 1500, world.ports(bridge)
            else:
                port = [links[p] for p in world.ports(bridge) if links[p]["_kind"] == "vxlan"]
                assert len(port) == 1, world.ports(bridge)
                room = links["eth0"]["mtu"] - 50
                assert links[bridge]["mtu"] <= room and port[0]["mtu"] <= room, (links[bridge]["mtu"], port[0]["mtu"])
            nx.VLAN.destroy(vlan)
            assert port[0]["ifname"] not in world.links()
    finally:
        nx.network.destroy(net)
    assert bridge not in world.links()


def test_vif_macs_are_generated_checked_and_unique(world, nengine, nx, lan):
    vm1, vm2 = tiny_vm(nx), tiny_vm(nx)
    try:
        v1 = new_vif(nx, vm1, lan.a)
        mac1 = nx.VIF.get_MAC(v1)
        assert MAC_RE.match(mac1), mac1
        first = int(mac1[:2], 16)
        assert first & 0x02 and not first & 0x01, f"{mac1} is not a locally administered unicast MAC"
        assert nx.VIF.get_MAC_autogenerated(v1) is True
        v2 = new_vif(nx, vm1, lan.a, device="1")
        assert nx.VIF.get_MAC(v2) != mac1
        ip1, ip2 = reserved_ip(nx, v1), reserved_ip(nx, v2)
        assert ip1 != ip2 and in_range(ip1, NET_A) and in_range(ip2, NET_A), (ip1, ip2)
        v3 = new_vif(nx, vm2, lan.a, mac="02:00:5e:10:20:30")
        assert nx.VIF.get_MAC(v3) == "02:00:5e:10:20:30"
        assert nx.VIF.get_MAC_autogenerated(v3) is False
        with nothing_changes(world, nx, nengine):
            for bad in ("not-a-mac", "00:11:22:33:44", "00:11:22:33:44:5g", "00:11:22:33:44:55:66"):
                with xapitest.failure_code("MAC_INVALID"):
                    new_vif(nx, vm2, lan.a, device="1", mac=bad)
            for dup in (mac1, "02:00:5e:10:20:30", "02:00:5E:10:20:30"):
                with xapitest.failure_code("MAC_STILL_EXISTS"):
                    new_vif(nx, vm2, lan.a, device="1", mac=dup)
            # A halted VM's VIF cannot be plugged.
            with xapitest.failure_code("VM_BAD_POWER_STATE"):
                nx.VIF.plug(v1)
        assert not nx.VIF.get_currently_attached(v1)
        # A destroyed VIF frees its MAC and its reservation.
        nx.VIF.destroy(v3)
        v4 = new_vif(nx, vm2, lan.a, mac="02:00:5e:10:20:30")
        assert nx.VIF.get_MAC(v4) == "02:00:5e:10:20:30"
    finally:
        nx.VM.destroy(vm1)
        nx.VM.destroy(vm2)
    xapitest.assert_integrity(nx, ["VM", "VIF", "network"])


def test_bad_input_is_refused_and_changes_nothing(world, nengine, nx, lan):
    spare = new_network(nx, name="spare")
    try:
        with nothing_changes(world, nx, nengine):
            for tag in ("0", "4095", "-1", "4096"):
                with xapitest.failure_code("VLAN_TAG_INVALID"):
                    nx.VLAN.create(lan.eth0, tag, spare)
            with xapitest.failure_code("PIF_VLAN_EXISTS"):
                nx.VLAN.create(lan.eth0, str(TAG_A), spare)
            for bad in ("10.77.0.999", "not-an-address"):
                with xapitest.failure_code("INVALID_VALUE"):
                    new_network(nx, {**NET_H, "ip_begin": bad})
        # A bridge name that belongs to a device Drover did not make: the test's own bridge, with
        # an address, and one of the uplinks.
        world.ip("link", "add", "name", "drtown0", "type", "bridge")
        world.ip("link", "set", "drtown0", "alias", "made-by-the-test")
        world.ip("addr", "add", "203.0.113.1/24", "dev", "drtown0")
        world.ip("link", "set", "drtown0", "up")
        try:
            with nothing_changes(world, nx, nengine):
                for taken in ("drtown0", "eth1"):
                    with xapitest.failure_code("BRIDGE_NAME_EXISTS"):
                        new_network(nx, NET_H, bridge=taken)
        finally:
            world.ip("link", "del", "drtown0", check=False)
    finally:
        nx.network.destroy(spare)


# ---------------------------------------------------------------------------------------------
# real guests


def test_two_guests_get_their_reserved_addresses_and_ping_each_other(world, nengine, nx, sid, lan, guests):
    a1, a2 = guests["A1"], guests["A2"]
    for g in (a1, a2):
        assert in_range(g.ip, NET_A), g
        assert g.console_ip == g.ip, f"{g.name} got {g.console_ip} by DHCP, reserved was {g.ip}"
        mac = nx.VIF.get_MAC(g.vif)
        wait_console(nx, g.vm, sid, rf"DROVER-GUEST nic=eth0 mac={re.escape(mac)}")
        assert nx.VIF.get_currently_attached(g.vif)
        # The guest runs in NS and its NIC is a tap on A's bridge.
        assert networld.proc_netns_inode(qemu_pid(nengine, nx, g.vm)) == world.ns_inode(), "QEMU is not in NS"
    assert a1.ip != a2.ip
    assert lease_files(nengine.data_dir), "no lease file while guests hold leases (the final check would prove nothing)"
    taps = [p for p in world.ports(lan.bridge_a) if world.link(p)["_kind"] == "tun"]
    assert len(taps) == 2, f"expected the two guests' taps on {lan.bridge_a}: {world.ports(lan.bridge_a)}"
    # Reported back: the guest metrics' networks map and VIF.ipv4_addresses.
    for g in (a1, a2):
        wait_for(lambda: addr_only(guest_networks(nx, g.vm).get("0/ip", "")) == g.ip, 30,
                 f"{g.name}'s guest metrics to show 0/ip={g.ip}")
        wait_for(lambda: g.ip in [addr_only(a) for a in nx.VIF.get_ipv4_addresses(g.vif)], 30,
                 f"VIF.ipv4_addresses of {g.name} to hold {g.ip}")
    # DHCP hands out no router: the guests have no default route.
    rc, out = guest_run(nx, a1.vm, sid, "! ip route | grep '^default'")
    assert rc == 0, f"the DHCP server handed out a router:\n{out[-1500:]}"
    ok, out = ping_from(nx, a1.vm, sid, a2.ip)
    assert ok, f"A1 cannot ping A2 ({a2.ip}):\n{out[-1500:]}"
    ok, out = ping_from(nx, a2.vm, sid, a1.ip)
    assert ok, f"A2 cannot ping A1 ({a1.ip}):\n{out[-1500:]}"
    ok, out = ping_from(nx, a1.vm, sid, NET_A["ip_begin"], count=1)
    assert ok, f"A1 cannot reach its network's host end:\n{out[-1500:]}"
    assert nx.VIF.get_metrics(a1.vif) != NULL


def test_guest_on_another_vlan_cannot_reach_them(world, nx, sid, lan, guests):
    a1, a2, c = guests["A1"], guests["A2"], guests["C"]
    assert in_range(c.ip, NET_B) and c.console_ip == c.ip, c
    assert c.ip not in (a1.ip, a2.ip)
    taps = [p for p in world.ports(lan.bridge_b) if world.link(p)["_kind"] == "tun"]
    assert len(taps) == 1, world.ports(lan.bridge_b)
    # C works: it reaches its own network's host end.
    ok, out = ping_from(nx, c.vm, sid, NET_B["ip_begin"], count=1)
    assert ok, f"C cannot reach its network's host end {NET_B['ip_begin']}:\n{out[-1500:]}"
    # C treats A's whole /24 as on its own link, as A's guests treat C: only layer 2 separates them.
    rc, out = guest_run(nx, c.vm, sid, "ip route add 10.77.0.0/24 dev eth0")
    assert rc == 0, out
    for other in (a1, a2):
        ok, out = ping_from(nx, c.vm, sid, other.ip)
        assert not ok, f"C (VLAN {TAG_B}) reached {other.name} {other.ip} (VLAN {TAG_A}):\n{out[-1500:]}"
        # Not refused for want of a route (that would prove nothing): the ARP query went unanswered.
        assert "network is unreachable" not in out.lower(), out[-1500:]
    ok, out = ping_from(nx, a1.vm, sid, c.ip)
    assert not ok, f"A1 (VLAN {TAG_A}) reached C {c.ip} (VLAN {TAG_B}):\n{out[-1500:]}"
    # ... and still its own host end afterwards.
    ok, out = ping_from(nx, c.vm, sid, NET_B["ip_begin"], count=1)
    assert ok, out[-1500:]


def test_network_with_plugged_vifs_cannot_be_destroyed(world, nengine, nx, lan, guests):
    with nothing_changes(world, nx, nengine):
        with xapitest.failure_code("NETWORK_CONTAINS_VIF"):
            nx.network.destroy(lan.a)
    assert lan.a in nx.network.get_all()


def test_hot_plugged_vif_appears_in_the_guest_and_unplug_removes_it(world, nx, sid, guests):
    a1 = guests["A1"]
    net = new_network(nx, NET_H, name="net-H")
    bridge = nx.network.get_bridge(net)
    try:
        vif = new_vif(nx, a1.vm, net, device="1")
        mac, ip = nx.VIF.get_MAC(vif), reserved_ip(nx, vif)
        assert in_range(ip, NET_H)
        at = networld.console_mark(nx, a1.vm, sid)
        t0 = time.monotonic()
        nx.VIF.plug(vif)
        t_plug = time.monotonic() - t0
        assert nx.VIF.get_currently_attached(vif)
        m = wait_console(nx, a1.vm, sid, rf"DROVER-GUEST nic=(eth\d+) mac={re.escape(mac)}", at, timeout=30)
        t_seen = time.monotonic() - t0
        assert m.group(1) == "eth1", m.group(0)
        m = wait_console(nx, a1.vm, sid, r"DROVER-GUEST ip=eth1:(\S+)", at, timeout=45)
        assert m.group(1) == ip, f"eth1 got {m.group(1)}, reserved was {ip}"
        print(f"VIF.plug returned in {t_plug * 1000:.0f} ms, the guest saw eth1 after {t_seen:.1f} s")
        taps = [p for p in world.ports(bridge) if world.link(p)["_kind"] == "tun"]
        assert len(taps) == 1, world.ports(bridge)
        ok, out = ping_from(nx, a1.vm, sid, NET_H["ip_begin"], count=1)
        assert ok, f"no traffic over the hot-plugged NIC:\n{out[-1500:]}"
        wait_for(lambda: "1/ip" in guest_networks(nx, a1.vm), 30, "guest metrics to show 1/ip")
        at = networld.console_mark(nx, a1.vm, sid)
        nx.VIF.unplug(vif)
        assert not nx.VIF.get_currently_attached(vif)
        wait_console(nx, a1.vm, sid, r"DROVER-GUEST nic=eth1 removed", at, timeout=30)
        wait_for(lambda: not [p for p in world.ports(bridge) if world.link(p)["_kind"] == "tun"], 10,
                 f"the tap to leave {bridge}")
        nx.VIF.destroy(vif)
        # A new NIC in its place (another MAC; its reservation may be the address just freed) gets the
        # address reserved for it, as every VIF does.
        vif2 = new_vif(nx, a1.vm, net, device="1")
        mac2, ip2 = nx.VIF.get_MAC(vif2), reserved_ip(nx, vif2)
        at = networld.console_mark(nx, a1.vm, sid)
        nx.VIF.plug(vif2)
        wait_console(nx, a1.vm, sid, rf"DROVER-GUEST nic=eth1 mac={re.escape(mac2)}", at, timeout=30)
        m = wait_console(nx, a1.vm, sid, r"DROVER-GUEST ip=eth1:(\S+)", at, timeout=45)
        assert m.group(1) == ip2, f"the second NIC got {m.group(1)}, its reservation is {ip2} (the first NIC had {ip})"
        at = networld.console_mark(nx, a1.vm, sid)
        nx.VIF.unplug(vif2)
        wait_console(nx, a1.vm, sid, r"DROVER-GUEST nic=eth1 removed", at, timeout=30)
        nx.VIF.destroy(vif2)
        # eth0 is untouched by all this.
        ok, out = ping_from(nx, a1.vm, sid, guests["A2"].ip, count=1)
        assert ok, out[-1500:]
    finally:
        for v in nx.network.get_VIFs(net):
            with contextlib.suppress(XenAPI.Failure):
                if nx.VIF.get_currently_attached(v):
                    nx.VIF.unplug(v)
            with contextlib.suppress(XenAPI.Failure):
                nx.VIF.destroy(v)
        nx.network.destroy(net)
    assert bridge not in world.links()


def test_vif_move_is_live_and_ip_configuration_is_recorded(world, nx, sid, guests):
    a1, a2 = guests["A1"], guests["A2"]
    net_a = nx.VIF.get_network(a1.vif)
    net = new_network(nx, NET_H, name="net-move")
    bridge, bridge_a = nx.network.get_bridge(net), nx.network.get_bridge(net_a)
    try:
        taps_before = {p for p in world.ports(bridge_a) if world.link(p)["_kind"] == "tun"}
        nx.VIF.move(a1.vif, net)
        assert nx.VIF.get_network(a1.vif) == net and nx.VIF.get_currently_attached(a1.vif)
        assert in_range(reserved_ip(nx, a1.vif), NET_H)
        moved = taps_before - {p for p in world.ports(bridge_a) if world.link(p)["_kind"] == "tun"}
        assert len(moved) == 1 and moved <= set(world.ports(bridge)), (moved, world.ports(bridge))
        ok, out = ping_from(nx, a1.vm, sid, a2.ip, count=1)
        assert not ok, f"A1 still reaches A2 after its NIC moved to another network:\n{out[-800:]}"
        nx.VIF.move(a1.vif, net_a)
        assert nx.VIF.get_network(a1.vif) == net_a and in_range(reserved_ip(nx, a1.vif), NET_A)
        assert moved <= set(world.ports(bridge_a))
        ok, out = ping_from(nx, a1.vm, sid, a2.ip, count=2)
        assert ok, f"A1 does not reach A2 once its NIC is back:\n{out[-800:]}"
    finally:
        if nx.VIF.get_network(a1.vif) != net_a:
            nx.VIF.move(a1.vif, net_a)
        nx.network.destroy(net)

    vm = tiny_vm(nx)
    try:
        vif = new_vif(nx, vm, net_a)
        nx.VIF.configure_ipv4(vif, "Static", "10.77.0.200/24", "10.77.0.1")
        r = nx.VIF.get_record(vif)
        assert (r["ipv4_configuration_mode"], r["ipv4_addresses"], r["ipv4_gateway"]) == (
            "Static", ["10.77.0.200/24"], "10.77.0.1")
        with xapitest.failure_code("INVALID_CIDR_ADDRESS_SPECIFIED"):
            nx.VIF.configure_ipv4(vif, "Static", "10.77.0.200", "")
        with xapitest.failure_code("INVALID_IP_ADDRESS_SPECIFIED"):
            nx.VIF.configure_ipv4(vif, "Static", "10.77.0.200/24", "not-an-address")
        nx.VIF.configure_ipv6(vif, "Static", "fd00::5/64", "")
        assert nx.VIF.get_ipv6_addresses(vif) == ["fd00::5/64"]
    finally:
        nx.VM.destroy(vm)


def test_pif_messages_refuse_what_drover_does_not_own(world, nengine, nx):
    host = xapitest.the_host(nx)
    eth0, eth1 = pif_by_device(nx, "eth0"), pif_by_device(nx, "eth1")
    with nothing_changes(world, nx, nengine):
        with xapitest.failure_code("PIF_IS_MANAGEMENT_INTERFACE"):
            nx.PIF.reconfigure_ipv6(eth0, "Static", "fd00::2/64", "", "")
        with xapitest.failure_code("PIF_CONFIGURATION_ERROR"):
            nx.PIF.set_property(eth1, "gro", "off")
        with xapitest.failure_code("DUPLICATE_PIF_DEVICE_NAME"):
            nx.PIF.introduce(host, "", "eth1", True)
        with xapitest.failure_code("PIF_DEVICE_NOT_FOUND"):
            nx.PIF.introduce(host, "", "eth9", True)
    # A forgotten interface comes back through PIF.introduce with its network.
    mac = nx.PIF.get_MAC(eth1)
    net1 = nx.PIF.get_network(eth1)
    nx.PIF.forget(eth1)
    with contextlib.suppress(XenAPI.Failure):
        nx.network.destroy(net1)
    again = nx.PIF.introduce(host, mac, "eth1", True)
    assert nx.PIF.get_device(again) == "eth1" and nx.PIF.get_MAC(again) == mac
    assert nx.PIF.get_network(again) != "OpaqueRef:NULL"


# ---------------------------------------------------------------------------------------------
# and nothing left behind


def test_everything_destroyed_leaves_nothing_behind(world, nengine, nx, lan, guests):
    ours = {n: l for n, l in world.links().items() if (l.get("ifalias") or "").startswith("drover")}
    aliases = {l["ifalias"] for l in ours.values()}
    assert ours, "Drover's devices carry no drover alias"
    qemu = [qemu_pid(nengine, nx, g.vm) for g in guests.values()]
    for g in guests.values():
        nx.VM.hard_shutdown(g.vm)
        assert not nx.VIF.get_currently_attached(g.vif)
        nx.VIF.destroy(g.vif)
        nx.VM.destroy(g.vm)
    for vlan in (lan.vlan_a, lan.vlan_b):
        nx.VLAN.destroy(vlan)
    assert not any(nx.PIF.get_VLAN(p) not in ("-1", -1) for p in nx.PIF.get_all())
    for net in (lan.a, lan.b):
        nx.network.destroy(net)
    # Anything an earlier (failed) test left: VMs with their VIFs, VLANs, networks.
    _tear_down_objects(nx)
    assert nx.VIF.get_all() == [] and nx.VLAN.get_all() == []
    # Whatever networks remain are the PIFs' own (not destroyable while their PIF exists).
    remaining = nx.network.get_all_records()
    assert all(r["PIFs"] for r in remaining.values()), [r["name_label"] for r in remaining.values() if not r["PIFs"]]
    kept = {r["bridge"] for r in remaining.values()}
    links = world.links()
    leftovers = [f"{n} ({l['_kind']})" for n, l in links.items()
                 if l["_kind"] in ("tun", "vxlan", "vlan", "bond", "dummy")
                 or (l["_kind"] == "bridge" and n not in kept)
                 or (n in ours and n not in kept)]
    assert not leftovers, f"left in {world.ns}: {leftovers}"
    # The uplinks are as they were before Drover started.
    for dev in ("eth0", "eth1", "eth2"):
        assert world.state()["links"][dev] == world.pristine["links"][dev], dev
    wait_for(lambda: not dnsmasqs_of(nengine.data_dir), 10, "the engine's dnsmasq processes to go")
    assert not dnsmasqs_of(nengine.data_dir)
    assert not lease_files(nengine.data_dir), lease_files(nengine.data_dir)
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and networld.proc_argv(p) for p in qemu), 20,
             "the guests' QEMU processes to go")
    # Nothing of it ever showed up in the root namespace.
    assert not [l["ifname"] for l in networld.root_links() if l.get("ifalias") in aliases]
    assert nengine.alive


def test_restart_after_a_crash_restores_networks_and_removes_only_its_own_leftovers(world, nengine, nx):
    """kill -9 of the engine; meanwhile a network's bridge vanishes, a bridge with Drover's mark that
    no network owns appears (a crash leftover), and so does a bridge of someone else: the next start
    makes the network's bridge and DHCP again, removes the leftover, and leaves the other alone."""
    cfg = {"ip_begin": "10.79.0.1", "ip_end": "10.79.0.30", "netmask": "255.255.255.0"}
    net = new_network(nx, cfg, name="survivor")
    bridge = nx.network.get_bridge(net)
    alias = world.link(bridge)["ifalias"]
    # A crash alone: the bridge and its DHCP server stay as they are, and are not made twice.
    dhcp = set(dnsmasqs_of(nengine.data_dir))
    assert len(dhcp) == 1, dhcp
    state = world.state()
    nengine.kill9()
    nengine.start()
    assert set(dnsmasqs_of(nengine.data_dir)) == dhcp, "the DHCP server was not kept (or made twice) over a restart"
    assert not diff_state(state, world.state()), diff_state(state, world.state())
    # Then a crash with changes while the engine is away.
    nengine.kill9()
    for pid in dnsmasqs_of(nengine.data_dir):  # as if the host had rebooted
        os.kill(pid, 9)
    world.ip("link", "del", bridge)
    world.ip("link", "add", "name", "drvleft0", "type", "bridge")
    world.ip("link", "set", "drvleft0", "alias", alias)
    world.ip("link", "add", "name", "drtown1", "type", "bridge")
    world.ip("link", "set", "drtown1", "alias", "made-by-the-test")
    try:
        foreign = world.state()["links"]["drtown1"]
        nengine.start()
        x = nengine.session().xenapi
        links = world.links()
        assert "drvleft0" not in links, "a leftover bridge with Drover's mark survived the start"
        assert world.state()["links"].get("drtown1") == foreign, "the start touched someone else's bridge"
        assert links.get(bridge, {}).get("_kind") == "bridge", f"the network's bridge {bridge} was not made again"
        assert links[bridge]["_ipv4"] == ["10.79.0.1/24"]
        wait_for(lambda: len(dnsmasqs_of(nengine.data_dir)) == 1, 10, "one dnsmasq")
        x.network.destroy(net)
        assert bridge not in world.links()
        wait_for(lambda: not dnsmasqs_of(nengine.data_dir), 10, "no dnsmasq")
        assert not lease_files(nengine.data_dir)
    finally:
        world.ip("link", "del", "drtown1", check=False)
        world.ip("link", "del", "drvleft0", check=False)
