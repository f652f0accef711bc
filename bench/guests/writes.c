/* Syscall-heavy: COUNT writes of 64 bytes to a new file in /tmp (falling back to /dev/null, then to
 * stdout, if the file cannot be created), timed with RDTSC:
 *   writes target=<path> count=<n> bytes=64 cycles_per_write=<x.xx> failed=<n>
 * Argument 1 (optional): COUNT (default 20000). */
#include "nolibc.h"

#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000

int main(int argc, char **argv) {
    u64 count = parse_u64(argc > 1 ? argv[1] : 0, 20000);
    static const char *targets[] = {"/tmp/bench-writes", "/dev/null"};
    const char *target = "stdout";
    i64 fd = 1;
    for (int i = 0; i < 2; i++) {
        i64 opened = sys3(2, (i64)targets[i], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (opened >= 0) {
            fd = opened;
            target = targets[i];
            break;
        }
    }
    char line[64];
    for (int i = 0; i < 63; i++) line[i] = (char)('a' + i % 26);
    line[63] = '\n';
    u64 failed = 0;
    u64 start = rdtsc();
    for (u64 i = 0; i < count; i++)
        if (sys3(1, fd, (i64)line, 64) != 64) failed++;
    u64 cycles = rdtsc() - start;
    put(2, "writes target=");
    put(2, target);
    put(2, " count=");
    put_u64(2, count);
    put(2, " bytes=64 cycles_per_write=");
    put_fixed(2, count ? cycles * 100 / count : 0, 2);
    put(2, " failed=");
    put_u64(2, failed);
    put(2, "\n");
    return 0;
}
