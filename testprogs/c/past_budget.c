/* past_budget.c: more live blocks than the guard budget allows, then a one-byte overflow
 * write into a block allocated past the budget.
 *
 * Run with `fencepost run --guard-budget-mb=1`: the first ~250 blocks are guarded (a page
 * each), the rest are packed with canary red zones. The overflow into a packed block cannot
 * fault; a correct tool reports it when the block is freed:
 *   heap-buffer-overflow, found_at "free": write of 1 byte at offset 13 of a 13-byte block,
 *   allocated at the line marked FP:alloc, freed at the line marked FP:free;
 *   summary.guard.unguarded > 0, and the text says how many blocks were not guarded.
 * No leak (everything is freed). Exit status 0.
 *
 * valgrind 3.19 memcheck (no budget): "Invalid write of size 1 ... Address ... is 0 bytes
 * after a block of size 13 alloc'd" at the line marked FP:write.
 */
#include <stdio.h>
#include <stdlib.h>

#define N 1000

int main(void)
{
    static char *keep[N];
    for (int i = 0; i < N; i++)
        keep[i] = malloc(16);
    char *p = malloc(13); /* FP:alloc */
    for (int i = 0; i <= 13; i++)
        p[i] = 'a'; /* FP:write */
    free(p); /* FP:free */
    for (int i = 0; i < N; i++)
        free(keep[i]);
    printf("done\n");
    return 0;
}
