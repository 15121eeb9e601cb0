#!/bin/sh
# Checks the built guest images against what tessera's loader expects and
# prints one line per image with its size. Usage: check-images.sh BUILD_DIR ELF...
#   hello.bin: a 512-byte flat image ending in the 0x55AA boot signature.
#   modes.bin: a flat image of at most 0x7000 bytes (loads at 0x8000).
#   *.elf:     ELF64 x86-64 ET_EXEC, entry 0x100000, every PT_LOAD with
#              p_paddr == p_vaddr and the first at 0x100000, no PT_INTERP or
#              PT_DYNAMIC (the loader applies no relocations).
#              An ELF with a Multiboot1 header (platform) that sets the a.out
#              kludge flag is loaded by the header's addresses instead (QEMU's
#              -kernel needs that for ELF64): they must describe the same
#              bytes as its one PT_LOAD, and the same entry.
set -eu
build=$1
shift
status=0

fail() {
    echo "check-images: $1" >&2
    status=1
}

bin=$build/hello.bin
size=$(wc -c < "$bin")
signature=$(od -An -tx1 -j510 -N2 "$bin" | tr -d ' \n')
[ "$size" -eq 512 ] || fail "$bin: $size bytes, expected 512"
[ "$signature" = 55aa ] || fail "$bin: boot signature is '$signature', expected 55aa"
printf '%-12s %6d bytes  real mode, loads at 0x7c00\n' hello.bin "$size"

# modes.bin: raw, loaded at 0x8000 with entry points at 0x8000/10/20/30;
# its linker script keeps it below 0xF000.
bin=$build/modes.bin
size=$(wc -c < "$bin")
[ "$size" -gt $((0x30)) ] && [ "$size" -le $((0xF000 - 0x8000)) ] || fail "$bin: $size bytes, expected 0x31..0x7000"
printf '%-12s %6d bytes  raw, loads at 0x8000 (entries 0x8000 real, 0x8010/20/30 protected)\n' modes.bin "$size"

# The file offset of a Multiboot1 header (magic 0x1BADB002, 4-byte aligned
# in the first 8 KiB; Multiboot 0.6.96, 3.1.1), if there is one.
multiboot1_offset() {
    od -An -v -tx4 -w4 -N 8192 "$1" | awk '$1 == "1badb002" { print (NR - 1) * 4; exit }'
}

# The little-endian 32-bit word at offset $2 of file $1.
word_at() {
    od -An -tu4 -j "$2" -N 4 "$1" | tr -d ' '
}

for name in "$@"; do
    elf=$build/$name.elf
    header=$(readelf -hW "$elf")
    echo "$header" | grep -Eq 'Class:[[:space:]]+ELF64' || fail "$elf: not ELF64"
    echo "$header" | grep -Eq 'Machine:[[:space:]]+Advanced Micro Devices X86-64' || fail "$elf: not x86-64"
    type=$(echo "$header" | awk '/Type:/ { print $2 }')
    [ "$type" = EXEC ] || fail "$elf: ET_$type, expected ET_EXEC (a PIE?)"
    entry=$(echo "$header" | awk '/Entry point address/ { print $4 }')
    [ "$entry" = 0x100000 ] || fail "$elf: entry $entry, expected 0x100000"
    segments=$(readelf -lW "$elf")
    if echo "$segments" | grep -Eq '^[[:space:]]+(INTERP|DYNAMIC)'; then
        fail "$elf: has PT_INTERP or PT_DYNAMIC"
    fi
    loads=$(echo "$segments" | awk '$1 == "LOAD"')
    first=$(echo "$loads" | awk 'NR == 1 { print $3 }')
    [ "$(( $first ))" -eq $((0x100000)) ] || fail "$elf: first PT_LOAD at $first, expected 0x100000"
    echo "$loads" | awk '$3 != $4 { exit 1 }' || fail "$elf: a PT_LOAD has p_paddr != p_vaddr"
    end=0
    for segment_end in $(echo "$loads" | awk '{ print $3 "+" $6 }'); do
        [ $(( $segment_end )) -gt "$end" ] && end=$(( $segment_end ))
    done
    kind="ELF ET_$type"
    header=$(multiboot1_offset "$elf")
    if [ -n "$header" ]; then
        flags=$(word_at "$elf" $((header + 4)))
        checksum=$(word_at "$elf" $((header + 8)))
        [ $(( (0x1BADB002 + flags + checksum) & 0xffffffff )) -eq 0 ] || fail "$elf: Multiboot1 header checksum wrong"
        if [ $((flags & 0x10000)) -eq 0 ]; then
            kind="Multiboot1 $kind"
        else
            header_addr=$(word_at "$elf" $((header + 12)))
            load_addr=$(word_at "$elf" $((header + 16)))
            load_end_addr=$(word_at "$elf" $((header + 20)))
            bss_end_addr=$(word_at "$elf" $((header + 24)))
            entry_addr=$(word_at "$elf" $((header + 28)))
            [ "$(echo "$loads" | wc -l)" -eq 1 ] || fail "$elf: the a.out kludge describes one run of the file, but there are several PT_LOADs"
            offset=$(echo "$loads" | awk 'NR == 1 { print $2 }')
            file_size=$(echo "$loads" | awk 'NR == 1 { print $5 }')
            [ $((header - (header_addr - load_addr))) -eq $((offset)) ] || fail "$elf: a.out kludge loads from file offset $((header - (header_addr - load_addr))), the PT_LOAD is at $offset"
            [ "$load_addr" -eq $((first)) ] || fail "$elf: a.out kludge load_addr $load_addr is not the PT_LOAD's $first"
            [ $((load_end_addr - load_addr)) -eq $((file_size)) ] || fail "$elf: a.out kludge loads $((load_end_addr - load_addr)) bytes, the PT_LOAD $file_size"
            [ "$bss_end_addr" -eq "$end" ] || fail "$elf: a.out kludge bss_end_addr $bss_end_addr is not the PT_LOAD's end $end"
            [ "$entry_addr" -eq $((entry)) ] || fail "$elf: a.out kludge entry $entry_addr is not the ELF's $entry"
            kind="Multiboot1 (a.out kludge) $kind"
        fi
    fi
    end=$(printf '0x%x' "$end")
    printf '%-12s %6d bytes  %s, %s..%s\n' "$name.elf" "$(wc -c < "$elf")" "$kind" "$(printf 0x%x "$(( $first ))")" "$end"
done
exit $status
