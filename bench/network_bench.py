#!/usr/bin/env python3
"""Network figures of Drover (`bench/network.sh` is the entry point; it needs the XenAPI module of
the project's .venv, root, iproute2 and dnsmasq-base).

Builds its own world (tests/interop/networld.py: a network namespace with uplinks eth0/eth1/eth2,
their other ends in a second namespace), starts its own `drover serve --host-driver qemu --netns NS`
on 127.0.0.1, and measures over N repetitions (median, p90, min, max):
  1. network.create with DHCP (other_config ip_begin/ip_end/netmask): until the call returned, until
     the bridge exists in NS (polled every 0.5 ms by a thread inside NS), until its dnsmasq runs;
     the same without DHCP; network.destroy until it returned and the bridge is gone.
  2. VIF.plug into a running tiny guest (one guest, booted once): until the call returned, until the
     guest's kernel has the NIC (a loop typed into the guest's console shell checks
     /sys/class/net/eth1 every 5 ms and prints a line; console.log is polled every 1 ms), until
     the guest's init printed `nic=ethN mac=<mac>` (it looks for new NICs once a second, so this
     figure includes up to 1 s of its polling), and until it printed its DHCP address `ip=ethN:`;
     then VIF.unplug until returned, until the NIC left the guest's kernel, and until init printed
     `nic=ethN removed`.
Prints figures only; asserts nothing about timings. Removes everything it made: objects, drover,
its guests and DHCP servers (by pid), the namespaces.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import pathlib
import re
import signal
import socket
import statistics
import sys
import threading
import time

import XenAPI

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "interop"))
import networld  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
import vmstart_bench  # noqa: E402

MiB = 1 << 20
CLONE_NEWNET = 0x40000000
T_START = time.monotonic()
DHCP = {"ip_begin": "10.77.0.1", "ip_end": "10.77.0.200", "netmask": "255.255.255.0"}
HOT = {"ip_begin": "10.78.0.1", "ip_end": "10.78.0.200", "netmask": "255.255.255.0"}


def log(msg):
    print(f"[{time.monotonic() - T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- watchers


class DeviceWatch(threading.Thread):
    """A thread inside the namespace that records when device `name` appears (or disappears)."""

    def __init__(self, ns, name, appear=True, timeout=30.0):
        super().__init__(daemon=True)
        self.ns, self.name, self.appear, self.timeout = ns, name, appear, timeout
        self.at = None
        self.at_first_poll = False  # the state was already reached when the thread first looked
        self.error = None
        self.ready = threading.Event()

    def run(self):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{self.ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
        except OSError as e:
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        end = time.perf_counter() + self.timeout
        first = True
        while time.perf_counter() < end:
            try:
                socket.if_nametoindex(self.name)
                present = True
            except OSError:
                present = False
            if present == self.appear:
                self.at = time.perf_counter()
                self.at_first_poll = first
                return
            first = False
            time.sleep(0.0005)
        self.error = TimeoutError(f"{self.name} did not {'appear' if self.appear else 'go'} in {self.timeout}s")


class ConsoleTail:
    """Incremental reader of a guest's console.log."""

    def __init__(self, path):
        self.path = path
        self.f = None
        self.buf = ""

    def skip_to_end(self):
        self._read()
        self.buf = ""

    def _read(self):
        if self.f is None:
            try:
                self.f = open(self.path, "rb")
            except OSError:
                return
        data = self.f.read()
        if data:
            self.buf += data.decode(errors="replace")

    def wait(self, pattern, timeout=60.0):
        """perf_counter time at which `pattern` was first seen in the output since the last
        skip_to_end(), and the match."""
        rx = re.compile(pattern)
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            self._read()
            m = rx.search(self.buf)
            if m:
                return time.perf_counter(), m
            time.sleep(0.001)
        raise TimeoutError(f"no {pattern!r} on the console within {timeout}s; tail: {self.buf[-500:]!r}")


def type_into_console(x, session_id, vm, line):
    """Types `line` into the guest's serial-console shell over the console websocket."""
    import websocket  # websocket-client, in the project's .venv

    url = None
    for c in x.VM.get_consoles(vm):
        r = x.console.get_record(c)
        if r["protocol"] == "vt100":
            url = r["location"] + ("&" if "?" in r["location"] else "?") + "session_id=" + session_id
    if url is None:
        raise SystemExit("the guest has no vt100 console")
    ws = websocket.create_connection(url.replace("http://", "ws://", 1), timeout=10)
    try:
        ws.send_binary(line.encode() + b"\n")
        time.sleep(0.05)
    finally:
        ws.close()


# ------------------------------------------------------------------------------------- drover


# The engine: the VM start benchmark's, in the world's namespace.
Drover = vmstart_bench.Drover


# ------------------------------------------------------------------------------------- figures


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def summary(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"n": len(xs), "median": statistics.median(xs), "p90": pct(xs, 90), "min": min(xs), "max": max(xs)}


