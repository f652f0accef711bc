/* Attack 11: make the kernel a confused deputy: write(1, KERNEL, 16) and read(0, KERNEL, 16) with a
 * kernel address (argv[1]); both must fail with EFAULT. With argv[2] = "direct", load from the address
 * directly instead (the contrast: the address is mapped, the EFAULT is the kernel's check). */
#include "attack.inc"
	ATTACK_START
	arg_hex	1
	mov	%rax, %rbx
	mov	$2, %edi
	mov	$'d', %esi
	call	arg_starts_with
	je	1f
	print_str "write(1, kernel, 16) = "
	mov	$SYS_WRITE, %eax
	mov	$1, %edi
	mov	%rbx, %rsi
	mov	$16, %edx
	syscall
	call	print_dec
	print_str "read(0, kernel, 16) = "
	mov	$SYS_READ, %eax
	xor	%edi, %edi
	mov	%rbx, %rsi
	mov	$16, %edx
	syscall
	call	print_dec
	exit_with 0
1:	print_str "loading from the kernel address\n"
	mov	(%rbx), %rax
	print_str "direct load succeeded\n"
	exit_with 0
