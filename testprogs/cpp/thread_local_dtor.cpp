// thread_local_dtor.cpp: 10 threads each own a C++ thread_local object whose destructor
// deletes a 256-byte buffer it new[]'d (registered with __cxa_thread_atexit).
//
// A correct tool sees every buffer deleted at thread exit: no definite, indirect or
// possible record, no error (no mismatched free: new[] is paired with delete[]). Prints
// "sum 10"; exits 0.
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

struct Buffer {
    char *data;
    Buffer() : data(new char[256]) { std::memset(data, 1, 256); } // FP:tls_new
    ~Buffer() { delete[] data; }
};

thread_local Buffer buffer;

int main()
{
    std::vector<std::thread> threads;
    int sum = 0;
    std::vector<int> got(10);
    for (int i = 0; i < 10; i++)
        threads.emplace_back([&got, i] { got[i] = buffer.data[0]; });
    for (auto &t : threads)
        t.join();
    for (int v : got)
        sum += v;
    std::printf("sum %d\n", sum);
    return 0;
}
