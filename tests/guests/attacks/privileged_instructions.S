/* Attack 12: harmless privileged instructions: CLI; STI, a read of CR0, an OUT to the unused POST port.
 * At CPL3 the first one raises #GP; at CPL0 (mpk and none) they all execute: the app may do this much
 * by design, none of it touches protection keys or paging. */
#include "attack.inc"
	ATTACK_START
	print_str "CLI; STI\n"
	cli
	sti
	print_str "MOV from CR0\n"
	mov	%cr0, %rax
	print_str "OUT to port 0x80\n"
	out	%al, $0x80
	print_str "privileged instructions: executed\n"
	exit_with 0