def fmt(x):
    if x is None:
        return "-"
    return f"{x * 1000:8.1f} ms" if x < 10 else f"{x:8.2f} s "


def line(label, xs):
    s = summary(xs)
    if s is None:
        return f"  {label:<46} (no samples)"
    return (f"  {label:<46} median {fmt(s['median'])}  p90 {fmt(s['p90'])}  "
            f"min {fmt(s['min'])}  max {fmt(s['max'])}  (n={s['n']})")


def new_network(x, other_config, name):
    return x.network.create({"name_label": name, "name_description": "network bench", "MTU": "1500",
                             "other_config": dict(other_config), "tags": []})


def bench_network_create(x, ns, data_dir, n):
    out = {k: [] for k in ("dhcp_returned", "dhcp_bridge", "dhcp_dnsmasq", "plain_returned", "plain_bridge",
                           "destroy_returned", "destroy_bridge_gone")}
    for i in range(n + 1):  # the first round is a warm-up
        warm = i == 0
        for kind in ("dhcp", "plain"):
            before = set(networld.dnsmasqs_of(data_dir))
            # The bridge's name is known once the call returns: if it exists at the first look after
            # that, it existed when the call returned.
            t0 = time.perf_counter()
            net = new_network(x, DHCP if kind == "dhcp" else {}, f"bench-{kind}-{i}")
            t_ret = time.perf_counter()
            bridge = x.network.get_bridge(net)
            w = DeviceWatch(ns, bridge, appear=True)
            w.start()
            w.join(35)
            t_dns = None
            if kind == "dhcp":
                end = time.perf_counter() + 30
                while time.perf_counter() < end:
                    if set(networld.dnsmasqs_of(data_dir)) - before:
                        t_dns = time.perf_counter()
                        break
                    time.sleep(0.001)
            if w.error:
                log(f"  {kind} #{i}: {w.error}")
            if not warm:
                out[f"{kind}_returned"].append(t_ret - t0)
                out[f"{kind}_bridge"].append(None if w.at is None else (t_ret if w.at_first_poll else w.at) - t0)
                if kind == "dhcp":
                    out["dhcp_dnsmasq"].append(None if t_dns is None else t_dns - t0)
            gone = DeviceWatch(ns, bridge, appear=False)
            gone.start()
            gone.ready.wait(5)
            t0 = time.perf_counter()
            x.network.destroy(net)
            t_ret = time.perf_counter()
            gone.join(35)
            if not warm:
                out["destroy_returned"].append(t_ret - t0)
                out["destroy_bridge_gone"].append(None if gone.at is None else gone.at - t0)
    return out


def tiny_vm(x, name):
    tpl = [t for t in x.VM.get_by_name_label("Tiny Linux") if x.VM.get_is_a_template(t)]
    if not tpl:
        raise SystemExit("no template 'Tiny Linux'; is --tiny-guest honoured?")
    vm = x.VM.clone(tpl[0], name)
    x.VM.provision(vm)
    x.VM.set_is_a_template(vm, False)
    for vif in x.VM.get_VIFs(vm):
        x.VIF.destroy(vif)
    return vm


def vif_record(vm, network, device, mac=""):
    return {"device": device, "network": network, "VM": vm, "MAC": mac, "MTU": "1500", "other_config": {},
            "qos_algorithm_type": "", "qos_algorithm_params": {}}


def bench_vif_plug(x, session_id, data_dir, n):
    out = {k: [] for k in ("plug_returned", "plug_guest_kernel", "plug_guest_nic", "plug_guest_ip", "unplug_returned",
                           "unplug_guest_kernel", "unplug_guest_removed")}
    net0 = new_network(x, DHCP, "bench-guest-net")
    hot = new_network(x, HOT, "bench-hot-net")
    vm = tiny_vm(x, "bench-net-guest")
    x.VIF.create(vif_record(vm, net0, "0"))
    uuid = x.VM.get_uuid(vm)
    console = ConsoleTail(os.path.join(data_dir, "guests", uuid, "console.log"))
    t0 = time.perf_counter()
    x.VM.start(vm, False, False)
    console.wait(r"DROVER-GUEST ip=eth0:", timeout=120)
    log(f"guest up with its DHCP address after {time.perf_counter() - t0:.1f} s")

    def watch_in_guest(test, word, i):
        """A shell loop in the guest that prints DRT-<word>-<1000+i> as soon as `test` holds
        (checked every 5 ms); returns the pattern of that line (the typed line's echo differs)."""
        console.skip_to_end()
        type_into_console(x, session_id, vm,
                          f"until {test}; do sleep 0.005; done; echo DRT-{word}-$((1000+{i}))")
        console.wait(rf"DRT-{word}-\$\(\(1000\+{i}\)\)", timeout=30)  # the loop is running
        return rf"DRT-{word}-{1000 + i}\b"

    for i in range(n + 1):
        warm = i == 0
        vif = x.VIF.create(vif_record(vm, hot, "1"))
        mac = x.VIF.get_MAC(vif)
        seen = watch_in_guest("[ -e /sys/class/net/eth1 ]", "SEEN", i)
        t0 = time.perf_counter()
        x.VIF.plug(vif)
        t_ret = time.perf_counter()
        t_kernel, _ = console.wait(seen, timeout=60)
        t_nic, m = console.wait(rf"DROVER-GUEST nic=(eth\d+) mac={re.escape(mac)}", timeout=60)
        nic = m.group(1)
        t_ip, _ = console.wait(rf"DROVER-GUEST ip={nic}:\S+", timeout=60)
        if not warm:
            out["plug_returned"].append(t_ret - t0)
            out["plug_guest_kernel"].append(t_kernel - t0)
            out["plug_guest_nic"].append(t_nic - t0)
            out["plug_guest_ip"].append(t_ip - t0)
        gone = watch_in_guest(f"[ ! -e /sys/class/net/{nic} ]", "GONE", i)
        t0 = time.perf_counter()
        x.VIF.unplug(vif)
        t_ret = time.perf_counter()
        t_kernel, _ = console.wait(gone, timeout=60)
        t_rm, _ = console.wait(rf"DROVER-GUEST nic={nic} removed", timeout=60)
        if not warm:
            out["unplug_returned"].append(t_ret - t0)
            out["unplug_guest_kernel"].append(t_kernel - t0)
            out["unplug_guest_removed"].append(t_rm - t0)
        x.VIF.destroy(vif)
    x.VM.hard_shutdown(vm)
    x.VM.destroy(vm)
    x.network.destroy(hot)
    x.network.destroy(net0)
    return out


