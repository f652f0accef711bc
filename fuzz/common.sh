# Shared by run-campaign.sh and smoke.sh (sourced, not run).
# shellcheck shell=bash

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_dir=$(dirname "$fuzz_dir")
TARGETS=(elf_loader syscall_args inspection console pvh)

# The vmm crate's build script builds the guest kernel with this workspace's (nightly) cargo: give that
# build its own directory, so it never fights the stable toolchain over the main workspace's.
export SECURE_RUN_KERNEL_TARGET_DIR="${SECURE_RUN_KERNEL_TARGET_DIR:-$fuzz_dir/target/guest-kernel}"

# libFuzzer options per target (dictionaries, input sizes).
target_options() {
    case "$1" in
    elf_loader) echo "-dict=$fuzz_dir/dictionaries/elf_loader.dict -max_len=65536" ;;
    inspection) echo "-dict=$fuzz_dir/dictionaries/inspection.dict -max_len=16384" ;;
    console) echo "-dict=$fuzz_dir/dictionaries/console.dict -max_len=16384" ;;
    syscall_args) echo "-max_len=2048" ;;
    pvh) echo "-max_len=4096" ;;
    esac
}

# Runs one target for $2 seconds on its corpus, logging to $3. Returns libFuzzer's status (non-zero on a
# crash, leak, timeout or out-of-memory; the input is then in artifacts/<target>/).
run_target() {
    local target=$1 seconds=$2 log=$3
    mkdir -p "$fuzz_dir/corpus/$target" "$fuzz_dir/artifacts/$target"
    # shellcheck disable=SC2046
    (cd "$fuzz_dir" && cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        $(target_options "$target")) >"$log" 2>&1
}

# Runs the targets named in $@ for $SECONDS_PER_TARGET each, $JOBS at a time; logs in $LOG_DIR.
# Sets FAILED to the targets that crashed.
run_targets() {
    FAILED=()
    local pids=() names=() target
    for target in "$@"; do
        run_target "$target" "$SECONDS_PER_TARGET" "$LOG_DIR/$target.log" &
        pids+=($!)
        names+=("$target")
        if [ "${#pids[@]}" -ge "$JOBS" ]; then
            wait "${pids[0]}" || FAILED+=("${names[0]}")
            pids=("${pids[@]:1}")
            names=("${names[@]:1}")
        fi
    done
    local i
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || FAILED+=("${names[$i]}")
    done
}
