# Spins forever without a syscall: only --timeout can end it.
	.text
	.globl	_start
_start:
1:	jmp	1b

	.section .note.GNU-stack, "", @progbits
