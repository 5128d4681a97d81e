/* libleaky.c: a shared library (built as libleaky.so) that leaks; see dlopen_leak.c.
 *
 * leaky_make_table() leaks 123 bytes at the line marked FP:lib_leak (libleaky.c:10).
 */
#include <stdlib.h>
#include <string.h>

int leaky_make_table(int fill)
{
    unsigned char *table = malloc(123); /* FP:lib_leak */
    memset(table, fill, 123);
    return table[122];
}
