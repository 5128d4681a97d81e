/* threads_leak.c: four threads, each leaking one block from its own function.
 *
 * A correct tool reports four definite loss records, one per thread function:
 *   definite, 44 bytes in 1 block, leak_d (line marked FP:leak_d, threads_leak.c:45)
 *   definite, 33 bytes in 1 block, leak_c (FP:leak_c, threads_leak.c:37)
 *   definite, 22 bytes in 1 block, leak_b (FP:leak_b, threads_leak.c:29)
 *   definite, 11 bytes in 1 block, leak_a (FP:leak_a, threads_leak.c:21)
 * (biggest first). The threads are joined; no other leak, no error. Exit status 0.
 *
 * valgrind 3.19 memcheck: the same four "definitely lost" records (11, 22, 33, 44
 * bytes) at leak_a..leak_d; nothing else lost. Natively: prints "sum 110", exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each thread fills its block and returns a byte count, never the pointer. */
static void *leak_a(void *arg)
{
    char *p = malloc(11); /* FP:leak_a */
    memset(p, 1, 11);
    (void)arg;
    return (void *)(long)11;
}

static void *leak_b(void *arg)
{
    char *p = malloc(22); /* FP:leak_b */
    memset(p, 2, 22);
    (void)arg;
    return (void *)(long)22;
}

static void *leak_c(void *arg)
{
    char *p = malloc(33); /* FP:leak_c */
    memset(p, 3, 33);
    (void)arg;
    return (void *)(long)33;
}

static void *leak_d(void *arg)
{
    char *p = malloc(44); /* FP:leak_d */
    memset(p, 4, 44);
    (void)arg;
    return (void *)(long)44;
}

int main(void)
{
    void *(*fns[4])(void *) = {leak_a, leak_b, leak_c, leak_d};
    pthread_t threads[4];
    long sum = 0;
    for (int i = 0; i < 4; i++)
        pthread_create(&threads[i], NULL, fns[i], NULL);
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(threads[i], &ret);
        sum += (long)ret;
    }
    printf("sum %ld\n", sum);
    return 0;
}
