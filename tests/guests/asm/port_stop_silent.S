# Stops the VM through the exit port without ever sending an exit-status frame, in the middle of a
# forged frame that announces 65535 bytes of stdout and delivers 7. The VMM must report tampering
# (secure-run exits 159), whatever value the port write carried: 42 here, so QEMU's own exit status
# ((42 << 1) | 1 = 85) and 42 are both wrong answers.
# The 16-bit write comes first (a VMM may ignore odd sizes), then a 32-bit one; if the VM is still
# running after both, the guest halts with interrupts off, which must also end the run.
	.set	CONSOLE, 0xe9
	.set	EXIT_PORT, 0xf4
	.text
	.globl	_start
_start:
	mov	$1, %eax		# write(1, "stopping\n", 9), framed by the kernel
	mov	$1, %edi
	lea	stopping(%rip), %rsi
	mov	$stopping_len, %edx
	syscall
	lea	partial(%rip), %rsi	# a frame header promising 0xffff bytes, then 7 of them
	mov	$partial_len, %ecx
	mov	$CONSOLE, %dx
	rep outsb
	mov	$42, %eax
	outw	%ax, $EXIT_PORT
	outl	%eax, $EXIT_PORT
	cli
1:	hlt
	jmp	1b

	.section .rodata
stopping:
	.ascii	"stopping\n"
	.set	stopping_len, . - stopping
partial:
	.byte	0xa5, 0x01, 0xff, 0xff
	.ascii	"partial"
	.set	partial_len, . - partial

	.section .note.GNU-stack, "", @progbits
