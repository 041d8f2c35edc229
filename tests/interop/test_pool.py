"""A pool of real hosts on one machine (poolnet.py): `drover serve` as the master (disabled, so
guests go to the nodes) and three `drover node` processes, each in a network namespace of its own
on a private bridge, QEMU guests (the tiny guest, TCG) on a shared directory SR, and the real
XenAPI client.

What is checked: live migration moves a running guest without rebooting it and records its
figures; a guest with a disk on a host's local storage cannot move (`VM_REQUIRES_SR`); a
cancelled migration leaves it running on the source; maintenance (`host.disable` +
`host.evacuate`) empties a host; a host that dies is fenced through `drover fence`, its HA guest
restarted on another host and its other guest marked halted; guests on two hosts share a VLAN
network carried between the hosts over VXLAN.

Node 0 sends live migrations at most at SLOW_MIB MiB/s (`drover node --migration-bandwidth-mib`):
the tiny guest's ~80 MiB then take ~10 s to copy, so a migration from it can be cancelled while
it copies. A bigger guest would not do: QEMU skips zero pages, so memory the guest never touched
costs nothing, and on a local bridge even the touched memory copies in a fraction of a second.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import time

import pytest

import poolnet
import xapitest
from networld import NetWorldError, guest_run
from xapitest import MiB, NULL, failure_code, vbd_record, vdi_record, wait_task, wait_until

REPO = pathlib.Path(__file__).resolve().parents[2]
GUEST = pathlib.Path(os.environ.get("DROVER_TINY_GUEST", REPO / "guest" / "out"))
SLOW_MIB = 8
VLAN_TAG = "42"
# Addresses of two guests on the VLAN: they exist inside the guests only.
GUEST_A, GUEST_B = "10.231.42.11", "10.231.42.12"
HA_RESTART_BOUND = 60.0


@pytest.fixture(scope="module")
def pool(request, drover_bin, _engines_root):
    from conftest import _active_engines, _finish_engine

    help_text = subprocess.run([str(drover_bin), "node", "--help"], capture_output=True, text=True).stdout
    assert "--migration-bandwidth-mib" in help_text, f"{drover_bin} has no `node --migration-bandwidth-mib`: rebuild it"
    failed_before = request.session.testsfailed
    work = pathlib.Path(tempfile.mkdtemp(prefix="pool-", dir=_engines_root))
    p = poolnet.Pool(drover_bin, work, GUEST, node_args=(["--migration-bandwidth-mib", str(SLOW_MIB)], [], []))
    try:
        p.start()
    except NetWorldError as e:
        pytest.fail(f"cannot build the pool: {e}", pytrace=False)
    _active_engines.append(p.engine)
    yield p
    failed = request.session.testsfailed > failed_before
    try:
        _finish_engine(p.engine, failed)
    finally:
        if failed:
            for name, tail in p.node_logs(100).items():
                sys.stderr.write(f"\n----- {name} -----\n{tail}\n")
        p.close()


@pytest.fixture
def guests(pool):
    """guests(host, networks=()) -> a new VM booted on `host`; removed at the end of the test."""
    made = []

    def boot(host, networks=()):
        vm = pool.new_vm(networks)
        made.append(vm)
        return pool.boot(vm, host)

    yield boot
    for vm in made:
        pool.remove_vm(vm)


@pytest.fixture
def vlan_network(pool):
    """A network made on every node as VLAN VLAN_TAG of `eth0` (VXLAN between the nodes)."""
    x = pool.x
    # VXLAN adds 50 bytes to each frame: the network leaves room for them on a 1500-byte eth0.
    net = x.network.create({"name_label": xapitest.unique("vlan"), "name_description": "pool test",
                            "MTU": "1450", "other_config": {}, "tags": []})
    vlans = x.pool.create_VLAN("eth0", net, VLAN_TAG)
    yield net, vlans
    for pif in vlans:
        x.VLAN.destroy(x.PIF.get_VLAN_master_of(pif))
    x.network.destroy(net)


def uuid_of(pool, vm):
    return pool.x.VM.get_uuid(vm)


def migration_figures(x, vm):
    other = x.VM_metrics.get_other_config(x.VM.get_metrics(vm))
    assert "migration_downtime_ms" in other and "migration_total_ms" in other, other
    return int(other["migration_downtime_ms"]), int(other["migration_total_ms"])


def set_address(pool, vm, ip):
    """Gives the guest's NIC eth0 the static address `ip`/24 (its DHCP client stopped first)."""
    rc, out = guest_run(pool.x, vm, pool.sid, "kill $(cat /var/run/udhcpc.eth0.pid) 2>/dev/null; "
                                              f"ip addr add {ip}/24 dev eth0 && ip link set eth0 up")
    assert rc == 0, out


# ---------------------------------------------------------------------------------------------


def test_live_migration_keeps_the_guest_running(pool, guests):
    x, (_, src, dst) = pool.x, pool.hosts
    vm = guests(src)
    uuid = uuid_of(pool, vm)
    boot, up = pool.boot_state(vm)
    x.VM.pool_migrate(vm, dst, {})
    assert x.VM.get_resident_on(vm) == dst
    assert x.VM.get_power_state(vm) == "Running"
    boot2, up2 = pool.boot_state(vm)
    assert boot2 == boot, "the guest rebooted instead of moving"
    assert up2 > up
    assert pool.node_of(src).qemu_pid_of(uuid) is None, "the source still runs the guest"
    assert pool.node_of(dst).qemu_pid_of(uuid) is not None
    downtime, total = migration_figures(x, vm)
    assert 0 <= downtime <= total and total > 0, (downtime, total)


