#!/usr/bin/env python3
"""z/VM Cloud Connector figures of Drover, through the real `zvmconnector` client: the REST and
socket round trip of a cheap call, and the documented flow on the tiny guest (image_import of its
64 MiB disk, guest_create, guest_deploy, guest_start until the guest's first console line,
guest_softstop of the booted guest, guest_delete), over N repetitions (median, p90). Starts its own release engine
(`--host-driver qemu --accel tcg` in a network namespace of its own, see vmstart_bench.Drover).
Prints figures only; never asserts timings.

    python bench/zvm_bench.py --binary target/release/drover --tiny-guest guest/out [-n 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import vmstart_bench  # noqa: E402
from network_bench import fmt, summary  # noqa: E402
from zvmconnector import connector  # noqa: E402


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t, out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--tiny-guest", required=True)
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--calls", type=int, default=300)
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="zvmbench.")
    rest, sock = vmstart_bench.free_port(), vmstart_bench.free_port()
    d = vmstart_bench.Drover(a.binary, os.path.abspath(a.tiny_guest), work,
                             extra_args=["--zvm-listen", f"127.0.0.1:{rest}",
                                         "--zvm-socket-listen", f"127.0.0.1:{sock}"])
    try:
        d.start()
        z = connector.ZVMConnector("127.0.0.1", rest)
        s = connector.ZVMConnector("127.0.0.1", sock, connection_type="socket")

        def ok(c, api, *args, **kw):
            r = c.send_request(api, *args, **kw)
            if r["overallRC"] != 0:
                raise SystemExit(f"{api} failed: {r}")
            return r["output"]

        figures = {}
        ok(z, "guest_create", "ZBENCH0", 1, 96)
        for name, c in (("REST guest_get_power_state", z), ("socket guest_get_power_state", s)):
            figures[name] = summary([timed(ok, c, "guest_get_power_state", "ZBENCH0")[0]
                                     for _ in range(a.calls)])
        ok(z, "guest_delete", "ZBENCH0")

        image = os.path.join(os.path.abspath(a.tiny_guest), "disk.img")
        md5 = hashlib.md5(pathlib.Path(image).read_bytes()).hexdigest()
        t, _ = timed(ok, z, "image_import", "benchimg", f"file://{image}",
                     {"os_version": "rhel8", "md5sum": md5})
        figures["image_import (64 MiB, md5 checked)"] = summary([t])

        steps = {k: [] for k in ("guest_create", "guest_deploy", "guest_start", "start to first console line",
                                 "guest_softstop", "guest_delete")}
        for i in range(a.n):
            u = f"ZB{i:04d}"
            steps["guest_create"].append(timed(ok, z, "guest_create", u, 1, 96,
                                               disk_list=[{"size": "100m", "is_boot_disk": True}])[0])
            steps["guest_deploy"].append(timed(ok, z, "guest_deploy", u, "benchimg")[0])
            t0 = time.perf_counter()
            ok(z, "guest_start", u)
            steps["guest_start"].append(time.perf_counter() - t0)
            while not re.search(r"DROVER-GUEST boot_id=", ok(z, "guest_get_console_output", u)):
                if time.perf_counter() - t0 > 120:
                    raise SystemExit(f"{u} did not boot")
                time.sleep(0.05)
            steps["start to first console line"].append(time.perf_counter() - t0)
            # The guest answers the ACPI button once its init has started acpid, before its
            # first uptime line.
            while not re.search(r"DROVER-GUEST uptime=", ok(z, "guest_get_console_output", u)):
                time.sleep(0.05)
            steps["guest_softstop"].append(timed(ok, z, "guest_softstop", u, timeout=60, poll_interval=1)[0])
            steps["guest_delete"].append(timed(ok, z, "guest_delete", u)[0])
        for k, v in steps.items():
            figures[k] = summary(v)
        print(f"{'figure':42} {'median':>11} {'p90':>11}  n")
        for k, v in figures.items():
            print(f"{k:42} {fmt(v['median'])} {fmt(v['p90'])}  {v['n']}")
        print(f"engine RSS after the run: {d.rss() / 2**20:.1f} MiB")
    finally:
        d.stop()
        if d.owns_netns:
            subprocess.run(["ip", "netns", "del", d.netns], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
