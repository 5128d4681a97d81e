/* abort_live.c: holds a block, then calls abort().
 *
 * abort() raises SIGABRT: no normal exit, no leak scan. A correct tool reports the live
 * block as `unreleased`:
 *   unreleased, 512 bytes in 1 block, main, line marked FP:held (abort_live.c:19)
 * Exit: killed by signal 6: `"exit": {"signal": 6}`, status 134 (128 + 6).
 *
 * valgrind 3.19 memcheck: "Process terminating with default action of signal 6
 * (SIGABRT)" at abort, called from main; then "512 bytes in 1 blocks are still
 * reachable" (its leak check runs after the signal).
 * Natively: writes "aborting", dies of SIGABRT (status 134 from a shell).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    char *held = malloc(512); /* FP:held */
    memset(held, 3, 512);
    static const char msg[] = "aborting\n";
    write(1, msg, sizeof msg - 1);
    abort();
}
