#!/usr/bin/env python3
"""XenAPI server benchmark for Drover (stdlib only; `bench/xenapi.sh` is the entry point).

Starts a release engine (`--host-driver sim`) on 127.0.0.1 with a fresh data dir and measures:
  * VM creation rate (JSON-RPC VM.create from several processes) up to 1,000 and then 10,000 VMs
  * VM.get_all_records latency (median of 5, XML-RPC and JSON-RPC) at 1,000 and at 10,000 VMs
  * authenticated VM.get_record calls/s over XML-RPC and JSON-RPC, driven by wrk (Lua script that
    POSTs a fixed body carrying a real session ref); falls back to a multi-process Python client
  * event.from wake-up latency: a waiting event.from, a set_name_label on another connection; time
    from the write's acknowledgement to event.from returning (median of 20)
The run is bounded (about 3 minutes at most), talks to 127.0.0.1 only and stops its server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MiB = 1024 * 1024
T_START = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T_START:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- wire


class Conn:
    """A keep-alive HTTP connection to the engine."""

    def __init__(self, port, timeout=120):
        self.port = port
        self.timeout = timeout
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def post(self, path, body: bytes, ctype):
        for attempt in (0, 1):
            try:
                self.c.request("POST", path, body=body, headers={"Content-Type": ctype})
                r = self.c.getresponse()
                data = r.read()
                return r.status, data
            except (http.client.HTTPException, ConnectionError):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt:
                    raise

    def json(self, method, params, rid=1):
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": rid}).encode()
        status, data = self.post("/jsonrpc", body, "application/json")
        if status != 200:
            raise RuntimeError(f"{method}: HTTP {status}: {data[:200]!r}")
        doc = json.loads(data)
        if "error" in doc and doc["error"] is not None:
            raise RpcError(doc["error"])
        return doc["result"]


class RpcError(Exception):
    def __init__(self, err):
        super().__init__(err)
        self.err = err


def xml_call_body(method, *string_params):
    from xml.sax.saxutils import escape

    params = "".join(f"<param><value><string>{escape(p)}</string></value></param>" for p in string_params)
    return f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>".encode()


def json_call_body(method, params):
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()


def vm_record(name, ints_as_numbers=False):
    mem = 256 * MiB
    i = (lambda v: v) if ints_as_numbers else str
    return {
        "name_label": name, "name_description": "bench", "user_version": i(1), "is_a_template": False,
        "affinity": "OpaqueRef:NULL", "memory_static_max": i(mem), "memory_dynamic_max": i(mem),
        "memory_dynamic_min": i(mem), "memory_static_min": i(mem), "VCPUs_params": {}, "VCPUs_max": i(1),
        "VCPUs_at_startup": i(1), "actions_after_softreboot": "soft_reboot", "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart", "actions_after_crash": "restart", "PV_bootloader": "", "PV_kernel": "",
        "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "cd"}, "HVM_shadow_multiplier": 1.0,
        "platform": {}, "PCI_bus": "", "other_config": {}, "recommendations": "", "xenstore_data": {}, "tags": [],
        "suspend_SR": "OpaqueRef:NULL", "hardware_platform_version": i(0), "has_vendor_device": False,
        "domain_type": "hvm",
    }


# ---------------------------------------------------------------------------------------- engine


class Engine:
    def __init__(self, binary, keep=False, extra_args=()):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="drover-bench-")
        self.keep = keep
        self.password = "bench-" + secrets.token_hex(6)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = os.path.join(self.dir, "drover.log")
        self.proc = None

    def start(self):
        env = dict(os.environ, DROVER_ADMIN_PASSWORD=self.password)
        cmd = [self.binary, "serve", "--data-dir", os.path.join(self.dir, "data"),
               "--listen", f"127.0.0.1:{self.port}", "--host-driver", "sim", *self.extra_args]
        with open(self.log, "ab") as lf:
            self.proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"drover exited ({self.proc.returncode}) during start-up; log: {self.log}\n" + self.tail())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise SystemExit("drover did not become healthy within 60s\n" + self.tail())

    def rss_mib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return float("nan")
        return float("nan")

    def tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------- phases


def _create_worker(args):
    port, session, start, stop, ints_as_numbers, deadline = args
    c = Conn(port)
    made = 0
    for i in range(start, stop):
        if time.time() > deadline:
            break
        c.json("VM.create", [session, vm_record(f"bench-vm-{i:05d}", ints_as_numbers)], i)
        made += 1
    return made


def create_vms(port, session, first, count, ints_as_numbers, workers, deadline_wall):
    per = (count + workers - 1) // workers
    jobs = [(port, session, first + k * per, min(first + (k + 1) * per, first + count), ints_as_numbers, deadline_wall)
            for k in range(workers) if first + k * per < first + count]
    t0 = time.monotonic()
    with mp.get_context("fork").Pool(len(jobs)) as pool:
        made = sum(pool.map(_create_worker, jobs))
    return made, time.monotonic() - t0


def timed_post(port, path, body, ctype):
    c = Conn(port, timeout=300)
    t0 = time.perf_counter()
    status, data = c.post(path, body, ctype)
    dt = time.perf_counter() - t0
    c.c.close()
    if status != 200:
        raise RuntimeError(f"HTTP {status}")
    return dt, data


def get_all_records_latency(port, session, n=5):
    out = {}
    xml_body = xml_call_body("VM.get_all_records", session)
    js_body = json_call_body("VM.get_all_records", [session])
    for proto, path, body, ctype in (("XML-RPC", "/RPC2", xml_body, "text/xml"), ("JSON-RPC", "/jsonrpc", js_body, "application/json")):
        times, size = [], 0
        for _ in range(n):
            dt, data = timed_post(port, path, body, ctype)
            if proto == "XML-RPC" and (b"Success" not in data[:400] or b"Failure" in data[:400]):
                raise RuntimeError(f"VM.get_all_records over XML-RPC failed: {data[:300]!r}")
            if proto == "JSON-RPC" and b'"error"' in data[:200]:
                raise RuntimeError(f"VM.get_all_records over JSON-RPC failed: {data[:300]!r}")
            times.append(dt)
            size = len(data)
        out[proto] = (statistics.median(times), size)
    return out


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = %s
wrk.body = %s
"""


def lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def run_wrk(port, path, body: bytes, ctype, duration, connections, threads, tmp):
    script = os.path.join(tmp, f"post{path.replace('/', '_')}.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA % (lua_string(ctype), lua_string(body.decode())))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script,
           f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:(.*)", out)
    return {"rps": rps, "p50": lat.get("50"), "p90": lat.get("90"), "p99": lat.get("99"),
            "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errs.group(1).strip() if errs else "", "raw": out}


def _py_load_worker(args):
    port, path, body, ctype, duration = args
    c = Conn(port)
    n = 0
    lat = []
    end = time.monotonic() + duration
    while time.monotonic() < end:
        t0 = time.perf_counter()
        status, _ = c.post(path, body, ctype)
        lat.append(time.perf_counter() - t0)
        if status == 200:
            n += 1
    return n, lat


def run_python_load(port, path, body, ctype, duration, procs):
    with mp.get_context("fork").Pool(procs) as pool:
        res = pool.map(_py_load_worker, [(port, path, body, ctype, duration)] * procs)
    n = sum(r[0] for r in res)
    lat = sorted(x for r in res for x in r[1])
    q = lambda p: f"{lat[int(p * (len(lat) - 1))] * 1000:.2f}ms" if lat else "-"  # noqa: E731
    return {"rps": n / duration, "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "non2xx": 0, "socket_errors": "", "raw": ""}


def event_wakeup_latency(port, session, vm, rounds=20):
    waiter = Conn(port, timeout=60)
    writer = Conn(port)
    token = waiter.json("event.from", [session, ["VM"], "", 0.0])["token"]
    lats, from_send = [], []
    for i in range(rounds):
        box = {}

        def wait(tok=token):
            box["res"] = waiter.json("event.from", [session, ["VM"], tok, 30.0])
            box["t"] = time.perf_counter()

        th = threading.Thread(target=wait)
        th.start()
        time.sleep(0.15)  # let the call reach the server and block
        t_send = time.perf_counter()
        writer.json("VM.set_name_label", [session, vm, f"bench-event-{i}"])
        t_ack = time.perf_counter()
        th.join(35)
        if "res" not in box:
            raise RuntimeError("event.from did not return")
        evs = [e for e in box["res"]["events"] if e["ref"] == vm]
        if not evs:
            # woke for something else (should not happen: nothing else writes); do not count it
            token = box["res"]["token"]
            continue
        lats.append(box["t"] - t_ack)
        from_send.append(box["t"] - t_send)
        token = box["res"]["token"]
    return lats, from_send


# ---------------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/drover")
    ap.add_argument("--vms", type=int, nargs=2, default=[1000, 10000], metavar=("FIRST", "SECOND"))
    ap.add_argument("--duration", type=int, default=8, help="seconds of each get_record load run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=8, help="client processes creating VMs")
    ap.add_argument("--budget", type=float, default=170.0, help="overall time budget in seconds")
    ap.add_argument("--keep", action="store_true", help="keep the data dir and log")
    args = ap.parse_args()

    have_wrk = shutil.which("wrk") is not None
    eng = Engine(os.path.abspath(args.binary), keep=args.keep)
    results = {"phases": []}
    tmp = tempfile.mkdtemp(prefix="drover-bench-lua-")
    deadline_wall = time.time() + args.budget - 60  # keep a minute for the measurements after creation
    try:
        eng.start()
        log(f"engine up on 127.0.0.1:{eng.port} (data {eng.dir})")
        c = Conn(eng.port)
        session = c.json("session.login_with_password", ["admin", eng.password, "2.0", "bench"])
        base_vms = len(c.json("VM.get_all", [session]))

        ints_as_numbers = False
        try:
            c.json("VM.create", [session, vm_record("bench-probe")])
        except RpcError as e:
            log(f"VM.create with int strings refused ({e.err}); using JSON numbers")
            ints_as_numbers = True
            c.json("VM.create", [session, vm_record("bench-probe", True)])

        made_total = 1
        for target in args.vms:
            want = target - made_total
            if want > 0:
                log(f"creating {want} VMs with {args.workers} processes")
                made, dt = create_vms(eng.port, session, made_total, want, ints_as_numbers, args.workers, deadline_wall)
                made_total += made
                rate = made / dt if dt else float("nan")
                log(f"  {made} VMs in {dt:.1f}s = {rate:.0f} VMs/s")
            else:
                made, dt, rate = 0, 0.0, float("nan")
            n_vms = len(c.json("VM.get_all", [session]))
            lat = get_all_records_latency(eng.port, session)
            phase = {"target": target, "vms": n_vms, "created": made, "create_s": dt, "create_rate": rate,
                     "get_all_records": lat, "rss_mib": eng.rss_mib()}
            results["phases"].append(phase)
            log(f"  {n_vms} VMs: get_all_records XML-RPC {lat['XML-RPC'][0] * 1000:.1f} ms ({lat['XML-RPC'][1] / MiB:.1f} MiB), "
                f"JSON-RPC {lat['JSON-RPC'][0] * 1000:.1f} ms ({lat['JSON-RPC'][1] / MiB:.1f} MiB)")
            if time.time() > deadline_wall:
                log("time budget for creation used up; measuring with what exists")
                break

        vm = c.json("VM.get_by_name_label", [session, "bench-probe"])[0]
        xml_body = xml_call_body("VM.get_record", session, vm)
        js_body = json_call_body("VM.get_record", [session, vm])
        # the bodies really are authenticated, successful calls
        st, data = Conn(eng.port).post("/RPC2", xml_body, "text/xml")
        assert st == 200 and b"Success" in data and b"bench-probe" in data, data[:300]
        st, data = Conn(eng.port).post("/jsonrpc", js_body, "application/json")
        assert st == 200 and json.loads(data).get("result", {}).get("name_label") == "bench-probe", data[:300]

        load = {}
        for proto, path, body, ctype in (("XML-RPC", "/RPC2", xml_body, "text/xml"), ("JSON-RPC", "/jsonrpc", js_body, "application/json")):
            log(f"VM.get_record load over {proto}: {'wrk' if have_wrk else 'python'} -c{args.connections} {args.duration}s")
            if have_wrk:
                load[proto] = run_wrk(eng.port, path, body, ctype, args.duration, args.connections, 2, tmp)
            else:
                load[proto] = run_python_load(eng.port, path, body, ctype, args.duration, min(8, args.connections))
            log(f"  {load[proto]['rps']:.0f} req/s  p50 {load[proto]['p50']}  p99 {load[proto]['p99']}")
        results["load"] = load

        log("event.from wake-up latency, 20 rounds")
        results["event"], results["event_from_send"] = event_wakeup_latency(eng.port, session, vm)
        alive = eng.proc.poll() is None
    finally:
        eng.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ report
    cpu = os.cpu_count()
    print()
    print(f"Drover XenAPI benchmark  ({time.strftime('%Y-%m-%d %H:%M')}, {cpu} CPUs, engine and client on the same machine,"
          f" sim host driver, {base_vms} VMs/templates at first start)")
    print()
    print("VM creation (JSON-RPC VM.create, %d client processes)" % args.workers)
    for p in results["phases"]:
        if p["created"]:
            print(f"  to {p['vms']:>6} VMs: {p['created']:>6} created in {p['create_s']:6.1f} s = {p['create_rate']:7.0f} VMs/s")
    print()
    print("VM.get_all_records latency (median of 5, whole response read)")
    for p in results["phases"]:
        x_ms, x_sz = p["get_all_records"]["XML-RPC"]
        j_ms, j_sz = p["get_all_records"]["JSON-RPC"]
        print(f"  {p['vms']:>6} VMs: XML-RPC {x_ms * 1000:8.1f} ms ({x_sz / MiB:6.1f} MiB)   JSON-RPC {j_ms * 1000:8.1f} ms ({j_sz / MiB:6.1f} MiB)"
              f"   server RSS {p['rss_mib']:.0f} MiB")
    print()
    tool = f"wrk -t2 -c{args.connections} -d{args.duration}s" if have_wrk else f"python client, {min(8, args.connections)} processes (wrk not installed)"
    print(f"VM.get_record throughput at {results['phases'][-1]['vms']} VMs, authenticated ({tool})")
    for proto, r in results["load"].items():
        extra = ""
        if r["non2xx"]:
            extra += f"  NON-2xx: {r['non2xx']}"
        if r["socket_errors"]:
            extra += f"  socket errors: {r['socket_errors']}"
        print(f"  {proto:8}: {r['rps']:9.0f} calls/s   latency p50 {r['p50']}  p90 {r['p90']}  p99 {r['p99']}{extra}")
    print()
    lats = results["event"]
    if lats:
        print(f"event.from wake-up latency, {len(lats)} rounds (a waiting event.from(['VM']); set_name_label on another connection)")
        for label, vals in (("write acknowledged -> event.from returned", lats),
                            ("write sent -> event.from returned       ", results["event_from_send"])):
            ms = sorted(v * 1000 for v in vals)
            print(f"  {label}: median {statistics.median(ms):7.2f} ms   min {ms[0]:7.2f}   p90 {ms[int(0.9 * (len(ms) - 1))]:7.2f}   max {ms[-1]:7.2f}")
        print("  (negative: event.from returned before the writer had read its own acknowledgement)")
    else:
        print("event.from wake-up latency: no round produced an event for the VM written")
    print()
    print(f"total run time {time.monotonic() - T_START:.0f} s; engine {'was alive at the end' if alive else 'HAD DIED'}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
