/* sse_aligned.c: an aligned SSE load (_mm_load_si128, movdqa) from malloc(24).
 *
 * C only promises malloc(24) an alignment fit for any object of 24 bytes (8); glibc gives
 * 16, and this program assumes it. A tool that places a 24-byte block 8-aligned at the end
 * of a page (fencepost's guard mode, by default) makes the load raise a general-protection
 * fault, which the kernel delivers as SIGSEGV with no fault address.
 *
 * A correct tool, by default, reports exactly one error: kind "misaligned-access" (read of
 * 16 bytes at offset 0 of a 24-byte block, stack: main at FP:load (sse_aligned.c:28),
 * alloc_stack: main at FP:alloc) — or a "fatal-signal" (signal 11) at FP:load whose
 * message advises rerunning with --alignment=16; the program then dies of SIGSEGV:
 * exit status 139. With --alignment=16 it runs clean: no error, no leak, exit 0,
 * stdout "sum 276".
 *
 * valgrind 3.19 memcheck: "ERROR SUMMARY: 0 errors from 0 contexts" (its malloc returns
 * 16-aligned blocks), "sum 276".
 * Natively: "sum 276", exit 0.
 */
#include <emmintrin.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    unsigned char *p = malloc(24); /* FP:alloc */
    for (int i = 0; i < 24; i++)
        p[i] = (unsigned char)i;
    __m128i v = _mm_load_si128((const __m128i *)p); /* FP:load */
    unsigned char lanes[16];
    _mm_storeu_si128((__m128i *)lanes, v);
    int sum = 0;
    for (int i = 0; i < 16; i++)
        sum += lanes[i];
    for (int i = 16; i < 24; i++)
        sum += p[i];
    printf("sum %d\n", sum);
    free(p);
    return 0;
}
