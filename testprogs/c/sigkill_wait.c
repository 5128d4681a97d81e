/* sigkill_wait.c: allocates, says "ready <pid>", then waits to be killed with SIGKILL.
 *
 * The test reads the "ready <pid>" line from stdout and sends SIGKILL to that pid.
 * The process never exits normally, so no leak scan can run; a correct tool still
 * reports every block it recorded as live, as `unreleased`:
 *   unreleased, 2000 bytes in 1 block, main, line marked FP:unreleased_local
 *     (sigkill_wait.c:28)
 *   unreleased, 1000 bytes in 1 block, main, line marked FP:unreleased_global
 *     (sigkill_wait.c:27)
 * The freed 500-byte block (FP:freed) must not be reported. Exit: killed by signal 9
 * (`"exit": {"signal": 9}`, status 137).
 *
 * valgrind: not comparable. A SIGKILLed process gives memcheck no chance to run its
 * leak check, so memcheck reports nothing about the live blocks.
 * Natively: prints "ready <pid>", then sleeps up to 60 s (killed before that).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *held_by_global;

int main(void)
{
    char *freed = malloc(500); /* FP:freed */
    held_by_global = malloc(1000); /* FP:unreleased_global */
    char *local = malloc(2000); /* FP:unreleased_local */
    memset(held_by_global, 1, 1000);
    memset(local, 2, 2000);
    free(freed);
    printf("ready %ld\n", (long)getpid());
    fflush(stdout);
    sleep(60);
    return local[0] == 2 ? 0 : 1;
}
