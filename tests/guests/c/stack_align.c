/* The stack is 16-byte aligned at every call (System V ABI), in main and below, and over-aligned locals
 * work. The probe is in assembly: the compiler may assume the alignment and fold any C check away. */
#include <stdalign.h>
#include <stdint.h>
#include <string.h>
#include "guest.h"

/* Returns (RSP + 8) % 16 at its own entry, which the ABI requires to be 0. */
unsigned long entry_misalignment(void);
__asm__(".pushsection .text\n"
	".globl entry_misalignment\n"
	"entry_misalignment:\n"
	"	lea 8(%rsp), %rax\n"
	"	and $15, %eax\n"
	"	ret\n"
	".popsection\n");

static unsigned long __attribute__((noinline)) nested(int depth)
{
	volatile char pad[depth * 8 + 1]; /* a variable-length array moves RSP by an odd amount */
	pad[0] = 0;
	unsigned long misalignment = entry_misalignment();
	if (depth > 0)
		misalignment |= nested(depth - 1);
	return misalignment + pad[0];
}

static int __attribute__((noinline)) overaligned_local(void)
{
	alignas(64) char buffer[64];
	uintptr_t address = (uintptr_t)buffer;
	__asm__ volatile("" : "+r"(address)); /* hide the address from the optimizer */
	memset(buffer, 1, sizeof buffer);
	return address % 64 == 0 && buffer[63] == 1;
}

int main(void)
{
	check(entry_misalignment() == 0, "aligned in main");
	check(nested(5) == 0, "aligned in nested calls");
	check(overaligned_local(), "alignas(64) local");
	/* printf of a double uses SSE stores that fault on a misaligned stack in many libcs. */
	printf("%.3f\n", 2.5);
	return guest_exit_status();
}
