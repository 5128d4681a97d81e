// clean.cpp: a correct C++ program using containers, exceptions, threads and every
// operator new/delete variant. Nothing to report.
//
// A correct tool reports no error and no definite, indirect or possible leak.
// libstdc++ keeps its exception emergency pool (a 73,728-byte block on this libstdc++,
// pointed to by a global) for the whole run: reachable, not an error; memcheck
// frees it through __gnu_cxx::__freeres before its leak check, so it does not show.
// Exit status 0.
//
// Covers: new/delete, new[]/delete[], nothrow new/new[], sized delete/delete[],
// aligned new/delete (align_val_t, also nothrow and sized), std::string, vector, map,
// unordered_map, list, deque, shared_ptr/unique_ptr, exceptions thrown and caught,
// std::thread.
//
// valgrind 3.19 memcheck: "ERROR SUMMARY: 0 errors", "All heap blocks were freed --
// no leaks are possible". Natively: prints "clean ok", exits 0.
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            std::fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__); \
            std::exit(1);                                                          \
        }                                                                          \
    } while (0)

struct alignas(64) CacheLine {
    char bytes[64];
};

struct Widget {
    std::string name;
    std::vector<int> parts;
};

static void operator_variants()
{
    int *one = new int(1);
    delete one;
    int *many = new int[100];
    delete[] many;

    int *maybe = new (std::nothrow) int(2);
    CHECK(maybe);
    delete maybe;
    int *maybe_many = new (std::nothrow) int[50];
    CHECK(maybe_many);
    delete[] maybe_many;

    void *raw = ::operator new(48);
    ::operator delete(raw, 48); // sized delete
    void *raw_array = ::operator new[](96);
    ::operator delete[](raw_array, 96); // sized delete[]

    CacheLine *line = new CacheLine; // aligned new (align_val_t 64)
    CHECK(reinterpret_cast<std::uintptr_t>(line) % 64 == 0);
    delete line;
    CacheLine *lines = new CacheLine[3];
    CHECK(reinterpret_cast<std::uintptr_t>(lines) % 64 == 0);
    delete[] lines;

    void *a = ::operator new(200, std::align_val_t(128));
    ::operator delete(a, 200, std::align_val_t(128)); // sized + aligned
    void *b = ::operator new(200, std::align_val_t(256), std::nothrow);
    CHECK(b);
    ::operator delete(b, std::align_val_t(256), std::nothrow);
    void *c = ::operator new[](300, std::align_val_t(64));
    ::operator delete[](c, std::align_val_t(64));
}

static int containers()
{
    std::vector<Widget> widgets;
    for (int i = 0; i < 100; i++)
        widgets.push_back(Widget{"widget number " + std::to_string(i), std::vector<int>(i, i)});
    std::map<std::string, int> by_name;
    std::unordered_map<int, std::string> by_id;
    for (const Widget &w : widgets) {
        by_name[w.name] = static_cast<int>(w.parts.size());
        by_id[static_cast<int>(w.parts.size())] = w.name;
    }
    std::list<std::string> names(widgets.size(), "x");
    std::deque<int> queue(1000, 1);
    auto shared = std::make_shared<Widget>(Widget{"shared", {1, 2, 3}});
    auto unique = std::make_unique<std::vector<double>>(500, 1.5);
    std::shared_ptr<Widget> copy = shared;
    return static_cast<int>(by_name.size() + by_id.size() + names.size() + queue.size() +
                            copy->parts.size() + unique->size());
}

static int exceptions()
{
    int caught = 0;
    for (int i = 0; i < 10; i++) {
        try {
            std::vector<int> local(100, i);
            throw std::runtime_error("a long enough message to need the heap " + std::to_string(i));
        } catch (const std::exception &e) {
            caught += e.what()[0] == 'a';
        }
    }
    return caught;
}

int main()
{
    operator_variants();
    CHECK(containers() == 100 + 100 + 100 + 1000 + 3 + 500);
    CHECK(exceptions() == 10);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++)
        threads.emplace_back([] {
            operator_variants();
            containers();
            exceptions();
        });
    for (std::thread &t : threads)
        t.join();
    std::puts("clean ok");
    return 0;
}
