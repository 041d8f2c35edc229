#!/usr/bin/env python3
"""Pool figures of Drover (`bench/pool.sh` is the entry point; it needs root and the project's
.venv with XenAPI, websocket-client and pytest).

Builds a pool on this machine with tests/interop/poolnet.py (a private bridge with 10.231.0.1/24,
a network namespace per node; `drover serve` as the disabled master and three `drover node`
processes, QEMU under TCG, a shared directory SR) and measures:
  1. live migration of the tiny guest (96 MiB) between two nodes, N times back and forth: the
     downtime and total time QEMU reports (VM_metrics.other_config `migration_downtime_ms`,
     `migration_total_ms`) and the wall time of the VM.pool_migrate call (synchronous, over
     loopback: the engine's time for the whole operation plus well under a millisecond of HTTP);
  2. HA: from SIGKILL of the node running an HA guest (the node process and its QEMU processes at
     once) to the host being fenced (`other_config:drover_state` = down), to the guest Running on
     another host, and to its console showing it booted there; N_HA times, after each of which the
     dead node is switched on again with host.power_on (the `drover` fence agent's `on`).
Prints figures only; asserts nothing about timings. Removes everything it made.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "interop"))
import poolnet  # noqa: E402
from xapitest import NULL, wait_until  # noqa: E402

POLL = 0.05
T_START = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


def line(label, xs, unit="ms"):
    if not xs:
        return f"  {label:<44} (no samples)"
    def f(v):
        return f"{v * 1000:8.1f} ms" if unit == "ms" else f"{v:8.2f} s "
    return (f"  {label:<44} min {f(min(xs))}  median {f(statistics.median(xs))}  max {f(max(xs))}"
            f"  (n={len(xs)})")


def bench_migration(pool, n):
    """N live migrations of one guest between nodes 0 and 1; (downtime, total, call) in seconds."""
    x = pool.x
    vm = pool.boot(pool.new_vm(), pool.hosts[0])
    boot, _ = pool.boot_state(vm)
    downtime, total, call = [], [], []
    for i in range(n):
        dst = pool.hosts[(i + 1) % 2]
        t0 = time.perf_counter()
        x.VM.pool_migrate(vm, dst, {})
        call.append(time.perf_counter() - t0)
        other = x.VM_metrics.get_other_config(x.VM.get_metrics(vm))
        downtime.append(int(other["migration_downtime_ms"]) / 1000)
        total.append(int(other["migration_total_ms"]) / 1000)
        log(f"  migration {i + 1}: downtime {other['migration_downtime_ms']} ms, "
            f"total {other['migration_total_ms']} ms, call {call[-1] * 1000:.0f} ms")
    if pool.boot_state(vm)[0] != boot:
        raise SystemExit("the guest rebooted during the migrations: the figures are void")
    pool.remove_vm(vm)
    return downtime, total, call


def ha_round(pool, vm):
    """Kills the node running `vm` (an HA guest); seconds from the kill to the host fenced, to
    the guest Running elsewhere and to the guest booted there. Switches the node on again."""
    x = pool.x
    host = x.VM.get_resident_on(vm)
    t0 = pool.node_of(host).kill9()
    fenced = running = None
    while running is None:
        if time.monotonic() - t0 > 120:
            raise SystemExit("the HA guest did not run again within 120 s")
        now = time.monotonic() - t0
        if fenced is None and x.host.get_other_config(host).get("drover_state") == "down":
            fenced = now
        on = x.VM.get_resident_on(vm)
        if x.VM.get_power_state(vm) == "Running" and on not in (host, NULL):
            running = now
        time.sleep(POLL)
    pool.wait_booted(vm)
    booted = time.monotonic() - t0
    x.host.power_on(host)
    wait_until(lambda: x.host_metrics.get_live(x.host.get_metrics(host))
               and "drover_state" not in x.host.get_other_config(host), timeout=60, poll=0.2,
               what="the host to be up again")
    return fenced, running, booted


def bench_ha(pool, n):
    vm = pool.new_vm()
    pool.x.VM.set_ha_restart_priority(vm, "restart")
    pool.boot(vm, pool.hosts[0])
    out = {"fenced": [], "running": [], "booted": []}
    for i in range(n):
        fenced, running, booted = ha_round(pool, vm)
        log(f"  HA round {i + 1}: fenced after {fenced:.2f} s, running after {running:.2f} s, "
            f"booted after {booted:.2f} s")
        out["fenced"].append(fenced)
        out["running"].append(running)
        out["booted"].append(booted)
    pool.remove_vm(vm)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--tiny-guest", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("-n", type=int, default=int(os.environ.get("N", 10)), help="migrations (default N or 10)")
    ap.add_argument("--n-ha", type=int, default=int(os.environ.get("N_HA", 3)),
                    help="node kills (default N_HA or 3)")
    ap.add_argument("--max-downtime-ms", type=int, default=300,
                    help="the engine's --max-migration-downtime-ms (default 300)")
    args = ap.parse_args()
    # On SIGTERM/SIGHUP (from bench/pool.sh's trap) run the finally block: it cleans up.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(143))

    pool = poolnet.Pool(args.binary, pathlib.Path(args.work) / "pool", os.path.abspath(args.tiny_guest),
                        engine_args=["--max-migration-downtime-ms", str(args.max_downtime_ms)])
    log(f"fabric: {pool.fabric.bridge} (namespaces {pool.fabric.master_ns} {' '.join(pool.fabric.node_ns)})")
    try:
        pool.start()
        log(f"pool up: master disabled, {len(pool.nodes)} nodes")
        log(f"live migration x{args.n}")
        downtime, total, call = bench_migration(pool, args.n)
        log(f"HA restart after a node kill x{args.n_ha}")
        ha = bench_ha(pool, args.n_ha)
    finally:
        pool.close()

    print(f"Drover pool figures (tiny guest, 96 MiB, TCG; three nodes on one machine over a bridge; "
          f"--max-migration-downtime-ms {args.max_downtime_ms})")
    print(f"Live migration between two nodes ({args.n} migrations, back and forth):")
    print(line("downtime (QEMU, migration_downtime_ms)", downtime))
    print(line("total time (QEMU, migration_total_ms)", total))
    print(line("VM.pool_migrate call (engine, wall)", call))
    print(f"HA: SIGKILL of the guest's node (node + QEMU) until ... ({args.n_ha} kills):")
    print(line("host fenced (drover_state=down)", ha["fenced"], "s"))
    print(line("HA guest Running on another host", ha["running"], "s"))
    print(line("HA guest booted there (console)", ha["booted"], "s"))


if __name__ == "__main__":
    main()
