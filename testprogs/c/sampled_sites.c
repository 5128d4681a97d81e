/* sampled_sites.c: what --mode=sampled checks at the instruction and what it leaves to
 * fast mode's checks at free.
 *
 * A hot loop allocates 200,000 blocks of 40 bytes from one call site, fills and frees them
 * (clean), and keeps block 100,000 without a pointer to it: a definite leak of 40 bytes in
 * 1 block allocated at FP:hot_alloc. A realloc chain grows one buffer 2,000 times
 * (FP:grow) and frees it (clean). Two call sites are reached once each:
 *   - label(): malloc(strlen(s)) at FP:once_alloc, then the copy's NUL is written one
 *     byte past the 11-byte block at FP:once_write: heap-buffer-overflow, write of 1
 *     byte, block.size 11, block.offset 11, count 1;
 *   - stale(): a 16-byte block allocated at FP:uaf_alloc and freed at FP:uaf_free, then
 *     an int read from it at FP:uaf_read: use-after-free, read of 4 bytes at offset 4,
 *     count 1.
 * Exit status 0; stdout "label 11, stale 1, hot 200000, grown 2000".
 *
 * --mode=sampled (each call site's first 4 blocks guarded, then about 1 in 1,000): both
 * once-only sites are guarded, so both errors are found at the instruction, with the
 * alloc and free stacks; the hot site's first blocks and about 200 more are guarded.
 * With --sample-first=0 and a rate of 1,000,000,000, nothing is guarded: the overflow is
 * found when the block is freed (FP:once_free, 1 byte at offset 11 in the canary after
 * it), the use after free is not found, and the leak is the same.
 * Guard mode finds both errors at the instruction; fast mode finds the overflow at free.
 *
 * valgrind 3.19 memcheck:
 *   Invalid write of size 1
 *      at 0x...: label (sampled_sites.c:52)
 *    Address 0x... is 0 bytes after a block of size 11 alloc'd
 *      at 0x...: malloc (vg_replace_malloc.c:381)
 *      by 0x...: label (sampled_sites.c:50)
 *   Invalid read of size 4
 *      at 0x...: stale (sampled_sites.c:64)
 *    Address 0x... is 4 bytes inside a block of size 16 free'd
 *      at 0x...: free (vg_replace_malloc.c:872)
 *      by 0x...: stale (sampled_sites.c:62)
 *    Block was alloc'd at
 *      at 0x...: malloc (vg_replace_malloc.c:381)
 *      by 0x...: stale (sampled_sites.c:60)
 *   40 bytes in 1 blocks are definitely lost in loss record 1 of 1
 *      at 0x...: malloc (vg_replace_malloc.c:381)
 *      by 0x...: hot (sampled_sites.c:71)
 * Natively: the same output (the stray byte lands in glibc's chunk padding), exit 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t label(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n); /* FP:once_alloc */
    for (size_t i = 0; i <= n; i++)
        p[i] = s[i]; /* FP:once_write */
    size_t len = p[0] == s[0] ? n : 0;
    free(p); /* FP:once_free */
    return len;
}

static int stale(void)
{
    int *q = malloc(4 * sizeof(int)); /* FP:uaf_alloc */
    q[1] = 4;
    free(q); /* FP:uaf_free */
    volatile int *v = q;
    return v[1] != 0x7fffffff; /* FP:uaf_read */
}

static long hot(long n)
{
    long done = 0;
    for (long i = 0; i < n; i++) {
        char *b = malloc(40); /* FP:hot_alloc */
        memset(b, (int)i, 40);
        done += b[39] == (char)i;
        if (i != n / 2)
            free(b);
        /* else: block 100,000 is dropped, still filled, without a pointer to it */
    }
    return done;
}

static long grow(long n)
{
    char *buf = NULL;
    for (long i = 1; i <= n; i++) {
        buf = realloc(buf, (size_t)i * 8); /* FP:grow */
        buf[i * 8 - 1] = 1;
    }
    free(buf);
    return n;
}

int main(void)
{
    size_t l = label("eleven char");
    int s = stale();
    long h = hot(200000);
    long g = grow(2000);
    printf("label %zu, stale %d, hot %ld, grown %ld\n", l, s, h, g);
    return 0;
}
