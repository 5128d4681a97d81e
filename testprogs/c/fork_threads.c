/* fork_threads.c: forks while 4 threads are alive and allocating; the child loses 100 bytes
 * and exits, the parent waits for it, joins its threads and loses 200 bytes.
 *
 * A correct tool reports two processes (`start` "main" and "fork", the child's `ppid` the
 * parent's pid), exactly two definite loss records: 100 bytes in 1 block with the child's
 * pid (line FP:child_leak), 200 bytes in 1 block with the parent's pid (FP:parent_leak).
 * No error. Prints "child done" then "parent done"; exits 0.
 * A churning thread that the fork catches between its malloc(64) and free leaves the child a
 * lost 64-byte block (FP:churn): the pointer was in a thread the child does not have. Both
 * tools report it when it happens; it depends on timing.
 * valgrind 3.19 memcheck (follows forks): the same two definite records, one per pid.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        void *p = malloc(64); /* FP:churn */
        free(p);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    usleep(20000);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *lost = malloc(100); /* FP:child_leak */
        memset(lost, 1, 100);
        lost = NULL;
        printf("child done\n");
        return 0;
    }
    waitpid(pid, NULL, 0);
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    char *lost = malloc(200); /* FP:parent_leak */
    memset(lost, 2, 200);
    lost = NULL;
    printf("parent done\n");
    return 0;
}
