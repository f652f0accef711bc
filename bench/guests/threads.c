/* Thread and process costs, timed with RDTSC inside the guest (glibc static):
 *   threads create_join iterations=<n> cycles_per_round_trip=<x.xx>
 *     pthread_create of a thread that returns at once, then pthread_join, n times;
 *   threads futex_handoff iterations=<n> cycles_per_handoff=<x.xx>
 *     two threads pass a token back and forth through one futex word: each hand-off is a FUTEX_WAKE by
 *     one thread and the return from FUTEX_WAIT in the other (the wake-up latency of a contended futex).
 *   processes fork_wait iterations=<m> cycles_per_round_trip=<x.xx>
 *     fork of a child that calls _exit(0) at once, then waitpid, m times;
 *   processes fork_exec_wait iterations=<m> cycles_per_round_trip=<x.xx>
 *     fork, the child execve's this program again (/proc/self/exe, argument "exit": it returns from main
 *     at once, C start-up included), then waitpid, m times.
 * Argument 1 (optional): thread iterations (default 2000); argument 2: process iterations (default 200). */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

static unsigned long long rdtsc(void)
{
	unsigned int lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((unsigned long long)hi << 32) | lo;
}

static void *nothing(void *arg)
{
	return arg;
}

static volatile int token; /* whose turn: 0 main, 1 partner */
static long rounds;

static void wait_for(int mine)
{
	while (__atomic_load_n(&token, __ATOMIC_ACQUIRE) != mine)
		syscall(SYS_futex, &token, FUTEX_WAIT_PRIVATE, !mine, NULL, NULL, 0);
}

static void pass_to(int other)
{
	__atomic_store_n(&token, other, __ATOMIC_RELEASE);
	syscall(SYS_futex, &token, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *partner(void *arg)
{
	(void)arg;
	for (long i = 0; i < rounds; i++) {
		wait_for(1);
		pass_to(0);
	}
	return NULL;
}

static int round_trips(long m, int exec)
{
	unsigned long long start = rdtsc();
	for (long i = 0; i < m; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			if (exec) {
				char *args[] = { "threads", "exit", NULL };
				execv("/proc/self/exe", args);
			}
			_exit(0);
		}
		int status = 0;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			printf("processes: a child failed\n");
			return 1;
		}
	}
	unsigned long long cycles = rdtsc() - start;
	printf("processes %s iterations=%ld cycles_per_round_trip=%.2f\n", exec ? "fork_exec_wait" : "fork_wait", m,
	       (double)cycles / m);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "exit") == 0)
		return 0;
	long n = argc > 1 ? atol(argv[1]) : 2000;
	long m = argc > 2 ? atol(argv[2]) : 200;
	if (n <= 0 || n > INT_MAX)
		n = 2000;
	pthread_t thread;
	unsigned long long start = rdtsc();
	for (long i = 0; i < n; i++) {
		if (pthread_create(&thread, NULL, nothing, NULL) != 0 || pthread_join(thread, NULL) != 0) {
			printf("threads: pthread_create or pthread_join failed\n");
			return 1;
		}
	}
	unsigned long long cycles = rdtsc() - start;
	printf("threads create_join iterations=%ld cycles_per_round_trip=%.2f\n", n, (double)cycles / n);

	rounds = n;
	if (pthread_create(&thread, NULL, partner, NULL) != 0)
		return 1;
	start = rdtsc();
	for (long i = 0; i < n; i++) {
		pass_to(1);
		wait_for(0);
	}
	cycles = rdtsc() - start;
	pthread_join(thread, NULL);
	/* Two hand-offs per round: main to partner, partner back. */
	printf("threads futex_handoff iterations=%ld cycles_per_handoff=%.2f\n", 2 * n, (double)cycles / (2 * n));
	fflush(stdout);
	if (m <= 0 || m > INT_MAX)
		m = 200;
	return round_trips(m, 0) || round_trips(m, 1);
}
