/* The fuzzing target of the --afl tests: reads its input from the file argv[1] (afl-fuzz's @@) or from
 * stdin, and acts on its first bytes:
 *   "FUZZ"  writes through a null pointer (SIGSEGV)      "ABRT"  abort() (SIGABRT)
 *   "HANG"  loops forever                                  "EXIT" + digit  exit(digit)
 * anything else: exit status 0 (1 for inputs over 100 bytes).
 * Before that it prints what shows whether it started from a clean state: a static counter, whether it
 * could create its state file exclusively (STATE_FILE, default /tmp/fuzz_target_state), the first
 * getrandom bytes, and the input's length and checksum. Built without AFL's compiler, it attaches
 * afl-fuzz's coverage map itself (shmat of __AFL_SHM_ID) and writes the input's first bytes there. */
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/shm.h>
#include <unistd.h>
#include "guest.h"

static int runs;

int main(int argc, char **argv)
{
	char input[4096];
	int fd = argc > 1 ? open(argv[1], O_RDONLY) : 0;
	if (fd < 0) {
		printf("open %s: %s\n", argv[1], errno_name(errno));
		return 2;
	}
	ssize_t length = 0, n;
	while (length < (ssize_t)sizeof input && (n = read(fd, input + length, sizeof input - (size_t)length)) > 0)
		length += n;
	runs++;
	printf("runs %d\n", runs);
	const char *state = getenv("STATE_FILE") ? getenv("STATE_FILE") : "/tmp/fuzz_target_state";
	int created = open(state, O_WRONLY | O_CREAT | O_EXCL, 0600);
	printf("state file: %s\n", created >= 0 ? "created" : errno_name(errno));
	unsigned char random[8];
	if (getrandom(random, sizeof random, 0) == sizeof random)
		printf("random %02x%02x%02x%02x%02x%02x%02x%02x\n", random[0], random[1], random[2], random[3],
		       random[4], random[5], random[6], random[7]);
	printf("input %zd bytes, fnv %016llx\n", length, (unsigned long long)fnv1a(FNV1A_INIT, input, (size_t)length));
#ifndef __AFL_COMPILER
	const char *shm_id = getenv("__AFL_SHM_ID");
	if (shm_id) {
		unsigned char *map = shmat(atoi(shm_id), NULL, 0);
		if (map == (void *)-1) {
			printf("shmat: %s\n", errno_name(errno));
			return 3;
		}
		memcpy(map, input, length < 64 ? (size_t)length : 64);
		printf("map attached\n");
	}
#endif
	fflush(stdout);
	if (length >= 4 && memcmp(input, "FUZZ", 4) == 0)
		*(volatile int *)0 = 1;
	if (length >= 4 && memcmp(input, "ABRT", 4) == 0)
		abort();
	if (length >= 4 && memcmp(input, "HANG", 4) == 0)
		for (;;)
			;
	if (length >= 5 && memcmp(input, "EXIT", 4) == 0 && input[4] >= '0' && input[4] <= '9')
		return input[4] - '0';
	return length > 100;
}
