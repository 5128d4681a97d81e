/* spawn_child.c: posix_spawn()s itself with the argument "child"; the child loses 33
 * bytes, the parent 44.
 *
 * posix_spawn execs: with --trace-children=no a correct tool reports one process and one
 * definite record (44 bytes, FP:parent_leak, the parent's pid); with --trace-children=yes
 * two processes, the second's `exe` this program, and two definite records: 33 bytes
 * (FP:child_leak) with the child's pid and 44 bytes with the parent's. No error. Prints
 * "child", then "parent 0"; exits 0.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        char *lost = malloc(33); /* FP:child_leak */
        memset(lost, 1, 33);
        lost = NULL;
        printf("child\n");
        return 0;
    }
    fflush(stdout);
    pid_t pid;
    char *args[] = {argv[0], "child", NULL};
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ) != 0)
        return 2;
    int status;
    waitpid(pid, &status, 0);
    char *lost = malloc(44); /* FP:parent_leak */
    memset(lost, 2, 44);
    lost = NULL;
    printf("parent %d\n", WEXITSTATUS(status));
    return 0;
}
