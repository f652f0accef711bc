/* Prints the time-stamp counter as the app's first act: on a fresh VM whose TSC starts at 0 this is
 * the time from vCPU reset to the app's entry (firmware, if any, plus the kernel's initialisation). */
#include "nolibc.h"

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    u64 at_entry = rdtsc();
    put(1, "tsc_at_entry ");
    put_u64(1, at_entry);
    put(1, "\n");
    return 0;
}