def test_a_guest_with_a_disk_on_local_storage_stays(pool, guests):
    x, (_, src, dst) = pool.x, pool.hosts
    vm = guests(src)
    local = next(x.PBD.get_SR(p) for p in x.host.get_PBDs(src) if x.SR.get_type(x.PBD.get_SR(p)) == "local")
    vdi = x.VDI.create(vdi_record(local, name=xapitest.unique("local"), size=8 * MiB))
    x.VBD.plug(x.VBD.create(vbd_record(vm, vdi, "2")))
    with failure_code("VM_REQUIRES_SR") as e:
        x.VM.pool_migrate(vm, dst, {})
    assert local in e.value.details, e.value.details
    assert x.VM.get_resident_on(vm) == src
    assert x.VM.get_power_state(vm) == "Running"
    assert pool.node_of(dst).qemu_pid_of(uuid_of(pool, vm)) is None


def test_cancelled_migration_leaves_the_guest_on_the_source(pool, guests):
    x, (slow, dst, _) = pool.x, pool.hosts
    vm = guests(slow)
    uuid = uuid_of(pool, vm)
    boot, _ = pool.boot_state(vm)
    task = x.Async.VM.pool_migrate(vm, dst, {})
    # The target's QEMU waiting for the state means the send is about to start.
    wait_until(lambda: pool.node_of(dst).qemu_pid_of(uuid), timeout=30, what="the target's waiting guest")
    time.sleep(0.5)
    assert x.task.get_status(task) == "pending", "the migration was over before it could be cancelled"
    x.task.cancel(task)
    rec = wait_task(x, task, timeout=30)
    assert rec["status"] == "cancelled", rec
    assert rec["error_info"][:1] == ["TASK_CANCELLED"], rec
    assert x.VM.get_resident_on(vm) == slow
    assert x.VM.get_power_state(vm) == "Running"
    assert pool.boot_state(vm)[0] == boot
    assert pool.node_of(slow).qemu_pid_of(uuid) is not None
    wait_until(lambda: pool.node_of(dst).qemu_pid_of(uuid) is None, timeout=15,
               what="the target's guest to be discarded")


def test_maintenance_moves_every_guest_off_the_host(pool, guests):
    x, host = pool.x, pool.hosts[1]
    others = set(pool.hosts) - {host}
    vms = [guests(host), guests(host)]
    boots = [pool.boot_state(vm)[0] for vm in vms]
    x.host.disable(host)
    try:
        x.host.evacuate(host)
        assert x.host.get_resident_VMs(host) == []
        for vm, boot in zip(vms, boots):
            assert x.VM.get_resident_on(vm) in others
            assert x.VM.get_power_state(vm) == "Running"
            assert pool.boot_state(vm)[0] == boot
        assert pool.node_of(host).qemu_pids() == []
        refused = pool.new_vm()
        try:
            with failure_code("HOST_DISABLED"):
                x.VM.start_on(refused, host, False, False)
        finally:
            pool.remove_vm(refused)
    finally:
        x.host.enable(host)
    assert x.host.get_enabled(host)


def test_guests_on_two_hosts_share_a_vlan_network(pool, vlan_network, guests):
    x, (_, h1, h2) = pool.x, pool.hosts
    net, vlans = vlan_network
    assert sorted(x.PIF.get_host(p) for p in vlans) == sorted(pool.hosts)
    a, b = guests(h1, [net]), guests(h2, [net])
    set_address(pool, a, GUEST_A)
    set_address(pool, b, GUEST_B)
    rc, out = guest_run(x, a, pool.sid, f"ping -c 3 -W 2 {GUEST_B}", timeout=30)
    assert rc == 0, out
    assert "3 packets received" in out, out


def test_ha_guest_restarts_elsewhere_once_its_dead_host_is_fenced(pool, guests):
    x, host = pool.x, pool.hosts[2]
    node = pool.node_of(host)
    ha, plain = guests(host), guests(host)
    x.VM.set_ha_restart_priority(ha, "restart")
    node.kill9()

    def restarted():
        on = x.VM.get_resident_on(ha)
        if x.VM.get_power_state(ha) != "Running" or on in (host, NULL):
            return None
        # The engine marks the host down once it is fenced, before it restarts anything.
        assert x.host.get_other_config(host).get("drover_state") == "down", "restarted before the fence"
        return on

    target = wait_until(restarted, timeout=HA_RESTART_BOUND, poll=0.2, what="the HA VM running on another host")
    assert target in set(pool.hosts) - {host}
    pool.wait_booted(ha)
    assert x.VM.get_power_state(plain) == "Halted"
    assert x.VM.get_resident_on(plain) == NULL
    assert x.host.get_other_config(host).get("drover_state") == "down"
    assert not x.host_metrics.get_live(x.host.get_metrics(host))
    assert node.qemu_pids() == []
