/* A deep call stack at every malloc: each allocation is made 40 frames of noinline
 * recursion below main, so a tool that unwinds the whole stack on every malloc (up to
 * its frame limit) pays for it here. Blocks are kept in a small ring and freed later,
 * so frees happen at depth too.
 * usage: deep_stack ALLOCATIONS   (prints a checksum) */
#include <stdio.h>
#include <stdlib.h>

#define DEPTH 40
#define KEEP 256

static void *ring[KEEP];
static unsigned long total;

__attribute__((noinline)) static void at_bottom(unsigned long i)
{
    size_t k = i % KEEP;
    free(ring[k]);
    unsigned char *p = malloc(16 + (i % 200));
    if (!p)
        abort();
    p[0] = (unsigned char)i;
    total += p[0];
    ring[k] = p;
}

__attribute__((noinline)) static void descend(int depth, unsigned long i)
{
    if (depth > 1)
        descend(depth - 1, i);
    else
        at_bottom(i);
    /* Work after the call keeps it from becoming a tail call (which -O2 would turn
     * into a loop, leaving one frame instead of forty). */
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    for (unsigned long i = 0; i < n; i++)
        descend(DEPTH - 1, i); /* main + 39 descend frames + at_bottom = 41 frames */
    for (size_t k = 0; k < KEEP; k++)
        free(ring[k]);
    printf("%lu\n", total);
    return 0;
}
