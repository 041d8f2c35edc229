"""A pool of hosts on one machine, for the pool tests (test_pool.py) and the pool benchmark
(bench/pool.sh).

`Fabric` makes, in the root namespace, a bridge of its own with 10.231.0.1/24, and one network
namespace per node joined to it by a veth pair whose namespace end is `eth0` (10.231.0.2, .3,
...). It refuses to start if an address or route of the root namespace is in 10.231.0.0/24;
traffic only ever goes to the addresses it made (and to the guests').

`Pool` runs `drover serve` (QEMU host driver, TCG, the tiny guest) in the root namespace and one
`drover node` under `ip netns exec` in each node namespace, enrols the nodes with `pool.join`,
disables the master so that guests go to the nodes, gives every node the `drover` fence agent
(`host.set_power_on_mode`) and makes a shared directory SR. The master's own networks and guests
live in a namespace of their own (`--netns`): otherwise the machine's interfaces would be its
PIFs, and a pool-wide VLAN would be made on the machine's real `eth0`.

`Pool.close()` removes everything it made, whatever state it is in: the engine, the nodes (also
those a fence agent started again), QEMU and dnsmasq processes (found by the work directory on
their command line), the namespaces with their veths, and the bridge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pathlib
import re
import secrets
import shlex
import signal
import subprocess
import time

import XenAPI

import networld
import xapitest
from conftest import Engine
from networld import NetWorldError, guest_run, processes_mentioning, run, wait_console
from xapitest import MiB, unique, vbd_record, vdi_record, vif_record

SUBNET = ipaddress.ip_network("10.231.0.0/24")
NODE_PORT = 8443
NODE_READY_TIMEOUT = 60.0


def need_tools():
    """Fails loudly (never skips) when a pool cannot be built here."""
    networld.need_root_and_tools()
    if not any(os.access(os.path.join(d, "qemu-system-x86_64"), os.X_OK)
               for d in os.environ.get("PATH", "").split(":") + ["/usr/bin"]):
        raise NetWorldError("qemu-system-x86_64 is missing (Debian package qemu-system-x86)")


def _subnet_in_use():
    """What on this machine already has an address or a route in SUBNET (None if nothing)."""
    for a in json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        for i in a.get("addr_info", []):
            if ipaddress.ip_address(i["local"]) in SUBNET:
                return f"address {i['local']} on {a['ifname']}"
    for r in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]"):
        dst = r.get("dst", "default")
        if dst != "default" and ipaddress.ip_network(dst, strict=False).overlaps(SUBNET):
            return f"route {dst} dev {r.get('dev')}"
    return None


class Fabric:
    """The bridge, the master's namespace and one namespace per node."""

    def __init__(self, nodes, prefix="drp"):
        tag = secrets.token_hex(3)
        self.bridge = f"{prefix}-{tag}"
        self.master_ns = f"{prefix}-{tag}-m"
        self.node_ns = [f"{prefix}-{tag}-{i}" for i in range(nodes)]
        hosts = SUBNET.hosts()
        self.bridge_ip = str(next(hosts))
        self.node_ip = [str(next(hosts)) for _ in range(nodes)]
        self.namespaces = []
        self.has_bridge = False

    def create(self):
        need_tools()
        used = _subnet_in_use()
        if used:
            raise NetWorldError(f"{SUBNET} is already in use on this machine ({used})")
        try:
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
            self.has_bridge = True
            run(["ip", "addr", "add", f"{self.bridge_ip}/{SUBNET.prefixlen}", "dev", self.bridge])
            run(["ip", "link", "set", self.bridge, "up"])
            self._namespace(self.master_ns)
            for i, (ns, ip) in enumerate(zip(self.node_ns, self.node_ip)):
                self._namespace(ns)
                veth = f"{self.bridge}-{i}"
                run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
                run(["ip", "link", "set", veth, "master", self.bridge, "up"])
                run(["ip", "-n", ns, "addr", "add", f"{ip}/{SUBNET.prefixlen}", "dev", "eth0"])
                run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        except Exception:
            self.destroy()
            raise
        return self

    def _namespace(self, ns):
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def destroy(self):
        """Deletes the namespaces (with the veths and whatever the nodes made in them) and the
        bridge. Idempotent."""
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns], check=False)
        self.namespaces = []
        if self.has_bridge:
            run(["ip", "link", "del", self.bridge], check=False)
            self.has_bridge = False


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _read_pid(path):
    try:
        return int(pathlib.Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


class Node:
    """One `drover node` (QEMU host driver, TCG) in network namespace `ns`, listening on
    `ip`:NODE_PORT."""

    def __init__(self, binary, ns, ip, data_dir, extra_args=()):
        self.binary, self.ns, self.ip = str(binary), ns, ip
        self.data_dir = pathlib.Path(data_dir)
        self.extra_args = list(extra_args)
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")
        self.proc = None

    @property
    def address(self):
        return f"{self.ip}:{NODE_PORT}"

    def argv(self):
        return ["ip", "netns", "exec", self.ns, self.binary, "node", "--data-dir", str(self.data_dir),
                "--listen", self.address, "--host-driver", "qemu", "--accel", "tcg",
                "--shutdown-timeout-secs", "20", *self.extra_args]

    def start_command(self):
        """The shell command that starts the node again (the fence agent's `start` option)."""
        return f"{shlex.join(self.argv())} >>{shlex.quote(str(self.log_path))} 2>&1"

    def start(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env=dict(os.environ, NO_COLOR="1"))
        self.wait_ready()
        return self

    def wait_ready(self, timeout=NODE_READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "node ready" in self.log_text():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"drover node exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"drover node not ready within {timeout}s:\n{self.log_tail()}")

    def secret(self):
        """The one-time enrolment secret the node printed."""
        m = re.search(r"enrolment secret \(one-time\): (\S+)", self.log_text())
        assert m, f"the node printed no enrolment secret:\n{self.log_tail()}"
        return m.group(1)

    def pid(self):
        return _read_pid(self.data_dir / "node.pid")

    def qemu_pids(self):
        pids = (_read_pid(p) for p in self.data_dir.glob("guests/*/qemu.pid"))
        return [p for p in pids if p is not None and _alive(p)]

    def qemu_pid_of(self, uuid):
        """The live QEMU process of guest `uuid` on this node, or None."""
        pid = _read_pid(self.data_dir / "guests" / uuid / "qemu.pid")
        return pid if pid is not None and _alive(pid) else None

    def kill9(self):
        """A host failure: SIGKILL to the node process and every QEMU process of its guests at
        once. Returns the monotonic time of the kill."""
        node = self.pid()
        pids = ([node] if node is not None and _alive(node) else []) + self.qemu_pids()
        t = time.monotonic()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=15)
        return t

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])


