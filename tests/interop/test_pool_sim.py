"""A pool of simulated hosts through the real clients: hosts joined and ejected through XenAPI
(`pool.join`, `pool.eject`) and oVirt (`hosts.add`, remove), live migration through all three
APIs (`VM.pool_migrate`, oVirt `migrate`, z/VM `guest_live_migrate`), maintenance with
evacuation (`host.disable` + `host.evacuate`, oVirt `deactivate`). With `--host-driver sim`
every address joined is a simulated host in the engine's process."""

from __future__ import annotations

import ovirtsdk4.types as types
import pytest
import XenAPI

import xapitest
from threeapis import system, x, zvm  # noqa: F401 (fixtures)
from ovirttest import wait_for


def join(x, address):
    return x.pool.join(address, "root", "enrolment-secret")


def running_vm(x, host, name):
    """A diskless VM started on `host` (the default SR is the master's local storage, which
    no other host reaches)."""
    vm = xapitest.new_vm(x, name)
    x.VM.start_on(vm, host, False, False)
    assert x.VM.get_resident_on(vm) == host
    return vm


def test_hosts_join_and_leave_the_pool_through_xenapi(x):
    master = x.pool.get_master(xapitest.the_pool(x))
    new = join(x, "127.0.0.12:8443")
    assert set(x.host.get_all()) == {master, new}
    record = x.host.get_record(new)
    assert record["address"] == "127.0.0.12"
    assert record["other_config"]["drover_node"] == "127.0.0.12:8443"
    assert record["enabled"] and x.host_metrics.get_live(record["metrics"])
    with pytest.raises(XenAPI.Failure) as again:
        join(x, "127.0.0.12:8443")
    assert again.value.details[0] == "INVALID_VALUE"
    # Its interfaces are on the master's pool-wide networks; it has storage of its own.
    master_nets = {x.PIF.get_network(p) for p in x.host.get_PIFs(master)}
    assert {x.PIF.get_network(p) for p in x.host.get_PIFs(new)} == master_nets
    assert any(x.SR.get_type(x.PBD.get_SR(p)) == "local" for p in x.host.get_PBDs(new))
    vm = running_vm(x, new, xapitest.unique("resident"))
    with pytest.raises(XenAPI.Failure) as busy:
        x.pool.eject(new)
    assert busy.value.details[:2] == ["HOST_IN_USE", new]
    x.VM.hard_shutdown(vm)
    x.pool.eject(new)
    assert x.host.get_all() == [master]
    with pytest.raises(XenAPI.Failure) as own:
        x.pool.eject(master)
    assert own.value.details[0] == "OPERATION_NOT_ALLOWED"


def test_pool_migrate_and_evacuate_move_running_guests(x):
    master = x.pool.get_master(xapitest.the_pool(x))
    b = join(x, "127.0.0.13:8443")
    c = join(x, "127.0.0.14:8443")
    vm = running_vm(x, b, xapitest.unique("mover"))
    x.VM.pool_migrate(vm, c, {})
    assert x.VM.get_resident_on(vm) == c
    assert x.VM.get_power_state(vm) == "Running"
    metrics = x.VM_metrics.get_other_config(x.VM.get_metrics(vm))
    assert int(metrics["migration_downtime_ms"]) >= 0 and "migration_total_ms" in metrics
    with pytest.raises(XenAPI.Failure) as same:
        x.VM.pool_migrate(vm, c, {})
    assert same.value.details[0] == "OPERATION_NOT_ALLOWED"
    task = x.Async.VM.pool_migrate(vm, b, {})
    assert xapitest.wait_task(x, task)["status"] == "success"
    assert x.VM.get_resident_on(vm) == b
    # Maintenance: a disabled host takes no guests; evacuating it moves its guests away.
    other = running_vm(x, b, xapitest.unique("other"))
    x.host.disable(b)
    with pytest.raises(XenAPI.Failure) as disabled:
        x.VM.start_on(xapitest.new_vm(x), b, False, False)
    assert disabled.value.details[0] == "HOST_DISABLED"
    x.host.evacuate(b)
    for v in (vm, other):
        assert x.VM.get_resident_on(v) in (c, master)
        assert x.VM.get_power_state(v) == "Running"
    x.host.enable(b)
    for v in (vm, other):
        x.VM.hard_shutdown(v)
    x.pool.eject(b)
    x.pool.eject(c)


def test_ovirt_adds_hosts_migrates_and_deactivates_with_evacuation(system, x):
    hosts = system.hosts_service()
    added = hosts.add(types.Host(name="node-a", address="127.0.0.15", root_password="s3cret"))
    assert added.name == "node-a" and added.address == "127.0.0.15"
    wait_for(lambda: hosts.host_service(added.id).get().status,
             lambda s: s == types.HostStatus.UP, what="the new host up")
    other = hosts.add(types.Host(name="node-b", address="127.0.0.16", port=8443,
                                 root_password="s3cret"))
    refs = {h.name: x.host.get_by_uuid(h.id) for h in (added, other)}
    vm = running_vm(x, refs["node-a"], xapitest.unique("ovmig"))
    vms = system.vms_service()
    vm_service = vms.vm_service(x.VM.get_uuid(vm))
    vm_service.migrate(host=types.Host(id=other.id))
    assert x.VM.get_resident_on(vm) == refs["node-b"]
    vm_service.migrate()
    assert x.VM.get_resident_on(vm) != refs["node-b"], "the scheduler picks another host"
    with pytest.raises(Exception) as nothing:
        vm_service.cancel_migration()
    assert "not being migrated" in str(nothing.value)
    # Maintenance moves the guest off; a host in maintenance can be removed.
    where = x.VM.get_resident_on(vm)
    uuid = x.host.get_uuid(where)
    if where in refs.values():
        hosts.host_service(uuid).deactivate()
        wait_for(lambda: hosts.host_service(uuid).get().status,
                 lambda s: s == types.HostStatus.MAINTENANCE, what="maintenance")
        assert x.VM.get_resident_on(vm) != where
    x.VM.hard_shutdown(vm)
    for h in (added, other):
        service = hosts.host_service(h.id)
        if service.get().status != types.HostStatus.MAINTENANCE:
            service.deactivate()
            wait_for(lambda s=service: s.get().status,
                     lambda s: s == types.HostStatus.MAINTENANCE, what="maintenance")
        service.remove()
    assert {h.name for h in hosts.list()} == {x.host.get_name_label(x.host.get_all()[0])}


