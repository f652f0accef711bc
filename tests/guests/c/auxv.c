/* The auxiliary vector, checked against what the binary knows about itself. Prints only facts that are
 * the same natively and in the VM (no addresses). */
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include "guest.h"

extern const ElfW(Ehdr) __ehdr_start;
extern char _start[];

int main(int argc, char **argv)
{
	(void)argc;
	printf("AT_PAGESZ=%lu\n", getauxval(AT_PAGESZ));
	const unsigned char *random = (const unsigned char *)getauxval(AT_RANDOM);
	check(random != NULL, "AT_RANDOM present");
	if (random) {
		/* 16 random bytes: all zero would mean nobody filled them in. */
		int nonzero = 0;
		for (int i = 0; i < 16; i++)
			nonzero |= random[i];
		check(nonzero, "AT_RANDOM not all zero");
	}
	const ElfW(Phdr) *phdr = (const ElfW(Phdr) *)getauxval(AT_PHDR);
	check(phdr == (const ElfW(Phdr) *)((const char *)&__ehdr_start + __ehdr_start.e_phoff), "AT_PHDR");
	check(getauxval(AT_PHNUM) == __ehdr_start.e_phnum, "AT_PHNUM");
	check(getauxval(AT_PHENT) == sizeof(ElfW(Phdr)), "AT_PHENT");
	check(getauxval(AT_ENTRY) == (unsigned long)_start, "AT_ENTRY");
	const char *execfn = (const char *)getauxval(AT_EXECFN);
	check(execfn != NULL && strcmp(execfn, argv[0]) == 0, "AT_EXECFN equals argv[0]");
	printf("AT_BASE=%lu\n", getauxval(AT_BASE));
	printf("AT_SECURE=%lu\n", getauxval(AT_SECURE));
	return guest_exit_status();
}
