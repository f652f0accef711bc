/* AF_UNIX socket pairs, eventfd and epoll between processes, one scenario per argument (`sockets NAME`):
 * a stream echo between parent and child (`stream`), datagram and seqpacket message boundaries and
 * truncation (`messages`), shutdown and EPIPE (`shutdown`), and a parent that waits in epoll on a socket
 * and an eventfd its child writes (`epoll`). Only the parent prints; output is flushed before forks. */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "guest.h"

static void reap(pid_t pid)
{
	int status = 0;
	waitpid(pid, &status, 0);
	printf("child status: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

static void stream(void)
{
	int sv[2];
	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	pid_t pid = fork_flushed();
	if (pid == 0) {
		close(sv[0]);
		char buf[256];
		ssize_t n;
		/* Echo everything back in upper case until EOF. */
		while ((n = read(sv[1], buf, sizeof buf)) > 0) {
			for (ssize_t i = 0; i < n; i++)
				if (buf[i] >= 'a' && buf[i] <= 'z')
					buf[i] -= 32;
			if (write(sv[1], buf, (size_t)n) != n)
				_exit(2);
		}
		_exit(n == 0 ? 0 : 3);
	}
	close(sv[1]);
	const char *words[] = { "hello", "socket", "pair" };
	for (int i = 0; i < 3; i++) {
		char buf[64] = "";
		check(send(sv[0], words[i], strlen(words[i]), 0) == (ssize_t)strlen(words[i]), "send");
		ssize_t n = recv(sv[0], buf, sizeof buf - 1, 0);
		printf("echo: %.*s\n", (int)(n > 0 ? n : 0), buf);
	}
	shutdown(sv[0], SHUT_WR);
	char c;
	printf("after shutdown: read=%zd\n", read(sv[0], &c, 1));
	reap(pid);
}

static void messages(void)
{
	int types[] = { SOCK_DGRAM, SOCK_SEQPACKET };
	for (int t = 0; t < 2; t++) {
		int sv[2];
		check(socketpair(AF_UNIX, types[t], 0, sv) == 0, "socketpair");
		check(write(sv[0], "first message", 13) == 13, "write 1");
		check(write(sv[0], "second", 6) == 6, "write 2");
		struct iovec out[2] = { { "gath", 4 }, { "ered", 4 } };
		check(writev(sv[0], out, 2) == 8, "writev one message");
		char buf[64];
		ssize_t n = recv(sv[1], buf, 5, 0);
		printf("%s: truncated read %zd [%.*s]\n", t ? "seqpacket" : "dgram", n, (int)n, buf);
		n = read(sv[1], buf, sizeof buf);
		printf("next message %zd [%.*s]\n", n, (int)n, buf);
		struct msghdr msg;
		memset(&msg, 0, sizeof msg);
		struct iovec in[2] = { { buf, 3 }, { buf + 3, 10 } };
		msg.msg_iov = in;
		msg.msg_iovlen = 2;
		n = recvmsg(sv[1], &msg, 0);
		printf("recvmsg %zd [%.*s] flags_trunc=%d\n", n, (int)n, buf, (msg.msg_flags & MSG_TRUNC) != 0);
		n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
		printf("empty: %zd %s\n", n, errno_name(errno));
		close(sv[0]);
		close(sv[1]);
	}
}

static void shutdown_and_epipe(void)
{
	int sv[2];
	check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	close(sv[1]);
	errno = 0;
	ssize_t n = send(sv[0], "x", 1, MSG_NOSIGNAL);
	printf("send to a closed peer: %zd %s\n", n, errno_name(errno));
	signal(SIGPIPE, SIG_IGN);
	errno = 0;
	n = write(sv[0], "x", 1);
	printf("write to a closed peer: %zd %s\n", n, errno_name(errno));
	char c;
	printf("read from a closed peer: %zd\n", read(sv[0], &c, 1));
	errno = 0;
	n = send(1, "x", 1, 0);
	printf("send on a non-socket: %zd %s\n", n, errno_name(errno));
}

static void epoll_across(void)
{
	int sv[2];
	check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "socketpair");
	int ev = eventfd(0, EFD_SEMAPHORE);
	check(ev >= 0, "eventfd");
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event e = { .events = EPOLLIN, .data.u32 = 1 };
	check(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &e) == 0, "epoll_ctl socket");
	e.data.u32 = 2;
	check(epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) == 0, "epoll_ctl eventfd");
	pid_t pid = fork_flushed();
	if (pid == 0) {
		uint64_t two = 2;
		if (write(ev, &two, sizeof two) != sizeof two)
			_exit(2);
		if (write(sv[1], "ping", 4) != 4)
			_exit(3);
		_exit(0);
	}
	int seen_socket = 0, semaphore_reads = 0;
	while (!(seen_socket && semaphore_reads == 2)) {
		struct epoll_event got[4];
		int n = epoll_wait(ep, got, 4, 5000);
		if (n <= 0) {
			printf("epoll_wait: %d FAILED\n", n);
			break;
		}
		for (int i = 0; i < n; i++) {
			if (got[i].data.u32 == 1) {
				char buf[8];
				ssize_t r = read(sv[0], buf, sizeof buf);
				seen_socket = r == 4 && memcmp(buf, "ping", 4) == 0;
			} else {
				uint64_t one;
				if (read(ev, &one, sizeof one) == sizeof one && one == 1)
					semaphore_reads++;
			}
		}
	}
	printf("epoll saw the socket: %s, semaphore reads: %d\n", seen_socket ? "yes" : "no", semaphore_reads);
	reap(pid);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "";
	if (strcmp(name, "stream") == 0)
		stream();
	else if (strcmp(name, "messages") == 0)
		messages();
	else if (strcmp(name, "shutdown") == 0)
		shutdown_and_epipe();
	else if (strcmp(name, "epoll") == 0)
		epoll_across();
	else {
		printf("unknown scenario %s\n", name);
		return 2;
	}
	return guest_exit_status();
}
