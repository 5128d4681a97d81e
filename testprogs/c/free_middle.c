/* free_middle.c: free() of a pointer 16 bytes into a 64-byte block.
 *
 * A correct tool reports one error, ignores that free, and lets the program run on:
 *   invalid-free, block of 64 bytes, offset 16; stack: main at the line marked
 *   FP:bad_free (free_middle.c:21); alloc_stack: main at FP:alloc (free_middle.c:19).
 * The block is then freed properly (FP:good_free), so there is no leak.
 * Exit status 0 (with --error-exitcode=N: N).
 *
 * valgrind 3.19 memcheck: InvalidFree at main (free_middle.c:21), "Address ... is
 * 16 bytes inside a block of size 64 alloc'd" at FP:alloc; no leak.
 * Natively: glibc aborts ("free(): invalid pointer"), SIGABRT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(64); /* FP:alloc */
    memset(p, 0, 64);
    free(p + 16); /* FP:bad_free */
    puts("still running");
    free(p); /* FP:good_free */
    return 0;
}
