/* Helpers shared by the C guests. Everything a guest prints must be the same natively and under
 * secure-run, and the same with glibc and musl: so no addresses, times or strerror() texts (they differ
 * between the two libcs) — errno values are printed by name through errno_name(). */
#ifndef GUEST_H
#define GUEST_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline const char *errno_name(int err)
{
	switch (err) {
	case 0: return "OK";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EEXIST: return "EEXIST";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case EMFILE: return "EMFILE";
	case ENOSPC: return "ENOSPC";
	case ESPIPE: return "ESPIPE";
	case EROFS: return "EROFS";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ECHILD: return "ECHILD";
	case EPIPE: return "EPIPE";
	case ESRCH: return "ESRCH";
	case ENOEXEC: return "ENOEXEC";
	case ELOOP: return "ELOOP";
	case E2BIG: return "E2BIG";
	case ENOTSOCK: return "ENOTSOCK";
	case EMSGSIZE: return "EMSGSIZE";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return "E?";
	}
}

/* FNV-1a, 64-bit: a checksum that is easy to recompute in a test. */
static inline uint64_t fnv1a(uint64_t hash, const void *data, size_t len)
{
	const unsigned char *bytes = data;
	for (size_t i = 0; i < len; i++) {
		hash ^= bytes[i];
		hash *= 0x100000001b3ULL;
	}
	return hash;
}
#define FNV1A_INIT 0xcbf29ce484222325ULL

/* Prints "what ok" or "what FAILED" and remembers failures for guest_exit_status(). */
static int guest_failures;
static inline void check(int ok, const char *what)
{
	printf("%s %s\n", what, ok ? "ok" : "FAILED");
	if (!ok)
		guest_failures++;
}

/* fork() with stdout flushed first, so no buffered line is printed twice; exits on failure. Prints nothing
 * on success: a child must not leave lines in its copy of the buffer. */
static inline pid_t fork_flushed(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		printf("fork: %s FAILED\n", errno_name(errno));
		exit(1);
	}
	return pid;
}

/* 0 when every check() passed, 1 otherwise. */
static inline int guest_exit_status(void)
{
	return guest_failures ? 1 : 0;
}

#endif
