#!/usr/bin/env bash
# oVirt REST API figures of Drover (see bench/ovirt_bench.py): with 1,000 and then 10,000 VMs
# (made through XenAPI), p50/p99 latency of `GET /ovirt-engine/api/vms?search=name%3Dvm1*`, of
# `GET /ovirt-engine/api/vms?max=100` and of the whole list, over one keep-alive connection with
# HTTP Basic credentials, and the engine's RSS. Starts its own release engine (sim host driver)
# on 127.0.0.1 with a temp data dir and stops it at the end; prints figures only.
# Env knobs: DROVER_BIN (default: cargo build --release). Extra arguments go to
# bench/ovirt_bench.py (e.g. --samples 500 --vms 1000 10000 50000).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DROVER_BIN:-}" ]; then
    cargo build --release >&2
    DROVER_BIN=${CARGO_TARGET_DIR:-target}/release/drover
fi
exec python3 bench/ovirt_bench.py --binary "$DROVER_BIN" "$@"
