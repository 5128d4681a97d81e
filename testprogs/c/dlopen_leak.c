/* dlopen_leak.c: a leak inside a dlopen'ed library that is dlclose'd before exit.
 *
 * Usage: dlopen_leak PATH/TO/libleaky.so   (built from libleaky.c)
 *
 * A correct tool reports one definite loss record and names the library code even
 * though it was unloaded before the leak check:
 *   definite, 123 bytes in 1 block, function leaky_make_table, libleaky.c line marked
 *   FP:lib_leak (libleaky.c:10), called from main at the line marked FP:call
 *   (dlopen_leak.c:35).
 * No error. Exit status 0.
 *
 * valgrind 3.19 memcheck: with --keep-debuginfo=yes, "123 bytes in 1 blocks are
 * definitely lost ... leaky_make_table (libleaky.c:10) by main (dlopen_leak.c:35)";
 * without it the library frame is "???". Natively: prints "fill 5", exits 0.
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s libleaky.so\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    int (*make_table)(int) = (int (*)(int))dlsym(lib, "leaky_make_table");
    if (!make_table) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 2;
    }
    int fill = make_table(5); /* FP:call */
    dlclose(lib);
    printf("fill %d\n", fill);
    return 0;
}
