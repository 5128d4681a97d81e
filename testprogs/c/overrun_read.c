/* overrun_read.c: an off-by-one read. A `<=` loop bound reads one byte past a 13-byte block.
 *
 * A correct tool reports exactly one error and lets the program run on:
 *   heap-buffer-overflow, read of 1 byte, 0 bytes after a 13-byte block
 *   (access.op "read", access.size 1, block.size 13, block.offset 13), count 1;
 *   stack: main at the line marked FP:bad_read (overrun_read.c:30);
 *   alloc_stack: main at FP:alloc (overrun_read.c:26); free_stack: null.
 * No leak. Exit status 0; stdout "sum done".
 * Under --mode=fast (glibc's blocks, no guard pages) the read is not found.
 *
 * valgrind 3.19 memcheck:
 *   Invalid read of size 1
 *      at 0x...: main (overrun_read.c:30)
 *    Address 0x... is 0 bytes after a block of size 13 alloc'd
 *      at 0x...: malloc (vg_replace_malloc.c:381)
 *      by 0x...: main (overrun_read.c:26)
 *   ERROR SUMMARY: 1 errors from 1 contexts
 * Natively: prints "sum done", exits 0 (the byte read is glibc's chunk padding).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(13); /* FP:alloc */
    memcpy(p, "thirteen byte", 13);
    int sum = 0;
    for (int i = 0; i <= 13; i++)
        sum += p[i]; /* FP:bad_read */
    printf("sum %s\n", sum != 0 ? "done" : "zero");
    free(p);
    return 0;
}
