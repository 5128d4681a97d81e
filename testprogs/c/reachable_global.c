/* reachable_global.c: a block still pointed to by a global at exit. Not a leak error.
 *
 * A correct tool reports one loss record and no error:
 *   reachable, 64 bytes in 1 block, allocated in main at the line marked FP:global
 *   (reachable_global.c:21).
 * No definite/indirect/possible leak. The program exits with status 3, which the tool
 * must pass through (also with --error-exitcode=N: reachable blocks are not errors).
 *
 * valgrind 3.19 memcheck: "64 bytes in 1 blocks are still reachable in loss record
 * 1 of 1 ... by main (reachable_global.c:21)"; ERROR SUMMARY: 0 errors.
 * Natively: prints "config ready", exits 3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *global_config;

int main(void)
{
    global_config = malloc(64); /* FP:global */
    strcpy(global_config, "config ready");
    puts(global_config);
    return 3;
}
