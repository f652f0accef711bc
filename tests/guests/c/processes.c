/* Processes, one scenario per argument (`processes NAME`): fork and waitpid with exit statuses and
 * copy-on-write memory (`fork_wait`), a pipe between parent and child (`pipe`), signals between processes
 * (`signals`: kill, SIGCHLD, a child's fault), memory the other process cannot reach (`isolation`), process groups and sessions (`groups`), and a fork bomb
 * that must end with EAGAIN (`fork_bomb`, for secure-run only). Output is flushed before every fork, so no buffered line is
 * printed twice; only the parent prints results. */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "guest.h"

static int counter = 100;

static void fork_wait(void)
{
	char *heap = malloc(1 << 20);
	check(heap != NULL, "malloc");
	memset(heap, 'p', 1 << 20);
	pid_t children[5];
	for (int i = 0; i < 5; i++) {
		pid_t pid = fork_flushed();
		if (pid == 0) {
			/* The child's memory is a copy: its writes stay its own, the parent's later ones are not seen. */
			int ok = counter == 100 + i && heap[12345] == 'p' && getppid() > 0 && getpid() != getppid();
			counter = -1;
			memset(heap, 'c', 1 << 20);
			_exit(ok ? 10 + i : 1);
		}
		children[i] = pid;
		counter++;
	}
	memset(heap, 'P', 4096);
	int sum = 0;
	for (int i = 4; i >= 0; i--) {
		int status = 0;
		pid_t got = waitpid(children[i], &status, 0);
		check(got == children[i], "waitpid returns the child");
		check(WIFEXITED(status), "the child exited");
		printf("child %d exited with %d\n", i, WEXITSTATUS(status));
		sum += WEXITSTATUS(status);
	}
	int left = waitpid(-1, NULL, WNOHANG);
	printf("after reaping: waitpid=%d errno=%s\n", left, errno_name(errno));
	check(counter == 105 && heap[0] == 'P' && heap[4096] == 'p', "the parent's memory is its own");
	printf("status sum=%d\nfork and wait ok\n", sum);
}

static void pipe_between(void)
{
	int fds[2];
	check(pipe(fds) == 0, "pipe");
	pid_t pid = fork_flushed();
	if (pid == 0) {
		close(fds[0]);
		char line[64];
		for (int i = 0; i < 1000; i++) {
			int n = snprintf(line, sizeof line, "line %d from the child\n", i);
			if (write(fds[1], line, (size_t)n) != n)
				_exit(2);
		}
		_exit(0);
	}
	close(fds[1]);
	char buf[4096];
	long total = 0, lines = 0;
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof buf)) > 0) {
		total += n;
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	}
	int status = 0;
	check(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status");
	printf("read %ld bytes, %ld lines, then EOF (%zd)\n", total, lines, n);
	/* A write to a pipe whose reader is gone: EPIPE (SIGPIPE ignored). */
	check(pipe(fds) == 0, "pipe");
	signal(SIGPIPE, SIG_IGN);
	pid = fork_flushed();
	if (pid == 0)
		_exit(0);
	close(fds[0]);
	check(waitpid(pid, &status, 0) == pid, "second child");
	errno = 0;
	ssize_t w = write(fds[1], "x", 1);
	printf("write with no reader: %zd %s\n", w, errno_name(errno));
	printf("pipe ok\n");
}

static volatile sig_atomic_t chld_count;

static void on_chld(int sig)
{
	(void)sig;
	chld_count++;
}

