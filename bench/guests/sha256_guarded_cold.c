/* sha256.c with a MOV to CR3 that never runs, alone on a page no executed code shares: in mpk nothing
 * is single-stepped (the guarded-code rows of performance.md). */
#define GUARDED_COLD
#include "sha256.c"
