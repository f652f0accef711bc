/* Prints where things landed: a function, a stack variable, a malloc'd block, an mmap'd block, and the
 * 16 AT_RANDOM bytes. Under --aslr each differs between seeds and repeats exactly with the same --seed. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/mman.h>

static int function(void) { return 1; }

int main(void) {
	int on_stack = function();
	void *heap = malloc(64);
	void *mapped = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const unsigned char *random = (const unsigned char *)getauxval(AT_RANDOM);
	printf("function %p\nstack %p\nmalloc %p\nmmap %p\nat_random ", (void *)function, (void *)&on_stack, heap, mapped);
	for (int i = 0; i < 16; i++)
		printf("%02x", random[i]);
	printf("\n");
	return 0;
}
