"""Every call of z/VM Cloud Connector 1.6.3 through the real client.

The real `zvmconnector` client (PyPI `zVMCloudConnector==1.6.3`) drives `drover serve --host-driver
sim --zvm-listen ... --zvm-socket-listen ...`: each of the calls of `data/zvm-api-table.md` (the
client's 71 calls and `token_create`) is made at least once, with assertions on the shapes of the
outputs and on the inventory they change, which is cross-checked through XenAPI (the same engine's
XenAPI listener). `test_every_call_of_the_table_was_made` checks the coverage at the end.

Token mode (`--zvm-auth token --zvm-token-file F`) and the socket protocol
(`connection_type='socket'`) have tests of their own.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib
import re
import socket
import time

import jwt
import pytest
import requests
from zvmconnector import connector, restclient

import xapitest

# The admin token of the recorded exchanges is shorter than PyJWT likes for HS256.
pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is .* bytes long")

DATA = pathlib.Path(__file__).resolve().parent / "data"
GiB = 1 << 30
CYLINDER = 737280

AUTH_MSG = (
    "This server could not verify that you are authorized to access the document you requested. "
    "Either you supplied the wrong credentials (e.g., bad password), or your browser does not "
    "understand how to supply the credentials required."
)
UNAUTHORIZED = {"overallRC": 400, "rc": 400, "rs": 401, "modID": 120, "output": "", "errmsg": AUTH_MSG}


def table_apis() -> list[str]:
    """The `api` column of the api table (72 rows)."""
    rows = []
    for line in (DATA / "zvm-api-table.md").read_text().splitlines():
        m = re.match(r"^\| ([a-z_]+) \|", line)
        if m and m.group(1) != "api":
            rows.append(m.group(1))
    return rows


CALLED: set[str] = set()


def codes(r):
    return (r["overallRC"], r["modID"], r["rc"], r["rs"])


class Zvm:
    """The real client, recording which calls were made."""

    def __init__(self, port, **kw):
        self.conn = connector.ZVMConnector("127.0.0.1", port, **kw)

    def raw(self, api, *args, **kwargs):
        CALLED.add(api)
        r = self.conn.send_request(api, *args, **kwargs)
        assert set(r) == {"overallRC", "modID", "rc", "rs", "errmsg", "output"}, r
        return r

    def __call__(self, api, *args, **kwargs):
        r = self.raw(api, *args, **kwargs)
        assert r["overallRC"] == 0 and r["errmsg"] == "" and r["modID"] is None, (api, args, kwargs, r)
        return r["output"]

    def fails(self, api, *args, **kwargs):
        r = self.raw(api, *args, **kwargs)
        assert r["overallRC"] != 0 and r["output"] == "", (api, r)
        return r


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def zengine(zvm_engine):
    return zvm_engine


@pytest.fixture(scope="module")
def zvm(zengine):
    return Zvm(zengine.zvm_port)


@pytest.fixture(scope="module")
def x(zengine):
    s = zengine.session()
    yield s.xenapi
    if zengine.alive:
        s.xenapi.session.logout()


@pytest.fixture(scope="module")
def pool_name(x):
    """The default disk pool: the pool's default SR, as `ECKD:<NAME>`."""
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    return x.SR.get_name_label(sr).upper()


def vm_of(x, userid):
    vms = x.VM.get_by_name_label(userid)
    assert len(vms) == 1, (userid, vms)
    return vms[0]


def minidisks(x, vm):
    """{vdev: (VBD record, VDI record)} of a VM's disks that carry a z/VM vdev."""
    out = {}
    for vbd in x.VM.get_VBDs(vm):
        rec = x.VBD.get_record(vbd)
        vdev = rec["other_config"].get("zvm_vdev")
        if vdev and rec["type"] == "Disk":
            out[vdev] = (rec, x.VDI.get_record(rec["VDI"]))
    return out


def nics(x, vm):
    """{vdev: VIF record} of a VM."""
    return {x.VIF.get_other_config(v).get("zvm_vdev"): x.VIF.get_record(v) for v in x.VM.get_VIFs(vm)}


# ---------------------------------------------------------------------------------------------
# version, host, disk pools


def test_version_and_the_client_table(zvm):
    assert zvm("version") == {"version": "1.6.3", "api_version": "1.0", "max_version": "1.0",
                              "min_version": "1.0"}
    apis = table_apis()
    assert len(apis) == 72 and len(set(apis)) == 72
    # The table is the client's own list of calls.
    assert set(apis) == set(restclient.DATABASE)


