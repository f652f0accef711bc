# A store to address 0: must end like SIGSEGV (status 139) with a crash report naming address 0x0.
	.text
	.globl	_start
_start:
	xor	%eax, %eax
	movl	$0x2a, (%rax)		# *(int *)0 = 42
	mov	$60, %eax		# exit(1) if the store did not fault
	mov	$1, %edi
	syscall
	hlt

	.section .note.GNU-stack, "", @progbits
