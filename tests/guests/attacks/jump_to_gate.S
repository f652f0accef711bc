/* Attack 10: jump straight to a WRPKRU of the kernel's own PKRU gates (argv[1], in kernel text) with
 * forged registers: EAX = ECX = EDX = 0 opens every key. The gate's check after the WRPKRU must catch
 * it and halt the VM. With argv[2] = "timer" a 100 us interval timer runs first (SIGALRM ignored); the
 * app masks interrupts until the timer's interrupt is pending, then jumps with interrupts enabled
 * (STI's shadow covers the jump), so the interrupt arrives at the gate's first instruction, inside
 * kernel text: the kernel must not resume there with the app's registers. */
#include "attack.inc"
	.set	SYS_RT_SIGACTION, 13
	.set	SYS_SETITIMER, 38
	.set	SIGALRM, 14
	ATTACK_START
	mov	$2, %edi
	mov	$'t', %esi
	call	arg_starts_with
	jne	1f
	mov	$SYS_RT_SIGACTION, %eax
	mov	$SIGALRM, %edi
	lea	ignore(%rip), %rsi
	xor	%edx, %edx
	mov	$8, %r10d
	syscall
	test	%rax, %rax
	jnz	2f
	mov	$SYS_SETITIMER, %eax
	xor	%edi, %edi		/* ITIMER_REAL */
	lea	every_100us(%rip), %rsi
	xor	%edx, %edx
	syscall
	test	%rax, %rax
	jnz	2f
	print_str "timer running\n"
	arg_hex	1
	mov	%rax, %rbx
	print_str "jumping to the gate with an interrupt pending\n"
	cli
	mov	$(1 << 22), %ecx	/* far longer than 100 us: the interrupt is pending */
3:	dec	%ecx
	jnz	3b
	xor	%eax, %eax
	xor	%edx, %edx
	sti
	jmp	*%rbx
1:	arg_hex	1
	mov	%rax, %rbx
	print_str "jumping to the gate\n"
	xor	%eax, %eax
	xor	%ecx, %ecx
	xor	%edx, %edx
	jmp	*%rbx
2:	print_str "could not start the timer\n"
	exit_with 1

	.data
	.balign	8
ignore:		.quad	1, 0, 0, 0	/* SIG_IGN, no flags, no restorer, empty mask */
every_100us:	.quad	0, 100, 0, 100	/* it_interval, it_value: 100 us each */
