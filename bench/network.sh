#!/usr/bin/env bash
# Network figures of Drover: time to create a network (network.create through XenAPI until the
# bridge exists, and until its DHCP server runs) and to plug a VIF into a running guest (VIF.plug
# returned, and until the guest sees the NIC on its console), over N repetitions (median, p90).
# Builds its own world -- a network namespace drb-<random> with uplinks eth0/eth1/eth2 whose other
# ends are in a second namespace drb-<random>-w -- and starts its own release engine
# (`--host-driver qemu --accel tcg --netns drb-<random>`, template `Tiny Linux`) on a free 127.0.0.1
# port with a temp data dir (see bench/network_bench.py). Touches nothing in the root namespace and
# sends traffic only inside its namespaces. Prints figures only (never asserts timings). Everything
# it starts is stopped at the end or on a signal: drover, QEMU, dnsmasq, namespaces, temp dirs.
#
# Needs root. Env knobs: N (repetitions, 10), DROVER_BIN (binary; default: cargo build --release),
# TINY_GUEST (guest directory, default guest/out). Extra arguments go to bench/network_bench.py.
# Usage: sudo bash bench/network.sh        e.g.  N=20 bash bench/network.sh --json /tmp/net.json
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "error: bench/network.sh needs root (network namespaces)" >&2; exit 1; }

# ---- packages: ip, dnsmasq
missing=()
for p in iproute2 dnsmasq-base; do
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
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 is not installed" >&2; exit 1; }

# ---- the release binary
if [ -n "${DROVER_BIN:-}" ]; then
    BIN=$DROVER_BIN
else
    BIN=target/release/drover
    [ -n "${CARGO_TARGET_DIR:-}" ] && BIN=$CARGO_TARGET_DIR/release/drover
    echo "==> cargo build --release" >&2
    if ! cargo build --release >&2; then
        if [ -x "$BIN" ] && "$BIN" serve --help 2>/dev/null | grep -q -- --netns; then
            echo "warning: cargo build --release failed; using the existing $BIN" >&2
        else
            echo "error: cargo build --release failed and there is no usable $BIN" >&2
            exit 1
        fi
    fi
fi
"$BIN" serve --help 2>/dev/null | grep -q -- --netns \
    || { echo "error: $BIN has no --netns option (too old)" >&2; exit 1; }

# ---- Python with the XenAPI module
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c 'import XenAPI' 2>/dev/null; then
    echo "error: $PY cannot import XenAPI (scripts/test.sh creates .venv with it)" >&2
    exit 1
fi

# ---- run, with a trap that removes whatever the helper could not
WORK=$(mktemp -d /tmp/netbench.XXXXXX)
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
    # the helper's namespaces, if it could not delete them (their names are in its log)
    if [ -f "$WORK/bench.log" ]; then
        for ns in $(sed -n 's/.*world: \(drb-[0-9a-f]*\) .*/\1/p' "$WORK/bench.log"); do
            ip netns del "$ns-w" 2>/dev/null || true
            ip netns del "$ns" 2>/dev/null || true
        done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

"$PY" bench/network_bench.py --binary "$(readlink -f "$BIN")" --tiny-guest "$TINY_GUEST" --work "$WORK" "$@" \
    2> >(tee "$WORK/bench.log" >&2) &
PYPID=$!
rc=0
wait "$PYPID" || rc=$?
exit "$rc"
