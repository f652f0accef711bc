/* POSIX threads, one scenario per argument (`threads NAME`): mutexes (normal, recursive,
 * priority-inheritance), join values, thread-local storage and thread ids, condition variables,
 * pthread_once, detached threads with semaphores, exit() from a worker, preemption of a spinning thread,
 * timed waits, per-thread signal delivery, and (`deadlock`) a program that never ends.
 * Only the main thread prints, and only counts, sums and relations: never addresses, times or tids. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "guest.h"

static pid_t tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	int err = pthread_create(thread, NULL, fn, arg);
	if (err != 0) {
		printf("pthread_create: %s\n", errno_name(err));
		check(0, "pthread_create");
	}
}

static void *join(pthread_t thread)
{
	void *value = NULL;
	int err = pthread_join(thread, &value);
	if (err != 0) {
		printf("pthread_join: %s\n", errno_name(err));
		check(0, "pthread_join");
	}
	return value;
}

static long long monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* `clock` now plus `ms` milliseconds, as an absolute timespec. Waits until a CLOCK_REALTIME deadline are
 * checked against CLOCK_MONOTONIC with 10 ms to spare: the two clocks need not advance at the same rate. */
static struct timespec deadline(clockid_t clock, long ms)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	ts.tv_nsec += ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	return ts;
}

/* mutex: 4 threads x 200000 increments under one mutex. */
#define MUTEX_THREADS 4
#define MUTEX_ROUNDS 200000
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *increment(void *arg)
{
	pthread_mutex_t *lock = arg;
	for (int i = 0; i < MUTEX_ROUNDS; i++) {
		pthread_mutex_lock(lock);
		counter++;
		pthread_mutex_unlock(lock);
	}
	return NULL;
}

/* join: even threads return their value, odd ones pass it to pthread_exit from a nested call. */
static void __attribute__((noinline)) exit_with(intptr_t value)
{
	pthread_exit((void *)value);
}

static void *joined_value(void *arg)
{
	intptr_t n = (intptr_t)arg;
	intptr_t value = n * n + 1;
	if (n % 2)
		exit_with(value);
	return (void *)value;
}

/* tls: every thread sets its own __thread values and must keep them across yields. */
#define TLS_THREADS 4
static __thread int tls_value;
static __thread int tls_initialised = 7;
static __thread long tls_zeroed[16];
static pid_t worker_tids[TLS_THREADS];
static pid_t worker_pids[TLS_THREADS];
static pthread_barrier_t tls_barrier;

static void *tls_worker(void *arg)
{
	int n = (int)(intptr_t)arg;
	int fresh = tls_value == 0 && tls_initialised == 7 && tls_zeroed[15] == 0;
	tls_value = 100 + n;
	tls_initialised = 70 + n;
	tls_zeroed[15] = n;
	errno = 1000 + n;
	worker_tids[n] = tid();
	worker_pids[n] = getpid();
	/* All workers are alive at once: their values must not mix. */
	pthread_barrier_wait(&tls_barrier);
	int kept = 1;
	for (int i = 0; i < 100; i++) {
		sched_yield();
		kept &= tls_value == 100 + n && tls_initialised == 70 + n && tls_zeroed[15] == n && errno == 1000 + n;
	}
	return (void *)(intptr_t)(fresh && kept ? tls_value : -1);
}

/* condvar: 2 producers and 2 consumers over an 8-slot queue (2,000 items: each hand-off is a few futex
 * calls, which cost milliseconds where the hypervisor emulates kernel code). */
#define QUEUE_SLOTS 8
#define PRODUCERS 2
#define CONSUMERS 2
#define ITEMS_EACH 1000
static struct {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	unsigned long items[QUEUE_SLOTS];
	int head, count, consumed;
	unsigned long sum[CONSUMERS], squares[CONSUMERS];
	int taken[CONSUMERS];
} queue = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.not_empty = PTHREAD_COND_INITIALIZER,
	.not_full = PTHREAD_COND_INITIALIZER,
};

