/* Console output in bulk and interleaved (`output MODE ...`):
 *   bulk TOTAL CHUNK  TOTAL bytes of a fixed pattern to stdout in write()s of CHUNK bytes, or through
 *                     stdio's putchar when CHUNK is 1;
 *   interleave N      N rounds of one write() to stdout and one to stderr, of varying lengths, so that the
 *                     order of the two streams in one pipe (2>&1) shows whether it was kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Output must be only the data: a failed requirement goes to stderr and ends the program. */
static void require(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "output: %s FAILED\n", what);
		exit(1);
	}
}

static char pattern[65536];

int main(int argc, char **argv)
{
	require(argc >= 3, "usage: output bulk TOTAL CHUNK | output interleave N");
	for (size_t i = 0; i < sizeof pattern; i++)
		pattern[i] = (char)('a' + (i * 7 + i / 26) % 26);
	pattern[sizeof pattern - 1] = '\n';
	if (strcmp(argv[1], "bulk") == 0 && argc == 4) {
		long total = atol(argv[2]), chunk = atol(argv[3]);
		require(total > 0 && chunk > 0 && chunk <= (long)sizeof pattern, "bulk sizes");
		for (long done = 0; done < total; done += chunk) {
			long n = total - done < chunk ? total - done : chunk;
			if (chunk == 1)
				putchar(pattern[done % sizeof pattern]);
			else
				require(write(1, pattern + done % (sizeof pattern - chunk + 1), (size_t)n) == n, "write");
		}
		return 0;
	}
	if (strcmp(argv[1], "interleave") == 0) {
		long rounds = atol(argv[2]);
		char line[128];
		for (long i = 0; i < rounds; i++) {
			int n = snprintf(line, sizeof line, "out %ld %.*s\n", i, (int)(i % 40), pattern);
			require(write(1, line, (size_t)n) == n, "write stdout");
			n = snprintf(line, sizeof line, "err %ld %.*s\n", i, (int)(i % 13), pattern + 100);
			require(write(2, line, (size_t)n) == n, "write stderr");
		}
		return 0;
	}
	require(0, "a known mode");
	return 2;
}
