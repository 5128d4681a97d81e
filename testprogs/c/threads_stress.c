/* threads_stress.c: 8 threads x 200,000 malloc/free pairs, and one deliberate leak.
 *
 * A correct tool records all 1,600,001 allocations (plus any libc makes itself) and
 * balances the books: allocations - frees == blocks in all loss records. It reports
 * exactly one definite loss record:
 *   definite, 48 bytes in 1 block, allocated in worker() at the line marked FP:leak
 *   (threads_stress.c:32), only in thread 6, iteration 777.
 * No error. Exit status 0. Native run time well under 2 s.
 *
 * valgrind 3.19 memcheck: "48 bytes in 1 blocks are definitely lost ... worker
 * (threads_stress.c:32)"; total heap usage 1,600,0xx allocs. Natively: prints
 * "checksum 1600000", exits 0.
 *
 * An optional argument replaces the 200,000 rounds per thread (the loop test of
 * tests/reliability.rs runs it 50 times with fewer); the leak needs at least 778.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 8
static long ROUNDS = 200000;

static void *worker(void *arg)
{
    long id = (long)arg;
    long checksum = 0;
    for (long i = 0; i < ROUNDS; i++) {
        /* sizes 16..271 so several malloc bins are exercised */
        unsigned char *p = malloc(16 + (size_t)((i * 31 + id) % 256));
        p[0] = 1;
        checksum += p[0];
        free(p);
        if (id == 6 && i == 777) {
            unsigned char *lost = malloc(48); /* FP:leak */
            lost[0] = 0;
            checksum += lost[0];
        }
    }
    return (void *)checksum;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        ROUNDS = atol(argv[1]);
    pthread_t threads[THREADS];
    long total = 0;
    for (long i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(threads[i], &ret);
        total += (long)ret;
    }
    printf("checksum %ld\n", total);
    return 0;
}
