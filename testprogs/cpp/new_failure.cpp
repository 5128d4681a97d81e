// new_failure.cpp: operator new that cannot be satisfied, as C++ says it must behave.
//
// 1. new char[2^62] throws std::bad_alloc; the program catches it.
// 2. The aligned form (align_val_t) throws too.
// 3. nothrow new returns nullptr.
// 4. With a new-handler installed, operator new calls it until it gives up: the handler
//    runs twice (the second time it removes itself), then bad_alloc is thrown.
// 5. After all that, one 16-byte block is leaked from keep_one() (marker FP:leak).
//
// The exceptions unwind from the allocator's frame straight into the program's (the shim's
// entry points are trampolines that jump, not call). Every caught failure must leave the
// program running and the later leak must carry its own stack.
//
// Expected under fencepost (both modes): prints "caught 1 2 null 2", exits 0; one definite
// leak of 16 bytes in 1 block at the FP:leak line, from keep_one and main.
// memcheck cannot run it: valgrind 3.19 stops at the first failure with "new/new[] failed
// and should throw an exception, but Valgrind cannot throw exceptions and so is aborting
// instead. Sorry." (exit 1). Natively: prints "caught 1 2 null 2", exits 0.
#include <cstdio>
#include <new>

static int handler_calls = 0;

static void give_up_on_second_call()
{
    handler_calls++;
    if (handler_calls == 2)
        std::set_new_handler(nullptr);
}

static const size_t huge = (size_t)1 << 62;

__attribute__((noinline)) static int *keep_one()
{
    return new int[4]; // FP:leak
}

int *kept;

int main()
{
    int caught = 0, caught_aligned = 0;
    try {
        char *p = new char[huge];
        p[0] = 1;
    } catch (const std::bad_alloc &) {
        caught = 1;
    }
    try {
        void *p = ::operator new(huge, std::align_val_t(64));
        ::operator delete(p, std::align_val_t(64));
    } catch (const std::bad_alloc &) {
        caught_aligned = 2;
    }
    char *q = new (std::nothrow) char[huge];
    std::set_new_handler(give_up_on_second_call);
    try {
        char *p = new char[huge];
        p[0] = 1;
    } catch (const std::bad_alloc &) {
    }
    std::printf("caught %d %d %s %d\n", caught, caught_aligned, q ? "non-null" : "null",
                handler_calls);
    kept = keep_one();
    kept = nullptr;
    return 0;
}
