#!/usr/bin/env bash
# Guest start latency and density of Drover's QEMU host driver, against hand-run QEMU and libvirt.
# Starts its own release engine (`--host-driver qemu --accel tcg`, template `Tiny Linux`) on a free
# 127.0.0.1 port with its own temp data dir, and measures in one run (see bench/vmstart_bench.py):
#   1+2. VM.start of a fresh clone vs. Drover's exact QEMU command line run by hand: time to the
#        QEMU process running and to the guest's init running; overhead ratio Drover/hand
#   3.   the same guest as a transient libvirt domain (virsh create), if libvirt can be made to run
#   4.   drover RSS per running guest, QEMU RSS per guest
#   5.   density: guests up to DENSITY_MAX (or MemAvailable < 1 GiB), memory per guest, CPU idle
# Prints figures only (never asserts timings). Everything it starts is stopped at the end or on
# a signal: drover, QEMU processes, libvirt domains and the libvirt daemons it started, temp dirs.
#
# Env knobs: N (timed starts per section, 5), K (guests for the RSS figure, 10), DENSITY_MAX (40),
# DENSITY_BATCH (5), BOOT_TIMEOUT (s per guest boot, 300), NO_LIBVIRT=1 (skip libvirt), DROVER_BIN
# (binary; default: cargo build --release),
# TINY_GUEST (guest directory, default guest/out). Extra arguments go to bench/vmstart_bench.py.
# Usage: bash bench/vmstart.sh        e.g.  N=10 DENSITY_MAX=60 bash bench/vmstart.sh --json /tmp/v.json
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

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
    echo "==> cargo build --release" >&2
    if ! cargo build --release >&2; then
        if [ -x "$BIN" ] && "$BIN" serve --help 2>/dev/null | grep -q -- --tiny-guest; then
            echo "warning: cargo build --release failed; using the existing $BIN" >&2
        else
            echo "error: cargo build --release failed and there is no usable $BIN" >&2
            exit 1
        fi
    fi
fi
"$BIN" serve --help 2>/dev/null | grep -q -- --tiny-guest \
    || { echo "error: $BIN has no --tiny-guest option (too old)" >&2; exit 1; }

# ---- Python with the XenAPI module
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c 'import XenAPI' 2>/dev/null; then
    echo "error: $PY cannot import XenAPI (create .venv with the project's Python client)" >&2
    exit 1
fi

# ---- libvirt (optional peer): Debian packages without -system (no systemd), started by hand
if [ "${NO_LIBVIRT:-0}" != 1 ]; then
    if ! command -v virsh >/dev/null || [ ! -x /usr/sbin/libvirtd ] || [ ! -x /usr/sbin/virtlogd ] \
        || [ ! -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ]; then
        echo "==> installing libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients" >&2
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
            --no-install-recommends libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients; } >&2 \
            || echo "warning: libvirt could not be installed; the libvirt section will say why" >&2
    fi
    if command -v virsh >/dev/null && ! getent passwd libvirt-qemu >/dev/null; then
        echo "==> creating the libvirt-qemu user" >&2
        $SUDO useradd --system --user-group --no-create-home --home-dir /var/lib/libvirt \
            --shell /usr/sbin/nologin libvirt-qemu >&2 \
            || echo "warning: could not create the libvirt-qemu user" >&2
    fi
fi

# ---- run, with a trap that removes whatever the helper could not
WORK=$(mktemp -d /tmp/vmstart.XXXXXX)
PYPID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ -n "$PYPID" ] && kill -0 "$PYPID" 2>/dev/null; then
        kill -TERM "$PYPID" 2>/dev/null || true
        wait "$PYPID" 2>/dev/null || true
    fi
    # libvirt domains of this run (named vmstart-<helper pid>-<n>)
    if [ -n "$PYPID" ] && command -v virsh >/dev/null && [ -S /run/libvirt/libvirt-sock ]; then
        for d in $(timeout 10 virsh -q -c qemu:///system list --name 2>/dev/null | grep "^vmstart-$PYPID-" || true); do
            timeout 30 virsh -q -c qemu:///system destroy "$d" >/dev/null 2>&1 || true
        done
    fi
    # libvirt daemons the helper started (pid + name, checked against the process's name)
    if [ -f "$WORK/daemons.pids" ]; then
        while read -r pid name; do
            if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
        done < "$WORK/daemons.pids"
    fi
    # any process still using the scratch dir (drover, QEMU), by id
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = "$$" ] && continue
        cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null || true)
        case "$cmd" in *"$WORK"*) kill -KILL "$pid" 2>/dev/null || true ;; esac
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

"$PY" bench/vmstart_bench.py --binary "$(readlink -f "$BIN")" --tiny-guest "$TINY_GUEST" --work "$WORK" "$@" &
PYPID=$!
rc=0
wait "$PYPID" || rc=$?
exit "$rc"
