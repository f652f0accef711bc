/* Hostile guest: stops the VM through the exit port itself, with no verdict sent before (and 42 as the
 * port's value, a status it would like). The VMM must report that as tampering, not as an end of the
 * app; at CPL3 (ring3) the OUT itself faults. */
#include "attack.inc"
	.set	EXIT_PORT, 0xf4
	ATTACK_START
	print_str "stopping the VM\n"
	mov	$42, %eax
	out	%eax, $EXIT_PORT
	print_str "the VM went on\n"
	exit_with 1
