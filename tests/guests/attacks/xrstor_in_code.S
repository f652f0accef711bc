/* Attack 6: XRSTOR in the app's own code: with XSAVE enabled and the PKRU component in XCR0 it could
 * load PKRU from app memory. EDX:EAX = all components requested, the area is zeroed.
 *
 * The area XRSTOR reads is as large as the components XCR0 enables: CPUID.(EAX=0DH,ECX=0):EBX, read at
 * run time (576 bytes with x87/SSE only, ~2.5 KiB with AVX-512, ~11 KiB with AMX tiles). Where the CPU
 * reports no XSAVE enabled (CPUID.1:ECX.OSXSAVE = 0), XRSTOR raises #UD before touching memory, and the
 * legacy area plus header (576 bytes) is what an XSAVE area is at least. The area is fresh mmap'd
 * memory of that size rounded up to pages, so nothing of the guest's own image decides the outcome. */
#include "attack.inc"
	.set	XSAVE_MIN_AREA, 576
	ATTACK_START
	mov	$1, %eax
	cpuid
	mov	$XSAVE_MIN_AREA, %ebx
	bt	$27, %ecx		/* OSXSAVE */
	jnc	1f
	mov	$0xd, %eax
	xor	%ecx, %ecx
	cpuid				/* EBX = the XSAVE area size for the XCR0 in force */
	cmp	$XSAVE_MIN_AREA, %ebx
	jae	1f
	mov	$XSAVE_MIN_AREA, %ebx
1:	mov	%ebx, %esi
	add	$4095, %esi
	and	$-4096, %esi		/* length: whole pages */
	mov	$SYS_MMAP, %eax
	xor	%edi, %edi
	mov	$3, %edx		/* PROT_READ | PROT_WRITE */
	mov	$0x22, %r10d		/* MAP_PRIVATE | MAP_ANONYMOUS */
	mov	$-1, %r8
	xor	%r9d, %r9d
	syscall
	cmp	$-4096, %rax
	jb	2f
	print_str "mmap of the XSAVE area failed\n"
	exit_with 1
2:	mov	%rax, %r12		/* page-aligned, so 64-byte aligned as XRSTOR requires */
	print_str "XRSTOR\n"
	mov	%r12, %rdi
	mov	$-1, %eax
	mov	$-1, %edx
	xrstor	(%rdi)
	print_str "XRSTOR executed\n"
	exit_with 0
