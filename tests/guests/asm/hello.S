# write(1, "Hello, World!\n", 14); exit(0). The smallest useful guest: no libc, no SSE.
	.text
	.globl	_start
_start:
	mov	$1, %eax		# write
	mov	$1, %edi		# fd 1
	lea	message(%rip), %rsi
	mov	$message_len, %edx
	syscall
	mov	$60, %eax		# exit
	xor	%edi, %edi
	syscall
	hlt				# not reached

	.section .rodata
message:
	.ascii	"Hello, World!\n"
	.set	message_len, . - message

	.section .note.GNU-stack, "", @progbits
