/* exec_self.c: the first image holds 11 bytes and execs itself with "second"; the second
 * image loses 22 bytes.
 *
 * Like memcheck, a correct tool does not leak-check an image replaced by exec. With
 * --trace-children=no: one process (`end` "exec"), no loss record. With
 * --trace-children=yes: two entries in `processes` with the same pid (the second's
 * `start` "exec"), and one definite record: 22 bytes in 1 block at FP:second_leak. No
 * error. Prints "first" then "second"; exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc > 1) {
        char *lost = malloc(22); /* FP:second_leak */
        memset(lost, 2, 22);
        lost = NULL;
        printf("second\n");
        return 0;
    }
    char *held = malloc(11); /* FP:first_held */
    memset(held, 1, 11);
    printf("first\n");
    fflush(stdout);
    execl("/proc/self/exe", argv[0], "second", (char *)NULL);
    return 9;
}
