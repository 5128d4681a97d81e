/* int_array_write.c: an int array written one past its end, three times.
 *
 * fill() loops with `<=`, so it writes a[10] of a 10-int (40-byte) block; main calls it
 * three times from one line, so the same bad write (same instruction, same stack) happens
 * three times.
 *
 * A correct tool reports exactly one error context and lets the program run on:
 *   heap-buffer-overflow, write of 4 bytes, 0 bytes after a 40-byte block
 *   (access.op "write", access.size 4, block.size 40, block.offset 40), count 3;
 *   stack: fill at FP:bad_write (int_array_write.c:38), called from main at FP:call
 *   (int_array_write.c:45); alloc_stack: main at FP:alloc (int_array_write.c:43).
 * No leak. Exit status 0; stdout "a[9] = 11".
 *
 * In fast mode (no guard pages) the write is found when the block is freed (FP:free):
 * heap-buffer-overflow of the 40-byte block, block.offset 40, the 4 bytes of a[10]
 * overwritten in the canary after it; alloc_stack main at FP:alloc.
 *
 * valgrind 3.19 memcheck:
 *   Invalid write of size 4
 *      at 0x...: fill (int_array_write.c:38)
 *      by 0x...: main (int_array_write.c:45)
 *    Address 0x... is 0 bytes after a block of size 40 alloc'd
 *      at 0x...: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (int_array_write.c:43)
 *   ERROR SUMMARY: 3 errors from 1 contexts (the XML's <errorcounts> says 3)
 * Natively: glibc aborts in printf's malloc ("malloc assertion failure in sysmalloc"):
 * a[10] overwrote the size field of the chunk after the block (the top chunk).
 */
#include <stdio.h>
#include <stdlib.h>

#define N 10

/* noinline: the bad write is in its own frame, called from main. */
__attribute__((noinline)) static void fill(int *a, int round)
{
    for (int i = 0; i <= N; i++)
        a[i] = round + i; /* FP:bad_write */
}

int main(void)
{
    int *a = malloc(N * sizeof *a); /* FP:alloc */
    for (int round = 0; round < 3; round++)
        fill(a, round); /* FP:call */
    printf("a[9] = %d\n", a[9]);
    free(a); /* FP:free */
    return 0;
}
