/* strcpy_overflow.c: strcpy into malloc(strlen(s)), one byte short for the terminating NUL.
 *
 * The faulting write is inside libc's strcpy (whichever variant glibc picked for this CPU:
 * it may store the tail with one wide, overlapping write), so a correct tool reports:
 *   heap-buffer-overflow, access.op "write", block.size 9, and an access that covers
 *   offset 9 (the first byte after the block): block.offset <= 9 < block.offset +
 *   access.size. memcheck, whose own byte-by-byte strcpy replaces glibc's, says a 1-byte
 *   write at offset 9. count 1.
 *   stack: innermost frame in libc (strcpy), and further out main at FP:strcpy
 *   (strcpy_overflow.c:35) — the stack must reach the user's line;
 *   alloc_stack: main at FP:alloc (strcpy_overflow.c:34).
 * No leak. Exit status 0; stdout "fencepost".
 *
 * In fast mode (no guard pages) the NUL is found when the block is freed (FP:free):
 * heap-buffer-overflow of the 9-byte block, block.offset 9, 1 byte overwritten in the
 * canary after it; alloc_stack main at FP:alloc.
 *
 * valgrind 3.19 memcheck:
 *   Invalid write of size 1
 *      at 0x...: strcpy (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (strcpy_overflow.c:35)
 *    Address 0x... is 0 bytes after a block of size 9 alloc'd
 *      at 0x...: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (strcpy_overflow.c:34)
 * Natively: prints "fencepost", exits 0 (the NUL lands in glibc's chunk padding).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    const char *s = "fencepost";
    char *d = malloc(strlen(s)); /* FP:alloc */
    strcpy(d, s); /* FP:strcpy */
    printf("%.9s\n", d);
    free(d); /* FP:free */
    return 0;
}
