/* The bench's launcher: runs one command and writes "WALL_NS WAIT_STATUS MAXRSS_KIB" to a
 * file, the way /usr/bin/time does.
 *
 * Why not time and wait4 from Python directly: on exec, Linux carries the old address
 * space's peak RSS into the new program's ru_maxrss, and a child forked (or posix_spawn'ed)
 * from Python starts from Python's address space, so every program would show at least the
 * benchmark script's own ~20 MiB. Forked from this small process, the floor is ~1 MiB, the
 * same as /usr/bin/time's.
 *
 * usage: measure RESULT_FILE PROG [ARGS]   (stdin/stdout/stderr are passed on) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: measure RESULT_FILE PROG [ARGS]\n");
        return 2;
    }
    FILE *result = fopen(argv[1], "w");
    if (!result) {
        fprintf(stderr, "measure: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "measure: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        fclose(result);
        execv(argv[2], argv + 2);
        fprintf(stderr, "measure: %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    fprintf(result, "%lld %d %ld\n", ns, status, ru.ru_maxrss);
    return fclose(result) == 0 ? 0 : 2;
}
