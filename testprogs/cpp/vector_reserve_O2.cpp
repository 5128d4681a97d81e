// vector_reserve_O2.cpp: a leak through std::vector::reserve in optimised code without
// frame pointers. Built with: g++ -g -O2 -fomit-frame-pointer.
//
// libstdc++ (and here main itself) has no frame pointers, so only a DWARF CFI unwinder
// gets from operator new back to the user's line. A correct tool reports:
//   definite, 24 bytes in 1 block: the std::vector<int> object, `new` in main at the
//     line marked FP:new_vector (vector_reserve_O2.cpp:31)
//   indirect, 4000 bytes in 1 block: its buffer, allocated by std::vector::reserve
//     (inlined into main) at the line marked FP:reserve (vector_reserve_O2.cpp:32);
//     the stack reaches `main`.
// No error. Exit status 0.
//
// valgrind 3.19 memcheck: "4,024 (24 direct, 4,000 indirect) bytes in 1 blocks are
// definitely lost ... main (vector_reserve_O2.cpp:31)" and "4,000 bytes in 1 blocks are
// indirectly lost ... std::vector<int>::reserve ... main (vector_reserve_O2.cpp:32)".
// Natively: prints "size 1000", exits 0.
#include <cstdio>
#include <vector>

// An opaque use so that -O2 cannot elide the allocations (C++14 allows eliding new).
__attribute__((noinline)) static std::size_t fill(std::vector<int> *v)
{
    asm volatile("" : : "r"(v) : "memory");
    for (int i = 0; i < 1000; i++)
        v->push_back(i);
    return v->size();
}

int main()
{
    std::vector<int> *v = new std::vector<int>; // FP:new_vector
    v->reserve(1000); // FP:reserve
    std::printf("size %zu\n", fill(v));
    return 0; // v is dropped without delete
}
