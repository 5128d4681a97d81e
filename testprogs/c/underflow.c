/* underflow.c: a write one byte before a 16-byte block (p[-1]).
 *
 * By default the bytes before a guarded block are canaries, checked when the block is
 * freed, so a correct tool reports at the free:
 *   heap-buffer-underflow, found_at "free", block.size 16, block.offset -1 (the first
 *   overwritten canary byte, 1 byte before the block), count 1; stack and free_stack:
 *   main at FP:free (underflow.c:34); alloc_stack: main at FP:alloc (underflow.c:30).
 *   The instruction was not seen: `access`, if given, can only be a write of the changed bytes.
 * With --protect-below (the guard page below the block) it is found at the instruction:
 *   heap-buffer-underflow, write of 1 byte, 1 byte before a 16-byte block
 *   (access.op "write", access.size 1, block.size 16, block.offset -1), count 1;
 *   stack: main at FP:bad_write (underflow.c:31); alloc_stack: main at FP:alloc.
 * No leak. Exit status 0; stdout "sixteen bytes..".
 *
 * valgrind 3.19 memcheck (always at the instruction):
 *   Invalid write of size 1
 *      at 0x...: main (underflow.c:31)
 *    Address 0x... is 1 bytes before a block of size 16 alloc'd
 *      at 0x...: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (underflow.c:30)
 * Natively: glibc aborts in free ("double free or corruption (out)"): p[-1] is the high
 * byte of the chunk's size field. (stdout, if a pipe, is lost with the abort.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(16); /* FP:alloc */
    p[-1] = 'x'; /* FP:bad_write */
    memcpy(p, "sixteen bytes..", 16);
    puts(p);
    free(p); /* FP:free */
    return 0;
}
