/* system_call.c: system("echo from-shell; exit 3"), then loses 55 bytes.
 *
 * A correct tool does not follow the shell (exec'd; --trace-children=no), reports one
 * process and one definite record: 55 bytes in 1 block at FP:leak. No error. Prints
 * "from-shell" then "status 3"; exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int main(void)
{
    fflush(stdout);
    int status = system("echo from-shell; exit 3");
    char *lost = malloc(55); /* FP:leak */
    memset(lost, 1, 55);
    lost = NULL;
    printf("status %d\n", WEXITSTATUS(status));
    return 0;
}
