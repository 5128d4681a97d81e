/* use_after_free.c: a read after free, then a write after free, of two different blocks.
 *
 * Output goes straight to the file descriptor (write(2)), so that with --halt-on-error the
 * test can tell that nothing after the first error ran.
 *
 * A correct tool reports exactly two errors, in this order, and lets the program run on:
 *   1. use-after-free, read of 1 byte, 5 bytes inside a freed 24-byte block
 *      (access.op "read", access.size 1, block.size 24, block.offset 5), count 1;
 *      stack: main at FP:uaf_read (use_after_free.c:58); alloc_stack: main at
 *      FP:alloc_read (use_after_free.c:53); free_stack: main at FP:free_read
 *      (use_after_free.c:55).
 *   2. use-after-free, write of 4 bytes, 12 bytes inside a freed 40-byte block
 *      (access.op "write", access.size 4, block.size 40, block.offset 12), count 1;
 *      stack: main at FP:uaf_write (use_after_free.c:64); alloc_stack: main at
 *      FP:alloc_write (use_after_free.c:62); free_stack: main at FP:free_write
 *      (use_after_free.c:63).
 * No leak. Exit status 0; stdout "before\nafter read\nafter write\n".
 * With --halt-on-error: only error 1, the program dies of SIGSEGV (status 139), and stdout
 * is "before\n" only.
 *
 * valgrind 3.19 memcheck:
 *   Invalid read of size 1
 *      at 0x...: main (use_after_free.c:58)
 *    Address 0x... is 5 bytes inside a block of size 24 free'd
 *      at 0x...: free (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (use_after_free.c:55)
 *    Block was alloc'd at
 *      at 0x...: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (use_after_free.c:53)
 *   Invalid write of size 4
 *      at 0x...: main (use_after_free.c:64)
 *    Address 0x... is 12 bytes inside a block of size 40 free'd
 *      at 0x...: free (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (use_after_free.c:63)
 *    Block was alloc'd at
 *      at 0x...: malloc (in /usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so)
 *      by 0x...: main (use_after_free.c:62)
 *   ERROR SUMMARY: 2 errors from 2 contexts
 * Natively: prints the three lines, exits 0 (glibc does not notice).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void say(const char *s)
{
    write(1, s, strlen(s));
}

int main(void)
{
    say("before\n");
    char *text = malloc(24); /* FP:alloc_read */
    strcpy(text, "a string of 23 letters");
    free(text); /* FP:free_read */
    /* volatile: the read must happen, whatever the byte is. */
    volatile char c;
    c = text[5]; /* FP:uaf_read */
    (void)c;
    say("after read\n");

    int *numbers = malloc(10 * sizeof *numbers); /* FP:alloc_write */
    free(numbers); /* FP:free_write */
    numbers[3] = 7; /* FP:uaf_write */
    say("after write\n");
    return 0;
}
