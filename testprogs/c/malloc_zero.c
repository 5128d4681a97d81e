/* malloc_zero.c: a write into the block malloc(0) returned.
 *
 * malloc(0) returns a unique pointer to a block of 0 bytes: no byte of it may be touched.
 * A correct tool reports exactly one error and lets the program run on:
 *   heap-buffer-overflow, write of 1 byte, 0 bytes after a 0-byte block
 *   (access.op "write", access.size 1, block.size 0, block.offset 0), count 1;
 *   stack: main at FP:bad_write (malloc_zero.c:29);
 *   alloc_stack: main at FP:alloc (malloc_zero.c:28).
 * No leak. Exit status 0; stdout "still running".
 *
 * In fast mode (no guard pages) the write is found when the block is freed (FP:free):
 * heap-buffer-overflow of the 0-byte block, block.offset 0, 1 byte overwritten in the
 * canary after it; alloc_stack main at FP:alloc.
 *
 * valgrind 3.19 memcheck:
 *   Invalid write of size 1
 *      at 0x...: main (malloc_zero.c:29)
 *    Address 0x... is 0 bytes after a block of size 0 alloc'd
 *      at 0x...: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (malloc_zero.c:28)
 * Natively: prints "still running", exits 0 (glibc's minimum chunk has room).
 */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    char *p = malloc(0); /* FP:alloc */
    p[0] = 'x'; /* FP:bad_write */
    puts("still running");
    free(p); /* FP:free */
    return 0;
}