static void *producer(void *arg)
{
	unsigned long base = (unsigned long)(intptr_t)arg * 1000000;
	for (unsigned long i = 1; i <= ITEMS_EACH; i++) {
		pthread_mutex_lock(&queue.lock);
		while (queue.count == QUEUE_SLOTS)
			pthread_cond_wait(&queue.not_full, &queue.lock);
		queue.items[(queue.head + queue.count) % QUEUE_SLOTS] = base + i;
		queue.count++;
		pthread_cond_signal(&queue.not_empty);
		pthread_mutex_unlock(&queue.lock);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	int n = (int)(intptr_t)arg;
	for (;;) {
		pthread_mutex_lock(&queue.lock);
		while (queue.count == 0 && queue.consumed < PRODUCERS * ITEMS_EACH)
			pthread_cond_wait(&queue.not_empty, &queue.lock);
		if (queue.count == 0) {
			pthread_mutex_unlock(&queue.lock);
			return NULL;
		}
		unsigned long item = queue.items[queue.head];
		queue.head = (queue.head + 1) % QUEUE_SLOTS;
		queue.count--;
		queue.consumed++;
		queue.sum[n] += item;
		queue.squares[n] += item * item;
		queue.taken[n]++;
		if (queue.consumed == PRODUCERS * ITEMS_EACH)
			pthread_cond_broadcast(&queue.not_empty); /* wake the other consumer to finish */
		pthread_cond_signal(&queue.not_full);
		pthread_mutex_unlock(&queue.lock);
	}
}

/* once: 8 threads race to pthread_once; the others must wait until the (slow) init is done. */
#define ONCE_THREADS 8
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_runs, init_value;

static void init_once(void)
{
	__atomic_fetch_add(&init_runs, 1, __ATOMIC_SEQ_CST);
	sleep_ms(20);
	__atomic_store_n(&init_value, 42, __ATOMIC_RELEASE);
}

static void *call_once(void *arg)
{
	(void)arg;
	pthread_once(&once, init_once);
	return (void *)(intptr_t)__atomic_load_n(&init_value, __ATOMIC_ACQUIRE);
}

/* detached: 8 detached threads each store a result and post a semaphore. */
#define DETACHED_THREADS 8
static sem_t done;
static long results[DETACHED_THREADS];

static void *detached_worker(void *arg)
{
	int n = (int)(intptr_t)arg;
	long sum = 0;
	for (int i = 0; i <= 10000 * (n + 1); i++)
		sum += i;
	results[n] = sum;
	sem_post(&done);
	return NULL;
}

/* recursive: the main thread holds a recursive mutex several times over while workers contend. */
static pthread_mutex_t recursive;
static int recursive_holder_done;

static void *try_recursive(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)pthread_mutex_trylock(&recursive);
}

static void *lock_recursive(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&recursive);
	/* Only after the main thread released its last level. */
	int after = __atomic_load_n(&recursive_holder_done, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&recursive);
	pthread_mutex_unlock(&recursive);
	pthread_mutex_unlock(&recursive);
	return (void *)(intptr_t)after;
}

/* exit_from_worker: exit(5) from a worker while main waits in pthread_join. */
static void *exit_five(void *arg)
{
	(void)arg;
	sleep_ms(20);
	printf("worker calls exit(5)\n");
	fflush(stdout);
	exit(5);
}

/* spin: one thread spins on a flag only another thread sets. */
static int spinning, flag;
static uint64_t work_hash;

static void *spinner(void *arg)
{
	(void)arg;
	__atomic_store_n(&spinning, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&flag, __ATOMIC_ACQUIRE))
		; /* no system call: only a preempting scheduler lets the setter run on one CPU */
	return NULL;
}