def test_zvm_guest_live_migrate_moves_a_guest_to_a_host_of_the_pool(zvm, x):
    zvm("guest_create", "ZMIG1", 1, 128)
    zvm("guest_start", "ZMIG1")
    assert zvm("host_get_ssi_info") == [], "one host is no cluster"
    target = join(x, "127.0.0.17:8443")
    x.host.set_name_label(target, "SYS7")
    ssi = zvm("host_get_ssi_info")
    assert "output.ssiInfoCount = 2" in ssi
    slot = ssi.index("member_system_id = SYS7")
    assert ssi[slot + 1] == "member_state = Joined", ssi
    vm = x.VM.get_by_name_label("ZMIG1")[0]
    assert x.VM.get_resident_on(vm) != target
    zvm("guest_live_migrate", "ZMIG1", "ZCCUSER", "sys7", {}, "test")
    assert x.VM.get_resident_on(vm) != target, "test moves nothing"
    zvm("guest_live_migrate", "ZMIG1", "ZCCUSER", "SYS7", {}, "move")
    assert x.VM.get_resident_on(vm) == target
    assert zvm("guest_get_power_state", "ZMIG1") == "on"
    zvm("guest_delete", "ZMIG1")
    x.pool.eject(target)


def test_ovirt_cluster_scheduling_policy_is_the_pools(system, x):
    clusters = system.clusters_service()
    cluster = clusters.list()[0]
    policies = {p.name: p.id for p in system.scheduling_policies_service().list()}
    assert cluster.scheduling_policy.id == policies["none"]
    service = clusters.cluster_service(cluster.id)
    service.update(types.Cluster(
        scheduling_policy=types.SchedulingPolicy(id=policies["vm_evenly_distributed"]),
        custom_scheduling_policy_properties=[types.Property(name="HighVmCount", value="3")],
    ))
    got = service.get()
    assert got.scheduling_policy.id == policies["vm_evenly_distributed"]
    assert {(p.name, p.value) for p in got.custom_scheduling_policy_properties} == {("HighVmCount", "3")}
    config = x.pool.get_other_config(xapitest.the_pool(x))
    assert config["scheduling_policy"] == "vm_evenly_distributed"
    assert config["scheduling_policy:HighVmCount"] == "3"
    with pytest.raises(Exception) as bad:
        service.update(types.Cluster(
            custom_scheduling_policy_properties=[types.Property(name="HighVmCount", value="many")],
        ))
    assert "HighVmCount" in str(bad.value)
    service.update(types.Cluster(scheduling_policy=types.SchedulingPolicy(id=policies["none"])))
    assert service.get().scheduling_policy.id == policies["none"]


def test_ovirt_fence_agent_switches_a_host_through_drover_fence(system, x, tmp_path):
    """The `drover` fence agent type runs `drover fence`: `stop` kills what the plug directory's
    node.pid names and fences the host (its VMs down), `start` runs the `start` command."""
    hosts = system.hosts_service()
    added = hosts.add(types.Host(name="node-f", address="127.0.0.18", root_password="s"))
    host = hosts.host_service(added.id)
    plug = tmp_path / "node-f"
    plug.mkdir()
    (plug / "node.pid").write_text("999999999\n")  # a node ran there once; it is gone
    agents = host.fence_agents_service()
    assert agents.list() == []
    agent = agents.add(types.Agent(
        type="drover", address="127.0.0.18", username="fencer", password="secret", port=623,
        order=1, options=[types.Option(name="plug", value=str(plug)),
                          types.Option(name="start",
                                       value=f"echo $$ > {plug}/node.pid; exec sleep 60")]))
    assert agent.type == "drover" and agent.port == 623 and agent.username == "fencer"
    assert {o.name for o in agents.agent_service(agent.id).get().options} == {"plug", "start"}
    assert host.get().power_management.enabled
    ref = x.host.get_by_uuid(added.id)
    assert "password" not in str(agents.agent_service(agent.id).get().options)
    assert x.host.get_power_on_mode(ref) == "drover"
    config = x.host.get_power_on_config(ref)
    assert "password" not in config and config["password_secret"], "the password is a secret"

    assert host.fence(fence_type="status").status == types.PowerManagementStatus.OFF
    host.fence(fence_type="start")
    assert host.fence(fence_type="status").status == types.PowerManagementStatus.ON
    wait_for(lambda: host.get().status, lambda s: s == types.HostStatus.UP, what="up")
    vm = running_vm(x, ref, xapitest.unique("fenced"))
    host.fence(fence_type="stop")
    assert host.fence(fence_type="status").status == types.PowerManagementStatus.OFF
    assert x.VM.get_power_state(vm) == "Halted"
    assert host.get().status == types.HostStatus.DOWN
    agents.agent_service(agent.id).remove()
    assert not host.get().power_management.enabled
