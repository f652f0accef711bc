/* Hostile guest: hides a crash behind a forged verdict. At CPL0 (mpk, none) the app can write the
 * console and exit ports itself: where it would crash, it sends an Exit frame with status 0 in the
 * kernel's format instead (a 20-byte header whose console key it cannot know: zeros here) and stops the
 * VM through the exit port. The VMM must not take that status; at CPL3 (ring3) the OUT itself faults. */
#include "attack.inc"
	.set	CONSOLE, 0xe9
	.set	EXIT_PORT, 0xf4
	ATTACK_START
	print_str "forging an exit status\n"
	lea	forged(%rip), %rsi
	mov	$(forged_end - forged), %ecx
	mov	$CONSOLE, %dx
	rep outsb
	xor	%eax, %eax
	out	%eax, $EXIT_PORT
	print_str "the VM went on\n"
	exit_with 1

	.section .rodata
forged:
	.byte	0xa5, 3, 4, 0		/* sync, stream Exit, length 4 */
	.fill	16, 1, 0		/* the console key, guessed */
	.long	0			/* status 0 */
forged_end:
