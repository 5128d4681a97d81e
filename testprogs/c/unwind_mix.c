/* Stacks that change shape between one allocation and the next, for the unwinder's
 * per-thread memo (crates/shim/src/unwind.rs): the same outer frames with different inner
 * ones, recursion to varying depths, frames whose CFA is rbp-based (alloca), libc frames
 * (qsort calling back), longjmp throwing frames away, and a second thread.
 * Built at -O2 and at -O0; tests/unwinding.rs runs it with FENCEPOST_UNWIND=check, and
 * checks the stack of the one leak, made at a known depth.
 * usage: unwind_mix [ROUNDS] */
#include <alloca.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jmp_buf escape;
static volatile unsigned sink;

__attribute__((noinline)) static void *grab(size_t n)
{
    void *p = malloc(n);
    sink += (unsigned)(size_t)p;
    return p;
}

/* rbp-based frame: the CFA is computed from rbp while the alloca'd area is live. */
__attribute__((noinline)) static void with_alloca(int depth, size_t n)
{
    char *scratch = alloca(n);
    memset(scratch, depth, n);
    sink += scratch[n / 2];
    free(grab(n + (size_t)depth));
    if (depth > 0)
        with_alloca(depth - 1, n + 8);
    free(grab(16));
}

__attribute__((noinline)) static void recurse(int depth, int fanout)
{
    void *mine = grab(24 + (size_t)depth);
    if (depth > 0)
        for (int i = 0; i < fanout; i++)
            recurse(depth - 1 - i % 2, fanout);
    else
        with_alloca(depth + 3, 32);
    free(mine);
}

static int compare(const void *a, const void *b)
{
    /* Called from inside libc's qsort: allocations below libc frames. */
    free(grab(8));
    return *(const int *)a - *(const int *)b;
}

__attribute__((noinline)) static void jump_out(int depth)
{
    free(grab(40));
    if (depth == 0)
        longjmp(escape, 1);
    jump_out(depth - 1);
}

__attribute__((noinline)) static char *leak_here(int depth)
{
    if (depth > 0)
        return leak_here(depth - 1);
    return grab(77); /* leak */
}

static void *worker(void *arg)
{
    int rounds = *(int *)arg;
    for (int r = 0; r < rounds; r++) {
        recurse(3 + r % 3, 2);
        with_alloca(r % 5, 64);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    pthread_t t;
    pthread_create(&t, NULL, worker, &rounds);
    for (int r = 0; r < rounds; r++) {
        recurse(2 + r % 4, 2);
        int values[64];
        for (int i = 0; i < 64; i++)
            values[i] = (i * 37 + r) % 64;
        qsort(values, 64, sizeof values[0], compare);
        if (setjmp(escape) == 0)
            jump_out(r % 7);
        with_alloca(r % 3, 16);
    }
    pthread_join(t, NULL);
    char *kept = leak_here(5);
    kept[0] = 'x';
    kept = NULL;
    printf("done %u\n", sink != 0);
    return 0;
}
