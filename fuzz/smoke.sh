#!/usr/bin/env bash
# CI smoke test of the fuzz targets: builds them all, seeds the corpora and runs each target for
# SMOKE_SECONDS (default 20), two at a time. Fails on any crash, leak, timeout or out-of-memory. About
# 3 minutes on 2 cores once the build is cached (the first build takes longer: nightly, ASan, vmm and
# the guest kernel). Needs the nightly toolchain of fuzz/rust-toolchain.toml and cargo-fuzz.
set -uo pipefail
source "$(dirname "$0")/common.sh"

SECONDS_PER_TARGET=${SMOKE_SECONDS:-20}
JOBS=${JOBS:-2}
LOG_DIR=$(mktemp -d)
trap 'rm -rf "$LOG_DIR"' EXIT

(cd "$fuzz_dir" && cargo fuzz build) || exit 1
"$fuzz_dir/seed-corpus.sh" >/dev/null || exit 1
run_targets "${TARGETS[@]}"
for target in "${TARGETS[@]}"; do
    log="$LOG_DIR/$target.log"
    printf '%-14s %s\n' "$target" "$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -1)"
done
if [ "${#FAILED[@]}" -gt 0 ]; then
    for target in "${FAILED[@]}"; do
        echo "=== $target crashed; the end of its log:" >&2
        tail -60 "$LOG_DIR/$target.log" >&2
    done
    exit 1
fi
echo "fuzz smoke test: no crash in ${#TARGETS[@]} targets x ${SECONDS_PER_TARGET} s"
