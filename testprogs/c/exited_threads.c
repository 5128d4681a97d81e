/* exited_threads.c: four threads run and are joined while a fifth still runs at exit.
 *
 * glibc keeps a joined thread's stack, with its descriptor and its DTV (the table of the
 * thread's TLS blocks, which the dynamic linker callocs), in a cache for the next thread.
 * memcheck calls __libc_freeres at exit, which frees that cache, so the four DTVs are not
 * in use at exit. fencepost calls it only when no other thread runs (it would not be safe
 * here), so the DTVs are still in use: reachable from glibc's cache, not lost.
 *
 * A correct tool reports:
 *   definite, 24 bytes in 1 block, allocated in main at the line marked FP:lost;
 *   possible, 1 block allocated in pthread_create: the running thread's DTV (its
 *   descriptor points 16 bytes into it); its size depends on the modules with TLS loaded,
 *   fencepost's shim among them;
 *   no lost block from the four joined threads.
 * Exit status 0. The waiter is asleep in pause(2) when main returns (main reads
 * /proc/self/task/TID/syscall until it is), so that its stack is found from its stack
 * pointer.
 *
 * valgrind 3.19 memcheck: "24 bytes in 1 blocks are definitely lost ... by main
 * (exited_threads.c:NN)", "272 bytes in 1 blocks are possibly lost ... by pthread_create".
 * Natively: prints "joined 4", exits 0.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile long waiter_tid;

/* Returns once thread `tid` sleeps in system call `nr`, as /proc/self/task/TID/syscall
 * shows it ("NR ARGS... SP PC"; "running" while it runs), so that the exit finds it there.
 * Reads with open/read: no block of its own. Gives up after 10 s. */
static void wait_until_in_syscall(long tid, long nr)
{
    char path[64], want[24], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
    int want_len = snprintf(want, sizeof want, "%ld ", nr);
    for (int i = 0; i < 10000; i++) {
        int fd = open(path, O_RDONLY);
        ssize_t n = fd < 0 ? -1 : read(fd, line, sizeof line - 1);
        if (fd >= 0)
            close(fd);
        if (n >= want_len && memcmp(line, want, want_len) == 0)
            return;
        usleep(1000);
    }
}

static void *work(void *arg)
{
    char *scratch = malloc(100);
    memset(scratch, 1, 100);
    free(scratch);
    return arg;
}

static void *wait_forever(void *arg)
{
    waiter_tid = syscall(SYS_gettid);
    for (;;)
        pause();
    return arg;
}

int main(void)
{
    pthread_t workers[4], waiter;
    for (int i = 0; i < 4; i++)
        pthread_create(&workers[i], NULL, work, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(workers[i], NULL);
    pthread_create(&waiter, NULL, wait_forever, NULL);
    /* Exit once the waiter sleeps in the kernel, where its stack pointer can be read. */
    while (!waiter_tid)
        usleep(1000);
    wait_until_in_syscall(waiter_tid, SYS_pause);

    char *lost = malloc(24); /* FP:lost */
    memset(lost, 2, 24);
    lost = NULL;
    printf("joined %d\n", 4);
    return 0;
}
