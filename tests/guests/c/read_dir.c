/* Lists the directory tree in argv[1] (a --mount of a directory the test filled): entries sorted by
 * name, with type, size, checksum and first line of each file. Paths are printed relative to argv[1],
 * so the output is the same natively (host path) and in the VM (guest path). */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "guest.h"

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void describe_file(const char *path, const char *relative, off_t size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("%s: open %s\n", relative, errno_name(errno));
		return;
	}
	uint64_t hash = FNV1A_INIT;
	char buffer[4096], first_line[81] = "";
	size_t line_len = 0;
	int line_done = 0;
	off_t total = 0;
	ssize_t n;
	while ((n = read(fd, buffer, sizeof buffer)) > 0) {
		hash = fnv1a(hash, buffer, (size_t)n);
		total += n;
		for (ssize_t i = 0; i < n && !line_done; i++) {
			if (buffer[i] == '\n' || line_len == sizeof first_line - 1)
				line_done = 1;
			else
				first_line[line_len++] = buffer[i];
		}
	}
	close(fd);
	printf("%s: file size=%lld read=%lld fnv=%016llx first=[%s]\n", relative, (long long)size, (long long)total,
	       (unsigned long long)hash, first_line);
}

static void list(const char *root, const char *relative)
{
	char path[4096];
	snprintf(path, sizeof path, "%s%s%s", root, *relative ? "/" : "", relative);
	DIR *dir = opendir(path);
	if (!dir) {
		printf("%s: opendir %s\n", *relative ? relative : ".", errno_name(errno));
		return;
	}
	char *names[256];
	int count = 0;
	struct dirent *entry;
	while ((entry = readdir(dir)) && count < 256)
		if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
			names[count++] = strdup(entry->d_name);
	closedir(dir);
	qsort(names, (size_t)count, sizeof names[0], by_name);
	printf("%s: directory, %d entries\n", *relative ? relative : ".", count);
	for (int i = 0; i < count; i++) {
		char child[4096], child_path[8192];
		snprintf(child, sizeof child, "%s%s%s", relative, *relative ? "/" : "", names[i]);
		snprintf(child_path, sizeof child_path, "%s/%s", root, child);
		struct stat st;
		if (lstat(child_path, &st) != 0)
			printf("%s: lstat %s\n", child, errno_name(errno));
		else if (S_ISDIR(st.st_mode))
			list(root, child);
		else if (S_ISREG(st.st_mode))
			describe_file(child_path, child, st.st_size);
		else
			printf("%s: other\n", child);
		free(names[i]);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: read_dir DIR\n");
		return 2;
	}
	list(argv[1], "");
	return 0;
}
