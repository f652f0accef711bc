#!/usr/bin/env bash
# A fuzzing campaign: builds every target, seeds the corpora, runs each target for SECONDS (default 600),
# two at a time (JOBS=1 for one), and regenerates docs/fuzzing.md with each target's executions per
# second and coverage. Exits non-zero if any target crashed; the crashing input is in
# fuzz/artifacts/<target>/ (see fuzz/README.md to minimise it and turn it into a regression).
#
#   fuzz/run-campaign.sh [SECONDS] [TARGET...]
set -uo pipefail
source "$(dirname "$0")/common.sh"

SECONDS_PER_TARGET=${1:-600}
shift $(($# > 0 ? 1 : 0))
selected=("$@")
[ "${#selected[@]}" -gt 0 ] || selected=("${TARGETS[@]}")
JOBS=${JOBS:-2}
LOG_DIR=${LOG_DIR:-$fuzz_dir/artifacts/logs}
mkdir -p "$LOG_DIR"

(cd "$fuzz_dir" && cargo fuzz build) || exit 1
"$fuzz_dir/seed-corpus.sh" >/dev/null || exit 1
started=$(date -u +"%Y-%m-%d %H:%M UTC")
run_targets "${selected[@]}"

# One table row per target, from libFuzzer's last status line and its final statistics.
row() {
    local target=$1 log="$LOG_DIR/$1.log" status last execs per_second rss corpus
    status="no crash"
    for failed in "${FAILED[@]}"; do
        [ "$failed" = "$target" ] && status="**CRASH**: $(grep -o 'artifacts/[^ ]*' "$log" | tail -1)"
    done
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    corpus=$(find "$fuzz_dir/corpus/$target" -type f | wc -l)
    printf '| `%s` | %s | %s s | %s | %s | %s | %s | %s | %s MB | %s |\n' "$target" "$started" \
        "$SECONDS_PER_TARGET" "${execs:-?}" "${per_second:-?}" "$(grep -o 'cov: [0-9]*' <<<"$last" | cut -d' ' -f2)" \
        "$(grep -o 'ft: [0-9]*' <<<"$last" | cut -d' ' -f2)" "$corpus" "${rss:-?}" "$status"
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
commit=$(git -C "$root_dir" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root_dir" diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
doc="$root_dir/docs/fuzzing.md"
previous=$(mktemp)
cp "$doc" "$previous" 2>/dev/null || true
{
    sed -n '1,/^<!-- results -->$/p' "$fuzz_dir/fuzzing.md.in"
    echo
    echo "Each row is the last campaign of that target (\`fuzz/run-campaign.sh SECONDS [TARGET...]\` replaces"
    echo "the rows of the targets it runs and keeps the others), $JOBS target(s) at a time. Last run:"
    echo
    echo "- Machine: $(uname -sr), $(nproc) CPU(s): ${cpu:-unknown}, $(free -g | awk '/^Mem:/ {print $2}') GiB,"
    echo "  shared with other builds and tests while it ran (executions per second vary with the load)"
    echo "- Toolchain: $(cd "$fuzz_dir" && rustc --version), cargo-fuzz $(cargo fuzz --version | cut -d' ' -f2),"
    echo "  AddressSanitizer, debug assertions and overflow checks on"
    echo "- Commit: $commit"
    echo
    echo "| Target | Started | Time | Executions | Exec/s | cov | ft | Corpus files | Peak RSS | Result |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for target in "${TARGETS[@]}"; do
        if [[ " ${selected[*]} " == *" $target "* ]]; then
            row "$target"
        else
            grep -F "| \`$target\` |" "$previous" || true
        fi
    done
    echo
    echo '`cov` is the number of coverage points (edges) libFuzzer saw, `ft` its "features" (edges with hit'
    echo 'counts, compared values...), both from its last status line; Exec/s is the average over the run.'
    sed -n '/^<!-- results -->$/,$p' "$fuzz_dir/fuzzing.md.in" | sed 1d
} >"$doc"
rm -f "$previous"
echo "wrote $doc"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "crashed: ${FAILED[*]} (inputs in $fuzz_dir/artifacts/)" >&2
    exit 1
fi
