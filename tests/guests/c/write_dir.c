/* Tries to change the directory in argv[1], which holds a file "input.txt": create a file, append to
 * input.txt, make a directory, unlink input.txt. Prints each result as an errno name ("OK" on success):
 * a read-only mount must refuse all of them (EROFS, or EACCES) and still allow reading. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "guest.h"

static void report(const char *what, int result)
{
	printf("%s: %s\n", what, errno_name(result == 0 ? 0 : errno));
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: write_dir DIR\n");
		return 2;
	}
	char path[4096];
	char buffer[256];

	snprintf(path, sizeof path, "%s/input.txt", argv[1]);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buffer, sizeof buffer) : -1;
	report("read input.txt", n > 0 ? 0 : -1);
	if (fd >= 0)
		close(fd);

	fd = open(path, O_WRONLY | O_APPEND);
	int appended = fd >= 0 && write(fd, "more\n", 5) == 5;
	report("append input.txt", fd >= 0 ? (appended ? 0 : -1) : -1);
	if (fd >= 0)
		close(fd);

	snprintf(path, sizeof path, "%s/created.txt", argv[1]);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	int written = fd >= 0 && write(fd, "new\n", 4) == 4;
	report("create created.txt", fd >= 0 ? (written ? 0 : -1) : -1);
	if (fd >= 0)
		close(fd);

	snprintf(path, sizeof path, "%s/made", argv[1]);
	report("mkdir made", mkdir(path, 0755));

	snprintf(path, sizeof path, "%s/input.txt", argv[1]);
	report("unlink input.txt", unlink(path));
	return 0;
}
