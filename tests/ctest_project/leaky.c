/* leaky.c: loses one 64-byte block. A memory checker must report a definite leak of
 * 64 bytes in 1 block, allocated in lose() (the malloc line); the program exits 0. */
#include <stdlib.h>
#include <string.h>

static void lose(void)
{
    char *p = malloc(64); /* the lost block */
    memset(p, 1, 64);
}

int main(void)
{
    lose();
    return 0;
}
