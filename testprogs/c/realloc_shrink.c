/* realloc_shrink.c: a block shrunk with realloc from 32 to 16 bytes, then written at its
 * old tail as if it still had 32.
 *
 * A correct tool reports exactly one error and lets the program run on:
 *   heap-buffer-overflow, write of 1 byte, 0 bytes after a 16-byte block
 *   (access.op "write", access.size 1, block.size 16, block.offset 16), count 1;
 *   stack: main at FP:bad_write (realloc_shrink.c:35);
 *   alloc_stack: main at FP:realloc (realloc_shrink.c:34) — the block is the one realloc
 *   returned, not the original malloc (FP:alloc).
 * No leak. Exit status 0; stdout "aaaaaaaaaaaaaaaa".
 *
 * In fast mode (no guard pages; realloc shrinks the block in place) the write is found
 * when the block is freed (FP:free): heap-buffer-overflow of the 16-byte block,
 * block.offset 16, 1 byte overwritten in the canary after it; alloc_stack main at
 * FP:realloc.
 *
 * valgrind 3.19 memcheck:
 *   Invalid write of size 1
 *      at 0x...: main (realloc_shrink.c:35)
 *    Address 0x... is 0 bytes after a block of size 16 alloc'd
 *      at 0x...: realloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (realloc_shrink.c:34)
 * Natively: prints "aaaaaaaaaaaaaaaa", exits 0 (glibc shrinks in place; the byte is
 * still in its chunk).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(32); /* FP:alloc */
    memset(p, 'a', 32);
    p = realloc(p, 16); /* FP:realloc */
    p[16] = 'b'; /* FP:bad_write */
    printf("%.16s\n", p);
    free(p); /* FP:free */
    return 0;
}
