/* Attacks on the guard of `mpk` mode (isolation::guard): code that holds guarded instructions runs,
 * single-stepped, but none of them may. argv[1] picks the attack; each says how far it got. Most end
 * with `mov cr3, rax` with RAX = CR3 as read, which changes nothing where it is allowed to run, so the
 * run shows that it got through ("wrote CR3").
 *   c  jump into a `mov cr3, rax` hidden in the immediate of a benign-looking MOV
 *   p  the same for WRPKRU (EAX = ECX = EDX = 0: every key open), then load kernel data (argv[2])
 *   m  run a page holding seven guarded sequences (more than the four debug registers), then jump
 *      into one of them
 *   d  clear DR7 and DR6 (an attempt to disarm a breakpoint-based guard), then jump into the MOV
 *   i  IRETQ with RF set (which suppresses an instruction breakpoint) straight into the MOV
 *   s  MOV SS, then an intended `mov cr3, rax` in its shadow (the single-step trap is delayed) */
#include "attack.inc"
	ATTACK_START
	mov	$1, %edi
	mov	$'c', %esi
	call	arg_starts_with
	je	hidden_cr3
	mov	$1, %edi
	mov	$'p', %esi
	call	arg_starts_with
	je	hidden_wrpkru
	mov	$1, %edi
	mov	$'m', %esi
	call	arg_starts_with
	je	crowded
	mov	$1, %edi
	mov	$'d', %esi
	call	arg_starts_with
	je	disarm
	mov	$1, %edi
	mov	$'i', %esi
	call	arg_starts_with
	je	iret_rf
	mov	$1, %edi
	mov	$'s', %esi
	call	arg_starts_with
	je	mov_ss
	exit_with 64

hidden_cr3:
	print_str "reading CR3\n"
	mov	%cr3, %rbx
	print_str "jumping into the middle of a MOV\n"
jump_to_cr3:
	mov	%rbx, %rax
	jmp	benign_cr3 + 1
benign_cr3:
	mov	$0x90d8220f, %edx	/* BA 0F 22 D8 90: at +1, `mov cr3, rax; nop` */
	print_str "wrote CR3\n"
	exit_with 0

hidden_wrpkru:
	arg_hex	2
	mov	%rax, %rbx
	print_str "jumping into the middle of a MOV\n"
	xor	%eax, %eax
	xor	%ecx, %ecx
	xor	%edx, %edx
	jmp	benign_wrpkru + 1
benign_wrpkru:
	mov	$0x90ef010f, %esi	/* BE 0F 01 EF 90: at +1, `wrpkru; nop` */
	print_str "WRPKRU executed\n"
	mov	(%rbx), %rax
	print_str "read kernel memory\n"
	exit_with 0

disarm:
	print_str "MOV to DR7 and DR6\n"
	xor	%eax, %eax
	mov	%rax, %dr7
	mov	%rax, %dr6
	print_str "disarmed the debug registers\n"
	mov	%cr3, %rbx
	jmp	jump_to_cr3

iret_rf:
	print_str "reading CR3\n"
	mov	%cr3, %rbx
	print_str "IRETQ with RF set into a MOV to CR3\n"
	mov	%rbx, %rax
	mov	%rsp, %rdx
	mov	%ss, %ecx
	push	%rcx
	push	%rdx
	pushfq
	orq	$0x10000, (%rsp)	/* RF */
	mov	%cs, %ecx
	push	%rcx
	lea	benign_cr3 + 1(%rip), %rcx
	push	%rcx
	iretq

mov_ss:
	print_str "reading CR3\n"
	mov	%cr3, %rbx
	print_str "MOV SS, then MOV to CR3 in its shadow\n"
	mov	%rbx, %rax
	mov	%ss, %ecx
	mov	%ecx, %ss
	mov	%rax, %cr3
	print_str "wrote CR3\n"
	exit_with 0

	.balign	4096
crowded:
	print_str "running a page with seven guarded sequences\n"
	xor	%r13d, %r13d
	mov	$1000, %r12d
1:
crowded_cr3:
	mov	$0x90d8220f, %edx	/* mov cr3, rax */
	mov	$0x90c0220f, %edx	/* mov cr0, rax */
	mov	$0x90e0220f, %edx	/* mov cr4, rax */
	mov	$0x90ef010f, %edx	/* wrpkru */
	mov	$0x9090300f, %edx	/* wrmsr */
	mov	$0x9010010f, %edx	/* lgdt [rax] */
	mov	$0x9018010f, %edx	/* lidt [rax] */
	dec	%r12d
	jnz	1b
	test	%r13d, %r13d
	jnz	2f
	print_str "ran the page\n"
	mov	%cr3, %rbx
	mov	%rbx, %rax
	mov	$1, %r12d
	mov	$1, %r13d
	jmp	crowded_cr3 + 1
2:	print_str "wrote CR3\n"
	exit_with 0
