#!/bin/bash
# Build a tiny Drover test guest: Debian cloud kernel + busybox initramfs,
# plus a 64 MiB BIOS-bootable raw disk (syslinux on FAT) containing both.
#
# Usage: guest/build-tiny-guest.sh OUTDIR
#
# Outputs: OUTDIR/vmlinuz, OUTDIR/initrd.img, OUTDIR/disk.img
# Idempotent: each step is skipped when its output exists and is newer than
# this script (and than its inputs). Never installs a kernel into the host,
# never mounts anything, never formats a real device.
set -euo pipefail

SCRIPT="$(readlink -f "$0")"
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT="$1"
mkdir -p "$OUT"
OUT="$(readlink -f "$OUT")"
WORK="$OUT/.work"
mkdir -p "$WORK"
export PATH="$PATH:/usr/sbin:/sbin"
export MTOOLS_SKIP_CHECK=1

log() { echo "[build-tiny-guest] $*" >&2; }

# fresh OUTPUT [INPUT...]: OUTPUT exists, is newer than this script and no INPUT is newer.
fresh() {
    local out="$1"; shift
    [ -s "$out" ] || return 1
    [ "$out" -nt "$SCRIPT" ] || return 1
    local in
    for in in "$@"; do
        # Strictly newer input => stale (mtimes here can be equal within a tick).
        [ "$in" -nt "$out" ] && return 1
    done
    return 0
}

# ---------------------------------------------------------------- 1. packages
need_pkgs=()
for p in busybox-static cpio gzip xz-utils zstd syslinux syslinux-common mtools dosfstools fdisk qemu-utils; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed'; then
        need_pkgs+=("$p")
    fi
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing: ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"
fi

BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX="$(command -v busybox)"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static "$BUSYBOX" || { echo "busybox at $BUSYBOX is not static" >&2; exit 1; }
SYSLINUX_MBR=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$SYSLINUX_MBR" ] || { echo "missing $SYSLINUX_MBR" >&2; exit 1; }

