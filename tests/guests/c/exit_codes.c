/* Ways to end a program: "return N" from main, "exit N" from a nested function (atexit handlers and
 * stdio buffers run), "_exit N" (they do not), "abort" (SIGABRT, status 134). No argument: return 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void at_exit_handler(void)
{
	printf("atexit handler ran\n");
}

static void __attribute__((noinline)) exit_from_level3(int status)
{
	exit(status);
}

static void __attribute__((noinline)) exit_from_level2(int status)
{
	exit_from_level3(status);
	printf("not reached\n");
}

static void __attribute__((noinline)) nested_exit(int status)
{
	exit_from_level2(status);
	printf("not reached\n");
}

int main(int argc, char **argv)
{
	atexit(at_exit_handler);
	printf("buffered output\n"); /* stays in the stdio buffer until exit flushes it (stdout is a pipe) */
	if (argc < 2)
		return 0;
	int status = argc > 2 ? atoi(argv[2]) : 0;
	if (strcmp(argv[1], "return") == 0)
		return status;
	if (strcmp(argv[1], "exit") == 0)
		nested_exit(status);
	if (strcmp(argv[1], "_exit") == 0)
		_exit(status);
	if (strcmp(argv[1], "abort") == 0)
		abort();
	fprintf(stderr, "unknown mode %s\n", argv[1]);
	return 2;
}
