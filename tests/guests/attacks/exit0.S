/* Does nothing and exits 0: the app of the `--print-layout` run that tells the tests and the evaluation
 * where the kernel's regions are. */
#include "attack.inc"
	ATTACK_START
	exit_with 0
