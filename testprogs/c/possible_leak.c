/* possible_leak.c: the only pointer left to a block points into its middle.
 *
 * A correct tool reports one loss record:
 *   possible, 256 bytes in 1 block, allocated in main at the line marked FP:possible
 *   (possible_leak.c:19).
 * Possible leaks are errors by default (like memcheck). No free error. Exit status 0.
 *
 * valgrind 3.19 memcheck: "256 bytes in 1 blocks are possibly lost in loss record
 * 1 of 1 ... by main (possible_leak.c:19)". Natively: prints "tail 42", exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *interior; /* points 128 bytes into the block: an interior pointer only */

int main(void)
{
    char *block = malloc(256); /* FP:possible */
    memset(block, 42, 256);
    interior = block + 128;
    block = NULL;
    printf("tail %d\n", interior[0]);
    return 0;
}
