/* daemon_double_fork.c: the classic daemon: fork, setsid, fork again; the middle process
 * exits at once, the main process exits after it; the daemon (the grandchild) outlives
 * them both by 300 ms, loses 77 bytes, writes "daemon done" to the file argv[1], exits 0.
 *
 * A correct tool waits for the daemon and reports three processes (main, fork, fork) and
 * one definite record: 77 bytes in 1 block at FP:daemon_leak, with the daemon's pid (the
 * `pid` of the third process). No error. The main process prints "main done"; exit 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() != 0)
            exit(0);
        usleep(300000);
        char *lost = malloc(77); /* FP:daemon_leak */
        memset(lost, 1, 77);
        lost = NULL;
        FILE *f = fopen(argv[1], "w");
        fprintf(f, "daemon done %d\n", (int)getpid());
        fclose(f);
        exit(0);
    }
    waitpid(pid, NULL, 0);
    printf("main done\n");
    return 0;
}