def test_host_info_and_disk_pools_reflect_the_inventory(zvm, x, pool_name):
    info = zvm("host_get_info")
    assert set(info) == {"zcc_userid", "zvm_host", "vcpus", "vcpus_used", "cpu_info", "memory_mb",
                         "memory_mb_used", "hypervisor_type", "hypervisor_version",
                         "hypervisor_hostname", "ipl_time", "disk_total", "disk_used",
                         "disk_available"}
    [host] = x.host.get_all()
    assert info["zvm_host"] == x.host.get_name_label(host).upper()
    assert info["hypervisor_hostname"] == x.host.get_hostname(host)
    assert info["vcpus"] == len(x.host.get_host_CPUs(host)) > 0
    metrics = x.host.get_metrics(host)
    assert info["memory_mb"] == int(x.host_metrics.get_memory_total(metrics)) >> 20
    assert 0 <= info["memory_mb_used"] <= info["memory_mb"]
    assert info["hypervisor_type"] == "zvm" and isinstance(info["hypervisor_version"], int)
    assert set(info["cpu_info"]) == {"architecture", "cec_model"}
    assert re.fullmatch(r"IPL at \d\d/\d\d/\d\d \d\d:\d\d:\d\d UTC", info["ipl_time"]), info

    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    size, used = int(x.SR.get_physical_size(sr)), int(x.SR.get_physical_utilisation(sr))
    gib = lambda b: (b + (1 << 29)) >> 30  # noqa: E731
    figures = {"disk_total": gib(size), "disk_used": gib(used), "disk_available": gib(size - used)}
    assert figures["disk_total"] > 0
    assert {k: info[k] for k in figures} == figures
    assert zvm("host_diskpool_get_info") == figures
    # Named explicitly, in both kinds.
    pool_word = re.sub(r"\W", "_", pool_name)
    for kind in ("ECKD", "FBA"):
        assert zvm("host_diskpool_get_info", disk_pool=f"{kind}:{pool_word}") == figures
    r = zvm.fails("host_diskpool_get_info", disk_pool="ECKD:nopool")
    assert codes(r) == (8, 1, 400, 4), r

    vols = zvm("host_get_diskpool_volumes")
    label = re.sub(r"[^A-Za-z0-9]", "", pool_name)[:6].upper()
    assert vols == {"diskpool_volumes": label}
    vol = zvm("host_get_volume_info", volume=label)
    assert set(vol) == {"volume_type", "volume_size"}
    assert vol["volume_type"].startswith("3390-")
    assert int(vol["volume_size"]) == size // CYLINDER   # whole cylinders
    assert zvm("host_get_ssi_info") == []   # a pool of one host is not an SSI cluster
    assert isinstance(zvm("host_get_guest_list"), list)


# ---------------------------------------------------------------------------------------------
# guests


