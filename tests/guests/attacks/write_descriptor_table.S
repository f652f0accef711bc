/* Attack 4: overwrite the GDT (argv[1] = "g") or the IDT (argv[1] = "i"). SGDT/SIDT give the table's
 * address (at CPL0 always; at CPL3 only without UMIP), then a LOCK CMPXCHG (a write that stores back
 * the old value) to its second entry. The tables are on read-only pages in every mode. */
#include "attack.inc"
	ATTACK_START
	sub	$16, %rsp
	mov	$1, %edi
	mov	$'i', %esi
	call	arg_starts_with
	je	1f
	print_str "SGDT\n"
	sgdt	(%rsp)
	jmp	2f
1:	print_str "SIDT\n"
	sidt	(%rsp)
2:	mov	2(%rsp), %rbx
	mov	%rbx, %rax
	call	print_dec
	print_str "writing the descriptor table\n"
	xor	%eax, %eax
	xor	%ecx, %ecx
	lock cmpxchg %rcx, 16(%rbx)
	print_str "wrote the descriptor table\n"
	exit_with 0
