"""The VM power state machine (the seed's Figure 1.1), allowed_operations in each state, exact
errors, templates, clone/copy/snapshot/revert/provision, memory admission."""

import xml.etree.ElementTree as ET

import pytest
import XenAPI

from xapitest import (
    MiB,
    NULL,
    assert_integrity,
    failure,
    failure_code,
    local_sr,
    new_vm,
    new_vm_with_disk,
    template,
    the_host,
    unique,
    vbd_record,
    vdi_record,
)

POWER_OPS = {"start", "start_on", "pause", "unpause", "clean_shutdown", "hard_shutdown", "clean_reboot",
             "hard_reboot", "suspend", "resume", "resume_on"}
# Power operations allowed in each state: xapi's (xapi_vm_lifecycle.allowed_power_states).
# The seed's Figure 1.1 (2007) reads as having a second "suspend" edge, from Paused; today's xapi
# has none. Either is accepted, as long as allowed_operations and the behaviour agree.
ALLOWED_IN = {
    "Halted": {"start", "start_on"},
    "Running": {"pause", "clean_shutdown", "hard_shutdown", "clean_reboot", "hard_reboot", "suspend"},
    "Paused": {"unpause", "hard_shutdown", "hard_reboot"},
    "Suspended": {"resume", "resume_on", "hard_shutdown"},
}
OPTIONAL_IN = {"Paused": {"suspend"}}


@pytest.fixture
def vm(x):
    return new_vm(x, unique("life"))


def state(x, vm):
    return x.VM.get_power_state(vm)


def check_state(x, vm, expected):
    rec = x.VM.get_record(vm)
    assert rec["power_state"] == expected
    allowed = set(rec["allowed_operations"])
    power_allowed = allowed & POWER_OPS - OPTIONAL_IN.get(expected, set())
    assert power_allowed == ALLOWED_IN[expected], f"{expected}: power ops allowed {sorted(allowed & POWER_OPS)}"
    assert rec["current_operations"] == {}
    host = the_host(x)
    if expected in ("Running", "Paused"):
        assert rec["resident_on"] == host
        assert vm in x.host.get_resident_VMs(host)
    else:
        assert rec["resident_on"] == NULL
        assert vm not in x.host.get_resident_VMs(host)
    if expected == "Halted":
        assert {"clone", "copy", "destroy", "snapshot"} <= allowed, sorted(allowed)
    if expected == "Running":
        assert "destroy" not in allowed and "clone" not in allowed
    return rec


def test_new_vm_is_halted(x, vm):
    check_state(x, vm, "Halted")


def test_start_and_hard_shutdown(x, vm):
    x.VM.start(vm, False, False)
    check_state(x, vm, "Running")
    x.VM.hard_shutdown(vm)
    check_state(x, vm, "Halted")


def test_start_and_clean_shutdown(x, vm):
    x.VM.start(vm, False, False)
    x.VM.clean_shutdown(vm)
    check_state(x, vm, "Halted")


def test_start_paused_unpause_pause(x, vm):
    x.VM.start(vm, True, False)
    check_state(x, vm, "Paused")
    x.VM.unpause(vm)
    check_state(x, vm, "Running")
    x.VM.pause(vm)
    check_state(x, vm, "Paused")
    x.VM.hard_shutdown(vm)
    check_state(x, vm, "Halted")


def test_suspend_resume(x, vm):
    x.VM.start(vm, False, False)
    x.VM.suspend(vm)
    check_state(x, vm, "Suspended")
    x.VM.resume(vm, False, False)
    check_state(x, vm, "Running")
    x.VM.suspend(vm)
    x.VM.resume(vm, True, False)
    check_state(x, vm, "Paused")
    x.VM.unpause(vm)
    check_state(x, vm, "Running")
    x.VM.hard_shutdown(vm)


def suspend_allowed_when_paused(x):
    vm = new_vm(x, unique("probe-paused"))
    x.VM.start(vm, True, False)
    allowed = "suspend" in x.VM.get_allowed_operations(vm)
    x.VM.hard_shutdown(vm)
    x.VM.destroy(vm)
    return allowed


