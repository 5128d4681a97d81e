/* null_deref.c: holds two blocks, then dies of SIGSEGV writing through a NULL pointer.
 *
 * The process never exits normally, so no leak scan can run; a correct tool still
 * reports every block it recorded as live, as `unreleased`:
 *   unreleased, 300 bytes in 1 block, main, line marked FP:held_by_global
 *     (null_deref.c:29)
 *   unreleased, 700 bytes in 1 block, main, line marked FP:held_by_local
 *     (null_deref.c:30)
 * The freed 40-byte block (FP:freed) is not reported. No stdio buffer is allocated
 * (output goes through write(2)), so these are the only live blocks of the program.
 * Exit: killed by signal 11: `"exit": {"signal": 11}`, status 139 (128 + 11). A tool
 * that catches faults may add a `fatal-signal` error (signal 11) at FP:crash.
 *
 * valgrind 3.19 memcheck: "Invalid write of size 4 ... at main (null_deref.c:37)",
 * "Address 0x0 is not stack'd, malloc'd or (recently) free'd", "Process terminating
 * with default action of signal 11 (SIGSEGV)"; its leak check then runs (valgrind
 * catches the signal) and calls both blocks "still reachable".
 * Natively: writes "about to crash", dies of SIGSEGV (status 139 from a shell).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *held_by_global;

int main(void)
{
    char *freed = malloc(40); /* FP:freed */
    held_by_global = malloc(300); /* FP:held_by_global */
    char *local = malloc(700); /* FP:held_by_local */
    memset(held_by_global, 1, 300);
    memset(local, 2, 700);
    free(freed);
    static const char msg[] = "about to crash\n";
    write(1, msg, sizeof msg - 1);
    volatile int *null = NULL;
    *null = local[0]; /* FP:crash */
    return local[1];
}
