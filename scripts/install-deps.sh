#!/usr/bin/env bash
# Installs the Debian (12) packages that the tessera host tool uses: GRUB and
# xorriso/mtools to make hybrid BIOS+UEFI ISOs, QEMU with OVMF, and Bochs with
# its BIOS images and terminal display. Installs only what is missing, so it is
# cheap to run again. Needs root (or sudo).
set -euo pipefail

packages=(
    grub-common          # grub-mkrescue, grub-file
    grub-pc-bin          # GRUB for BIOS (/usr/lib/grub/i386-pc)
    grub-efi-amd64-bin   # GRUB for UEFI (/usr/lib/grub/x86_64-efi)
    xorriso              # writes the ISO for grub-mkrescue
    mtools               # builds the EFI system partition image (mformat)
    cpio                 # packs initramfs images for Linux guests
    qemu-system-x86      # engines qemu, qemu-uefi and kvm
    ovmf                 # UEFI firmware for qemu-uefi and bochs-uefi
    bochs                # engine bochs: VMX with EPT, emulated
    bochsbios            # Bochs' system BIOS
    vgabios              # Bochs' VGA BIOS
    bochs-term           # Bochs' terminal display, the only headless-capable one
    bsdutils             # script(1), which gives Bochs a pseudo-terminal
    make                 # builds the guest blobs
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages are installed"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "install-deps: run as root to install: ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another apt-get (unattended-upgrades, say) may hold the dpkg lock: wait up to
# 10 minutes for it instead of failing at once.
lock_wait=(-o DPkg::Lock::Timeout=600)
"${sudo[@]}" apt-get "${lock_wait[@]}" update
"${sudo[@]}" apt-get "${lock_wait[@]}" install -y "${missing[@]}"
