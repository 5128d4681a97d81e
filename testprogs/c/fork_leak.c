/* fork_leak.c: a forked child leaks a block and exits normally; the parent waits.
 *
 * A correct tool reports the child as its own process (its own pid, not the parent's):
 *   definite, 77 bytes in 1 block, pid = the child's, allocated in child_work() at
 *   the line marked FP:child_leak (fork_leak.c:23).
 * The parent leaks nothing (its 16-byte block is freed before exit; the child exits
 * while it still holds its copy of that block: reachable in the child). No error.
 * Exit status 0 (the parent's; the child also exits 0).
 *
 * valgrind 3.19 memcheck (follows fork, one XML file per pid with --xml-file=F.%p):
 * the child's file has "77 bytes in 1 blocks are definitely lost ... child_work
 * (fork_leak.c:23)"; the parent's has no leak.
 * Natively: prints "parent <pid> child <pid>", exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static int child_work(void)
{
    char *p = malloc(77); /* FP:child_leak */
    memset(p, 7, 77);
    return p[76] * 11;
}

int main(void)
{
    char *parent_block = malloc(16);
    pid_t pid = fork();
    if (pid == 0) {
        int r = child_work();
        exit(r == 77 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    free(parent_block);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 1;
    /* The test matches the child's pid with the pid of the leak record. */
    printf("parent %ld child %ld\n", (long)getpid(), (long)pid);
    return 0;
}
