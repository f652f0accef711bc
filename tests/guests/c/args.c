/* argv and envp as the kernel laid them out: count, every string, in order. */
#include <stdio.h>

int main(int argc, char **argv, char **envp)
{
	printf("argc=%d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d]=[%s]\n", i, argv[i]);
	int envc = 0;
	for (char **env = envp; *env; env++)
		printf("envp[%d]=[%s]\n", envc++, *env);
	printf("envc=%d\n", envc);
	return 0;
}
