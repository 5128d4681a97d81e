/* blocked_read.c: when main returns, a second thread is asleep in read(2) on an empty pipe,
 * reading into a block whose only pointer is the system call's buffer argument: a register.
 *
 * memcheck takes every thread's registers for roots, so the block is still reachable.
 * fencepost takes the argument registers of the threads blocked in a system call, which
 * /proc/self/task/TID/syscall shows. Built with -O2, so that the pointer goes from malloc's
 * return straight into rsi, with no copy on the stack.
 *
 * A correct tool reports:
 *   reachable, 64 bytes in 1 block, allocated in reader at the line marked FP:held;
 *   definite, 24 bytes in 1 block, allocated in main at the line marked FP:lost;
 *   no error. Exit status 0.
 *
 * valgrind 3.19 memcheck: "24 bytes in 1 blocks are definitely lost ... by main
 * (blocked_read.c:NN)", "still reachable: 64 bytes in 1 blocks" (and the reader's DTV,
 * possibly lost, as exited_threads.c explains).
 * Natively: prints "waiting", exits 0.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fds[2];
static volatile long reader_tid;

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

static void *reader(void *arg)
{
    long got;
    reader_tid = syscall(SYS_gettid);
    __asm__ volatile("syscall"
                     : "=a"(got)
                     : "a"((long)SYS_read), "D"((long)fds[0]), "S"(malloc(64)), /* FP:held */
                       "d"(64L)
                     : "rcx", "r11", "memory");
    return (void *)got;
}

int main(void)
{
    pthread_t thread;
    if (pipe(fds) != 0)
        return 1;
    pthread_create(&thread, NULL, reader, NULL);
    while (!reader_tid)
        usleep(1000);
    wait_until_in_syscall(reader_tid, SYS_read);

    char *lost = malloc(24); /* FP:lost */
    memset(lost, 1, 24);
    __asm__ volatile("" : : "r"(lost) : "memory"); /* kept at -O2 */
    lost = NULL;
    puts("waiting");
    return 0;
}