# ---------------------------------------------------------------- 2. kernel
KROOT="$WORK/kernel"
KSTAMP="$WORK/kernel.stamp"
if ! fresh "$KSTAMP"; then
    KPKG="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
            | sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*-cloud-amd64\) *$/\1/p' | head -n1)"
    if [ -z "$KPKG" ]; then
        apt-get update -qq
        KPKG="$(apt-cache depends linux-image-cloud-amd64 \
                | sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*-cloud-amd64\) *$/\1/p' | head -n1)"
    fi
    [ -n "$KPKG" ] || { echo "cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
    if [ "$(cat "$KSTAMP" 2>/dev/null)" = "$KPKG" ] && [ -d "$KROOT/lib/modules" ] \
       && ls "$WORK"/deb/"$KPKG"_*.deb >/dev/null 2>&1; then
        # Same package already downloaded and extracted (only this script changed).
        touch "$KSTAMP"
    else
        log "downloading $KPKG (not installing it)"
        rm -rf "$WORK/deb" "$KROOT"
        mkdir -p "$WORK/deb" "$KROOT"
        # apt-get download as root warns about the _apt sandbox; harmless.
        (cd "$WORK/deb" && apt-get download -q "$KPKG")
        dpkg-deb -x "$WORK"/deb/"$KPKG"_*.deb "$KROOT"
        echo "$KPKG" > "$KSTAMP"
    fi
fi
KVER="$(ls "$KROOT/lib/modules" | head -n1)"
[ -n "$KVER" ] && [ -f "$KROOT/boot/vmlinuz-$KVER" ] || { echo "bad kernel extract in $KROOT" >&2; exit 1; }

if ! fresh "$OUT/vmlinuz" "$KSTAMP"; then
    cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
    mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
    log "vmlinuz: $KVER"
fi

# ---------------------------------------------------------------- 3. initramfs
# virtio_balloon: memory balloon. ACPI PCI hot plug (acpiphp, CONFIG_HOTPLUG_PCI_ACPI)
# and PCIe native hot plug (pciehp) are bool options, built into the cloud kernel,
# as are ACPI CPU hot plug and the ACPI container driver: nothing to load for them.
# CD drives (config drives) are ide-cd devices on the PIIX IDE controller: libata's
# ata_piix (over scsi_mod, scsi_common), the SCSI CD driver sr_mod (over cdrom) and
# the iso9660 filesystem (isofs, Joliet and zisofs built in), each after what it needs.
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk failover net_failover virtio_net virtio_console virtio_balloon button evdev scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs"

KCONFIG="$KROOT/boot/config-$KVER"
for opt in CONFIG_HOTPLUG_PCI_ACPI CONFIG_ACPI_HOTPLUG_CPU CONFIG_HOTPLUG_CPU; do
    grep -q "^$opt=y" "$KCONFIG" 2>/dev/null || log "warning: $opt is not built in (hot plug may not work)"
done

if ! fresh "$OUT/initrd.img" "$KSTAMP"; then
    IR="$WORK/initrd"
    rm -rf "$IR"
    mkdir -p "$IR"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,var/run,etc/acpi/PWRF,lib/modules}
    cp "$BUSYBOX" "$IR/bin/busybox"
    ln -s busybox "$IR/bin/sh"

    moddir="$KROOT/lib/modules/$KVER/kernel"
    for m in $MODULES; do
        f="$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n1)"
        if [ -z "$f" ]; then
            # Built into the kernel? Then there is nothing to load.
            if grep -q "/$m.ko" "$KROOT/lib/modules/$KVER/modules.builtin" 2>/dev/null; then
                log "module $m is built in"
                continue
            fi
            echo "module $m not found in $moddir" >&2; exit 1
        fi
        case "$f" in
            *.ko.xz)  xz -dc "$f"   > "$IR/lib/modules/$m.ko" ;;
            *.ko.zst) zstd -qdc "$f" > "$IR/lib/modules/$m.ko" ;;
            *.ko.gz)  gzip -dc "$f" > "$IR/lib/modules/$m.ko" ;;
            *)        cp "$f" "$IR/lib/modules/$m.ko" ;;
        esac
    done
    echo "$MODULES" > "$IR/etc/modules.order"

    cat > "$IR/etc/acpi/PWRF/00000080" <<'HANDLER'
#!/bin/sh
echo "DROVER-GUEST poweroff" > /dev/console
sync
poweroff -f
HANDLER
    chmod 755 "$IR/etc/acpi/PWRF/00000080"

    # Login profile of the serial-console shell. The prompt ends with a newline
    # so that status lines printed while the shell waits start at column 0.
    cat > "$IR/etc/profile" <<'PROFILE'
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/
export PS1='drover-tiny:\w# \n'
PROFILE

    # busybox udhcpc event script: configure the lease, flush it on deconfig.
    # Variables from udhcpc: $interface $ip $mask (prefix length) $subnet
    # $broadcast $router $dns.
    cat > "$IR/etc/udhcpc.script" <<'DHCP'
#!/bin/sh
# shellcheck disable=SC2154 # variables set by udhcpc
[ -n "$interface" ] || exit 0
state="/var/run/udhcpc.$interface.ip"
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface" 2>/dev/null
        ip link set "$interface" up 2>/dev/null
        rm -f "$state"
        ;;
    bound|renew)
        case "$mask" in
            *.*) plen=$(ipcalc -p "$ip" "$mask" 2>/dev/null); plen=${plen#PREFIX=} ;;
            "")  plen=${subnet:+$(ipcalc -p "$ip" "$subnet" 2>/dev/null)}; plen=${plen#PREFIX=} ;;
            *)   plen=$mask ;;
        esac
        new="$ip/${plen:-32}"
        old=""
        [ -f "$state" ] && read -r old < "$state"
        if [ "$old" != "$new" ]; then
            ip -4 addr flush dev "$interface" 2>/dev/null
            ip addr add "$new" broadcast "${broadcast:-+}" dev "$interface"
            if [ -n "$router" ]; then
                for r in $router; do
                    ip route add default via "$r" dev "$interface" 2>/dev/null && break
                done
            fi
            if [ -n "$dns" ]; then
                for d in $dns; do echo "nameserver $d"; done > /etc/resolv.conf
            fi
            echo "$new" > "$state"
            echo "DROVER-GUEST ip=$interface:$ip" > /dev/console
        fi
        ;;
