/* Attack 10: jump straight to a WRPKRU of the kernel's own PKRU gates (argv[1], in kernel text) with
 * forged registers: EAX = ECX = EDX = 0 opens every key. The gate's check after the WRPKRU must catch
 * it and halt the VM. */
#include "attack.inc"
	ATTACK_START
	arg_hex	1
	mov	%rax, %rbx
	print_str "jumping to the gate\n"
	xor	%eax, %eax
	xor	%ecx, %ecx
	xor	%edx, %edx
	jmp	*%rbx
