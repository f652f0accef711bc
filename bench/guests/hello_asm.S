# Hello world without libc: write(1, "Hello, World!\n", 14), then exit(0) — the smallest thing a VM boot
# can be measured with (the same program as examples/hello.S).
.intel_syntax noprefix
.global _start
_start:
    mov eax, 1                  # write
    mov edi, 1                  # fd 1
    lea rsi, [rip + message]
    mov edx, 14
    syscall
    mov eax, 60                 # exit
    xor edi, edi
    syscall
message:
    .ascii "Hello, World!\n"
