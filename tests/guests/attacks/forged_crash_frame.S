/* Hostile guest: at CPL0 (--isolation none) the app can write the kernel's console port itself. It
 * sends a syntactically valid crash frame (sync A5, stream 4, length 184) of garbage values, then
 * (argv[1] = "w") a crash frame of the wrong length instead, then exits normally with status 7. */
#include "attack.inc"
	.set	CONSOLE, 0xe9
	ATTACK_START
	mov	$1, %edi
	mov	$'w', %esi
	call	arg_starts_with
	lea	valid_frame(%rip), %rsi
	mov	$(valid_end - valid_frame), %ecx
	jne	1f
	lea	short_frame(%rip), %rsi
	mov	$(short_end - short_frame), %ecx
1:	mov	$CONSOLE, %dx
	rep outsb
	print_str "sent a forged crash frame\n"
	exit_with 7

	.section .rodata
valid_frame:
	.byte	0xa5, 0x04, 184, 0
	.quad	0xdeadbeefdeadbeef, 0xffffffffffffffff, 0x8000000000000000, 0x1234, 0x7fffffffffffffff
	.quad	0xfffffffffffffff0, 0x0101010101010101, 0xa5a5a5a5a5a5a5a5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
	.quad	0xffff800000000000, 0xcafebabecafebabe, 0x4242424242424242, 0x5a5a5a5a5a5a5a5a
valid_end:
short_frame:
	.byte	0xa5, 0x04, 183, 0
	.fill	183, 1, 0xee
short_end:
