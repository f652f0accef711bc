/* printf formatting: integers of every size and base, strings, characters, padding, and floating point
 * (%f, %e, %g, %a is left out: its digits are not specified exactly). */
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>

int main(void)
{
	printf("ints: %d %d %i %u %ld %lld\n", 0, -42, INT_MAX, UINT_MAX, LONG_MIN, LLONG_MAX);
	printf("bases: %x %X %#x %o %#o\n", 0xdeadbeef, 0xcafe, 255, 8, 8);
	printf("fixed: %" PRId64 " %" PRIu64 " %" PRIx64 "\n", INT64_MIN, UINT64_MAX, (uint64_t)0x0123456789abcdef);
	printf("sizes: %hhd %hd %zu %td\n", (signed char)-1, (short)-32768, (size_t)12345, (ptrdiff_t)-7);
	printf("padding: [%5d] [%-5d] [%05d] [%+d] [% d]\n", 42, 42, 42, 42, 42);
	printf("strings: [%s] [%10s] [%-10s] [%.3s] [%c%c]\n", "hello", "right", "left", "truncate", 'o', 'k');
	printf("percent: 100%%\n");
	printf("f: %f %.2f %.0f %10.3f %-10.1f|\n", 3.14159265358979, 2.675, 0.5, -1.0 / 3.0, 1e3);
	printf("e: %e %.3e %E\n", 6.02214076e23, 1.602176634e-19, 12345.678);
	printf("g: %g %g %g %g %.10g\n", 100000.0, 1000000.0, 0.0001, 0.00001, 1.0 / 7.0);
	printf("special: %f %f %g %.1f\n", 1.0 / 0.0, -1.0 / 0.0, -0.0, 0.05);
	printf("big: %.0f %f\n", 1e22, 123456789012345.678);
	double sum = 0;
	for (int i = 1; i <= 1000; i++)
		sum += 1.0 / ((double)i * i);
	printf("basel: %.12f\n", sum);
	char buffer[64];
	int n = snprintf(buffer, sizeof buffer, "%s-%d-%.1f", "snprintf", 7, 2.25);
	printf("snprintf: %s (%d)\n", buffer, n);
	volatile size_t small = 8; /* not a constant, or the compiler warns about the truncation we test */
	n = snprintf(buffer, small, "%s", "truncated output");
	printf("snprintf truncated: %s (%d)\n", buffer, n);
	return 0;
}
