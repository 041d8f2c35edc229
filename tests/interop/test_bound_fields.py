"""Bound fields (the seed's "Relationships Between Classes"): creating or destroying one side updates
the other side automatically."""

import XenAPI

from xapitest import (
    NULL,
    assert_integrity,
    failure,
    local_sr,
    management_network,
    new_vm,
    the_host,
    unique,
    vbd_record,
    vdi_record,
    vif_record,
)


def test_vdi_create_destroy_updates_sr_vdis(x):
    sr = local_sr(x)
    vdi = x.VDI.create(vdi_record(sr, unique("bound-vdi")))
    assert x.VDI.get_SR(vdi) == sr
    assert vdi in x.SR.get_VDIs(sr)
    assert vdi in x.SR.get_record(sr)["VDIs"]
    x.VDI.destroy(vdi)
    assert vdi not in x.SR.get_VDIs(sr)
    assert_integrity(x, ["SR", "VDI"])


def test_vbd_create_destroy_updates_vm_and_vdi(x):
    vm = new_vm(x, unique("bound-vbd"))
    vdi = x.VDI.create(vdi_record(local_sr(x), unique("bound-vbd-disk")))
    vbd = x.VBD.create(vbd_record(vm, vdi, "0"))
    assert x.VBD.get_VM(vbd) == vm and x.VBD.get_VDI(vbd) == vdi
    assert x.VM.get_VBDs(vm) == [vbd]
    assert x.VDI.get_VBDs(vdi) == [vbd]
    vbd2 = x.VBD.create(vbd_record(vm, vdi, "1", mode="RO"))
    assert sorted(x.VM.get_VBDs(vm)) == sorted([vbd, vbd2])
    assert sorted(x.VDI.get_VBDs(vdi)) == sorted([vbd, vbd2])
    x.VBD.destroy(vbd)
    assert x.VM.get_VBDs(vm) == [vbd2]
    assert x.VDI.get_VBDs(vdi) == [vbd2]
    x.VBD.destroy(vbd2)
    assert x.VM.get_VBDs(vm) == []
    assert x.VDI.get_VBDs(vdi) == []
    assert_integrity(x, ["VM", "VBD", "VDI", "SR"])


def test_empty_cd_vbd_has_null_vdi(x):
    vm = new_vm(x, unique("bound-cd"))
    vbd = x.VBD.create(vbd_record(vm, NULL, "3", type="CD", mode="RO", empty=True))
    assert x.VBD.get_VDI(vbd) == NULL
    assert x.VBD.get_empty(vbd) is True
    assert vbd in x.VM.get_VBDs(vm)
    assert_integrity(x, ["VM", "VBD", "VDI"])


def test_vbd_create_with_unknown_vm_is_handle_invalid(x):
    vdi = x.VDI.create(vdi_record(local_sr(x), unique("orphan")))
    bogus = "OpaqueRef:00000000-0000-0000-0000-000000000000"
    with failure("HANDLE_INVALID", "VM", bogus):
        x.VBD.create(vbd_record(bogus, vdi, "0"))
    assert x.VDI.get_VBDs(vdi) == []


def test_vif_create_destroy_updates_vm_and_network(x):
    vm = new_vm(x, unique("bound-vif"))
    net = management_network(x)
    vif = x.VIF.create(vif_record(vm, net, "0"))
    assert x.VIF.get_VM(vif) == vm and x.VIF.get_network(vif) == net
    assert x.VM.get_VIFs(vm) == [vif]
    assert vif in x.network.get_VIFs(net)
    x.VIF.destroy(vif)
    assert x.VM.get_VIFs(vm) == []
    assert vif not in x.network.get_VIFs(net)
    assert_integrity(x, ["VM", "VIF", "network"])


def test_vif_on_new_network(x):
    vm = new_vm(x, unique("bound-vif2"))
    net = x.network.create({"name_label": unique("bound-net"), "name_description": "", "MTU": "1500", "other_config": {}, "tags": []})
    vifs = [x.VIF.create(vif_record(vm, net, str(i))) for i in range(3)]
    assert sorted(x.network.get_VIFs(net)) == sorted(vifs)
    assert sorted(x.VM.get_VIFs(vm)) == sorted(vifs)
    for v in vifs:
        x.VIF.destroy(v)
    assert x.network.get_VIFs(net) == []


def test_vm_destroy_leaves_no_dangling_references(x):
    """Whether VM.destroy cascades to its VBDs/VIFs (xapi) or refuses while they exist (the seed's
    non-cascading rule), no reference may dangle afterwards."""
    vm = new_vm(x, unique("bound-destroy"))
    vdi = x.VDI.create(vdi_record(local_sr(x), unique("bound-destroy-disk")))
    vbd = x.VBD.create(vbd_record(vm, vdi, "0"))
    vif = x.VIF.create(vif_record(vm, management_network(x), "0"))
    try:
        x.VM.destroy(vm)
    except XenAPI.Failure:
        assert vm in x.VM.get_all()
    else:
        assert vm not in x.VM.get_all()
        assert vbd not in x.VBD.get_all()
        assert vif not in x.VIF.get_all()
        assert vdi in x.VDI.get_all(), "VM.destroy must not destroy disks"
        assert x.VDI.get_VBDs(vdi) == []
    assert_integrity(x, only=[vm, vdi, vbd, vif])


def test_resident_vms_follow_start_and_shutdown(x):
    host = the_host(x)
    vm = new_vm(x, unique("bound-resident"))
    assert x.VM.get_resident_on(vm) == NULL
    assert vm not in x.host.get_resident_VMs(host)
    x.VM.start(vm, False, False)
    assert x.VM.get_resident_on(vm) == host
    assert vm in x.host.get_resident_VMs(host)
    x.VM.suspend(vm)
    assert x.VM.get_resident_on(vm) == NULL
    assert vm not in x.host.get_resident_VMs(host)
    x.VM.resume(vm, False, False)
    assert x.VM.get_resident_on(vm) == host
    assert vm in x.host.get_resident_VMs(host)
    x.VM.clean_shutdown(vm)
    assert x.VM.get_resident_on(vm) == NULL
    assert vm not in x.host.get_resident_VMs(host)
    x.VM.start(vm, True, False)
    assert vm in x.host.get_resident_VMs(host)
    x.VM.hard_shutdown(vm)
    assert vm not in x.host.get_resident_VMs(host)
    assert_integrity(x, ["VM", "host"])


def test_vdi_and_vbd_sets_survive_restart(engine, x):
    vm = new_vm(x, unique("bound-restart"))
    vdi = x.VDI.create(vdi_record(local_sr(x), unique("bound-restart-disk")))
    vbd = x.VBD.create(vbd_record(vm, vdi, "0"))
    engine.restart()
    # the client logs in again by itself if the session did not survive the restart
    assert x.VM.get_VBDs(vm) == [vbd]
    assert x.VDI.get_VBDs(vdi) == [vbd]
    assert vdi in x.SR.get_VDIs(x.VDI.get_SR(vdi))
    assert_integrity(x, only=[vm, vdi, vbd])


def test_pbd_host_and_sr_bound(x):
    host = the_host(x)
    for ref, pbd in x.PBD.get_all_records().items():
        assert ref in x.host.get_PBDs(pbd["host"])
        assert ref in x.SR.get_PBDs(pbd["SR"])
    for ref, pif in x.PIF.get_all_records().items():
        assert ref in x.host.get_PIFs(host)
        assert ref in x.network.get_PIFs(pif["network"])
    for cpu in x.host.get_host_CPUs(host):
        assert x.host_cpu.get_host(cpu) == host
