/* malloc, realloc and free over sizes from 1 byte to 2 MiB: small sizes come from brk, large ones from
 * mmap in both glibc and musl. Every block is filled with a pattern and verified before it is freed;
 * the output is a checksum of everything read back, which does not depend on where blocks landed. */
#include <string.h>
#include "guest.h"

#define SLOTS 128

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t next_random(void)
{
	/* xorshift64*: deterministic, the same on every libc */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static size_t random_size(void)
{
	uint64_t r = next_random();
	switch (r % 16) {
	case 0: return (1u << 20) + (r >> 8) % (1u << 20); /* 1-2 MiB: mmap */
	case 1: case 2: return 1 + (r >> 8) % (128u << 10);
	default: return 1 + (r >> 8) % 512;
	}
}

struct slot {
	unsigned char *data;
	size_t size;
	unsigned char seed;
};

static void fill(struct slot *slot)
{
	for (size_t i = 0; i < slot->size; i++)
		slot->data[i] = (unsigned char)(slot->seed + i * 7);
}

static int verify(const struct slot *slot, size_t size, uint64_t *checksum)
{
	for (size_t i = 0; i < size; i++)
		if (slot->data[i] != (unsigned char)(slot->seed + i * 7))
			return 0;
	*checksum = fnv1a(*checksum, slot->data, size);
	return 1;
}

int main(void)
{
	static struct slot slots[SLOTS];
	uint64_t checksum = FNV1A_INIT;
	int corrupted = 0, failed = 0;
	size_t total = 0;
	for (int round = 0; round < 2000; round++) {
		struct slot *slot = &slots[next_random() % SLOTS];
		if (slot->data) {
			corrupted |= !verify(slot, slot->size, &checksum);
			if (next_random() % 3 == 0) {
				/* realloc keeps the common prefix */
				size_t new_size = random_size();
				unsigned char *grown = realloc(slot->data, new_size);
				if (!grown) {
					failed++;
					continue;
				}
				slot->data = grown;
				size_t kept = new_size < slot->size ? new_size : slot->size;
				corrupted |= !verify(slot, kept, &checksum);
				slot->size = new_size;
				fill(slot);
				total += new_size;
				continue;
			}
			free(slot->data);
			slot->data = NULL;
		} else {
			slot->size = random_size();
			slot->seed = (unsigned char)next_random();
			slot->data = malloc(slot->size);
			if (!slot->data) {
				failed++;
				continue;
			}
			fill(slot);
			total += slot->size;
		}
	}
	for (int i = 0; i < SLOTS; i++) {
		if (slots[i].data) {
			corrupted |= !verify(&slots[i], slots[i].size, &checksum);
			free(slots[i].data);
		}
	}
	/* calloc must return zeroed memory, also when it reuses freed blocks. */
	int zeroed = 1;
	for (int i = 0; i < 64; i++) {
		size_t size = (size_t)1 << (i % 23);
		unsigned char *block = calloc(size, 1);
		if (!block) {
			failed++;
			continue;
		}
		for (size_t j = 0; j < size; j++)
			zeroed &= block[j] == 0;
		memset(block, 0xff, size);
		free(block);
	}
	printf("allocated %zu bytes in total\n", total);
	printf("checksum %016llx\n", (unsigned long long)checksum);
	check(!corrupted, "contents preserved");
	check(!failed, "every allocation succeeded");
	check(zeroed, "calloc zeroed");
	return guest_exit_status();
}
