/* fork_quarantine.c: a child forked while other threads hold freed blocks in fast mode's
 * quarantine. In the child those threads are gone; the quarantine must still work there,
 * or a freed block's address comes straight back and a dangling pointer to it makes a new,
 * lost block look reachable.
 *
 * Four threads each free 6 MB of blocks (24 MB in all, more than the quarantine's 20 MB)
 * and wait; the main thread forks. The child frees a 200-byte block (keeping a dangling
 * pointer to it in a global) and then another, then allocates a third 200-byte block and
 * drops it.
 * A correct tool reports, for the child, one definite leak of 200 bytes (FP:child_lost);
 * nothing for the parent. Prints "child done" then "parent done"; exits 0.
 * memcheck (--freelist-vol 20 MB) reports the same. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_barrier_t freed, done;
void *dangling;

static void *hold_freed(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1500; i++) {
        char *p = malloc(4096);
        memset(p, i, 4096);
        free(p);
    }
    pthread_barrier_wait(&freed);
    pthread_barrier_wait(&done);
    return NULL;
}

int main(void)
{
    pthread_t t[4];
    pthread_barrier_init(&freed, NULL, 5);
    pthread_barrier_init(&done, NULL, 5);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hold_freed, NULL);
    pthread_barrier_wait(&freed);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *first = malloc(200);
        char *second = malloc(200);
        memset(first, 1, 200);
        free(first);
        free(second);
        dangling = first;
        char *lost = malloc(200); /* FP:child_lost */
        memset(lost, 2, 200);
        lost = NULL;
        printf("child done\n");
        return 0;
    }
    waitpid(pid, NULL, 0);
    pthread_barrier_wait(&done);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("parent done\n");
    return 0;
}