esac
exit 0
DHCP
    chmod 755 "$IR/etc/udhcpc.script"

    # Guest agent: one JSON line every 2 s to the virtio-serial port named
    # org.drover.guest.0. A write blocks while no host client is connected:
    # "timeout" kills it after 2 s (so a line is at most ~2 s old when a client
    # connects during a blocked write), and this loop never stops.
    cat > "$IR/bin/drover-agent" <<'AGENT'
#!/bin/sh
PORT_NAME=org.drover.guest.0
esc() { sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037'; }
KERNEL=$(uname -r | esc)
UNAME=$(uname -a | esc)
read -r BOOT_ID < /proc/sys/kernel/random/boot_id
json() {
    read -r up _ < /proc/uptime
    mem=$(awk '/^MemTotal:/ {t=$2} /^MemFree:/ {f=$2} /^MemAvailable:/ {a=$2}
               END {printf "{\"total_kb\":%d,\"free_kb\":%d,\"available_kb\":%d}", t, f, a}' /proc/meminfo)
    nets=$(ip -4 -o addr show 2>/dev/null | awk '
        $3 == "inet" { i = $2; sub(/:$/, "", i); sub(/@.*/, "", i); if (i == "lo") next
                       if (!(i in a)) { o[++n] = i; a[i] = "" }
                       a[i] = a[i] (a[i] == "" ? "" : ",") "\"" $4 "\"" }
        END { printf "{"; for (k = 1; k <= n; k++) printf "%s\"%s\":[%s]", (k > 1 ? "," : ""), o[k], a[o[k]]; printf "}" }')
    # The MAC of each interface, for the host to tell which of its NICs an interface is.
    macs=""
    for i in /sys/class/net/*; do
        n=${i##*/}
        [ "$n" = lo ] && continue
        mac=""
        { read -r mac < "$i/address"; } 2>/dev/null
        [ -n "$mac" ] && macs="${macs:+$macs,}\"$n\":\"$mac\""
    done
    disks=""
    for d in /sys/block/*; do
        n=${d##*/}
        case "$n" in loop*|ram*) continue ;; esac
        [ -e "$d" ] && disks="${disks:+$disks,}\"$n\""
    done
    [ -n "$nets" ] || nets='{}'
    printf '{"agent":"drover-tiny","version":1,"os":{"name":"Drover tiny guest","distro":"busybox","kernel":"%s","uname":"%s"},"memory":%s,"networks":%s,"macs":{%s},"disks":[%s],"uptime":%s,"boot_id":"%s"}\n' \
        "$KERNEL" "$UNAME" "$mem" "$nets" "$macs" "$disks" "$up" "$BOOT_ID"
}
while true; do
    dev=""
    for p in /sys/class/virtio-ports/*; do
        name=""
        { read -r name < "$p/name"; } 2>/dev/null
        [ "$name" = "$PORT_NAME" ] && dev="/dev/${p##*/}"
    done
    if [ -n "$dev" ] && [ -c "$dev" ]; then
        json > /tmp/drover-agent.json
        timeout 2 cat /tmp/drover-agent.json 2>/dev/null > "$dev"
    fi
    sleep 2
done
AGENT
    chmod 755 "$IR/bin/drover-agent"

    cat > "$IR/init" <<'INIT'
#!/bin/sh
# Drover tiny guest init (PID 1). Prints status lines on the console
# (console=ttyS0) for tests to read; also runs a shell on the serial console,
# a guest agent on virtio-serial (bin/drover-agent) and DHCP on each ethN.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
mkdir -p /var/run /run /tmp
exec </dev/console >/dev/console 2>&1

