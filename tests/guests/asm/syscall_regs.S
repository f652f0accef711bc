# The x86-64 Linux syscall ABI across every syscall entry (SYSCALL/SYSRET, the CPL0 entries, and the
# nested-KVM #PF path): a syscall changes RAX (the result), RCX (the return address) and R11 (RFLAGS)
# and no other register (the arithmetic flags count as clobbered, as the ABI allows). Each register is
# set to a distinct value, getpid runs, and every register is compared. Exit 0 when all match; otherwise
# exit with the number of the first check that failed (1-13: RBX, RBP, RDI, RSI, RDX, R8, R9, R10, R12,
# R13, R14, R15, RSP; 14: RCX is not the return address; 15: RAX is not getpid's result). Repeated 1000
# times, so a value that survives only by chance (or only on the first call) is caught.
	.text
	.globl	_start
_start:
	mov	$1000, %r15d
	mov	%r15, %rbx			# loop counter, kept in RBX across the checks
1:
	mov	$0x1111111111111111, %rbp
	mov	$0x2222222222222222, %rdi
	mov	$0x3333333333333333, %rsi
	mov	$0x4444444444444444, %rdx
	mov	$0x5555555555555555, %r8
	mov	$0x6666666666666666, %r9
	mov	$0x7777777777777777, %r10
	mov	$0x8888888888888888, %r12
	mov	$0x9999999999999999, %r13
	mov	$0xaaaaaaaaaaaaaaaa, %r14
	mov	%rbx, %r15
	mov	%rsp, saved_rsp(%rip)
	mov	%rbx, saved_rbx(%rip)
	mov	$39, %eax			# getpid
	syscall
after_syscall:
	cmp	saved_rbx(%rip), %rbx
	jne	fail_rbx
	mov	$0x1111111111111111, %r11
	cmp	%r11, %rbp
	jne	fail_rbp
	mov	$0x2222222222222222, %r11
	cmp	%r11, %rdi
	jne	fail_rdi
	mov	$0x3333333333333333, %r11
	cmp	%r11, %rsi
	jne	fail_rsi
	mov	$0x4444444444444444, %r11
	cmp	%r11, %rdx
	jne	fail_rdx
	mov	$0x5555555555555555, %r11
	cmp	%r11, %r8
	jne	fail_r8
	mov	$0x6666666666666666, %r11
	cmp	%r11, %r9
	jne	fail_r9
	mov	$0x7777777777777777, %r11
	cmp	%r11, %r10
	jne	fail_r10
	mov	$0x8888888888888888, %r11
	cmp	%r11, %r12
	jne	fail_r12
	mov	$0x9999999999999999, %r11
	cmp	%r11, %r13
	jne	fail_r13
	mov	$0xaaaaaaaaaaaaaaaa, %r11
	cmp	%r11, %r14
	jne	fail_r14
	cmp	%rbx, %r15
	jne	fail_r15
	cmp	saved_rsp(%rip), %rsp
	jne	fail_rsp
	lea	after_syscall(%rip), %r11
	cmp	%r11, %rcx
	jne	fail_rcx
	cmp	$1, %rax			# the app is pid 1
	jne	fail_rax
	dec	%rbx
	jnz	1b
	xor	%edi, %edi
	jmp	exit

fail_rbx:	mov	$1, %edi
		jmp	exit
fail_rbp:	mov	$2, %edi
		jmp	exit
fail_rdi:	mov	$3, %edi
		jmp	exit
fail_rsi:	mov	$4, %edi
		jmp	exit
fail_rdx:	mov	$5, %edi
		jmp	exit
fail_r8:	mov	$6, %edi
		jmp	exit
fail_r9:	mov	$7, %edi
		jmp	exit
fail_r10:	mov	$8, %edi
		jmp	exit
fail_r12:	mov	$9, %edi
		jmp	exit
fail_r13:	mov	$10, %edi
		jmp	exit
fail_r14:	mov	$11, %edi
		jmp	exit
fail_r15:	mov	$12, %edi
		jmp	exit
fail_rsp:	mov	$13, %edi
		jmp	exit
fail_rcx:	mov	$14, %edi
		jmp	exit
fail_rax:	mov	$15, %edi
exit:
	mov	$60, %eax			# exit
	syscall
	hlt					# not reached

	.bss
	.balign	8
saved_rsp:	.quad	0
saved_rbx:	.quad	0

	.section .note.GNU-stack, "", @progbits
