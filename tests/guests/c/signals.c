/* Signals delivered to handlers, one scenario per argument (`signals NAME`): faults caught and fixed or
 * longjmp'd out of, the alternate stack, masks and queues, timers, interrupted and restarted calls,
 * SIGPIPE, one-shot handlers and the statuses of abort() and SIGTERM. Prints the same natively and in the
 * VM: relations (same address, on the alternate stack), never addresses. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include "guest.h"

static sigjmp_buf jump;
static volatile sig_atomic_t count;
static volatile int last_signal, last_code, last_value;
static volatile uintptr_t last_addr, handler_sp;
static char *page;
static char altstack[64 * 1024];

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	check(sigaction(sig, &sa, NULL) == 0, "sigaction");
}

static void use_altstack(void)
{
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
	check(sigaltstack(&ss, NULL) == 0, "sigaltstack");
}

static int on_altstack(uintptr_t sp)
{
	return sp > (uintptr_t)altstack && sp <= (uintptr_t)altstack + sizeof altstack;
}

static void record(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	char local;
	handler_sp = (uintptr_t)&local;
	last_signal = sig;
	last_code = info->si_code;
	last_addr = (uintptr_t)info->si_addr;
	last_value = info->si_value.sival_int;
	count++;
}

/* A write to a read-only page: the handler makes it writable and returns; the write is retried. */
static void fix_protection(int sig, siginfo_t *info, void *uc)
{
	record(sig, info, uc);
	mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

static void jump_out(int sig, siginfo_t *info, void *uc)
{
	record(sig, info, uc);
	siglongjmp(jump, 1);
}

extern char fault_insn[];

/* The faulting RIP in the ucontext, and a changed RIP to return to: past the 3-byte store. */
static void skip_fault(int sig, siginfo_t *info, void *ucv)
{
	record(sig, info, ucv);
	ucontext_t *uc = ucv;
	check(uc->uc_mcontext.gregs[REG_RIP] == (greg_t)fault_insn, "ucontext RIP is the faulting instruction");
	uc->uc_mcontext.gregs[REG_RIP] += 3;
}

#pragma GCC diagnostic ignored "-Winfinite-recursion"
static int depth(int n)
{
	volatile char pad[256];
	pad[0] = (char)n;
	return depth(n + 1) + pad[0];
}

/* A handler that writes into the pipe the main program reads (restart_read). */
static int restart_writer = -1;
static void on_alarm(int sig)
{
	(void)sig;
	if (restart_writer >= 0)
		write(restart_writer, "r", 1);
}

static void scenario(const char *name)
{
	if (strcmp(name, "segv_fix") == 0) {
		page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		install(SIGSEGV, fix_protection, 0);
		page[10] = 42;
		check(count == 1 && page[10] == 42, "write retried after the handler fixed the protection");
		check(last_code == SEGV_ACCERR && last_addr == (uintptr_t)(page + 10), "SEGV_ACCERR at the address");
	} else if (strcmp(name, "null_longjmp") == 0) {
		install(SIGSEGV, jump_out, 0);
		if (sigsetjmp(jump, 1) == 0) {
			volatile int *null = NULL;
			(void)*null;
			check(0, "NULL read returned");
		}
		check(last_signal == SIGSEGV && last_code == SEGV_MAPERR && last_addr == 0, "NULL read: SEGV_MAPERR at 0");
	} else if (strcmp(name, "fpe") == 0) {
		install(SIGFPE, jump_out, 0);
		volatile int zero = 0, x = 7;
		if (sigsetjmp(jump, 1) == 0)
			x = x / zero;
		check(last_signal == SIGFPE && last_code == FPE_INTDIV, "division by zero: SIGFPE FPE_INTDIV");
	} else if (strcmp(name, "ill") == 0) {
		install(SIGILL, jump_out, 0);
		if (sigsetjmp(jump, 1) == 0)
			__asm__ volatile("ud2");
		check(last_signal == SIGILL && last_code == ILL_ILLOPN, "ud2: SIGILL ILL_ILLOPN");
	} else if (strcmp(name, "altstack_faults") == 0) {
		use_altstack();
		int signals[] = { SIGSEGV, SIGFPE, SIGILL };
		for (int i = 0; i < 3; i++)
			install(signals[i], jump_out, SA_ONSTACK);
		volatile int zero = 0, x = 1;
		for (int i = 0; i < 3; i++) {
			handler_sp = 0;
			if (sigsetjmp(jump, 1) == 0) {
				if (i == 0)
					(void)*(volatile int *)NULL;
				else if (i == 1)
					x = x / zero;
				else
					__asm__ volatile("ud2");
			}
			check(on_altstack(handler_sp), "fault handled on the alternate stack");
		}
	} else if (strcmp(name, "recursion") == 0) {
		use_altstack();
		install(SIGSEGV, jump_out, SA_ONSTACK);
		if (sigsetjmp(jump, 1) == 0)
			depth(0);
		check(last_signal == SIGSEGV && on_altstack(handler_sp), "stack overflow caught on the alternate stack");
	} else if (strcmp(name, "ucontext") == 0) {
		install(SIGSEGV, skip_fault, 0);
		__asm__ volatile(".globl fault_insn\nfault_insn: movb $1, (%0)" : : "r"((char *)0) : "memory");
		check(count == 1, "execution went on after the skipped store");
	} else if (strcmp(name, "raise_kill") == 0) {
		install(SIGUSR1, record, 0);
		raise(SIGUSR1);
		check(count == 1 && last_code == SI_TKILL, "raise: delivered, SI_TKILL");
		kill(getpid(), SIGUSR1);
		check(count == 2 && last_code == SI_USER, "kill to self: delivered, SI_USER");
	} else if (strcmp(name, "blocked_pending") == 0) {
		install(SIGUSR1, record, 0);
		sigset_t set, pending;
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigprocmask(SIG_BLOCK, &set, NULL);
		raise(SIGUSR1);
		raise(SIGUSR1);
		sigpending(&pending);
		check(count == 0 && sigismember(&pending, SIGUSR1), "blocked: pending, not delivered");
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		check(count == 1, "unblocked: delivered once (standard signals merge)");
	} else if (strcmp(name, "sigqueue") == 0) {
		install(SIGRTMIN + 1, record, 0);
		union sigval value = { .sival_int = 4242 };
		sigqueue(getpid(), SIGRTMIN + 1, value);
		check(count == 1 && last_code == SI_QUEUE && last_value == 4242, "sigqueue: value and SI_QUEUE");
	} else if (strcmp(name, "rt_order") == 0) {
		install(SIGRTMIN + 2, record, 0);
		install(SIGRTMIN + 3, record, 0);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGRTMIN + 2);
		sigaddset(&set, SIGRTMIN + 3);
		sigprocmask(SIG_BLOCK, &set, NULL);
		for (int i = 1; i <= 3; i++) {
			sigqueue(getpid(), SIGRTMIN + 3, (union sigval){ .sival_int = 30 + i });
			sigqueue(getpid(), SIGRTMIN + 2, (union sigval){ .sival_int = 20 + i });
		}
		int order[6], n = 0;
		siginfo_t info;
		while (n < 6 && sigwaitinfo(&set, &info) > 0)
			order[n++] = info.si_value.sival_int;
		printf("real-time order:");
		for (int i = 0; i < n; i++)
			printf(" %d", order[i]);
		printf("\n");
	} else if (strcmp(name, "itimer_sigsuspend") == 0) {
		install(SIGALRM, record, 0);
		sigset_t block, old;
		sigemptyset(&block);
		sigaddset(&block, SIGALRM);
		sigprocmask(SIG_BLOCK, &block, &old);
		struct itimerval it = { .it_interval = { 0, 20000 }, .it_value = { 0, 20000 } };
		setitimer(ITIMER_REAL, &it, NULL);
		for (int i = 0; i < 3; i++)
			sigsuspend(&old);
		struct itimerval off = { 0 };
		setitimer(ITIMER_REAL, &off, NULL);
		check(count == 3 && last_signal == SIGALRM, "setitimer: three SIGALRMs through sigsuspend");
	} else if (strcmp(name, "fast_itimer") == 0) {
		/* A 50 us interval timer with a handler while the app computes: the app must keep running
		 * however long each interrupt takes to deliver (an emulating hypervisor). */
		install(SIGALRM, record, 0);
		struct itimerval it = { .it_interval = { 0, 50 }, .it_value = { 0, 50 } };
		setitimer(ITIMER_REAL, &it, NULL);
		volatile unsigned long work = 0;
		struct timespec start, now;
		clock_gettime(CLOCK_MONOTONIC, &start);
		do {
			for (int i = 0; i < 100000; i++)
				work++;
			clock_gettime(CLOCK_MONOTONIC, &now);
		} while (count < 20 || (now.tv_sec - start.tv_sec) * 1000000000L + now.tv_nsec - start.tv_nsec < 200000000L);
		struct itimerval off = { 0 };
		setitimer(ITIMER_REAL, &off, NULL);
		check(count >= 20 && work >= 100000, "a 50 us interval timer: handlers ran and the app went on");
	} else if (strcmp(name, "alarm_nanosleep") == 0) {
		install(SIGALRM, record, 0);
		alarm(1);
		struct timespec req = { 5, 0 }, rem = { 0, 0 };
		int r = nanosleep(&req, &rem);
		check(r == -1 && errno == EINTR && count == 1, "alarm interrupts nanosleep: EINTR");
		check(rem.tv_sec >= 3 && rem.tv_sec <= 4, "time left reported");
	} else if (strcmp(name, "restart_read") == 0) {
		int fds[2];
		check(pipe(fds) == 0, "pipe");
		restart_writer = fds[1];
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_alarm;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGALRM, &sa, NULL);
		alarm(1);
		char byte = 0;
		ssize_t n = read(fds[0], &byte, 1);
		check(n == 1 && byte == 'r', "SA_RESTART: the read restarted and got the handler's byte");
	} else if (strcmp(name, "sigpipe_ignored") == 0) {
		int fds[2];
		check(pipe(fds) == 0, "pipe");
		close(fds[0]);
		signal(SIGPIPE, SIG_IGN);
		check(write(fds[1], "x", 1) == -1 && errno == EPIPE, "SIGPIPE ignored: EPIPE");
	} else if (strcmp(name, "resethand") == 0) {
		install(SIGUSR2, record, SA_RESETHAND);
		raise(SIGUSR2);
		struct sigaction now;
		sigaction(SIGUSR2, NULL, &now);
		check(count == 1 && now.sa_handler == SIG_DFL, "SA_RESETHAND: handler ran once, then SIG_DFL");
		fflush(stdout);
		raise(SIGUSR2); /* killed: status 128 + 12 */
	} else if (strcmp(name, "abort") == 0) {
		fflush(stdout);
		abort();
	} else if (strcmp(name, "sigterm") == 0) {
		fflush(stdout);
		kill(getpid(), SIGTERM);
		pause();
	} else {
		printf("unknown scenario %s\n", name);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		printf("usage: signals SCENARIO\n");
		return 2;
	}
	scenario(argv[1]);
	return guest_exit_status();
}
