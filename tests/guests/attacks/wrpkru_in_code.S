/* Attack 5: WRPKRU in the app's own code, with EAX = 0 (every key open), then a read of kernel data
 * (argv[1]) to use the opened keys. */
#include "attack.inc"
	ATTACK_START
	arg_hex	1
	mov	%rax, %rbx
	print_str "WRPKRU\n"
	xor	%eax, %eax
	xor	%ecx, %ecx
	xor	%edx, %edx
	wrpkru
	print_str "WRPKRU executed\n"
	mov	(%rbx), %rax
	print_str "read kernel memory\n"
	exit_with 0
