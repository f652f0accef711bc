/* uname: only the fields a Linux program relies on and that match the host (the release, node name
 * and version are the VM's own business). */
#include <stdio.h>
#include <sys/utsname.h>

int main(void)
{
	struct utsname name;
	if (uname(&name) != 0) {
		perror("uname");
		return 1;
	}
	printf("%s %s\n", name.sysname, name.machine);
	return 0;
}
