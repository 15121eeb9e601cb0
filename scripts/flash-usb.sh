#!/usr/bin/env bash
# Writes a tessera ISO to a USB stick, with checks against writing to the wrong disk.
#
#   scripts/flash-usb.sh [--force] ISO DEVICE     e.g. scripts/flash-usb.sh tessera.iso /dev/sdb
#
# Refuses a DEVICE that is not a whole disk, or that has a mounted partition (or
# active swap). Refuses a disk that is neither removable nor attached over USB
# unless --force is given. Shows the disk and asks for its name to be typed
# before it writes anything.
set -euo pipefail

program=flash-usb

usage() {
    cat <<EOF
usage: $0 [--force] ISO DEVICE

Writes ISO (a tessera ISO from \`cargo run -- iso\`) to the whole disk DEVICE.
  --force   also allow a disk that is neither removable nor on USB
EOF
}

die() {
    echo "$program: $*" >&2
    exit 1
}

force=0
positional=()
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*) die "unknown option $arg (see --help)" ;;
        *) positional+=("$arg") ;;
    esac
done
if [ "${#positional[@]}" -ne 2 ]; then
    usage >&2
    exit 2
fi
iso=${positional[0]}
device=${positional[1]}

for tool in lsblk dd; do
    command -v "$tool" >/dev/null || die "$tool is missing (package util-linux / coreutils)"
done

# The ISO: a regular file with the ISO 9660 signature "CD001" at byte 0x8001.
[ -f "$iso" ] || die "$iso: no such file"
signature=$(dd if="$iso" bs=1 skip=32769 count=5 2>/dev/null || true)
[ "$signature" = CD001 ] || die "$iso is not an ISO 9660 image"

# The device: a whole disk, given by any name (a /dev/disk/by-id link, say).
[ -e "$device" ] || die "$device: no such device"
[ -b "$device" ] || die "$device is not a block device"
device=$(readlink -f -- "$device")
name=$(basename -- "$device")

type=$(lsblk -dno TYPE -- "$device" | tr -d '[:space:]')
[ "$type" = disk ] ||
    die "$device is a '$type', not a whole disk: give the disk (/dev/sdX), not a partition"

removable=$(lsblk -dno RM -- "$device" | tr -d '[:space:]')
transport=$(lsblk -dno TRAN -- "$device" | tr -d '[:space:]')
if [ "$removable" != 1 ] && [ "$transport" != usb ]; then
    if [ "$force" -ne 1 ]; then
        die "$device is neither removable nor a USB disk (RM=${removable:-?}, TRAN=${transport:-none});" \
            "it may be an internal disk. Pass --force if you are sure."
    fi
    echo "$program: warning: $device is neither removable nor a USB disk (--force given)" >&2
fi

# Nothing on it may be in use: a mounted file system or active swap on the disk
# or any of its partitions.
mounted=$(lsblk -nro MOUNTPOINT -- "$device" | sed '/^$/d')
if [ -n "$mounted" ]; then
    die "$device is in use, mounted at: $(echo "$mounted" | tr '\n' ' ')— unmount it first"
fi

iso_bytes=$(stat -c %s -- "$iso")
disk_bytes=$(lsblk -dnbo SIZE -- "$device" | tr -d '[:space:]')
if [ "$iso_bytes" -gt "$disk_bytes" ]; then
    die "$iso ($iso_bytes bytes) does not fit on $device ($disk_bytes bytes)"
fi

[ -w "$device" ] || die "cannot write to $device: run as root (sudo $0 ...)"

echo "About to overwrite this disk with $iso ($iso_bytes bytes):"
echo
lsblk -o NAME,SIZE,TYPE,FSTYPE,LABEL,TRAN,RM,MODEL -- "$device"
echo
echo "Everything on $device will be lost."
read -r -p "Type '$name' to continue: " answer
if [ "$answer" != "$name" ] && [ "$answer" != "$device" ]; then
    die "not confirmed; nothing was written"
fi

dd if="$iso" of="$device" bs=4M conv=fsync status=progress
sync
echo "$program: wrote $iso to $device; it can be removed now"
