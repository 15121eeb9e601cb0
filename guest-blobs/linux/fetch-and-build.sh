#!/usr/bin/env bash
# Fetches a stock Debian 12 cloud kernel and busybox-static and builds tessera's
# Linux test guest from them (issue 8, "Test guests"):
#   target/linux/vmlinuz            the kernel's bzImage, unmodified
#   target/linux/initramfs.cpio.gz  busybox + guest-blobs/linux/init + rdtsc
#   target/linux/kernel-version     the kernel package's name and version
#
# Nothing binary is committed: the .debs are downloaded with `apt-get
# download` (so any Debian mirror the machine is configured for works) and
# cached in target/linux/debs/. A later run finds them there and makes no
# network access; --refresh forgets the cache and fetches the current
# versions again. Outputs are replaced only when their contents change, so
# that their time stamps stay put for make and the test harness.
#
# Usage: guest-blobs/linux/fetch-and-build.sh [--refresh]
# Prints the paths it produced, one per line, on stdout (messages go to stderr).
# Needs: apt-get, apt-cache (first run only), dpkg-deb, cpio, gzip, as, ld.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$repo/target/linux"
debs="$out/debs"

die() {
    echo "fetch-and-build.sh: error: $*" >&2
    exit 1
}
note() { echo "fetch-and-build.sh: $*" >&2; }

refresh=no
for arg in "$@"; do
    case $arg in
    --refresh) refresh=yes ;;
    -h | --help)
        sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

for tool in dpkg-deb cpio gzip as ld; do
    command -v "$tool" >/dev/null ||
        die "'$tool' is not installed (Debian packages: dpkg, cpio, gzip, binutils)"
done

mkdir -p "$debs"
if [ "$refresh" = yes ]; then
    rm -f "$debs"/*.deb
fi

# The one cached .deb matching a glob, or nothing. Two matches mean a stale
# cache from an older version: ask for --refresh rather than guess.
cached() {
    local matches=()
    local f
    for f in "$debs"/$1; do
        [ -e "$f" ] && matches+=("$f")
    done
    if [ "${#matches[@]}" -gt 1 ]; then
        die "several cached packages match $1 in $debs; run with --refresh"
    fi
    if [ "${#matches[@]}" -eq 1 ]; then
        echo "${matches[0]}"
    fi
}

# apt-get download of one package into the cache, with a message that says
# what to do when it fails (no package lists, no network, no such package).
download() {
    local pkg=$1
    command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian-like system"
    note "downloading $pkg"
    # apt-get download writes into the current directory. As root it warns that
    # the download is unsandboxed (the _apt user cannot write here): harmless.
    if ! (cd "$debs" && apt-get download -q "$pkg" >&2 2> >(grep -v 'unsandboxed as root' >&2)); then
        die "'apt-get download $pkg' failed: is the network reachable and has 'apt-get update' been run?"
    fi
}

kernel_deb=$(cached 'linux-image-*-cloud-amd64_*.deb')
if [ -z "$kernel_deb" ]; then
    command -v apt-cache >/dev/null || die "apt-cache not found: this script needs a Debian-like system"
    # The metapackage depends on the current ABI's package, e.g.
    # linux-image-6.1.0-57-cloud-amd64; that one holds the kernel.
    kernel_package() {
        apt-cache depends linux-image-cloud-amd64 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1
    }
    kernel_pkg=$(kernel_package)
    # A fresh machine (a CI runner) may have no package lists yet: as root,
    # fetch them once, as scripts/install-deps.sh does before installing.
    if [ -z "$kernel_pkg" ] && [ "$(id -u)" = 0 ]; then
        note "no package lists know linux-image-cloud-amd64: running apt-get update"
        apt-get update -q >&2 || die "'apt-get update' failed: is the network reachable?"
        kernel_pkg=$(kernel_package)
    fi
    [ -n "$kernel_pkg" ] ||
        die "apt-cache knows no linux-image-cloud-amd64 (Debian 12 main): run 'apt-get update' first"
    download "$kernel_pkg"
    kernel_deb=$(cached 'linux-image-*-cloud-amd64_*.deb')
    [ -n "$kernel_deb" ] || die "apt-get download $kernel_pkg left no .deb in $debs"
fi

busybox_deb=$(cached 'busybox-static_*.deb')
if [ -z "$busybox_deb" ]; then
    download busybox-static
    busybox_deb=$(cached 'busybox-static_*.deb')
    [ -n "$busybox_deb" ] || die "apt-get download busybox-static left no .deb in $debs"
fi

work=$(mktemp -d "$out/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Replaces $2 by $1 when they differ (or $2 is missing); removes $1 otherwise.
install_if_changed() {
    if [ -e "$2" ] && cmp -s "$1" "$2"; then
        rm -f "$1"
    else
        mv -f "$1" "$2"
    fi
}

# --- the kernel: only boot/ of the package (its modules are not needed: the
# cloud kernel has the 8250 UART, devtmpfs, the TSC and ACPI built in).
mkdir -p "$work/kernel"
# nvram.ko too: /init's tessera.reboot-once counts boots in CMOS RAM with it.
dpkg-deb --fsys-tarfile "$kernel_deb" |
    tar -x -C "$work/kernel" --wildcards ./boot './lib/modules/*/kernel/drivers/char/nvram.ko' ||
    die "cannot extract boot/ and nvram.ko from $kernel_deb (a damaged download? try --refresh)"
