# The bundled example: a static x86-64 Linux program with no libc — write(1, "Hello, World!\n", 14),
# then exit(0). `scripts/example` builds it with gcc and runs it under secure-run.
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
