#!/usr/bin/env bash
# Quick start: install the build dependencies, QEMU and dnsmasq, build the release engine and the tiny guest
# (offered as the template `Tiny Linux`), and serve the XenAPI on http://127.0.0.1:8080 (and the
# z/VM Cloud Connector REST API on http://127.0.0.1:8090, the oVirt REST API on
# http://127.0.0.1:8088/ovirt-engine/api) with its
# state in ./var. Extra arguments go to `drover serve` (e.g. --host-driver sim). The admin password is $DROVER_ADMIN_PASSWORD if set on first start,
# else a random one written to ./var/admin-password.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# dnsmasq-base serves DHCP on networks that hand out addresses; iproute2 makes bridges and taps;
# xorriso makes ISO 9660 config drives.
for p in build-essential pkg-config ca-certificates qemu-system-x86 qemu-utils dnsmasq-base iproute2 xorriso; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "==> installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is missing. Install the Rust toolchain with rustup (https://rustup.rs), then re-run $0" >&2
    exit 1
fi

echo "==> cargo build --release"
cargo build --release

mkdir -p var
echo "==> building the tiny guest into ./var/tiny-guest (Debian's cloud kernel + busybox)"
guest/build-tiny-guest.sh ./var/tiny-guest
if [ -f var/admin-password ]; then
    echo "==> admin password: in ./var/admin-password (log in as admin or root)"
elif [ -n "${DROVER_ADMIN_PASSWORD:-}" ]; then
    echo "==> admin password: \$DROVER_ADMIN_PASSWORD (log in as admin or root)"
else
    echo "==> admin password: generated on first start into ./var/admin-password (log in as admin or root)"
fi
echo "==> serving XenAPI on http://127.0.0.1:8080 (XML-RPC: / and /RPC2, JSON-RPC: /jsonrpc)"
exec target/release/drover serve --data-dir ./var --listen 127.0.0.1:8080 --zvm-listen 127.0.0.1:8090 --ovirt-listen 127.0.0.1:8088 "$@"
