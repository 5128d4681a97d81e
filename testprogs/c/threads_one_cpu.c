/* threads_one_cpu.c: two threads free blocks as fast as they can, then the program idles.
 *
 * In guard mode every free takes a page away from the process, and every other CPU that
 * runs one of its threads must be interrupted to drop it; fencepost's --one-cpu=auto
 * then runs the threads on one CPU while the frees last, and gives the CPUs back once
 * they stop. The program reports what it sees of that in its CPU mask:
 *
 *   start N      CPUs in the main thread's mask at the start
 *   churned M    the fewest CPUs either churning thread saw in its mask
 *   after K      CPUs in the main thread's mask after the idle phase
 *
 * usage: threads_one_cpu CHURN_MS IDLE_MS
 *   Each thread churns for CHURN_MS, or for 800 ms more once it sees a mask of one CPU
 *   (fencepost judges the move over 400 ms); the main thread then waits up to IDLE_MS for
 *   its mask to be as it was at the start.
 *   Defaults: 200 and 0.
 *
 * Findings (fencepost in either mode, and valgrind 3.19 memcheck): one definite leak,
 * 48 bytes in 1 block, allocated at the line marked FP:leak; no error. Exit status 0.
 * Natively: start N, churned N, after N (N: the CPUs the program may use).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long churn_ms = 200;

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int cpus_in_mask(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    return CPU_COUNT(&set);
}

static void *churn(void *arg)
{
    long end = now_ms() + churn_ms;
    int fewest = cpus_in_mask();
    void *blocks[16];
    (void)arg;
    while (now_ms() < end) {
        for (int round = 0; round < 64; round++) {
            for (int i = 0; i < 16; i++) {
                blocks[i] = malloc(24 + i * 8);
                memset(blocks[i], i, 24 + i * 8);
            }
            for (int i = 0; i < 16; i++)
                free(blocks[i]);
        }
        int n = cpus_in_mask();
        if (n == 1 && fewest > 1 && now_ms() + 800 < end)
            end = now_ms() + 800; /* long enough for fencepost to see that it paid */
        if (n < fewest)
            fewest = n;
    }
    return (void *)(long)fewest;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        churn_ms = atol(argv[1]);
    long idle_ms = argc > 2 ? atol(argv[2]) : 0;
    int start = cpus_in_mask();
    printf("start %d\n", start);

    char *kept = malloc(48); /* FP:leak */
    memset(kept, 7, 48);
    kept = NULL;

    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, churn, NULL) != 0)
            return 1;
    long fewest = start;
    for (int i = 0; i < 2; i++) {
        void *seen;
        pthread_join(t[i], &seen);
        if ((long)seen < fewest)
            fewest = (long)seen;
    }
    printf("churned %ld\n", fewest);

    long end = now_ms() + idle_ms;
    int after = cpus_in_mask();
    while (after != start && now_ms() < end) {
        usleep(50 * 1000);
        after = cpus_in_mask();
    }
    printf("after %d\n", after);
    return 0;
}
