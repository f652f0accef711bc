/* Attack 8: make WRPKRU at run time in memory that is writable and executable at once:
 * mmap(PROT_READ|PROT_WRITE|PROT_EXEC), copy WRPKRU; RET into it, call it with EAX = 0. */
#include "attack.inc"
	ATTACK_START
	print_str "mmap RWX: "
	mov	$SYS_MMAP, %eax
	xor	%edi, %edi
	mov	$4096, %esi
	mov	$7, %edx		/* PROT_READ | PROT_WRITE | PROT_EXEC */
	mov	$0x22, %r10d		/* MAP_PRIVATE | MAP_ANONYMOUS */
	mov	$-1, %r8
	xor	%r9d, %r9d
	syscall
	mov	%rax, %rbx
	cmp	$-4096, %rax
	jb	1f
	call	print_dec		/* -errno */
	exit_with 1
1:	print_str "mapped\n"
	mov	wrpkru_ret(%rip), %eax	/* from data: the app's own code must pass inspection */
	mov	%eax, (%rbx)
	call_wrpkru_at %rbx
