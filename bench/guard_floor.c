/* The kernel's floor under guard mode: what one malloc+free costs in page operations
 * alone, with no unwinding, no recording and no analyzer. Each block is a page of its own
 * against a guard page; a freed block's page is guarded at once (a use after free must
 * fault on the instruction), so every block needs a fresh zeroed page when handed out and
 * gives it back when freed.
 *
 *   gcc -O2 -o /tmp/guard_floor bench/guard_floor.c && /tmp/guard_floor [BLOCKS]
 *
 * Prints microseconds per block for:
 *   one-by-one  MADV_GUARD_REMOVE, first write (page fault), MADV_GUARD_INSTALL per block
 *   batched     what guard.rs does: REMOVE and MADV_POPULATE_WRITE for 16 blocks in one
 *               process_madvise(PIDFD_SELF) each, then one MADV_GUARD_INSTALL per free
 *   all-batched the three operations 16 blocks at a time (installs delayed: not allowed,
 *               a use after free in the delay would go unseen; shown as the floor)
 * Needs Linux 6.13+ (guard madvise, process_madvise on oneself). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define GUARD_INSTALL 102
#define GUARD_REMOVE 103
#define POPULATE_WRITE 23
#define PIDFD_SELF (-10000)
#define BATCH 16
#define PAGE 4096UL

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static long pmadvise(struct iovec *iov, int n, int advice)
{
    return syscall(SYS_process_madvise, PIDFD_SELF, iov, n, advice, 0);
}

int main(int argc, char **argv)
{
    long blocks = argc > 1 ? atol(argv[1]) : 200000;
    blocks -= blocks % BATCH;
    size_t slot = 2 * PAGE; /* data page + guard page */
    char *region = mmap(NULL, slot * blocks, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED || madvise(region, slot * blocks, GUARD_INSTALL) != 0) {
        perror("guard region (needs Linux 6.13+)");
        return 1;
    }
    struct iovec iov[BATCH];

    double t0 = now();
    for (long i = 0; i < blocks; i++) {
        char *p = region + i * slot;
        madvise(p, PAGE, GUARD_REMOVE);
        p[PAGE - 16] = 1;
        madvise(p, PAGE, GUARD_INSTALL);
    }
    double t1 = now();
    for (long i = 0; i < blocks; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            iov[k] = (struct iovec){region + (i + k) * slot, PAGE};
        if (pmadvise(iov, BATCH, GUARD_REMOVE) < 0) {
            perror("process_madvise");
            return 1;
        }
        pmadvise(iov, BATCH, POPULATE_WRITE);
        for (int k = 0; k < BATCH; k++) {
            char *p = region + (i + k) * slot;
            p[PAGE - 16] = 1;
            madvise(p, PAGE, GUARD_INSTALL);
        }
    }
    double t2 = now();
    for (long i = 0; i < blocks; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            iov[k] = (struct iovec){region + (i + k) * slot, PAGE};
        pmadvise(iov, BATCH, GUARD_REMOVE);
        pmadvise(iov, BATCH, POPULATE_WRITE);
        for (int k = 0; k < BATCH; k++)
            region[(i + k) * slot + PAGE - 16] = 1;
        pmadvise(iov, BATCH, GUARD_INSTALL);
    }
    double t3 = now();
    printf("guard floor, %ld blocks, microseconds per malloc+free:\n", blocks);
    printf("  one-by-one   %.2f\n", (t1 - t0) / blocks * 1e6);
    printf("  batched      %.2f   (guard.rs)\n", (t2 - t1) / blocks * 1e6);
    printf("  all-batched  %.2f   (not allowed: delays the free's guard)\n",
           (t3 - t2) / blocks * 1e6);
    return 0;
}
