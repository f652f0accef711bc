/* Attack 1: read kernel memory. argv[1] = an address in the kernel (rodata or data, from
 * `secure-run --print-layout`). A load from it must fault; with --isolation none it succeeds. */
#include "attack.inc"
	ATTACK_START
	arg_hex	1
	mov	%rax, %rbx
	print_str "reading kernel memory\n"
	mov	(%rbx), %rax
	print_str "read kernel memory\n"
	exit_with 0