def test_guest_create_is_a_vm_with_minidisks(zvm, x, pool_name):
    disks = zvm("guest_create", "zapi1", 2, 512, max_cpu=4, max_mem="2G", user_profile="osdflt",
                disk_list=[{"size": "1g", "is_boot_disk": True},
                           {"size": "100m", "format": "ext4"}])
    assert [d["vdev"] for d in disks] == ["0100", "0101"]
    assert all(d["disk_pool"].upper().startswith("ECKD:") for d in disks), disks
    assert disks[1]["format"] == "ext4" and disks[1]["size"] == "100m"
    assert disks[0]["format"] == "none"   # a boot disk is never formatted, and the answer says so
    # The original's dict, in its order: the given keys, then what create_vm and add_mdisks add.
    assert list(disks[0]) == ["size", "is_boot_disk", "format", "disk_pool", "vdev"], disks
    assert list(disks[1]) == ["size", "format", "disk_pool", "vdev"], disks
    assert "ZAPI1" in zvm("guest_list")
    assert "ZAPI1" in zvm("host_get_guest_list")

    vm = vm_of(x, "ZAPI1")
    rec = x.VM.get_record(vm)
    assert (rec["VCPUs_at_startup"], rec["VCPUs_max"]) == ("2", "4")
    assert int(rec["memory_dynamic_max"]) == 512 << 20 and int(rec["memory_static_max"]) == 2 * GiB
    md = minidisks(x, vm)
    assert sorted(md) == ["0100", "0101"]
    assert md["0100"][0]["bootable"] is True
    # ECKD sizes are whole 3390 cylinders.
    assert int(md["0100"][1]["virtual_size"]) == -(-GiB // CYLINDER) * CYLINDER
    assert int(md["0101"][1]["virtual_size"]) == -(-(100 << 20) // CYLINDER) * CYLINDER

    assert zvm("guest_get_power_state", "ZAPI1") == "off"
    assert zvm("guest_get_power_state_real", "zapi1") == "off"
    info = zvm("guest_get_info", "ZAPI1")
    assert set(info) == {"power_state", "max_mem_kb", "mem_kb", "num_cpu", "cpu_time_us",
                         "online_cpu_num", "os_distro", "kernel_info"}
    assert info["power_state"] == "off" and info["max_mem_kb"] == 2 * GiB >> 10
    assert info["num_cpu"] == 2

    direct = zvm("guest_get_definition_info", "ZAPI1")["user_direct"]
    assert direct[0].split()[:2] == ["USER", "ZAPI1"], direct
    assert direct[0].split()[3:5] == ["512M", "2048M"], direct
    assert "INCLUDE OSDFLT" in direct and "MACHINE ESA 4" in direct and "IPL 0100" in direct
    assert [l for l in direct if l.startswith("COMMAND DEFINE CPU")] == [
        "COMMAND DEFINE CPU 00 TYPE IFL", "COMMAND DEFINE CPU 01 TYPE IFL"]
    mdisks = [l.split() for l in direct if l.startswith("MDISK ")]
    assert [m[1:5] for m in mdisks] == [["0100", "3390", "0", str(-(-GiB // CYLINDER))],
                                        ["0101", "3390", "0", str(-(-(100 << 20) // CYLINDER))]]
    assert all(len(m) == 7 and m[6] == "MR" for m in mdisks), mdisks
    masked = zvm("guest_get_user_direct", "ZAPI1")["user_direct"]
    assert masked[0].split()[2] == "******" and direct[0].split()[2] != "******"
    assert masked[1:] == direct[1:]

    # Creating it again: the directory manager's "already defined".
    r = zvm.fails("guest_create", "ZAPI1", 1, 256)
    assert codes(r) == (8, 1, 400, 8), r


def test_guest_errors_of_unknown_guests(zvm):
    for api, args in [("guest_get_info", ["ZNONE"]), ("guest_start", ["ZNONE"]),
                      ("guest_get_power_state", ["ZNONE"]), ("guest_get_definition_info", ["ZNONE"])]:
        r = zvm.fails(api, *args)
        assert codes(r) == (404, 10, 404, 1) and r["errmsg"] == "Guest 'ZNONE' does not exist.", r
    # Deleting an unknown guest succeeds, as in the original.
    assert zvm("guest_delete", "ZNONE") == ""


def test_power_state_changes_show_in_xenapi(zvm, x):
    zvm("guest_create", "ZPWR", 1, 256, disk_list=[{"size": "200m"}])
    vm = vm_of(x, "ZPWR")
    r = zvm.fails("guest_pause", "ZPWR")
    assert codes(r) == (300, 10, 300, 5), r
    assert zvm("guest_start", "ZPWR") == ""
    assert x.VM.get_power_state(vm) == "Running"
    assert zvm("guest_get_power_state", "ZPWR") == "on"
    assert zvm("guest_start", "ZPWR") == ""   # already on: nothing to do
    zvm("guest_pause", "ZPWR")
    assert x.VM.get_power_state(vm) == "Paused"
    assert zvm("guest_get_power_state", "ZPWR") == "on"   # logged on
    zvm("guest_unpause", "ZPWR")
    assert x.VM.get_power_state(vm) == "Running"
    zvm("guest_reboot", "ZPWR")
    zvm("guest_reset", "ZPWR")
    assert x.VM.get_power_state(vm) == "Running"
    zvm("guest_softstop", "ZPWR", timeout=30, poll_interval=1)
    assert x.VM.get_power_state(vm) == "Halted"
    assert zvm("guest_get_power_state_real", "ZPWR") == "off"
    zvm("guest_start", "ZPWR")
    zvm("guest_stop", "ZPWR")
    assert x.VM.get_power_state(vm) == "Halted"
    zvm("guest_stop", "ZPWR")   # already off
    zvm("guest_delete", "ZPWR")
    assert x.VM.get_by_name_label("ZPWR") == []
    assert "ZPWR" not in zvm("guest_list")


def test_resize_cpus_and_memory(zvm, x):
    zvm("guest_create", "ZRSZ", 1, 256, max_cpu=4, max_mem="1G")
    vm = vm_of(x, "ZRSZ")
    # Live resizes need a logged-on guest.
    for api, arg in [("guest_live_resize_cpus", 2), ("guest_live_resize_mem", "512m")]:
        r = zvm.fails(api, "ZRSZ", arg)
        assert codes(r) == (409, 10, 409, 1), r
        assert r["errmsg"] == "Guest 'ZRSZ' is not in active status."
    zvm("guest_resize_cpus", "ZRSZ", 3)
    assert x.VM.get_VCPUs_at_startup(vm) == "3"
    r = zvm.fails("guest_resize_cpus", "ZRSZ", 5)   # above max_cpu
    assert r["overallRC"] == 409 and r["modID"] == 10, r
    zvm("guest_resize_mem", "ZRSZ", "512m")
    assert int(x.VM.get_memory_dynamic_max(vm)) == 512 << 20
    r = zvm.fails("guest_resize_mem", "ZRSZ", "2g")   # above max_mem
    assert r["overallRC"] == 409 and r["modID"] == 10, r
    zvm("guest_resize_cpus", "ZRSZ", 1)
    zvm("guest_start", "ZRSZ")
    zvm("guest_live_resize_cpus", "ZRSZ", 2)
    assert int(x.VM_metrics.get_VCPUs_number(x.VM.get_metrics(vm))) == 2
    assert zvm("guest_get_info", "ZRSZ")["num_cpu"] == 2
    zvm("guest_live_resize_mem", "ZRSZ", "768m")
    assert int(x.VM.get_memory_dynamic_max(vm)) == 768 << 20
    assert zvm("guest_get_info", "ZRSZ")["mem_kb"] == 768 << 10
    zvm("guest_delete", "ZRSZ")   # deleting a running guest stops it first
    assert x.VM.get_by_name_label("ZRSZ") == []


def test_disks_add_configure_and_delete(zvm, x):
    zvm("guest_create", "ZDSK", 1, 256, disk_list=[{"size": "100m", "is_boot_disk": True}])
    vm = vm_of(x, "ZDSK")
    made = zvm("guest_create_disks", "ZDSK", [{"size": "50m", "format": "ext4"}, {"size": "200"}])
    assert [d["vdev"] for d in made] == ["0101", "0102"]
    # A size in cylinders is answered in megabytes, as the original restates it.
    assert [d["size"] for d in made] == ["50m", "140.6M"]
    md = minidisks(x, vm)
    assert sorted(md) == ["0100", "0101", "0102"]
    assert md["0101"][1]["other_config"]["zvm_format"] == "ext4"
    zvm("guest_config_minidisks", "ZDSK", [{"vdev": "0101", "format": "ext3", "mntdir": "/mnt/0101"}])
    oc = x.VDI.get_other_config(minidisks(x, vm)["0101"][0]["VDI"])
    assert oc["zvm_format"] == "ext3" and oc["zvm_mntdir"] == "/mnt/0101"
    gone_vdi = md["0102"][0]["VDI"]
    zvm("guest_delete_disks", "ZDSK", ["0102"])
    assert sorted(minidisks(x, vm)) == ["0100", "0101"]
    assert gone_vdi not in x.VDI.get_all()
    direct = zvm("guest_get_definition_info", "ZDSK")["user_direct"]
    assert [l.split()[1] for l in direct if l.startswith("MDISK")] == ["0100", "0101"]
    # The disks go with the guest.
    vdis = [rec["VDI"] for rec, _ in minidisks(x, vm).values()]
    zvm("guest_delete", "ZDSK")
    assert not set(vdis) & set(x.VDI.get_all())


def test_nics_vswitches_and_grants(zvm, x):
    zvm("guest_create", "ZNET", 1, 256, disk_list=[{"size": "100m"}])
    vm = vm_of(x, "ZNET")
    assert zvm("guest_create_nic", "ZNET") == "1000"
    assert zvm("guest_create_nic", "ZNET", mac_addr="02:00:00:ab:cd:ef") == "1003"
    r = zvm.fails("guest_create_nic", "ZNET", vdev="1004")   # overlaps 1003-1005
    assert codes(r) == (409, 20, 409, 6), r
    assert sorted(nics(x, vm)) == ["1000", "1003"]
    assert nics(x, vm)["1003"]["MAC"] == "02:00:00:ab:cd:ef"

    zvm("vswitch_create", "VSWA")
    assert "VSWA" in zvm("vswitch_get_list")
    r = zvm.fails("vswitch_create", "VSWA")
    assert codes(r) == (8, 1, 212, 36), r
    zvm("guest_nic_couple_to_vswitch", "ZNET", "1000", "VSWA")
    zvm("vswitch_grant_user", "VSWA", "ZNET")
    q = zvm("vswitch_query", "VSWA")
    assert q["switch_name"] == "VSWA" and q["vlan_awareness"] == "UNAWARE"
    assert "ZNET" in q["authorized_users"], q
    assert {"port_num", "prom_mode", "osd_sim", "vlan_count", "vlan_ids"} <= set(q["authorized_users"]["ZNET"])
    # The vswitch is a network; the coupled NIC's VIF is on it.
    [net] = [n for n in x.network.get_all() if x.network.get_name_label(n) == "VSWA"]
    assert nics(x, vm)["1000"]["network"] == net
    r = zvm.fails("vswitch_set_vlan_id_for_user", "VSWA", "ZNET", 100)   # UNAWARE
    assert codes(r) == (409, 20, 409, 5), r
    zvm("vswitch_create", "VSWB", vid=100, port_type="TRUNK")
    zvm("vswitch_grant_user", "VSWB", "ZNET")
    zvm("vswitch_set_vlan_id_for_user", "VSWB", "ZNET", 200)
    user = zvm("vswitch_query", "VSWB")["authorized_users"]["ZNET"]
    assert [int(v) for v in user["vlan_ids"]] == [200], user   # parsed text, as the original

    table = zvm("guests_get_nic_info", userid="ZNET")
    assert sorted((n["interface"], n["switch"]) for n in table) == [("1000", "VSWA"), ("1003", None)], table
    assert all(set(n) == {"userid", "interface", "switch", "port", "comments"} for n in table)
    assert {n["userid"] for n in zvm("guests_get_nic_info", vswitch="VSWA")} == {"ZNET"}

    zvm("guest_start", "ZNET")
    adapters = zvm("guest_get_adapters_info", "ZNET")["adapters"]
    by = {a["adapter_address"]: a for a in adapters}
    assert sorted(by) == ["1000", "1003"]
    assert by["1000"]["lan_name"] == "VSWA" and by["1000"]["adapter_status"] == "02"
    assert by["1003"]["mac_address"] == "02:00:00:AB:CD:EF"

    stats = zvm("guest_inspect_stats", "ZNET")
    assert set(stats) == {"ZNET"}
    assert set(stats["ZNET"]) == {"guest_cpus", "used_cpu_time_us", "elapsed_cpu_time_us",
                                  "min_cpu_count", "max_cpu_limit", "samples_cpu_in_use",
                                  "samples_cpu_delay", "used_mem_kb", "max_mem_kb", "min_mem_kb",
                                  "shared_mem_kb"}
    assert stats["ZNET"]["guest_cpus"] == 1 and stats["ZNET"]["max_mem_kb"] == 256 << 10
    assert zvm("guest_inspect_stats", ["ZNET", "ZNONE"]).keys() == {"ZNET"}
    vnics = zvm("guest_inspect_vnics", "ZNET")
    assert [v["nic_vdev"] for v in vnics["ZNET"]] == ["1000"], vnics
    assert vnics["ZNET"][0]["vswitch_name"] == "VSWA"
    assert set(vnics["ZNET"][0]) == {"vswitch_name", "nic_vdev", "nic_fr_rx", "nic_fr_tx",
                                     "nic_fr_rx_dsc", "nic_fr_tx_dsc", "nic_fr_rx_err",
                                     "nic_fr_tx_err", "nic_rx", "nic_tx"}

    zvm("guest_nic_uncouple_from_vswitch", "ZNET", "1000")
    assert nics(x, vm)["1000"]["network"] != net
    zvm("vswitch_revoke_user", "VSWA", "ZNET")
    assert "ZNET" not in zvm("vswitch_query", "VSWA")["authorized_users"]
    zvm("guest_delete_nic", "ZNET", "1003")
    assert sorted(nics(x, vm)) == ["1000"]
    zvm("vswitch_delete", "VSWA")
    zvm("vswitch_delete", "VSWB")
    assert not {"VSWA", "VSWB"} & set(zvm("vswitch_get_list"))
    r = zvm.fails("vswitch_query", "VSWA")
    assert codes(r) == (404, 20, 404, 1), r

    # A network interface: the NIC with its static IPv4 configuration.
    nets = [{"ip_addr": "192.168.95.10", "cidr": "192.168.95.0/24", "gateway_addr": "192.168.95.1",
             "nic_vdev": "1006", "mac_addr": "02:00:00:12:34:56"}]
    zvm("guest_create_network_interface", "ZNET", "rhel8", nets)
    vif = nics(x, vm)["1006"]
    assert vif["MAC"] == "02:00:00:12:34:56"
    assert vif["other_config"]["zvm_ip"] == "192.168.95.10"
    zvm("guest_delete_network_interface", "ZNET", "rhel8", "1006")
    assert "1006" not in nics(x, vm)
    zvm("guest_delete", "ZNET")


def test_guest_actions_register_migrate_console_grow(zvm, x):
    zvm("guest_create", "ZACT", 1, 256, disk_list=[{"size": "100m", "is_boot_disk": True}])
    vm = vm_of(x, "ZACT")
    zvm("guest_register", "ZACT", json.dumps({"os_version": "rhel8"}), "1")
    oc = x.VM.get_other_config(vm)
    assert oc["zvm_registered"] == "true" and oc["zvm_os_version"] == "rhel8", oc
    assert zvm("guest_get_info", "ZACT")["os_distro"] == "rhel8"
    zvm("guest_deregister", "ZACT")
    assert "zvm_registered" not in x.VM.get_other_config(vm)

    # The console of a guest that never ran is empty; the simulated host keeps no console log.
    assert zvm("guest_get_console_output", "ZACT") == ""

    zvm("guest_grow_root_volume", "ZACT", "rhel8")
    assert x.VM.get_other_config(vm)["zvm_grow_root"] == "true"

    # Live migration: an off guest is not active (409/10/409/1); a logged-on one cannot leave
    # the host: the relocation fails with the original's SMT error shape 300/10/300/1.
    r = zvm.fails("guest_live_migrate", "ZACT", "ZCCUSER", "SYS2", {"maxtotal": 300}, "move")
    assert codes(r) == (409, 10, 409, 1), r
    zvm("guest_start", "ZACT")
    for op in ("move", "test", "MOVE"):
        r = zvm.fails("guest_live_migrate", "ZACT", "ZCCUSER", "SYS2", {"maxtotal": 300}, op)
        assert codes(r) == (300, 10, 300, 1), r
        assert "SYS2" in r["errmsg"] and "ZACT" in r["errmsg"]
    r = zvm.fails("guest_live_migrate", "ZACT", "ZCCUSER", "SYS2", {}, "fly")
    assert codes(r) == (100, 400, 100, 3), r
    assert x.VM.get_power_state(vm) == "Running"
    zvm("guest_delete", "ZACT")


def test_a_vm_made_through_xenapi_is_a_guest(zvm, x):
    vm = x.VM.create(xapitest.vm_record("XAPIG1", memory=128 << 20))
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vdi = x.VDI.create(xapitest.vdi_record(sr, "XAPIG1 disk"))
    x.VBD.create(xapitest.vbd_record(vm, vdi, bootable=True))
    assert "XAPIG1" in zvm("guest_list")
    assert zvm("guest_get_power_state", "xapig1") == "off"
    zvm("guest_start", "XAPIG1")
    assert x.VM.get_power_state(vm) == "Running"
    assert zvm("guest_get_info", "XAPIG1")["power_state"] == "on"
    zvm("guest_stop", "XAPIG1")
    assert x.VM.get_power_state(vm) == "Halted"
    x.VM.destroy(vm)
    assert "XAPIG1" not in zvm("guest_list")
    r = zvm.fails("guest_get_info", "XAPIG1")
    assert codes(r) == (404, 10, 404, 1), r


# ---------------------------------------------------------------------------------------------
# images and files


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_images_import_query_export_deploy_capture_delete(zvm, x, tmp_path):
    data = bytes(range(256)) * 4096 + b"tail"   # 1 MiB + 4 bytes, not a qcow2
    src = tmp_path / "img.raw"
    src.write_bytes(data)
    zvm("image_import", "zimg1", f"file://{src}", {"os_version": "rhel8", "md5sum": md5(data)})
    r = zvm.fails("image_import", "ZIMG1", f"file://{src}", {"os_version": "rhel8"})
    assert codes(r) == (300, 40, 300, 13), r   # names are unique ignoring case
    r = zvm.fails("image_import", "zimg2", f"file://{src}", {"os_version": "rhel8", "md5sum": "0" * 32})
    assert codes(r) == (300, 40, 300, 4), r
    assert "zimg2" not in [i["imagename"] for i in zvm("image_query")]

    [info] = zvm("image_query", imagename="zimg1")
    assert set(info) == {"imagename", "imageosdistro", "md5sum", "disk_size_units",
                         "image_size_in_bytes", "type", "comments", "last_access_time"}
    units = f"{-(-len(data) // CYLINDER)}:CYL"
    assert info == {**info, "imagename": "zimg1", "imageosdistro": "rhel8", "md5sum": md5(data),
                    "disk_size_units": units, "image_size_in_bytes": str(len(data)),
                    "type": "rootonly"}
    assert "zimg1" in [i["imagename"] for i in zvm("image_query")]
    assert zvm("image_get_root_disk_size", "zimg1") == units
    r = zvm.fails("image_query", imagename="nope")
    assert codes(r) == (404, 40, 404, 1) and r["errmsg"] == "Image with name: nope does not exist.", r
    # The image is a VDI of the default SR.
    [vdi] = [v for v in x.VDI.get_all() if x.VDI.get_other_config(v).get("zvm_image") == "zimg1"]
    assert x.VDI.get_SR(vdi) == x.pool.get_default_SR(x.pool.get_all()[0])

    out = tmp_path / "export" / "zimg1.img"
    out.parent.mkdir()
    exported = zvm("image_export", "zimg1", f"file://{out}")
    assert exported == {"image_name": "zimg1", "image_path": f"file://{out}", "os_version": "rhel8",
                        "md5sum": md5(data)}
    got = out.read_bytes()
    assert len(got) == len(data)
    # The simulated host keeps sizes, not contents: it exports zeros.
    assert got == data or got == bytes(len(data))
    r = zvm.fails("image_export", "nope", f"file://{tmp_path}/x")
    assert codes(r) == (300, 40, 300, 20), r

    zvm("guest_create", "ZIMGG", 1, 256, disk_list=[{"size": "100m", "is_boot_disk": True}])
    zvm("guest_deploy", "ZIMGG", "zimg1")
    r = zvm.fails("guest_deploy", "ZIMGG", "nope")
    assert codes(r) == (300, 40, 300, 20), r
    zvm("guest_capture", "ZIMGG", "zcap1")
    [cap] = zvm("image_query", imagename="zcap1")
    assert cap["type"] == "rootonly" and cap["disk_size_units"].endswith(":CYL")
    zvm("guest_delete", "ZIMGG")
    zvm("image_delete", "zcap1")
    zvm("image_delete", "zimg1")
    assert zvm("image_delete", "zimg1") == ""   # deleting an unknown image succeeds
    assert not [v for v in x.VDI.get_all() if x.VDI.get_other_config(v).get("zvm_image")]
    assert zvm("image_query") == []


def test_file_import_and_export(zvm, tmp_path):
    src = tmp_path / "f.txt"
    payload = b"hello file import\n" * 1000
    src.write_bytes(payload)
    out = zvm("file_import", str(src))
    assert set(out) == {"filesize_in_bytes", "dest_url", "md5sum"}
    assert out["filesize_in_bytes"] == len(payload) and out["md5sum"] == md5(payload)
    assert out["dest_url"].startswith("file:///")
    # file_export returns the bytes; the client saves them in a temporary file.
    exp = zvm("file_export", out["dest_url"][len("file://"):])
    assert exp["filesize_in_bytes"] == len(payload)
    assert pathlib.Path(exp["dest_url"]).read_bytes() == payload
    # An uploaded file can be imported as an image.
    zvm("image_import", "zfileimg", out["dest_url"], {"os_version": "rhel8"})
    assert zvm("image_query", imagename="zfileimg")[0]["md5sum"] == md5(payload)
    zvm("image_delete", "zfileimg")
    r = zvm.fails("file_export", str(tmp_path / "missing"))
    assert codes(r) == (300, 60, 300, 2), r


# ---------------------------------------------------------------------------------------------
# FCP templates, devices and volumes


def test_fcp_templates_usage_and_volumes(zvm, x):
    made = zvm("create_fcp_template", "ztmpl", description="d", fcp_devices="1a00-1a01;1b00-1b01",
               host_default=True)
    t = made["fcp_template"]
    assert t["name"] == "ztmpl" and t["description"] == "d" and t["host_default"] is True
    tid = t["id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", tid)
    listed = zvm("get_fcp_templates")["fcp_templates"]
    assert [l["id"] for l in listed] == [tid]
    assert zvm("get_fcp_templates", template_id_list=[tid])["fcp_templates"][0]["name"] == "ztmpl"
    details = zvm("get_fcp_templates_details", template_id_list=[tid], raw=True)["fcp_templates"]
    [d] = details
    assert sorted(d["raw"]) == ["0", "1"] and sorted(d["statistics"]) == ["0", "1"]
    assert d["statistics"]["0"]["total"] == "1A00 - 1A01"
    assert [row[0] for row in d["raw"]["1"]] == ["1b00", "1b01"]
    zvm("edit_fcp_template", tid, name="ztmpl2", description="d2")
    [t2] = zvm("get_fcp_templates", template_id_list=[tid])["fcp_templates"]
    assert (t2["name"], t2["description"]) == ("ztmpl2", "d2")

    assert zvm("get_fcp_usage", "1a01") == ["", 0, 0, ""]
    zvm("set_fcp_usage", "1a01", "ZVOL", 1, 0, tid)
    assert zvm("get_fcp_usage", "1A01") == ["ZVOL", 1, 0, tid]
    zvm("set_fcp_usage", "1a01", "ZVOL", 0, 0, "")
    assert zvm("get_fcp_usage", "1a01")[1:3] == [0, 0]
    r = zvm.fails("get_fcp_usage", "5d71")
    assert codes(r) == (404, 30, 404, 1), r

    # A volume: a VDI tagged with its LUN through XenAPI (volume.rs).
    zvm("guest_create", "ZVOL", 1, 256, disk_list=[{"size": "100m", "is_boot_disk": True}])
    vm = vm_of(x, "ZVOL")
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vdi = x.VDI.create(xapitest.vdi_record(sr, "LUN 4020400100000000"))
    x.VDI.add_to_other_config(vdi, "zvm_lun", "4020400100000000")
    conn = zvm("get_volume_connector", "ZVOL", reserve=True, fcp_template_id=tid)
    assert conn["zvm_fcp"] == ["1a00", "1b00"] and conn["fcp_paths"] == 2
    assert conn["fcp_template_id"] == tid and len(conn["wwpns"]) == 2
    assert set(conn["phy_to_virt_initiators"]) == set(conn["wwpns"])
    assert conn["host"].endswith("_ZVOL")
    info = {"assigner_id": "ZVOL", "zvm_fcp": ["1a00", "1b00"], "target_wwpn": ["0x50050763050b073d"],
            "target_lun": "0x4020400100000000", "os_version": "rhel7", "multipath": True,
            "mount_point": "/dev/sdz"}
    zvm("volume_attach", info)
    [vbd] = x.VDI.get_VBDs(vdi)
    assert x.VBD.get_VM(vbd) == vm
    oc = x.VBD.get_other_config(vbd)
    assert oc["zvm_volume"] == "4020400100000000" and oc["zvm_fcp"] == "1a00,1b00", oc
    assert zvm("get_fcp_usage", "1b00") == ["ZVOL", 1, 1, tid]
    assert [t["id"] for t in zvm("get_fcp_templates", assigner_id="ZVOL")["fcp_templates"]] == [tid]
    r = zvm.fails("volume_attach", info)
    assert codes(r) == (300, 30, 300, 3), r
    r = zvm.fails("delete_fcp_template", tid)   # in use
    assert r["overallRC"] == 409, r

    paths = zvm("volume_refresh_bootmap", fcpchannels=["1a00", "1b00"], wwpn=["50050763050b073d"],
                lun="4020400100000000")
    assert paths == {"1a00": ["50050763050b073d"], "1b00": ["50050763050b073d"]}

    zvm("volume_detach", info)
    assert x.VDI.get_VBDs(vdi) == []
    assert vdi in x.VDI.get_all()   # the volume outlives its attachment
    assert zvm("get_fcp_usage", "1b00")[2] == 0
    zvm("get_volume_connector", "ZVOL", reserve=False, fcp_template_id=tid)
    assert zvm("get_fcp_usage", "1a00")[1] == 0
    zvm("delete_fcp_template", tid)
    assert zvm("get_fcp_templates")["fcp_templates"] == []
    r = zvm.fails("delete_fcp_template", tid)
    assert r["overallRC"] == 404, r
    zvm("guest_delete", "ZVOL")
    x.VDI.destroy(vdi)


# ---------------------------------------------------------------------------------------------
# token_create, token mode, the socket protocol


def test_token_create_without_authentication(zengine, zvm):
    r = requests.post(f"http://127.0.0.1:{zengine.zvm_port}/token")
    assert r.status_code == 200 and r.headers["X-Auth-Token"] == "server-auth-closed"
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8" and r.content == b""
    assert r.headers["Cache-Control"] == "no-cache"   # as on every answer of a handler
    # The client takes a text/html answer for an unexpected response (101/110/101/3).
    res = zvm.raw("token_create")
    assert codes(res) == (101, 110, 101, 3), res
    assert "status_code: 200" in res["errmsg"]


@pytest.fixture
def token_engine(zvm_token_engine):
    return zvm_token_engine


def test_token_mode(token_engine):
    base = f"http://127.0.0.1:{token_engine.zvm_port}"
    H = {"Content-Type": "application/json"}

    def refused(r):
        assert r.status_code == 401, (r.status_code, r.text)
        assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
        assert "Cache-Control" not in r.headers   # raised past the original's header middleware
        assert r.text == json.dumps(UNAUTHORIZED)
        assert "X-Auth-Token" not in r.headers

    refused(requests.post(base + "/token", headers=H))
    refused(requests.post(base + "/token", headers={**H, "X-Admin-Token": "wrong"}))
    refused(requests.get(base + "/guests", headers=H))
    refused(requests.get(base + "/guests", headers={**H, "X-Auth-Token": "garbage"}))
    expired = jwt.encode({"exp": datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)},
                         "my-admin-token", algorithm="HS256")
    refused(requests.get(base + "/guests", headers={**H, "X-Auth-Token": expired}))
    other_key = jwt.encode({"exp": int(time.time()) + 600}, "another-token", algorithm="HS256")
    refused(requests.get(base + "/guests", headers={**H, "X-Auth-Token": other_key}))

    before = int(time.time())
    r = requests.post(base + "/token", headers={**H, "X-Admin-Token": "my-admin-token"})
    after = int(time.time())
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8"
    tok = r.headers["X-Auth-Token"]
    assert jwt.get_unverified_header(tok)["alg"] == "HS256"
    payload = jwt.decode(tok, "my-admin-token", algorithms=["HS256"])
    assert before + 3600 - 2 <= payload["exp"] <= after + 3600 + 2, payload
    r = requests.get(base + "/guests", headers={**H, "X-Auth-Token": tok})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.json() == {"overallRC": 0, "modID": None, "rc": 0, "rs": 0, "errmsg": "", "output": []}

    # RESTClient with auth='token' fetches a token with the file's content, then calls.
    rc = restclient.RESTClient("127.0.0.1", token_engine.zvm_port, token_path=str(token_engine.token_file),
                               auth="token")
    assert rc.call("guest_create", "ZTOK1", 1, 128)["overallRC"] == 0
    assert rc.call("guest_list")["output"] == ["ZTOK1"]
    # ZVMConnector has no `auth` parameter: with token_path alone it sends no token, so the
    # server refuses it with the 401 envelope, which the client returns as the call's result.
    conn = connector.ZVMConnector("127.0.0.1", token_engine.zvm_port, token_path=str(token_engine.token_file))
    assert conn.send_request("guest_list") == UNAUTHORIZED
    # The socket protocol has no authentication.
    s = connector.ZVMConnector("127.0.0.1", token_engine.zvm_socket_port, connection_type="socket")
    assert s.send_request("guest_list")["output"] == ["ZTOK1"]
    # Every route needs the token, the version and SMAPI health routes too (the original's
    # handlers are all wrapped in `tokens.validate`).
    refused(requests.get(base + "/", headers=H))
    refused(requests.get(base + "/smapi-healthy", headers=H))
    r = requests.get(base + "/", headers={**H, "X-Auth-Token": tok})
    assert r.status_code == 200 and r.json()["output"]["version"] == "1.6.3"
    # Unknown routes and methods are answered before the token is looked at.
    assert requests.get(base + "/nowhere").status_code == 404
    assert requests.patch(base + "/guests").status_code == 405


def socket_exchange(port, request: bytes, close=False) -> bytes:
    """One exchange of the socket protocol, as the client makes it (no framing, read to EOF);
    with `close`, the request ends with the end of the stream."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(request)
        if close:
            c.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := c.recv(65536):
            got += chunk
    return got


def test_socket_protocol(zengine, zvm, x):
    s = connector.ZVMConnector("127.0.0.1", zengine.zvm_socket_port, connection_type="socket")
    r = s.send_request("guest_create", "ZSOCK1", 1, 128, disk_list=[{"size": "100m"}])
    assert codes(r) == (0, None, 0, 0), r
    assert r["output"][0]["vdev"] == "0100"
    assert "ZSOCK1" in zvm("guest_list")   # the same inventory as REST
    assert x.VM.get_by_name_label("ZSOCK1")
    assert s.send_request("guest_get_power_state", "ZSOCK1")["output"] == "off"
    r = s.send_request("guest_start", "ZNONE")
    assert codes(r) == (404, 10, 404, 1), r
    # No REST validation on this path: the backend's own argument checks answer.
    r = s.send_request("guest_start")
    assert codes(r) == (100, 400, 100, 1), r
    # An unknown call: Drover answers the return-code table's "Invalid API name" row
    # (400/100/400/1). (The 1.6.3 server itself crashes there on a missing table entry and
    # answers an internal error instead.)
    r = s.send_request("no_such_call", 1, a=2)
    assert codes(r) == (400, 100, 400, 1), r
    assert "no_such_call" in r["errmsg"]
    # Not a call at all; not JSON at all: the original's internal errors, naming the client.
    r = json.loads(socket_exchange(zengine.zvm_socket_port, b'{"not": "a list"}'))
    assert codes(r) == (500, 100, 500, 1), r
    assert re.fullmatch(r"Unexpected internal error in ZVM SDK, error: \(127\.0\.0\.1:\d+\) SDK server got "
                        r"wrong input: '\{\"not\": \"a list\"\}' from client\.", r["errmsg"]), r
    r = json.loads(socket_exchange(zengine.zvm_socket_port, b'["guest_list", ', close=True))
    assert codes(r) == (500, 100, 500, 1), r
    assert re.fullmatch(r"Unexpected internal error in ZVM SDK, error: \(127\.0\.0\.1:\d+\) SDK server got "
                        r"unexpected exception: JSONDecodeError\('Expecting value: line 1 column 16 \(char 15\)'\)",
                        r["errmsg"]), r
    # Answers are ASCII-only JSON (the client decodes each 4096-byte block on its own), and a
    # request larger than one read is read whole.
    meta = json.dumps({"os_version": "rh\u00e9l8", "pad": "x" * 200_000})
    assert s.send_request("guest_register", "ZSOCK1", meta, "1")["overallRC"] == 0
    raw = socket_exchange(zengine.zvm_socket_port, json.dumps(["guest_get_info", ["ZSOCK1"], {}]).encode())
    assert raw.isascii() and b"rh\\u00e9l8" in raw, raw
    assert s.send_request("guest_get_info", "ZSOCK1")["output"]["os_distro"] == "rh\u00e9l8"
    assert s.send_request("guest_delete", "ZSOCK1")["overallRC"] == 0
    assert "ZSOCK1" not in zvm("guest_list")


# ---------------------------------------------------------------------------------------------


def test_every_call_of_the_table_was_made(request):
    """Runs last: every row of the api table was called above (through the REST client)."""
    selected = {i.name for i in request.session.items if i.module is request.module}
    defined = {n for n in dir(request.module) if n.startswith("test_")}
    if not defined <= selected or request.session.testsfailed:
        pytest.skip("coverage is only checked when the whole module ran and passed")
    missing = sorted(set(table_apis()) - CALLED)
    assert not missing, f"calls of the api table never made: {missing}"
