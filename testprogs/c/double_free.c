/* double_free.c: a block freed twice.
 *
 * A correct tool reports one error and lets the program run on:
 *   double-free, block of 32 bytes at offset 0; stack: main at the line marked
 *   FP:second_free (double_free.c:24); alloc_stack: main at FP:alloc
 *   (double_free.c:20); free_stack: main at FP:first_free (double_free.c:23).
 * No leak (the block was freed once). Exit status 0 (with --error-exitcode=N: N).
 *
 * valgrind 3.19 memcheck: InvalidFree "Invalid free() / delete / delete[] /
 * realloc()" at main (double_free.c:24), "Address ... is 0 bytes inside a block of
 * size 32 free'd" at FP:first_free, "Block was alloc'd at" FP:alloc; no leak.
 * Natively: glibc aborts ("free(): double free detected in tcache 2"), SIGABRT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(32); /* FP:alloc */
    strcpy(p, "freed twice");
    puts(p);
    free(p); /* FP:first_free */
    free(p); /* FP:second_free */
    puts("still running");
    return 0;
}
