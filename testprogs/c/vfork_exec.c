/* vfork_exec.c: vfork + _exit, then vfork + execl("/bin/echo"), then loses 10 bytes.
 *
 * vfork children share the parent's memory; they are not separate heaps. A correct tool
 * runs both children without disturbing the parent, reports one process (the parent;
 * echo is exec'd and not followed by default) and one definite loss record: 10 bytes in
 * 1 block at FP:leak. No error. Prints "echoed" (from /bin/echo) then "done"; exits 0.
 * valgrind 3.19 memcheck: the same definite record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    int status;
    fflush(stdout);
    pid_t pid = vfork();
    if (pid == 0)
        _exit(3);
    waitpid(pid, &status, 0);
    if (WEXITSTATUS(status) != 3)
        return 1;
    pid = vfork();
    if (pid == 0) {
        execl("/bin/echo", "echo", "echoed", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    char *lost = malloc(10); /* FP:leak */
    memset(lost, 1, 10);
    lost = NULL;
    printf("done\n");
    return WEXITSTATUS(status);
}
