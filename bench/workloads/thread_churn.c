/* Two threads churning mixed sizes: each thread owns a table of slots and, driven by its
 * own xorshift generator, mallocs, reallocs (grow or shrink) or frees a random slot, with
 * sizes from 8 to 4096 bytes. Exercises the tool's locking/ring under contention, realloc,
 * and glibc's per-thread arenas. Everything is freed at the end.
 * usage: thread_churn OPS_PER_THREAD   (prints a checksum of the bytes seen) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 4096
#define THREADS 2

struct churn { uint64_t seed; long ops; uint64_t sum; };

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t r)
{
    /* Mostly small blocks, some large: 8..4096 with a bias towards the small end. */
    return (r & 3) ? 8 + (r >> 8) % 248 : 8 + (r >> 8) % 4089;
}

static void *churn(void *arg)
{
    struct churn *c = arg;
    unsigned char **slot = calloc(SLOTS, sizeof *slot);
    size_t *len = calloc(SLOTS, sizeof *len);
    if (!slot || !len)
        abort();
    for (long i = 0; i < c->ops; i++) {
        uint64_t r = next(&c->seed);
        size_t k = r % SLOTS;
        size_t n = pick_size(r >> 12);
        switch ((r >> 40) % 4) {
        case 0:
        case 1: /* malloc (replacing what was there) */
            if (slot[k]) {
                c->sum += slot[k][len[k] - 1];
                free(slot[k]);
            }
            slot[k] = malloc(n);
            if (!slot[k])
                abort();
            memset(slot[k], (int)(i & 0xff), n);
            len[k] = n;
            break;
        case 2: { /* realloc */
            unsigned char *p = realloc(slot[k], n);
            if (!p)
                abort();
            if (n > len[k])
                memset(p + len[k], (int)(i & 0xff), n - len[k]);
            slot[k] = p;
            len[k] = n;
            break;
        }
        case 3: /* free */
            if (slot[k]) {
                c->sum += slot[k][0];
                free(slot[k]);
                slot[k] = NULL;
                len[k] = 0;
            }
            break;
        }
    }
    for (size_t k = 0; k < SLOTS; k++)
        free(slot[k]);
    free(slot);
    free(len);
    return NULL;
}

int main(int argc, char **argv)
{
    long ops = argc > 1 ? atol(argv[1]) : 1000000;
    pthread_t t[THREADS];
    struct churn c[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct churn){ .seed = 0x9e3779b97f4a7c15ULL * (i + 1), .ops = ops, .sum = 0 };
        if (pthread_create(&t[i], NULL, churn, &c[i]) != 0)
            return 1;
    }
    uint64_t sum = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        sum += c[i].sum;
    }
    printf("%llu\n", (unsigned long long)sum);
    return 0;
}
