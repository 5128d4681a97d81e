/* leak_definite.c: one block allocated and never freed, with no pointer left to it.
 *
 * A correct tool reports exactly one loss record:
 *   definite, 100 bytes in 1 block, allocated in make_record() at the line
 *   marked FP:leak (leak_definite.c:20), called from main.
 * No errors. Exit status 0.
 *
 * valgrind 3.19 memcheck (--leak-check=full): "100 bytes in 1 blocks are definitely
 * lost in loss record 1 of 1 ... by 0x...: make_record (leak_definite.c:20)";
 * ERROR SUMMARY: 1 errors. Natively: prints "record 7" and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* noinline keeps make_record in the stack as its own frame. */
__attribute__((noinline)) static int make_record(int seed)
{
    /* The only pointer to the block lives in this frame, which is gone by exit. */
    char *record = malloc(100); /* FP:leak */
    memset(record, seed, 100);
    return record[99];
}

int main(void)
{
    printf("record %d\n", make_record(7));
    return 0;
}
