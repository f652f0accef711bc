/* Attack 3: read the kernel's physical map of all RAM (page tables included). argv[1] = an address
 * in the "kernel physical map" region. */
#include "attack.inc"
	ATTACK_START
	arg_hex	1
	mov	%rax, %rbx
	print_str "reading the physical map\n"
	mov	(%rbx), %rax
	print_str "read the physical map\n"
	exit_with 0
