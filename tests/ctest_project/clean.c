/* clean.c: allocates, uses and frees; a memory checker must report nothing. */
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(100);
    memset(p, 0, 100);
    free(p);
    return 0;
}