for m in $(cat /etc/modules.order); do
    [ -f /lib/modules/$m.ko ] || continue
    insmod /lib/modules/$m.ko 2>/dev/null || echo "DROVER-GUEST warn insmod $m failed"
done

BOOT_ID=$(cat /proc/sys/kernel/random/boot_id)
echo "DROVER-GUEST cmdline=$(cat /proc/cmdline)"
echo "DROVER-GUEST mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
echo "DROVER-GUEST boot_id=$BOOT_ID"

DATA_TEXT=""
set -f
for w in $(cat /proc/cmdline); do
    case "$w" in drover.data=*) DATA_TEXT=${w#drover.data=} ;; esac
done
set +f

# list_disks: DISKS="name:sectors,..." and NAMES=" name name " (no loop/ram).
list_disks() {
    DISKS=""
    NAMES=" "
    for d in /sys/block/*; do
        n=${d##*/}
        case "$n" in loop*|ram*) continue ;; esac
        sz=""
        { read -r sz < "$d/size"; } 2>/dev/null || continue
        DISKS="${DISKS:+$DISKS,}$n:$sz"
        NAMES="$NAMES$n "
    done
}

# A data disk is a virtio disk without partitions.
is_data_disk() {
    case "$1" in vd*) ;; *) return 1 ;; esac
    for p in "/sys/block/$1/$1"*; do
        [ -e "$p/partition" ] && return 1
    done
    return 0
}

show_data() {
    line=$(dd if="/dev/$1" bs=512 count=1 2>/dev/null | tr -cd ' -~\n' | head -n 1)
    case "$line" in
        "DROVER-DATA "*) echo "DROVER-GUEST disk=$1 data=${line#DROVER-DATA }" ;;
        *)               echo "DROVER-GUEST disk=$1 data=" ;;
    esac
}

write_data() {
    { printf 'DROVER-DATA %s\n' "$DATA_TEXT"; dd if=/dev/zero bs=512 count=1 2>/dev/null; } \
        | head -c 512 > /tmp/drover-data.sec
    if dd if=/tmp/drover-data.sec of="/dev/$1" bs=512 count=1 conv=notrunc,fsync 2>/dev/null; then
        sync
        echo "DROVER-GUEST disk=$1 wrote=$DATA_TEXT"
    else
        echo "DROVER-GUEST warn write $1 failed"
    fi
}

# check_disks [boot]: print disks= when the set changes (always at boot); show
# the data line of each data disk that is new; at boot write drover.data.
PREV_DISKS=""
DATA_SEEN=" "
check_disks() {
    list_disks
    if [ "$1" != boot ]; then
        [ "$DISKS" = "$PREV_DISKS" ] && return
        sleep 0.2   # let a new disk finish registering its partitions
        list_disks
    fi
    PREV_DISKS=$DISKS
    echo "DROVER-GUEST disks=$DISKS"
    seen=" "
    for n in $DATA_SEEN; do
        case "$NAMES" in *" $n "*) seen="$seen$n " ;; esac
    done
    DATA_SEEN=$seen
    for n in $NAMES; do
        case "$DATA_SEEN" in *" $n "*) continue ;; esac
        is_data_disk "$n" || continue
        DATA_SEEN="$DATA_SEEN$n "
        show_data "$n"
        if [ "$1" = boot ] && [ -n "$DATA_TEXT" ]; then write_data "$n"; fi
    done
}

