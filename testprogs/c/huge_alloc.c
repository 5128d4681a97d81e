/* huge_alloc.c: allocations that cannot be satisfied return NULL, and the program copes.
 *
 * malloc(1 << 50) asks for a petabyte; calloc(SIZE_MAX / 2, 4) asks for more bytes than a
 * size_t can count (nmemb * size overflows). Both must return NULL with errno ENOMEM,
 * as glibc's do; the program checks that, then allocates and frees a normal block.
 *
 * A correct tool reports nothing: no error, no leak, no crash. Exit status 0;
 * stdout "malloc: NULL ENOMEM\ncalloc: NULL ENOMEM\n".
 *
 * valgrind 3.19 memcheck: no error, no warning ("ERROR SUMMARY: 0 errors from 0
 * contexts"), the same two lines. Natively: the same, exit 0.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void check(const char *what, void *p)
{
    printf("%s: %s %s\n", what, p == NULL ? "NULL" : "a block",
           p == NULL && errno == ENOMEM ? "ENOMEM" : "(errno not ENOMEM)");
    free(p);
}

int main(void)
{
    errno = 0;
    check("malloc", malloc(1UL << 50)); /* FP:huge_malloc */
    /* volatile: gcc would warn at compile time that the product overflows. */
    volatile size_t many = SIZE_MAX / 2;
    errno = 0;
    check("calloc", calloc(many, 4)); /* FP:overflowing_calloc */
    char *ok = malloc(64);
    free(ok);
    return 0;
}