def tear_down(x):
    for ref, r in x.VM.get_all_records().items():
        if r["is_a_template"] or r["is_control_domain"]:
            continue
        try:
            if r["power_state"] != "Halted":
                x.VM.hard_shutdown(ref)
            x.VM.destroy(ref)
        except XenAPI.Failure as e:
            log(f"  cleanup VM: {e}")
    for ref, r in x.network.get_all_records().items():
        if not r["PIFs"]:
            try:
                x.network.destroy(ref)
            except XenAPI.Failure as e:
                log(f"  cleanup network: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--tiny-guest", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("-n", type=int, default=int(os.environ.get("N", 10)), help="repetitions (default N or 10)")
    ap.add_argument("--json", help="also write the samples and summaries to this file")
    args = ap.parse_args()
    # On SIGTERM/SIGHUP (from bench/network.sh's trap) run the finally blocks: they clean up.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(143))

    world = networld.NetWorld(prefix="drb").create()
    log(f"world: {world.ns} (uplinks eth0 {world.eth0_ip}/24, eth1, eth2), peer namespace {world.peer}")
    drover = Drover(args.binary, os.path.abspath(args.tiny_guest), args.work, world.ns)
    results = {}
    try:
        drover.start()
        session = drover.session()
        x = session.xenapi
        log(f"network.create x{args.n} (+1 warm-up), with and without DHCP")
        results["network"] = bench_network_create(x, world.ns, drover.data, args.n)
        log(f"VIF.plug/unplug into a running guest x{args.n} (+1 warm-up)")
        results["vif"] = bench_vif_plug(x, session._session, drover.data, args.n)
        try:
            tear_down(x)
        except Exception as e:  # noqa: BLE001 - reported, the rest still cleans up
            log(f"cleanup: {e}")
    finally:
        drover.stop()
        for pid in networld.processes_mentioning(args.work):
            if pid != os.getpid():
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        world.destroy()

    r, v = results["network"], results["vif"]
    print(f"Drover network figures ({args.n} repetitions each, after one warm-up; tiny guest under TCG)")
    print("network.create with DHCP (ip_begin/ip_end/netmask):")
    print(line("call returned", r["dhcp_returned"]))
    print(line("bridge exists in the namespace", r["dhcp_bridge"]))
    print(line("its dnsmasq is running", r["dhcp_dnsmasq"]))
    print("network.create without DHCP:")
    print(line("call returned", r["plain_returned"]))
    print(line("bridge exists in the namespace", r["plain_bridge"]))
    print("network.destroy:")
    print(line("call returned", r["destroy_returned"]))
    print(line("bridge gone", r["destroy_bridge_gone"]))
    print("VIF.plug into a running guest (hot plug):")
    print(line("call returned", v["plug_returned"]))
    print(line("guest kernel has the NIC (polled every 5 ms)", v["plug_guest_kernel"]))
    print(line("guest's init reports it (nic=ethN, 1 s poll)", v["plug_guest_nic"]))
    print(line("guest has its DHCP address (ip=ethN:)", v["plug_guest_ip"]))
    print("VIF.unplug from the running guest:")
    print(line("call returned", v["unplug_returned"]))
    print(line("guest kernel lost the NIC (polled every 5 ms)", v["unplug_guest_kernel"]))
    print(line("guest's init reports it removed (1 s poll)", v["unplug_guest_removed"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: {m: {"samples": xs, "summary": summary(xs)} for m, xs in d.items()}
                       for k, d in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
