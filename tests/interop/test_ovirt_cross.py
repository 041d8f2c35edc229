"""One inventory, three APIs: a VM made through the oVirt REST API (real `ovirtsdk4`) is seen
and driven through XenAPI (real `XenAPI` client) and the z/VM Cloud Connector API (real
`zvmconnector`), and VMs made through those two show up in oVirt and are driven through it.
The engine serves all three listeners (`ovirt_zvm_engine`, simulated host)."""

from __future__ import annotations

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

import xapitest
from threeapis import system, x, zvm  # noqa: F401 (fixtures)
from conftest import TINY_GUEST
from ovirttest import GiB, MiB, ZERO_ID, blank_vm, data_domain, wait_disk_ok, wait_for, wait_vm_status


def status(system, vm_id):
    return system.vms_service().vm_service(vm_id).get().status


def test_an_ovirt_vm_is_seen_and_driven_by_xenapi_and_zvm(system, x, zvm):
    kernel = str(TINY_GUEST / "vmlinuz")
    vm = system.vms_service().add(blank_vm("OVX1", memory=256 * MiB, sockets=2, cores=1,
                                           os=types.OperatingSystem(kernel=kernel, cmdline="console=ttyS0")))
    svc = system.vms_service().vm_service(vm.id)
    sd = data_domain(system)
    att = svc.disk_attachments_service().add(types.DiskAttachment(
        disk=types.Disk(name="OVX1_disk0", format=types.DiskFormat.COW, provisioned_size=1 * GiB,
                        storage_domains=[types.StorageDomain(id=sd.id)]),
        interface=types.DiskInterface.VIRTIO, bootable=True, active=True))
    wait_disk_ok(system.disks_service().disk_service(att.disk.id))

    # XenAPI: the same object, by the oVirt id.
    ref = x.VM.get_by_uuid(vm.id)
    rec = x.VM.get_record(ref)
    assert rec["name_label"] == "OVX1"
    assert int(rec["memory_static_max"]) == 256 * MiB and int(rec["memory_dynamic_max"]) == 256 * MiB
    assert int(rec["VCPUs_max"]) == 2 and int(rec["VCPUs_at_startup"]) == 2
    assert rec["PV_kernel"] == kernel and rec["PV_args"] == "console=ttyS0"
    vdis = [x.VBD.get_VDI(b) for b in rec["VBDs"] if x.VBD.get_type(b) == "Disk"]
    assert [x.VDI.get_uuid(v) for v in vdis] == [att.disk.id]
    assert int(x.VDI.get_virtual_size(vdis[0])) == 1 * GiB

    # z/VM: a guest of that name.
    assert "OVX1" in zvm("guest_list")
    info = zvm("guest_get_info", "OVX1")
    assert info["max_mem_kb"] == 256 * 1024 and info["num_cpu"] == 2, info
    direct = zvm("guest_get_definition_info", "OVX1")["user_direct"]
    assert direct[0].split()[:2] == ["USER", "OVX1"], direct
    assert direct[0].split()[3:5] == ["256M", "256M"], direct
    assert sum(l.startswith("COMMAND DEFINE CPU") for l in direct) == 2, direct

    # Driven through XenAPI, seen in oVirt.
    x.VM.start(ref, False, False)
    assert status(system, vm.id) == types.VmStatus.UP
    assert zvm("guest_get_power_state", "OVX1") == "on"
    x.VM.hard_shutdown(ref)
    assert status(system, vm.id) == types.VmStatus.DOWN
    # Driven through z/VM, seen in oVirt.
    zvm("guest_start", "OVX1")
    assert status(system, vm.id) == types.VmStatus.UP
    assert x.VM.get_power_state(ref) == "Running"
    zvm("guest_pause", "OVX1")
    assert status(system, vm.id) == types.VmStatus.PAUSED
    zvm("guest_unpause", "OVX1")
    zvm("guest_stop", "OVX1")
    assert status(system, vm.id) == types.VmStatus.DOWN
    # Changed through XenAPI, seen in oVirt.
    x.VM.set_name_description(ref, "described through XenAPI")
    assert svc.get().description == "described through XenAPI"
    # Removed through z/VM, gone from oVirt.
    zvm("guest_delete", "OVX1")
    with pytest.raises(sdk.NotFoundError):
        svc.get()


def test_a_xenapi_clone_shows_up_in_ovirt_and_is_driven_by_it(system, x):
    tpl = xapitest.template(x)
    ref = x.VM.clone(tpl, "xapi-made-1")
    x.VM.provision(ref)
    x.VM.set_is_a_template(ref, False)
    uuid = x.VM.get_uuid(ref)
    listed = {v.id: v for v in system.vms_service().list()}
    assert uuid in listed
    vm = listed[uuid]
    assert vm.name == "xapi-made-1"
    assert vm.memory == int(x.VM.get_memory_static_max(ref))
    topo = vm.cpu.topology
    assert topo.sockets * topo.cores * topo.threads == int(x.VM.get_VCPUs_max(ref))
    assert [v.id for v in system.vms_service().list(search="name=xapi-made-1")] == [uuid]
    svc = system.vms_service().vm_service(uuid)
    svc.start()
    wait_vm_status(svc, types.VmStatus.UP)
    assert x.VM.get_power_state(ref) == "Running"
    svc.stop()
    wait_vm_status(svc, types.VmStatus.DOWN)
    assert x.VM.get_power_state(ref) == "Halted"
    svc.update(types.Vm(description="described through oVirt"))
    assert x.VM.get_name_description(ref) == "described through oVirt"
    svc.remove()
    assert x.VM.get_all_records_where(f'field "uuid" = "{uuid}"') == {}


def test_a_zvm_guest_shows_up_in_ovirt_and_is_driven_by_it(system, x, zvm):
    zvm("guest_create", "ZOV2", 2, 512, max_cpu=2, max_mem="512M",
        disk_list=[{"size": "100m", "is_boot_disk": True}])
    [vm] = [v for v in system.vms_service().list() if v.name == "ZOV2"]
    assert vm.memory == 512 * MiB
    topo = vm.cpu.topology
    assert topo.sockets * topo.cores * topo.threads == 2
    assert vm.status == types.VmStatus.DOWN and vm.template.id == ZERO_ID
    svc = system.vms_service().vm_service(vm.id)
    [att] = svc.disk_attachments_service().list()
    disk = system.disks_service().disk_service(att.disk.id).get()
    assert disk.provisioned_size >= 100 * MiB
    assert att.bootable is True
    svc.start()
    wait_vm_status(svc, types.VmStatus.UP)
    assert zvm("guest_get_power_state", "ZOV2") == "on"
    svc.stop()
    wait_vm_status(svc, types.VmStatus.DOWN)
    assert zvm("guest_get_power_state", "ZOV2") == "off"
    # Changed through oVirt, seen by z/VM.
    svc.update(types.Vm(memory=768 * MiB, memory_policy=types.MemoryPolicy(guaranteed=768 * MiB, max=768 * MiB)))
    assert zvm("guest_get_info", "ZOV2")["max_mem_kb"] == 768 * 1024
    # Removed through oVirt, gone from z/VM.
    svc.remove()
    wait_for(lambda: zvm("guest_list"), lambda guests: "ZOV2" not in guests, what="ZOV2 gone from z/VM")
    r = zvm.raw("guest_get_info", "ZOV2")
    assert r["overallRC"] == 404, r
