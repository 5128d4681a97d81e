/* underflow_kept.c: the 16 bytes before a block overwritten, and the block then resized
 * (realloc) rather than freed; another block underflowed the same way and never freed.
 *
 * A correct tool reports:
 *   - heap-buffer-underflow of the 24-byte block `a`, block.offset -16, found at the
 *     realloc (FP:grow) that released it, alloc_stack main at FP:alloc_a; the realloc still
 *     copies the block: the program prints "a 1 2 3";
 *   - heap-buffer-underflow of the 32-byte block `b`, block.offset -16, found at exit
 *     (b is never freed), alloc_stack main at FP:alloc_b;
 *   - one definite leak: 32 bytes in 1 block allocated at FP:alloc_b.
 * Exit status 0; stdout "a 1 2 3\nstill running\n". In fast mode both headers' metadata
 * is lost, so the sizes and stacks come from the analyzer's own records, and `a`'s chunk
 * is never given back to glibc.
 *
 * valgrind 3.19 memcheck (at the instructions): four "Invalid write of size 8", 16 and 8
 * bytes before a block of size 24 (FP:bad_a) and of size 32 (FP:bad_b); at exit
 * "32 bytes in 1 blocks are definitely lost" allocated at FP:alloc_b.
 * Natively: glibc aborts in realloc ("realloc(): invalid pointer"). */
#include <stdio.h>
#include <stdlib.h>

static void smash_before(long *p)
{
    p[-2] = 0x1111111111111111;
    p[-1] = 0x2222222222222222;
}

int main(void)
{
    long *a = malloc(3 * sizeof(long)); /* FP:alloc_a */
    a[0] = 1, a[1] = 2, a[2] = 3;
    smash_before(a); /* FP:bad_a */
    a = realloc(a, 6 * sizeof(long)); /* FP:grow */
    if (!a)
        return 1;
    printf("a %ld %ld %ld\n", a[0], a[1], a[2]);

    long *b = malloc(4 * sizeof(long)); /* FP:alloc_b */
    b[0] = 4;
    smash_before(b); /* FP:bad_b */
    b = NULL;

    free(a);
    puts("still running");
    return 0;
}
