/* own_segv_handler.c: a program that catches its own SIGSEGV and recovers.
 *
 * It maps a PROT_NONE page, installs a SIGSEGV handler with sigaction (SA_SIGINFO), and
 * writes to the page. The handler checks that the fault is in that page, makes the page
 * readable and writable with mprotect, and returns; the write is then retried and succeeds.
 * This is how garbage collectors, JITs and user-space paging work.
 *
 * A correct tool hands the fault to the program's handler and reports nothing:
 * no error (no fatal-signal), no leak. Exit status 0; stdout "recovered 42 after 1 fault".
 *
 * valgrind 3.19 cannot run it (with any tool, --tool=none too): it hands the handler
 * si_addr = NULL (si_code SEGV_MAPERR), so the handler takes the fault for a real crash and
 * the program exits 3, printing nothing. memcheck also reports, falsely:
 *   Invalid write of size 4
 *      at 0x...: main (own_segv_handler.c:56)
 *    Address 0x... is in a --- anonymous segment
 * Natively: prints "recovered 42 after 1 fault", exits 0.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *page;
static size_t page_size;
static volatile sig_atomic_t faults;

static void on_segv(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    char *addr = info->si_addr;
    if (addr < page || addr >= page + page_size)
        _exit(3); /* not our page: a real crash */
    faults++;
    if (mprotect(page, page_size, PROT_READ | PROT_WRITE) != 0)
        _exit(4);
}

int main(void)
{
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    page = mmap(NULL, page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0)
        return 2;
    volatile int *slot = (volatile int *)(page + 128);
    *slot = 42; /* FP:fault */
    printf("recovered %d after %d fault\n", *slot, (int)faults);
    munmap(page, page_size);
    return 0;
}
