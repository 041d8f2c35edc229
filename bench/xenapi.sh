#!/usr/bin/env bash
# Benchmark of Drover's XenAPI server: VM creation rate, VM.get_all_records latency at 1,000 and
# 10,000 VMs, VM.get_record calls/s (wrk) over XML-RPC and JSON-RPC, event.from wake-up latency.
# Starts its own release engine (sim host driver) on 127.0.0.1 and stops it at the end; bounded
# to about 3 minutes. Extra arguments go to bench/xenapi_bench.py (see --help there).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "==> installing wrk (Debian package)" >&2
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk; } >&2; then
        echo "warning: wrk could not be installed; falling back to the Python load client" >&2
    fi
fi

BIN=${DROVER_BIN:-target/release/drover}
if [ ! -x "$BIN" ]; then
    echo "==> cargo build --release" >&2
    cargo build --release >&2
fi

exec python3 bench/xenapi_bench.py --binary "$BIN" "$@"