static void *setter(void *arg)
{
	(void)arg;
	uint64_t hash = FNV1A_INIT;
	for (uint32_t i = 0; i < 1000000; i++)
		hash = fnv1a(hash, &i, sizeof i);
	work_hash = hash;
	__atomic_store_n(&flag, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* pi_mutex: 3 threads x 20000 increments under a priority-inheritance mutex. */
#define PI_THREADS 3
#define PI_ROUNDS 20000
static pthread_mutex_t pi_lock;

static void *pi_increment(void *arg)
{
	(void)arg;
	for (int i = 0; i < PI_ROUNDS; i++) {
		int err = pthread_mutex_lock(&pi_lock);
		if (err != 0)
			return (void *)(intptr_t)err;
		counter++;
		pthread_mutex_unlock(&pi_lock);
	}
	return NULL;
}

/* timedwait: pthread_mutex_timedlock of a mutex the main thread holds. */
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;

static void *timedlock_held(void *arg)
{
	(void)arg;
	long long before = monotonic_ns();
	struct timespec until = deadline(CLOCK_REALTIME, 50);
	int err = pthread_mutex_timedlock(&held, &until);
	long long waited = monotonic_ns() - before;
	if (err != ETIMEDOUT)
		return (void *)(intptr_t)-err;
	return (void *)(intptr_t)(waited >= 40000000LL ? 1 : 2);
}

/* signal_thread: which thread runs a handler. */
static volatile sig_atomic_t handled;
static volatile pid_t handler_tid;
static pthread_t handler_self;
static pid_t signal_worker_tid;
static sem_t ready, finish;

static void on_signal(int sig)
{
	(void)sig;
	handler_tid = tid();
	handler_self = pthread_self();
	handled = 1;
}

static void mask(int how, int sig)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(how, &set, NULL);
}

/* Waits with `sig` blocked except inside sigsuspend: no wake-up is lost. */
static void suspend_until_handled(int sig)
{
	sigset_t during;
	pthread_sigmask(SIG_BLOCK, NULL, &during);
	sigdelset(&during, sig);
	while (!handled)
		sigsuspend(&during);
}

static void *wait_for_usr1(void *arg)
{
	(void)arg;
	signal_worker_tid = tid();
	sem_post(&ready);
	suspend_until_handled(SIGUSR1); /* SIGUSR1 is blocked: inherited from main */
	return NULL;
}

static void *block_usr2(void *arg)
{
	(void)arg;
	mask(SIG_BLOCK, SIGUSR2);
	signal_worker_tid = tid();
	sem_post(&ready);
	while (sem_wait(&finish) != 0)
		;
	return NULL;
}

/* deadlock: a condition variable nobody signals. */
static pthread_mutex_t never_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static int never_set;

static void *wait_forever(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&never_lock);
	while (!never_set)
		pthread_cond_wait(&never, &never_lock);
	pthread_mutex_unlock(&never_lock);
	return NULL;
}

