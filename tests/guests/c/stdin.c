/* Reads all of stdin (captured by the VMM before boot) and prints its length, line count and checksum. */
#include <unistd.h>
#include "guest.h"

int main(void)
{
	char buffer[4096];
	uint64_t hash = FNV1A_INIT;
	unsigned long long length = 0, lines = 0;
	ssize_t n;
	while ((n = read(0, buffer, sizeof buffer)) > 0) {
		hash = fnv1a(hash, buffer, (size_t)n);
		length += (unsigned long long)n;
		for (ssize_t i = 0; i < n; i++)
			lines += buffer[i] == '\n';
	}
	printf("read %s\n", n == 0 ? "EOF" : errno_name(errno));
	printf("length=%llu lines=%llu fnv=%016llx\n", length, lines, (unsigned long long)hash);
	return 0;
}
