// delete_array.cpp: `delete` of a block allocated with `new[]`.
//
// A correct tool reports one error and lets the program run on:
//   mismatched-free, block of 40 bytes (int[10]) at offset 0; stack: main at the line
//   marked FP:bad_delete (delete_array.cpp:27); alloc_stack: main at FP:alloc
//   (delete_array.cpp:18).
// Like memcheck, the block is released anyway (int[] has no array cookie, so the
// address is the block's start): no leak. Exit status 0 (with --error-exitcode=N: N).
//
// valgrind 3.19 memcheck: MismatchedFree "Mismatched free() / delete / delete []" at
// operator delete(void*, unsigned long) by main (delete_array.cpp:27), "Address ... is 0
// bytes inside a block of size 40 alloc'd" at operator new[] by main (FP:alloc); no leak.
// Natively: runs and exits 0 (glibc cannot tell), which is why a tool must say so.
#include <cstdio>

__attribute__((noinline)) static int *make_array()
{
    return new int[10]; // FP:alloc
}

int main()
{
    int *values = make_array();
    for (int i = 0; i < 10; i++)
        values[i] = i;
    std::printf("last %d\n", values[9]);
    delete values; // FP:bad_delete
    return 0;
}
