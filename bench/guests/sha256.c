/* CPU-bound: SHA-256 of 64 MiB of deterministic data (xorshift64*, generated in 64 KiB chunks), then
 * the digest and the in-guest cycle count:
 *   sha256 <hex digest> bytes=<n> cycles=<n>
 * Argument 1 (optional): MiB to hash (default 64); with a second argument `K`, KiB instead. */
#include "nolibc.h"

typedef unsigned int u32;
typedef unsigned char u8;

static const u32 K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* The guarded-code rows (sha256_guarded.c): a MOV to CR3 (0F 22 D8) the program never executes, either
 * jumped over inside the hot loop (GUARDED_HOT: the loop's page is guarded, single-stepped in mpk) or
 * alone on a page of its own (GUARDED_COLD: no executed code shares a guarded page). */
#if defined(GUARDED_HOT)
#define GUARD_SEQUENCE() __asm__ volatile("jmp 1f\n\t.byte 0x0f, 0x22, 0xd8\n1:")
#else
#define GUARD_SEQUENCE() ((void)0)
#endif
#if defined(GUARDED_COLD)
__asm__(".pushsection .text.guarded_cold, \"ax\"\n\t.balign 4096\n\t.skip 2048\n\t.byte 0x0f, 0x22, 0xd8\n\t"
        ".balign 4096\n\t.popsection");
#endif

static void compress(u32 state[8], const u8 *block) {
    u32 w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (u32)block[4 * i] << 24 | (u32)block[4 * i + 1] << 16 | (u32)block[4 * i + 2] << 8 | block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        u32 s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        u32 s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    u32 a = state[0], b = state[1], c = state[2], d = state[3], e = state[4], f = state[5], g = state[6],
        h = state[7];
    GUARD_SEQUENCE();
    for (int i = 0; i < 64; i++) {
        u32 t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        u32 t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

#define CHUNK (64 * 1024)
static u8 chunk[CHUNK];

int main(int argc, char **argv) {
    int kib = argc > 2 && argv[2][0] == 'K' && argv[2][1] == 0;
    u64 total = parse_u64(argc > 1 ? argv[1] : 0, 64) << (kib ? 10 : 20);
    u64 step = total < CHUNK ? total : CHUNK;
    u32 state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    u64 x = 0x9e3779b97f4a7c15UL;
    u64 start = rdtsc();
    for (u64 done = 0; done < total; done += step) {
        for (u64 i = 0; i < step; i += 8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            u64 word = x * 0x2545f4914f6cdd1dUL;
            for (int j = 0; j < 8; j++) chunk[i + j] = (u8)(word >> (8 * j));
        }
        for (u64 i = 0; i < step; i += 64) compress(state, chunk + i);
    }
    /* Padding: total is a multiple of 64, so one extra block with 0x80 and the bit length. */
    u8 last[64];
    for (int i = 0; i < 64; i++) last[i] = 0;
    last[0] = 0x80;
    u64 bits = total * 8;
    for (int i = 0; i < 8; i++) last[63 - i] = (u8)(bits >> (8 * i));
    compress(state, last);
    u64 cycles = rdtsc() - start;

    char hex[65];
    for (int i = 0; i < 32; i++) {
        u8 byte = (u8)(state[i / 4] >> (24 - 8 * (i % 4)));
        hex[2 * i] = "0123456789abcdef"[byte >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[byte & 15];
    }
    hex[64] = 0;
    put(1, "sha256 ");
    put(1, hex);
    put(1, " bytes=");
    put_u64(1, total);
    put(1, " cycles=");
    put_u64(1, cycles);
    put(1, "\n");
    return 0;
}
