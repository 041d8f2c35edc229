#!/bin/bash
# Boot the tiny guest under QEMU/TCG and check its serial output: direct
# kernel boot and disk boot, then (direct boots) the data-disk marker,
# disk/CPU hot plug over QMP, the serial-console shell, the virtio-serial
# guest agent, DHCP on a NIC and NIC hot plug and unplug.
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
trap 'exit 130' INT TERM

OUT="${1:-$TMP/out}"
if ! "$HERE/build-tiny-guest.sh" "$OUT" >"$TMP/build.log" 2>&1; then
    cat "$TMP/build.log" >&2
    echo "build failed" >&2
    echo "0 passed, 10 failed"
    exit 1
fi

OUT="$(cd "$OUT" && pwd)"   # absolute: qcow2 overlays name disk.img as backing file

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

# wait_until TIMEOUT_S CMD...: 0 if CMD succeeds in time (polled every 0.1 s).
wait_until() {
    local deadline=$(( $(now_ms) + $1 * 1000 )); shift
    while [ "$(now_ms)" -lt "$deadline" ]; do
        "$@" && return 0
        if [ -n "$QPID" ] && ! kill -0 "$QPID" 2>/dev/null; then "$@"; return; fi
        sleep 0.1
    done
    return 1
}

# since LOG OFFSET: the log after byte OFFSET, without CRs.
since() { tail -c +"$(( $2 + 1 ))" "$1" 2>/dev/null | tr -d '\r'; }
log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }
# seen_since LOG OFFSET PATTERN: PATTERN (grep -E) appears after OFFSET.
seen_since() { since "$1" "$2" | grep -qaE "$3"; }
# disks_without_since LOG OFFSET STRING: a disks= line after OFFSET lacks STRING.
disks_without_since() { since "$1" "$2" | grep -a 'DROVER-GUEST disks=' | grep -qvF "$3"; }

QMP_TOOL="$HERE/qmp_tool.py"

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

# ------------------------------------------------------------ features (direct boots)
# start_feature_vm NAME APPEND [EXTRA QEMU ARGS...]: direct boot with a
# partitioned vda (overlay of disk.img), the data disk vdb, serial on a socket
# (logged to $TMP/NAME.log), a guest-agent port, QMP on $TMP/NAME.qmp.
start_feature_vm() {
    local name="$1" append="$2"; shift 2
    qemu-system-x86_64 -accel tcg -m 96 -smp 1,maxcpus=2 -nodefaults -display none \
        -kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img" -append "$append" \
        -chardev "socket,id=ser0,path=$TMP/$name.ser,server=on,wait=off,logfile=$TMP/$name.log" \
        -serial chardev:ser0 \
        -drive "file=$TMP/boot.qcow2,format=qcow2,if=virtio" \
        -drive "file=$TMP/data.qcow2,format=qcow2,if=virtio" \
        -device virtio-serial-pci \
        -chardev "socket,id=ga0,path=$TMP/$name.ga,server=on,wait=off" \
        -device virtserialport,chardev=ga0,name=org.drover.guest.0,id=ga0port \
        -qmp "unix:$TMP/$name.qmp,server=on,wait=off" "$@" \
        </dev/null >"$TMP/$name.qemu" 2>&1 &
    QPID=$!
}

