#!/usr/bin/env bash
# THE test command of Drover: builds the engine and the tiny test guest (guest/), runs the Rust
# tests (the agent's boot real QEMU guests) and lints, boots the guest by hand as a check, then the
# interop suite (the real XenAPI, z/VM and oVirt Python clients against `drover serve`, simulated
# and QEMU).
#
#   scripts/test.sh              everything
#   scripts/test.sh -k events    extra arguments go to pytest
#
# Works on a fresh Debian 12 machine as root: installs what is missing (apt packages, the
# Python venv .venv with XenAPI, the z/VM and oVirt SDKs, pytest and requests). Exits non-zero
# if any step fails; every step runs even after an earlier one failed (except that nothing runs
# without a built engine).
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

say() { printf '\n==> %s\n' "$*"; }

# ---------------------------------------------------------------------------------- system deps
# dnsmasq-base (the agent's DHCP servers), iproute2 (`ip`: network namespaces, bridges, taps),
# busybox-static (the tiny guest; `busybox ping` in the network tests' own namespaces) and xorriso
# (the agent's ISO 9660 config drives). python3-dev and libxml2-dev: pip builds the oVirt SDK
# (ovirt-engine-sdk-python, only published as source) with its C extension over libxml2;
# libcurl4-openssl-dev and libssl-dev let pip build its pycurl too where no wheel fits.
APT_PKGS=(python3 python3-venv python3-pip python3-dev build-essential pkg-config ca-certificates curl qemu-system-x86
          qemu-utils dnsmasq-base iproute2 busybox-static xorriso libxml2-dev libcurl4-openssl-dev libssl-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" || {
        echo "error: could not install ${missing[*]}" >&2
        exit 1
    }
fi

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install the Rust toolchain (https://rustup.rs) and re-run" >&2
    exit 1
fi
if command -v rustup >/dev/null 2>&1; then
    for c in clippy rustfmt; do
        rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null 2>&1 || true
    done
fi

# ---------------------------------------------------------------------------------- python venv
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV" || { echo "error: python3 -m venv failed" >&2; exit 1; }
fi
if ! "$VENV/bin/python" -c 'import XenAPI, pytest, requests, websocket, zvmconnector, ovirtsdk4' >/dev/null 2>&1; then
    say "pip install XenAPI zVMCloudConnector==1.6.3 ovirt-engine-sdk-python==4.6.3 pytest requests websocket-client"
    "$VENV/bin/pip" install -q --disable-pip-version-check XenAPI zVMCloudConnector==1.6.3 \
        ovirt-engine-sdk-python==4.6.3 pytest requests websocket-client || {
        echo "error: pip install failed" >&2
        exit 1
    }
fi

# ---------------------------------------------------------------------------------- steps
declare -a RESULTS=()
FAILED=0
step() {
    local name=$1
    shift
    say "$name: $*"
    local t0=$SECONDS
    if "$@"; then
        RESULTS+=("ok     $name ($((SECONDS - t0))s)")
    else
        RESULTS+=("FAILED $name ($((SECONDS - t0))s)")
        FAILED=1
        return 1
    fi
}

summary() {
    say "summary"
    printf '  %s\n' "${RESULTS[@]}"
    if [ -n "${PYTEST_SUMMARY:-}" ]; then
        printf '  pytest: %s\n' "$PYTEST_SUMMARY"
    fi
}

if ! step build cargo build --release; then
    summary
    exit 1
fi
# The tiny guest is needed by the agent's tests and the interop suite's real-guest tests.
step guest-build guest/build-tiny-guest.sh "$ROOT/guest/out"
step cargo-test cargo test --workspace
step clippy cargo clippy --workspace --all-targets -- -D warnings
step fmt cargo fmt --all -- --check

step guest guest/test_tiny_guest.sh "$ROOT/guest/out"

PYTEST_LOG=$(mktemp)
trap 'rm -f "$PYTEST_LOG"' EXIT
run_pytest() {
    DROVER_BIN="$ROOT/target/release/drover"
    [ -n "${CARGO_TARGET_DIR:-}" ] && DROVER_BIN="$CARGO_TARGET_DIR/release/drover"
    DROVER_BIN="$DROVER_BIN" "$VENV/bin/pytest" -q tests/interop "$@" 2>&1 | tee "$PYTEST_LOG"
    return "${PIPESTATUS[0]}"
}
step interop run_pytest "$@"
PYTEST_SUMMARY=$(grep -E '(passed|failed|errors?|no tests ran).* in [0-9.]+s' "$PYTEST_LOG" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')
[ -n "$PYTEST_SUMMARY" ] || PYTEST_SUMMARY=$(tail -n 1 "$PYTEST_LOG")

summary
if [ "$FAILED" -ne 0 ]; then
    exit 1
fi
exit 0
