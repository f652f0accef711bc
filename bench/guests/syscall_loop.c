/* Syscall round trip, timed with RDTSC inside the guest: for each syscall number measured, batches of
 * doubling size until one batch takes at least TARGET_CYCLES (or MAX_ITERATIONS calls); the last batch
 * gives the cycles per call. Prints one line per syscall:
 *   syscall <name> nr=<n> ret=<first return value> iterations=<n> cycles_per_call=<x.xx>
 * Argument 1 (optional): the target batch length in millions of cycles (default 100). */
#include "nolibc.h"

#define MAX_ITERATIONS (1UL << 24)

static void measure(const char *name, i64 nr, u64 target_cycles) {
    i64 first = sys3(nr, 0, 0, 0);
    u64 iterations = 16, cycles = 0;
    for (;;) {
        u64 start = rdtsc();
        for (u64 i = 0; i < iterations; i++) sys3(nr, 0, 0, 0);
        cycles = rdtsc() - start;
        if (cycles >= target_cycles || iterations >= MAX_ITERATIONS) break;
        iterations *= 2;
    }
    put(1, "syscall ");
    put(1, name);
    put(1, " nr=");
    put_i64(1, nr);
    put(1, " ret=");
    put_i64(1, first);
    put(1, " iterations=");
    put_u64(1, iterations);
    put(1, " cycles_per_call=");
    put_fixed(1, cycles * 100 / iterations, 2);
    put(1, "\n");
}

int main(int argc, char **argv) {
    u64 target = parse_u64(argc > 1 ? argv[1] : 0, 100) * 1000000;
    measure("getpid", 39, target);
    /* No such syscall on Linux or in our kernel: the cheapest round trip there is (-ENOSYS). */
    measure("unknown", 1000, target);
    return 0;
}