test_features() {
    local log="$TMP/feat.log" qmp="$TMP/feat.qmp" t0 t1 off out nic=()
    if ! qemu-img create -q -f qcow2 -b "$OUT/disk.img" -F raw "$TMP/boot.qcow2" \
       || ! qemu-img create -q -f qcow2 "$TMP/data.qcow2" 16M \
       || ! qemu-img create -q -f qcow2 "$TMP/hot.qcow2" 8M; then
        result data-write 1 "qemu-img create failed" /dev/null; return
    fi
    # vda: partitioned boot disk (not a data disk); vdb: data disk, 32768
    # sectors; the hot-plugged disk: 16384 sectors.
    # User-mode networking with restrict=on: DHCP from QEMU itself, no traffic out.
    if qemu-system-x86_64 -netdev help 2>/dev/null | grep -qx user; then
        nic=(-nic "user,model=virtio-net-pci,restrict=on")
    fi
    t0=$(now_ms)
    start_feature_vm feat "console=ttyS0 no_timer_check drover.data=M1" "${nic[@]}"

    # Data disk: old value (empty) first, then the write.
    if wait_for "$log" 'DROVER-GUEST disk=vdb data=[[:space:]]*$' 30 \
       && wait_for "$log" 'DROVER-GUEST disk=vdb wrote=M1' 5; then
        t1=$(now_ms)
        if grep -qa 'DROVER-GUEST disk=vda data' "$log"; then
            result data-write 1 "partitioned vda reported as a data disk" "$log"
        else
            result data-write 0 "disk=vdb data= then wrote=M1 after $((t1 - t0)) ms" "$log"
        fi
    else
        result data-write 1 "no 'disk=vdb data=' + 'disk=vdb wrote=M1' within 35 s" "$log"
        stop_qemu; return
    fi
    wait_for "$log" 'DROVER-GUEST uptime=' 10

    # CPU hot plug.
    t1=$(now_ms)
    if ! grep -qa 'DROVER-GUEST cpus=1' "$log"; then
        result cpu-hotplug 1 "no 'cpus=1' line at boot" "$log"
    elif ! out=$(python3 "$QMP_TOOL" hotplug-cpu "$qmp" cpu1 2>&1); then
        result cpu-hotplug 1 "device_add of a CPU failed: $out" "$log"
    elif ! wait_for "$log" 'DROVER-GUEST cpus=2' 15; then
        result cpu-hotplug 1 "no 'cpus=2' within 15 s of device_add" "$log"
    else
        result cpu-hotplug 0 "cpus=2 $(( $(now_ms) - t1 )) ms after device_add $out" "$log"
    fi

    # Disk hot plug and unplug.
    t1=$(now_ms)
    off=$(log_size "$log")
    if ! out=$(python3 "$QMP_TOOL" qmp "$qmp" \
            '{"execute":"blockdev-add","arguments":{"driver":"qcow2","node-name":"hot0","file":{"driver":"file","filename":"'"$TMP/hot.qcow2"'"}}}' \
            '{"execute":"device_add","arguments":{"driver":"virtio-blk-pci","drive":"hot0","id":"hotdisk0"}}' 2>&1); then
        result disk-hotplug 1 "blockdev-add/device_add failed: $out" "$log"
    elif ! wait_until 15 seen_since "$log" "$off" 'DROVER-GUEST disks=.*vdc:16384' \
         || ! wait_until 5 seen_since "$log" "$off" 'DROVER-GUEST disk=vdc data=[[:space:]]*$'; then
        result disk-hotplug 1 "no disks= line with vdc:16384 (+ disk=vdc data=) within 15 s" "$log"
    else
        local t2; t2=$(now_ms)
        off=$(log_size "$log")
        if ! out=$(python3 "$QMP_TOOL" qmp "$qmp" '{"execute":"device_del","arguments":{"id":"hotdisk0"}}' \
                event:DEVICE_DELETED:15 2>&1); then
            result disk-hotplug 1 "device_del / DEVICE_DELETED failed: $out" "$log"
        elif ! wait_until 10 disks_without_since "$log" "$off" 'vdc:'; then
            result disk-hotplug 1 "no disks= line without vdc after DEVICE_DELETED" "$log"
        else
            result disk-hotplug 0 "plug seen in $((t2 - t1)) ms, unplug (DEVICE_DELETED + disks=) in $(( $(now_ms) - t2 )) ms" "$log"
        fi
    fi

    # Interactive shell on the serial console.
    # shellcheck disable=SC2016 # the guest's shell expands $((6*7))
    t1=$(now_ms)
    if out=$(python3 "$QMP_TOOL" serial "$TMP/feat.ser" 'echo typed-$((6*7))'$'\n' typed-42 10 2>&1) \
       && wait_for "$log" 'typed-42' 2; then
        result shell 0 "typed-42 $(( $(now_ms) - t1 )) ms after typing" "$log"
    else
        result shell 1 "no typed-42 after typing 'echo typed-\$((6*7))': $out" "$log"
    fi

    # Guest agent on virtio-serial.
    t1=$(now_ms)
    if out=$(python3 "$QMP_TOOL" agent-read "$TMP/feat.ga" 10 2>&1); then
        result agent 0 "JSON line after $(( $(now_ms) - t1 )) ms: $out" "$log"
    else
        result agent 1 "no valid agent JSON: $out" "$log"
    fi

    # NIC + DHCP.
    if [ ${#nic[@]} -eq 0 ]; then
        echo "SKIP nic: QEMU has no user-mode networking"
    elif wait_for "$log" 'DROVER-GUEST nic=eth0 mac=52:54:00:12:34:56' 5 \
         && wait_for "$log" 'DROVER-GUEST ip=eth0:10\.0\.2\.15' 15; then
        if [ -n "$out" ] && ! grep -q '"eth0":\["10\.0\.2\.15/24"\]' <<<"$out"; then
            out=$(python3 "$QMP_TOOL" agent-read "$TMP/feat.ga" 10 2>&1)
        fi
        if grep -q '"eth0":\["10\.0\.2\.15/24"\]' <<<"$out" \
           && grep -q '"macs":{"eth0":"52:54:00:12:34:56"}' <<<"$out"; then
            result nic 0 "nic=eth0 mac= and ip=eth0:10.0.2.15 lines; agent reports eth0 and its MAC" "$log"
        else
            result nic 1 "agent JSON lacks eth0 10.0.2.15/24 or its MAC: $out" "$log"
        fi
    else
        result nic 1 "no nic=eth0 mac= / ip=eth0:10.0.2.15 lines" "$log"
    fi

    # NIC hot plug and unplug (a second user-mode network: DHCP from QEMU, no traffic out).
    if [ ${#nic[@]} -eq 0 ]; then
        echo "SKIP nic-hotplug: QEMU has no user-mode networking"
    else
        t1=$(now_ms)
        off=$(log_size "$log")
        if ! out=$(python3 "$QMP_TOOL" qmp "$qmp" \
                '{"execute":"netdev_add","arguments":{"type":"user","id":"hotnet0","restrict":true}}' \
                '{"execute":"device_add","arguments":{"driver":"virtio-net-pci","netdev":"hotnet0","id":"hotnic0","mac":"52:54:00:12:34:57"}}' 2>&1); then
            result nic-hotplug 1 "netdev_add/device_add failed: $out" "$log"
        elif ! wait_until 15 seen_since "$log" "$off" 'DROVER-GUEST nic=eth1 mac=52:54:00:12:34:57' \
             || ! wait_until 15 seen_since "$log" "$off" 'DROVER-GUEST ip=eth1:10\.0\.2\.15'; then
            result nic-hotplug 1 "no nic=eth1 mac=52:54:00:12:34:57 / ip=eth1:10.0.2.15 within 15 s" "$log"
        else
            local t2; t2=$(now_ms)
            off=$(log_size "$log")
            if ! out=$(python3 "$QMP_TOOL" qmp "$qmp" '{"execute":"device_del","arguments":{"id":"hotnic0"}}' \
                    event:DEVICE_DELETED:15 '{"execute":"netdev_del","arguments":{"id":"hotnet0"}}' 2>&1); then
                result nic-hotplug 1 "device_del / DEVICE_DELETED / netdev_del failed: $out" "$log"
            elif ! wait_until 10 seen_since "$log" "$off" 'DROVER-GUEST nic=eth1 removed'; then
                result nic-hotplug 1 "no nic=eth1 removed after DEVICE_DELETED" "$log"
            else
                result nic-hotplug 0 "plug + DHCP seen in $((t2 - t1)) ms, unplug in $(( $(now_ms) - t2 )) ms" "$log"
            fi
        fi
    fi

    # ACPI power off (flushes the data disk), then boot again without drover.data.
    if ! python3 "$HERE/qmp_powerdown.py" "$qmp" || ! wait_exit 10; then
        stop_qemu; result data-persist 1 "guest did not power off within 10 s" "$log"; return
    fi
    log="$TMP/feat2.log"
    t0=$(now_ms)
    start_feature_vm feat2 "console=ttyS0 no_timer_check"
    if ! wait_for "$log" 'DROVER-GUEST disk=vdb data=' 30; then
        stop_qemu; result data-persist 1 "no 'disk=vdb data=' line within 30 s" "$log"; return
    fi
    t1=$(now_ms)
    stop_qemu
    if grep -qa 'DROVER-GUEST disk=vdb data=M1' "$log" && ! grep -qa 'wrote=' "$log"; then
        result data-persist 0 "second boot shows disk=vdb data=M1 after $((t1 - t0)) ms" "$log"
    else
        result data-persist 1 "second boot does not show 'disk=vdb data=M1' (or wrote again)" "$log"
    fi
}

T_START=$(now_ms)
test_direct
test_disk
test_features
echo "total $(( $(now_ms) - T_START )) ms"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