vmlinuz=$(find "$work/kernel/boot" -name 'vmlinuz-*' | head -n 1)
nvram_ko=$(find "$work/kernel/lib" -name nvram.ko | head -n 1)
[ -n "$nvram_ko" ] || die "$kernel_deb has no nvram.ko"
[ -n "$vmlinuz" ] || die "$kernel_deb has no boot/vmlinuz-*"
install_if_changed "$vmlinuz" "$out/vmlinuz"

# shellcheck disable=SC2016 # ${Package} is dpkg-deb's syntax, not the shell's
{
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$kernel_deb"
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$busybox_deb"
} >"$work/kernel-version"
install_if_changed "$work/kernel-version" "$out/kernel-version"

# --- rdtsc, the guest's TSC reader (see rdtsc.s). -s and no build id keep the
# binary (and so the initramfs) byte-identical from run to run.
as --64 -o "$work/rdtsc.o" "$here/rdtsc.s"
ld -static -nostdlib -s --build-id=none -o "$work/rdtsc" "$work/rdtsc.o"

# --- the initramfs tree: busybox's applet links are made by /init itself
# (busybox --install -s), so the tree is just these four files.
root="$work/root"
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/lib/modules"
install -m 0644 "$nvram_ko" "$root/lib/modules/nvram.ko"
dpkg-deb --fsys-tarfile "$busybox_deb" | tar -x -C "$work" ./bin/busybox ||
    die "cannot extract bin/busybox from $busybox_deb (a damaged download? try --refresh)"
install -m 0755 "$work/bin/busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$work/rdtsc" "$root/bin/rdtsc"
install -m 0755 "$here/init" "$root/init"

# Fixed time stamps and owners make the archive reproducible.
find "$root" -exec touch -h -d @0 {} +

# One newc entry; the data is empty (directories and device nodes only).
# Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize, dev major/minor,
# rdev major/minor, name size (with its NUL), check; then the name, padded
# with NULs to a multiple of 4 counting the 110-byte header.
newc_entry() { # ino mode nlink rdevmajor rdevminor name
    local name=$6 namesize pad
    namesize=$((${#name} + 1))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$1" "$2" 0 0 "$3" 0 0 0 0 "$4" "$5" "$namesize" 0
    printf '%s\0' "$name"
    pad=$(((4 - (110 + namesize) % 4) % 4))
    head -c "$pad" /dev/zero
}

# /dev/console must be in the archive: the kernel opens it as init's stdin,
# stdout and stderr before /init runs, and a device node cannot be made
# without root by cpio from a directory. So the archive starts with a small
# hand-written one holding it (the kernel unpacks concatenated archives).
{
    newc_entry 1 $((0040755)) 2 0 0 dev
    newc_entry 2 $((0020600)) 1 5 1 dev/console
    newc_entry 0 0 1 0 0 'TRAILER!!!'
    (cd "$root" && find . -mindepth 1 -path ./dev -prune -o -print | LC_ALL=C sort |
        cpio --quiet -o -H newc --owner=0:0 --reproducible)
} | gzip -9 -n >"$work/initramfs.cpio.gz"
install_if_changed "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"

note "built from $(paste -sd, "$out/kernel-version" | sed 's/,/ and /')"
echo "$out/vmlinuz"
echo "$out/initramfs.cpio.gz"
