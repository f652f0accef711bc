/* Attack: a second thread races the kernel's use of a syscall buffer. The main thread calls
 * writev(pipe, &iov, 1) 400 times and reads back what reached the pipe, while a thread it cloned keeps
 * flipping iov.iov_base between the app's own 16 bytes and a kernel address (argv[1]), yielding after
 * one or two flips. A kernel that validated the iovec
 * and then read it again (or was preempted between the two) could copy kernel bytes into the pipe.
 * Every call must either move the app's 16 bytes or fail with EFAULT; it prints the counts of each and
 * of anything else ("leaked" should be 0), and that both outcomes were seen. */
#include "attack.inc"
	.set	SYS_WRITEV, 20
	.set	SYS_SCHED_YIELD, 24
	.set	SYS_CLONE, 56
	.set	SYS_PIPE, 22
	.set	CLONE_THREAD_FLAGS, 0x10f00	/* VM | FS | FILES | SIGHAND | THREAD */
	.set	ROUNDS, 400

	ATTACK_START
	arg_hex	1
	mov	%rax, kernel_addr(%rip)
	lea	secret(%rip), %rax
	mov	%rax, iov(%rip)
	mov	$SYS_PIPE, %eax
	lea	fds(%rip), %rdi
	syscall
	test	%rax, %rax
	jnz	fail
	/* The flipper thread, on its own stack: clone returns 0 there. */
	mov	$SYS_CLONE, %eax
	mov	$CLONE_THREAD_FLAGS, %edi
	lea	flipper_stack_top(%rip), %rsi
	xor	%edx, %edx
	xor	%r10d, %r10d
	xor	%r8d, %r8d
	syscall
	test	%rax, %rax
	jz	flipper
	js	fail
	print_str "racing writev against a thread that flips its buffer\n"
	mov	$ROUNDS, %r12d
1:	mov	$SYS_WRITEV, %eax
	mov	fds+4(%rip), %edi
	lea	iov(%rip), %rsi
	mov	$1, %edx
	syscall
	cmp	$-14, %rax
	je	2f
	cmp	$16, %rax
	jne	3f
	/* 16 bytes went into the pipe: they must be the app's. */
	xor	%eax, %eax			/* SYS_READ */
	mov	fds(%rip), %edi
	lea	readback(%rip), %rsi
	mov	$16, %edx
	syscall
	mov	readback(%rip), %rax
	cmp	secret(%rip), %rax
	jne	3f
	mov	readback+8(%rip), %rax
	cmp	secret+8(%rip), %rax
	jne	3f
	incq	moved(%rip)
	jmp	4f
2:	incq	efault(%rip)
	jmp	4f
3:	incq	leaked(%rip)
4:	mov	$SYS_SCHED_YIELD, %eax
	syscall
	dec	%r12d
	jnz	1b
	print_str "moved the app's bytes: "
	mov	moved(%rip), %rax
	call	print_dec
	print_str "EFAULT: "
	mov	efault(%rip), %rax
	call	print_dec
	print_str "leaked: "
	mov	leaked(%rip), %rax
	call	print_dec
	cmpq	$0, moved(%rip)
	je	5f
	cmpq	$0, efault(%rip)
	je	5f
	print_str "both outcomes seen\n"
5:	mov	$231, %eax			/* exit_group: exit would end this thread only */
	xor	%edi, %edi
	syscall
	hlt

/* The flipper: swaps iov_base between the secret and the kernel address, and yields after most flips
 * (after every third it flips again first), so the main thread meets both values. */
flipper:
	xor	%ebx, %ebx
1:	mov	iov(%rip), %rax
	lea	secret(%rip), %rcx
	cmp	%rcx, %rax
	mov	kernel_addr(%rip), %rdx
	cmovne	%rcx, %rdx
	mov	%rdx, iov(%rip)
	inc	%ebx
	mov	%ebx, %eax
	xor	%edx, %edx
	mov	$3, %ecx
	div	%ecx
	test	%edx, %edx
	jz	1b
	mov	$SYS_SCHED_YIELD, %eax
	syscall
	jmp	1b

fail:	print_str "setup failed\n"
	exit_with 1

	.data
	.balign	16
secret:	.ascii	"app's own bytes!"
iov:	.quad	0, 16

	.bss
	.balign	16
readback:	.skip	16
kernel_addr:	.quad	0
moved:		.quad	0
efault:		.quad	0
leaked:		.quad	0
fds:		.long	0, 0
	.balign	16
flipper_stack:	.skip	4096
flipper_stack_top:
