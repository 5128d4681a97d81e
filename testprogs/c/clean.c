/* clean.c: a correct C program exercising the allocation surface. Nothing to report.
 *
 * A correct tool reports no error and no definite, indirect or possible leak (libc may
 * keep internal blocks that are reachable; those are not errors). Exit status 0.
 * Covers: malloc, calloc, realloc (grow, shrink, NULL, to 0 via free), reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc, strdup, strndup,
 * getline (on a tmpfile), asprintf, malloc_usable_size, and 4 threads doing the same.
 * With the argument "no-pvalloc" it skips pvalloc: valgrind 3.19 does not implement it
 * ("Program aborting because of call to pvalloc"), so the valgrind comparison passes it.
 *
 * valgrind 3.19 memcheck (with "no-pvalloc"): "ERROR SUMMARY: 0 errors", "All heap blocks were freed --
 * no leaks are possible". Natively: prints "clean ok", exits 0.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                  \
    do {                                                             \
        if (!(cond)) {                                               \
            fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__); \
            exit(1);                                                 \
        }                                                            \
    } while (0)

static int skip_pvalloc;

static void aligned_family(void)
{
    void *p = NULL;
    CHECK(posix_memalign(&p, 64, 100) == 0 && ((uintptr_t)p % 64) == 0);
    memset(p, 1, 100);
    free(p);

    p = aligned_alloc(128, 256);
    CHECK(p && ((uintptr_t)p % 128) == 0);
    free(p);

    p = memalign(32, 40);
    CHECK(p && ((uintptr_t)p % 32) == 0);
    free(p);

    p = valloc(10);
    CHECK(p && ((uintptr_t)p % 4096) == 0);
    free(p);

    if (!skip_pvalloc) {
        p = pvalloc(5000);
        CHECK(p && ((uintptr_t)p % 4096) == 0);
        free(p);
    }
}

static void strings(void)
{
    char *s = strdup("fencepost");
    char *t = strndup("fencepost", 5);
    CHECK(strcmp(s, "fencepost") == 0 && strcmp(t, "fence") == 0);
    free(s);
    free(t);

    char *msg = NULL;
    CHECK(asprintf(&msg, "%d-%s", 42, "x") > 0);
    free(msg);

    FILE *f = tmpfile();
    CHECK(f != NULL);
    fputs("one\ntwo two\nthree three three\n", f);
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&line, &cap, f) != -1)
        lines++;
    CHECK(lines == 3);
    free(line);
    fclose(f);
}

static void resizing(void)
{
    int *v = calloc(4, sizeof *v);
    CHECK(v && v[3] == 0);
    v = realloc(v, 1000 * sizeof *v); /* grow */
    CHECK(v != NULL);
    v[999] = 1;
    CHECK(malloc_usable_size(v) >= 1000 * sizeof *v);
    v = realloc(v, 10 * sizeof *v); /* shrink */
    CHECK(v != NULL);
    v = reallocarray(v, 20, sizeof *v);
    CHECK(v != NULL);
    free(v);

    char *r = realloc(NULL, 33); /* realloc(NULL) is malloc */
    CHECK(r != NULL);
    free(r);
    free(NULL);
}

static void *thread_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(1 + i % 200);
        p = realloc(p, 300);
        free(p);
    }
    strings();
    aligned_family();
    return NULL;
}

int main(int argc, char **argv)
{
    skip_pvalloc = argc > 1 && strcmp(argv[1], "no-pvalloc") == 0;
    aligned_family();
    strings();
    resizing();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, thread_main, NULL) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    puts("clean ok");
    return 0;
}