static void scenario(const char *name)
{
	if (strcmp(name, "mutex") == 0) {
		pthread_t threads[MUTEX_THREADS];
		for (int i = 0; i < MUTEX_THREADS; i++)
			start(&threads[i], increment, &counter_lock);
		for (int i = 0; i < MUTEX_THREADS; i++)
			join(threads[i]);
		printf("total=%ld\n", counter);
		check(counter == MUTEX_THREADS * MUTEX_ROUNDS, "mutex total");
	} else if (strcmp(name, "join") == 0) {
		pthread_t threads[6];
		for (int i = 0; i < 6; i++)
			start(&threads[i], joined_value, (void *)(intptr_t)i);
		long sum = 0;
		int each = 1;
		for (int i = 0; i < 6; i++) {
			intptr_t value = (intptr_t)join(threads[i]);
			each &= value == i * i + 1;
			sum += value;
		}
		printf("sum of joined values=%ld\n", sum);
		check(each && sum == 61, "join values");
	} else if (strcmp(name, "tls") == 0) {
		tls_value = 1000;
		pid_t main_tid = tid();
		pthread_barrier_init(&tls_barrier, NULL, TLS_THREADS);
		pthread_t threads[TLS_THREADS];
		for (int i = 0; i < TLS_THREADS; i++)
			start(&threads[i], tls_worker, (void *)(intptr_t)i);
		errno = 999; /* while the workers set theirs */
		intptr_t values[TLS_THREADS];
		for (int i = 0; i < TLS_THREADS; i++)
			values[i] = (intptr_t)join(threads[i]);
		int main_errno = errno;
		printf("worker tls values:");
		int kept = main_errno == 999;
		for (int i = 0; i < TLS_THREADS; i++) {
			kept &= values[i] == 100 + i;
			printf(" %d", (int)values[i]);
		}
		printf("\n");
		pthread_barrier_destroy(&tls_barrier);
		int distinct = main_tid == getpid();
		for (int i = 0; i < TLS_THREADS; i++) {
			distinct &= worker_tids[i] > 0 && worker_tids[i] != main_tid && worker_pids[i] == getpid();
			for (int j = 0; j < i; j++)
				distinct &= worker_tids[i] != worker_tids[j];
		}
		printf("main tls value=%d initialised=%d\n", tls_value, tls_initialised);
		check(kept && tls_value == 1000 && tls_initialised == 7 && distinct, "tls and tids");
	} else if (strcmp(name, "condvar") == 0) {
		pthread_t producers[PRODUCERS], consumers[CONSUMERS];
		for (int i = 0; i < CONSUMERS; i++)
			start(&consumers[i], consumer, (void *)(intptr_t)i);
		for (int i = 0; i < PRODUCERS; i++)
			start(&producers[i], producer, (void *)(intptr_t)(i + 1));
		for (int i = 0; i < PRODUCERS; i++)
			join(producers[i]);
		for (int i = 0; i < CONSUMERS; i++)
			join(consumers[i]);
		unsigned long sum = 0, squares = 0;
		int taken = 0;
		for (int i = 0; i < CONSUMERS; i++) {
			sum += queue.sum[i];
			squares += queue.squares[i];
			taken += queue.taken[i];
		}
		unsigned long expected_sum = 0, expected_squares = 0;
		for (unsigned long p = 1; p <= PRODUCERS; p++)
			for (unsigned long i = 1; i <= ITEMS_EACH; i++) {
				expected_sum += p * 1000000 + i;
				expected_squares += (p * 1000000 + i) * (p * 1000000 + i);
			}
		printf("items=%d sum=%lu squares=%lu\n", taken, sum, squares);
		check(taken == PRODUCERS * ITEMS_EACH && sum == expected_sum && squares == expected_squares
			      && queue.count == 0,
		      "condvar producer/consumer");
	} else if (strcmp(name, "once") == 0) {
		pthread_t threads[ONCE_THREADS];
		for (int i = 0; i < ONCE_THREADS; i++)
			start(&threads[i], call_once, NULL);
		int all_saw_init = 1;
		for (int i = 0; i < ONCE_THREADS; i++)
			all_saw_init &= (intptr_t)join(threads[i]) == 42;
		pthread_once(&once, init_once);
		printf("init ran %d time(s)\n", init_runs);
		check(init_runs == 1 && all_saw_init, "pthread_once");
	} else if (strcmp(name, "detached") == 0) {
		sem_init(&done, 0, 0);
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		int created = 0;
		for (int i = 0; i < DETACHED_THREADS; i++) {
			pthread_t thread;
			if (pthread_create(&thread, &attr, detached_worker, (void *)(intptr_t)i) == 0)
				created++;
		}
		pthread_attr_destroy(&attr);
		for (int i = 0; i < created; i++)
			while (sem_wait(&done) != 0)
				;
		long sum = 0, expected = 0;
		for (int i = 0; i < DETACHED_THREADS; i++) {
			long n = 10000L * (i + 1);
			sum += results[i];
			expected += n * (n + 1) / 2;
		}
		int value = -1;
		sem_getvalue(&done, &value);
		printf("detached threads=%d sum=%ld semaphore=%d\n", created, sum, value);
		check(created == DETACHED_THREADS && sum == expected && value == 0, "detached with semaphores");
	} else if (strcmp(name, "recursive") == 0) {
		pthread_mutexattr_t attr;
		pthread_mutexattr_init(&attr);
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&recursive, &attr);
		pthread_mutexattr_destroy(&attr);
		int ok = 1;
		for (int i = 0; i < 3; i++)
			ok &= pthread_mutex_lock(&recursive) == 0;
		ok &= pthread_mutex_trylock(&recursive) == 0; /* held 4 times */
		pthread_t thread;
		start(&thread, try_recursive, NULL);
		int busy = (intptr_t)join(thread);
		printf("trylock from another thread while held 4 times: %s\n", busy == EBUSY ? "EBUSY" : errno_name(busy));
		pthread_t contender;
		start(&contender, lock_recursive, NULL);
		for (int i = 0; i < 3; i++)
			ok &= pthread_mutex_unlock(&recursive) == 0;
		start(&thread, try_recursive, NULL);
		int still_busy = (intptr_t)join(thread);
		printf("trylock from another thread while held once: %s\n",
		       still_busy == EBUSY ? "EBUSY" : errno_name(still_busy));
		sleep_ms(20); /* the contender blocks meanwhile */
		__atomic_store_n(&recursive_holder_done, 1, __ATOMIC_RELEASE);
		ok &= pthread_mutex_unlock(&recursive) == 0;
		int after = (intptr_t)join(contender);
		printf("contender got the mutex after the last unlock: %s\n", after == 1 ? "yes" : "no");
		ok &= pthread_mutex_trylock(&recursive) == 0 && pthread_mutex_unlock(&recursive) == 0;
		check(ok && busy == EBUSY && still_busy == EBUSY && after == 1, "recursive mutex");
	} else if (strcmp(name, "exit_from_worker") == 0) {
		printf("main joins the worker\n");
		fflush(stdout);
		pthread_t thread;
		start(&thread, exit_five, NULL);
		join(thread);
		printf("join returned\n");
	} else if (strcmp(name, "spin") == 0) {
		pthread_t spin_thread, set_thread;
		start(&spin_thread, spinner, NULL);
		while (!__atomic_load_n(&spinning, __ATOMIC_ACQUIRE))
			sched_yield();
		start(&set_thread, setter, NULL);
		join(spin_thread);
		join(set_thread);
		printf("work hash=%016llx\n", (unsigned long long)work_hash);
		check(flag == 1, "preemption");
	} else if (strcmp(name, "pi_mutex") == 0) {
		pthread_mutexattr_t attr;
		pthread_mutexattr_init(&attr);
		int err = pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
		printf("setprotocol PTHREAD_PRIO_INHERIT: %s\n", errno_name(err));
		/* glibc probes FUTEX_UNLOCK_PI here: a kernel without PI futexes (ENOSYS) makes this ENOTSUP. */
		err = pthread_mutex_init(&pi_lock, &attr);
		printf("pthread_mutex_init with PTHREAD_PRIO_INHERIT: %s\n", err == ENOTSUP ? "ENOTSUP" : errno_name(err));
		pthread_mutexattr_destroy(&attr);
		pthread_t threads[PI_THREADS];
		for (int i = 0; i < PI_THREADS; i++)
			start(&threads[i], pi_increment, NULL);
		int failed = 0;
		for (int i = 0; i < PI_THREADS; i++)
			failed |= (intptr_t)join(threads[i]) != 0;
		printf("total=%ld\n", counter);
		check(!failed && counter == PI_THREADS * PI_ROUNDS, "pi mutex");
	} else if (strcmp(name, "timedwait") == 0) {
		pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
		pthread_cond_t realtime = PTHREAD_COND_INITIALIZER, monotonic;
		pthread_condattr_t attr;
		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&monotonic, &attr);
		pthread_condattr_destroy(&attr);

		pthread_mutex_lock(&lock);
		long long before = monotonic_ns();
		struct timespec until = deadline(CLOCK_REALTIME, 50);
		int err = pthread_cond_timedwait(&realtime, &lock, &until);
		long long waited = monotonic_ns() - before;
		printf("cond_timedwait CLOCK_REALTIME: %s\n", err == ETIMEDOUT ? "ETIMEDOUT" : errno_name(err));
		int ok = err == ETIMEDOUT && waited >= 40000000LL && waited < 10000000000LL;

		before = monotonic_ns();
		until = deadline(CLOCK_MONOTONIC, 50);
		err = pthread_cond_timedwait(&monotonic, &lock, &until);
		waited = monotonic_ns() - before;
		printf("cond_timedwait CLOCK_MONOTONIC: %s\n", err == ETIMEDOUT ? "ETIMEDOUT" : errno_name(err));
		ok &= err == ETIMEDOUT && waited >= 50000000LL && waited < 10000000000LL;
		pthread_mutex_unlock(&lock);

		sem_t sem;
		sem_init(&sem, 0, 0);
		before = monotonic_ns();
		until = deadline(CLOCK_REALTIME, 50);
		int r = sem_timedwait(&sem, &until);
		int sem_err = r == -1 ? errno : 0;
		waited = monotonic_ns() - before;
		printf("sem_timedwait: %s\n", sem_err == ETIMEDOUT ? "ETIMEDOUT" : errno_name(sem_err));
		ok &= sem_err == ETIMEDOUT && waited >= 40000000LL && waited < 10000000000LL;

		pthread_mutex_lock(&held);
		pthread_t thread;
		start(&thread, timedlock_held, NULL);
		intptr_t timedlock = (intptr_t)join(thread);
		pthread_mutex_unlock(&held);
		const char *outcome = "ETIMEDOUT";
		if (timedlock == 2)
			outcome = "ETIMEDOUT too early";
		else if (timedlock != 1)
			outcome = errno_name((int)-timedlock);
		printf("mutex_timedlock of a held mutex: %s\n", outcome);
		ok &= timedlock == 1;
		check(ok, "timed waits");
	} else if (strcmp(name, "signal_thread") == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
		sigaction(SIGUSR2, &sa, NULL);
		sem_init(&ready, 0, 0);
		sem_init(&finish, 0, 0);
		pid_t main_tid = tid();
		pthread_t thread;

		/* pthread_kill: the handler runs in the target thread. */
		mask(SIG_BLOCK, SIGUSR1); /* the worker inherits it, and unblocks it only in sigsuspend */
		start(&thread, wait_for_usr1, NULL);
		while (sem_wait(&ready) != 0)
			;
		handled = 0;
		pthread_kill(thread, SIGUSR1);
		join(thread);
		check(handled && handler_tid == signal_worker_tid && handler_tid != main_tid
			      && pthread_equal(handler_self, thread),
		      "pthread_kill: handled by the target thread");

		/* A process signal that the main thread alone blocks goes to the worker (still blocked here). */
		handled = 0;
		start(&thread, wait_for_usr1, NULL);
		while (sem_wait(&ready) != 0)
			;
		kill(getpid(), SIGUSR1);
		join(thread);
		check(handled && handler_tid == signal_worker_tid && pthread_equal(handler_self, thread),
		      "kill: handled by the thread that unblocked it");
		mask(SIG_UNBLOCK, SIGUSR1);

		/* A process signal that the worker blocks goes to the main thread. */
		handled = 0;
		start(&thread, block_usr2, NULL);
		while (sem_wait(&ready) != 0)
			;
		kill(getpid(), SIGUSR2);
		while (!handled)
			sched_yield();
		sem_post(&finish);
		join(thread);
		check(handler_tid == main_tid && handler_tid != signal_worker_tid
			      && pthread_equal(handler_self, pthread_self()),
		      "kill: handled by the thread that does not block it");
		check(guest_failures == 0, "per-thread signals");
	} else if (strcmp(name, "deadlock") == 0) {
		printf("main joins a thread that waits forever\n");
		fflush(stdout);
		pthread_t thread;
		start(&thread, wait_forever, NULL);
		join(thread);
		printf("join returned\n");
	} else {
		printf("unknown scenario %s\n", name);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		printf("usage: threads SCENARIO\n");
		return 2;
	}
	scenario(argv[1]);
	return guest_exit_status();
}