def test_suspend_from_paused(x, vm):
    """Suspending a paused VM works exactly when allowed_operations says so (see OPTIONAL_IN)."""
    x.VM.start(vm, True, False)
    if "suspend" in x.VM.get_allowed_operations(vm):
        x.VM.suspend(vm)
        check_state(x, vm, "Suspended")
        x.VM.resume(vm, True, False)
        check_state(x, vm, "Paused")
    else:
        with failure_code("VM_BAD_POWER_STATE") as ei:
            x.VM.suspend(vm)
        d = ei.value.details
        assert d[1] == vm and d[3] == "paused" and set(d[2].split(", ")) == {"running"}, d
        check_state(x, vm, "Paused")
    x.VM.hard_shutdown(vm)


def test_suspend_vdi(x, vm):
    """While suspended, suspend_VDI is a real VDI (type suspend); after resume or hard_shutdown it
    is NULL again and no reference dangles."""
    x.VM.start(vm, False, False)
    assert x.VM.get_suspend_VDI(vm) == NULL
    x.VM.suspend(vm)
    svdi = x.VM.get_suspend_VDI(vm)
    assert svdi != NULL
    assert svdi in x.VDI.get_all(), f"suspend_VDI {svdi} is not a VDI"
    assert x.VDI.get_type(svdi) == "suspend"
    x.VM.resume(vm, False, False)
    assert x.VM.get_suspend_VDI(vm) == NULL
    x.VM.suspend(vm)
    assert x.VM.get_suspend_VDI(vm) in x.VDI.get_all()
    x.VM.hard_shutdown(vm)
    assert x.VM.get_suspend_VDI(vm) == NULL
    assert_integrity(x, only=[vm, svdi])


def test_hard_shutdown_of_suspended(x, vm):
    x.VM.start(vm, False, False)
    x.VM.suspend(vm)
    x.VM.hard_shutdown(vm)
    check_state(x, vm, "Halted")


def test_reboots(x, vm):
    x.VM.start(vm, False, False)
    x.VM.clean_reboot(vm)
    check_state(x, vm, "Running")
    x.VM.hard_reboot(vm)
    check_state(x, vm, "Running")
    x.VM.pause(vm)
    x.VM.hard_reboot(vm)  # allowed from Paused too
    assert state(x, vm) in ("Running", "Paused")
    x.VM.hard_shutdown(vm)
    check_state(x, vm, "Halted")


def test_start_on_and_resume_on(x, vm):
    host = the_host(x)
    x.VM.start_on(vm, host, False, False)
    check_state(x, vm, "Running")
    x.VM.suspend(vm)
    x.VM.resume_on(vm, host, False, False)
    check_state(x, vm, "Running")
    x.VM.suspend(vm)
    x.VM.resume_on(vm, host, True, False)
    check_state(x, vm, "Paused")
    x.VM.hard_shutdown(vm)
    x.VM.start_on(vm, host, True, False)
    check_state(x, vm, "Paused")
    x.VM.hard_shutdown(vm)


def test_start_on_unknown_host_is_handle_invalid(x, vm):
    with failure("HANDLE_INVALID", "host", vm):
        x.VM.start_on(vm, vm, False, False)
    check_state(x, vm, "Halted")


def test_domid_and_metrics_follow_power_state(x, vm):
    assert x.VM.get_domid(vm) == "-1"
    x.VM.start(vm, False, False)
    assert int(x.VM.get_domid(vm)) >= 1
    metrics = x.VM.get_metrics(vm)
    assert metrics != NULL and metrics in x.VM_metrics.get_all()
    x.VM.hard_shutdown(vm)
    assert x.VM.get_domid(vm) == "-1"


# ------------------------------------------------------------------ bad power state, exact params


