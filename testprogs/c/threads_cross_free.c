/* threads_cross_free.c: 100 threads each allocate 500 blocks; then 100 other threads each
 * free the blocks a different thread allocated (thread i frees slot (i + 1) % 100). One
 * block of 64 bytes is lost on purpose (FP:leak).
 *
 * A correct tool counts every allocation and every free (50,001 + libc's own; frees exactly
 * 50,000 more than libc's), reports no error (no free is "invalid": the blocks are freed by
 * a thread that did not allocate them) and one definite record: 64 bytes in 1 block at
 * FP:leak. Prints "freed 50000"; exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 100
#define BLOCKS 500

static void *slots[THREADS][BLOCKS];
static long freed[THREADS];

static void *alloc_slot(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < BLOCKS; i++)
        slots[id][i] = malloc(8 + (size_t)((id + i) % 100));
    return NULL;
}

static void *free_other(void *arg)
{
    long id = (long)arg;
    long other = (id + 1) % THREADS;
    for (int i = 0; i < BLOCKS; i++) {
        free(slots[other][i]);
        freed[id]++;
    }
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, alloc_slot, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, free_other, (void *)i);
    long total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += freed[i];
    }
    void *lost = malloc(64); /* FP:leak */
    lost = NULL;
    printf("freed %ld\n", total);
    return 0;
}
