/* threads_realloc.c: four threads pass blocks to each other through a shared table and
 * grow, shrink, free or replace them with realloc, so that glibc hands a block freed by
 * one thread to another while both are recording. Each block carries its size and a
 * pattern; every thread checks a block it takes before changing it (realloc must keep the
 * contents up to the smaller size), and the program exits 1 on a mismatch.
 *
 * A correct tool reports no error and one definite leak: 40 bytes in 1 block, allocated
 * in main at FP:leak. Exit status 0; stdout "realloc ok".
 * valgrind 3.19 memcheck: "40 bytes in 1 blocks are definitely lost ... main (FP:leak)",
 * no other error. Natively: prints "realloc ok", exits 0.
 *
 * An optional argument replaces the 20,000 rounds per thread. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define SLOTS 512

struct block {
    size_t size; /* bytes of the whole block, this header included */
    unsigned char fill; /* every byte after the header */
};

static unsigned char *payload(struct block *b)
{
    return (unsigned char *)b + sizeof *b;
}

static _Atomic(struct block *) table[SLOTS];
static long rounds = 20000;
static atomic_int bad;

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill(struct block *b, size_t size, unsigned char v)
{
    b->size = size;
    b->fill = v;
    memset(payload(b), v, size - sizeof *b);
}

static int intact(struct block *b)
{
    for (size_t i = 0; i < b->size - sizeof *b; i++)
        if (payload(b)[i] != b->fill)
            return 0;
    return 1;
}

static void *worker(void *arg)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uintptr_t)arg + 1;
    for (long i = 0; i < rounds; i++) {
        uint64_t r = next(&seed);
        size_t size = sizeof(struct block) + 1 + r % 2000;
        struct block *b = atomic_exchange(&table[r % SLOTS], NULL);
        if (!b) {
            b = malloc(size);
            if (!b)
                abort();
            fill(b, size, (unsigned char)r);
        } else {
            if (!intact(b))
                atomic_store(&bad, 1);
            if ((r >> 20) % 4 == 0) {
                free(b);
                continue;
            }
            size_t kept = b->size < size ? b->size : size;
            unsigned char v = b->fill;
            b = realloc(b, size);
            if (!b)
                abort();
            /* What realloc kept must be unchanged; the rest is refilled. */
            for (size_t j = sizeof *b; j < kept; j++)
                if (((unsigned char *)b)[j] != v)
                    atomic_store(&bad, 1);
            fill(b, size, (unsigned char)(r >> 8));
        }
        struct block *old = atomic_exchange(&table[(r >> 32) % SLOTS], b);
        if (old) {
            if (!intact(old))
                atomic_store(&bad, 1);
            free(old);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        rounds = atol(argv[1]);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < SLOTS; i++) {
        struct block *b = atomic_exchange(&table[i], NULL);
        if (b && !intact(b))
            bad = 1;
        free(b);
    }
    char *lost = malloc(40); /* FP:leak */
    lost[0] = 1;
    lost = NULL;
    if (bad) {
        puts("realloc lost data");
        return 1;
    }
    puts("realloc ok");
    return 0;
}
