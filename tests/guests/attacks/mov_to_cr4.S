/* Attack 7: MOV to CR4 (which holds PKE, SMEP, SMAP...). It writes back the value it read, so where
 * it is allowed it changes nothing and the run shows that it got through. */
#include "attack.inc"
	ATTACK_START
	print_str "MOV to CR4\n"
	mov	%cr4, %rax
	mov	%rax, %cr4
	print_str "wrote CR4\n"
	exit_with 0
