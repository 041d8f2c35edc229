"""The z/VM Cloud Connector API on real guests: the real `zvmconnector` client (PyPI
`zVMCloudConnector`) drives `drover serve --zvm-listen` with the QEMU host driver through the
documented flow, and the same guests are seen and driven through XenAPI."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
import pathlib
import re
import time

import pytest
import XenAPI
from zvmconnector import connector

from conftest import _finish_engine, _free_port, _make_engine
from networld import NetWorld

REPO = pathlib.Path(__file__).resolve().parents[2]
GUEST = pathlib.Path(os.environ.get("DROVER_TINY_GUEST", REPO / "guest" / "out"))


@pytest.fixture(scope="module")
def zengine(request, drover_bin, _engines_root):
    assert (GUEST / "disk.img").is_file(), f"the tiny guest is not built in {GUEST}"
    failed_before = request.session.testsfailed
    world = NetWorld(prefix="drz").create()
    rest, sock = _free_port(), _free_port()
    try:
        eng = _make_engine(
            drover_bin, _engines_root,
            ["--tiny-guest", str(GUEST), "--shutdown-timeout-secs", "20", "--netns", world.ns,
             "--zvm-listen", f"127.0.0.1:{rest}", "--zvm-socket-listen", f"127.0.0.1:{sock}"],
            driver="qemu")
    except Exception:
        world.destroy()
        raise
    eng.zvm_port, eng.zvm_socket_port = rest, sock
    yield eng
    try:
        _finish_engine(eng, request.session.testsfailed > failed_before)
    finally:
        world.destroy()


@pytest.fixture(scope="module")
def zvm(zengine):
    c = connector.ZVMConnector("127.0.0.1", zengine.zvm_port)

    def call(api, *args, **kwargs):
        r = c.send_request(api, *args, **kwargs)
        assert r["overallRC"] == 0, (api, r)
        return r["output"]

    call.raw = c.send_request
    return call


@pytest.fixture(scope="module")
def zx(zengine):
    return zengine.session().xenapi


def md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wait_console(zvm, userid, pattern, timeout=90):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = zvm("guest_get_console_output", userid)
        m = re.search(pattern, text)
        if m:
            return m
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} not on the console of {userid} within {timeout}s:\n{text[-3000:]}")


def wait_power(zvm, userid, state, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if zvm("guest_get_power_state", userid) == state:
            return
        time.sleep(0.25)
    raise AssertionError(f"{userid} did not reach {state}")


def test_documented_flow_on_a_real_guest(zvm, zx, tmp_path):
    image = GUEST / "disk.img"
    zvm("image_import", "tinyimg", f"file://{image}", {"os_version": "rhel8", "md5sum": md5(image)})
    [info] = zvm("image_query", imagename="tinyimg")
    assert info["imagename"] == "tinyimg" and info["md5sum"] == md5(image)
    assert info["disk_size_units"].endswith(":CYL")

    disks = zvm("guest_create", "ZFLOW1", 1, 128, disk_list=[{"size": "100m", "is_boot_disk": True}])
    assert disks[0]["vdev"] == "0100"

    transport = tmp_path / "cfgdrive.tgz"
    transport.write_bytes(b"transport files of ZFLOW1\n")
    zvm("guest_deploy", "ZFLOW1", "tinyimg", transportfiles=str(transport), hostname="zflow1")
    zvm("guest_create_network_interface", "ZFLOW1", "rhel8",
        [{"ip_addr": "192.168.95.10", "cidr": "192.168.95.0/24", "gateway_addr": "192.168.95.1",
          "nic_vdev": "1000", "mac_addr": "02:00:00:12:34:56"}])
    zvm("vswitch_create", "VSWFLOW")
    zvm("guest_nic_couple_to_vswitch", "ZFLOW1", "1000", "VSWFLOW")
    zvm("vswitch_grant_user", "VSWFLOW", "ZFLOW1")
    assert "ZFLOW1" in zvm("vswitch_query", "VSWFLOW")["authorized_users"]

    zvm("guest_start", "ZFLOW1")
    wait_console(zvm, "ZFLOW1", r"DROVER-GUEST boot_id=")
    wait_console(zvm, "ZFLOW1", r"configdrive file=transportfiles/cfgdrive\.tgz size=26")
    wait_console(zvm, "ZFLOW1", r"DROVER-GUEST static if=eth\d+ ip=192\.168\.95\.10/24")

    info = zvm("guest_get_info", "ZFLOW1")
    assert info["power_state"] == "on" and info["max_mem_kb"] == 128 * 1024, info
    assert info["num_cpu"] == 1
    direct = zvm("guest_get_definition_info", "ZFLOW1")["user_direct"]
    assert direct[0].startswith("USER ZFLOW1 ")
    assert any(l.startswith("NICDEF 1000 TYPE QDIO LAN SYSTEM VSWFLOW") for l in direct), direct
    assert any(l.startswith("MDISK 0100 3390") for l in direct), direct

    # Real metrics: the guest's CPU time and its NIC's counters, as the monitor reads them.
    deadline = time.monotonic() + 30
    while True:
        stats = zvm("guest_inspect_stats", "ZFLOW1")["ZFLOW1"]
        vnics = zvm("guest_inspect_vnics", "ZFLOW1").get("ZFLOW1", [])
        if stats["used_cpu_time_us"] > 0 and vnics:
            break
        assert time.monotonic() < deadline, (stats, vnics)
        time.sleep(1)
    assert stats["guest_cpus"] == 1 and stats["max_mem_kb"] == 128 * 1024, stats
    assert vnics[0]["vswitch_name"] == "VSWFLOW" and vnics[0]["nic_vdev"] == "1000", vnics
    assert zvm("guest_get_info", "ZFLOW1")["cpu_time_us"] > 0

    # The guest is a VM of the same inventory: XenAPI sees it running.
    [vm] = zx.VM.get_by_name_label("ZFLOW1")
    assert zx.VM.get_power_state(vm) == "Running"

    zvm("guest_softstop", "ZFLOW1", timeout=60, poll_interval=5)
    assert zvm("guest_get_power_state", "ZFLOW1") == "off"
    assert zx.VM.get_power_state(vm) == "Halted"
    zvm("guest_delete", "ZFLOW1")
    assert zx.VM.get_by_name_label("ZFLOW1") == []
    assert "ZFLOW1" not in zvm("guest_list")


def test_a_vm_made_through_xenapi_is_a_guest(zvm, zx):
    [tpl] = [r for r in zx.VM.get_by_name_label("Tiny Linux")]
    vm = zx.VM.clone(tpl, "XAPIG1")
    zx.VM.provision(vm)
    zx.VM.set_is_a_template(vm, False)
    zx.VM.set_PV_args(vm, zx.VM.get_PV_args(vm) + " drover.marker=XAPIG1")
    assert "XAPIG1" in zvm("guest_list")
    zvm("guest_start", "XAPIG1")
    assert zx.VM.get_power_state(vm) == "Running"
    wait_console(zvm, "XAPIG1", r"drover\.marker=XAPIG1")
    zvm("guest_pause", "XAPIG1")
    assert zx.VM.get_power_state(vm) == "Paused"
    zvm("guest_unpause", "XAPIG1")
    zvm("guest_live_resize_cpus", "XAPIG1", 1)
    zvm("guest_stop", "XAPIG1")
    assert zx.VM.get_power_state(vm) == "Halted"
    zx.VM.destroy(vm)
    r = zvm.raw("guest_get_info", "XAPIG1")
    assert (r["overallRC"], r["modID"], r["rc"], r["rs"]) == (404, 10, 404, 1)


def test_socket_protocol_reaches_the_same_inventory(zengine, zvm):
    s = connector.ZVMConnector("127.0.0.1", zengine.zvm_socket_port, connection_type="socket")
    r = s.send_request("guest_create", "ZSOCK1", 1, 96)
    assert r["overallRC"] == 0, r
    assert "ZSOCK1" in zvm("guest_list")
    r = s.send_request("guest_get_power_state", "ZSOCK1")
    assert r["output"] == "off"
    r = s.send_request("no_such_call")
    assert r["overallRC"] != 0
    assert s.send_request("guest_delete", "ZSOCK1")["overallRC"] == 0


@pytest.fixture
def http_guest_dir():
    """The tiny guest's directory served over HTTP on loopback."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(GUEST))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_http_import_export_and_an_alldisks_capture_that_boots(zvm, http_guest_dir, tmp_path):
    image = GUEST / "disk.img"
    zvm("image_import", "httpimg", f"{http_guest_dir}/disk.img", {"os_version": "rhel8", "md5sum": md5(image)})
    r = zvm.raw("image_import", "badmd5", f"{http_guest_dir}/disk.img", {"os_version": "rhel8", "md5sum": "0" * 32})
    assert (r["overallRC"], r["modID"], r["rc"], r["rs"]) == (300, 40, 300, 4), r
    out = tmp_path / "httpimg.img"
    zvm("image_export", "httpimg", f"file://{out}")
    assert md5(out) == md5(image)           # real bytes, not just a size

    zvm("guest_create", "ZCAP1", 1, 128, disk_list=[{"size": "100m", "is_boot_disk": True}, {"size": "10m"}])
    zvm("guest_deploy", "ZCAP1", "httpimg")
    zvm("guest_capture", "ZCAP1", "capimg", capture_type="alldisks")
    [cap] = zvm("image_query", imagename="capimg")
    assert cap["type"] == "alldisks" and cap["imageosdistro"] == "rhel8", cap

    zvm("guest_create", "ZCAP2", 1, 128, disk_list=[{"size": "100m", "is_boot_disk": True}, {"size": "10m"}])
    zvm("guest_deploy", "ZCAP2", "capimg")
    zvm("guest_start", "ZCAP2")
    wait_console(zvm, "ZCAP2", r"DROVER-GUEST boot_id=")
    zvm("guest_stop", "ZCAP2")
    for u in ("ZCAP1", "ZCAP2"):
        zvm("guest_delete", u)
    for i in ("httpimg", "capimg"):
        zvm("image_delete", i)
    assert not {"httpimg", "capimg"} & {i["imagename"] for i in zvm("image_query")}
