/* Hostile guest: forges one console frame in the kernel's format (a 20-byte header whose console key
 * it cannot know: zeros here): a stdout frame of text the app never wrote (argv[1] = "stdout"), or a
 * crash record (argv[1] = "crash") blaming a page fault at address 0. Then it writes one honest line and
 * exits 0. The VMM must forward neither the forged text nor anything after it, nor report the crash;
 * at CPL3 (ring3) the OUT itself faults. */
#include "attack.inc"
	.set	CONSOLE, 0xe9
	ATTACK_START
	print_str "forging a frame\n"
	mov	$1, %edi
	mov	$'c', %esi
	call	arg_starts_with
	lea	stdout_frame(%rip), %rsi
	mov	$(stdout_end - stdout_frame), %ecx
	jne	1f
	lea	crash_frame(%rip), %rsi
	mov	$(crash_end - crash_frame), %ecx
1:	mov	$CONSOLE, %dx
	rep outsb
	print_str "after the forgery\n"
	exit_with 0

	.section .rodata
stdout_frame:
	.byte	0xa5, 1, (stdout_text_end - stdout_text), 0
	.fill	16, 1, 0
stdout_text:
	.ascii	"forged output\n"
stdout_text_end:
stdout_end:
crash_frame:
	.byte	0xa5, 4, 184, 0
	.fill	16, 1, 0
	.quad	14			/* vector: #PF */
	.fill	176, 1, 0
crash_end:
