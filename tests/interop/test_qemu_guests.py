"""Real guests: `drover serve --host-driver qemu` boots the tiny guest (guest/out) under QEMU, and
the real XenAPI client drives it. The console (XenAPI `console` records, fetched over HTTP and a
websocket) is how the tests see inside the guest: its init prints `DROVER-GUEST ...` lines."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import websocket  # websocket-client
import XenAPI

import xapitest
from networld import NetWorld, console_text, console_url, wait_console
from networld import console_mark as mark
from xapitest import MiB, NULL, unique, vbd_record, vdi_record

REPO = pathlib.Path(__file__).resolve().parents[2]
GUEST = pathlib.Path(os.environ.get("DROVER_TINY_GUEST", REPO / "guest" / "out"))
GiB = 1024 * MiB


@pytest.fixture(scope="module")
def qengine(request, drover_bin, _engines_root):
    from conftest import _finish_engine, _make_engine

    assert (GUEST / "vmlinuz").is_file() and (GUEST / "disk.img").is_file(), (
        f"the tiny guest is not built in {GUEST}: run guest/build-tiny-guest.sh {GUEST}")
    failed_before = request.session.testsfailed
    # The engine's networks and guests live in a namespace of the test's own, never the host's.
    world = NetWorld(prefix="drq").create()
    try:
        eng = _make_engine(drover_bin, _engines_root,
                           ["--tiny-guest", str(GUEST), "--shutdown-timeout-secs", "20", "--netns", world.ns],
                           driver="qemu")
    except Exception:
        world.destroy()
        raise
    yield eng
    s = eng.session() if eng.alive else None
    if s is not None:
        for ref, r in s.xenapi.VM.get_all_records().items():
            if r["power_state"] in ("Running", "Paused"):
                try:
                    s.xenapi.VM.hard_shutdown(ref)
                except XenAPI.Failure:
                    pass
    try:
        _finish_engine(eng, request.session.testsfailed > failed_before)
    finally:
        world.destroy()


@pytest.fixture(scope="module")
def qx(qengine):
    return qengine.session().xenapi


@pytest.fixture
def session_id(qengine):
    """A fresh session for HTTP console access (sessions do not outlive an engine restart)."""
    return qengine.session()._session


def tiny_vm(x, name=None, args="", memory=None):
    tpl = xapitest.template(x, "Tiny Linux")
    vm = x.VM.clone(tpl, name or unique("tiny"))
    x.VM.provision(vm)
    x.VM.set_is_a_template(vm, False)
    if args:
        x.VM.set_PV_args(vm, x.VM.get_PV_args(vm) + " " + args)
    if memory:
        x.VM.set_memory_limits(vm, str(memory), str(memory), str(memory), str(memory))
    return vm


def uptime_line(x, vm, sid, after=0):
    m = wait_console(x, vm, sid, r"uptime=([0-9.]+) boot_id=(\S+)", after)
    return float(m.group(1)), m.group(2)


def add_disk(x, vm, size, device):
    vdi = x.VDI.create(vdi_record(xapitest.local_sr(x), name=unique("data"), size=size))
    vbd = x.VBD.create(vbd_record(vm, vdi, device))
    return vdi, vbd


def test_accelerator_is_probed_and_tcg_chosen_here(qengine):
    log = qengine.log_path.read_text()
    # On our machines /dev/kvm opens but guests hang under it: the probe must see that by itself.
    m = re.search(r'(accelerator probed|accelerator from the cached probe|no usable /dev/kvm).*', log)
    assert m, log[-2000:]
    chosen = re.search(r'QEMU host agent ready accel="?(\w+)', log).group(1)
    assert chosen in ("tcg", "kvm")
    assert "QEMU host agent ready" in log


def test_tiny_linux_shows_marker_and_memory_then_acpi_shutdown(qx, session_id):
    marker = unique("marker")
    vm = tiny_vm(qx, args=f"drover.marker={marker}", memory=96 * MiB)
    qx.VM.start(vm, False, False)
    assert qx.VM.get_power_state(vm) == "Running"
    wait_console(qx, vm, session_id, re.escape(f"drover.marker={marker}"))
    kb = int(wait_console(qx, vm, session_id, r"mem_kb=(\d+)").group(1))
    assert 60 * 1024 < kb <= 96 * 1024, kb
    metrics = qx.VM_metrics.get_record(qx.VM.get_metrics(vm))
    assert int(metrics["memory_actual"]) == 96 * MiB
    assert int(metrics["VCPUs_number"]) == 1
    # The guest agent reports over virtio-serial.
    deadline = time.monotonic() + 30
    gm = NULL
    while time.monotonic() < deadline:
        gm = qx.VM.get_guest_metrics(vm)
        if gm != NULL and qx.VM_guest_metrics.get_os_version(gm):
            break
        time.sleep(0.5)
    assert gm != NULL, "no guest metrics from the guest agent"
    os_version = qx.VM_guest_metrics.get_os_version(gm)
    assert os_version.get("name") == "Drover tiny guest", os_version
    assert int(qx.VM_guest_metrics.get_memory(gm)["total_kb"]) == kb
    at = mark(qx, vm, session_id)
    qx.VM.clean_shutdown(vm)
    assert qx.VM.get_power_state(vm) == "Halted"
    assert qx.VM.get_consoles(vm) == []
    qx.VM.destroy(vm)


def test_pause_and_unpause_stop_and_continue_the_guest(qx, session_id):
    vm = tiny_vm(qx)
    qx.VM.start(vm, False, False)
    up1, boot = uptime_line(qx, vm, session_id)
    qx.VM.pause(vm)
    assert qx.VM.get_power_state(vm) == "Paused"
    at = mark(qx, vm, session_id)
    time.sleep(3)
    assert "uptime=" not in console_text(qx, vm, session_id)[at:], "a paused guest kept running"
    qx.VM.unpause(vm)
    assert qx.VM.get_power_state(vm) == "Running"
    up2, boot2 = uptime_line(qx, vm, session_id, at)
    assert boot2 == boot and up2 > up1
    qx.VM.hard_shutdown(vm)
    qx.VM.destroy(vm)


def test_suspend_then_resume_continues_the_same_boot(qx, session_id):
    vm = tiny_vm(qx)
    qx.VM.start(vm, False, False)
    up1, boot = uptime_line(qx, vm, session_id)
    at = mark(qx, vm, session_id)  # the console log continues across suspend and resume
    qx.VM.suspend(vm)
    assert qx.VM.get_power_state(vm) == "Suspended"
    suspend_vdi = qx.VM.get_suspend_VDI(vm)
    assert suspend_vdi != NULL
    assert int(qx.VDI.get_physical_utilisation(suspend_vdi)) > 1 * MiB
    assert qx.VM.get_consoles(vm) == []
    qx.VM.resume(vm, False, False)
    assert qx.VM.get_power_state(vm) == "Running"
    up2, boot2 = uptime_line(qx, vm, session_id, at)
    assert boot2 == boot, "the guest rebooted instead of resuming"
    assert up2 > up1
    assert qx.VM.get_suspend_VDI(vm) == NULL
    qx.VM.clean_shutdown(vm)
    qx.VM.destroy(vm)


def test_hot_plugged_disk_appears_in_the_running_guest(qx, session_id):
    vm = tiny_vm(qx)
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"disks=")
    at = mark(qx, vm, session_id)
    vdi, vbd = add_disk(qx, vm, 48 * MiB, "1")
    assert not qx.VBD.get_currently_attached(vbd)
    qx.VBD.plug(vbd)
    assert qx.VBD.get_currently_attached(vbd)
    wait_console(qx, vm, session_id, r"disks=\S*:98304", at)
    # A disk in use by a running VM cannot be destroyed.
    with pytest.raises(XenAPI.Failure) as e:
        qx.VDI.destroy(vdi)
    assert e.value.details[0] == "VDI_IN_USE"
    at = mark(qx, vm, session_id)
    qx.VBD.unplug(vbd)
    assert not qx.VBD.get_currently_attached(vbd)
    m = wait_console(qx, vm, session_id, r"disks=(\S*)", at)
    assert ":98304" not in m.group(1)
    qx.VM.hard_shutdown(vm)
    qx.VM.destroy(vm)
    qx.VDI.destroy(vdi)


def test_disk_data_survives_restarts_and_snapshot_revert_restores_it(qx, session_id):
    vm = tiny_vm(qx, args="drover.data=FIRST")
    add_disk(qx, vm, 16 * MiB, "1")
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"disk=vd\w data=\r?\n")
    wait_console(qx, vm, session_id, r"disk=vd\w wrote=FIRST")
    qx.VM.clean_shutdown(vm)
    snap = qx.VM.snapshot(vm, unique("snap"))
    qx.VM.set_PV_args(vm, qx.VM.get_PV_args(vm).replace("drover.data=FIRST", "drover.data=SECOND"))
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"disk=vd\w data=FIRST")
    wait_console(qx, vm, session_id, r"disk=vd\w wrote=SECOND")
    qx.VM.clean_shutdown(vm)
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"disk=vd\w data=SECOND")
    qx.VM.hard_shutdown(vm)
    qx.VM.revert(snap)
    qx.VM.set_PV_args(vm, qx.VM.get_PV_args(vm).replace("drover.data=FIRST", ""))
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"disk=vd\w data=FIRST")
    qx.VM.hard_shutdown(vm)


def test_thin_clone_of_a_template_does_not_depend_on_disk_size(qx):
    sr = xapitest.local_sr(qx)
    times = {}
    for size in (1 * GiB, 10 * GiB):
        tpl = tiny_vm(qx, name=unique("tpl"))
        vdi, _ = add_disk(qx, tpl, size, "1")
        # Give the disk real data, so that a copy would have something to copy.
        qx.VM.set_is_a_template(tpl, True)
        samples = []
        for _ in range(3):
            t0 = time.monotonic()
            clone = qx.VM.clone(tpl, unique("clone"))
            samples.append(time.monotonic() - t0)
            vbds = [b for b in qx.VM.get_VBDs(clone) if qx.VBD.get_type(b) == "Disk"]
            cvdi = qx.VBD.get_VDI(vbds[0])
            assert int(qx.VDI.get_virtual_size(cvdi)) == size
            assert int(qx.VDI.get_physical_utilisation(cvdi)) < 2 * MiB, "the clone is not thin"
            assert qx.VDI.get_SR(cvdi) == sr
        times[size] = sorted(samples)[1]
    print(f"thin clone: 1 GiB {times[GiB]*1000:.0f} ms, 10 GiB {times[10*GiB]*1000:.0f} ms")
    assert times[10 * GiB] < times[GiB] * 3 + 0.5, times


def test_interactive_console_over_websocket(qx, session_id):
    vm = tiny_vm(qx)
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"uptime=")
    url = console_url(qx, vm, session_id).replace("http://", "ws://")
    ws = websocket.create_connection(url, timeout=10)
    try:
        ws.send_binary(b"echo typed-$((6*7))\n")
        seen = b""
        deadline = time.monotonic() + 20
        while b"typed-42" not in seen and time.monotonic() < deadline:
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            seen += frame if isinstance(frame, bytes) else frame.encode()
        assert b"typed-42" in seen, seen[-2000:]
    finally:
        ws.close()
    rfb = websocket.create_connection(console_url(qx, vm, session_id, "rfb").replace("http://", "ws://"),
                                      timeout=10)
    try:
        greeting = rfb.recv()
        assert (greeting if isinstance(greeting, bytes) else greeting.encode()).startswith(b"RFB 003.")
    finally:
        rfb.close()
    qx.VM.hard_shutdown(vm)
    qx.VM.destroy(vm)


def test_console_needs_a_valid_session(qx, session_id):
    vm = tiny_vm(qx)
    qx.VM.start(vm, False, False)
    url = console_url(qx, vm, session_id)
    bad = url.replace(urllib.parse.quote(session_id), "OpaqueRef:nonsense")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad, timeout=10)
    assert e.value.code in (401, 403)
    qx.VM.hard_shutdown(vm)
    qx.VM.destroy(vm)


def test_imported_disk_image_boots_through_the_firmware(qengine, qx, session_id):
    sr = xapitest.local_sr(qx)
    size = (GUEST / "disk.img").stat().st_size
    vdi = qx.VDI.create(vdi_record(sr, name=unique("imported"), size=size))
    url = f"{qengine.url}/import_raw_vdi?session_id={urllib.parse.quote(session_id)}&vdi={urllib.parse.quote(vdi)}&format=raw"
    req = urllib.request.Request(url, data=(GUEST / "disk.img").read_bytes(), method="PUT")
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
    assert int(qx.VDI.get_physical_utilisation(vdi)) > 1 * MiB
    vm = qx.VM.create(xapitest.vm_record(unique("diskboot"), memory=96 * MiB, HVM_boot_params={"order": "c"}))
    qx.VBD.create(vbd_record(vm, vdi, "0", bootable=True))
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"DROVER-GUEST cmdline=.*console=ttyS0", timeout=90)
    qx.VM.hard_shutdown(vm)
    # Garbage claiming to be qcow2 is refused and the disk keeps its contents.
    req = urllib.request.Request(url.replace("format=raw", "format=qcow2"), data=b"QFI\xfb" + b"\0" * 4096,
                                 method="PUT")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code >= 400
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"DROVER-GUEST cmdline=", timeout=90)
    qx.VM.hard_shutdown(vm)


def test_bad_kernel_path_is_a_clear_error_and_leaves_nothing(qengine, qx):
    vm = tiny_vm(qx)
    qx.VM.set_PV_kernel(vm, "/nonexistent/vmlinuz")
    with pytest.raises(XenAPI.Failure) as e:
        qx.VM.start(vm, False, False)
    assert "/nonexistent/vmlinuz" in " ".join(e.value.details), e.value.details
    assert qx.VM.get_power_state(vm) == "Halted"
    assert not list((qengine.data_dir / "guests").glob(f"{qx.VM.get_uuid(vm)}/qemu.pid"))
    qx.VM.destroy(vm)


def test_sr_full_and_scan_of_placed_files(qengine, qx):
    sr = xapitest.local_sr(qx)
    with pytest.raises(XenAPI.Failure) as e:
        qx.VDI.create(vdi_record(sr, size=1 << 60))
    assert e.value.details[0] == "SR_FULL"
    pbd = qx.SR.get_PBDs(sr)[0]
    path = qx.PBD.get_device_config(pbd)["path"]
    d = pathlib.Path(path) if path.startswith("/") else qengine.data_dir / path
    (d / "placed.img").write_bytes(b"\0" * (3 * MiB))
    qx.SR.scan(sr)
    found = [v for v in qx.SR.get_VDIs(sr) if qx.VDI.get_location(v) == "placed.img"]
    assert len(found) == 1
    assert int(qx.VDI.get_virtual_size(found[0])) == 3 * MiB


def test_iso_sr_and_cd_insert_eject(qengine, qx, tmp_path):
    iso_dir = tmp_path / "isos"
    iso_dir.mkdir()
    (iso_dir / "tools.iso").write_bytes(b"\0" * (2 * MiB))
    host = xapitest.the_host(qx)
    sr = qx.SR.create(host, {"location": str(iso_dir)}, "0", "ISOs", "", "iso", "iso", False, {})
    qx.SR.scan(sr)
    isos = qx.SR.get_VDIs(sr)
    assert [qx.VDI.get_location(v) for v in isos] == ["tools.iso"]
    vm = tiny_vm(qx)
    cd = qx.VBD.create(vbd_record(vm, NULL, "3", type="CD", mode="RO", empty=True))
    qx.VM.start(vm, False, False)
    qx.VBD.insert(cd, isos[0])
    assert not qx.VBD.get_empty(cd)
    qx.VBD.eject(cd)
    assert qx.VBD.get_empty(cd)
    qx.VM.hard_shutdown(vm)
    qx.VM.destroy(vm)


def test_kill9_of_drover_leaves_guests_running_and_controllable(qengine, qx, session_id):
    vm = tiny_vm(qx)
    qx.VM.start(vm, False, False)
    _, boot = uptime_line(qx, vm, session_id)
    uuid = qx.VM.get_uuid(vm)
    pid = int((qengine.data_dir / "guests" / uuid / "qemu.pid").read_text())
    qengine.kill9()
    os.kill(pid, 0)  # still there
    time.sleep(1)
    os.kill(pid, 0)
    qengine.start()
    x = qengine.session().xenapi
    sid = qengine.session()._session
    assert x.VM.get_power_state(vm) == "Running"
    at = mark(x, vm, sid)
    _, boot2 = uptime_line(x, vm, sid, at)
    assert boot2 == boot
    x.VM.clean_shutdown(vm)
    assert x.VM.get_power_state(vm) == "Halted"
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)


def test_start_paused_reboots_and_start_on(qx, session_id):
    vm = tiny_vm(qx)
    qx.VM.start(vm, True, False)
    assert qx.VM.get_power_state(vm) == "Paused"
    time.sleep(1)
    assert "DROVER-GUEST" not in console_text(qx, vm, session_id), "a guest started paused ran"
    qx.VM.unpause(vm)
    _, boot1 = uptime_line(qx, vm, session_id)
    at = mark(qx, vm, session_id)
    qx.VM.hard_reboot(vm)
    assert qx.VM.get_power_state(vm) == "Running"
    m = wait_console(qx, vm, session_id, r"DROVER-GUEST boot_id=(\S+)", at)
    assert m.group(1) != boot1, "hard_reboot did not reset the guest"
    uptime_line(qx, vm, session_id, at)
    qx.VM.clean_reboot(vm)
    assert qx.VM.get_power_state(vm) == "Running"
    # A clean reboot is a fresh boot of the same VM; the new console starts over.
    m = wait_console(qx, vm, session_id, r"DROVER-GUEST boot_id=(\S+)")
    assert m.group(1) not in (boot1,)
    qx.VM.hard_shutdown(vm)
    qx.VM.start_on(vm, xapitest.the_host(qx), False, False)
    assert qx.VM.get_resident_on(vm) == xapitest.the_host(qx)
    wait_console(qx, vm, session_id, r"uptime=")
    qx.VM.hard_shutdown(vm)
    qx.VM.destroy(vm)


def test_shared_directory_sr_holds_copies(qengine, qx, tmp_path):
    host = xapitest.the_host(qx)
    shared_dir = tmp_path / "shared"
    sr = qx.SR.create(host, {"path": str(shared_dir)}, "0", "Shared", "", "shared", "user", True, {})
    assert qx.SR.get_shared(sr)
    assert int(qx.SR.get_physical_size(sr)) > 0
    src = qx.VDI.create(vdi_record(xapitest.local_sr(qx), name=unique("src"), size=32 * MiB))
    copy = qx.VDI.copy(src, sr)
    assert qx.VDI.get_SR(copy) == sr
    assert (shared_dir / qx.VDI.get_location(copy)).is_file()
    vm = tiny_vm(qx)
    qx.VBD.create(vbd_record(vm, copy, "1"))
    qx.VM.start(vm, False, False)
    qx.VM.hard_shutdown(vm)
    qx.VM.destroy(vm)
    qx.VDI.destroy(copy)
    assert not list(shared_dir.glob("*.qcow2"))


def test_vcpus_change_live_and_survive_suspend(qx, session_id):
    vm = tiny_vm(qx)
    qx.VM.set_VCPUs_max(vm, "2")
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"cpus=1\b")
    at = mark(qx, vm, session_id)
    qx.VM.set_VCPUs_number_live(vm, "2")
    wait_console(qx, vm, session_id, r"cpus=2\b", at)
    assert int(qx.VM.get_VCPUs_at_startup(vm)) == 2
    _, boot = uptime_line(qx, vm, session_id)
    at = mark(qx, vm, session_id)
    qx.VM.suspend(vm)
    qx.VM.resume(vm, False, False)
    _, boot2 = uptime_line(qx, vm, session_id, at)
    assert boot2 == boot
    with pytest.raises(XenAPI.Failure):
        qx.VM.set_VCPUs_number_live(vm, "3")
    assert int(qx.VM_metrics.get_VCPUs_number(qx.VM.get_metrics(vm))) == 2
    qx.VM.hard_shutdown(vm)
    qx.VM.destroy(vm)


def test_a_guest_that_dies_is_marked_halted_with_the_reason(qengine, qx, session_id):
    vm = tiny_vm(qx)
    qx.VM.start(vm, False, False)
    wait_console(qx, vm, session_id, r"uptime=")
    pid = int((qengine.data_dir / "guests" / qx.VM.get_uuid(vm) / "qemu.pid").read_text())
    token = getattr(qx.event, "from")(["vm"], "", 0.0)["token"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while qx.VM.get_power_state(vm) != "Halted":
        assert time.monotonic() < deadline, "a killed guest was not noticed"
        time.sleep(0.2)
    changes = getattr(qx.event, "from")(["vm"], token, 5.0)["events"]
    assert any(e["ref"] == vm and e["operation"] == "mod" for e in changes)
    other = qx.VM.get_other_config(vm)
    assert other.get("last_shutdown_initiator") == "external", other
    assert other.get("last_shutdown_reason"), other
    assert qx.VM.get_consoles(vm) == []
    qx.VM.destroy(vm)


def test_an_sr_whose_directory_disappears_gives_a_clear_error(qx, tmp_path):
    host = xapitest.the_host(qx)
    gone = tmp_path / "gone"
    sr = qx.SR.create(host, {"path": str(gone)}, "0", "Vanishing", "", "shared", "user", True, {})
    gone.rmdir()
    with pytest.raises(XenAPI.Failure) as e:
        qx.VDI.create(vdi_record(sr, size=8 * MiB))
    assert e.value.details[0] in ("SR_BACKEND_FAILURE", "SR_NOT_ATTACHED"), e.value.details
    assert qx.SR.get_VDIs(sr) == []


def test_host_figures_come_from_the_real_host(qx):
    host = xapitest.the_host(qx)
    with open("/proc/meminfo") as f:
        total_kb = int(next(l for l in f if l.startswith("MemTotal:")).split()[1])
    hm = qx.host_metrics.get_record(qx.host.get_metrics(host))
    assert int(hm["memory_total"]) == total_kb * 1024
    assert 0 < int(hm["memory_free"]) <= int(hm["memory_total"])
    cpus = [r for r in qx.host_cpu.get_all_records().values() if r["host"] == host]
    assert sorted(int(c["number"]) for c in cpus) == list(range(os.cpu_count()))
    assert all(0.0 <= float(c["utilisation"]) <= 1.0 for c in cpus)