class Pool:
    """An engine (the master, disabled) and `len(node_args)` nodes with a shared SR; see the
    module's description. `node_args[i]` are extra `drover node` arguments of node i."""

    def __init__(self, binary, work, tiny_guest, node_args=((), (), ()), engine_args=()):
        self.binary = pathlib.Path(binary)
        self.work = pathlib.Path(work)
        self.tiny_guest = pathlib.Path(tiny_guest)
        self.fabric = Fabric(len(node_args))
        self.nodes = [Node(self.binary, ns, ip, self.work / f"node{i}", args)
                      for i, (ns, ip, args) in enumerate(zip(self.fabric.node_ns, self.fabric.node_ip, node_args))]
        self.engine = Engine(self.binary, self.work / "engine", [
            "--tiny-guest", str(self.tiny_guest), "--accel", "tcg", "--shutdown-timeout-secs", "20",
            "--netns", self.fabric.master_ns, *engine_args], driver="qemu")
        self.session = self.x = None
        self.hosts = []
        self.master = self.shared_sr = None

    def start(self):
        """Builds the whole pool; on failure removes what it made and raises."""
        try:
            self._start()
        except Exception:
            self.close()
            raise
        return self

    def _start(self):
        assert (self.tiny_guest / "vmlinuz").is_file() and (self.tiny_guest / "initrd.img").is_file(), (
            f"the tiny guest is not built in {self.tiny_guest}: run guest/build-tiny-guest.sh {self.tiny_guest}")
        self.work.mkdir(parents=True, exist_ok=True)
        self.fabric.create()
        self.engine.start()
        self.session = self.engine.session()
        self.x = x = self.session.xenapi
        self.master = x.pool.get_master(xapitest.the_pool(x))
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            x.pool.join(node.address, "root", node.secret())
            host = self.host_at(node.address)
            x.host.set_power_on_mode(host, "drover", {"plug": str(node.data_dir), "start": node.start_command()})
            self.hosts.append(host)
        x.host.disable(self.master)
        shared = self.work / "shared"
        shared.mkdir()
        self.shared_sr = x.SR.create(self.master, {"path": str(shared)}, "0", "Shared", "", "shared", "user",
                                     True, {})

    def host_at(self, address):
        found = [h for h, r in self.x.host.get_all_records().items()
                 if r["other_config"].get("drover_node") == address]
        assert len(found) == 1, f"hosts with drover_node={address}: {found}"
        return found[0]

    @property
    def sid(self):
        return self.session._session

    def node_of(self, host):
        return self.nodes[self.hosts.index(host)]

    # -- guests ------------------------------------------------------------------------------
    def new_vm(self, networks=()):
        """A halted copy of `Tiny Linux` on the shared SR, with a 16 MiB data disk there and a
        NIC on each of `networks`."""
        x = self.x
        name = unique("pooltiny")
        vm = x.VM.copy(xapitest.template(x, "Tiny Linux"), name, self.shared_sr)
        x.VM.provision(vm)
        x.VM.set_is_a_template(vm, False)
        vdi = x.VDI.create(vdi_record(self.shared_sr, name=f"{name}-data", size=16 * MiB))
        x.VBD.create(vbd_record(vm, vdi, "1"))
        for i, net in enumerate(networks):
            x.VIF.create(vif_record(vm, net, str(i), MTU=x.network.get_MTU(net)))
        return vm

    def boot(self, vm, host):
        """Starts `vm` on `host` and waits for its console shell."""
        self.x.VM.start_on(vm, host, False, False)
        self.wait_booted(vm)
        return vm

    def remove_vm(self, vm):
        """Stops and destroys `vm`, as far as it can be (best effort, for clean-ups)."""
        with contextlib.suppress(XenAPI.Failure):
            if self.x.VM.get_power_state(vm) != "Halted":
                self.x.VM.hard_shutdown(vm)
        with contextlib.suppress(XenAPI.Failure):
            self.x.VM.destroy(vm)

    def wait_booted(self, vm, timeout=90):
        wait_console(self.x, vm, self.sid, r"DROVER-GUEST uptime=", timeout=timeout)

    def boot_state(self, vm):
        """(boot_id, uptime in seconds) read from the guest's /proc through its serial console."""
        rc, out = guest_run(self.x, vm, self.sid,
                            "echo BOOT=$(cat /proc/sys/kernel/random/boot_id) UP=$(cut -d' ' -f1 /proc/uptime)")
        m = re.search(r"BOOT=([0-9a-f-]{36}) UP=([0-9.]+)", out)
        assert rc == 0 and m, f"no boot_id/uptime from the guest (rc {rc}):\n{out[-2000:]}"
        return m.group(1), float(m.group(2))

    # -- teardown ----------------------------------------------------------------------------
    def node_logs(self, lines=60):
        """{name: log tail} of the nodes."""
        return {f"node{i} {n.log_path}": n.log_tail(lines) for i, n in enumerate(self.nodes)}

    def close(self):
        """Stops everything and removes the namespaces and the bridge. Idempotent."""
        try:
            self.engine.stop()
        finally:
            for node in self.nodes:
                if node.proc is not None and node.proc.poll() is None:
                    node.proc.kill()
                    node.proc.wait(timeout=15)
            # Nodes a fence agent started again, QEMU and dnsmasq processes: all name the work dir.
            for pid in processes_mentioning(str(self.work)):
                if pid != os.getpid():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            self.fabric.destroy()
