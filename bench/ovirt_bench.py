#!/usr/bin/env python3
"""oVirt REST API figures of Drover (stdlib only; `bench/ovirt.sh` is the entry point).

Starts a release engine (`--host-driver sim --ovirt-listen ...`) on 127.0.0.1 with a fresh data
dir, fills it with VMs named vm0, vm1, ... through XenAPI (JSON-RPC VM.create from several
processes, as bench/xenapi_bench.py does) to 1,000 and then 10,000 VMs, and at each size measures
over one keep-alive connection with HTTP Basic credentials (the whole response read):
  * GET /ovirt-engine/api/vms?search=name%3Dvm1*   (111 VMs of 1,000; 1,111 of 10,000)
  * GET /ovirt-engine/api/vms?max=100
  * GET /ovirt-engine/api/vms                      (all of them; fewer samples)
p50 and p99 of N samples (default 200) after a warm-up, the response size and the number of VMs
answered (checked against the expectation), and the engine's RSS. Prints figures only.

    python bench/ovirt_bench.py --binary target/release/drover [--samples 200] [--vms 1000 10000]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import math
import os
import pathlib
import re
import socket
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from xenapi_bench import Conn, RpcError, log, vm_record  # noqa: E402
from xenapi_bench import Engine as XenapiEngine  # noqa: E402


def _create_worker(job):
    port, session, names, ints_as_numbers = job
    c = Conn(port)
    for i, name in enumerate(names):
        c.json("VM.create", [session, vm_record(name, ints_as_numbers)], i)
    return len(names)


def create_vms(port, session, first, count, workers, ints_as_numbers):
    """Creates vm{first}..vm{first+count-1} through XenAPI JSON-RPC from `workers` processes."""
    import multiprocessing as mp

    names = [f"vm{i}" for i in range(first, first + count)]
    jobs = [(port, session, names[k::workers], ints_as_numbers) for k in range(workers) if names[k::workers]]
    with mp.get_context("fork").Pool(len(jobs)) as pool:
        return sum(pool.map(_create_worker, jobs))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine(XenapiEngine):
    """A release `drover serve` on the simulated host with the oVirt listener (`ovirt_port`)."""

    def __init__(self, binary):
        ovirt_port = free_port()
        super().__init__(binary, extra_args=["--ovirt-listen", f"127.0.0.1:{ovirt_port}"])
        self.ovirt_port = ovirt_port


class Ovirt:
    """One keep-alive HTTP connection to the oVirt API, HTTP Basic as admin@internal."""

    def __init__(self, port, password):
        self.port = port
        token = base64.b64encode(f"admin@internal:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Version": "4", "Accept": "application/xml"}
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def get(self, path):
        self.c.request("GET", "/ovirt-engine/api/" + path, headers=self.headers)
        r = self.c.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"GET {path}: HTTP {r.status}: {body[:300]!r}")
        if r.getheader("Connection", "").lower() == "close":
            self.c.close()
            self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        return body


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def expected_vm1(n):
    """How many of vm0..vm{n-1} match name=vm1*."""
    return sum(1 for i in range(n) if str(i).startswith("1"))


def measure(api, path, samples, expect):
    body = api.get(path)
    count = len(re.findall(rb"<vm href=", body))
    if count != expect:
        raise SystemExit(f"GET {path} answered {count} VMs, expected {expect}")
    for _ in range(min(10, samples)):
        api.get(path)
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        api.get(path)
        times.append(time.perf_counter() - t0)
    return {"p50": pct(times, 50), "p99": pct(times, 99), "n": samples, "bytes": len(body), "vms": count}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/drover")
    ap.add_argument("--vms", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--all-samples", type=int, default=5, help="samples of the unfiltered list")
    ap.add_argument("--workers", type=int, default=4, help="client processes creating VMs")
    args = ap.parse_args()

    eng = Engine(os.path.abspath(args.binary))
    rows = []
    try:
        eng.start()
        log(f"engine up: XenAPI 127.0.0.1:{eng.port}, oVirt 127.0.0.1:{eng.ovirt_port}")
        c = Conn(eng.port)
        session = c.json("session.login_with_password", ["admin", eng.password, "2.0", "ovirt-bench"])
        api = Ovirt(eng.ovirt_port, eng.password)
        ints_as_numbers = False
        try:
            c.json("VM.create", [session, vm_record("vm0")])
        except RpcError:
            ints_as_numbers = True
            c.json("VM.create", [session, vm_record("vm0", True)])
        made = 1
        for target in args.vms:
            log(f"creating vm{made}..vm{target - 1} with {args.workers} processes")
            t0 = time.monotonic()
            made += create_vms(eng.port, session, made, target - made, args.workers, ints_as_numbers)
            dt = time.monotonic() - t0
            if made != target:
                raise SystemExit(f"only {made} of {target} VMs were created")
            created = target - (rows[-1]["vms"] if rows else 0)
            log(f"  {target} VMs ({created} created at {created / dt:.0f} VMs/s); measuring")
            row = {"vms": target, "create_s": dt, "created": created}
            row["search"] = measure(api, "vms?search=name%3Dvm1*", args.samples, expected_vm1(target))
            row["max100"] = measure(api, "vms?max=100", args.samples, 100)
            row["all"] = measure(api, "vms", args.all_samples, target)
            row["rss"] = eng.rss_mib()
            rows.append(row)
            for k in ("search", "max100", "all"):
                log(f"  {k}: p50 {row[k]['p50'] * 1000:.1f} ms  p99 {row[k]['p99'] * 1000:.1f} ms")
        alive = eng.proc.poll() is None
    finally:
        eng.stop()

    print()
    build = "release build" if "/release/" in os.path.abspath(args.binary) else f"binary {args.binary}"
    print(f"Drover oVirt REST API benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, client and "
          f"engine on one machine, sim host, {build}; one keep-alive connection, HTTP Basic, XML)")
    print()
    print(f"{'VMs':>6}  {'request':44} {'p50':>9} {'p99':>9} {'n':>4} {'VMs':>6} {'bytes':>10}")
    labels = {"search": "GET /vms?search=name%3Dvm1*", "max100": "GET /vms?max=100", "all": "GET /vms (all)"}
    for row in rows:
        for k, label in labels.items():
            m = row[k]
            print(f"{row['vms']:>6}  {label:44} {m['p50'] * 1000:7.1f}ms {m['p99'] * 1000:7.1f}ms {m['n']:>4} "
                  f"{m['vms']:>6} {m['bytes']:>10}")
        print(f"{row['vms']:>6}  engine RSS {row['rss']:.0f} MiB; {row['created']} VMs created through XenAPI "
              f"VM.create in {row['create_s']:.1f} s")
    print()
    print(f"engine {'was alive at the end' if alive else 'HAD DIED'}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
