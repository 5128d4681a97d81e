/* overrun.c: reads one byte past a 13-byte heap block. A memory checker must report an
 * invalid read of size 1, 0 bytes after a block of size 13; the block is freed, no leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(13);
    memset(p, 'a', 13);
    volatile char past = p[13]; /* the bad read */
    (void)past;
    free(p);
    return 0;
}
