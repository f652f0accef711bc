/* Randomness: getrandom() fills 16 bytes, two draws differ, /dev/urandom reads. */
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include "guest.h"

int main(void)
{
	unsigned char first[16], second[16];
	check(getrandom(first, sizeof first, 0) == (ssize_t)sizeof first, "getrandom");
	check(getrandom(second, sizeof second, GRND_NONBLOCK) == (ssize_t)sizeof second, "getrandom nonblock");
	check(memcmp(first, second, sizeof first) != 0, "two draws differ");
	unsigned char big[4096];
	check(getrandom(big, sizeof big, 0) == (ssize_t)sizeof big, "getrandom 4096");
	int fd = open("/dev/urandom", O_RDONLY);
	check(fd >= 0 && read(fd, first, sizeof first) == (ssize_t)sizeof first, "/dev/urandom");
	if (fd >= 0)
		close(fd);
	return guest_exit_status();
}
