/* Attack 9: make WRPKRU at run time by flipping memory from writable to executable: mmap RW, copy
 * WRPKRU; RET in, mprotect(PROT_READ|PROT_EXEC), call it with EAX = 0. */
#include "attack.inc"
	ATTACK_START
	mov	$SYS_MMAP, %eax
	xor	%edi, %edi
	mov	$4096, %esi
	mov	$3, %edx		/* PROT_READ | PROT_WRITE */
	mov	$0x22, %r10d		/* MAP_PRIVATE | MAP_ANONYMOUS */
	mov	$-1, %r8
	xor	%r9d, %r9d
	syscall
	mov	%rax, %rbx
	cmp	$-4096, %rax
	jb	1f
	print_str "mmap RW failed\n"
	exit_with 2
1:	mov	wrpkru_ret(%rip), %eax	/* from data: the app's own code must pass inspection */
	mov	%eax, (%rbx)
	print_str "mprotect RX: "
	mov	$SYS_MPROTECT, %eax
	mov	%rbx, %rdi
	mov	$4096, %esi
	mov	$5, %edx		/* PROT_READ | PROT_EXEC */
	syscall
	mov	%rax, %r12
	call	print_dec		/* 0 or -errno */
	test	%r12, %r12
	jz	2f
	exit_with 1
2:	call_wrpkru_at %rbx
