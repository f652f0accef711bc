/* File I/O in /tmp (the guest's writable in-memory directory): create, write, read back, lseek, fstat,
 * stat, rename, unlink, and the same through stdio. The file name carries the pid so that parallel
 * native runs do not collide; it is never printed. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "guest.h"

int main(void)
{
	char path[64], renamed[80];
	snprintf(path, sizeof path, "/tmp/secure-run-guest-%d", (int)getpid());
	snprintf(renamed, sizeof renamed, "%s.renamed", path);
	const char text[] = "line one\nline two\nline three\n";

	int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
	check(fd >= 0, "create");
	check(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write");
	struct stat st;
	check(fstat(fd, &st) == 0 && st.st_size == (off_t)strlen(text) && S_ISREG(st.st_mode), "fstat size");
	check(lseek(fd, 0, SEEK_CUR) == (off_t)strlen(text), "lseek SEEK_CUR");
	check(lseek(fd, 5, SEEK_SET) == 5, "lseek SEEK_SET");
	char buffer[128] = {0};
	check(read(fd, buffer, 3) == 3 && memcmp(buffer, "one", 3) == 0, "read after lseek");
	check(lseek(fd, -6, SEEK_END) == (off_t)strlen(text) - 6, "lseek SEEK_END");
	check(pread(fd, buffer, 4, 9) == 4 && memcmp(buffer, "line", 4) == 0, "pread");
	/* Writing past the end leaves a hole that reads as zeros. */
	check(pwrite(fd, "!", 1, 100) == 1, "pwrite past end");
	check(fstat(fd, &st) == 0 && st.st_size == 101, "size after hole");
	check(pread(fd, buffer, 10, 60) == 10 && memcmp(buffer, "\0\0\0\0\0\0\0\0\0\0", 10) == 0, "hole reads zeros");
	check(ftruncate(fd, 9) == 0 && fstat(fd, &st) == 0 && st.st_size == 9, "ftruncate");
	check(close(fd) == 0, "close");

	check(rename(path, renamed) == 0, "rename");
	check(stat(path, &st) == -1 && errno == ENOENT, "old name gone");
	check(stat(renamed, &st) == 0 && st.st_size == 9, "new name stat");

	FILE *file = fopen(renamed, "a+");
	check(file != NULL, "fopen append");
	if (file) {
		fprintf(file, "appended %d\n", 42);
		rewind(file);
		char line[64];
		int lines = 0;
		while (fgets(line, sizeof line, file)) {
			printf("read back: %s", line);
			lines++;
		}
		check(lines == 2, "two lines");
		check(fclose(file) == 0, "fclose");
	}
	check(unlink(renamed) == 0, "unlink");
	check(unlink(renamed) == -1 && errno == ENOENT, "unlink again is ENOENT");
	check(access("/tmp", W_OK) == 0, "/tmp writable");
	return guest_exit_status();
}
