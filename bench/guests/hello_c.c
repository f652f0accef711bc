/* Hello world through glibc (gcc -O2 -static): measures glibc's start-up on top of the VM boot. */
#include <stdio.h>

int main(void) {
    puts("Hello, World!");
    return 0;
}
