#!/usr/bin/env bash
# z/VM Cloud Connector figures of Drover (see bench/zvm_bench.py): REST and socket round trips and
# the documented guest flow on the tiny guest under QEMU (TCG), through the real zvmconnector client.
# Needs root (its engine's networks live in a namespace of its own). Env knobs: N (repetitions,
# 5), DROVER_BIN (default: cargo build --release), TINY_GUEST (default guest/out), PYTHON (a
# Python with zVMCloudConnector and XenAPI; default .venv/bin/python, which scripts/test.sh makes).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "error: bench/zvm.sh needs root (network namespaces)" >&2; exit 1; }
TINY_GUEST=${TINY_GUEST:-guest/out}
[ -f "$TINY_GUEST/disk.img" ] || bash guest/build-tiny-guest.sh "$TINY_GUEST" >&2
if [ -z "${DROVER_BIN:-}" ]; then
    cargo build --release >&2
    DROVER_BIN=${CARGO_TARGET_DIR:-target}/release/drover
fi
PY=${PYTHON:-.venv/bin/python}
"$PY" -c 'import zvmconnector, XenAPI' 2>/dev/null \
    || { echo "error: $PY cannot import zvmconnector and XenAPI (scripts/test.sh makes .venv)" >&2; exit 1; }
exec "$PY" bench/zvm_bench.py --binary "$DROVER_BIN" --tiny-guest "$TINY_GUEST" -n "${N:-5}" "$@"
