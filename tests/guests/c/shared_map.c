/* MAP_SHARED file mappings are coherent with read()/write() of the same file, and getresuid/getresgid
 * answer. Prints the same natively and in the VM. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "guest.h"

int main(void)
{
	long page = 4096;
	/* Natively /tmp is the host's, shared by tests running at once: a name of this process's own. */
	char path[64];
	snprintf(path, sizeof path, "/tmp/shared_map.%d", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	check(fd >= 0, "open");
	check(write(fd, "0123456789", 10) == 10, "write");
	char *a = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *b = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
	check(a != MAP_FAILED && b != MAP_FAILED, "mmap shared");
	if (a == MAP_FAILED || b == MAP_FAILED)
		return guest_exit_status();

	/* A store through one mapping: in the other at once, and in read(). */
	memcpy(a + 2, "AB", 2);
	check(memcmp(b, "01AB", 4) == 0, "store visible through a second mapping");
	char buf[32] = { 0 };
	check(pread(fd, buf, sizeof buf, 0) == 10 && memcmp(buf, "01AB456789", 10) == 0, "store visible to read");

	/* write(): in both mappings. */
	check(pwrite(fd, "xyz", 3, 7) == 3, "pwrite");
	check(memcmp(a, "01AB456xyz", 10) == 0 && memcmp(b, "01AB456xyz", 10) == 0, "write visible through mappings");
	check(lseek(fd, 0, SEEK_SET) == 0 && write(fd, "W", 1) == 1 && a[0] == 'W', "write at offset 0 visible");

	/* msync, then the file after the last unmap. */
	a[1] = 'Q';
	check(msync(a, page, MS_SYNC) == 0, "msync");
	memset(buf, 0, sizeof buf);
	check(pread(fd, buf, 2, 0) == 2 && memcmp(buf, "WQ", 2) == 0, "store visible after msync");
	a[3] = 'R';
	check(munmap(a, 2 * page) == 0 && munmap(b, page) == 0, "munmap");
	memset(buf, 0, sizeof buf);
	check(pread(fd, buf, 10, 0) == 10 && memcmp(buf, "WQAR456xyz", 10) == 0, "stores kept after munmap");

	/* ftruncate shrinks what a new mapping shows. */
	check(ftruncate(fd, 4) == 0, "ftruncate");
	char *c = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, 0);
	check(c != MAP_FAILED && memcmp(c, "WQAR\0\0", 6) == 0, "truncated file mapped");
	close(fd);
	unlink(path);

	uid_t ruid = 1, euid = 1, suid = 1;
	gid_t rgid = 1, egid = 1, sgid = 1;
	check(getresuid(&ruid, &euid, &suid) == 0 && getresgid(&rgid, &egid, &sgid) == 0, "getresuid/getresgid");
	/* Not the values themselves: the VM runs the app as root, a native run may not be. */
	check(ruid == euid && euid == suid && ruid == getuid(), "uids filled in");
	check(rgid == egid && egid == sgid && rgid == getgid(), "gids filled in");
	return guest_exit_status();
}
