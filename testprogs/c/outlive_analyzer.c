/* outlive_analyzer.c FILE: prints "ready", then makes 3,000,000 malloc/free pairs (far
 * more events than the default 64 MiB ring holds), writes "done <pairs>" to FILE, exits 42.
 *
 * For the test that kills fencepost (kill -9) while this runs: the program must still run
 * to its end (FILE says "done 3000000", exit 42), and the shim must say exactly once
 * "fencepost: the analyzer is gone; process N runs on without being recorded".
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    printf("ready\n");
    fflush(stdout);
    usleep(300000);
    long pairs = 0;
    for (long i = 0; i < 3000000; i++) {
        void *p = malloc(16 + (size_t)(i % 64));
        free(p);
        pairs++;
    }
    FILE *f = fopen(argv[1], "w");
    fprintf(f, "done %ld\n", pairs);
    fclose(f);
    return 42;
}
