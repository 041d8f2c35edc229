"""The oVirt REST API v4 facade through the real `ovirtsdk4` (PyPI `ovirt-engine-sdk-python`
4.6) and raw HTTP: the SSO token flow, HTTP Basic, content negotiation, status codes, the API
root, the inventory of a fresh engine, errors as the SDK raises them, snapshots, events and
jobs on the simulated host (`ovirt_engine`); then the documented VM flow on a real guest
(`ovirt_qemu_engine`: the tiny guest booted under QEMU from a VM added from `Blank`)."""

from __future__ import annotations

import datetime
import json
import re
import time

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest
import requests

import xapitest
from networld import wait_console
from ovirttest import (GiB, MiB, ZERO_ID, Raw, api_url, base_url, blank_vm, conn, connect, data_domain,  # noqa: F401
                       management_profile, unique, wait_disk_ok, wait_for, wait_job, wait_template_ok,
                       system, wait_vm_status, xml)

ROLES = {"UserRole", "PowerUserRole", "UserVmManager", "TemplateAdmin", "UserTemplateBasedVm", "SuperUser",
         "ClusterAdmin", "DataCenterAdmin", "StorageAdmin", "HostAdmin", "NetworkAdmin", "VmPoolAdmin"}


@pytest.fixture(scope="module")
def raw(ovirt_engine):
    return Raw(ovirt_engine)


def sso_token(eng, user="admin@internal", password=None):
    return requests.post(f"{base_url(eng)}/ovirt-engine/sso/oauth/token",
                         data={"grant_type": "password", "scope": "ovirt-app-api", "username": user,
                               "password": password or eng.password},
                         headers={"Accept": "application/json"}, timeout=30)


def bearer_get(eng, token, path="", **headers):
    url = api_url(eng) + (f"/{path}" if path else "")
    return requests.get(url, headers={"Authorization": f"Bearer {token}", **headers}, timeout=30)


# ---------------------------------------------------------------------------------------------
# authentication


def test_sso_token_endpoint_answers_oauth_json(ovirt_engine):
    r = sso_token(ovirt_engine)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert {"access_token", "scope", "exp", "token_type"} <= set(body), body
    assert body["access_token"]
    assert body["scope"] == "ovirt-app-api"
    assert body["token_type"].lower() == "bearer"
    now_ms = time.time() * 1000
    assert int(body["exp"]) > now_ms, body["exp"]
    # The token is good for the API.
    api = bearer_get(ovirt_engine, body["access_token"])
    assert api.status_code == 200, api.text
    assert xml(api).tag == "api"


def test_sso_token_refuses_a_bad_password_with_400_and_an_error(ovirt_engine):
    r = sso_token(ovirt_engine, password="not-the-password")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body.get("error_code") and body.get("error"), body
    assert "access_token" not in body
    r = requests.post(f"{base_url(ovirt_engine)}/ovirt-engine/sso/oauth/token",
                      data={"grant_type": "client_credentials"}, timeout=30)
    assert r.status_code == 400
    assert r.json().get("error_code"), r.text


def test_unknown_bearer_token_and_no_credentials_are_401(ovirt_engine):
    r = bearer_get(ovirt_engine, "no-such-token", "vms")
    assert r.status_code == 401, r.text
    assert r.headers.get("WWW-Authenticate"), r.headers
    r = requests.get(api_url(ovirt_engine) + "/vms", timeout=30)
    assert r.status_code == 401


def test_http_basic_is_accepted_and_checked(ovirt_engine):
    r = requests.get(api_url(ovirt_engine) + "/vms", auth=("admin@internal", ovirt_engine.password), timeout=30)
    assert r.status_code == 200, r.text
    assert xml(r).tag == "vms"
    r = requests.get(api_url(ovirt_engine) + "/vms", auth=("admin@internal", "wrong"), timeout=30)
    assert r.status_code == 401
    r = requests.get(api_url(ovirt_engine) + "/vms", auth=("nobody@internal", "x"), timeout=30)
    assert r.status_code == 401


def test_sso_logout_ends_the_token(ovirt_engine):
    token = sso_token(ovirt_engine).json()["access_token"]
    assert bearer_get(ovirt_engine, token).status_code == 200
    r = requests.post(f"{base_url(ovirt_engine)}/ovirt-engine/services/sso-logout",
                      data={"scope": "ovirt-app-api", "token": token}, timeout=30)
    assert r.status_code == 200, r.text
    assert "error" not in r.json()
    assert bearer_get(ovirt_engine, token).status_code == 401