# check_cpus: online every offline CPU; print cpus= when the online count changes.
PREV_CPUS=""
check_cpus() {
    for c in /sys/devices/system/cpu/cpu[0-9]*; do
        v=""
        { read -r v < "$c/online"; } 2>/dev/null
        if [ "$v" = 0 ]; then { echo 1 > "$c/online"; } 2>/dev/null; fi
    done
    r=""
    { read -r r < /sys/devices/system/cpu/online; } 2>/dev/null
    cnt=0
    ifs=$IFS
    IFS=,
    for x in $r; do
        case "$x" in
            *-*) cnt=$((cnt + ${x#*-} - ${x%-*} + 1)) ;;
            ?*)  cnt=$((cnt + 1)) ;;
        esac
    done
    IFS=$ifs
    [ "$cnt" = "$PREV_CPUS" ] && return
    PREV_CPUS=$cnt
    echo "DROVER-GUEST cpus=$cnt"
}

# Static addresses from a config drive: /run/drover-static has one line
# "mac ip prefix gateway" per NIC (mac in lower case, gateway "-" if none).
# static_for MAC: prints "ip prefix gateway" of that MAC, fails without one.
static_for() {
    [ -f /run/drover-static ] || return 1
    while read -r sm sip splen sgw; do
        [ "$sm" = "$1" ] && { echo "$sip $splen $sgw"; return 0; }
    done < /run/drover-static
    return 1
}

# STATIC_DONE: " name/ifindex ..." of the interfaces configured statically.
STATIC_DONE=" "
# configure_static IF IP PREFIX GATEWAY: the address (and default route) of IF.
configure_static() {
    ip link set "$1" up 2>/dev/null
    if ip addr add "$2/$3" dev "$1"; then
        [ "$4" != - ] && ip route add default via "$4" dev "$1" 2>/dev/null
        echo "DROVER-GUEST static if=$1 ip=$2/$3"
    else
        echo "DROVER-GUEST warn static address $2/$3 on $1 failed"
    fi
    idx=""
    { read -r idx < "/sys/class/net/$1/ifindex"; } 2>/dev/null
    STATIC_DONE="$STATIC_DONE$1/$idx "
}

# iso_label DEV: the volume label of an ISO 9660 filesystem on DEV (fails if none).
# (The primary volume descriptor is sector 16: type, "CD001", ..., the label in
# bytes 40-71, padded with blanks.) An empty drive reads nothing.
iso_label() {
    dd if="$1" of=/tmp/pvd bs=2048 skip=16 count=1 2>/dev/null || return 1
    [ "$(head -c 6 /tmp/pvd | tail -c 5)" = CD001 ] || return 1
    lbl=$(head -c 72 /tmp/pvd | tail -c 32 | tr -d '\000\n')
    while [ "${lbl% }" != "$lbl" ]; do lbl=${lbl% }; done
    echo "$lbl"
}

# config_drive: mount the CD whose ISO 9660 label is config-2 read-only at
# /mnt/config, list its files, and configure the NICs drover/network.env names
# (NIC_COUNT, NICi_MAC, NICi_IP, NICi_PREFIX, NICi_GATEWAY) with static addresses;
# check_nics runs no DHCP on those. Nothing happens without such a CD.
config_drive() {
    # Wait (up to 5 s) for a block device of each CD drive the SCSI layer knows.
    t=0
    while [ $t -lt 50 ]; do
        want=0
        for f in /sys/bus/scsi/devices/*/type; do
            v=""
            { read -r v < "$f"; } 2>/dev/null
            [ "$v" = 5 ] && want=$((want + 1))
        done
        have=0
        for d in /dev/sr*; do [ -b "$d" ] && have=$((have + 1)); done
        [ $have -ge $want ] && break
        sleep 0.1
        t=$((t + 1))
    done
    cd_dev=""
    for d in /dev/sr*; do
        [ -b "$d" ] || continue
        case "$(iso_label "$d")" in config-2|CONFIG-2) cd_dev=$d; break ;; esac
    done
    [ -n "$cd_dev" ] || return 0
    mkdir -p /mnt/config
    if ! mount -t iso9660 -o ro "$cd_dev" /mnt/config 2>/dev/null; then
        echo "DROVER-GUEST warn mounting config drive $cd_dev failed"
        return 0
    fi
    (cd /mnt/config && find . -type f | LC_ALL=C sort) | while IFS= read -r f; do
        echo "DROVER-GUEST configdrive file=${f#./} size=$(wc -c < "/mnt/config/$f")"
    done
    env=/mnt/config/drover/network.env
    if [ -f "$env" ]; then
        # Only plain KEY=value lines are sourced, in a subshell.
        tr -d '\r' < "$env" | grep -E '^[A-Za-z_][A-Za-z0-9_]*=[A-Za-z0-9_.:/-]*$' > /run/network.env
        (
            . /run/network.env
            i=0
            while [ "$i" -lt "${NIC_COUNT:-0}" ] 2>/dev/null; do
                eval "m=\${NIC${i}_MAC:-} a=\${NIC${i}_IP:-} p=\${NIC${i}_PREFIX:-} g=\${NIC${i}_GATEWAY:-}"
                [ -n "$m" ] && [ -n "$a" ] && echo "$(echo "$m" | tr A-F a-f) $a ${p:-32} ${g:--}"
                i=$((i + 1))
            done
        ) > /run/drover-static
        # Wait (up to 5 s) for the interface of each MAC.
        t=0
        while [ $t -lt 50 ]; do
            macs=$(cat /sys/class/net/*/address 2>/dev/null)
            missing=0
            while read -r sm _; do
                case " $(echo $macs) " in *" $sm "*) ;; *) missing=1 ;; esac
            done < /run/drover-static
            [ $missing = 0 ] && break
            sleep 0.1
            t=$((t + 1))
        done
        for i in /sys/class/net/*; do
            n=${i##*/}
            mac=""
            { read -r mac < "$i/address"; } 2>/dev/null
            [ "$n" != lo ] && cfg=$(static_for "$mac") || continue
            # shellcheck disable=SC2086 # three words
            configure_static "$n" $cfg
        done
    fi
    echo "DROVER-GUEST configdrive done"
}

