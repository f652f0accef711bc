/* Attack 6: XRSTOR in the app's own code: with XSAVE enabled and the PKRU component in XCR0 it could
 * load PKRU from app memory. EDX:EAX = all components requested, the area is zeroed. */
#include "attack.inc"
	ATTACK_START
	print_str "XRSTOR\n"
	lea	xsave_area(%rip), %rdi
	mov	$-1, %eax
	mov	$-1, %edx
	xrstor	(%rdi)
	print_str "XRSTOR executed\n"
	exit_with 0

	.bss
	.balign	64
xsave_area:
	.skip	4096
