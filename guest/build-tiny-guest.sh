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
    log "downloading $KPKG (not installing it)"
    rm -rf "$WORK/deb" "$KROOT"
    mkdir -p "$WORK/deb" "$KROOT"
    # apt-get download as root warns about the _apt sandbox; harmless.
    (cd "$WORK/deb" && apt-get download -q "$KPKG")
    dpkg-deb -x "$WORK"/deb/"$KPKG"_*.deb "$KROOT"
    echo "$KPKG" > "$KSTAMP"
fi
KVER="$(ls "$KROOT/lib/modules" | head -n1)"
[ -n "$KVER" ] && [ -f "$KROOT/boot/vmlinuz-$KVER" ] || { echo "bad kernel extract in $KROOT" >&2; exit 1; }

if ! fresh "$OUT/vmlinuz" "$KSTAMP"; then
    cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
    mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
    log "vmlinuz: $KVER"
fi

# ---------------------------------------------------------------- 3. initramfs
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk failover net_failover virtio_net virtio_console button evdev"

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

    cat > "$IR/init" <<'INIT'
#!/bin/sh
# Drover tiny guest init (PID 1). No interactive shell; prints status lines
# on the console (console=ttyS0) for tests to read.
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

# Give virtio devices a moment to register their block devices.
sleep 0.2
disks=""
for d in /sys/block/*; do
    n=${d##*/}
    case "$n" in loop*|ram*) continue ;; esac
    [ -e "$d" ] || continue
    disks="${disks:+$disks,}$n:$(cat $d/size 2>/dev/null)"
done
echo "DROVER-GUEST disks=$disks"

acpid -p /var/run/acpid.pid -c /etc/acpi -l /dev/null || echo "DROVER-GUEST warn acpid failed"

while true; do
    read up idle < /proc/uptime
    echo "DROVER-GUEST uptime=$up boot_id=$BOOT_ID"
    sleep 2
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