# check_nics: report each ethN that went away and stop its udhcpc; bring up each
# new ethN and run udhcpc on it, or give it its static address from the config
# drive. NICs are told apart by name and ifindex, so a NIC plugged in place of
# an unplugged one of the same name is a new one.
NICS_SEEN=" "
check_nics() {
    seen=" "
    for e in $NICS_SEEN; do
        n=${e%/*}
        idx=""
        { read -r idx < "/sys/class/net/$n/ifindex"; } 2>/dev/null
        if [ "$idx" = "${e#*/}" ]; then seen="$seen$e "; continue; fi
        pid=""
        { read -r pid < "/var/run/udhcpc.$n.pid"; } 2>/dev/null
        [ -n "$pid" ] && kill "$pid" 2>/dev/null
        rm -f "/var/run/udhcpc.$n.pid" "/var/run/udhcpc.$n.ip"
        echo "DROVER-GUEST nic=$n removed"
    done
    NICS_SEEN=$seen
    for i in /sys/class/net/eth*; do
        [ -e "$i" ] || continue
        n=${i##*/}
        idx=""
        { read -r idx < "$i/ifindex"; } 2>/dev/null
        case "$NICS_SEEN" in *" $n/$idx "*) continue ;; esac
        NICS_SEEN="$NICS_SEEN$n/$idx "
        mac=""
        { read -r mac < "$i/address"; } 2>/dev/null
        echo "DROVER-GUEST nic=$n mac=$mac"
        case "$STATIC_DONE" in *" $n/$idx "*) continue ;; esac
        if cfg=$(static_for "$mac"); then
            # shellcheck disable=SC2086 # three words
            configure_static "$n" $cfg
            continue
        fi
        ip link set "$n" up 2>/dev/null
        udhcpc -b -i "$n" -s /etc/udhcpc.script -p "/var/run/udhcpc.$n.pid" </dev/null >/dev/null 2>&1 &
    done
}

# Give virtio devices a moment to register their block devices.
sleep 0.2
check_disks boot
check_cpus
config_drive
check_nics

acpid -p /var/run/acpid.pid -c /etc/acpi -l /dev/null || echo "DROVER-GUEST warn acpid failed"

