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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fds[2];
static volatile int started;

static void *reader(void *arg)
{
    long got;
    started = 1;
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
    while (!started)
        usleep(1000);
    usleep(50000); /* the reader is asleep in read(2) by now */

    char *lost = malloc(24); /* FP:lost */
    memset(lost, 1, 24);
    __asm__ volatile("" : : "r"(lost) : "memory"); /* kept at -O2 */
    lost = NULL;
    puts("waiting");
    return 0;
}
