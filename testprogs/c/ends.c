/* ends.c MODE: allocates, frees one block, keeps 1000 bytes in a global, allocates 123
 * bytes as its very last event, then ends by MODE:
 *   kill        raise(SIGKILL)             exit 137 (128 + 9)
 *   segv        writes through NULL        exit 139
 *   abort       abort()                    exit 134
 *   _exit       _exit(7)                   exit 7
 *   thread-exit a second thread calls exit(5) while main waits in pthread_join: exit 5
 * A correct tool always produces its report with every event up to the end: the 1000-byte
 * block (FP:global) and the 123-byte block (FP:last) are in the loss records (kind
 * `unreleased` after a signal death, a leak-check kind after _exit and exit), the freed
 * 500-byte block (FP:freed) is not. Prints "ending MODE" first.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *global;
char *volatile last;

static void *exiter(void *arg)
{
    (void)arg;
    last = malloc(123); /* FP:last_thread */
    exit(5);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    char *freed = malloc(500); /* FP:freed */
    memset(freed, 1, 500);
    free(freed);
    global = malloc(1000); /* FP:global */
    memset(global, 2, 1000);
    printf("ending %s\n", mode);
    fflush(stdout);
    if (strcmp(mode, "thread-exit") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, exiter, NULL);
        pthread_join(t, NULL);
        return 1;
    }
    last = malloc(123); /* FP:last */
    if (strcmp(mode, "kill") == 0)
        raise(SIGKILL);
    if (strcmp(mode, "segv") == 0)
        *(volatile int *)0 = 1;
    if (strcmp(mode, "abort") == 0)
        abort();
    if (strcmp(mode, "_exit") == 0)
        _exit(7);
    return 1;
}
