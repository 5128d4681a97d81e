/* underflow_wide.c: two 8-byte writes covering the 16 bytes before a 24-byte block
 * (what a program does when it takes a block for a struct that starts 16 bytes earlier:
 * a header it thinks it allocated).
 *
 * A correct tool reports one heap-buffer-underflow of a 24-byte block, found at the free
 * (FP:free) unless it sees the instructions: block.size 24, block.offset -16 (the first
 * overwritten byte, 16 bytes before the block), alloc_stack main at FP:alloc; the program
 * runs on to print "still running" and exits 0. No leak.
 *   guard mode: the 16 bytes are canaries in front of the guarded block.
 *   fast mode: they are the block's inline header; its metadata is gone, so the block is
 *   never given back to glibc (whose chunk header in front may be hit too), and the size
 *   and allocation stack in the report come from the analyzer's own record.
 *
 * valgrind 3.19 memcheck (at each instruction):
 *   Invalid write of size 8 at main (underflow_wide.c:FP:bad_low)
 *    Address 0x... is 16 bytes before a block of size 24 alloc'd ... by main (FP:alloc)
 *   Invalid write of size 8 at main (underflow_wide.c:FP:bad_high)
 *    Address 0x... is 8 bytes before a block of size 24 alloc'd ... by main (FP:alloc)
 * Natively: glibc aborts in free ("free(): invalid pointer"): the writes hit the chunk's
 * size field. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    long *p = malloc(3 * sizeof(long)); /* FP:alloc */
    p[0] = p[1] = p[2] = 7;
    p[-2] = 0x1111111111111111; /* FP:bad_low */
    p[-1] = 0x2222222222222222; /* FP:bad_high */
    printf("sum %ld\n", p[0] + p[1] + p[2]);
    free(p); /* FP:free */
    puts("still running");
    return 0;
}
