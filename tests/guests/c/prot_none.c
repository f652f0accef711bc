/* PROT_NONE: a page made inaccessible keeps its contents for a later mprotect, and (argument "touch")
 * reading it while inaccessible kills the program with SIGSEGV (status 139). */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	long page = 4096;
	char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		printf("mmap FAILED\n");
		return 1;
	}
	strcpy(p, "first page");
	strcpy(p + page, "second page");
	if (mprotect(p, page, PROT_NONE) != 0 || mprotect(p + page, page, PROT_NONE) != 0) {
		printf("mprotect FAILED\n");
		return 1;
	}
	if (mprotect(p + page, page, PROT_READ) != 0) {
		printf("mprotect FAILED\n");
		return 1;
	}
	printf("contents kept %s\n", strcmp(p + page, "second page") == 0 ? "ok" : "FAILED");
	if (argc > 1 && strcmp(argv[1], "touch") == 0) {
		printf("reading an inaccessible page\n");
		fflush(stdout);
		volatile char *inaccessible = p;
		printf("read %d: FAILED (no fault)\n", inaccessible[0]);
		return 1;
	}
	return 0;
}
