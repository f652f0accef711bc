/* Thread-local storage in the main thread: initialised (.tdata) and zeroed (.tbss) __thread variables,
 * set up by libc from PT_TLS through arch_prctl(ARCH_SET_FS). errno itself lives in TLS. */
#include <errno.h>
#include <stdio.h>

static __thread int counter = 40;
static __thread long zeroed[64];
static __thread char text[16] = "tls-initial";

static int __attribute__((noinline)) bump(void)
{
	return ++counter;
}

int main(void)
{
	bump();
	printf("counter=%d\n", bump());
	long sum = 0;
	for (int i = 0; i < 64; i++)
		sum += zeroed[i];
	printf("tbss sum=%ld\n", sum);
	zeroed[63] = 7;
	printf("tbss after store=%ld\n", zeroed[63]);
	printf("tdata text=%s\n", text);
	errno = 0;
	errno = 34;
	printf("errno=%d\n", errno);
	return 0;
}
