/* Attack 13: rt_sigreturn with a forged signal frame, no signal delivered. argv[1] picks what the frame
 * forges, argv[2] is an address (hexadecimal) some variants aim at:
 *   flags     RFLAGS with IOPL 3, NT and AC-free garbage; afterwards the app reads its RFLAGS back;
 *   segments  CS/SS = the kernel's selectors (0x08/0x10); afterwards the app reads its CPL;
 *   rip       RIP = argv[2] (kernel data: not executable);
 *   xsave     an FPU area full of 0xff (reserved MXCSR bits, an XSAVE header asking for PKRU), then a
 *             load from argv[2] (kernel data).
 * The kernel must restore only the app's registers: no IOPL, no kernel segments, no PKRU, no #GP of
 * its own on FXRSTOR. */
#include "attack.inc"
	.set	SYS_RT_SIGRETURN, 15
	.set	MCONTEXT, 8 + 40	/* ucontext.uc_mcontext inside the frame */
	.set	GREG_RSP, MCONTEXT + 15 * 8
	.set	GREG_RIP, MCONTEXT + 16 * 8
	.set	GREG_EFL, MCONTEXT + 17 * 8
	.set	GREG_CSGSFS, MCONTEXT + 18 * 8
	.set	GREG_FPSTATE, MCONTEXT + 23 * 8

	ATTACK_START
	arg_hex	2
	mov	%rax, target(%rip)
	/* The frame: everything zero but the continuation (RIP = after, RSP = ours, RFLAGS = 0x202). */
	lea	frame(%rip), %rbx
	lea	after(%rip), %rax
	mov	%rax, GREG_RIP(%rbx)
	mov	%rsp, GREG_RSP(%rbx)
	movq	$0x202, GREG_EFL(%rbx)
	mov	$1, %edi
	mov	$'f', %esi
	call	arg_starts_with
	jne	1f
	movq	$(0x202 | 0x3000 | 0x4000 | 0x20000), GREG_EFL(%rbx)	/* IF, IOPL 3, NT, VM */
	print_str "forging RFLAGS\n"
	jmp	go
1:	mov	$1, %edi
	mov	$'s', %esi
	call	arg_starts_with
	jne	2f
	movabs	$0x0010000000000008, %rax				/* CS 0x08, SS 0x10 */
	mov	%rax, GREG_CSGSFS(%rbx)
	print_str "forging CS and SS\n"
	jmp	go
2:	mov	$1, %edi
	mov	$'r', %esi
	call	arg_starts_with
	jne	3f
	mov	target(%rip), %rax
	mov	%rax, GREG_RIP(%rbx)
	print_str "forging RIP\n"
	jmp	go
3:	lea	fpu(%rip), %rdi
	mov	$512 + 64, %ecx
	mov	$0xff, %al
	rep stosb
	lea	fpu(%rip), %rax
	mov	%rax, GREG_FPSTATE(%rbx)
	print_str "forging the FPU area\n"
go:	lea	8(%rbx), %rsp		/* where the restorer's SYSCALL would find it: pretcode popped */
	mov	$SYS_RT_SIGRETURN, %eax
	syscall
	hlt

after:	print_str "sigreturn returned\n"
	mov	$1, %edi
	mov	$'f', %esi
	call	arg_starts_with
	jne	4f
	pushfq
	pop	%rax
	and	$0x3000, %eax
	jnz	5f
	print_str "IOPL 0\n"
	exit_with 0
5:	print_str "IOPL raised\n"
	exit_with 1
4:	mov	$1, %edi
	mov	$'s', %esi
	call	arg_starts_with
	jne	6f
	mov	%cs, %eax
	and	$3, %eax
	call	print_dec		/* the CPL the app runs at */
	exit_with 0
6:	mov	target(%rip), %rbx
	print_str "loading from the target\n"
	mov	(%rbx), %rax
	print_str "loaded\n"
	exit_with 0

	.bss
	.balign	64
fpu:
	.skip	512 + 64
	.balign	16
frame:
	.skip	440
target:
	.skip	8