@pytest.mark.parametrize(
    "op,args,from_state,expected",
    [
        ("start", (False, False), "Running", "halted"),
        ("start", (False, False), "Paused", "halted"),
        ("start", (False, False), "Suspended", "halted"),
        ("pause", (), "Halted", "running"),
        ("pause", (), "Paused", "running"),
        ("unpause", (), "Running", "paused"),
        ("unpause", (), "Halted", "paused"),
        ("resume", (False, False), "Halted", "suspended"),
        ("resume", (False, False), "Running", "suspended"),
        ("clean_shutdown", (), "Halted", "running"),
        ("clean_shutdown", (), "Suspended", "running"),
        ("clean_reboot", (), "Halted", "running"),
        ("clean_reboot", (), "Paused", "running"),
    ],
)
def test_bad_power_state_exact(x, vm, op, args, from_state, expected):
    bring_to(x, vm, from_state)
    with failure("VM_BAD_POWER_STATE", vm, expected, from_state.lower()):
        getattr(x.VM, op)(vm, *args)
    assert state(x, vm) == from_state
    assert x.VM.get_current_operations(vm) == {}
    bring_to(x, vm, "Halted")


@pytest.mark.parametrize("op,args", [("hard_shutdown", ()), ("hard_reboot", ()), ("suspend", ())])
def test_bad_power_state_multi_state_ops(x, vm, op, args):
    """Ops allowed in several states list them all, comma-separated (xapi: "paused, suspended, running")."""
    with failure_code("VM_BAD_POWER_STATE") as ei:
        getattr(x.VM, op)(vm, *args)
    d = ei.value.details
    assert len(d) == 4 and d[1] == vm and d[3] == "halted", d
    want = {
        "hard_shutdown": {"paused", "suspended", "running"},
        "hard_reboot": {"paused", "running"},
        "suspend": {"running"} | ({"paused"} if suspend_allowed_when_paused(x) else set()),
    }[op]
    assert set(d[2].split(", ")) == want, d


def test_destroy_running_vm_is_refused(x, vm):
    x.VM.start(vm, False, False)
    with failure_code("VM_BAD_POWER_STATE") as ei:
        x.VM.destroy(vm)
    d = ei.value.details
    assert d[1] == vm and d[3] == "running" and set(d[2].split(", ")) == {"halted", "suspended"}, d
    assert vm in x.VM.get_all()
    x.VM.hard_shutdown(vm)
    x.VM.destroy(vm)
    assert vm not in x.VM.get_all()


def bring_to(x, vm, target):
    cur = state(x, vm)
    if cur == target:
        return
    if cur != "Halted":
        x.VM.hard_shutdown(vm)
    if target == "Running":
        x.VM.start(vm, False, False)
    elif target == "Paused":
        x.VM.start(vm, True, False)
    elif target == "Suspended":
        x.VM.start(vm, False, False)
        x.VM.suspend(vm)
    assert state(x, vm) == target


# ------------------------------------------------------------------ assert_operation_valid & co


def test_assert_operation_valid(x, vm):
    x.VM.assert_operation_valid(vm, "start")
    with failure("VM_BAD_POWER_STATE", vm, "running", "halted"):
        x.VM.assert_operation_valid(vm, "pause")
    x.VM.start(vm, False, False)
    x.VM.assert_operation_valid(vm, "pause")
    with failure("VM_BAD_POWER_STATE", vm, "halted", "running"):
        x.VM.assert_operation_valid(vm, "start")
    x.VM.hard_shutdown(vm)


def test_get_boot_record(x, vm):
    x.VM.start(vm, False, False)
    boot = x.VM.get_boot_record(vm)
    rec = x.VM.get_record(vm)
    assert boot["uuid"] == rec["uuid"]
    assert boot["memory_static_max"] == rec["memory_static_max"]
    x.VM.hard_shutdown(vm)


def test_vcpus_settings(x):
    vm = new_vm(x, unique("vcpus"), vcpus=1)
    x.VM.set_VCPUs_max(vm, "4")
    x.VM.set_VCPUs_at_startup(vm, "2")
    assert (x.VM.get_VCPUs_max(vm), x.VM.get_VCPUs_at_startup(vm)) == ("4", "2")
    x.VM.start(vm, False, False)
    x.VM.set_VCPUs_number_live(vm, "3")
    assert x.VM_metrics.get_VCPUs_number(x.VM.get_metrics(vm)) == "3"
    assert x.VM.get_VCPUs_at_startup(vm) == "3"
    x.VM.hard_shutdown(vm)


