/* free_stack.c: free() of a stack address.
 *
 * A correct tool reports one error, does not pass the pointer to glibc, and lets the
 * program run on:
 *   invalid-free, stack: release() at the line marked FP:bad_free (free_stack.c:20),
 *   called from main (free_stack.c:26).
 *   (No heap block contains the address, so there is no alloc_stack.)
 * No leak. Exit status 0 (with --error-exitcode=N: N).
 *
 * valgrind 3.19 memcheck: InvalidFree at release (free_stack.c:20), "Address ... is on
 * thread 1's stack". Natively: glibc crashes (SIGSEGV here; "free(): invalid pointer"
 * and SIGABRT with other layouts).
 */
#include <stdio.h>
#include <stdlib.h>

/* Through a noinline function so gcc cannot see (and warn about) the stack pointer. */
__attribute__((noinline)) static void release(void *p)
{
    free(p); /* FP:bad_free */
}

int main(void)
{
    int on_stack[4] = {1, 2, 3, 4};
    release(on_stack);
    printf("still running %d\n", on_stack[3]);
    return 0;
}
