/* many_live.c: hundreds of blocks live at exit, among as many freed and reallocated ones.
 *
 * The exit scan must find every live block however its allocator keeps them (in guard
 * mode, each block's slot is its only record, and the scan reads the slots marked in use;
 * in fast mode, the inline bitmap), and none of the freed ones.
 *
 *   - 300 blocks of 40 bytes are kept by a global array (FP:kept); every third is freed,
 *     and 10 of the rest are grown to 80 bytes by realloc (FP:grown);
 *   - 130 blocks of 24 bytes (FP:lost) are listed only in a block that is then freed.
 *
 * A correct tool reports: definitely lost, 3,120 bytes in 130 blocks at FP:lost; still
 * reachable, 7,600 bytes in 190 blocks at FP:kept and 800 bytes in 10 blocks at FP:grown.
 * No error. Exit status 0. valgrind 3.19 memcheck: the same three records.
 * Natively: prints "kept 200", exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEPT 300
#define LOST 130

void *kept[KEPT];

static void keep_some(void)
{
    for (int i = 0; i < KEPT; i++) {
        kept[i] = malloc(40); /* FP:kept */
        memset(kept[i], i, 40);
    }
    for (int i = 0; i < KEPT; i += 3) {
        free(kept[i]);
        kept[i] = NULL;
    }
    for (int i = 1; i < 30; i += 3) {
        kept[i] = realloc(kept[i], 80); /* FP:grown */
        memset(kept[i], 1, 80);
    }
}

static void lose_some(void)
{
    void **list = malloc(LOST * sizeof *list);
    for (int i = 0; i < LOST; i++) {
        list[i] = malloc(24); /* FP:lost */
        memset(list[i], 2, 24);
    }
    free(list);
}

int main(void)
{
    keep_some();
    lose_some();
    int n = 0;
    for (int i = 0; i < KEPT; i++)
        n += kept[i] != NULL;
    printf("kept %d\n", n);
    return 0;
}
