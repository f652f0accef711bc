# Writes argv[1] KiB (decimal, rounded down to a multiple of 64; default 81920 = 80 MiB) to stdout in
# 64 KiB writes, then exit(0). The output is
# one 64-byte line repeated, so a reader can check any prefix of it. Used to test the VMM's output cap:
# a guest must not be able to make secure-run buffer or print unbounded output.
# Write errors are ignored on purpose (the cap may surface as one); short writes are resumed.
	.set	BLOCK, 65536
	.text
	.globl	_start
_start:
	mov	$81920, %r12		# r12 = KiB to write
	cmpq	$2, (%rsp)		# argc >= 2?
	jb	have_count
	mov	16(%rsp), %rsi		# argv[1]
	xor	%r12d, %r12d
1:	movzbl	(%rsi), %eax
	sub	$'0', %eax
	cmp	$9, %eax
	ja	have_count		# stop at the first non-digit (the NUL)
	imul	$10, %r12, %r12
	add	%rax, %r12
	inc	%rsi
	jmp	1b
have_count:
	shr	$6, %r12		# in blocks of 64 KiB
next_block:
	test	%r12, %r12
	jz	done
	lea	block(%rip), %r13	# r13 = next byte to write
	mov	$BLOCK, %r14		# r14 = bytes left in this block
2:	mov	$1, %eax		# write(1, r13, r14)
	mov	$1, %edi
	mov	%r13, %rsi
	mov	%r14, %rdx
	syscall
	test	%rax, %rax
	jle	3f			# error or nothing written: drop the rest of this block
	add	%rax, %r13
	sub	%rax, %r14
	jnz	2b
3:	dec	%r12
	jmp	next_block
done:
	mov	$60, %eax
	xor	%edi, %edi
	syscall
	hlt

	.section .rodata
block:
	.rept	BLOCK / 64
	.ascii	"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+\n"
	.endr

	.section .note.GNU-stack, "", @progbits
