/* setjmp/longjmp across nested calls, values passed through, and sigsetjmp without signal masks. */
#include <setjmp.h>
#include <stdio.h>

static jmp_buf env;

static void __attribute__((noinline)) jump_from_level3(void)
{
	longjmp(env, 7);
}

static void __attribute__((noinline)) jump_from_level2(void)
{
	jump_from_level3();
	printf("not reached\n");
}

int main(void)
{
	volatile int visits = 0;
	int value = setjmp(env);
	visits++;
	printf("setjmp returned %d (visit %d)\n", value, visits);
	if (value == 0)
		jump_from_level2();
	else if (value == 7)
		longjmp(env, 0); /* longjmp with 0 makes setjmp return 1 */
	sigjmp_buf sigenv;
	value = sigsetjmp(sigenv, 0);
	printf("sigsetjmp returned %d\n", value);
	if (value == 0)
		siglongjmp(sigenv, 3);
	return 0;
}