def test_sdk_token_flow_connect_test_and_close_revokes(ovirt_engine):
    c = connect(ovirt_engine)
    assert c.test(raise_exception=True)
    token = c.authenticate()
    assert token
    # The SDK's token is an ordinary bearer token ...
    assert bearer_get(ovirt_engine, token, "vms").status_code == 200
    vms = c.system_service().vms_service().list()
    assert isinstance(vms, list)
    # ... which close() revokes through sso-logout.
    c.close()
    assert bearer_get(ovirt_engine, token, "vms").status_code == 401


def test_sdk_with_a_bad_password_raises_auth_error(ovirt_engine):
    c = connect(ovirt_engine, password="wrong-password")
    with pytest.raises(sdk.AuthError):
        c.test(raise_exception=True)
    c.close(logout=False)


# ---------------------------------------------------------------------------------------------
# protocol


def test_json_on_accept_application_json(ovirt_engine, system, raw):
    vm = system.vms_service().add(blank_vm(unique("json")))
    r = raw.get("vms", headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    doc = r.json()
    assert isinstance(doc["vm"], list), doc
    [mine] = [v for v in doc["vm"] if v["id"] == vm.id]
    assert mine["name"] == vm.name
    assert int(mine["memory"]) == 256 * MiB
    r = raw.get(f"vms/{vm.id}", headers={"Accept": "application/json"})
    assert r.json()["id"] == vm.id and r.json()["href"] == f"/ovirt-engine/api/vms/{vm.id}"
    # A JSON body is read as well.
    name = unique("jsonadd")
    r = raw.request("POST", "vms", headers={"Accept": "application/json", "Content-Type": "application/json"},
                    data=json.dumps({"name": name, "cluster": {"name": "Default"},
                                     "template": {"name": "Blank"}}))
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name
    system.vms_service().vm_service(r.json()["id"]).remove()
    system.vms_service().vm_service(vm.id).remove()


def test_version_header_and_v4_prefix(ovirt_engine, raw):
    r = raw.get("vms", headers={"Version": "4"})
    assert r.status_code == 200
    r = raw.get("/ovirt-engine/api/v4/vms")
    assert r.status_code == 200, r.text
    assert xml(r).tag == "vms"
    r = raw.get("vms", headers={"Version": "3"})
    assert r.status_code >= 400, "version 3 of the API was answered as if it were 4"


def test_add_is_201_delete_is_200_async_action_is_202(ovirt_engine, system, raw):
    name = unique("codes")
    r = raw.post("vms", f"<vm><name>{name}</name><cluster><name>Default</name></cluster>"
                        "<template><name>Blank</name></template></vm>")
    assert r.status_code == 201, r.text
    vm = xml(r)
    assert vm.tag == "vm" and vm.findtext("name") == name
    vm_id = vm.get("id")
    assert vm.get("href") == f"/ovirt-engine/api/vms/{vm_id}"
    assert vm.findtext("status") == "down"
    r = raw.post(f"vms/{vm_id}/start", "<action><async>true</async></action>")
    assert r.status_code == 202, r.text
    action = xml(r)
    job = action.find("job")
    assert job is not None and job.get("id"), r.text
    done = wait_job(system.jobs_service().job_service(job.get("id")))
    assert done.status == types.JobStatus.FINISHED, done.status
    wait_vm_status(system.vms_service().vm_service(vm_id), types.VmStatus.UP)
    r = raw.post(f"vms/{vm_id}/stop", "<action/>")
    assert r.status_code == 200, r.text
    assert xml(r).findtext("status") == "complete"
    r = raw.delete(f"vms/{vm_id}")
    assert r.status_code == 200, r.text          # never 204
    assert r.content
    assert raw.get(f"vms/{vm_id}").status_code == 404


def test_api_root(ovirt_engine, system, raw):
    api = system.get()
    assert api.product_info.name
    assert api.product_info.version.major == 4
    assert api.product_info.version.full_version
    assert api.special_objects.blank_template.id == ZERO_ID
    assert api.special_objects.root_tag.id == ZERO_ID
    vms = system.vms_service().list()
    assert api.summary.vms.total == len(vms)
    assert api.summary.vms.active == len([v for v in vms if v.status == types.VmStatus.UP])
    assert api.summary.hosts.total == len(system.hosts_service().list()) >= 1
    assert api.summary.storage_domains.total >= 1
    assert api.summary.users.total >= 1
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((api.time - now).total_seconds()) < 300, api.time
    assert api.authenticated_user is not None and api.authenticated_user.id
    root = xml(raw.get(""))
    links = {l.get("rel"): l.get("href") for l in root.findall("link")}
    for rel in ("vms", "hosts", "templates", "events", "clusters", "datacenters", "storagedomains",
                "networks", "users", "roles", "jobs", "tags", "vnicprofiles", "disks"):
        assert links.get(rel) == f"/ovirt-engine/api/{rel}", (rel, links)
    assert links["vms/search"] == "/ovirt-engine/api/vms?search={query}"
    for rel in ("hosts/search", "templates/search", "events/search"):
        assert rel in links, links


def test_fresh_engine_inventory(ovirt_engine, conn, system):
    [dc] = system.data_centers_service().list()
    assert dc.name == "Default"
    [cluster] = system.clusters_service().list()
    assert cluster.name == "Default"
    assert cluster.data_center.id == dc.id
    assert conn.follow_link(cluster.data_center).name == "Default"
    hosts = system.hosts_service().list()
    assert hosts and all(h.cluster.id == cluster.id for h in hosts)
    assert hosts[0].status == types.HostStatus.UP
    sd = data_domain(system)
    assert sd.name
    assert system.storage_domains_service().storage_domain_service(sd.id).get().id == sd.id
    profile = management_profile(system)
    assert profile.name == "ovirtmgmt"
    [blank] = [t for t in system.templates_service().list() if t.id == ZERO_ID]
    assert blank.name == "Blank"
    assert blank.memory == 1 * GiB
    users = system.users_service().list()
    # oVirt names the internal account admin@internal-authz (its authz profile), logged in as admin@internal
    assert [u for u in users if u.user_name in ("admin@internal", "admin@internal-authz")], \
        [(u.name, u.user_name) for u in users]
    roles = {r.name for r in system.roles_service().list()}
    assert ROLES <= roles, ROLES - roles


# ---------------------------------------------------------------------------------------------
# errors


def test_sdk_raises_not_found_error_on_404(system):
    missing = "11111111-2222-3333-4444-555555555555"
    for call in (lambda: system.vms_service().vm_service(missing).get(),
                 lambda: system.templates_service().template_service(missing).get(),
                 lambda: system.hosts_service().host_service(missing).get(),
                 lambda: system.disks_service().disk_service(missing).get(),
                 lambda: system.vms_service().vm_service(missing).remove(),
                 lambda: system.vms_service().vm_service(missing).start()):
        with pytest.raises(sdk.NotFoundError) as e:
            call()
        assert e.value.code == 404
        assert e.value.fault is not None and e.value.fault.reason, e.value


def test_sdk_raises_error_with_400_on_bad_requests(system):
    vms = system.vms_service()
    with pytest.raises(sdk.Error) as e:
        vms.add(types.Vm(name=unique("nocluster"), template=types.Template(name="Blank")))
    assert e.value.code == 400 and not isinstance(e.value, sdk.NotFoundError)
    assert e.value.fault.reason and e.value.fault.detail, e.value
    with pytest.raises(sdk.Error) as e:
        vms.list(search="name = = x")
    assert e.value.code == 400
    with pytest.raises(sdk.Error) as e:
        vms.add(blank_vm("bad name with spaces!"))
    assert e.value.code == 400
    with pytest.raises(sdk.Error) as e:
        vms.add(types.Vm(name=unique("badmem"), cluster=types.Cluster(name="Default"),
                         template=types.Template(name="Blank"), memory=-5))
    assert e.value.code == 400
    assert len([v for v in vms.list() if v.name and v.name.startswith(("nocluster", "badmem"))]) == 0


def test_faults_on_the_wire(raw):
    r = raw.get("vms/11111111-2222-3333-4444-555555555555")
    assert r.status_code == 404
    fault = xml(r)
    assert fault.tag == "fault" and fault.findtext("reason") and fault.findtext("detail"), r.text
    r = raw.get("vms/11111111-2222-3333-4444-555555555555", headers={"Accept": "application/json"})
    assert r.status_code == 404 and r.json().get("reason") and r.json().get("detail"), r.text
    r = raw.get("vms", params={"search": "name = = x"})
    assert r.status_code == 400 and xml(r).tag == "fault", r.text
    assert raw.get("nosuchcollection").status_code == 404
    r = raw.post("vms", "<vm><name>unclosed")
    assert r.status_code == 400 and xml(r).tag == "fault", r.text


def test_conflicts_are_409(system):
    vms = system.vms_service()
    name = unique("dup")
    vm = vms.add(blank_vm(name))
    with pytest.raises(sdk.Error) as e:
        vms.add(blank_vm(name))
    assert e.value.code == 409, e.value
    svc = vms.vm_service(vm.id)
    svc.start()
    wait_vm_status(svc, types.VmStatus.UP)
    with pytest.raises(sdk.Error) as e:
        svc.start()
    assert e.value.code == 409
    svc.stop()
    svc.remove()


# ---------------------------------------------------------------------------------------------
# snapshots, events and jobs on the simulated host


def test_snapshot_preview_then_undo_restores_the_current_configuration(system):
    vms = system.vms_service()
    vm = vms.add(blank_vm(unique("undo"), memory=256 * MiB))
    svc = vms.vm_service(vm.id)
    snaps = svc.snapshots_service()
    snap = snaps.add(types.Snapshot(description="at 256 MiB", persist_memorystate=False))
    snap_svc = snaps.snapshot_service(snap.id)
    wait_for(snap_svc.get, lambda s: s.snapshot_status == types.SnapshotStatus.OK, what="snapshot ok")
    kinds = {s.snapshot_type for s in snaps.list()}
    assert kinds == {types.SnapshotType.ACTIVE, types.SnapshotType.REGULAR}, kinds
    svc.update(types.Vm(memory=512 * MiB, memory_policy=types.MemoryPolicy(guaranteed=512 * MiB, max=512 * MiB)))
    assert svc.get().memory == 512 * MiB
    svc.preview_snapshot(snapshot=types.Snapshot(id=snap.id), restore_memory=False)
    wait_for(snap_svc.get, lambda s: s.snapshot_status == types.SnapshotStatus.IN_PREVIEW, what="in preview")
    wait_vm_status(svc, types.VmStatus.DOWN)
    assert svc.get().memory == 256 * MiB
    svc.undo_snapshot()
    wait_for(snap_svc.get, lambda s: s.snapshot_status == types.SnapshotStatus.OK, what="preview undone")
    wait_vm_status(svc, types.VmStatus.DOWN)
    assert svc.get().memory == 512 * MiB
    # A snapshot can be removed; then it is gone.
    snap_svc.remove()
    wait_for(lambda: [s.id for s in snaps.list()], lambda ids: snap.id not in ids, what="snapshot removed")
    with pytest.raises(sdk.NotFoundError):
        snap_svc.get()
    svc.remove()


def test_events_newest_first_and_from(system):
    events = system.events_service()
    first = events.list(max=1)
    marker = int(first[0].id) if first else 0
    vm = system.vms_service().add(blank_vm(unique("events")))
    svc = system.vms_service().vm_service(vm.id)
    svc.start()
    wait_vm_status(svc, types.VmStatus.UP)
    svc.stop()
    wait_vm_status(svc, types.VmStatus.DOWN)
    new = events.list(from_=marker)
    ids = [int(e.id) for e in new]
    assert len(ids) >= 3, [(e.id, e.description) for e in new]  # add, start, stop at least
    assert all(i > marker for i in ids), (marker, ids)
    assert ids == sorted(ids, reverse=True), ids
    assert all(e.time and e.severity and e.description and e.code is not None for e in new)
    mine = [e for e in new if (e.vm is not None and e.vm.id == vm.id) or vm.name in (e.description or "")]
    assert len(mine) >= 3, [(e.id, e.description, e.vm and e.vm.id) for e in new]
    everything = [int(e.id) for e in events.list()]
    assert everything == sorted(everything, reverse=True)
    assert [int(e.id) for e in events.list(max=2)] == everything[:2]
    assert events.list(from_=max(everything)) == []
    latest = events.event_service(str(everything[0])).get()
    assert int(latest.id) == everything[0]
    svc.remove()


def test_async_sdk_action_and_its_job(ovirt_engine, system, raw):
    vm = system.vms_service().add(blank_vm(unique("async")))
    svc = system.vms_service().vm_service(vm.id)
    # The SDK's async_=True sends <async>true</async>; the action returns before it is done.
    svc.start(async_=True)
    wait_vm_status(svc, types.VmStatus.UP)
    r = raw.post(f"vms/{vm.id}/stop", "<action><async>true</async></action>")
    assert r.status_code == 202, r.text
    job_id = xml(r).find("job").get("id")
    job_svc = system.jobs_service().job_service(job_id)
    job = wait_job(job_svc)
    assert job.status == types.JobStatus.FINISHED
    assert job.start_time and job.end_time and job.end_time >= job.start_time
    assert job.description
    assert job_id in {j.id for j in system.jobs_service().list()}
    wait_vm_status(svc, types.VmStatus.DOWN)
    # An async action that fails ends its job as failed.
    r = raw.post(f"vms/{vm.id}/stop", "<action><async>true</async></action>")
    assert r.status_code == 202, r.text
    job = wait_job(system.jobs_service().job_service(xml(r).find("job").get("id")))
    assert job.status == types.JobStatus.FAILED
    svc.remove()


# ---------------------------------------------------------------------------------------------
# the documented flow on a real guest (QEMU)


@pytest.fixture(scope="module")
def qconn(ovirt_qemu_engine):
    c = connect(ovirt_qemu_engine)
    yield c
    if ovirt_qemu_engine.alive:
        c.close()


@pytest.fixture(scope="module")
def qx(ovirt_qemu_engine):
    return ovirt_qemu_engine.session().xenapi


@pytest.fixture(scope="module")
def flow():
    """What the steps of the real-guest flow hand on to each other."""
    return {}


def need(flow, *keys):
    missing = [k for k in keys if k not in flow]
    if missing:
        pytest.fail(f"an earlier step of the flow failed (no {', '.join(missing)})", pytrace=False)
    return [flow[k] for k in keys]


def console(qx, ovirt_qemu_engine, vm_id, pattern, after=0, timeout=90):
    ref = qx.VM.get_by_uuid(vm_id)
    return wait_console(qx, ref, ovirt_qemu_engine.session()._session, pattern, after, timeout)


def test_scheduling_policies_and_units_are_readable(system):
    policies = system.scheduling_policies_service()
    listed = {p.name: p for p in policies.list()}
    assert set(listed) == {"none", "evenly_distributed", "vm_evenly_distributed", "power_saving",
                           "cluster_maintenance"}
    assert [p.name for p in listed.values() if p.default_policy] == ["none"]
    evenly = policies.policy_service(listed["evenly_distributed"].id)
    props = {p.name: p.value for p in evenly.get().properties}
    assert props["HighUtilization"] == "80" and props["CpuOverCommitDurationMinutes"] == "2"
    filters = evenly.filters_service().list()
    weights = evenly.weights_service().list()
    balances = evenly.balances_service().list()
    units = {u.id: u for u in system.scheduling_policy_units_service().list()}
    assert filters and weights and len(balances) == 1
    for member in filters + weights + balances:
        assert member.scheduling_policy_unit.id in units
    assert {units[f.scheduling_policy_unit.id].type.value for f in filters} == {"filter"}
    assert all(w.factor >= 1 for w in weights)
    assert units[balances[0].scheduling_policy_unit.id].type.value == "load_balancing"
    cluster = system.clusters_service().list()[0]
    assert cluster.scheduling_policy.id == listed["none"].id
    with pytest.raises(sdk.NotFoundError):
        policies.policy_service("no-such-policy").get()


class TestRealGuest:
    """Token flow, add from Blank with direct kernel boot, a disk and a NIC, start, snapshot,
    preview and commit, stop through an async job, template, thin VM, removal, events."""

    def test_tiny_linux_template_is_offered_with_its_kernel(self, qconn, qx, flow):
        tpl = xapitest.template(qx, "Tiny Linux")
        rec = qx.VM.get_record(tpl)
        flow["boot"] = (rec["PV_kernel"], rec["PV_ramdisk"], rec["PV_args"])
        [t] = qconn.system_service().templates_service().list(search="name=Tiny*")
        assert t.name == "Tiny Linux" and t.id == rec["uuid"]
        assert t.os.kernel == rec["PV_kernel"] and t.os.initrd == rec["PV_ramdisk"]
        assert t.os.cmdline == rec["PV_args"]
        flow["events_marker"] = max([int(e.id) for e in qconn.system_service().events_service().list(max=1)] or [0])

    def test_add_vm_from_blank_with_memory_cpu_and_kernel(self, qconn, qx, flow):
        [(kernel, initrd, args)] = need(flow, "boot")
        marker = unique("mark")
        name = unique("guest")
        vms = qconn.system_service().vms_service()
        vm = vms.add(blank_vm(name, memory=128 * MiB, sockets=1, cores=2,
                              description="a real guest through the oVirt API",
                              os=types.OperatingSystem(type="other_linux", kernel=kernel, initrd=initrd,
                                                       cmdline=f"{args} drover.marker={marker} drover.data=FIRST")))
        assert vm.name == name and vm.status == types.VmStatus.DOWN
        assert vm.memory == 128 * MiB
        assert (vm.cpu.topology.sockets, vm.cpu.topology.cores, vm.cpu.topology.threads) == (1, 2, 1)
        assert vm.os.kernel == kernel and vm.os.initrd == initrd
        assert vm.os.cmdline == f"{args} drover.marker={marker} drover.data=FIRST"
        assert vm.template.id == ZERO_ID
        assert qconn.follow_link(vm.cluster).name == "Default"
        [found] = vms.list(search=f"name={name}")
        assert found.id == vm.id
        assert vm.id in {v.id for v in vms.list()}
        # The same VM through XenAPI.
        ref = qx.VM.get_by_uuid(vm.id)
        assert qx.VM.get_name_label(ref) == name
        assert int(qx.VM.get_memory_static_max(ref)) == 128 * MiB
        assert int(qx.VM.get_VCPUs_max(ref)) == 2
        assert qx.VM.get_PV_kernel(ref) == kernel
        flow.update(vm_id=vm.id, name=name, marker=marker)

    def test_add_a_disk_and_a_nic(self, qconn, flow):
        (vm_id,) = need(flow, "vm_id")
        system = qconn.system_service()
        svc = system.vms_service().vm_service(vm_id)
        sd = data_domain(system)
        att = svc.disk_attachments_service().add(types.DiskAttachment(
            disk=types.Disk(name=f"{flow['name']}_data", format=types.DiskFormat.COW, provisioned_size=32 * MiB,
                            storage_domains=[types.StorageDomain(id=sd.id)]),
            interface=types.DiskInterface.VIRTIO, bootable=False, active=True))
        disk_id = att.disk.id
        assert att.id == disk_id
        disk = wait_disk_ok(system.disks_service().disk_service(disk_id))
        assert disk.provisioned_size == 32 * MiB
        assert disk.storage_domains[0].id == sd.id
        assert [a.disk.id for a in svc.disk_attachments_service().list()] == [disk_id]
        profile = management_profile(system)
        nic = svc.nics_service().add(types.Nic(name="nic1", interface=types.NicInterface.VIRTIO,
                                               vnic_profile=types.VnicProfile(id=profile.id)))
        assert nic.vnic_profile.id == profile.id
        assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", nic.mac.address.lower()), nic.mac.address
        assert [n.id for n in svc.nics_service().list()] == [nic.id]
        flow.update(disk_id=disk_id, mac=nic.mac.address.lower())

    def test_start_and_the_guest_boots_with_its_disk_nic_memory_and_cpus(self, qconn, qx, ovirt_qemu_engine, flow):
        vm_id, marker, mac = need(flow, "vm_id", "marker", "mac")
        system = qconn.system_service()
        svc = system.vms_service().vm_service(vm_id)
        svc.start()
        vm = wait_vm_status(svc, types.VmStatus.UP)
        assert vm.host is not None and vm.host.id in {h.id for h in system.hosts_service().list()}
        assert vm.start_time is not None
        assert vm_id in {v.id for v in system.vms_service().list(search="status=up")}
        console(qx, ovirt_qemu_engine, vm_id, re.escape(f"drover.marker={marker}"))
        kb = int(console(qx, ovirt_qemu_engine, vm_id, r"DROVER-GUEST mem_kb=(\d+)").group(1))
        assert 60 * 1024 < kb <= 128 * 1024, kb
        console(qx, ovirt_qemu_engine, vm_id, r"DROVER-GUEST cpus=2\b")
        console(qx, ovirt_qemu_engine, vm_id, r"DROVER-GUEST disks=\S*:65536\b")     # 32 MiB in sectors
        console(qx, ovirt_qemu_engine, vm_id, rf"DROVER-GUEST nic=eth\d+ mac={re.escape(mac)}")
        # drover.data=FIRST: the guest writes FIRST at the start of its data disk (fsynced)
        console(qx, ovirt_qemu_engine, vm_id, r"DROVER-GUEST disk=vd\w+ wrote=FIRST")
        flow["up"] = True

    def test_live_snapshot(self, qconn, flow):
        vm_id, _ = need(flow, "vm_id", "up")
        snaps = qconn.system_service().vms_service().vm_service(vm_id).snapshots_service()
        snap = snaps.add(types.Snapshot(description="at 128 MiB", persist_memorystate=False))
        snap = wait_for(snaps.snapshot_service(snap.id).get,
                        lambda s: s.snapshot_status == types.SnapshotStatus.OK, what="snapshot ok")
        assert snap.description == "at 128 MiB"
        listed = {s.id: s for s in snaps.list()}
        assert listed[snap.id].snapshot_type == types.SnapshotType.REGULAR
        assert [s.description for s in listed.values() if s.snapshot_type == types.SnapshotType.ACTIVE] == ["Active VM"]
        flow["snap_id"] = snap.id

    def test_stop_through_an_async_job(self, qconn, ovirt_qemu_engine, flow):
        (vm_id,) = need(flow, "vm_id")
        system = qconn.system_service()
        r = Raw(ovirt_qemu_engine).post(f"vms/{vm_id}/stop", "<action><async>true</async></action>")
        assert r.status_code == 202, r.text
        job = wait_job(system.jobs_service().job_service(xml(r).find("job").get("id")))
        assert job.status == types.JobStatus.FINISHED, job.status
        vm = wait_vm_status(system.vms_service().vm_service(vm_id), types.VmStatus.DOWN)
        assert vm.host is None
        flow["down"] = True

    def test_second_boot_sees_the_data_and_overwrites_it(self, qconn, qx, ovirt_qemu_engine, flow):
        vm_id, _ = need(flow, "vm_id", "down")
        svc = qconn.system_service().vms_service().vm_service(vm_id)
        cmdline = svc.get().os.cmdline
        second = cmdline.replace("drover.data=FIRST", "drover.data=SECOND")
        svc.update(types.Vm(os=types.OperatingSystem(cmdline=second)))
        assert svc.get().os.cmdline.endswith("drover.data=SECOND")
        svc.start()
        wait_vm_status(svc, types.VmStatus.UP)
        console(qx, ovirt_qemu_engine, vm_id, r"DROVER-GUEST disk=vd\w+ data=FIRST")
        console(qx, ovirt_qemu_engine, vm_id, r"DROVER-GUEST disk=vd\w+ wrote=SECOND")
        svc.stop()
        wait_vm_status(svc, types.VmStatus.DOWN)
        flow["second"] = True

    def test_snapshot_preview_and_commit(self, qconn, flow):
        vm_id, snap_id, _ = need(flow, "vm_id", "snap_id", "second")
        svc = qconn.system_service().vms_service().vm_service(vm_id)
        snap_svc = svc.snapshots_service().snapshot_service(snap_id)
        svc.update(types.Vm(memory=160 * MiB, memory_policy=types.MemoryPolicy(guaranteed=160 * MiB, max=160 * MiB)))
        assert svc.get().memory == 160 * MiB
        svc.preview_snapshot(snapshot=types.Snapshot(id=snap_id), restore_memory=False)
        wait_for(snap_svc.get, lambda s: s.snapshot_status == types.SnapshotStatus.IN_PREVIEW, what="in preview")
        wait_vm_status(svc, types.VmStatus.DOWN)
        assert svc.get().memory == 128 * MiB
        assert svc.get().os.cmdline.endswith("drover.data=FIRST")   # the configuration of the snapshot
        svc.commit_snapshot()
        wait_for(snap_svc.get, lambda s: s.snapshot_status == types.SnapshotStatus.OK, what="committed")
        vm = wait_vm_status(svc, types.VmStatus.DOWN)
        assert vm.memory == 128 * MiB and vm.os.cmdline.endswith("drover.data=FIRST")
        assert not [s for s in svc.snapshots_service().list() if s.snapshot_status == types.SnapshotStatus.IN_PREVIEW]
        # The disk and the NIC are still there ...
        [att] = svc.disk_attachments_service().list()
        assert att.disk.id and len(svc.nics_service().list()) == 1
        first_disk, flow["disk_id"], flow["committed"] = flow["disk_id"], att.disk.id, True
        # ... and, as in oVirt, the disk keeps its id (only its image changes).
        assert att.disk.id == first_disk, "preview/commit replaced the VM's disk by one with another id"

    def test_make_a_template(self, qconn, flow):
        vm_id, name, _ = need(flow, "vm_id", "name", "committed")
        templates = qconn.system_service().templates_service()
        tpl = templates.add(types.Template(name=f"{name}-tpl", description="made by the flow", vm=types.Vm(id=vm_id)))
        tpl = wait_template_ok(templates.template_service(tpl.id))
        assert tpl.name == f"{name}-tpl" and tpl.id not in (vm_id, ZERO_ID)
        assert tpl.memory == 128 * MiB
        assert tpl.os.kernel == flow["boot"][0]
        atts = templates.template_service(tpl.id).disk_attachments_service().list()
        assert len(atts) == 1 and atts[0].disk.id != flow["disk_id"]
        [found] = templates.list(search=f"name={name}-tpl")
        assert found.id == tpl.id
        flow["tpl_id"] = tpl.id

    def test_thin_vm_from_the_template_boots(self, qconn, qx, ovirt_qemu_engine, flow):
        tpl_id, name, marker = need(flow, "tpl_id", "name", "marker")
        system = qconn.system_service()
        vms = system.vms_service()
        thin = vms.add(types.Vm(name=f"{name}-thin", cluster=types.Cluster(name="Default"),
                                template=types.Template(id=tpl_id)))
        svc = vms.vm_service(thin.id)
        thin = wait_vm_status(svc, types.VmStatus.DOWN)
        assert thin.template.id == tpl_id and thin.memory == 128 * MiB
        [att] = svc.disk_attachments_service().list()
        disk = wait_disk_ok(system.disks_service().disk_service(att.disk.id))
        assert disk.provisioned_size == 32 * MiB and disk.id != flow["disk_id"]
        vdi = qx.VDI.get_by_uuid(disk.id)
        assert int(qx.VDI.get_physical_utilisation(vdi)) < 4 * MiB, "the VM from the template is not thin"
        svc.start()
        wait_vm_status(svc, types.VmStatus.UP)
        console(qx, ovirt_qemu_engine, thin.id, re.escape(f"drover.marker={marker}"))
        console(qx, ovirt_qemu_engine, thin.id, r"DROVER-GUEST disks=\S*:65536\b")
        # The disk as the snapshot had it (FIRST), not as the second boot left it (SECOND):
        # the commit restored it, and the template and its thin VM carry it.
        console(qx, ovirt_qemu_engine, thin.id, r"DROVER-GUEST disk=vd\w+ data=FIRST")
        svc.stop()
        wait_vm_status(svc, types.VmStatus.DOWN)
        flow.update(thin_id=thin.id, thin_disk=disk.id)

    def test_remove_vms_template_and_their_disks(self, qconn, flow):
        thin_id, thin_disk, tpl_id, vm_id, disk_id = need(flow, "thin_id", "thin_disk", "tpl_id", "vm_id", "disk_id")
        system = qconn.system_service()
        vms, disks = system.vms_service(), system.disks_service()
        vms.vm_service(thin_id).remove()
        with pytest.raises(sdk.NotFoundError):
            vms.vm_service(thin_id).get()
        with pytest.raises(sdk.NotFoundError):
            disks.disk_service(thin_disk).get()
        system.templates_service().template_service(tpl_id).remove()
        with pytest.raises(sdk.NotFoundError):
            system.templates_service().template_service(tpl_id).get()
        vms.vm_service(vm_id).remove()
        with pytest.raises(sdk.NotFoundError):
            vms.vm_service(vm_id).get()
        with pytest.raises(sdk.NotFoundError):
            disks.disk_service(disk_id).get()
        assert vm_id not in {v.id for v in vms.list()}

    def test_events_of_the_flow_newest_first(self, qconn, flow):
        marker, vm_id, name = need(flow, "events_marker", "vm_id", "name")
        new = qconn.system_service().events_service().list(from_=marker)
        ids = [int(e.id) for e in new]
        assert ids == sorted(ids, reverse=True) and all(i > marker for i in ids)
        about = [e for e in new if (e.vm is not None and e.vm.id == vm_id) or name in (e.description or "")]
        # added, disk, NIC, started, snapshot, stopped, preview, commit, template, removed ...
        assert len(about) >= 5, [(e.id, e.description) for e in new]
