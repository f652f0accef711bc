# With --isolation none the app runs at CPL0 and can drive the VMM's ports itself. This guest does what
# a hostile app would: reads and writes of every size on the console port (0xe9), the exit port (0xf4,
# reads only: a write stops the VM), the POST port (0x80) and a COM1 port nobody emulates (0x3f8);
# raw garbage and forged frames on the console (unknown streams, wrong-size exit and crash records, a
# full-length log frame of binary junk). Then an honest write and exit(3).
# The VMM must neither crash, panic, hang nor trust any of it: the first byte that is no authenticated
# frame ends the run as tampering (status 159), and the honest write never arrives.
	.set	CONSOLE, 0xe9
	.set	EXIT_PORT, 0xf4
	.text
	.globl	_start
_start:
	# Other ports, all sizes. DX holds the port for the 16- and 32-bit forms.
	mov	$0x5a5a5a5a, %eax
	outb	%al, $0x80
	outw	%ax, $0x80
	outl	%eax, $0x80
	mov	$0x3f8, %dx
	outb	%al, %dx
	outw	%ax, %dx
	outl	%eax, %dx
	inb	%dx, %al
	inl	%dx, %eax
	inb	$0x80, %al
	inb	$EXIT_PORT, %al
	inw	$EXIT_PORT, %ax
	inl	$EXIT_PORT, %eax
	inb	$CONSOLE, %al
	inl	$CONSOLE, %eax
	# Console port with 16- and 32-bit writes (QEMU's debugcon is a byte port).
	mov	$0xa5a5a5a5, %eax
	outw	%ax, $CONSOLE
	outl	%eax, $CONSOLE
	mov	$0x0301a5a5, %eax
	outl	%eax, $CONSOLE

	# Each record below is (length, bytes); send them all with REP OUTSB.
	lea	records(%rip), %rbx
1:	mov	(%rbx), %ecx
	test	%ecx, %ecx
	jz	2f
	lea	4(%rbx), %rsi
	mov	$CONSOLE, %dx
	rep outsb
	mov	%rsi, %rbx
	jmp	1b
2:
	# A full 65535-byte frame on the log stream, its payload every byte value over and over
	# (NULs, escapes, invalid UTF-8, sync bytes).
	mov	$CONSOLE, %dx
	mov	$0xa5, %al
	outb	%al, %dx
	mov	$5, %al			# stream: log
	outb	%al, %dx
	mov	$0xff, %al		# length 0xffff
	outb	%al, %dx
	outb	%al, %dx
	mov	$65535, %ecx
	xor	%eax, %eax
3:	outb	%al, %dx
	inc	%eax
	dec	%ecx
	jnz	3b

	# Now behave: the kernel frames this write properly.
	mov	$1, %eax
	mov	$1, %edi
	lea	survived(%rip), %rsi
	mov	$survived_len, %edx
	syscall
	mov	$60, %eax
	mov	$3, %edi
	syscall
	hlt

	.section .rodata
survived:
	.ascii	"survived the garbage\n"
	.set	survived_len, . - survived

	.macro	record bytes:vararg
	.long	9f - 8f
8:	.byte	\bytes
9:
	.endm
records:
	# Raw noise without a sync byte, then a lone sync byte followed by noise.
	record	0x00, 0xff, 0x7f, 0x80, 0x01, 0x02, 0x03, 0x1b, 0x5b, 0x32, 0x4a, 0x0a, 0x0d
	record	0xa5, 0x00, 0xa5, 0xa5, 0xa5
	# Frames on streams that do not exist (0, 6, 0x7f, 0xff).
	record	0xa5, 0x00, 0x04, 0x00, 0xde, 0xad, 0xbe, 0xef
	record	0xa5, 0x06, 0x02, 0x00, 0x41, 0x42
	record	0xa5, 0x7f, 0x00, 0x00
	record	0xa5, 0xff, 0x03, 0x00, 0x01, 0x02, 0x03
	# Exit records of the wrong size: 0, 2 and 8 bytes (the real one is exactly 4).
	record	0xa5, 0x03, 0x00, 0x00
	record	0xa5, 0x03, 0x02, 0x00, 0x4d, 0x00
	record	0xa5, 0x03, 0x08, 0x00, 0x4d, 0x00, 0x00, 0x00, 0x4d, 0x00, 0x00, 0x00
	# Crash records of the wrong size: 0 and 8 bytes (the real one is 184).
	record	0xa5, 0x04, 0x00, 0x00
	record	0xa5, 0x04, 0x08, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00
	# Empty frames on stdout, stderr and log.
	record	0xa5, 0x01, 0x00, 0x00, 0xa5, 0x02, 0x00, 0x00, 0xa5, 0x05, 0x00, 0x00
	.long	0

	.section .note.GNU-stack, "", @progbits
