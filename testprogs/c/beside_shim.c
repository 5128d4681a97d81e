/* beside_shim.c: the program's own page, merged by the kernel into a mapping of the tool's.
 *
 * The kernel merges neighbouring anonymous mappings. A page the program maps right after
 * fencepost's shim's .bss (there is a gap of a few pages there) becomes part of the same
 * mapping; the exit scan must leave out the shim's memory and still read that page. cc1
 * did this now and then with a page of its own, and a block only that page pointed to was
 * reported lost.
 *
 * The program maps a page right after the shim's .bss when it finds one (under fencepost),
 * else anywhere, and keeps there the only pointer to a 56-byte block (FP:held).
 *
 * A correct tool reports: still reachable, 56 bytes in 1 block at FP:held; nothing lost.
 * No error. Exit status 0. Prints "beside the shim: yes" under fencepost, "no" natively and
 * under valgrind 3.19 memcheck, which reports the same (nothing lost).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The end of the anonymous mapping that follows the shim's writable segment (its .bss),
 * or 0 when the shim is not there. */
static unsigned long end_of_shim_bss(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        return 0;
    char line[512];
    unsigned long lo, hi, shim_rw_end = 0, end = 0;
    while (fgets(line, sizeof line, maps)) {
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
            continue;
        if (strstr(line, "libfencepost_shim.so") && strstr(line, " rw-p ")) {
            shim_rw_end = hi;
            end = hi;
        } else if (shim_rw_end && lo == shim_rw_end && !strchr(line, '/')) {
            end = hi; /* the .bss beyond the file */
            break;
        } else if (shim_rw_end) {
            break;
        }
    }
    fclose(maps);
    return end;
}

int main(void)
{
    unsigned long at = end_of_shim_bss();
    void **page = MAP_FAILED;
    if (at)
        page = mmap((void *)at, 4096, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    int beside = page != MAP_FAILED && (unsigned long)page == at;
    if (!beside) {
        if (page != MAP_FAILED)
            munmap(page, 4096);
        page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            return 1;
    }
    page[100] = malloc(56); /* FP:held */
    memset(page[100], 5, 56);
    printf("beside the shim: %s\n", beside ? "yes" : "no");
    return 0;
}
