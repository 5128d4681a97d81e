/* arena_boundary.c: the program's own mapping on a 64 MiB boundary, and a thread's arena.
 *
 * glibc's per-thread arenas are heaps aligned to 64 MiB; their free chunks hold stale
 * pointers, so the exit scan must not read them as roots. A program's own mapping can
 * start on such a boundary too (gcc's cc1 did, in one run of twenty), and its pointers
 * must be read. This program makes both happen on purpose:
 *
 *   - a block aligned to 64 MiB is freed, and the program maps memory of its own at the
 *     address it had; the only pointer to a 48-byte block (FP:held) is stored there;
 *   - a thread stores the only pointer to a 40-byte block (FP:stale) in a 256-byte block
 *     of its arena, then frees that block: what is left is a stale pointer.
 *
 * A correct tool reports: still reachable, 48 bytes in 1 block at FP:held; definitely
 * lost, 40 bytes in 1 block at FP:stale. No error. Exit status 0.
 * Prints "boundary yes" when the mapping got the aligned address (natively and under
 * fencepost); under valgrind, whose allocator takes no alignment above 16 MiB, the
 * aligned block is not made and it prints "boundary no", with the same findings.
 * valgrind 3.19 memcheck: the same two records.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define REGION (64ul << 20)

static void *lose_in_arena(void *arg)
{
    void **holder = malloc(256);
    memset(holder, 0, 256);
    holder[8] = malloc(40); /* FP:stale */
    memset(holder[8], 3, 40);
    free(holder);
    return arg;
}

int main(void)
{
    /* Freed blocks wait before their memory is given back (memcheck's freelist, fencepost's
     * quarantine: 20 MB each): 24 more blocks freed after it push it through. They are
     * made first, so that none lands where it was. They are aligned beyond what guard
     * pages serve, so from glibc's heap in either fencepost mode. */
    void *aligned = NULL, *push[24];
    if (!RUNNING_ON_VALGRIND && posix_memalign(&aligned, REGION, 1 << 20) != 0)
        return 1;
    for (int i = 0; i < 24; i++)
        if (posix_memalign(&push[i], 1 << 17, 1 << 20) != 0)
            return 1;
    uintptr_t at = (uintptr_t)aligned;
    free(aligned);
    for (int i = 0; i < 24; i++)
        free(push[i]);

    size_t len = 1 << 20; /* inside where the freed block was, however it was placed */
    void **own = at == 0 ? MAP_FAILED
                         : mmap((void *)at, len, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    int boundary = own != MAP_FAILED && (uintptr_t)own == at;
    if (!boundary) {
        if (own != MAP_FAILED)
            munmap(own, len);
        own = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (own == MAP_FAILED)
            return 1;
    }
    /* What a heap's header would hold, but not describing this mapping. */
    own[0] = own + 6;
    own[3] = 0;
    own[1000] = malloc(48); /* FP:held */
    memset(own[1000], 4, 48);

    pthread_t t;
    if (pthread_create(&t, NULL, lose_in_arena, NULL) != 0)
        return 1;
    pthread_join(t, NULL);

    printf("boundary %s\n", boundary ? "yes" : "no");
    return 0;
}