static void signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_chld;
	sigemptyset(&sa.sa_mask);
	check(sigaction(SIGCHLD, &sa, NULL) == 0, "sigaction");
	int pipefd[2];
	check(pipe(pipefd) == 0, "pipe");
	pid_t sleeper = fork_flushed();
	if (sleeper == 0) {
		close(pipefd[1]);
		char c;
		/* Blocks until killed. */
		while (read(pipefd[0], &c, 1) != 0) {
		}
		_exit(3);
	}
	close(pipefd[0]);
	check(kill(sleeper, SIGTERM) == 0, "kill");
	int status = 0;
	while (waitpid(sleeper, &status, 0) < 0 && errno == EINTR) {
	}
	printf("killed child: signaled=%d signal=%d\n", WIFSIGNALED(status), WTERMSIG(status));
	pid_t faulty = fork_flushed();
	if (faulty == 0) {
		volatile int *null = (volatile int *)16;
		*null = 1;
		_exit(4);
	}
	while (waitpid(faulty, &status, 0) < 0 && errno == EINTR) {
	}
	printf("faulting child: signaled=%d signal=%d\n", WIFSIGNALED(status), WTERMSIG(status));
	printf("SIGCHLD handled %s\n", chld_count >= 1 ? "at least once" : "never");
	errno = 0;
	int killed = kill(faulty, 0);
	printf("kill of a reaped child: %d %s\n", killed, errno_name(errno));
	close(pipefd[1]);
	printf("signals between processes ok\n");
}

static void groups(void)
{
	pid_t pid = fork_flushed();
	if (pid == 0) {
		/* A new session: the child leads it and its own group. */
		pid_t sid = setsid();
		int ok = sid == getpid() && getsid(0) == getpid() && getpgid(0) == getpid();
		_exit(ok ? 0 : 1);
	}
	int status = 0;
	check(waitpid(pid, &status, 0) == pid, "waitpid");
	printf("setsid in a child: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "FAILED");
	pid = fork_flushed();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	check(setpgid(pid, pid) == 0, "setpgid");
	printf("child's group is its own: %s\n", getpgid(pid) == pid ? "yes" : "no");
	check(kill(-pid, SIGKILL) == 0, "kill the group");
	check(waitpid(-pid, &status, 0) == pid, "wait for the group");
	printf("group killed: signal=%d\n", WTERMSIG(status));
	printf("groups ok\n");
}

static void isolation(void)
{
	/* Memory the parent maps after the fork is not the child's: the child gets its address through a pipe
	 * and faults reading it; a store the child makes is not seen by the parent. */
	int fds[2];
	check(pipe(fds) == 0, "pipe");
	static volatile int shared_before = 1;
	pid_t pid = fork_flushed();
	if (pid == 0) {
		shared_before = 2;
		char *secret;
		if (read(fds[0], &secret, sizeof secret) != sizeof secret)
			_exit(3);
		volatile char c = *secret;
		(void)c;
		_exit(4);
	}
	char *secret = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(secret != MAP_FAILED, "mmap after the fork");
	strcpy(secret, "the parent's secret");
	check(write(fds[1], &secret, sizeof secret) == sizeof secret, "send the address");
	int status = 0;
	check(waitpid(pid, &status, 0) == pid, "waitpid");
	printf("child reading the parent's new page: signaled=%d signal=%d\n", WIFSIGNALED(status), WTERMSIG(status));
	printf("parent's copy unchanged by the child: %s\n", shared_before == 1 ? "yes" : "no");
	printf("isolation ok\n");
}

static void fork_bomb(void)
{
	/* Never run natively: every child exits at once and stays a zombie, so the process table fills. */
	int made = 0;
	fflush(stdout);
	for (;;) {
		pid_t pid = fork();
		if (pid < 0)
			break;
		if (pid == 0)
			_exit(0);
		made++;
		if (made > 100000)
			break;
	}
	printf("fork failed with %s after %d children\n", errno_name(errno), made);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "";
	if (strcmp(name, "fork_wait") == 0)
		fork_wait();
	else if (strcmp(name, "pipe") == 0)
		pipe_between();
	else if (strcmp(name, "signals") == 0)
		signals();
	else if (strcmp(name, "groups") == 0)
		groups();
	else if (strcmp(name, "isolation") == 0)
		isolation();
	else if (strcmp(name, "fork_bomb") == 0)
		fork_bomb();
	else {
		printf("unknown scenario %s\n", name);
		return 2;
	}
	return guest_exit_status();
}
