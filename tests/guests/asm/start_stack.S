# Checks the initial stack the kernel built, before any libc could repair it (System V x86-64 ABI,
# "Process Initialization"): RSP 16-byte aligned at _start, argc at (RSP), argv[] NULL-terminated,
# then envp[] NULL-terminated, then an auxv whose last entry is AT_NULL.
# Prints "start stack ok\n" and exits 0, or exits with the number of the first check that failed.
	.text
	.globl	_start
_start:
	mov	%rsp, %rbx
	mov	$1, %edi		# check 1: RSP % 16 == 0
	test	$15, %rbx
	jnz	fail
	mov	$2, %edi		# check 2: 1 <= argc < 4096
	mov	(%rbx), %rcx
	test	%rcx, %rcx
	jz	fail
	cmp	$4096, %rcx
	jae	fail
	mov	$3, %edi		# check 3: argv[argc] == NULL
	cmpq	$0, 8(%rbx,%rcx,8)
	jne	fail
	lea	16(%rbx,%rcx,8), %rsi	# &envp[0]
	mov	$4, %edi		# check 4: envp ends within 4096 entries
	mov	$4096, %ecx
1:	cmpq	$0, (%rsi)
	je	2f
	add	$8, %rsi
	dec	%ecx
	jz	fail
	jmp	1b
2:	add	$8, %rsi		# &auxv[0]
	mov	$5, %edi		# check 5: auxv has AT_PAGESZ (6) == 4096 and ends with AT_NULL within 64 pairs
	xor	%r8d, %r8d		# AT_PAGESZ seen
	mov	$64, %ecx
3:	mov	(%rsi), %rax
	test	%rax, %rax
	jz	4f
	cmp	$6, %rax
	jne	5f
	cmpq	$4096, 8(%rsi)
	jne	fail
	mov	$1, %r8d
5:	add	$16, %rsi
	dec	%ecx
	jz	fail
	jmp	3b
4:	test	%r8d, %r8d
	jz	fail
	mov	$1, %eax		# write(1, "start stack ok\n", 15)
	mov	$1, %edi
	lea	message(%rip), %rsi
	mov	$message_len, %edx
	syscall
	mov	$60, %eax
	xor	%edi, %edi
	syscall
fail:					# exit(check number in EDI)
	mov	$60, %eax
	syscall
	hlt

	.section .rodata
message:
	.ascii	"start stack ok\n"
	.set	message_len, . - message

	.section .note.GNU-stack, "", @progbits