def test_vcpus_at_startup_above_max_is_refused(x):
    vm = new_vm(x, unique("vcpus-bad"), vcpus=2)
    with pytest.raises(XenAPI.Failure):
        x.VM.set_VCPUs_at_startup(vm, "8")
    assert x.VM.get_VCPUs_at_startup(vm) == "2"


def test_set_memory_limits(x, vm):
    x.VM.set_memory_limits(vm, str(128 * MiB), str(512 * MiB), str(256 * MiB), str(384 * MiB))
    rec = x.VM.get_record(vm)
    assert (rec["memory_static_min"], rec["memory_static_max"], rec["memory_dynamic_min"], rec["memory_dynamic_max"]) == (
        str(128 * MiB), str(512 * MiB), str(256 * MiB), str(384 * MiB))


def test_set_memory_limits_refused_when_running(x, vm):
    x.VM.start(vm, False, False)
    with failure("VM_BAD_POWER_STATE", vm, "halted", "running"):
        x.VM.set_memory_limits(vm, str(128 * MiB), str(512 * MiB), str(256 * MiB), str(384 * MiB))
    x.VM.hard_shutdown(vm)


def test_get_allowed_vbd_devices(x, vm):
    free = x.VM.get_allowed_VBD_devices(vm)
    assert free and all(d.isdigit() for d in free), free
    assert "0" in free
    vdi = x.VDI.create(vdi_record(local_sr(x), unique("devs")))
    x.VBD.create(vbd_record(vm, vdi, "0"))
    after = x.VM.get_allowed_VBD_devices(vm)
    assert "0" not in after
    assert set(after) == set(free) - {"0"}


# ------------------------------------------------------------------ memory admission


def refused_start_free_memory(x, vm, at_least):
    """Start `vm`, which must be refused with HOST_NOT_ENOUGH_FREE_MEMORY [needed, available];
    returns `available` (the host's free memory as the engine sees it)."""
    with failure_code("HOST_NOT_ENOUGH_FREE_MEMORY") as ei:
        x.VM.start(vm, False, False)
    d = ei.value.details
    assert len(d) == 3 and d[1].isdigit() and d[2].isdigit(), d
    needed, available = int(d[1]), int(d[2])
    assert needed >= at_least, d
    assert available < needed, d
    assert state(x, vm) == "Halted"
    assert x.VM.get_resident_on(vm) == NULL
    assert x.VM.get_current_operations(vm) == {}
    return available


