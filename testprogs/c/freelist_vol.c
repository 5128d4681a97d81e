/* freelist_vol.c: what fast mode's quarantine (--freelist-vol) is for. A 200-byte block is
 * freed (FP:first_free) with a dangling pointer to it kept in a global; 1 MB of other
 * blocks are allocated and freed; a new 200-byte block is allocated (FP:lost) and dropped;
 * then the dangling pointer is freed again (FP:second_free).
 *
 * With the default volume (20,000,000 bytes, memcheck's), the first block is still held
 * back when the new one is allocated, so the new one gets another address. A correct tool
 * reports: double-free at FP:second_free (block of 200 bytes, allocated at FP:first_alloc,
 * freed at FP:first_free), and 200 bytes in 1 block definitely lost at FP:lost.
 * With --freelist-vol=65536 the first block goes back to glibc after 64 KiB of frees, and
 * glibc hands its address to the new block: the dangling pointer then points at the new
 * block (so it is not lost) and the "double" free frees it (so it is a good free). Nothing
 * is reported: the price of a small volume, which is why the default is memcheck's.
 * Prints "done"; exits 0 in both cases.
 *
 * valgrind 3.19 memcheck (default --freelist-vol=20000000):
 *   Invalid free() / delete / delete[] / realloc()
 *      at 0x...: free (vg_replace_malloc.c:872)
 *      by 0x...: main (freelist_vol.c:45)
 *    Address 0x... is 0 bytes inside a block of size 200 free'd
 *      by 0x...: main (freelist_vol.c:36)
 *    Block was alloc'd at
 *      by 0x...: main (freelist_vol.c:35)
 *   200 bytes in 1 blocks are definitely lost in loss record 1 of 1
 *      by 0x...: main (freelist_vol.c:42)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *dangling;

int main(void)
{
    dangling = malloc(200); /* FP:first_alloc */
    free(dangling); /* FP:first_free */
    for (int i = 0; i < 256; i++) {
        char *p = malloc(4096);
        memset(p, i, 4096);
        free(p);
    }
    char *lost = malloc(200); /* FP:lost */
    memset(lost, 1, 200);
    lost = NULL;
    free(dangling); /* FP:second_free */
    puts("done");
    return 0;
}
