/* Clocks: CLOCK_MONOTONIC never goes back, nanosleep(50 ms) lasts at least 50 ms on it, CLOCK_REALTIME,
 * gettimeofday() and time() agree with each other. No time value is printed. */
#include <sys/time.h>
#include <time.h>
#include "guest.h"

static long long nanoseconds(clockid_t clock)
{
	struct timespec ts;
	if (clock_gettime(clock, &ts) != 0)
		return -1;
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
	long long previous = nanoseconds(CLOCK_MONOTONIC);
	int monotonic = previous >= 0;
	for (int i = 0; i < 1000; i++) {
		long long now = nanoseconds(CLOCK_MONOTONIC);
		monotonic &= now >= previous;
		previous = now;
	}
	check(monotonic, "monotonic never decreases");

	long long before = nanoseconds(CLOCK_MONOTONIC);
	struct timespec request = {0, 50 * 1000 * 1000};
	int slept = nanosleep(&request, NULL) == 0;
	long long after = nanoseconds(CLOCK_MONOTONIC);
	check(slept && after - before >= 50 * 1000 * 1000LL, "slept");
	check(after - before < 10 * 1000 * 1000 * 1000LL, "sleep shorter than 10 s");

	struct timespec resolution;
	check(clock_getres(CLOCK_MONOTONIC, &resolution) == 0 && resolution.tv_sec == 0 && resolution.tv_nsec > 0,
	      "clock_getres");

	long long realtime = nanoseconds(CLOCK_REALTIME);
	struct timeval tv;
	check(realtime >= 0 && gettimeofday(&tv, NULL) == 0, "realtime readable");
	long long difference = tv.tv_sec - realtime / 1000000000LL;
	check(difference >= 0 && difference <= 2, "gettimeofday agrees with CLOCK_REALTIME");
	time_t seconds = time(NULL);
	/* Linux's time() reads the coarse clock, which may lag gettimeofday by one tick across a second. */
	check(seconds >= tv.tv_sec - 1 && seconds - tv.tv_sec <= 2, "time agrees with gettimeofday");
	long long cpu = nanoseconds(CLOCK_PROCESS_CPUTIME_ID);
	check(cpu >= 0, "CLOCK_PROCESS_CPUTIME_ID readable");
	return guest_exit_status();
}
