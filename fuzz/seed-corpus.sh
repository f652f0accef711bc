#!/usr/bin/env bash
# Builds the seed corpora in fuzz/corpus/<target>/ (gitignored) from the repository's test programs and
# the small hand-made seeds committed under fuzz/seeds/<target>/. Safe to re-run: libFuzzer names corpus
# files by content hash, so seeds are simply added next to what earlier campaigns found.
#
#   elf_loader   tests/guests/asm/*.S linked with gcc -nostdlib as ET_EXEC and as static PIE (small),
#                tests/guests/c/{args,errno}.c with musl-gcc -static / -static-pie when available (~30 KiB:
#                real libc layouts, PT_TLS, RELRO, PT_DYNAMIC with RELA), plus fuzz/seeds/elf_loader.
#                glibc's static binaries (~700 KiB) are left out: too large for libFuzzer to mutate quickly.
#   inspection   the executable segments' bytes of those binaries (code the scanner really sees)
#   others       fuzz/seeds/<target> only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
corpus="$here/corpus"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$corpus"/{elf_loader,syscall_args,inspection,console,pvh}
for target in elf_loader syscall_args inspection console pvh; do
    if [ -d "$here/seeds/$target" ]; then
        cp "$here/seeds/$target"/* "$corpus/$target/" 2>/dev/null || true
    fi
done

built=()
# Small asm guests: the most useful ELF seeds (every header field matters, little else).
for source in "$root"/tests/guests/asm/*.S; do
    name=$(basename "$source" .S)
    if gcc -nostdlib -static -no-pie -s -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noseparate-code \
        -o "$work/$name.exec" "$source" 2>/dev/null; then
        built+=("$work/$name.exec")
    fi
    if gcc -nostdlib -static-pie -fPIE -s -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noseparate-code \
        -o "$work/$name.pie" "$source" 2>/dev/null; then
        built+=("$work/$name.pie")
    fi
done
# A couple of libc programs: bigger, but with the layouts real toolchains produce.
for name in args errno; do
    source="$root/tests/guests/c/$name.c"
    [ -f "$source" ] || continue
    command -v musl-gcc >/dev/null || break
    if musl-gcc -O1 -static -s -I "$root/tests/guests/c" -o "$work/$name.musl" "$source" 2>/dev/null; then
        built+=("$work/$name.musl")
    fi
    if musl-gcc -O1 -static-pie -fPIE -s -I "$root/tests/guests/c" -o "$work/$name.musl-pie" "$source" 2>/dev/null; then
        built+=("$work/$name.musl-pie")
    fi
done

for binary in "${built[@]}"; do
    cp "$binary" "$corpus/elf_loader/seed-$(basename "$binary")"
    # The inspection input is: 8-byte base address, 3 x 2-byte split points, 1 gap byte, then code.
    if objcopy -O binary --only-section=.text "$binary" "$work/text" 2>/dev/null && [ -s "$work/text" ]; then
        {
            printf '\x00\x10\x40\x00\x00\x00\x00\x00\x10\x00\x20\x00\x30\x00\x00'
            head -c 65536 "$work/text"
        } >"$corpus/inspection/seed-$(basename "$binary")"
    fi
done
echo "seed corpora in $corpus:"
for target in elf_loader syscall_args inspection console pvh; do
    echo "  $target: $(find "$corpus/$target" -type f | wc -l) files"
done
