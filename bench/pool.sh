#!/usr/bin/env bash
# Pool figures of Drover: live-migration downtime and total time of the tiny guest between two
# nodes (N migrations back and forth; min/median/max of QEMU's figures in VM_metrics and of the
# VM.pool_migrate call), and the time from killing a node (SIGKILL of the node and its QEMU
# processes) to its HA guest running on another host (N_HA kills; median), see
# bench/pool_bench.py. Builds its own pool on this machine (tests/interop/poolnet.py): a bridge
# drp-<random> with 10.231.0.1/24 in the root namespace, a network namespace per node
# (drp-<random>-0..2, eth0 = 10.231.0.2..4) and one for the master's own networks
# (drp-<random>-m); `drover serve` (the master, disabled) and three `drover node` processes, QEMU
# under TCG. Sends traffic only to those addresses. Prints figures only (never asserts timings).
# Everything it starts is stopped at the end or on a signal: drover, QEMU, namespaces, the
# bridge, temp dirs.
#
# Needs root. Env knobs: N (migrations, 10), N_HA (node kills, 3), DROVER_BIN (binary; default:
# cargo build --release), TINY_GUEST (guest directory, default guest/out), PYTHON (default
# .venv/bin/python). Extra arguments go to bench/pool_bench.py (e.g. --max-downtime-ms 100).
# Usage: sudo bash bench/pool.sh        e.g.  N=20 N_HA=5 bash bench/pool.sh
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "error: bench/pool.sh needs root (network namespaces)" >&2; exit 1; }

# ---- packages: ip, busybox, QEMU
missing=()
for p in iproute2 busybox-static dnsmasq-base qemu-system-x86 qemu-utils; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "==> installing ${missing[*]}" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2 \
        || { echo "error: could not install ${missing[*]}" >&2; exit 1; }
fi

# ---- the tiny guest
TINY_GUEST=${TINY_GUEST:-guest/out}
if [ ! -f "$TINY_GUEST/vmlinuz" ] || [ ! -f "$TINY_GUEST/initrd.img" ]; then
    echo "==> building the tiny guest into $TINY_GUEST (guest/build-tiny-guest.sh)" >&2
    bash guest/build-tiny-guest.sh "$TINY_GUEST" >&2
fi

# ---- the release binary
if [ -n "${DROVER_BIN:-}" ]; then
    BIN=$DROVER_BIN
else
    BIN=target/release/drover
    [ -n "${CARGO_TARGET_DIR:-}" ] && BIN=$CARGO_TARGET_DIR/release/drover
    echo "==> cargo build --release" >&2
    cargo build --release >&2 || { echo "error: cargo build --release failed" >&2; exit 1; }
fi
"$BIN" node --help 2>/dev/null | grep -q -- --migration-bandwidth-mib \
    || { echo "error: $BIN has no pool support (drover node --migration-bandwidth-mib): too old" >&2; exit 1; }

# ---- Python with the XenAPI module and the interop suite's helpers
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c 'import XenAPI, websocket, pytest' 2>/dev/null; then
    echo "error: $PY cannot import XenAPI, websocket and pytest (scripts/test.sh creates .venv with them)" >&2
    exit 1
fi

# ---- run, with a trap that removes whatever the helper could not
WORK=$(mktemp -d /tmp/poolbench.XXXXXX)
PYPID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$PYPID" ] && kill -0 "$PYPID" 2>/dev/null; then
        kill -TERM "$PYPID" 2>/dev/null || true
        wait "$PYPID" 2>/dev/null || true
    fi
    # any process still using the scratch dir (drover, QEMU, dnsmasq), by id
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = "$$" ] && continue
        cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null || true)
        case "$cmd" in *"$WORK"*) kill -KILL "$pid" 2>/dev/null || true ;; esac
    done
    # the helper's namespaces and bridge, if it could not delete them (their names are in its log)
    if [ -f "$WORK/bench.log" ]; then
        for br in $(sed -n 's/.*fabric: \(drp-[0-9a-f]*\) .*/\1/p' "$WORK/bench.log"); do
            for ns in $(ip netns list | awk '{print $1}' | grep -E "^$br-([0-9]+|m)\$" || true); do
                ip netns del "$ns" 2>/dev/null || true
            done
            ip link del "$br" 2>/dev/null || true
        done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

"$PY" bench/pool_bench.py --binary "$(readlink -f "$BIN")" --tiny-guest "$TINY_GUEST" --work "$WORK" "$@" \
    2> >(tee "$WORK/bench.log" >&2) &
PYPID=$!
rc=0
wait "$PYPID" || rc=$?
exit "$rc"
