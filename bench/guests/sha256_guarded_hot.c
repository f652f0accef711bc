/* sha256.c with a MOV to CR3 that never runs on the page of its hot loop: in mpk the loop runs
 * single-stepped (the guarded-code rows of performance.md). */
#define GUARDED_HOT
#include "sha256.c"
