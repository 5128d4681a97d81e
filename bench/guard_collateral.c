/* What one guarded block costs the rest of the program: a loop of random reads over a
 * 16 MB array (a program's working set), with, every N iterations, what guard mode does for
 * one block (the page's guard removed, the page written, its guard installed again).
 *
 *   gcc -O2 -o /tmp/guard_collateral bench/guard_collateral.c
 *   /tmp/guard_collateral 0; /tmp/guard_collateral 13000
 *
 * The difference between the two runs, divided by the page operations, is what one block's
 * guard costs the loop, its own system calls included. bench/guard_floor.c measures those
 * system calls alone (about 2 us); here each costs several times that, because the install
 * takes the page away and the loop then misses in the TLB and the caches it had filled.
 * Needs Linux 6.13+ (MADV_GUARD_INSTALL). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define GUARD_INSTALL 102
#define GUARD_REMOVE 103
#define PAGE 4096UL

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    long every = argc > 1 ? atol(argv[1]) : 0; /* a page operation every N reads; 0: none */
    size_t n = 1 << 22;
    unsigned *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++)
        a[i] = i * 2654435761u;
    char *region = mmap(NULL, 1UL << 34, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED || madvise(region, PAGE, GUARD_INSTALL) != 0) {
        perror("guard region (needs Linux 6.13+)");
        return 1;
    }
    long pages = 0;
    unsigned long sum = 0;
    unsigned x = 1;
    double t0 = now();
    for (long it = 0; it < 200000000; it++) {
        x = x * 1103515245 + 12345;
        sum += a[x & (n - 1)];
        if (every && it % every == 0) {
            char *p = region + pages * 2 * PAGE; /* a data page, a guard page, ... */
            madvise(p, PAGE, GUARD_REMOVE);
            p[0] = 1;
            madvise(p, PAGE, GUARD_INSTALL);
            pages++;
        }
    }
    double t1 = now();
    printf("a page operation every %ld reads: %.3f s, %ld page operations (sum %lu)\n", every,
           t1 - t0, pages, sum);
    return 0;
}
