/* Attack 2: write kernel memory. argv[1] = an address in kernel data; the test picks the last 8 bytes
 * of the last kernel data region (padding after .bss that nothing reads), so where the write gets
 * through it changes nothing that matters and the run goes on to show it. */
#include "attack.inc"
	ATTACK_START
	arg_hex	1
	mov	%rax, %rbx
	print_str "writing kernel memory\n"
	movq	$0x5a5a5a5a, (%rbx)
	print_str "wrote kernel memory\n"
	exit_with 0
