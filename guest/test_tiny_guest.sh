#!/bin/bash
# Boot the tiny guest two ways under QEMU/TCG and check its serial output.
#   guest/test_tiny_guest.sh [OUTDIR]
# With OUTDIR (e.g. guest/out) the images there are (re)built incrementally and
# reused; without it everything is built into a temporary directory.
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
TMP="$(mktemp -d /tmp/drover-tiny-guest.XXXXXX)"
QPID=""
cleanup() {
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID" 2>/dev/null; wait "$QPID" 2>/dev/null; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

OUT="${1:-$TMP/out}"
if ! "$HERE/build-tiny-guest.sh" "$OUT" >"$TMP/build.log" 2>&1; then
    cat "$TMP/build.log" >&2
    echo "build failed" >&2
    echo "0 passed, 2 failed"
    exit 1
fi

if ! command -v qemu-system-x86_64 >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-system-x86 >&2
fi

PASS=0
FAIL=0
now_ms() { date +%s%3N; }

# wait_for LOG PATTERN TIMEOUT_S: 0 if PATTERN (grep -E) appears in LOG in time.
wait_for() {
    local log="$1" pat="$2" deadline=$(( $(now_ms) + $3 * 1000 ))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        grep -qaE "$pat" "$log" 2>/dev/null && return 0
        if [ -n "$QPID" ] && ! kill -0 "$QPID" 2>/dev/null; then
            grep -qaE "$pat" "$log" 2>/dev/null && return 0
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# wait_exit TIMEOUT_S: 0 if QEMU ($QPID) exits in time.
wait_exit() {
    local deadline=$(( $(now_ms) + $1 * 1000 ))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        kill -0 "$QPID" 2>/dev/null || { wait "$QPID" 2>/dev/null; QPID=""; return 0; }
        sleep 0.05
    done
    return 1
}

result() { # NAME OK MSG
    if [ "$2" = 0 ]; then PASS=$((PASS + 1)); echo "PASS $1: $3"
    else FAIL=$((FAIL + 1)); echo "FAIL $1: $3"; echo "---- serial log ($1) ----"; tail -n 40 "$4" | tr -d '\r'; echo "----"; fi
}

stop_qemu() {
    if [ -n "$QPID" ]; then kill "$QPID" 2>/dev/null; wait "$QPID" 2>/dev/null; QPID=""; fi
}

# ------------------------------------------------------------ direct kernel boot
test_direct() {
    local log="$TMP/direct.log" sock="$TMP/direct.qmp" t0 t1 t2 t3
    t0=$(now_ms)
    qemu-system-x86_64 -accel tcg -m 96 -nodefaults -nographic -serial "file:$log" -nic none \
        -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img" \
        -append "console=ttyS0 no_timer_check marker=HELLO123" \
        -qmp "unix:$sock,server=on,wait=off" </dev/null >"$TMP/direct.qemu" 2>&1 &
    QPID=$!
    if ! wait_for "$log" 'DROVER-GUEST cmdline=.*marker=HELLO123' 20 \
       || ! wait_for "$log" 'DROVER-GUEST mem_kb=[0-9]+' 5; then
        stop_qemu; result direct 1 "no cmdline/mem line within 20 s" "$log"; return
    fi
    t1=$(now_ms)
    # acpid starts after the disks line; wait for the first uptime line.
    wait_for "$log" 'DROVER-GUEST uptime=' 10
    t2=$(now_ms)
    if ! python3 "$HERE/qmp_powerdown.py" "$sock"; then
        stop_qemu; result direct 1 "QMP system_powerdown failed" "$log"; return
    fi
    if ! wait_exit 10; then
        stop_qemu; result direct 1 "QEMU did not exit within 10 s of system_powerdown" "$log"; return
    fi
    t3=$(now_ms)
    if ! grep -qa 'DROVER-GUEST poweroff' "$log"; then
        result direct 1 "QEMU exited but no 'DROVER-GUEST poweroff' line" "$log"; return
    fi
    result direct 0 "marker seen after $((t1 - t0)) ms; powerdown -> exit $((t3 - t2)) ms" "$log"
}

# ------------------------------------------------------------ disk (BIOS) boot
test_disk() {
    local log="$TMP/disk.log" t0 t1 img="$TMP/disk-copy.img"
    # Boot a copy so a reused OUTDIR image is never modified by the guest.
    cp --sparse=always "$OUT/disk.img" "$img"
    t0=$(now_ms)
    qemu-system-x86_64 -accel tcg -m 96 -nodefaults -device VGA -display none -nic none \
        -serial "file:$log" -drive "file=$img,format=raw,if=virtio" </dev/null >"$TMP/disk.qemu" 2>&1 &
    QPID=$!
    if ! wait_for "$log" 'DROVER-GUEST cmdline=.*console=ttyS0' 40 \
       || ! wait_for "$log" 'DROVER-GUEST mem_kb=[0-9]+' 5 \
       || ! wait_for "$log" 'DROVER-GUEST disks=.*vda' 5; then
        stop_qemu; result disk 1 "no cmdline/mem/disks(vda) lines within 40 s" "$log"; return
    fi
    t1=$(now_ms)
    stop_qemu
    result disk 0 "marker seen after $((t1 - t0)) ms" "$log"
}

test_direct
test_disk
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
