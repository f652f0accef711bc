/* Starting programs, one scenario per argument (`spawn NAME`): fork + execve of this program again through
 * /proc/self/exe (`exec`), posix_spawn (`posix_spawn`), FD_CLOEXEC across execve (`cloexec`), popen and
 * system() through /bin/sh (`shell`), and the errno of an execve that must fail (`exec_errno PATH [ARG...]`, ARGs passed on). The
 * started copies run the scenarios `child ARG` and `check_fd FD`. Only the first process prints results;
 * output is flushed before every fork. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "guest.h"

extern char **environ;

static int wait_status(pid_t pid)
{
	int status = 0;
	check(waitpid(pid, &status, 0) == pid, "waitpid");
	return status;
}

static void exec_self(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = { "spawn", "child", "from execve", NULL };
		execv("/proc/self/exe", argv);
		_exit(99);
	}
	int status = wait_status(pid);
	printf("exec'd child: exited=%d status=%d\n", WIFEXITED(status), WEXITSTATUS(status));
}

static void spawn(void)
{
	pid_t pid;
	char *argv[] = { "spawn", "child", "from posix_spawn", NULL };
	fflush(stdout);
	int err = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
	printf("posix_spawn: %s\n", errno_name(err));
	int status = wait_status(pid);
	printf("spawned child: exited=%d status=%d\n", WIFEXITED(status), WEXITSTATUS(status));
}

static void cloexec(void)
{
	int keep = open("/proc/self/exe", O_RDONLY);
	int drop = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	check(keep >= 0 && drop >= 0, "open");
	char keep_arg[16], drop_arg[16];
	snprintf(keep_arg, sizeof keep_arg, "%d", keep);
	snprintf(drop_arg, sizeof drop_arg, "%d", drop);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = { "spawn", "check_fd", keep_arg, drop_arg, NULL };
		execv("/proc/self/exe", argv);
		_exit(99);
	}
	int status = wait_status(pid);
	printf("after execve: the plain fd is %s, the O_CLOEXEC fd is %s\n", WEXITSTATUS(status) & 1 ? "open" : "closed",
	       WEXITSTATUS(status) & 2 ? "open" : "closed");
}

static void shell(void)
{
	fflush(stdout);
	FILE *pipe = popen("echo hello through popen; exit 4", "r");
	check(pipe != NULL, "popen");
	char line[128] = "";
	if (fgets(line, sizeof line, pipe) == NULL)
		strcpy(line, "(nothing)\n");
	int status = pclose(pipe);
	printf("popen read: %s", line);
	printf("pclose: exited=%d status=%d\n", WIFEXITED(status), WEXITSTATUS(status));
	fflush(stdout);
	status = system("exit 3");
	printf("system: exited=%d status=%d\n", WIFEXITED(status), WEXITSTATUS(status));
	fflush(stdout);
	status = system("echo piped | tr a-z A-Z");
	printf("system pipeline status=%d\n", WEXITSTATUS(status));
}

static void exec_errno(char **args)
{
	execv(args[0], args);
	printf("execve %s: %s\n", args[0], errno_name(errno));
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "";
	if (strcmp(name, "child") == 0) {
		/* A started copy: says who it is through its status only (it must not print into the parent's output
		 * order), and checks its arguments. */
		return argc == 3 && strncmp(argv[2], "from ", 5) == 0 ? 7 : 1;
	}
	if (strcmp(name, "check_fd") == 0 && argc == 4) {
		int keep = fcntl(atoi(argv[2]), F_GETFD) >= 0;
		int drop = fcntl(atoi(argv[3]), F_GETFD) >= 0;
		return keep | drop << 1;
	}
	if (strcmp(name, "exec") == 0)
		exec_self();
	else if (strcmp(name, "posix_spawn") == 0)
		spawn();
	else if (strcmp(name, "cloexec") == 0)
		cloexec();
	else if (strcmp(name, "shell") == 0)
		shell();
	else if (strcmp(name, "exec_errno") == 0 && argc >= 3)
		exec_errno(argv + 2);
	else {
		printf("unknown scenario %s\n", name);
		return 2;
	}
	return guest_exit_status();
}