def test_vm_larger_than_host_memory_does_not_start(x):
    host = the_host(x)
    total = int(x.host_metrics.get_memory_total(x.host.get_metrics(host)))
    assert total > 0
    huge = (total // MiB + 1024) * MiB
    vm = new_vm(x, unique("huge"), memory=huge)
    available = refused_start_free_memory(x, vm, huge)
    assert 0 < available <= total


def test_memory_is_accounted_across_running_vms(x):
    host = the_host(x)
    total = int(x.host_metrics.get_memory_total(x.host.get_metrics(host)))
    probe = new_vm(x, unique("mem-probe"), memory=(total // MiB + 1024) * MiB)
    free = refused_start_free_memory(x, probe, total)
    size = (free * 6 // 10) // MiB * MiB
    a = new_vm(x, unique("mem-a"), memory=size)
    b = new_vm(x, unique("mem-b"), memory=size)
    x.VM.start(a, False, False)
    try:
        free_now = refused_start_free_memory(x, b, size)
        assert free_now <= free - size, (free_now, free, size)
    finally:
        x.VM.hard_shutdown(a)
    # the memory comes back after shutdown
    assert refused_start_free_memory(x, probe, total) == free
    x.VM.start(b, False, False)
    x.VM.hard_shutdown(b)


def test_compute_free_memory(x):
    """host.compute_free_memory (the datamodel's way to read free memory) follows running VMs."""
    host = the_host(x)
    free = int(x.host.compute_free_memory(host))
    assert free > 0
    vm = new_vm(x, unique("mem-compute"), memory=1024 * MiB)
    x.VM.start(vm, False, False)
    assert int(x.host.compute_free_memory(host)) <= free - 1024 * MiB
    x.VM.hard_shutdown(vm)
    assert int(x.host.compute_free_memory(host)) == free


# ------------------------------------------------------------------ templates


def test_template_cannot_start(x):
    t = template(x)
    assert x.VM.get_is_a_template(t) is True
    with failure("VM_IS_TEMPLATE", t, "start"):
        x.VM.start(t, False, False)
    with failure("VM_IS_TEMPLATE", t, "start_on"):
        x.VM.start_on(t, the_host(x), False, False)
    assert x.VM.get_power_state(t) == "Halted"
    assert "start" not in x.VM.get_allowed_operations(t)


def disk_spec(x, vm):
    root = ET.fromstring(x.VM.get_other_config(vm)["disks"])
    assert root.tag == "provision"
    return [d.attrib for d in root.findall("disk")]


def test_template_has_provision_spec(x):
    t = template(x)
    disks = disk_spec(x, t)
    assert disks, "Other install media has no <disk> in other_config:disks"
    for d in disks:
        assert {"device", "size", "sr", "bootable", "type"} <= set(d), d
        assert int(d["size"]) > 0


def test_clone_provision_start_from_template(x):
    t = template(x)
    spec = disk_spec(x, t)
    name = unique("from-template")
    vm = x.VM.clone(t, name)
    rec = x.VM.get_record(vm)
    assert rec["name_label"] == name
    assert rec["is_a_template"] is True  # a clone of a template is a template (as in xapi)
    assert rec["uuid"] != x.VM.get_uuid(t)
    assert rec["VBDs"] == []
    x.VM.provision(vm)
    vbds = x.VM.get_VBDs(vm)
    assert len(vbds) == len(spec)
    by_dev = {x.VBD.get_userdevice(v): v for v in vbds}
    assert set(by_dev) == {d["device"] for d in spec}
    default_sr = local_sr(x)
    for d in spec:
        vbd = x.VBD.get_record(by_dev[d["device"]])
        vdi = x.VDI.get_record(vbd["VDI"])
        assert vdi["virtual_size"] == d["size"]
        assert vdi["type"] == d["type"]
        assert vbd["bootable"] is (d["bootable"] == "true")
        assert vdi["SR"] == (default_sr if d["sr"] == "" else x.SR.get_by_uuid(d["sr"]))
        assert by_dev[d["device"]] in vdi["VBDs"]
    assert "disks" not in x.VM.get_other_config(vm), "provision leaves other_config:disks behind"
    x.VM.set_is_a_template(vm, False)
    x.VM.start(vm, False, False)
    check_state(x, vm, "Running")
    x.VM.hard_shutdown(vm)
    assert_integrity(x, only=[vm])


def test_provision_of_non_template_is_refused(x, vm):
    with pytest.raises(XenAPI.Failure):
        x.VM.provision(vm)
    assert x.VM.get_VBDs(vm) == []


def test_clone_copies_disks(x):
    src, vdi, _ = new_vm_with_disk(x, unique("clone-src"))
    clone = x.VM.clone(src, "the-clone")
    crec = x.VM.get_record(clone)
    assert crec["name_label"] == "the-clone"
    assert crec["is_a_template"] is False
    assert crec["power_state"] == "Halted"
    assert len(crec["VBDs"]) == 1
    cvdi = x.VBD.get_VDI(crec["VBDs"][0])
    assert cvdi != vdi
    assert x.VDI.get_virtual_size(cvdi) == x.VDI.get_virtual_size(vdi)
    assert x.VDI.get_SR(cvdi) == x.VDI.get_SR(vdi)
    # the source is untouched
    assert x.VBD.get_VDI(x.VM.get_VBDs(src)[0]) == vdi
    assert_integrity(x, only=[src, clone])


def test_clone_of_running_vm_is_refused(x):
    src, _, _ = new_vm_with_disk(x, unique("clone-running"))
    x.VM.start(src, False, False)
    before = set(x.VM.get_all())
    with failure("VM_BAD_POWER_STATE", src, "halted", "running"):
        x.VM.clone(src, "nope")
    assert set(x.VM.get_all()) == before
    x.VM.hard_shutdown(src)


def test_copy_to_sr(x):
    src, vdi, _ = new_vm_with_disk(x, unique("copy-src"))
    sr = local_sr(x)
    cp = x.VM.copy(src, "the-copy", sr)
    rec = x.VM.get_record(cp)
    assert rec["name_label"] == "the-copy"
    assert len(rec["VBDs"]) == 1
    cvdi = x.VBD.get_VDI(rec["VBDs"][0])
    assert cvdi != vdi
    assert x.VDI.get_SR(cvdi) == sr
    assert x.VDI.get_virtual_size(cvdi) == x.VDI.get_virtual_size(vdi)
    assert x.VDI.get_snapshot_of(cvdi) == NULL
    assert_integrity(x, only=[src, cp])


def test_snapshot_with_two_arguments(x):
    """VM.snapshot(vm, new_name): ignore_vdis is optional in the datamodel."""
    vm, _, _ = new_vm_with_disk(x, unique("snap2"))
    snap = x.VM.snapshot(vm, "two-args")
    assert x.VM.get_snapshot_of(snap) == vm


def test_snapshot_and_revert(x):
    vm, vdi, _ = new_vm_with_disk(x, unique("snap"))
    x.VM.set_name_description(vm, "before")
    snap = x.VM.snapshot(vm, "snap-1", [])
    srec = x.VM.get_record(snap)
    assert srec["is_a_snapshot"] is True
    assert srec["is_a_template"] is True
    assert srec["snapshot_of"] == vm
    assert snap in x.VM.get_snapshots(vm)
    assert srec["name_label"] == "snap-1"
    assert len(srec["VBDs"]) == 1
    svdi = x.VBD.get_VDI(srec["VBDs"][0])
    assert svdi != vdi
    assert x.VDI.get_is_a_snapshot(svdi) is True
    assert x.VDI.get_snapshot_of(svdi) == vdi
    assert svdi in x.VDI.get_snapshots(vdi)
    # a snapshot cannot be started (xapi: VM_IS_SNAPSHOT [snap, "start"])
    with pytest.raises(XenAPI.Failure) as ei:
        x.VM.start(snap, False, False)
    assert ei.value.details[0] in ("VM_IS_SNAPSHOT", "VM_IS_TEMPLATE"), ei.value.details
    assert ei.value.details[1:] == [snap, "start"], ei.value.details
    # change the VM, then revert
    x.VM.set_name_description(vm, "after")
    x.VM.set_VCPUs_max(vm, "2")
    x.VM.start(vm, False, False)
    x.VM.hard_shutdown(vm)
    x.VM.revert(snap)
    rec = x.VM.get_record(vm)
    # xapi's revert restores the VM's metadata from the snapshot (name_description, VCPUs, memory...;
    # not uuid, tags, snapshots) and replaces its disks by copies of the snapshot's; the power
    # state becomes the snapshot's (Halted here)
    got = {k: rec[k] for k in ("name_description", "VCPUs_max", "power_state")}
    assert got == {"name_description": "before", "VCPUs_max": "1", "power_state": "Halted"}, got
    assert snap in rec["snapshots"]
    assert len(rec["VBDs"]) == 1
    rvdi = x.VBD.get_VDI(rec["VBDs"][0])
    assert x.VDI.get_virtual_size(rvdi) == x.VDI.get_virtual_size(svdi)
    assert_integrity(x, only=[vm, snap])


def test_revert_of_non_snapshot_is_refused(x, vm):
    with pytest.raises(XenAPI.Failure):
        x.VM.revert(vm)
    assert x.VM.get_power_state(vm) == "Halted"


def test_destroy_snapshot_keeps_vm(x):
    vm, _, _ = new_vm_with_disk(x, unique("snap-destroy"))
    snap = x.VM.snapshot(vm, "s", [])
    x.VM.destroy(snap)
    assert snap not in x.VM.get_snapshots(vm)
    assert vm in x.VM.get_all()
    assert_integrity(x, only=[vm, snap])


def test_make_template_from_vm(x, vm):
    x.VM.set_is_a_template(vm, True)
    with failure("VM_IS_TEMPLATE", vm, "start"):
        x.VM.start(vm, False, False)
    x.VM.set_is_a_template(vm, False)
    x.VM.start(vm, False, False)
    x.VM.hard_shutdown(vm)


def test_lifecycle_keeps_integrity(x):
    assert_integrity(x)
