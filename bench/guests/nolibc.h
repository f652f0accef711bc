/* A few lines of libc for the benchmark guests: raw syscalls, RDTSC, decimal output, argument parsing.
 * With -DBENCH_NOLIBC it also provides `_start`, for the -nostdlib builds (-ffreestanding
 * -mgeneral-regs-only, so that they also run at CPL0 on a KVM that emulates guest kernel code, which
 * lacks SSE); without it the same helpers serve the glibc (-static) builds of the same sources. */
#ifndef BENCH_NOLIBC_H
#define BENCH_NOLIBC_H

typedef unsigned long u64;
typedef long i64;

static inline i64 sys3(i64 nr, i64 a, i64 b, i64 c) {
    i64 ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}

static inline u64 rdtsc(void) {
    unsigned lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((u64)hi << 32) | lo;
}

static u64 str_len(const char *s) {
    u64 n = 0;
    while (s[n]) n++;
    return n;
}

static void put(int fd, const char *s) { sys3(1, fd, (i64)s, (i64)str_len(s)); }

/* Writes `value` in decimal, with `decimals` digits after a point (value is scaled by 10^decimals). */
static void put_fixed(int fd, u64 value, int decimals) {
    char buf[32];
    int at = sizeof buf;
    int digits = 0;
    do {
        if (digits == decimals && decimals > 0) buf[--at] = '.';
        buf[--at] = (char)('0' + value % 10);
        value /= 10;
        digits++;
    } while (value != 0 || digits <= decimals);
    sys3(1, fd, (i64)(buf + at), (i64)(sizeof buf - at));
}

static void put_u64(int fd, u64 value) { put_fixed(fd, value, 0); }

static void put_i64(int fd, i64 value) {
    if (value < 0) {
        put(fd, "-");
        value = -value;
    }
    put_u64(fd, (u64)value);
}

static u64 parse_u64(const char *s, u64 fallback) {
    if (!s || !*s) return fallback;
    u64 v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return fallback;
        v = v * 10 + (u64)(*s - '0');
    }
    return v;
}

__attribute__((noreturn)) static void sys_exit(int status) {
    for (;;) sys3(60, status, 0, 0);
}

#ifdef BENCH_NOLIBC
/* The entry point: the Linux initial stack holds argc, then argv. */
int main(int argc, char **argv);
__asm__(".global _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  mov (%rsp), %rdi\n"
        "  lea 8(%rsp), %rsi\n"
        "  and $-16, %rsp\n"
        "  call bench_start\n"
        "  hlt\n");
__attribute__((used, noreturn)) void bench_start(int argc, char **argv) { sys_exit(main(argc, argv)); }
#endif

#endif
