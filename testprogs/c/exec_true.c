/* exec_true.c: allocates, then replaces itself with another program through exec.
 *
 * With no arguments it runs execl("/bin/true", "true", NULL); with arguments it runs
 * execv(argv[1], argv + 1) (the tests pass /usr/bin/env to see the exec'd image's
 * environment). If exec fails it exits 9, so a status of 0 proves /bin/true ran.
 *
 * A correct tool, by default (exec not followed, like memcheck's --trace-children=no):
 *   the exec'd image runs natively: no shim, no ring, none of the tool's variables in
 *   its environment, and no report section of its own. The image that called exec ended
 *   by exec, not by dying: its 64-byte block (FP:before_exec, exec_true.c:27) is not
 *   leak-checked (memcheck does no leak check at exec) and is not "unreleased" (which
 *   says the process died). The tool exits with the exec'd program's status: 0 for
 *   /bin/true.
 * With --trace-children=yes: the exec'd image is traced too and appears in the report as
 *   a process of its own (same pid, "start": "exec"), after the image it replaced.
 *
 * valgrind 3.19 memcheck: no error, no leak check at exec; with --trace-children=yes a
 * second "==PID== Command: /bin/true" section. Natively: prints "exec", exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char *before = malloc(64); /* FP:before_exec */
    memset(before, 4, 64);
    static const char msg[] = "exec\n";
    write(1, msg, sizeof msg - 1);
    if (argc > 1)
        execv(argv[1], argv + 1);
    else
        execl("/bin/true", "true", (char *)NULL);
    return 9;
}