# Guest agent on virtio-serial, restarted if it ever exits.
(while true; do drover-agent; sleep 1; done) </dev/null >/dev/null 2>&1 &

# Status loop: uptime every 2 s; disks, CPUs and NICs checked every second.
status_loop() {
    tick=0
    while true; do
        if [ $((tick % 2)) -eq 0 ]; then
            read -r up _ < /proc/uptime
            echo "DROVER-GUEST uptime=$up boot_id=$BOOT_ID"
        fi
        tick=$((tick + 1))
        sleep 1
        check_disks
        check_cpus
        check_nics
    done
}
status_loop </dev/null &

# PID 1 itself runs the interactive shell on the serial console, restarted
# when it exits. (Not as a background job: those start with SIGINT ignored,
# and then ^C would not reach commands run from the shell.) cttyhack opens
# the active console (ttyS0) as controlling tty of a new session. The shell
# reads a FIFO fed from /dev/tty by dd: the tty stays in canonical mode with
# kernel echo, so ash's line editing (which writes ESC[6n cursor queries into
# the console log) is never used. (Not busybox cat: it copies with sendfile,
# which holds a line back until the next one arrives.) dd runs in the
# background, so it ignores ^C; it gets SIGHUP when the shell exits.
while true; do
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid cttyhack sh -c 'f=/run/console-shell.fifo; rm -f $f; mkfifo $f || exit 1
        dd if=/dev/tty of=$f bs=4096 2>/dev/null & exec sh -l -i +m < $f' </dev/null
    sleep 1
done
INIT
    chmod 755 "$IR/init"

    (cd "$IR" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) \
        | gzip -9 > "$OUT/initrd.img.tmp"
    mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
    log "initrd.img built ($(du -k "$OUT/initrd.img" | cut -f1) KiB)"
fi

# ---------------------------------------------------------------- 4. disk image
DISK_MIB=64
PART_START=2048                                   # sectors (1 MiB)
PART_SECTORS=$(( DISK_MIB * 2048 - PART_START ))  # rest of the disk
if ! fresh "$OUT/disk.img" "$OUT/vmlinuz" "$OUT/initrd.img"; then
    PART="$WORK/part.img"
    DISK="$OUT/disk.img.tmp"
    rm -f "$PART" "$DISK"

    cat > "$WORK/syslinux.cfg" <<'CFG'
SERIAL 0 115200
DEFAULT drover
PROMPT 0
TIMEOUT 0
LABEL drover
  KERNEL /vmlinuz
  APPEND initrd=/initrd.img console=ttyS0 no_timer_check
CFG

    mkfs.vfat -C -n DROVER "$PART" $(( PART_SECTORS / 2 )) >/dev/null
    mcopy -i "$PART" "$OUT/vmlinuz" ::/vmlinuz
    mcopy -i "$PART" "$OUT/initrd.img" ::/initrd.img
    mcopy -i "$PART" "$WORK/syslinux.cfg" ::/syslinux.cfg
    syslinux --install "$PART"

    truncate -s $(( DISK_MIB * 1024 * 1024 )) "$DISK"
    printf 'label: dos\nstart=%d, size=%d, type=6, bootable\n' "$PART_START" "$PART_SECTORS" \
        | sfdisk --quiet --no-reread --no-tell-kernel "$DISK" >/dev/null
    # Boot code only (first 440 bytes): keep the partition table sfdisk wrote.
    dd if="$SYSLINUX_MBR" of="$DISK" bs=440 count=1 conv=notrunc status=none
    dd if="$PART" of="$DISK" bs=512 seek="$PART_START" conv=notrunc,sparse status=none
    rm -f "$PART"
    mv "$DISK" "$OUT/disk.img"
    log "disk.img built"
fi

echo "kernel:  $KVER"
echo "vmlinuz: $OUT/vmlinuz"
echo "initrd:  $OUT/initrd.img"
echo "disk:    $OUT/disk.img"
