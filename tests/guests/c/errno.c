/* Failing system calls return the right errno (printed by name: strerror texts differ between libcs). */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "guest.h"

#define EXPECT(call, name) report(#call, (call), name)

static void report(const char *what, long result, const char *expected)
{
	const char *got = result == -1 ? errno_name(errno) : "OK";
	printf("%s: %s%s\n", what, got, strcmp(got, expected) == 0 ? "" : " (UNEXPECTED)");
}

int main(void)
{
	/* An address no program maps (the first page); laundered so the compiler does not warn about it. */
	char *volatile unmapped = (char *)16;
	char buffer[16];
	struct stat st;
	EXPECT(open("/nonexistent/file", O_RDONLY), "ENOENT");
	EXPECT(open("/tmp", O_WRONLY), "EISDIR");
	EXPECT(open("/dev/null/child", O_RDONLY), "ENOTDIR");
	EXPECT(stat("/nonexistent", &st), "ENOENT");
	EXPECT(read(-1, buffer, 1), "EBADF");
	EXPECT(read(12345, buffer, 1), "EBADF");
	EXPECT(close(999), "EBADF");
	EXPECT(write(1, unmapped, 4), "EFAULT");
	EXPECT(mkdir("/tmp", 0755), "EEXIST");
	EXPECT(rmdir("/nonexistent"), "ENOENT");
	EXPECT(lseek(1000, 0, SEEK_SET), "EBADF");
	EXPECT(syscall(100000), "ENOSYS");
	EXPECT((long)mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), "EINVAL");
	EXPECT(munmap((void *)4097, 4096), "EINVAL");
	int zero = open("/dev/zero", O_RDONLY);
	EXPECT(zero < 0 ? -1 : read(zero, unmapped, 4), "EFAULT");
	if (zero >= 0)
		close(zero);
	int fd = open("/dev/null", O_RDONLY);
	EXPECT(fd < 0 ? -1 : write(fd, "x", 1), "EBADF");
	EXPECT(fd < 0 ? -1 : close(fd), "OK");
	errno = 0;
	char *big = malloc((size_t)1 << 62);
	printf("malloc(2^62): %s %s\n", big ? "non-null" : "NULL", errno_name(errno));
	return 0;
}
